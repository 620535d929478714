package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// Results of checking one record.
const (
	resultMatch     = "match"
	resultMissing   = "missing"
	resultDifferent = "different"
	resultError     = "error"
)

// recordCheck is what the resolver answered for one wanted record.
type recordCheck struct {
	Record mailv1alpha1.DNSRecord `json:"record"`
	Result string                 `json:"result"`
	Found  []string               `json:"found,omitempty"`
	Error  string                 `json:"error,omitempty"`
}

func runDNSCheck(cmd *cobra.Command, format string, f *dnsFlags, records []mailv1alpha1.DNSRecord) error {
	server, err := resolverAddr(f.resolver)
	if err != nil {
		return err
	}
	var checks []recordCheck
	for _, r := range records {
		checks = append(checks, checkRecord(cmd.Context(), server, r))
	}
	if format != outputTable {
		err = printStructured(cmd.OutOrStdout(), format, checks)
	} else {
		printChecks(cmd.OutOrStdout(), f.ttl, checks)
	}
	if err != nil {
		return err
	}
	if why := checkSummary(checks, server); why != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), why)
		return errReported
	}
	return nil
}

// checkSummary says what to do when some records did not match, or "" when all did.
func checkSummary(checks []recordCheck, server string) string {
	var wrong, failed int
	for _, c := range checks {
		switch c.Result {
		case resultMissing, resultDifferent:
			wrong++
		case resultError:
			failed++
		}
	}
	var out []string
	if wrong > 0 {
		out = append(out, fmt.Sprintf("%d of %d records are not published as wanted (resolver %s): publish the lines above at your DNS provider; "+
			"a change can take the old record's TTL to show", wrong, len(checks), server))
	}
	if failed > 0 {
		out = append(out, fmt.Sprintf("%d of %d records could not be checked (resolver %s): try again, or ask another resolver with --resolver host:port",
			failed, len(checks), server))
	}
	return strings.Join(out, "\n")
}

// resolverAddr is --resolver, or the system's first nameserver.
func resolverAddr(flag string) (string, error) {
	if flag != "" {
		if _, _, err := net.SplitHostPort(flag); err != nil {
			return "", fmt.Errorf("--resolver %q: want host:port, such as 1.1.1.1:53 or [::1]:53", flag)
		}
		return flag, nil
	}
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(conf.Servers) == 0 {
		return "", fmt.Errorf("no nameserver in /etc/resolv.conf (%v): name one with --resolver host:port", err)
	}
	return net.JoinHostPort(conf.Servers[0], conf.Port), nil
}

// checkRecord asks server for the record's name and type and compares the answer with it.
func checkRecord(ctx context.Context, server string, r mailv1alpha1.DNSRecord) recordCheck {
	c := recordCheck{Record: r}
	found, err := lookup(ctx, server, r.Name, dns.StringToType[r.Type])
	switch {
	case err != nil:
		c.Result, c.Error = resultError, err.Error()
	case len(found) == 0:
		c.Result = resultMissing
	case contains(found, zoneValue(r), r.Type):
		c.Result = resultMatch
	default:
		c.Result, c.Found = resultDifferent, found
	}
	return c
}

// lookup returns the data of the answers for name and type, in zone-file form; NXDOMAIN and
// an empty answer are no data, not an error.
func lookup(ctx context.Context, server, name string, typ uint16) ([]string, error) {
	if typ == 0 {
		return nil, fmt.Errorf("record type not supported by --check")
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), typ)
	m.SetEdns0(4096, false)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	in, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		in, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", server, err)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s answered %s", server, dns.RcodeToString[in.Rcode])
	}
	var out []string
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == typ {
			out = append(out, rrData(rr))
		}
	}
	return out, nil
}

// rrData is the data part of a record as zoneValue writes it.
func rrData(rr dns.RR) string {
	if txt, ok := rr.(*dns.TXT); ok {
		// Compare TXT values whole, however the publisher split them into strings.
		var whole strings.Builder
		for _, part := range txt.Txt {
			whole.WriteString(unescapeTXT(part))
		}
		return zoneValue(mailv1alpha1.DNSRecord{Type: "TXT", Value: whole.String()})
	}
	hdr := rr.Header().String()
	return strings.TrimPrefix(rr.String(), hdr)
}

func contains(found []string, want, typ string) bool {
	for _, f := range found {
		if f == want || (typ != "TXT" && strings.EqualFold(f, want)) {
			return true
		}
	}
	return false
}

func printChecks(w io.Writer, ttl uint32, checks []recordCheck) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range checks {
		line := fmt.Sprintf("%s\t%s", c.Result, zoneLine(c.Record, ttl))
		switch c.Result {
		case resultDifferent:
			line += "\t; found: " + strings.Join(c.Found, " | ")
		case resultError:
			line += "\t; " + c.Error
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
