package controllers

import (
	"context"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// Field indexes the reconcilers look objects up by.
const (
	indexClusterRef     = "spec.clusterRef.name"
	indexDomain         = "domain"
	indexTargetDomain   = "targetDomain"   // Mailboxes by forwarding targets' domains, MailAliases by members' domains
	indexPasswordSecret = "passwordSecret" // Mailboxes by spec.passwordSecretRef.name
	indexRelaySecret    = "relaySecret"    // MailClusters by spec.outbound.relay.credentialsSecretRef.name
)

// addressDomain is the domain of an address in the form objects are matched by: A-labels, so
// that jörg@bücher.example belongs to the MailDomain xn--bcher-kva.example and the other way
// round.
func addressDomain(addr mailv1alpha1.EmailAddress) string {
	_, dom, _ := strings.Cut(string(addr), "@")
	return builders.DomainKey(dom)
}

// domainKey is a MailDomain's domain in the form objects are matched by (see addressDomain).
func domainKey(d mailv1alpha1.MailDomainName) string { return builders.DomainKey(string(d)) }

// passwordSecretName is the Secret a Mailbox's password comes from: the referenced one, or the
// one the operator generates.
func passwordSecretName(mb *mailv1alpha1.Mailbox) (name, key string) {
	if ref := mb.Spec.PasswordSecretRef; ref != nil {
		key = ref.Key
		if key == "" {
			key = "password"
		}
		return ref.Name, key
	}
	return names.CredentialsSecret(mb.Name), "password"
}

// SetupIndexes registers the field indexes on the manager's cache.
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &mailv1alpha1.MailDomain{}, indexClusterRef, func(o client.Object) []string {
		return []string{o.(*mailv1alpha1.MailDomain).Spec.ClusterRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &mailv1alpha1.MailDomain{}, indexDomain, func(o client.Object) []string {
		return []string{domainKey(o.(*mailv1alpha1.MailDomain).Spec.Domain)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &mailv1alpha1.Mailbox{}, indexDomain, func(o client.Object) []string {
		mb := o.(*mailv1alpha1.Mailbox)
		doms := []string{addressDomain(mb.Spec.Address)}
		for _, a := range mb.Spec.Aliases {
			if d := addressDomain(a); d != doms[0] {
				doms = append(doms, d)
			}
		}
		return doms
	}); err != nil {
		return err
	}
	// Only named Secrets: a generated one is found through its owner, the Mailbox, and leaving
	// those out keeps two index entries per Mailbox out of memory.
	if err := idx.IndexField(ctx, &mailv1alpha1.Mailbox{}, indexPasswordSecret, func(o client.Object) []string {
		if ref := o.(*mailv1alpha1.Mailbox).Spec.PasswordSecretRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &mailv1alpha1.MailCluster{}, indexRelaySecret, func(o client.Object) []string {
		if name := builders.RelayCredentialsSecret(o.(*mailv1alpha1.MailCluster)); name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, obj := range []client.Object{&mailv1alpha1.Mailbox{}, &mailv1alpha1.MailAlias{}} {
		if err := idx.IndexField(ctx, obj, indexTargetDomain, targetDomains); err != nil {
			return err
		}
	}
	return idx.IndexField(ctx, &mailv1alpha1.MailAlias{}, indexDomain, func(o client.Object) []string {
		return []string{addressDomain(o.(*mailv1alpha1.MailAlias).Spec.Address)}
	})
}
