package plugin_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
)

// TestPlugin starts one control plane and runs every command against it; each subtest works in
// a namespace of its own.
func TestPlugin(t *testing.T) {
	p := startPlugin(t)
	t.Run("status", func(t *testing.T) { testStatus(t, p) })
	t.Run("dns", func(t *testing.T) { testDNS(t, p) })
	t.Run("passwd", func(t *testing.T) { testPasswd(t, p) })
	t.Run("passwd on a terminal", func(t *testing.T) { testPasswdOnTerminal(t, p) })
	t.Run("errors", func(t *testing.T) { testErrors(t, p) })
}

func testStatus(t *testing.T, p *plugin) {
	c := p.env.Client
	createNamespace(t, c, "status")
	mc := &mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "status", Name: "mail"},
		Spec: mailv1alpha1.MailClusterSpec{Hostname: "mail.example.com", Replicas: ptr.To(int32(2))}}
	alice := mailbox("status", "alice", "alice@example.com")
	bob := mailbox("status", "bob", "bob@example.com")
	carol := mailbox("status", "carol", "carol@example.org")
	team := &mailv1alpha1.MailAlias{ObjectMeta: metav1.ObjectMeta{Namespace: "status", Name: "team"},
		Spec: mailv1alpha1.MailAliasSpec{Address: "team@example.org", Members: []mailv1alpha1.EmailAddress{"alice@example.com"}}}
	create(t, c, mc, alice, bob, carol, team)

	mc.Status = mailv1alpha1.MailClusterStatus{Replicas: 2, ReadyReplicas: 1, Domains: 2, Mailboxes: 3, Conditions: []metav1.Condition{
		condition(mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonReplicasUnavailable, "1 of 2 mail servers serve"),
		condition(mailv1alpha1.ConditionDegraded, metav1.ConditionTrue, mailv1alpha1.ReasonReplicasUnavailable, "replica mail-1 is not ready"),
		condition(mailv1alpha1.ConditionSelfSignedCertificate, metav1.ConditionTrue, "NoTLSConfigured", "self-signed")}}
	alice.Status = mailv1alpha1.MailboxStatus{Login: mailv1alpha1.LoginDisabled, Conditions: []metav1.Condition{
		condition(mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonSecretMissing, "secret alice-pw not found")}}
	bob.Status = mailv1alpha1.MailboxStatus{Login: mailv1alpha1.LoginEnabled, Conditions: []metav1.Condition{
		condition(mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled, "served")}}
	carol.Status = mailv1alpha1.MailboxStatus{Conditions: []metav1.Condition{
		condition(mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonDomainNotFound, "no MailDomain example.org")}}
	team.Status = mailv1alpha1.MailAliasStatus{Conditions: []metav1.Condition{
		condition(mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonDomainNotFound, "no MailDomain example.org")}}
	for _, o := range []client.Object{mc, alice, bob, carol, team} {
		setStatus(t, c, o)
	}

	r := p.run(t, "", "status", "-n", "status")
	if r.code != 0 {
		t.Fatalf("status exited %d: %s", r.code, r.stderr)
	}
	row := lineWith(t, r.stdout, "mail.example.com")
	for _, want := range []string{"mail", "1/2", "False (ReplicasUnavailable)", "True (ReplicasUnavailable)", " 2 ", " 3 ", "self-signed"} {
		if !strings.Contains(row, want) {
			t.Errorf("cluster row %q lacks %q", row, want)
		}
	}
	for _, want := range []string{
		"mail: not Ready (ReplicasUnavailable): 1 of 2 mail servers serve",
		"mail: Degraded (ReplicasUnavailable): replica mail-1 is not ready",
		"1 Mailbox LoginDisabled: alice (SecretMissing)",
		"1 Mailbox NotReady: carol (DomainNotFound)",
		"1 MailAlias NotReady: team (DomainNotFound)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks the line %q", want)
		}
	}
	if strings.Contains(r.stdout, "bob") {
		t.Errorf("status names the Ready mailbox bob:\n%s", r.stdout)
	}

	// The kubeconfig context's namespace is the default, and -o json is the same report.
	r = p.runWith(t, p.kubeconfigInNamespace(t, "status"), "", "status", "-o", "json")
	var report struct {
		Clusters []struct {
			Hostname      string `json:"hostname"`
			ReadyReplicas int32  `json:"readyReplicas"`
			SelfSigned    bool   `json:"selfSignedCertificate"`
		} `json:"clusters"`
		Problems []struct {
			Kind, State string
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, r.stdout)
	}
	if len(report.Clusters) != 1 || report.Clusters[0].Hostname != "mail.example.com" || report.Clusters[0].ReadyReplicas != 1 ||
		!report.Clusters[0].SelfSigned || len(report.Problems) != 3 {
		t.Errorf("status -o json in the context's namespace: %+v", report)
	}

	// -A names the namespace; the empty default namespace has nothing.
	r = p.run(t, "", "status", "-A")
	if !strings.Contains(r.stdout, "status/alice (SecretMissing)") || !strings.Contains(lineWith(t, r.stdout, "mail.example.com"), "status") {
		t.Errorf("status -A does not name the namespaces:\n%s", r.stdout)
	}
	if r = p.run(t, "", "status"); !strings.Contains(r.stdout, "No MailClusters found.") {
		t.Errorf("status in the empty namespace default:\n%s", r.stdout)
	}
}

func mailbox(ns, name, address string) *mailv1alpha1.Mailbox {
	return &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: mailv1alpha1.MailboxSpec{Address: mailv1alpha1.EmailAddress(address)}}
}

// lineWith returns the first line of out containing s.
func lineWith(t *testing.T, out, s string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	t.Errorf("no line with %q in:\n%s", s, out)
	return ""
}

// dkimKey is longer than one TXT string (255 bytes), as every 2048-bit RSA key is.
var dkimKey = "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", 12)

func testDNS(t *testing.T, p *plugin) {
	c := p.env.Client
	createNamespace(t, c, "dns")
	md := &mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: "dns", Name: "example"},
		Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com", ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"}}}
	create(t, c, md)
	md.Status.DNSRecords = []mailv1alpha1.DNSRecord{
		{Purpose: "mx", Type: "MX", Name: "example.com.", Priority: ptr.To(int32(10)), Value: "mail.example.com."},
		{Purpose: "host", Type: "A", Name: "mail.example.com.", Value: "192.0.2.25"},
		{Purpose: "spf", Type: "TXT", Name: "example.com.", Value: "v=spf1 mx -all", Note: "allows the MX host's addresses"},
		{Purpose: "dkim", Type: "TXT", Name: "mail._domainkey.example.com.", Value: dkimKey},
		{Purpose: "dmarc", Type: "TXT", Name: "_dmarc.example.com.", Value: "v=DMARC1; p=none"},
	}
	setStatus(t, c, md)

	r := p.run(t, "", "dns", "example.com", "-n", "dns")
	want := "example.com.\t3600\tIN\tMX\t10 mail.example.com.\n" +
		"mail.example.com.\t3600\tIN\tA\t192.0.2.25\n" +
		"; spf: allows the MX host's addresses\n" +
		"example.com.\t3600\tIN\tTXT\t\"v=spf1 mx -all\"\n" +
		"mail._domainkey.example.com.\t3600\tIN\tTXT\t\"" + dkimKey[:255] + "\" \"" + dkimKey[255:] + "\"\n" +
		"_dmarc.example.com.\t3600\tIN\tTXT\t\"v=DMARC1; p=none\"\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("dns example.com printed\n%s\nwant\n%s", r.stdout, want)
	}
	if r = p.run(t, "", "dns", "example", "-A", "--ttl", "300"); r.code != 0 || !strings.HasPrefix(r.stdout, "example.com.\t300\tIN\tMX") {
		t.Errorf("dns by object name with -A and --ttl 300: exit %d\n%s", r.code, r.stdout)
	}

	srv, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Add("example.com. 60 IN MX 10 mail.example.com.", "mail.example.com. 60 IN A 192.0.2.99"); err != nil {
		t.Fatal(err)
	}
	srv.AddTXT("example.com.", "v=spf1 mx -all")
	srv.AddTXT("mail._domainkey.example.com.", dkimKey)

	r = p.run(t, "", "dns", "example.com", "-n", "dns", "--check", "--resolver", srv.Addr)
	if r.code == 0 || !strings.Contains(r.stderr, "2 of 5 records are not published as wanted") {
		t.Errorf("dns --check with a record missing and one different: exit %d, stderr %q", r.code, r.stderr)
	}
	results := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(l)
		results[f[1]+" "+f[4]] = f[0]
	}
	wantResults := map[string]string{"example.com. MX": "match", "mail.example.com. A": "different",
		"example.com. TXT": "match", "mail._domainkey.example.com. TXT": "match", "_dmarc.example.com. TXT": "missing"}
	for k, v := range wantResults {
		if results[k] != v {
			t.Errorf("dns --check: %s is %q, want %q", k, results[k], v)
		}
	}
	if !strings.Contains(lineWith(t, r.stdout, "192.0.2.25"), "found: 192.0.2.99") {
		t.Errorf("dns --check does not say what the resolver has for the different record")
	}
	if !srv.Asked("_dmarc.example.com.") {
		t.Errorf("the resolver given with --resolver was not asked")
	}

	// A resolver that fails is an error, not a missing record.
	srv.Fail("_dmarc.example.com.", true)
	r = p.run(t, "", "dns", "example.com", "-n", "dns", "--check", "--resolver", srv.Addr)
	if line := lineWith(t, r.stdout, "_dmarc"); r.code == 0 || !strings.HasPrefix(line, "error") || !strings.Contains(line, "SERVFAIL") ||
		!strings.Contains(r.stderr, "1 of 5 records could not be checked") {
		t.Errorf("dns --check with a failing resolver: exit %d, line %q; want error ... SERVFAIL", r.code, line)
	}
	srv.Fail("_dmarc.example.com.", false)

	// Once everything is published the check passes.
	if err := srv.Add("mail.example.com. 60 IN A 192.0.2.25"); err != nil {
		t.Fatal(err)
	}
	srv.AddTXT("_dmarc.example.com.", "v=DMARC1; p=none")
	r = p.run(t, "", "dns", "example.com", "-n", "dns", "--check", "--resolver", srv.Addr)
	if r.code != 0 || strings.Count(r.stdout, "match") != 5 {
		t.Errorf("dns --check with every record published: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func testPasswd(t *testing.T, p *plugin) {
	c := p.env.Client
	createNamespace(t, c, "passwd")
	alice := mailbox("passwd", "alice", "alice@example.com")
	alice.Spec.PasswordSecretRef = &mailv1alpha1.PasswordSecretRef{Name: "alice-pw", Key: "secret"}
	bob := mailbox("passwd", "bob", "bob@example.com")
	create(t, c, alice, bob,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "passwd", Name: "alice-pw"}, Data: map[string][]byte{"secret": []byte("old")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "passwd", Name: "bob-credentials",
			Annotations: map[string]string{names.AnnotationGeneratedPasswordSHA256: "abc"}},
			Data: map[string][]byte{"password": []byte("generated"), "username": []byte("bob@example.com")}})

	r := p.run(t, "Corr3ct horse\n", "passwd", "alice", "-n", "passwd", "--password-stdin")
	if r.code != 0 {
		t.Fatalf("passwd alice exited %d: %s", r.code, r.stderr)
	}
	if got := secretData(t, c, "alice-pw")["secret"]; string(got) != "Corr3ct horse" {
		t.Errorf("alice-pw key secret holds %q, want the new password without the newline", got)
	}
	if !strings.Contains(r.stdout, "secret/alice-pw") || strings.Contains(r.stdout+r.stderr, "Corr3ct") {
		t.Errorf("passwd output should name the Secret and never the password:\n%s%s", r.stdout, r.stderr)
	}

	// By address, into the generated Secret: the annotation goes so the operator hashes at full strength.
	r = p.run(t, "bätterie staple\r\n", "passwd", "bob@example.com", "-n", "passwd", "--password-stdin")
	var sec corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "passwd", Name: "bob-credentials"}, &sec); err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || string(sec.Data["password"]) != "bätterie staple" || string(sec.Data["username"]) != "bob@example.com" {
		t.Errorf("bob-credentials after passwd: exit %d, data %q", r.code, sec.Data)
	}
	if _, ok := sec.Annotations[names.AnnotationGeneratedPasswordSHA256]; ok {
		t.Errorf("bob-credentials still has %s", names.AnnotationGeneratedPasswordSHA256)
	}

	// A referenced Secret that does not exist yet is created; a generated one is the operator's to create.
	carol := mailbox("passwd", "carol", "carol@example.com")
	carol.Spec.PasswordSecretRef = &mailv1alpha1.PasswordSecretRef{Name: "carol-pw"}
	create(t, c, carol, mailbox("passwd", "dave", "dave@example.com"))
	if r = p.run(t, "s3cret-carol\n", "passwd", "carol", "-n", "passwd", "--password-stdin"); r.code != 0 ||
		string(secretData(t, c, "carol-pw")["password"]) != "s3cret-carol" {
		t.Errorf("passwd for a Mailbox whose referenced Secret is missing: exit %d, %s", r.code, r.stderr)
	}
	if r = p.run(t, "s3cret-dave\n", "passwd", "dave", "-n", "passwd", "--password-stdin"); r.code == 0 ||
		!strings.Contains(r.stderr, "operator generates it") {
		t.Errorf("passwd before the operator generated dave-credentials: exit %d, %q", r.code, r.stderr)
	}

	for _, bad := range []struct{ stdin, says string }{
		{"\n", "is empty"},
		{"tab\there\n", "control character U+0009"},
		{"\xff\xfeabc\n", "not valid UTF-8"},
	} {
		r = p.run(t, bad.stdin, "passwd", "alice", "-n", "passwd", "--password-stdin")
		if r.code == 0 || !strings.Contains(r.stderr, "refusing the new password") || !strings.Contains(r.stderr, bad.says) {
			t.Errorf("passwd with %q: exit %d, stderr %q; want a refusal that says %q", bad.stdin, r.code, r.stderr, bad.says)
		}
	}
	if got := secretData(t, c, "alice-pw")["secret"]; string(got) != "Corr3ct horse" {
		t.Errorf("a refused password changed alice-pw to %q", got)
	}
	if r = p.run(t, "", "passwd", "alice", "-n", "passwd"); r.code == 0 || !strings.Contains(r.stderr, "--password-stdin") {
		t.Errorf("passwd without a terminal should point to --password-stdin: %q", r.stderr)
	}
}

func secretData(t *testing.T, c client.Client, name string) map[string][]byte {
	t.Helper()
	var sec corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "passwd", Name: name}, &sec); err != nil {
		t.Fatal(err)
	}
	return sec.Data
}

func testErrors(t *testing.T, p *plugin) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"dns", "nowhere.example", "-n", "dns"}, `no MailDomain named "nowhere.example"`},
		{[]string{"passwd", "nobody", "-n", "passwd", "--password-stdin"}, `no Mailbox named "nobody"`},
		{[]string{"status", "-o", "xml"}, "use -o table, -o json or -o yaml"},
		{[]string{"dns", "example.com", "-n", "dns", "--check", "--resolver", "nowhere"}, "want host:port"},
	} {
		r := p.run(t, "x\n", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("kubectl mail %v: exit %d, stderr %q; want an error saying %q", tc.args, r.code, r.stderr, tc.says)
		}
	}
}
