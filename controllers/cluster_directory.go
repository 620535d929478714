package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/names"
)

// clusterDirectory is what the directory sub-reconciler wrote: the number of Secret parts, what
// the directory holds, and when to look again at new Mailboxes whose generated password is
// not there yet.
type clusterDirectory struct {
	parts              int
	domains, mailboxes int32
	recheck            time.Duration
	// shardsInUse is one more than the highest replica ordinal that holds a mailbox: the
	// replicas that must keep running whatever spec.replicas says, until moves exist.
	shardsInUse int32
}

// reconcileDirectory compiles the cluster's directory, writes it into its Secrets when it
// changed, and reports every Mailbox's and MailAlias's status.
func (r *MailClusterReconciler) reconcileDirectory(ctx context.Context, mc *mailv1alpha1.MailCluster) (clusterDirectory, error) {
	var none clusterDirectory
	memo := r.memos.of(mc)
	ns := client.InNamespace(mc.Namespace)
	var domains mailv1alpha1.MailDomainList
	if err := r.List(ctx, &domains, ns, client.MatchingFields{indexClusterRef: mc.Name}); err != nil {
		return none, err
	}
	dkimKeys := map[string]string{}
	domainByName := map[string]*mailv1alpha1.MailDomain{}
	var mailboxes []*mailv1alpha1.Mailbox
	var aliases []mailv1alpha1.MailAlias
	seenMailbox, seenAlias := map[string]bool{}, map[string]bool{}
	for i := range domains.Items {
		d := &domains.Items[i]
		domainByName[domainKey(d.Spec.Domain)] = d
		var key corev1.Secret
		if err := r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: names.DKIMSecret(d.Name)}, &key); err == nil {
			dkimKeys[domainKey(d.Spec.Domain)] = string(key.Data[names.DKIMPrivateKeyKey])
		}
		// Without deep copies: a cluster's thousands of Mailboxes are only read here; a
		// status write carries the new status alone.
		var mbs mailv1alpha1.MailboxList
		if err := r.List(ctx, &mbs, ns, client.MatchingFields{indexDomain: domainKey(d.Spec.Domain)}, client.UnsafeDisableDeepCopy); err != nil {
			return none, err
		}
		for i := range mbs.Items {
			mb := &mbs.Items[i]
			if !seenMailbox[mb.Name] && mb.DeletionTimestamp.IsZero() && addressDomain(mb.Spec.Address) == domainKey(d.Spec.Domain) {
				seenMailbox[mb.Name] = true
				mailboxes = append(mailboxes, mb)
			}
		}
		var als mailv1alpha1.MailAliasList
		if err := r.List(ctx, &als, ns, client.MatchingFields{indexDomain: domainKey(d.Spec.Domain)}, client.UnsafeDisableDeepCopy); err != nil {
			return none, err
		}
		for _, al := range als.Items {
			if !seenAlias[al.Name] && al.DeletionTimestamp.IsZero() {
				seenAlias[al.Name] = true
				aliases = append(aliases, al)
			}
		}
	}
	sort.Slice(mailboxes, func(i, j int) bool { return mailboxes[i].Name < mailboxes[j].Name })
	sort.Slice(aliases, func(i, j int) bool { return aliases[i].Name < aliases[j].Name })

	fpKey, err := r.fingerprintKey(ctx, mc)
	if err != nil {
		return none, err
	}
	inputs, awaiting, err := r.resolveMailboxes(ctx, mc, memo, mailboxes, domainByName, fpKey)
	if err != nil {
		return none, err
	}
	unavailable, err := r.unavailableDomains(ctx, mc, memo.dirDomains, domainByName)
	if err != nil {
		return none, err
	}
	res := builders.Directory(domains.Items, dkimKeys, inputs, aliases, unavailable...)
	if mc.Spec.Autoconfig == nil || !mc.Spec.Autoconfig.Enabled {
		// No policy is served: the directory stays as it was without autoconfig.
		for i := range res.Spec.Domains {
			res.Spec.Domains[i].MTASTSMode = ""
		}
	}
	previous := memo.dirMailboxes

	parts, generation, err := directoryParts(mc.Name, &res.Spec)
	if err != nil {
		return none, err
	}
	// The servers may read only the parts their Role names, so the Role grows before the
	// directory does.
	if _, err := apply(ctx, r.Client, r.Scheme, mc, builders.Role(mc, len(parts))); err != nil {
		return none, fmt.Errorf("role: %w", err)
	}
	if err := r.writeDirectory(ctx, mc, parts, generation, &res.Spec, previous); err != nil {
		return none, err
	}
	memo.remember(generation, &res.Spec)
	r.reportMembers(ctx, mc, inputs, awaiting.names, aliases, res)
	var inUse int32
	for _, mb := range res.Spec.Mailboxes {
		inUse = max(inUse, int32(mb.Shard)+1)
	}
	return clusterDirectory{parts: len(parts), domains: int32(len(res.Spec.Domains)), mailboxes: int32(len(res.Spec.Mailboxes)),
		recheck: awaiting.recheck, shardsInUse: inUse}, nil
}

// unavailableDomains are the domains the directory served or listed as unavailable before
// (previous) that no MailDomain in the namespace serves now while Mailboxes or MailAliases still
// use them: a MailDomain deleted with AnnotationForceDelete. Their mail gets a temporary error
// rather than a bounce, or worse, a trip to the outbound queue for addresses that were ours. A
// domain that moved to another cluster of the namespace is that cluster's, and ordinary mail
// for this one.
func (r *MailClusterReconciler) unavailableDomains(ctx context.Context, mc *mailv1alpha1.MailCluster, previous []string,
	served map[string]*mailv1alpha1.MailDomain) ([]string, error) {
	var out []string
	for _, d := range previous {
		if served[d] != nil || slices.Contains(out, d) {
			continue
		}
		var elsewhere mailv1alpha1.MailDomainList
		if err := r.List(ctx, &elsewhere, client.InNamespace(mc.Namespace), client.MatchingFields{indexDomain: d}); err != nil {
			return nil, err
		}
		if len(elsewhere.Items) > 0 {
			continue
		}
		users, err := domainUsers(ctx, r.Client, mc.Namespace, d)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fingerprintKey returns the cluster's key for password fingerprints, creating it once.
func (r *MailClusterReconciler) fingerprintKey(ctx context.Context, mc *mailv1alpha1.MailCluster) ([]byte, error) {
	data, err := secretData(ctx, r.Client, mc.Namespace, names.OperatorSecret(mc.Name))
	if err != nil {
		return nil, err
	}
	key := data[names.OperatorFingerprintKey]
	if len(key) < 32 {
		key = []byte(newPassword() + newPassword())
	}
	_, err = apply(ctx, r.Client, r.Scheme, mc, builders.OperatorSecret(mc, key))
	return key, err
}

func quotaBytes(q, def *resource.Quantity) int64 {
	if q != nil {
		return q.Value()
	}
	if def != nil {
		return def.Value()
	}
	return 0
}

// directoryParts splits spec into the data of its Secrets, each stamped with a generation
// derived from the content, so an unchanged directory is never rewritten. The generation is
// only in each part's KeyGeneration, so the content is serialized once.
func directoryParts(cluster string, spec *dirspec.Spec) ([]dirsecret.Part, string, error) {
	parts, err := dirsecret.Split(cluster, spec, "", 0)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	for _, p := range parts {
		h.Write(p.Data[dirsecret.KeyDirectory])
	}
	generation := hex.EncodeToString(h.Sum(nil))[:16]
	for _, p := range parts {
		p.Data[dirsecret.KeyGeneration] = []byte(generation)
	}
	return parts, generation, nil
}

// writeDirectory stores the directory's parts in the cluster's Secrets, touching only parts
// whose content changed: the other parts first, the first part last, then removes surplus parts.
func (r *MailClusterReconciler) writeDirectory(ctx context.Context, mc *mailv1alpha1.MailCluster, parts []dirsecret.Part, generation string,
	spec *dirspec.Spec, previous map[string]dirspec.MailboxSpec) error {
	changed := false
	for _, p := range append(slices.Clone(parts[1:]), parts[0]) {
		wrote, err := apply(ctx, r.Client, r.Scheme, mc, builders.DirectorySecret(mc, p))
		if err != nil {
			return err
		}
		changed = changed || wrote
	}
	for i := len(parts); ; i++ {
		// Asking the cache first spares the API server a failing delete on every reconcile.
		key := types.NamespacedName{Namespace: mc.Namespace, Name: dirsecret.SecretName(mc.Name, i)}
		var surplus corev1.Secret
		if err := r.Get(ctx, key, &surplus, client.UnsafeDisableDeepCopy); err != nil {
			if apierrors.IsNotFound(err) {
				break
			}
			return err
		}
		if err := r.Delete(ctx, builders.DirectorySecret(mc, dirsecret.Part{Name: key.Name})); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	if changed {
		removed, disabled := directoryLosses(previous, spec)
		note := ""
		if len(removed) > 0 {
			note = "; removed " + someOf(removed)
		}
		if len(spec.UnavailableDomains) > 0 {
			note += "; mail to " + strings.Join(spec.UnavailableDomains, ", ") + " is refused with a temporary error (MailDomain deleted while still in use)"
		}
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "DirectoryUpdated", "Update",
			"directory %s: %d domains, %d mailboxes, %d aliases in %d Secret(s)%s", generation,
			len(spec.Domains), len(spec.Mailboxes), len(spec.Aliases), len(parts), note)
		if len(disabled) > 0 {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, "LoginDisabled", "Update",
				"directory %s disabled the logins of %s (mail is still accepted); see each Mailbox's Ready condition", generation, someOf(disabled))
		}
	}
	return nil
}

// directoryLosses compares the directory before and after a change: the mailboxes it no longer
// has, and those whose logins it disabled (with why).
func directoryLosses(previous map[string]dirspec.MailboxSpec, spec *dirspec.Spec) (removed, disabled []string) {
	now := make(map[string]bool, len(spec.Mailboxes))
	for _, mb := range spec.Mailboxes {
		now[mb.Address] = true
		if prev, ok := previous[mb.Address]; ok && mb.Disabled && !prev.Disabled {
			disabled = append(disabled, mb.Address+" ("+mb.DisabledReason+")")
		}
	}
	for addr := range previous {
		if !now[addr] {
			removed = append(removed, addr)
		}
	}
	sort.Strings(removed)
	sort.Strings(disabled)
	return removed, disabled
}
