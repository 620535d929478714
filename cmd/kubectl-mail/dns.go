package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

type dnsFlags struct {
	check    bool
	resolver string
	ttl      uint32
}

func newDNSCommand(o *options) *cobra.Command {
	f := &dnsFlags{}
	cmd := &cobra.Command{
		Use:   "dns DOMAIN",
		Short: "The DNS records to publish for a MailDomain, and with --check whether they are published",
		Long: "dns prints the records a MailDomain (named by its domain or its object name) needs, from its\n" +
			"status.dnsRecords, in zone-file form. With --check it asks a resolver for each record and\n" +
			"prints match, missing or different; it exits 1 when any record is not published as wanted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			md, err := findDomain(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			if len(md.Status.DNSRecords) == 0 {
				return fmt.Errorf("maildomain %s/%s lists no DNS records yet: the operator writes them once the domain is reconciled (kubectl describe maildomain %s -n %s)",
					md.Namespace, md.Name, md.Name, md.Namespace)
			}
			if f.check {
				return runDNSCheck(cmd, o.output, f, md.Status.DNSRecords)
			}
			return printRecords(cmd.OutOrStdout(), o.output, f.ttl, md.Status.DNSRecords)
		},
	}
	cmd.Flags().BoolVar(&f.check, "check", false, "ask a resolver for each record and say whether it matches")
	cmd.Flags().StringVar(&f.resolver, "resolver", "", "host:port of the resolver --check asks (default: the first nameserver of /etc/resolv.conf)")
	cmd.Flags().Uint32Var(&f.ttl, "ttl", 3600, "TTL written into the zone-file lines")
	o.addAllNamespacesFlag(cmd)
	return cmd
}

// findDomain finds the MailDomain whose name or domain is arg; with ns "" in every namespace.
func findDomain(ctx context.Context, c client.Client, ns, arg string) (*mailv1alpha1.MailDomain, error) {
	var list mailv1alpha1.MailDomainList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, listError(err, ns)
	}
	want, _ := dirspec.NormalizeDomain(arg)
	var found []*mailv1alpha1.MailDomain
	for i := range list.Items {
		md := &list.Items[i]
		d, _ := dirspec.NormalizeDomain(string(md.Spec.Domain))
		if md.Name == arg || string(md.Spec.Domain) == arg || (want != "" && d == want) {
			found = append(found, md)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && ns == "":
		return nil, fmt.Errorf("no MailDomain named %q or for the domain %q in any namespace", arg, arg)
	case len(found) == 0:
		return nil, fmt.Errorf("no MailDomain named %q or for the domain %q in namespace %q: try -n NAMESPACE or -A", arg, arg, ns)
	}
	var where []string
	for _, md := range found {
		where = append(where, md.Namespace+"/"+md.Name)
	}
	return nil, fmt.Errorf("%q matches several MailDomains (%s): pick one with -n NAMESPACE", arg, strings.Join(where, ", "))
}

func printRecords(w io.Writer, format string, ttl uint32, records []mailv1alpha1.DNSRecord) error {
	if format != outputTable {
		return printStructured(w, format, records)
	}
	for _, r := range records {
		if r.Note != "" {
			fmt.Fprintf(w, "; %s: %s\n", r.Purpose, r.Note)
		}
		fmt.Fprintln(w, zoneLine(r, ttl))
	}
	return nil
}

// zoneLine is a record in zone-file form: name TTL class type value.
func zoneLine(r mailv1alpha1.DNSRecord, ttl uint32) string {
	return fmt.Sprintf("%s\t%d\tIN\t%s\t%s", r.Name, ttl, r.Type, zoneValue(r))
}

// zoneValue is the record's data as a zone file writes it: MX with its preference and SRV with
// its priority (both kept apart in status.dnsRecords), TXT quoted and split into strings of at
// most 255 bytes as DNS requires.
func zoneValue(r mailv1alpha1.DNSRecord) string {
	switch r.Type {
	case "MX", "SRV":
		prio := int32(10)
		if r.Type == "SRV" {
			prio = 0
		}
		if r.Priority != nil {
			prio = *r.Priority
		}
		return strconv.Itoa(int(prio)) + " " + r.Value
	case "TXT":
		var parts []string
		for _, s := range txtStrings(r.Value) {
			parts = append(parts, quoteTXT(s))
		}
		return strings.Join(parts, " ")
	}
	return r.Value
}

// txtStrings splits a TXT value into the character strings of at most 255 bytes one record holds.
func txtStrings(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// quoteTXT writes one character string as a zone file does (RFC 1035 section 5.1): quoted,
// with '"' and '\\' escaped and bytes outside printable ASCII as \DDD.
func quoteTXT(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// unescapeTXT turns a character string as miekg/dns presents it (with the escapes of
// quoteTXT) back into its bytes.
func unescapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c != '\\' || i+1 == len(s):
			b.WriteByte(c)
		case i+3 < len(s) && isDigits(s[i+1:i+4]):
			n, _ := strconv.Atoi(s[i+1 : i+4])
			b.WriteByte(byte(n))
			i += 3
		default:
			b.WriteByte(s[i+1])
			i++
		}
	}
	return b.String()
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
