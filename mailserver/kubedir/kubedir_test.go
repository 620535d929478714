package kubedir

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/test/testenv"
)

const cluster = "mail"

// partBytes is small enough that a few dozen mailboxes need several parts.
const partBytes = 4 << 10

func validateHash(h string) error {
	if !strings.HasPrefix(h, "$argon2id$") {
		return errors.New("not argon2id")
	}
	return nil
}

// spec is a directory whose every mailbox carries gen as display name, so a directory
// assembled from two generations is recognisable.
func spec(gen string, mailboxes int) *dirspec.Spec {
	s := &dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "example.com"}}}
	for i := range mailboxes {
		s.Mailboxes = append(s.Mailboxes, dirspec.MailboxSpec{Address: fmt.Sprintf("u%03d@example.com", i),
			DisplayName: gen, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("s", 22) + "$" + strings.Repeat("h", 43)})
	}
	return s
}

// describe says which generation a directory is and how many mailboxes it has, or "mixed".
func describe(d *directory.Directory) string {
	gens := map[string]bool{}
	mbs := d.Mailboxes()
	for _, mb := range mbs {
		gens[mb.DisplayName] = true
	}
	if len(gens) != 1 {
		return fmt.Sprintf("mixed %v", gens)
	}
	return fmt.Sprintf("%s/%d", mbs[0].DisplayName, len(mbs))
}

// recorder keeps what the source reported.
type recorder struct {
	mu       sync.Mutex
	reloads  []string
	failures []error
	outcomes []seen
}

// seen is one look at the parts and the directory in force after it.
type seen struct {
	outcome
	inForce string
}

func (r *recorder) Reloaded(d *directory.Directory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloads = append(r.reloads, describe(d))
}

func (r *recorder) Failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, err)
}

func (r *recorder) synced(o outcome, live *directory.Live) {
	s := seen{outcome: o, inForce: "not loaded"}
	if live.Loaded() {
		s.inForce = describe(live.Load())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, s)
}

func (r *recorder) snapshot() (reloads []string, failures []error, outcomes []seen) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reloads...), append([]error(nil), r.failures...), append([]seen(nil), r.outcomes...)
}

// fixture is one namespace of the shared control plane, with the directory Secrets in it.
type fixture struct {
	t   *testing.T
	env *testenv.Env
	cs  kubernetes.Interface
	ns  string
}

var namespaces atomic.Int32

func newFixture(t *testing.T, env *testenv.Env) *fixture {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, env: env, cs: cs, ns: fmt.Sprintf("kubedir-%d", namespaces.Add(1))}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

// split is the directory of gen in parts, and checks how many parts it takes.
func (f *fixture) split(gen string, mailboxes, wantParts int) []dirsecret.Part {
	f.t.Helper()
	parts, err := dirsecret.Split(cluster, spec(gen, mailboxes), gen, partBytes)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(parts) != wantParts {
		f.t.Fatalf("%d mailboxes took %d parts, want %d", mailboxes, len(parts), wantParts)
	}
	return parts
}

// write creates or replaces the parts' Secrets in the order given.
func (f *fixture) write(parts ...dirsecret.Part) {
	f.t.Helper()
	ctx := context.Background()
	secrets := f.cs.CoreV1().Secrets(f.ns)
	for _, p := range parts {
		s, err := secrets.Get(ctx, p.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Data: p.Data}, metav1.CreateOptions{})
		case err == nil:
			s.Data = p.Data
			_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
		}
		if err != nil {
			f.t.Fatalf("writing %s: %v", p.Name, err)
		}
	}
}

// writeUpdate writes parts as the operator does: the others first, then the first.
func (f *fixture) writeUpdate(parts []dirsecret.Part) {
	f.t.Helper()
	f.write(parts[1:]...)
	f.write(parts[0])
}

func (f *fixture) delete(name string) {
	f.t.Helper()
	if err := f.cs.CoreV1().Secrets(f.ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		f.t.Fatalf("deleting %s: %v", name, err)
	}
}

// touch changes an annotation only, which makes the source look at the parts again.
func (f *fixture) touch(name string) {
	f.t.Helper()
	ctx := context.Background()
	s, err := f.cs.CoreV1().Secrets(f.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations["touched"] = time.Now().String()
	if _, err := f.cs.CoreV1().Secrets(f.ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// run starts src until the test ends.
func (f *fixture) run(src *Source) (*directory.Live, *recorder) {
	f.t.Helper()
	rec := &recorder{}
	live := &directory.Live{}
	src.onSync = func(o outcome) { rec.synced(o, live) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, live, rec) }()
	f.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			f.t.Error("Run did not return after its context ended")
		}
	})
	return live, rec
}

// start runs a source for the fixture's namespace as the admin.
func (f *fixture) start() (*directory.Live, *recorder) {
	f.t.Helper()
	return f.startAs(f.env.Config, stuckAfter)
}

func (f *fixture) startAs(rc *rest.Config, stuck time.Duration) (*directory.Live, *recorder) {
	f.t.Helper()
	src, err := newSource(rc, f.ns, dirsecret.SecretName(cluster, 0), validateHash, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	src.stuckAfter = stuck
	return f.run(src)
}

// looks is how long a test waits for the source to take a change up.
var looks = testutil.Poll{Within: 5 * time.Second}

// waitFor waits until want is in force, and the source is done with the look that put it there.
func waitFor(t *testing.T, live *directory.Live, rec *recorder, want string) {
	t.Helper()
	looks.Eventually(t, "the directory in force to be "+want, func() bool {
		if !live.Loaded() || describe(live.Load()) != want {
			return false
		}
		_, _, outs := rec.snapshot()
		for _, o := range outs {
			if o.loaded && o.inForce == want {
				return true
			}
		}
		return false
	})
}

// waitOutcome waits until a look at the parts after the first `after` ones matches.
func waitOutcome(t *testing.T, rec *recorder, after int, what string, match func(seen) bool) {
	t.Helper()
	looks.Eventually(t, what, func() bool {
		_, _, outs := rec.snapshot()
		for _, o := range outs[min(after, len(outs)):] {
			if match(o) {
				return true
			}
		}
		return false
	})
}

func noFailures(t *testing.T, rec *recorder) {
	t.Helper()
	if _, failures, _ := rec.snapshot(); len(failures) > 0 {
		t.Fatalf("reported failures: %v", failures)
	}
}

func noMixed(t *testing.T, rec *recorder) {
	t.Helper()
	reloads, _, _ := rec.snapshot()
	for _, r := range reloads {
		if strings.HasPrefix(r, "mixed") {
			t.Fatalf("a directory assembled from two generations was put in force: %v", reloads)
		}
	}
}

// sourceTests are TestSource's subtests, each in its own namespace of one shared API server.
type sourceTests struct {
	env *testenv.Env
}

func TestSource(t *testing.T) {
	s := sourceTests{env: testenv.Start(t)}

	// Sequential: it sets KUBECONFIG, as a server started by hand would have it.
	t.Run("KubeconfigAndUpdateLatency", s.kubeconfigAndUpdateLatency)
	t.Run("GrowsAndShrinks", s.growsAndShrinks)
	t.Run("HalfWrittenUpdateIsNeverMixed", s.halfWrittenUpdateIsNeverMixed)
	t.Run("StuckUpdateIsReportedOnce", s.stuckUpdateIsReportedOnce)
	t.Run("BrokenDirectoryKeepsLastGood", s.brokenDirectoryKeepsLastGood)
	t.Run("MissingSecrets", s.missingSecrets)
	t.Run("LeastPrivilege", s.leastPrivilege)
}

func (s sourceTests) kubeconfigAndUpdateLatency(t *testing.T) {
	env := s.env
	f := newFixture(t, env)
	t.Setenv("KUBECONFIG", env.Kubeconfig)
	f.write(f.split("g1", 40, 2)...)
	src, err := New(&config.KubernetesDirectory{Namespace: f.ns, Secret: "mail-directory"}, validateHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	live, rec := f.run(src.(*Source))
	waitFor(t, live, rec, "g1/40")

	start := time.Now()
	f.writeUpdate(f.split("g2", 41, 2))
	waitFor(t, live, rec, "g2/41")
	t.Logf("update in force %s after the first write", time.Since(start))
	noFailures(t, rec)
	noMixed(t, rec)
}

func (s sourceTests) growsAndShrinks(t *testing.T) {
	env := s.env
	t.Parallel()
	f := newFixture(t, env)
	f.write(f.split("g1", 10, 1)...)
	live, rec := f.start()
	waitFor(t, live, rec, "g1/10")

	f.writeUpdate(f.split("g2", 60, 3))
	waitFor(t, live, rec, "g2/60")

	f.write(f.split("g3", 10, 1)...)
	waitFor(t, live, rec, "g3/10")
	// The operator removes the parts no longer announced; that is no change to the directory.
	// Parts 1 and 2 are no longer watched, so the next look at the parts is the touch's.
	before, _, outs := rec.snapshot()
	f.delete(dirsecret.SecretName(cluster, 2))
	f.delete(dirsecret.SecretName(cluster, 1))
	f.touch(dirsecret.SecretName(cluster, 0))
	waitOutcome(t, rec, len(outs), "a look at the parts after the first was touched", func(seen) bool { return true })
	after, _, _ := rec.snapshot()
	if len(after) != len(before) || describe(live.Load()) != "g3/10" {
		t.Fatalf("deleting parts no longer announced changed the directory: reloads %v then %v", before, after)
	}
	noFailures(t, rec)
	noMixed(t, rec)
}

func (s sourceTests) halfWrittenUpdateIsNeverMixed(t *testing.T) {
	env := s.env
	t.Parallel()
	f := newFixture(t, env)
	f.write(f.split("g1", 60, 3)...)
	live, rec := f.start()
	waitFor(t, live, rec, "g1/60")

	g2 := f.split("g2", 61, 3)
	_, _, outs := rec.snapshot()
	f.write(g2[1]) // the first part still says g1
	waitOutcome(t, rec, len(outs), "the source to see part 1 at g2", func(o seen) bool {
		return o.waiting != nil && strings.Contains(o.waiting.Error(), `generation "g2", the first part "g1"`)
	})
	_, _, outs = rec.snapshot()
	f.write(g2[0]) // part 2 still says g1
	waitOutcome(t, rec, len(outs), "the source to see the first part at g2 with part 2 at g1", func(o seen) bool {
		return o.waiting != nil && strings.Contains(o.waiting.Error(), `mail-directory-2 has generation "g1", the first part "g2"`)
	})
	if got := describe(live.Load()); got != "g1/60" {
		t.Fatalf("half-written update: directory in force is %s, want g1/60 until every part is at g2", got)
	}
	f.write(g2[2])
	waitFor(t, live, rec, "g2/61")
	noFailures(t, rec)
	noMixed(t, rec)
}

func (s sourceTests) stuckUpdateIsReportedOnce(t *testing.T) {
	env := s.env
	t.Parallel()
	f := newFixture(t, env)
	f.write(f.split("g1", 40, 2)...)
	live, rec := f.startAs(env.Config, 300*time.Millisecond)
	waitFor(t, live, rec, "g1/40")

	g2 := f.split("g2", 41, 2)
	f.write(g2[0]) // part 1 is never written
	waitOutcome(t, rec, 0, "an update stuck for longer than stuckAfter reported", func(o seen) bool { return o.failed != nil })
	_, _, outs := rec.snapshot()
	f.touch(g2[1].Name)
	waitOutcome(t, rec, len(outs), "a look at the parts after part 1 was touched", func(o seen) bool { return o.waiting != nil })
	_, failures, _ := rec.snapshot()
	if len(failures) != 1 || !strings.Contains(failures[0].Error(), "stuck") {
		t.Fatalf("a stuck update was reported as %v, want once", failures)
	}
	if got := describe(live.Load()); got != "g1/40" {
		t.Fatalf("during a stuck update the directory in force is %s, want g1/40", got)
	}
	f.write(g2[1])
	waitFor(t, live, rec, "g2/41")
	noMixed(t, rec)
}

func (s sourceTests) brokenDirectoryKeepsLastGood(t *testing.T) {
	env := s.env
	t.Parallel()
	f := newFixture(t, env)
	f.write(f.split("g1", 40, 2)...)
	live, rec := f.start()
	waitFor(t, live, rec, "g1/40")

	broken := f.split("g2", 40, 2)
	broken[0].Data[dirsecret.KeyDirectory] = []byte(`{"domains": [`)
	f.writeUpdate(broken)
	waitOutcome(t, rec, 0, "a broken directory.json reported", func(o seen) bool { return o.failed != nil })
	_, _, outs := rec.snapshot()
	f.touch(broken[0].Name)
	waitOutcome(t, rec, len(outs), "a look at the parts after the first was touched", func(seen) bool { return true })
	_, failures, _ := rec.snapshot()
	if len(failures) != 1 || !strings.Contains(failures[0].Error(), `generation "g2"`) {
		t.Fatalf("a broken directory was reported as %v, want once, naming generation g2", failures)
	}
	if got := describe(live.Load()); got != "g1/40" {
		t.Fatalf("after a broken update the directory in force is %s, want g1/40", got)
	}

	// A directory that parses but does not validate is rejected the same way.
	badHash := spec("g3", 40)
	badHash.Mailboxes[39].PasswordHash = "plain-text"
	parts, err := dirsecret.Split(cluster, badHash, "g3", partBytes)
	if err != nil {
		t.Fatal(err)
	}
	f.writeUpdate(parts)
	looks.Eventually(t, "a mailbox with a bad hash reported", func() bool {
		_, failures, _ := rec.snapshot()
		return len(failures) == 2 && strings.Contains(failures[1].Error(), "not argon2id")
	})
	if got := describe(live.Load()); got != "g1/40" {
		t.Fatalf("after an invalid update the directory in force is %s, want g1/40", got)
	}

	f.writeUpdate(f.split("g4", 40, 2))
	waitFor(t, live, rec, "g4/40")
	if _, failures, _ := rec.snapshot(); len(failures) != 2 {
		t.Fatalf("failures %v, want the two rejected updates only", failures)
	}
}

func (s sourceTests) missingSecrets(t *testing.T) {
	env := s.env
	t.Parallel()
	f := newFixture(t, env)
	live, rec := f.start()
	looks.Eventually(t, "a missing first Secret reported", func() bool {
		_, failures, _ := rec.snapshot()
		return len(failures) > 0
	})
	if live.Loaded() {
		t.Fatal("the directory counts as loaded without any Secret")
	}
	f.writeUpdate(f.split("g1", 40, 2))
	waitFor(t, live, rec, "g1/40")
	_, failures, outs := rec.snapshot()
	if len(failures) != 1 || !strings.Contains(failures[0].Error(), "mail-directory not found") {
		t.Fatalf("a missing first Secret was reported as %v, want once", failures)
	}

	// Deleting Secrets keeps the last good directory in force.
	f.delete(dirsecret.SecretName(cluster, 1))
	waitOutcome(t, rec, len(outs), "the source to see part 1 go", func(o seen) bool {
		return o.waiting != nil && strings.Contains(o.waiting.Error(), "not found")
	})
	f.delete(dirsecret.SecretName(cluster, 0))
	looks.Eventually(t, "deleting the first Secret reported", func() bool {
		_, failures, _ := rec.snapshot()
		return len(failures) == 2
	})
	if !live.Loaded() || describe(live.Load()) != "g1/40" {
		t.Fatal("deleting the directory Secrets blanked the directory")
	}
	// Recreating the same content puts it back in force (and clears the failure).
	f.writeUpdate(f.split("g1", 40, 2))
	looks.Eventually(t, "recreated Secrets taken up", func() bool {
		reloads, _, _ := rec.snapshot()
		return len(reloads) == 2 && reloads[1] == "g1/40"
	})
}

func (s sourceTests) leastPrivilege(t *testing.T) {
	env := s.env
	t.Parallel()
	f := newFixture(t, env)
	ctx := context.Background()
	names := []string{dirsecret.SecretName(cluster, 0), dirsecret.SecretName(cluster, 1), dirsecret.SecretName(cluster, 2)}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "mailserver"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}, ResourceNames: names,
	}}}
	if _, err := f.cs.RbacV1().Roles(f.ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := "mailserver-" + f.ns
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "mailserver"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "mailserver"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
	if _, err := f.cs.RbacV1().RoleBindings(f.ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	userConfig := env.UserConfig(t, user, nil)

	// The Role lets the user see the directory's parts and nothing else.
	f.write(dirsecret.Part{Name: "unrelated", Data: map[string][]byte{"password": []byte("hunter2")}})
	f.write(f.split("g1", 10, 1)...)
	cs, err := kubernetes.NewForConfig(userConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(f.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing every Secret as the mail server: err = %v, want Forbidden", err)
	}
	if _, err := cs.CoreV1().Secrets(f.ns).Get(ctx, "unrelated", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("reading another Secret as the mail server: err = %v, want Forbidden", err)
	}

	live, rec := f.startAs(userConfig, stuckAfter)
	waitFor(t, live, rec, "g1/10")
	f.writeUpdate(f.split("g2", 60, 3))
	waitFor(t, live, rec, "g2/60")
	noFailures(t, rec)

	// A part the Role does not name is reported, not silently waited for.
	f.writeUpdate(f.split("g3", 90, 4))
	looks.Eventually(t, "a part the Role does not allow reported", func() bool {
		_, failures, _ := rec.snapshot()
		return len(failures) > 0 && apierrors.IsForbidden(failures[0])
	})
	if got := describe(live.Load()); got != "g2/60" {
		t.Fatalf("with a part out of reach the directory in force is %s, want g2/60", got)
	}
}
