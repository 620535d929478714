package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// domainUsers names the Mailboxes and MailAliases in ns that use domain: for an address or an
// alias of their own, or as an alias member or forwarding target. Objects being deleted count
// too: a Mailbox purging its mail still needs its domain to find its cluster.
func domainUsers(ctx context.Context, c client.Client, ns, domain string) ([]string, error) {
	seen := map[string]bool{}
	for _, field := range []string{indexDomain, indexTargetDomain} {
		var mbs mailv1alpha1.MailboxList
		if err := c.List(ctx, &mbs, client.InNamespace(ns), client.MatchingFields{field: domain}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for _, mb := range mbs.Items {
			seen["Mailbox "+mb.Name] = true
		}
		var als mailv1alpha1.MailAliasList
		if err := c.List(ctx, &als, client.InNamespace(ns), client.MatchingFields{field: domain}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for _, al := range als.Items {
			seen["MailAlias "+al.Name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// someOf lists up to five names, and how many more there are.
func someOf(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// targetDomains are the domains of the addresses mail to obj is passed on to: a Mailbox's
// forwarding targets, a MailAlias's members.
func targetDomains(obj client.Object) []string {
	var addrs []mailv1alpha1.EmailAddress
	switch o := obj.(type) {
	case *mailv1alpha1.Mailbox:
		if o.Spec.Forwarding != nil {
			addrs = o.Spec.Forwarding.To
		}
	case *mailv1alpha1.MailAlias:
		addrs = o.Spec.Members
	}
	var out []string
	for _, a := range addrs {
		if d := addressDomain(a); d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
