// Package directory is the mail server's account database: domains, mailboxes with password
// hashes, aliases and catch-alls. A Directory is immutable once parsed; sources (a file, or the
// operator's Secrets through the Kubernetes API) publish new ones into a Live holder that swaps
// them atomically.
package directory

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// Domain is a parsed local domain.
type Domain struct {
	Name     string
	CatchAll string
	DKIM     *dirspec.DKIMSpec
	// MTASTSMode overrides the server's MTA-STS mode for this domain when set.
	MTASTSMode string
}

// Mailbox is a parsed account. Addresses are in the form NormalizeAddress returns.
type Mailbox struct {
	Address      string
	DisplayName  string
	PasswordHash string
	Quota        int64
	Disabled     bool
	// DisabledReason is why logins are refused (see dirspec.MailboxSpec).
	DisabledReason string
	Aliases        []string
	ForwardTo      []string
	KeepCopy       bool
	Shard          int
	// Frozen: the mailbox is in the cut-over of a move (see dirspec.MailboxSpec).
	Frozen bool
}

// Directory is an immutable, validated account database.
type Directory struct {
	domains     map[string]*Domain
	unavailable map[string]bool
	mailboxes   map[string]*Mailbox
	aliases     map[string][]string
	// owners maps every address a mailbox may send as (its own and its aliases) to it.
	owners map[string]*Mailbox
}

// PasswordHashValidator checks that a password hash is one the server can verify. Parse uses
// it so a directory with a plain-text or unknown hash is refused as a whole.
type PasswordHashValidator func(hash string) error

// Parse reads a directory from YAML or JSON and validates it: every address well formed,
// every mailbox and alias in a declared domain, no address claimed twice, every hash valid.
func Parse(data []byte, validateHash PasswordHashValidator) (*Directory, error) {
	var spec dirspec.Spec
	if err := yaml.UnmarshalStrict(data, &spec); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	return FromSpec(&spec, validateHash)
}

// FromSpec validates spec and builds a Directory from it.
func FromSpec(spec *dirspec.Spec, validateHash PasswordHashValidator) (*Directory, error) {
	l := &loader{validateHash: validateHash, d: &Directory{
		domains:     map[string]*Domain{},
		unavailable: map[string]bool{},
		mailboxes:   map[string]*Mailbox{},
		aliases:     map[string][]string{},
		owners:      map[string]*Mailbox{},
	}}
	for _, ds := range spec.Domains {
		l.domain(ds)
	}
	for _, name := range spec.UnavailableDomains {
		l.unavailableDomain(name)
	}
	for _, ms := range spec.Mailboxes {
		l.mailbox(ms)
	}
	for _, as := range spec.Aliases {
		l.alias(as)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return l.d, nil
}

// loader builds a Directory, collecting every problem of the spec rather than the first.
type loader struct {
	d            *Directory
	validateHash PasswordHashValidator
	errs         []error
}

func (l *loader) fail(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

func (l *loader) domain(ds dirspec.DomainSpec) {
	name, err := dirspec.NormalizeDomain(ds.Name)
	if err != nil {
		l.fail("domain %q: %w", ds.Name, err)
		return
	}
	if _, dup := l.d.domains[name]; dup {
		l.fail("domain %q: listed twice", name)
		return
	}
	dom := &Domain{Name: name, DKIM: ds.DKIM, MTASTSMode: ds.MTASTSMode}
	switch ds.MTASTSMode {
	case "", "enforce", "testing", "none":
	default:
		l.fail("domain %q: mtaSTSMode %q (use enforce, testing or none)", name, ds.MTASTSMode)
	}
	if ds.CatchAll != "" {
		ca, err := dirspec.NormalizeAddress(ds.CatchAll)
		if err != nil {
			l.fail("domain %q: catchAll: %w", name, err)
		}
		dom.CatchAll = ca
	}
	if ds.DKIM != nil && (ds.DKIM.Selector == "" || ds.DKIM.PrivateKey == "" ||
		(ds.DKIM.Algorithm != "rsa-sha256" && ds.DKIM.Algorithm != "ed25519-sha256")) {
		l.fail("domain %q: dkim needs a selector, a private key and algorithm rsa-sha256 or ed25519-sha256", name)
	}
	l.d.domains[name] = dom
}

func (l *loader) unavailableDomain(name string) {
	key, err := dirspec.NormalizeDomain(name)
	if err != nil {
		l.fail("unavailable domain %q: %w", name, err)
		return
	}
	if _, served := l.d.domains[key]; served {
		l.fail("domain %q: listed as served and as unavailable", key)
		return
	}
	l.d.unavailable[key] = true
}

// claim reports whether addr is still free, and records the problem when it is not.
func (l *loader) claim(addr, what string) bool {
	if _, ok := l.d.owners[addr]; ok {
		l.fail("%s %q: address already belongs to a mailbox", what, addr)
		return false
	}
	if _, ok := l.d.aliases[addr]; ok {
		l.fail("%s %q: address already belongs to an alias", what, addr)
		return false
	}
	return true
}

// local reports whether addr is in a domain of the directory, and records the problem when not.
func (l *loader) local(addr, what string) bool {
	_, dom, _ := strings.Cut(addr, "@")
	if _, ok := l.d.domains[dom]; !ok {
		l.fail("%s %q: domain %q is not in the directory", what, addr, dom)
		return false
	}
	return true
}

func (l *loader) mailbox(ms dirspec.MailboxSpec) {
	addr, err := dirspec.NormalizeAddress(ms.Address)
	if err != nil {
		l.fail("mailbox %q: %w", ms.Address, err)
		return
	}
	if !l.local(addr, "mailbox") || !l.claim(addr, "mailbox") {
		return
	}
	switch {
	case ms.PasswordHash == "" && !ms.Disabled:
		l.fail("mailbox %q: no password hash, and not disabled", addr)
		return
	case ms.PasswordHash != "" && l.validateHash(ms.PasswordHash) != nil:
		l.fail("mailbox %q: password hash: %w", addr, l.validateHash(ms.PasswordHash))
		return
	case ms.Quota < 0 || ms.Shard < 0:
		l.fail("mailbox %q: quota and shard must not be negative", addr)
		return
	}
	mb := &Mailbox{Address: addr, DisplayName: ms.DisplayName, PasswordHash: ms.PasswordHash, Quota: ms.Quota,
		Disabled: ms.Disabled, DisabledReason: ms.DisabledReason, Shard: ms.Shard, Frozen: ms.Frozen,
		KeepCopy: ms.KeepCopy == nil || *ms.KeepCopy}
	l.d.mailboxes[addr] = mb
	l.d.owners[addr] = mb
	for _, a := range ms.Aliases {
		alias, err := dirspec.NormalizeAddress(a)
		if err != nil {
			l.fail("mailbox %q: alias %q: %w", addr, a, err)
			continue
		}
		if l.local(alias, "alias") && l.claim(alias, "alias") {
			mb.Aliases = append(mb.Aliases, alias)
			l.d.owners[alias] = mb
		}
	}
	for _, fwd := range ms.ForwardTo {
		target, err := dirspec.NormalizeAddress(fwd)
		if err != nil {
			l.fail("mailbox %q: forwarding target %q: %w", addr, fwd, err)
			continue
		}
		mb.ForwardTo = append(mb.ForwardTo, target)
	}
}

func (l *loader) alias(as dirspec.AliasSpec) {
	addr, err := dirspec.NormalizeAddress(as.Address)
	if err != nil {
		l.fail("alias %q: %w", as.Address, err)
		return
	}
	if !l.local(addr, "alias") || !l.claim(addr, "alias") {
		return
	}
	if len(as.Members) == 0 {
		l.fail("alias %q: has no members", addr)
		return
	}
	var members []string
	for _, m := range as.Members {
		member, err := dirspec.NormalizeAddress(m)
		if err != nil {
			l.fail("alias %q: member %q: %w", addr, m, err)
			continue
		}
		members = append(members, member)
	}
	l.d.aliases[addr] = members
}

// Domain returns a local domain, named in A-labels or U-labels. Its Name is in A-labels.
func (d *Directory) Domain(name string) (*Domain, bool) {
	dom, ok := d.domains[domainKey(name)]
	return dom, ok
}

// IsLocalDomain reports whether the domain (in A-labels or U-labels) is served here.
func (d *Directory) IsLocalDomain(name string) bool {
	_, ok := d.domains[domainKey(name)]
	return ok
}

// domainKey is the form of a domain name the domains map is keyed by.
func domainKey(name string) string {
	if dirspec.IsASCII(name) {
		return strings.ToLower(name)
	}
	if n, err := dirspec.NormalizeDomain(name); err == nil {
		return n
	}
	return ""
}

// Mailbox returns the account with this primary address (sub-addresses and aliases are not
// login names).
func (d *Directory) Mailbox(address string) (*Mailbox, bool) {
	addr, err := dirspec.NormalizeAddress(address)
	if err != nil {
		return nil, false
	}
	mb, ok := d.mailboxes[addr]
	return mb, ok
}

// Counts returns the numbers of domains, mailboxes and aliases.
func (d *Directory) Counts() (domains, mailboxes, aliases int) {
	return len(d.domains), len(d.mailboxes), len(d.aliases)
}

// Mailboxes returns every mailbox sorted by address.
func (d *Directory) Mailboxes() []*Mailbox {
	out := make([]*Mailbox, 0, len(d.mailboxes))
	for _, mb := range d.mailboxes {
		out = append(out, mb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// CanSendAs reports whether the mailbox may use from as its envelope or header sender: its own
// address, one of its aliases, or a sub-address (+tag) of those.
func (d *Directory) CanSendAs(mb *Mailbox, from string) bool {
	addr, err := dirspec.NormalizeAddress(from)
	if err != nil {
		return false
	}
	if owner, ok := d.owners[addr]; ok {
		return owner == mb
	}
	if base, ok := stripSubaddress(addr); ok {
		owner, ok := d.owners[base]
		return ok && owner == mb
	}
	return false
}

// Errors of recipient resolution.
var (
	ErrNotLocal    = errors.New("domain is not served here")
	ErrUnknownUser = errors.New("no such user here")
	ErrBadAddress  = errors.New("invalid address")
	// ErrUnavailable: the address, or one it expands to, is in an unavailable domain (see
	// dirspec.Spec.UnavailableDomains). A temporary failure: never relay such mail.
	ErrUnavailable = errors.New("domain temporarily unavailable")
)

// Resolution says where mail for one recipient goes.
type Resolution struct {
	// Local mailboxes to store the message in, without duplicates, in a stable order.
	Local []*Mailbox
	// External addresses to forward to, without duplicates.
	External []string
	// unavailable is set when an expansion reached an unavailable domain.
	unavailable bool
}

const maxExpansionDepth = 8

// Resolve expands a recipient through aliases, mailbox aliases, sub-addressing (+tag),
// forwarding and the domain's catch-all. Loops and over-deep chains stop expanding.
func (d *Directory) Resolve(rcpt string) (Resolution, error) {
	addr, err := dirspec.NormalizeAddress(rcpt)
	if err != nil {
		return Resolution{}, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	_, dom, _ := strings.Cut(addr, "@")
	if d.unavailable[dom] {
		return Resolution{}, ErrUnavailable
	}
	if !d.IsLocalDomain(dom) {
		return Resolution{}, ErrNotLocal
	}
	var res Resolution
	seen := map[string]bool{}
	found := d.expand(addr, 0, seen, &res)
	if res.unavailable {
		// Part of the mail would have to wait: all of it waits, so nothing is stored twice.
		return Resolution{}, ErrUnavailable
	}
	if !found {
		return Resolution{}, ErrUnknownUser
	}
	if len(res.Local) == 0 && len(res.External) == 0 {
		// Only loops: treat as unknown rather than silently dropping mail.
		return Resolution{}, ErrUnknownUser
	}
	return res, nil
}

// expand adds addr's destinations to res and reports whether addr exists.
func (d *Directory) expand(addr string, depth int, seen map[string]bool, res *Resolution) bool {
	if seen[addr] {
		return true
	}
	seen[addr] = true
	_, dom, _ := strings.Cut(addr, "@")
	domain, isLocal := d.domains[dom]
	if d.unavailable[dom] {
		res.unavailable = true
		return true
	}
	if !isLocal {
		if !slices.Contains(res.External, addr) {
			res.External = append(res.External, addr)
		}
		return true
	}
	if depth > maxExpansionDepth {
		return true
	}
	if mb, ok := d.owners[addr]; ok {
		d.deliverTo(mb, depth, seen, res)
		return true
	}
	if members, ok := d.aliases[addr]; ok {
		for _, m := range members {
			d.expand(m, depth+1, seen, res)
		}
		return true
	}
	if base, ok := stripSubaddress(addr); ok {
		if _, known := d.owners[base]; known {
			return d.expand(base, depth, seen, res)
		}
		if _, known := d.aliases[base]; known {
			return d.expand(base, depth, seen, res)
		}
	}
	if domain.CatchAll != "" && domain.CatchAll != addr {
		return d.expand(domain.CatchAll, depth+1, seen, res)
	}
	return false
}

func (d *Directory) deliverTo(mb *Mailbox, depth int, seen map[string]bool, res *Resolution) {
	seen[mb.Address] = true
	if len(mb.ForwardTo) == 0 || mb.KeepCopy {
		if !slices.Contains(res.Local, mb) {
			res.Local = append(res.Local, mb)
		}
	}
	for _, target := range mb.ForwardTo {
		d.expand(target, depth+1, seen, res)
	}
}

func stripSubaddress(addr string) (string, bool) {
	local, dom, _ := strings.Cut(addr, "@")
	base, _, ok := strings.Cut(local, "+")
	if !ok || base == "" {
		return "", false
	}
	return base + "@" + dom, true
}
