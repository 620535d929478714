package controllers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// UsageCollector fills every Mailbox's status.usage and status.messages (the USED column of
// `kubectl get mailboxes`) from what the cluster's replicas store, read through their admin
// API every Interval; on the same round it reads their handoff queues (Backlogs). Only the
// elected leader runs it, and it writes a status only when the numbers changed.
type UsageCollector struct {
	Client   client.Client
	Interval time.Duration
	Log      logr.Logger
	Backlogs *backlogs
}

// usage is what the replicas of a cluster report for one address.
type usage struct{ bytes, messages int64 }

// Start runs until ctx ends; it is a manager Runnable.
func (u *UsageCollector) Start(ctx context.Context) error {
	every(ctx, u.Interval, u.collect)
	return nil
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// NeedLeaderElection keeps standby operators from doing the same work.
func (u *UsageCollector) NeedLeaderElection() bool { return true }

func (u *UsageCollector) collect(ctx context.Context) {
	var clusters mailv1alpha1.MailClusterList
	if err := u.Client.List(ctx, &clusters); err != nil {
		u.Log.Error(err, "listing MailClusters for mailbox usage")
		return
	}
	for i := range clusters.Items {
		if err := u.collectCluster(ctx, &clusters.Items[i]); err != nil {
			u.Log.V(1).Info("mailbox usage not updated", "cluster", clusters.Items[i].Name, "namespace", clusters.Items[i].Namespace, "reason", err.Error())
		}
	}
}

func (u *UsageCollector) collectCluster(ctx context.Context, mc *mailv1alpha1.MailCluster) error {
	replicas := int(ptr.Deref(mc.Spec.Replicas, 1))
	byAddress := map[string]usage{}
	complete := true // every replica answered: an address none reports holds nothing
	var backlog []string
	now := time.Now()
	defer func() { u.Backlogs.set(ctx, mc, backlogProblem(backlog)) }()
	for ordinal := 0; ordinal < replicas; ordinal++ {
		admin, err := newAdminClient(ctx, u.Client, mc.Namespace, mc.Name, ordinal)
		if err != nil {
			complete = false
			continue
		}
		if b := u.Backlogs.read(ctx, admin, mc.Name, ordinal, now); b != "" {
			backlog = append(backlog, b)
		}
		body, err := admin.do(ctx, http.MethodGet, "/admin/v1/mailboxes")
		if err != nil {
			complete = false
			continue
		}
		var list []struct {
			Address  string `json:"address"`
			Bytes    int64  `json:"bytes"`
			Messages int64  `json:"messages"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			complete = false
			continue
		}
		for _, m := range list {
			// A mailbox moved between replicas is counted where its mail is, all of it.
			k := usageKey(m.Address)
			byAddress[k] = usage{byAddress[k].bytes + m.Bytes, byAddress[k].messages + m.Messages}
		}
	}

	var domains mailv1alpha1.MailDomainList
	if err := u.Client.List(ctx, &domains, client.InNamespace(mc.Namespace), client.MatchingFields{indexClusterRef: mc.Name}); err != nil {
		return err
	}
	for _, d := range domains.Items {
		var mbs mailv1alpha1.MailboxList
		if err := u.Client.List(ctx, &mbs, client.InNamespace(mc.Namespace), client.MatchingFields{indexDomain: domainKey(d.Spec.Domain)},
			client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		for i := range mbs.Items {
			mb := &mbs.Items[i]
			if addressDomain(mb.Spec.Address) != domainKey(d.Spec.Domain) || !mb.DeletionTimestamp.IsZero() {
				continue // listed for an alias in this domain, or going away
			}
			got, ok := byAddress[usageKey(string(mb.Spec.Address))]
			switch {
			case mb.Status.Login == "":
				// Not in the directory (an address conflict, say): mail stored under its
				// address is another's.
				got = usage{}
				if mb.Status.Usage == nil && mb.Status.Messages == 0 {
					continue
				}
			case !ok && !complete:
				continue // its replica did not answer: keep the last numbers
			}
			var want *resource.Quantity
			if mb.Status.Login != "" {
				want = resource.NewQuantity(got.bytes, resource.BinarySI)
			}
			if equalJSON(mb.Status.Usage, want) && mb.Status.Messages == got.messages {
				continue
			}
			key := metav1.ObjectMeta{Name: mb.Name, Namespace: mb.Namespace}
			patch := client.MergeFrom(&mailv1alpha1.Mailbox{ObjectMeta: key, Status: mailv1alpha1.MailboxStatus{Usage: mb.Status.Usage, Messages: mb.Status.Messages}})
			next := &mailv1alpha1.Mailbox{ObjectMeta: key, Status: mailv1alpha1.MailboxStatus{Usage: want, Messages: got.messages}}
			if err := u.Client.Status().Patch(ctx, next, patch); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	return nil
}

// usageKey is an address in the servers' normal form (domain in A-labels, NFC, lowercase), so
// jörg@bücher.example finds what the server reports for jörg@xn--bcher-kva.example.
func usageKey(addr string) string {
	if n, err := dirspec.NormalizeAddress(addr); err == nil {
		return n
	}
	return strings.ToLower(addr)
}
