package operator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/testutil"
)

const idnManifests = `
apiVersion: v1
kind: Namespace
metadata: {name: idn}
---
apiVersion: v1
kind: Secret
metadata: {name: joerg-pw, namespace: idn}
stringData: {password: jörgs-passwort}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailCluster
metadata: {name: mail, namespace: idn}
spec: {hostname: mail.example.com}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: buecher, namespace: idn}
spec: {domain: bücher.example, clusterRef: {name: mail}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: joerg, namespace: idn}
spec:
  address: jörg@bücher.example
  aliases: [jörg.müller@xn--bcher-kva.example]
  passwordSecretRef: {name: joerg-pw}
`

// The message Python's smtplib sends with SMTPUTF8, and imaplib reads back after ENABLE
// UTF8=ACCEPT.
const idnClient = `
import imaplib, smtplib, ssl, sys
smtp_host, smtp_port, imap_host, imap_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = smtplib.SMTP(smtp_host, smtp_port, timeout=30)
msg = "From: Jürgen <jürgen@example.net>\r\nTo: jörg.müller@bücher.example\r\nSubject: Grüße an Jörg\r\n\r\nHallo!\r\n"
s.sendmail("jürgen@example.net", ["jörg.müller@bücher.example"], msg.encode("utf-8"), mail_options=["SMTPUTF8"])
s.quit()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(imap_host, imap_port, ssl_context=ctx)
m.authenticate("PLAIN", lambda _: "\0JÖRG@bücher.example\0jörgs-passwort".encode("utf-8"))
typ, data = m.capability()
m.capabilities = tuple(data[-1].decode().upper().split())
m.enable("UTF8=ACCEPT")
m.select("INBOX")
typ, data = m.fetch("1", "(BODY.PEEK[])")
print(data[0][1].decode("utf-8"))
m.logout()
`

// TestInternationalisedMailbox applies a MailDomain bücher.example and a Mailbox
// jörg@bücher.example with kubectl to the real API server: both are Ready, the domain's DNS
// records are in A-labels, and a real mail server process run as the pod would be receives
// mail for the Mailbox (sent by smtplib, read by imaplib).
func TestInternationalisedMailbox(t *testing.T) {
	lc, work := startLocalCluster(t)
	ctx := context.Background()
	c := lc.Client

	manifest := filepath.Join(work, "idn.yaml")
	if err := os.WriteFile(manifest, []byte(idnManifests), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(kubectlBinary(t), "--kubeconfig", lc.Kubeconfig, "apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	waitMailbox(t, c, "idn", "joerg", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	var md mailv1alpha1.MailDomain
	reconciled.Until(t, "MailDomain bücher.example Ready with its DNS records", func() (bool, string) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: "idn", Name: "buecher"}, &md); err != nil {
			return false, err.Error()
		}
		s, r, m := readyReason(md.Status.Conditions)
		return s == metav1.ConditionTrue && md.Status.Mailboxes == 1 && len(md.Status.DNSRecords) == 4,
			fmt.Sprintf("%s %s: %s; %d mailboxes, %d records", s, r, m, md.Status.Mailboxes, len(md.Status.DNSRecords))
	})
	for _, rec := range md.Status.DNSRecords {
		if !strings.Contains(rec.Name, "xn--bcher-kva.example.") || strings.Contains(rec.Name, "ü") {
			t.Errorf("%s record named %q, want the A-label form", rec.Purpose, rec.Name)
		}
	}

	ms, err := lc.RunMailserver(ctx, "idn", "mail", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mail server log:\n%s", ms.Logs())
		}
	})
	smtpHost, smtpPort, _ := strings.Cut(ms.Addrs["smtp"], ":")
	imapHost, imapPort, _ := strings.Cut(ms.Addrs["imaps"], ":")
	pyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(pyCtx, testutil.Program(t, "python3"), "-c", idnClient, smtpHost, smtpPort, imapHost, imapPort).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Subject: Grüße an Jörg") || !strings.Contains(string(out), "with UTF8SMTP") {
		t.Fatalf("smtplib to the alias and imaplib as JÖRG@bücher.example: %v\n%s", err, out)
	}
}
