package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/internal/names"
)

// secretKey is where a Mailbox's password lives.
type secretKey struct {
	name, key string
	generated bool // the operator's <name>-credentials Secret, not spec.passwordSecretRef
}

func newPasswdCommand(o *options) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd MAILBOX",
		Short: "Set a Mailbox's password in the Secret it uses",
		Long: "passwd writes a new password for a Mailbox (named by its object name or address) into the\n" +
			"Secret key of spec.passwordSecretRef, or into the <name>-credentials Secret the operator\n" +
			"generated. It prompts twice without echo, or reads one line from stdin with --password-stdin.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			mb, err := findMailbox(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			return setPassword(cmd.Context(), c, cmd.OutOrStdout(), mb, pw)
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin instead of prompting")
	return cmd
}

// findMailbox finds the Mailbox in ns whose name or address is arg.
func findMailbox(ctx context.Context, c client.Client, ns, arg string) (*mailv1alpha1.Mailbox, error) {
	var list mailv1alpha1.MailboxList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, listError(err, ns)
	}
	for i := range list.Items {
		if mb := &list.Items[i]; mb.Name == arg {
			return mb, nil
		}
	}
	for i := range list.Items {
		if mb := &list.Items[i]; strings.EqualFold(string(mb.Spec.Address), arg) {
			return mb, nil
		}
	}
	return nil, fmt.Errorf("no Mailbox named %q or with the address %q in namespace %q: try -n NAMESPACE (kubectl get mailboxes -A)", arg, arg, ns)
}

// readPassword reads the new password from stdin or, on a terminal, from two prompts, and
// refuses one the operator would refuse.
func readPassword(cmd *cobra.Command, fromStdin bool) ([]byte, error) {
	var pw []byte
	var err error
	if fromStdin {
		pw, err = readLine(cmd.InOrStdin())
	} else {
		pw, err = promptTwice(cmd.ErrOrStderr())
	}
	if err != nil {
		return nil, err
	}
	if why := passwordhash.Unusable(pw); why != "" {
		return nil, fmt.Errorf("refusing the new password: it %s; nothing was changed", why)
	}
	return pw, nil
}

// readLine reads the first line of r without its line ending.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the password from stdin: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// promptTwice asks for the new password twice on the terminal. Echo is off before the first
// prompt shows, so nothing typed or pasted the moment it appears is ever displayed.
func promptTwice(prompts io.Writer) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("stdin is not a terminal: pass the password on stdin with --password-stdin")
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("the terminal: %w", err)
	}
	defer term.Restore(fd, old)
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{os.Stdin, prompts}, "")
	var pw [2]string
	for i, prompt := range []string{"New password: ", "Retype new password: "} {
		if pw[i], err = t.ReadPassword(prompt); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("cancelled; nothing was changed")
			}
			return nil, fmt.Errorf("reading the password: %w", err)
		}
	}
	if pw[0] != pw[1] {
		return nil, errors.New("the two passwords differ; nothing was changed")
	}
	return []byte(pw[0]), nil
}

// passwordSecret says which Secret key holds the Mailbox's password.
func passwordSecret(mb *mailv1alpha1.Mailbox) secretKey {
	if ref := mb.Spec.PasswordSecretRef; ref != nil {
		key := ref.Key
		if key == "" {
			key = names.PasswordKey
		}
		return secretKey{name: ref.Name, key: key}
	}
	name := mb.Status.CredentialsSecretName
	if name == "" {
		name = names.CredentialsSecret(mb.Name)
	}
	return secretKey{name: name, key: names.PasswordKey, generated: true}
}

// setPassword writes pw into the Mailbox's Secret, creating a referenced Secret that does not
// exist yet, and says what it changed.
func setPassword(ctx context.Context, c client.Client, out io.Writer, mb *mailv1alpha1.Mailbox, pw []byte) error {
	sk := passwordSecret(mb)
	var sec corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: mb.Namespace, Name: sk.name}, &sec)
	switch {
	case apierrors.IsNotFound(err) && sk.generated:
		return fmt.Errorf("secret %s/%s not found: the operator generates it once it reconciles Mailbox %s; check that the operator runs (kubectl describe mailbox %s -n %s)",
			mb.Namespace, sk.name, mb.Name, mb.Name, mb.Namespace)
	case apierrors.IsNotFound(err):
		return createSecret(ctx, c, out, mb, sk, pw)
	case err != nil:
		return fmt.Errorf("reading secret %s/%s: %w (kubectl auth can-i update secrets -n %s)", mb.Namespace, sk.name, err, mb.Namespace)
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[sk.key] = pw
	_, hadAnnotation := sec.Annotations[names.AnnotationGeneratedPasswordSHA256]
	delete(sec.Annotations, names.AnnotationGeneratedPasswordSHA256)
	if err := c.Update(ctx, &sec); err != nil {
		return fmt.Errorf("writing secret %s/%s: %w (run the command again if someone changed it meanwhile)", mb.Namespace, sk.name, err)
	}
	fmt.Fprintf(out, "secret/%s: key %q set to the new password of mailbox %s (%s) in namespace %s\n", sk.name, sk.key, mb.Name, mb.Spec.Address, mb.Namespace)
	if hadAnnotation {
		fmt.Fprintf(out, "secret/%s: annotation %s removed, so the operator hashes the new password at full strength\n", sk.name, names.AnnotationGeneratedPasswordSHA256)
	}
	return nil
}

func createSecret(ctx context.Context, c client.Client, out io.Writer, mb *mailv1alpha1.Mailbox, sk secretKey, pw []byte) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: mb.Namespace, Name: sk.name},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{sk.key: pw},
	}
	if err := c.Create(ctx, sec); err != nil {
		return fmt.Errorf("creating secret %s/%s: %w (kubectl auth can-i create secrets -n %s)", mb.Namespace, sk.name, err, mb.Namespace)
	}
	fmt.Fprintf(out, "secret/%s: created with key %q holding the new password of mailbox %s (%s) in namespace %s\n", sk.name, sk.key, mb.Name, mb.Spec.Address, mb.Namespace)
	return nil
}
