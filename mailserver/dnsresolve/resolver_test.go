package dnsresolve_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/dnsresolve"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
)

func setup(t *testing.T) (*dnstest.Server, *dnsresolve.Resolver) {
	t.Helper()
	srv, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	r, err := dnsresolve.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func dnsErr(t *testing.T, err error) *net.DNSError {
	t.Helper()
	var de *net.DNSError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *net.DNSError", err, err)
	}
	return de
}

func TestMXAnswersTellMissingFromEmptyFromFailing(t *testing.T) {
	srv, r := setup(t)
	if err := srv.Add("a.test. MX 20 mx2.a.test.", "a.test. MX 10 mx1.a.test.", "noemx.test. A 127.0.0.9",
		"nullmx.test. MX 0 .", "broken.test. A 127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	srv.Fail("broken.test", true)
	ctx := context.Background()

	mxs, err := r.LookupMX(ctx, "a.test")
	if err != nil || len(mxs) != 2 {
		t.Fatalf("a.test: %v %v", mxs, err)
	}
	hosts := map[string]uint16{}
	for _, mx := range mxs {
		hosts[mx.Host] = mx.Pref
	}
	if hosts["mx1.a.test"] != 10 || hosts["mx2.a.test"] != 20 {
		t.Errorf("MX records %v", hosts)
	}

	if mxs, err := r.LookupMX(ctx, "noemx.test"); err != nil || len(mxs) != 0 {
		t.Errorf("a name without MX: %v %v, want an empty answer", mxs, err)
	}
	if mxs, err := r.LookupMX(ctx, "nullmx.test"); err != nil || len(mxs) != 1 || mxs[0].Host != "." {
		t.Errorf("null MX: %v %v", mxs, err)
	}
	_, err = r.LookupMX(ctx, "nosuch.test")
	if de := dnsErr(t, err); !de.IsNotFound || de.IsTemporary {
		t.Errorf("NXDOMAIN: %+v", de)
	}
	_, err = r.LookupMX(ctx, "broken.test")
	if de := dnsErr(t, err); !de.IsTemporary || de.IsNotFound {
		t.Errorf("SERVFAIL: %+v", de)
	}
}

func TestAddressesAndLongTXT(t *testing.T) {
	srv, r := setup(t)
	srv.Add("mx.a.test. A 127.0.0.2", "mx.a.test. AAAA ::1")
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600)
	srv.AddTXT("sel._domainkey.a.test", long)
	ctx := context.Background()
	addrs, err := r.LookupIPAddr(ctx, "mx.a.test")
	if err != nil || len(addrs) != 2 || addrs[0].IP.String() != "127.0.0.2" || addrs[1].IP.String() != "::1" {
		t.Fatalf("addresses: %v %v", addrs, err)
	}
	txt, err := r.LookupTXT(ctx, "sel._domainkey.a.test")
	if err != nil || len(txt) != 1 || txt[0] != long {
		t.Fatalf("a TXT record of several strings comes back joined: %d records, err %v", len(txt), err)
	}
}

func TestUnreachableServerIsTemporary(t *testing.T) {
	r, err := dnsresolve.New("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.LookupMX(context.Background(), "a.test")
	if de := dnsErr(t, err); !de.IsTemporary {
		t.Fatalf("unreachable server: %+v", de)
	}
}

func TestAnswersAreKeptForTheirTTLAndFailuresNot(t *testing.T) {
	srv, r := setup(t)
	if err := srv.Add("kept.test. 300 TXT \"v=spf1 -all\"", "flaky.test. 300 TXT \"v=spf1 -all\""); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if txt, err := r.LookupTXT(ctx, "Kept.Test."); err != nil || len(txt) != 1 {
			t.Fatalf("kept.test: %v %v", txt, err)
		}
	}
	if n := srv.Queries(); n != 1 {
		t.Errorf("three lookups of a record with a TTL of 300 asked the server %d times, want 1", n)
	}

	srv.Fail("flaky.test", true)
	if _, err := r.LookupTXT(ctx, "flaky.test"); err == nil {
		t.Fatal("SERVFAIL: want an error")
	}
	srv.Fail("flaky.test", false)
	if txt, err := r.LookupTXT(ctx, "flaky.test"); err != nil || len(txt) != 1 {
		t.Errorf("after the failure was fixed: %v %v; a failure must not be kept", txt, err)
	}
}
