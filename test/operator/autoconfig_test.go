package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/internal/testutil"
)

// TestClientAutoconfig: a MailCluster with spec.autoconfig.enabled gets HTTPS on its client
// Service, its domains the records that point clients and senders at it, and its mail server,
// run as the pod would be, serves Thunderbird's autoconfig and the MTA-STS policy in the mode
// the MailDomain asks for.
func TestClientAutoconfig(t *testing.T) {
	lc, _ := startLocalCluster(t)
	ctx, c, ns := context.Background(), lc.Client, "auto"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: ns}, Spec: mailv1alpha1.MailClusterSpec{
			Hostname: "mail.example.com", Autoconfig: &mailv1alpha1.AutoconfigSpec{Enabled: true}}},
		&mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-com", Namespace: ns}, Spec: mailv1alpha1.MailDomainSpec{
			Domain: "example.com", ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"},
			MTASTS: mailv1alpha1.MTASTSSpec{Mode: "enforce"}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	reconciled := testutil.Poll{Within: 30 * time.Second, Every: 100 * time.Millisecond}
	reconciled.Until(t, "the client Service with HTTPS", func() (bool, string) {
		var svc corev1.Service
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: names.ClientService("mail")}, &svc); err != nil {
			return false, err.Error()
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "https" && p.Port == 443 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", svc.Spec.Ports)
	})
	reconciled.Until(t, "the domain's records for clients and senders", func() (bool, string) {
		var md mailv1alpha1.MailDomain
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "example-com"}, &md); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, r := range md.Status.DNSRecords {
			seen = append(seen, r.Type+" "+r.Name)
		}
		all := strings.Join(seen, ", ")
		return strings.Contains(all, "TXT _mta-sts.example.com.") && strings.Contains(all, "CNAME autoconfig.example.com.") &&
			strings.Contains(all, "SRV _imaps._tcp.example.com."), all
	})

	ms, err := lc.RunMailserver(ctx, ns, "mail", 0)
	if err != nil {
		t.Fatal(err)
	}
	addr := ms.Addrs["autoconfig"]
	if addr == "" {
		t.Fatalf("the mail server has no autoconfig listener: %v", ms.Addrs)
	}
	// The pod's certificate is the cluster's self-signed one, for its hostname only: -k here;
	// with spec.tls.issuerRef the issued one names autoconfig. and mta-sts. too.
	xml, err := curl(t, "https://"+addr+"/mail/config-v1.1.xml?emailaddress=alice@example.com")
	if err != nil || !strings.Contains(xml, `<incomingServer type="imap">`) || !strings.Contains(xml, "<hostname>mail.example.com</hostname>") ||
		!strings.Contains(xml, "<port>993</port>") {
		t.Errorf("Thunderbird autoconfig: %v\n%s", err, xml)
	}
	policy, err := curl(t, "-H", "Host: mta-sts.example.com", "https://"+addr+"/.well-known/mta-sts.txt")
	if err != nil || !strings.Contains(policy, "mode: enforce") || !strings.Contains(policy, "mx: mail.example.com") {
		t.Errorf("MTA-STS policy: %v\n%s", err, policy)
	}
	if out, _ := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "https://"+addr+"/mail/config-v1.1.xml?emailaddress=x@elsewhere.test"); out != "404" {
		t.Errorf("autoconfig for a domain the cluster does not serve: %s, want 404", out)
	}
}
