package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/internal/names"
)

// credentialsGrace is how long the MailboxReconciler may take to generate a new Mailbox's
// password before the cluster reports it missing. It normally takes moments, and the Secret's
// creation triggers the next reconcile; reporting PasswordSecretMissing meanwhile would only
// cost every new Mailbox a second status write.
const credentialsGrace = time.Minute

// clusterMemo is what the operator remembers about one MailCluster between reconciles, so that a
// reconcile during a burst of changes costs little more than the changes themselves: the hash of
// every password Secret version it has seen, and the directory now in the Secrets. Nothing in it
// is needed for correctness; after a restart the directory Secrets refill it.
type clusterMemo struct {
	uid   types.UID
	fpKey []byte
	// hashes by the Secret version the password was read from; each reconcile keeps only the
	// entries it used.
	hashes map[secretVersion]hashedPassword
	// dirGeneration is the generation of the directory whose mailboxes, by address, are in
	// dirMailboxes.
	dirGeneration string
	dirMailboxes  map[string]dirspec.MailboxSpec
	// dirDomains are the domains that directory serves or lists as unavailable.
	dirDomains []string
}

type secretVersion struct {
	uid             types.UID
	resourceVersion string
	key             string
}

type hashedPassword struct{ hash, fingerprint string }

// memos holds one clusterMemo per MailCluster; the zero value is ready to use.
type memos struct {
	mu        sync.Mutex
	byCluster map[types.NamespacedName]*clusterMemo
}

// of returns the memo of mc, a fresh one when mc is new or was recreated under the same name.
// Reconciles of one cluster never run concurrently, so the memo itself needs no lock.
func (m *memos) of(mc *mailv1alpha1.MailCluster) *clusterMemo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byCluster == nil {
		m.byCluster = map[types.NamespacedName]*clusterMemo{}
	}
	key := types.NamespacedName{Namespace: mc.Namespace, Name: mc.Name}
	memo := m.byCluster[key]
	if memo == nil || memo.uid != mc.UID {
		memo = &clusterMemo{uid: mc.UID}
		m.byCluster[key] = memo
	}
	return memo
}

func (m *memos) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byCluster, key)
}

// awaitingPasswords are new Mailboxes whose generated password Secret does not exist yet: they
// stay out of the directory without a status change until recheck has passed.
type awaitingPasswords struct {
	names   map[string]bool
	recheck time.Duration
}

func (a *awaitingPasswords) add(mailbox string, wait time.Duration) {
	if a.names == nil {
		a.names = map[string]bool{}
	}
	a.names[mailbox] = true
	if a.recheck == 0 || wait < a.recheck {
		a.recheck = wait
	}
}

// hashJob is a password still to be hashed, for inputs[i].
type hashJob struct {
	i         int
	password  string
	generated bool
	version   secretVersion
}

// passwordResolver finds the password hashes of one reconcile: remembered for the Secret's
// version, taken from the directory when the fingerprint shows the password unchanged, or else
// queued for hashing.
type passwordResolver struct {
	r        *MailClusterReconciler
	ns       string
	memo     *clusterMemo
	fpKey    []byte
	previous map[string]dirspec.MailboxSpec
	used     map[secretVersion]hashedPassword
	jobs     []hashJob
	awaiting awaitingPasswords
}

// resolveMailboxes reads each mailbox's password and finds its hash (computing the new ones in
// parallel), and assigns shards.
func (r *MailClusterReconciler) resolveMailboxes(ctx context.Context, mc *mailv1alpha1.MailCluster, memo *clusterMemo,
	mailboxes []*mailv1alpha1.Mailbox, domains map[string]*mailv1alpha1.MailDomain, fpKey []byte) ([]builders.MailboxInput, awaitingPasswords, error) {
	if !bytes.Equal(memo.fpKey, fpKey) {
		memo.fpKey, memo.hashes = bytes.Clone(fpKey), nil
	}
	previous, err := r.directoryMailboxes(ctx, mc, memo)
	if err != nil {
		return nil, awaitingPasswords{}, err
	}
	pr := &passwordResolver{r: r, ns: mc.Namespace, memo: memo, fpKey: fpKey, previous: previous,
		used: make(map[secretVersion]hashedPassword, len(mailboxes))}
	inputs := make([]builders.MailboxInput, len(mailboxes))
	shards := make([]int, len(mailboxes))
	for i, mb := range mailboxes {
		in := &inputs[i]
		in.Mailbox = mb
		prev, inDirectory := previous[string(mb.Spec.Address)]
		switch {
		case mb.Status.Shard != nil:
			shards[i] = int(*mb.Status.Shard)
		case inDirectory:
			shards[i] = prev.Shard // its status write is still to come
		default:
			shards[i] = -1
		}
		if d := domains[addressDomain(mb.Spec.Address)]; d != nil {
			in.Quota = quotaBytes(mb.Spec.Quota, d.Spec.DefaultQuota)
		}
		pr.resolve(ctx, i, in)
	}
	builders.AssignShards(shards, int(ptr.Deref(mc.Spec.Replicas, 1)))
	for i := range inputs {
		inputs[i].Shard = shards[i]
	}
	if err := pr.hash(ctx, inputs, r.HashWorkers); err != nil {
		return nil, awaitingPasswords{}, err
	}
	memo.hashes = pr.used
	return inputs, pr.awaiting, nil
}

// resolve fills in's password hash (or the problem with its password), or queues it to be
// hashed.
func (pr *passwordResolver) resolve(ctx context.Context, i int, in *builders.MailboxInput) {
	mb := in.Mailbox
	prev, inDirectory := pr.previous[string(mb.Spec.Address)]
	secretName, key := passwordSecretName(mb)
	problem := func(reason, msg string) {
		// Logins stop, mail keeps arriving, and the last good hash waits for the password to
		// come back (unchanged, it needs no re-hashing).
		in.PasswordReason, in.PasswordProblem = reason, msg
		if inDirectory {
			in.PasswordHash, in.Fingerprint = prev.PasswordHash, prev.PasswordFingerprint
		}
	}
	var sec corev1.Secret
	// The cache's own object, not a copy per mailbox: only read here.
	err := pr.r.Get(ctx, types.NamespacedName{Namespace: pr.ns, Name: secretName}, &sec, client.UnsafeDisableDeepCopy)
	pw, hasKey := sec.Data[key]
	switch {
	case apierrors.IsNotFound(err):
		problem(mailv1alpha1.ReasonSecretMissing, fmt.Sprintf("Secret %q not found in namespace %q", secretName, pr.ns))
		wait := credentialsGrace - time.Since(mb.CreationTimestamp.Time)
		if mb.Spec.PasswordSecretRef == nil && wait > 0 && !meta.IsStatusConditionTrue(mb.Status.Conditions, mailv1alpha1.ConditionReady) {
			pr.awaiting.add(mb.Name, wait)
		}
	case err != nil:
		problem(mailv1alpha1.ReasonSecretMissing, fmt.Sprintf("reading Secret %q: %v", secretName, err))
	case !hasKey:
		problem(mailv1alpha1.ReasonSecretMissing, fmt.Sprintf("Secret %q has no key %q", secretName, key))
	case invalidPassword(pw) != "":
		problem(mailv1alpha1.ReasonPasswordInvalid, fmt.Sprintf("the password in Secret %q, key %q, %s", secretName, key, invalidPassword(pw)))
	default:
		v := secretVersion{uid: sec.UID, resourceVersion: sec.ResourceVersion, key: key}
		if h, ok := pr.memo.hashes[v]; ok {
			in.PasswordHash, in.Fingerprint = h.hash, h.fingerprint
			pr.used[v] = h
			return
		}
		pw := string(pw)
		in.Fingerprint = fingerprint(pr.fpKey, pw)
		if inDirectory && prev.PasswordFingerprint == in.Fingerprint && prev.PasswordHash != "" {
			in.PasswordHash = prev.PasswordHash
			pr.used[v] = hashedPassword{hash: in.PasswordHash, fingerprint: in.Fingerprint}
			return
		}
		pr.jobs = append(pr.jobs, hashJob{i: i, password: pw, generated: isGeneratedPassword(&sec, pw), version: v})
	}
}

// hash computes the queued hashes with workers goroutines (0: 2) and remembers them. It stops
// early when ctx ends: thousands of hashes must not hold up the operator's shutdown.
func (pr *passwordResolver) hash(ctx context.Context, inputs []builders.MailboxInput, workers int) error {
	if workers <= 0 {
		workers = 2
	}
	ch := make(chan hashJob)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				hash := passwordhash.Hash
				if j.generated {
					hash = passwordhash.HashGenerated
				}
				h, err := hash(j.password)
				if err != nil {
					inputs[j.i].PasswordReason = mailv1alpha1.ReasonPasswordInvalid
					inputs[j.i].PasswordProblem = "hashing the password: " + err.Error()
					inputs[j.i].Fingerprint = ""
				} else {
					inputs[j.i].PasswordHash = h
				}
			}
		}()
	}
feed:
	for _, j := range pr.jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, j := range pr.jobs {
		if in := inputs[j.i]; in.PasswordHash != "" {
			pr.used[j.version] = hashedPassword{hash: in.PasswordHash, fingerprint: in.Fingerprint}
		}
	}
	return nil
}

// invalidPassword says what makes a password in a Secret unusable, or "" when it is fine. The
// usual control character there is the newline `echo pw > file` leaves.
func invalidPassword(pw []byte) string {
	why := passwordhash.Unusable(pw)
	if strings.HasPrefix(why, "contains the control character") {
		why += " (a trailing newline? write the Secret with printf or --from-literal)"
	}
	return why
}

// isGeneratedPassword reports whether password is still the one the operator generated into
// sec: random, so the cheap hash protects it as well as the full-strength one would.
func isGeneratedPassword(sec *corev1.Secret, password string) bool {
	want := sec.Annotations[names.AnnotationGeneratedPasswordSHA256]
	return want != "" && want == passwordDigest(password)
}

// directoryMailboxes returns the mailboxes of the directory now in the cluster's Secrets, by
// address; a missing or partial directory is empty. It parses the Secrets only when they hold
// another generation than the one remembered.
func (r *MailClusterReconciler) directoryMailboxes(ctx context.Context, mc *mailv1alpha1.MailCluster, memo *clusterMemo) (map[string]dirspec.MailboxSpec, error) {
	out := map[string]dirspec.MailboxSpec{}
	get := func(i int) (map[string][]byte, error) {
		var s corev1.Secret
		err := r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: dirsecret.SecretName(mc.Name, i)}, &s, client.UnsafeDisableDeepCopy)
		return s.Data, err
	}
	first, err := get(0)
	if err != nil {
		return out, client.IgnoreNotFound(err)
	}
	generation := string(first[dirsecret.KeyGeneration])
	if memo.dirMailboxes != nil && memo.dirGeneration == generation {
		return memo.dirMailboxes, nil
	}
	// A directory caught mid-write (a crash of the operator that wrote it) has whole domain
	// lists in its first part still: the unavailable domains must survive it.
	if memo.dirDomains == nil {
		memo.dirDomains = firstPartDomains(first)
	}
	n, err := dirsecret.PartCount(first)
	if err != nil {
		return out, nil
	}
	parts := []map[string][]byte{first}
	for i := 1; i < n; i++ {
		data, err := get(i)
		if err != nil {
			return out, client.IgnoreNotFound(err)
		}
		parts = append(parts, data)
	}
	spec, err := dirsecret.Assemble(parts)
	if err != nil {
		return out, nil
	}
	memo.remember(generation, spec)
	return memo.dirMailboxes, nil
}

// firstPartDomains are the domains, served or unavailable, in the first part of a directory.
func firstPartDomains(first map[string][]byte) []string {
	var spec dirspec.Spec
	if json.Unmarshal(first[dirsecret.KeyDirectory], &spec) != nil {
		return nil
	}
	out := slices.Clone(spec.UnavailableDomains)
	for _, d := range spec.Domains {
		out = append(out, d.Name)
	}
	return out
}

// remember records the directory of generation as the one in the Secrets.
func (memo *clusterMemo) remember(generation string, spec *dirspec.Spec) {
	memo.dirGeneration = generation
	memo.dirDomains = slices.Clone(spec.UnavailableDomains)
	for _, d := range spec.Domains {
		memo.dirDomains = append(memo.dirDomains, d.Name)
	}
	memo.dirMailboxes = make(map[string]dirspec.MailboxSpec, len(spec.Mailboxes))
	for _, mb := range spec.Mailboxes {
		memo.dirMailboxes[mb.Address] = mb
	}
}
