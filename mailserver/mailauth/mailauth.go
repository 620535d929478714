// Package mailauth authenticates mail arriving from other servers: SPF (RFC 7208) for the
// envelope sender, DKIM signatures (RFC 6376), and DMARC (RFC 7489) for the From domain. The
// results become an Authentication-Results field (RFC 8601) and, for a DMARC failure under
// p=reject, a reason to refuse the message. The libraries (blitiri.com.ar/go/spf,
// go-msgauth) do the protocol work; this package ties them to one resolver and one verdict.
package mailauth

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Resolver is the DNS the checks use (dnsresolve.Resolver implements it).
type Resolver interface {
	spf.DNSResolver
}

// DefaultBudget is the time the DNS lookups of one message may take when Checker.Timeout is
// not set.
const DefaultBudget = 5 * time.Second

// Checker runs the checks.
type Checker struct {
	Resolver Resolver
	// Hostname is the authserv-id of the Authentication-Results fields this server writes.
	Hostname string
	// RejectDMARC refuses mail that fails DMARC when its domain publishes p=reject.
	RejectDMARC bool
	// Timeout is the time budget of all DNS work for one message (DefaultBudget); the SPF,
	// DKIM and DMARC lookups run side by side within it. What is unfinished by then is a
	// temporary error in the results: SPF temperror, DKIM temperror, DMARC temperror, whose
	// policy is then not applied (RFC 7208 section 2.6.6, RFC 6376 section 6.1.2, RFC 7489
	// section 6.6.3).
	Timeout time.Duration
}

// Input is what the SMTP session knows of a message.
type Input struct {
	IP       net.IP
	Helo     string
	MailFrom string
	// Message is the message as received (header and body).
	Message []byte
}

// Verdict is the outcome of the checks.
type Verdict struct {
	// Field is the Authentication-Results header field (name, value, CRLF) to prepend.
	Field string
	SPF   string
	// DKIM has one result per signature checked, or "none".
	DKIM  []string
	DMARC string
	// FromDomain is the domain DMARC evaluated, Policy its policy ("none", "quarantine",
	// "reject"; empty without a DMARC record).
	FromDomain string
	Policy     string
	// Reject says to refuse the message: it failed DMARC under p=reject and RejectDMARC is on.
	Reject bool
	// OutOfTime says the DNS budget ran out before every lookup was answered.
	OutOfTime bool
}

// lookups is what DNS said for one message, gathered side by side.
type lookups struct {
	spf    spf.Result
	verifs []*msgdkim.Verification
	dmarc  dmarcRecord
}

// dmarcRecord is the DMARC record that applies to a From domain: its own, or its
// organizational domain's (subdomain).
type dmarcRecord struct {
	rec       *dmarc.Record
	subdomain bool
	err       error
}

// Check authenticates one message.
func (c *Checker) Check(ctx context.Context, in Input) Verdict {
	budget := c.Timeout
	if budget <= 0 {
		budget = DefaultBudget
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	helo := strings.TrimSuffix(in.Helo, ".")
	spfDomain, spfSender := domainOf(in.MailFrom), asciiSender(in.MailFrom)
	if in.MailFrom == "" {
		// RFC 7208 section 2.4: the null sender is checked as postmaster at the HELO name.
		spfDomain, spfSender = helo, "postmaster@"+helo
	}
	var v Verdict
	from, hasFrom := singleFromDomain(in.Message)
	v.FromDomain = from
	l := c.lookUp(ctx, in, helo, spfSender, from)
	outOfTime := "" // the reason given for temporary errors once the budget is spent
	// A lookup cut off by the deadline can return a moment before the context's own timer
	// marks it done: the clock decides.
	if deadline, _ := ctx.Deadline(); ctx.Err() != nil || !time.Now().Before(deadline) {
		outOfTime = fmt.Sprintf("DNS lookups unfinished after %s", budget)
	}

	results := []authres.Result{c.spfResult(l.spf, in.MailFrom, helo, outOfTime, &v)}
	results = append(results, c.dkimResults(l.verifs, outOfTime, &v)...)
	var dr *authres.DMARCResult
	if hasFrom {
		dr = c.dmarc(l, spfDomain, from, &v)
	} else {
		// RFC 7489 section 6.6.1 leaves messages without exactly one From domain to local
		// policy; ours is not to judge them.
		dr = &authres.DMARCResult{Value: authres.ResultNone, Reason: "no single From domain"}
	}
	if dr.Value == authres.ResultTempError && outOfTime != "" {
		dr.Reason = outOfTime
	}
	results = append(results, dr)
	v.DMARC = string(dr.Value)
	v.Field = formatField(c.Hostname, results)
	v.OutOfTime = outOfTime != "" && strings.Contains(v.Summary(), string(authres.ResultTempError))
	return v
}

// lookUp runs the SPF check, the DKIM verifications and the DMARC record lookup (when there is
// a From domain) side by side: none of them needs another's answers.
func (c *Checker) lookUp(ctx context.Context, in Input, helo, spfSender, from string) lookups {
	var l lookups
	var wg sync.WaitGroup
	wg.Go(func() {
		l.spf, _ = spf.CheckHostWithSender(in.IP, helo, spfSender, spf.WithResolver(c.Resolver), spf.WithContext(ctx))
	})
	wg.Go(func() {
		l.verifs, _ = msgdkim.VerifyWithOptions(bytes.NewReader(in.Message), &msgdkim.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) { return c.Resolver.LookupTXT(ctx, asciiName(name)) }, MaxVerifications: 5})
	})
	if from != "" {
		wg.Go(func() { l.dmarc = c.lookupDMARC(ctx, from) })
	}
	wg.Wait()
	return l
}

func (c *Checker) spfResult(res spf.Result, mailFrom, helo, outOfTime string, v *Verdict) *authres.SPFResult {
	v.SPF = string(res)
	sr := &authres.SPFResult{Value: authres.ResultValue(res), Helo: helo}
	if mailFrom != "" {
		sr.From = mailFrom
	}
	if res == spf.TempError && outOfTime != "" {
		sr.Reason = outOfTime
	}
	return sr
}

func (c *Checker) dkimResults(verifs []*msgdkim.Verification, outOfTime string, v *Verdict) []authres.Result {
	if len(verifs) == 0 {
		v.DKIM = []string{"none"}
		return []authres.Result{&authres.DKIMResult{Value: authres.ResultNone}}
	}
	var out []authres.Result
	for _, vf := range verifs {
		var value authres.ResultValue = authres.ResultPass
		reason := ""
		if vf.Err != nil {
			reason = vf.Err.Error()
			switch {
			case msgdkim.IsTempFail(vf.Err):
				value = authres.ResultTempError
				if outOfTime != "" {
					reason = outOfTime
				}
			case msgdkim.IsPermFail(vf.Err):
				value = authres.ResultPermError
			default:
				value = authres.ResultFail
			}
		}
		v.DKIM = append(v.DKIM, string(value))
		out = append(out, &authres.DKIMResult{Value: value, Reason: reason, Domain: vf.Domain, Identifier: vf.Identifier})
	}
	return out
}

// lookupDMARC finds the record for the From domain, falling back to its organizational
// domain's.
func (c *Checker) lookupDMARC(ctx context.Context, from string) dmarcRecord {
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return c.Resolver.LookupTXT(ctx, asciiName(name)) }}
	rec, err := dmarc.LookupWithOptions(from, lookup)
	if err == dmarc.ErrNoPolicy {
		if org, oerr := publicsuffix.EffectiveTLDPlusOne(from); oerr == nil && org != from {
			rec, err = dmarc.LookupWithOptions(org, lookup)
			return dmarcRecord{rec: rec, subdomain: true, err: err}
		}
	}
	return dmarcRecord{rec: rec, err: err}
}

// dmarc evaluates the From domain's policy against the SPF and DKIM results.
func (c *Checker) dmarc(l lookups, spfDomain, from string, v *Verdict) *authres.DMARCResult {
	rec, err := l.dmarc.rec, l.dmarc.err
	switch {
	case err == dmarc.ErrNoPolicy:
		return &authres.DMARCResult{Value: authres.ResultNone, From: from}
	case dmarc.IsTempFail(err):
		return &authres.DMARCResult{Value: authres.ResultTempError, From: from}
	case err != nil:
		return &authres.DMARCResult{Value: authres.ResultPermError, From: from}
	}
	policy := rec.Policy
	if l.dmarc.subdomain && rec.SubdomainPolicy != "" {
		policy = rec.SubdomainPolicy
	}
	v.Policy = string(policy)
	pass := l.spf == spf.Pass && aligned(spfDomain, from, rec.SPFAlignment)
	for _, vf := range l.verifs {
		if vf.Err == nil && aligned(vf.Domain, from, rec.DKIMAlignment) {
			pass = true
		}
	}
	if pass {
		return &authres.DMARCResult{Value: authres.ResultPass, From: from}
	}
	sampled := rec.Percent == nil || rand.IntN(100) < *rec.Percent
	v.Reject = c.RejectDMARC && policy == dmarc.PolicyReject && sampled
	return &authres.DMARCResult{Value: authres.ResultFail, From: from, Reason: "p=" + string(policy)}
}

// aligned compares an authenticated domain with the From domain: equal in strict mode, the
// same organizational domain in relaxed mode (the default).
func aligned(authDomain, fromDomain string, mode dmarc.AlignmentMode) bool {
	a, f := strings.ToLower(strings.TrimSuffix(authDomain, ".")), strings.ToLower(fromDomain)
	if a == "" {
		return false
	}
	if a == f {
		return true
	}
	if mode == dmarc.AlignmentStrict {
		return false
	}
	oa, err1 := publicsuffix.EffectiveTLDPlusOne(a)
	of, err2 := publicsuffix.EffectiveTLDPlusOne(f)
	return err1 == nil && err2 == nil && oa == of
}

// formatField writes the Authentication-Results field, one result per folded line.
func formatField(authservID string, results []authres.Result) string {
	var b strings.Builder
	b.WriteString("Authentication-Results: " + authservID)
	for _, r := range results {
		part := strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{r}), ";"))
		b.WriteString(";\r\n\t" + part)
	}
	b.WriteString("\r\n")
	return b.String()
}

// domainOf is the domain of an address in A-labels, the form DNS, DKIM's d= and alignment
// use (RFC 8616).
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(asciiName(addr[i+1:]))
	}
	return ""
}

// asciiSender is an envelope sender with its domain in A-labels, for the SPF library, which
// takes the domain to check from it.
func asciiSender(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i+1] + asciiName(addr[i+1:])
	}
	return addr
}

// asciiName turns the internationalised labels of a DNS name into A-labels (RFC 8616); labels
// already in ASCII, such as _domainkey, are kept as they are. A label that does not convert is
// kept too, for its lookup to fail.
func asciiName(name string) string {
	if isASCII(name) {
		return name
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if !isASCII(l) {
			if a, err := idna.Lookup.ToASCII(l); err == nil {
				labels[i] = a
			}
		}
	}
	return strings.Join(labels, ".")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// singleFromDomain returns the domain of the From field when there is exactly one From field
// with one address.
func singleFromDomain(msg []byte) (string, bool) {
	hdr := headerSection(msg)
	n := 0
	for _, name := range fieldNames(hdr) {
		if strings.EqualFold(name, "From") {
			n++
		}
	}
	if n != 1 {
		return "", false
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte{}, hdr...), "\r\n"...)))
	if err != nil {
		return "", false
	}
	addrs, err := m.Header.AddressList("From")
	if err != nil || len(addrs) != 1 {
		return "", false
	}
	d := domainOf(addrs[0].Address)
	return d, d != ""
}

// headerSection returns the header fields of msg up to and including the last field's line
// ending.
func headerSection(msg []byte) []byte {
	crlf := bytes.Index(msg, []byte("\r\n\r\n"))
	lf := bytes.Index(msg, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return msg[:crlf+2]
	case lf >= 0:
		return msg[:lf+1]
	}
	return msg
}

// fields splits a header section into fields, each with its continuation lines.
func fields(hdr []byte) [][]byte {
	var out [][]byte
	for len(hdr) > 0 {
		end := 0
		for {
			i := bytes.IndexByte(hdr[end:], '\n')
			if i < 0 {
				end = len(hdr)
				break
			}
			end += i + 1
			if end >= len(hdr) || (hdr[end] != ' ' && hdr[end] != '\t') {
				break
			}
		}
		out = append(out, hdr[:end])
		hdr = hdr[end:]
	}
	return out
}

func fieldNames(hdr []byte) []string {
	var names []string
	for _, f := range fields(hdr) {
		if name, _, ok := bytes.Cut(f, []byte(":")); ok {
			names = append(names, string(bytes.TrimSpace(name)))
		}
	}
	return names
}

// StripForged removes Authentication-Results fields that claim to come from authservID: a
// sender must not be able to hand us results we appear to have written (RFC 8601 section 5).
func StripForged(msg []byte, authservID string) []byte {
	hdr := headerSection(msg)
	var kept bytes.Buffer
	removed := false
	for _, f := range fields(hdr) {
		name, value, ok := bytes.Cut(f, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Authentication-Results") {
			id, _, _ := strings.Cut(string(value), ";")
			// The authserv-id is the first word; a version number may follow it.
			if words := strings.Fields(id); len(words) > 0 && strings.EqualFold(words[0], authservID) {
				removed = true
				continue
			}
		}
		kept.Write(f)
	}
	if !removed {
		return msg
	}
	return append(kept.Bytes(), msg[len(hdr):]...)
}

// Summary is a one-line form of the verdict for logs.
func (v Verdict) Summary() string {
	return fmt.Sprintf("spf=%s dkim=%s dmarc=%s", v.SPF, strings.Join(v.DKIM, ","), v.DMARC)
}
