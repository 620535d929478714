package builders

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// MailboxInput is a Mailbox with what the reconciler resolved for it.
type MailboxInput struct {
	Mailbox *mailv1alpha1.Mailbox
	// PasswordHash and Fingerprint are the password's, or, when it cannot be used
	// (PasswordProblem), the last good ones from the directory, if any.
	PasswordHash string
	Fingerprint  string
	// PasswordProblem explains a password that cannot be used; PasswordReason is the condition
	// reason for it (SecretMissing or PasswordInvalid). Such a mailbox stays in the directory
	// with its logins disabled, so its mail is still accepted.
	PasswordProblem string
	PasswordReason  string
	Shard           int
	// Quota in bytes after applying the domain default; 0 is unlimited.
	Quota int64
}

// Problem is why an object is left out of the directory, or, when Served, what of it does not
// work although it is in it: its logins (LoginDisabled, when its password cannot be used), or
// mail to a domain that is unavailable.
type Problem struct {
	Reason        string
	Message       string
	Served        bool
	LoginDisabled bool
}

// DirectoryResult is a compiled directory and what could not go into it.
type DirectoryResult struct {
	Spec dirspec.Spec
	// Problems by object: "Mailbox/<name>" or "MailAlias/<name>".
	Problems map[string]Problem
}

// ObjectKey names an object in DirectoryResult.Problems.
func ObjectKey(kind, name string) string { return kind + "/" + name }

type claim struct {
	key     string
	created int64
	name    string
}

// older orders claims: the older object keeps a contested address; the name breaks ties
// (creation times are kept to the second, so objects applied together tie), and the kind only
// when a Mailbox and a MailAlias share a name.
func (c claim) older(o claim) bool {
	if c.created != o.created {
		return c.created < o.created
	}
	if c.name != o.name {
		return c.name < o.name
	}
	return c.key < o.key
}

// addressKey is an address in the form the mail server compares addresses by (domain in
// A-labels, local part in NFC, lowercase), so that two spellings of one address are one claim.
func addressKey(addr string) string {
	if n, err := dirspec.NormalizeAddress(addr); err == nil {
		return n
	}
	return strings.ToLower(addr)
}

// invalidAddress reports the first address the mail server would refuse. The API server's
// validation lets through some that IDNA2008 does not allow; one such address would make the
// server refuse the whole directory, so its object is left out instead.
func invalidAddress(addrs []string) string {
	for _, a := range addrs {
		if _, err := dirspec.NormalizeAddress(a); err != nil {
			return fmt.Sprintf("address %s cannot be served: %v", a, err)
		}
	}
	return ""
}

// Directory compiles a cluster's directory from its domains (with their DKIM keys by
// DomainKey), mailboxes and aliases. An object that cannot be served — its domain has no
// MailDomain here, an address is invalid, or an older object claims one of its addresses — is
// left out whole and reported in Problems. A mailbox whose password cannot be used is served
// with its logins disabled (and reported, Served), so a broken Secret never bounces its mail.
// Domains and addresses are matched in the mail server's normal form, so a MailDomain
// bücher.example serves jörg@xn--bcher-kva.example.
func Directory(domains []mailv1alpha1.MailDomain, dkimKeys map[string]string, mailboxes []MailboxInput, aliases []mailv1alpha1.MailAlias,
	unavailable ...string) DirectoryResult {
	res := DirectoryResult{Problems: map[string]Problem{}}
	dc := directoryCompiler{served: servedDomains(domains), owners: claims(mailboxes, aliases), unavailable: map[string]bool{}}
	for _, d := range unavailable {
		dc.unavailable[d] = true
	}
	for _, in := range mailboxes {
		key := ObjectKey("Mailbox", in.Mailbox.Name)
		if p, left := dc.mailboxProblem(in.Mailbox); left {
			res.Problems[key] = p
			continue
		}
		spec, p := mailboxSpec(in)
		if p == nil {
			p = dc.dropUnavailable(&spec)
		}
		if p != nil {
			res.Problems[key] = *p
		}
		res.Spec.Mailboxes = append(res.Spec.Mailboxes, spec)
	}
	for i := range aliases {
		al := &aliases[i]
		key := ObjectKey("MailAlias", al.Name)
		if p, left := dc.aliasProblem(al); left {
			res.Problems[key] = p
			continue
		}
		spec := dirspec.AliasSpec{Address: string(al.Spec.Address)}
		for _, m := range al.Spec.Members {
			spec.Members = append(spec.Members, string(m))
		}
		if msg := dc.unavailableIn(spec.Members); msg != "" {
			res.Problems[key] = Problem{Reason: mailv1alpha1.ReasonDomainUnavailable, Message: msg, Served: true}
		}
		res.Spec.Aliases = append(res.Spec.Aliases, spec)
	}
	// The API lists objects in no promised order; the directory must not depend on it.
	sort.Slice(res.Spec.Mailboxes, func(i, j int) bool { return res.Spec.Mailboxes[i].Address < res.Spec.Mailboxes[j].Address })
	sort.Slice(res.Spec.Aliases, func(i, j int) bool { return res.Spec.Aliases[i].Address < res.Spec.Aliases[j].Address })
	res.Spec.Domains = domainSpecs(dc.served, dkimKeys)
	res.Spec.UnavailableDomains = slices.Sorted(maps.Keys(dc.unavailable))
	return res
}

// dropUnavailable takes the aliases in unavailable domains out of a served mailbox's entry (the
// server answers for those domains with a temporary error) and says so, as it says when a
// forwarding target is in such a domain.
func (dc directoryCompiler) dropUnavailable(spec *dirspec.MailboxSpec) *Problem {
	var kept, dropped []string
	for _, a := range spec.Aliases {
		if dc.unavailable[addrDomain(a)] {
			dropped = append(dropped, a)
		} else {
			kept = append(kept, a)
		}
	}
	spec.Aliases = kept
	msg := dc.unavailableIn(append(dropped, spec.ForwardTo...))
	if msg == "" {
		return nil
	}
	return &Problem{Reason: mailv1alpha1.ReasonDomainUnavailable, Message: msg, Served: true}
}

// unavailableIn says which of addrs are in unavailable domains, or "".
func (dc directoryCompiler) unavailableIn(addrs []string) string {
	var in []string
	for _, a := range addrs {
		if dc.unavailable[addrDomain(a)] {
			in = append(in, a)
		}
	}
	if len(in) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: the MailDomain was deleted while in use, so mail to these addresses is refused with a temporary error "+
		"until the domain is served again or they are edited out", strings.Join(in, ", "))
}

func addrDomain(addr string) string {
	_, dom, _ := strings.Cut(addr, "@")
	return DomainKey(dom)
}

// directoryCompiler decides which objects a directory can serve.
type directoryCompiler struct {
	// served are the MailDomains by DomainKey (the older one of two for the same domain).
	served map[string]*mailv1alpha1.MailDomain
	// unavailable are the domains whose MailDomain was deleted while in use.
	unavailable map[string]bool
	// owners says who claims which address (by addressKey): the oldest claimant.
	owners map[string]claim
}

func servedDomains(domains []mailv1alpha1.MailDomain) map[string]*mailv1alpha1.MailDomain {
	served := map[string]*mailv1alpha1.MailDomain{}
	for i := range domains {
		d := &domains[i]
		name, err := dirspec.NormalizeDomain(string(d.Spec.Domain))
		if err != nil {
			continue // the MailDomain reports it (InvalidSpec)
		}
		if prev, dup := served[name]; !dup || claimOf("MailDomain", d).older(claimOf("MailDomain", prev)) {
			served[name] = d
		}
	}
	return served
}

func claims(mailboxes []MailboxInput, aliases []mailv1alpha1.MailAlias) map[string]claim {
	owners := map[string]claim{}
	offer := func(addr string, c claim) {
		addr = addressKey(addr)
		if cur, ok := owners[addr]; !ok || c.older(cur) {
			owners[addr] = c
		}
	}
	for _, in := range mailboxes {
		c := claimOf("Mailbox", in.Mailbox)
		offer(string(in.Mailbox.Spec.Address), c)
		for _, a := range in.Mailbox.Spec.Aliases {
			offer(string(a), c)
		}
	}
	for i := range aliases {
		offer(string(aliases[i].Spec.Address), claimOf("MailAlias", &aliases[i]))
	}
	return owners
}

// lost says which of addrs an older object claims, or "".
func (dc directoryCompiler) lost(addrs []string, c claim) string {
	for _, a := range addrs {
		if owner := dc.owners[addressKey(a)]; owner.key != c.key {
			return fmt.Sprintf("address %s is already claimed by %s %q", a, strings.Split(owner.key, "/")[0], owner.name)
		}
	}
	return ""
}

// missingDomain says which of addrs is in a domain the cluster does not serve, or "". The
// first address is the object's own: it must be served. Further ones (a mailbox's aliases) may
// also be in an unavailable domain, which leaves only them out.
func (dc directoryCompiler) missingDomain(addrs []string) string {
	for i, a := range addrs {
		dom := addrDomain(a)
		if _, ok := dc.served[dom]; ok || (i > 0 && dc.unavailable[dom]) {
			continue
		}
		if dc.unavailable[dom] {
			return fmt.Sprintf("address %s: the MailDomain of %s was deleted while in use; its mail is refused with a temporary error", a, DomainDisplay(dom))
		}
		return fmt.Sprintf("address %s: domain %s has no MailDomain for this cluster in the namespace", a, DomainDisplay(dom))
	}
	return ""
}

// mailboxProblem is why mb is left out of the directory, if it is.
func (dc directoryCompiler) mailboxProblem(mb *mailv1alpha1.Mailbox) (Problem, bool) {
	addrs := []string{string(mb.Spec.Address)}
	for _, a := range mb.Spec.Aliases {
		addrs = append(addrs, string(a))
	}
	all := slices.Clone(addrs)
	if f := mb.Spec.Forwarding; f != nil {
		for _, to := range f.To {
			all = append(all, string(to))
		}
	}
	return dc.problem(all, addrs, claimOf("Mailbox", mb))
}

// aliasProblem is why al is left out of the directory, if it is.
func (dc directoryCompiler) aliasProblem(al *mailv1alpha1.MailAlias) (Problem, bool) {
	all := []string{string(al.Spec.Address)}
	for _, m := range al.Spec.Members {
		all = append(all, string(m))
	}
	return dc.problem(all, all[:1], claimOf("MailAlias", al))
}

// problem checks, in this order, that every address in all is valid, that the addresses owned
// are in served domains, and that no older object claims one of them.
func (dc directoryCompiler) problem(all, owned []string, c claim) (Problem, bool) {
	if msg := invalidAddress(all); msg != "" {
		return Problem{Reason: mailv1alpha1.ReasonInvalidSpec, Message: msg}, true
	}
	if msg := dc.missingDomain(owned); msg != "" {
		return Problem{Reason: mailv1alpha1.ReasonDomainNotFound, Message: msg}, true
	}
	if msg := dc.lost(owned, c); msg != "" {
		return Problem{Reason: mailv1alpha1.ReasonAddressConflict, Message: msg}, true
	}
	return Problem{}, false
}

// mailboxSpec is a served mailbox's directory entry, and the problem with its password if it
// has one (it is then served with its logins disabled).
func mailboxSpec(in MailboxInput) (dirspec.MailboxSpec, *Problem) {
	mb := in.Mailbox
	spec := dirspec.MailboxSpec{
		Address:             string(mb.Spec.Address),
		DisplayName:         mb.Spec.DisplayName,
		PasswordHash:        in.PasswordHash,
		PasswordFingerprint: in.Fingerprint,
		Quota:               in.Quota,
		Shard:               in.Shard,
		Frozen:              mb.Status.Move != nil && mb.Status.Move.Phase == mailv1alpha1.MoveFreezing,
	}
	for _, a := range mb.Spec.Aliases {
		spec.Aliases = append(spec.Aliases, string(a))
	}
	if f := mb.Spec.Forwarding; f != nil {
		for _, to := range f.To {
			spec.ForwardTo = append(spec.ForwardTo, string(to))
		}
		keep := f.KeepCopy == nil || *f.KeepCopy
		spec.KeepCopy = &keep
	}
	if mb.Spec.Suspended {
		spec.Disabled, spec.DisabledReason = true, "suspended (spec.suspended)"
	}
	if in.PasswordProblem == "" && in.PasswordHash != "" {
		return spec, nil
	}
	p := Problem{Reason: in.PasswordReason, Message: in.PasswordProblem, Served: true, LoginDisabled: true}
	if p.Reason == "" {
		p.Reason = mailv1alpha1.ReasonSecretMissing
	}
	if p.Message == "" {
		p.Message = "no password"
	}
	spec.Disabled, spec.DisabledReason = true, p.Message
	p.Message += ": logins are disabled; mail is still accepted and stored"
	return spec, &p
}

// domainSpecs are the served domains' entries, sorted, with their DKIM keys (by DomainKey).
func domainSpecs(served map[string]*mailv1alpha1.MailDomain, dkimKeys map[string]string) []dirspec.DomainSpec {
	var out []dirspec.DomainSpec
	for _, name := range slices.Sorted(maps.Keys(served)) {
		d := served[name]
		ds := dirspec.DomainSpec{Name: name, CatchAll: string(d.Spec.CatchAll)}
		if m := d.Spec.MTASTS.Mode; m != "" && m != "testing" {
			// testing is the servers' default: directories that leave it out stay as they were.
			ds.MTASTSMode = m
		}
		if invalidAddress([]string{ds.CatchAll}) != "" {
			ds.CatchAll = "" // an invalid catch-all would make the server refuse the directory
		}
		if key, ok := dkimKeys[name]; ok && key != "" && (d.Spec.DKIM.Enabled == nil || *d.Spec.DKIM.Enabled) {
			ds.DKIM = &dirspec.DKIMSpec{Selector: d.Spec.DKIM.Selector, Algorithm: d.Spec.DKIM.Algorithm, PrivateKey: key}
		}
		out = append(out, ds)
	}
	return out
}

func claimOf(kind string, o metav1.Object) claim {
	return claim{key: ObjectKey(kind, o.GetName()), name: o.GetName(), created: o.GetCreationTimestamp().UnixNano()}
}
