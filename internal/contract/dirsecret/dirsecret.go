// Package dirsecret is the format of a mail cluster's directory in Kubernetes Secrets, shared
// by the operator (which writes it) and the mail server (which watches it).
//
// The directory of cluster C lives in Secret "C-directory" and, when it outgrows one Secret, in
// "C-directory-1" … "C-directory-(N-1)". Every part carries the same generation; the first part
// says how many parts there are. The operator writes the other parts before the first, and a
// reader accepts a set of parts only when all carry the first part's generation, so a directory
// is never assembled from two different versions.
package dirsecret

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// Keys of a directory Secret's data.
const (
	KeyDirectory  = "directory.json"
	KeyGeneration = "generation"
	KeyParts      = "parts"
)

// MaxPartBytes keeps each Secret well under the API server's 1 MiB object limit.
const MaxPartBytes = 900 << 10

// SecretName is the name of part i of cluster's directory.
func SecretName(cluster string, i int) string {
	if i == 0 {
		return cluster + "-directory"
	}
	return cluster + "-directory-" + strconv.Itoa(i)
}

// Part is one Secret's worth of directory.
type Part struct {
	Name string
	Data map[string][]byte
}

// Split serializes spec deterministically (sorted) into parts of at most maxBytes of JSON each
// (0 means MaxPartBytes). Part 0 holds the domains and aliases and as many mailboxes as fit;
// later parts hold mailboxes only.
func Split(cluster string, spec *dirspec.Spec, generation string, maxBytes int) ([]Part, error) {
	if maxBytes <= 0 {
		maxBytes = MaxPartBytes
	}
	sorted := sortedCopy(spec)
	var chunks []dirspec.Spec
	// Everything but the mailboxes lives in the first part.
	cur := dirspec.Spec{Domains: sorted.Domains, Aliases: sorted.Aliases, UnavailableDomains: sorted.UnavailableDomains}
	size, err := jsonSize(cur)
	if err != nil {
		return nil, err
	}
	for _, mb := range sorted.Mailboxes {
		n, err := jsonSize(mb)
		if err != nil {
			return nil, err
		}
		if size+n+1 > maxBytes && len(cur.Mailboxes) > 0 {
			chunks = append(chunks, cur)
			cur, size = dirspec.Spec{}, 64
		}
		cur.Mailboxes = append(cur.Mailboxes, mb)
		size += n + 1
	}
	chunks = append(chunks, cur)
	parts := make([]Part, len(chunks))
	for i, c := range chunks {
		data, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		if len(data) > maxBytes && i == 0 && len(c.Mailboxes) == 0 {
			return nil, fmt.Errorf("directory of %s: domains and aliases alone take %d bytes, over the %d-byte part limit", cluster, len(data), maxBytes)
		}
		p := Part{Name: SecretName(cluster, i), Data: map[string][]byte{KeyDirectory: data, KeyGeneration: []byte(generation)}}
		if i == 0 {
			p.Data[KeyParts] = []byte(strconv.Itoa(len(chunks)))
		}
		parts[i] = p
	}
	return parts, nil
}

// PartCount reads how many parts the first part announces.
func PartCount(first map[string][]byte) (int, error) {
	n, err := strconv.Atoi(string(first[KeyParts]))
	if err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("directory secret: %q is not a valid part count", first[KeyParts])
	}
	return n, nil
}

// Assemble joins parts (first part first) into one spec. It fails when parts are missing or
// carry different generations (the operator is mid-update; wait for the next change).
func Assemble(parts []map[string][]byte) (*dirspec.Spec, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("directory secret: no parts")
	}
	n, err := PartCount(parts[0])
	if err != nil {
		return nil, err
	}
	if len(parts) != n {
		return nil, fmt.Errorf("directory secret: have %d of %d parts", len(parts), n)
	}
	gen := string(parts[0][KeyGeneration])
	var out dirspec.Spec
	for i, p := range parts {
		if p == nil {
			return nil, fmt.Errorf("directory secret: part %d missing", i)
		}
		if g := string(p[KeyGeneration]); g != gen {
			return nil, fmt.Errorf("directory secret: part %d has generation %q, first part %q", i, g, gen)
		}
		var s dirspec.Spec
		if err := json.Unmarshal(p[KeyDirectory], &s); err != nil {
			return nil, fmt.Errorf("directory secret: part %d: %w", i, err)
		}
		if i == 0 {
			out.Domains, out.Aliases, out.UnavailableDomains = s.Domains, s.Aliases, s.UnavailableDomains
		}
		out.Mailboxes = append(out.Mailboxes, s.Mailboxes...)
	}
	return &out, nil
}

func jsonSize(v any) (int, error) {
	b, err := json.Marshal(v)
	return len(b), err
}

// sortedCopy orders everything by name so an unchanged input always serializes the same way.
func sortedCopy(spec *dirspec.Spec) dirspec.Spec {
	out := dirspec.Spec{
		Domains:   append([]dirspec.DomainSpec(nil), spec.Domains...),
		Mailboxes: append([]dirspec.MailboxSpec(nil), spec.Mailboxes...),
		Aliases:   append([]dirspec.AliasSpec(nil), spec.Aliases...),

		UnavailableDomains: sortedStrings(spec.UnavailableDomains),
	}
	sort.Slice(out.Domains, func(i, j int) bool { return out.Domains[i].Name < out.Domains[j].Name })
	sort.Slice(out.Mailboxes, func(i, j int) bool { return out.Mailboxes[i].Address < out.Mailboxes[j].Address })
	sort.Slice(out.Aliases, func(i, j int) bool { return out.Aliases[i].Address < out.Aliases[j].Address })
	for i := range out.Mailboxes {
		mb := &out.Mailboxes[i]
		mb.Aliases = sortedStrings(mb.Aliases)
		mb.ForwardTo = sortedStrings(mb.ForwardTo)
	}
	for i := range out.Aliases {
		out.Aliases[i].Members = sortedStrings(out.Aliases[i].Members)
	}
	return out
}

func sortedStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
