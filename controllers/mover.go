package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// Mover moves mailboxes between the replicas of their cluster, one step per mailbox every
// Interval, keeping each move's state in the Mailbox's status.move so that an operator that
// restarts (or a new leader) takes up where the last one stopped. It is the only writer of
// status.move, and of status.shard once a mailbox is placed.
//
// A move (see the servers' admin API, docs/mailserver.md):
//   - Copying: the target replica copies the mailbox from the source, again and again, each
//     copy taking only what changed, until one finds little left.
//   - Freezing: the directory marks the mailbox frozen. Once every replica has that directory,
//     no replica stores its mail (it waits in their handoff queues) and no session serves it
//     (those on the source are ended): the last copy is exact. The target adopts it, and the
//     status names the target as the mailbox's shard, in one write.
//   - Switching: the directory puts the mailbox on the target, not frozen. Once every replica
//     has it, their handoff queues hand the waiting mail over, the source's copy is removed,
//     and the move is over.
//
// At no point do two replicas store the mailbox's mail (the source stops before the target
// starts), and the source's copy goes only after every replica serves the target's.
type Mover struct {
	Client   client.Client
	Interval time.Duration
	Log      logr.Logger
	Recorder recorder.EventRecorder
	// Wake has the cluster rewrite its directory after a move changed phase.
	Wake chan<- event.GenericEvent
}

// settledFiles is how few files a copy may still find for the move to freeze the mailbox.
const settledFiles = 20

// Start runs until ctx ends; it is a manager Runnable.
func (m *Mover) Start(ctx context.Context) error {
	every(ctx, m.Interval, m.round)
	return nil
}

// NeedLeaderElection keeps standby operators from moving the same mailboxes.
func (m *Mover) NeedLeaderElection() bool { return true }

// maxMoves bounds the moves running at once in one cluster, so that serving mail keeps
// priority over copying it.
const maxMoves = 2

func (m *Mover) round(ctx context.Context) {
	// The cache's own objects, not copies: a round runs every second over every Mailbox, and
	// almost none moves. setMove writes to a copy.
	var mbs mailv1alpha1.MailboxList
	if err := m.Client.List(ctx, &mbs, client.UnsafeDisableDeepCopy); err != nil {
		m.Log.Error(err, "listing Mailboxes for moves")
		return
	}
	plans := map[types.NamespacedName]*movePlan{}
	clusters := map[string]*mailv1alpha1.MailCluster{} // by namespace and domain
	for i := range mbs.Items {
		mb := &mbs.Items[i]
		if mb.Status.Shard == nil || !mb.DeletionTimestamp.IsZero() {
			continue
		}
		dk := mb.Namespace + "/" + addressDomain(mb.Spec.Address)
		mc, known := clusters[dk]
		if !known {
			mc, _ = m.cluster(ctx, mb)
			clusters[dk] = mc
		}
		if mc == nil {
			continue
		}
		key := client.ObjectKeyFromObject(mc)
		if plans[key] == nil {
			plans[key] = &movePlan{mc: mc, load: map[int32]int{}}
		}
		plans[key].add(mb)
	}
	for _, p := range plans {
		m.run(ctx, p)
	}
}

// movePlan is one cluster's mailboxes as the Mover sees them: how many each replica holds,
// the moves under way, and the mailboxes that should move.
type movePlan struct {
	mc     *mailv1alpha1.MailCluster
	load   map[int32]int // mailboxes by replica, counting those moving in at their target
	active []*mailv1alpha1.Mailbox
	want   []*mailv1alpha1.Mailbox
}

func (p *movePlan) add(mb *mailv1alpha1.Mailbox) {
	replicas := ptr.Deref(p.mc.Spec.Replicas, 1)
	switch mv := mb.Status.Move; {
	case mv != nil:
		p.load[mv.To]++
		p.active = append(p.active, mb)
	case mb.Spec.Shard != nil && *mb.Spec.Shard != *mb.Status.Shard && *mb.Spec.Shard < replicas:
		// Pinned elsewhere.
		p.load[*mb.Status.Shard]++
		p.want = append(p.want, mb)
	case *mb.Status.Shard >= replicas:
		// On a replica that spec.replicas no longer asks for: it goes where there is most room.
		p.load[*mb.Status.Shard]++
		p.want = append(p.want, mb)
	default:
		p.load[*mb.Status.Shard]++
	}
}

// target is where a mailbox that should move goes: its pin, or the replica with the fewest
// mailboxes.
func (p *movePlan) target(mb *mailv1alpha1.Mailbox) int32 {
	if mb.Spec.Shard != nil && *mb.Spec.Shard < ptr.Deref(p.mc.Spec.Replicas, 1) {
		return *mb.Spec.Shard
	}
	best := int32(0)
	for r := range ptr.Deref(p.mc.Spec.Replicas, 1) {
		if p.load[r] < p.load[best] {
			best = r
		}
	}
	return best
}

// run takes every move of the cluster a step further and starts new ones while fewer than
// maxMoves run.
func (m *Mover) run(ctx context.Context, p *movePlan) {
	for _, mb := range p.active {
		if err := m.step(ctx, p.mc, mb); err != nil {
			m.Log.V(1).Info("mailbox move waits", "mailbox", mb.Name, "namespace", mb.Namespace, "reason", err.Error())
		}
	}
	for _, mb := range p.want {
		if len(p.active) >= maxMoves {
			return
		}
		to := p.target(mb)
		next := &mailv1alpha1.MailboxMove{From: *mb.Status.Shard, To: to, Phase: mailv1alpha1.MoveCopying, Started: metav1.Now()}
		if err := m.setMove(ctx, mb, p.mc, nil, next); err != nil {
			m.Log.V(1).Info("mailbox move not started", "mailbox", mb.Name, "namespace", mb.Namespace, "reason", err.Error())
			continue
		}
		m.Recorder.Eventf(mb, nil, corev1.EventTypeNormal, "Moving", "Move", "moving the mailbox from replica %d to replica %d", next.From, next.To)
		p.load[*mb.Status.Shard]--
		p.load[to]++
		p.active = append(p.active, mb)
	}
}

// errWaiting is a step that cannot go on yet; the next round tries again.
var errWaiting = errors.New("waiting")

// step takes a mailbox's move one step further.
func (m *Mover) step(ctx context.Context, mc *mailv1alpha1.MailCluster, mb *mailv1alpha1.Mailbox) error {
	mv := mb.Status.Move
	addr := string(mb.Spec.Address)
	switch mv.Phase {
	case mailv1alpha1.MoveCopying:
		st, err := m.copy(ctx, mc, mv, addr)
		if err != nil || st.Files > settledFiles {
			return err
		}
		next := *mv
		next.Phase = mailv1alpha1.MoveFreezing
		return m.setMove(ctx, mb, mc, nil, &next)
	case mailv1alpha1.MoveFreezing:
		return m.cutOver(ctx, mb, mc, addr)
	case mailv1alpha1.MoveSwitching:
		return m.finish(ctx, mb, mc, addr)
	}
	return fmt.Errorf("unknown move phase %q", mv.Phase)
}

// cutOver takes the last copy of a frozen mailbox, has the target adopt it, and names the
// target as the mailbox's shard.
func (m *Mover) cutOver(ctx context.Context, mb *mailv1alpha1.Mailbox, mc *mailv1alpha1.MailCluster, addr string) error {
	mv := mb.Status.Move
	if err := m.agree(ctx, mc, mv, addr, int(mv.From), true); err != nil {
		return err
	}
	source, err := newAdminClient(ctx, m.Client, mc.Namespace, mc.Name, int(mv.From))
	if err != nil {
		return err
	}
	var left struct{ Sessions int }
	if err := source.call(ctx, http.MethodPost, "/admin/v1/moves/"+url.PathEscape(addr)+"/end-sessions", &left); err != nil {
		return err
	}
	if left.Sessions > 0 {
		return fmt.Errorf("%d sessions still open on the source: %w", left.Sessions, errWaiting)
	}
	if _, err := m.copy(ctx, mc, mv, addr); err != nil {
		return err
	}
	target, err := newAdminClient(ctx, m.Client, mc.Namespace, mc.Name, int(mv.To))
	if err != nil {
		return err
	}
	err = target.call(ctx, http.MethodPost, "/admin/v1/moves/"+url.PathEscape(addr)+"/adopt", nil)
	if refused(err, http.StatusConflict) {
		// Adopted before the operator could record it (it stopped in between): the copy there
		// is the frozen source's if their counts agree.
		err = sameUsage(ctx, source, target, addr)
	}
	if err != nil {
		return err
	}
	next := *mv
	next.Phase = mailv1alpha1.MoveSwitching
	return m.setMove(ctx, mb, mc, ptr.To(mv.To), &next)
}

// finish hands the waiting mail over once every replica serves the mailbox from the target,
// removes the source's copy and ends the move.
func (m *Mover) finish(ctx context.Context, mb *mailv1alpha1.Mailbox, mc *mailv1alpha1.MailCluster, addr string) error {
	mv := mb.Status.Move
	if err := m.agree(ctx, mc, mv, addr, int(mv.To), false); err != nil {
		return err
	}
	for r := range replicasOf(mc, mv) {
		admin, err := newAdminClient(ctx, m.Client, mc.Namespace, mc.Name, r)
		if err != nil {
			return err
		}
		if err := admin.call(ctx, http.MethodPost, "/admin/v1/handoff/retry", nil); err != nil {
			return err
		}
	}
	source, err := newAdminClient(ctx, m.Client, mc.Namespace, mc.Name, int(mv.From))
	if err != nil {
		return err
	}
	if err := source.purge(ctx, addr); err != nil {
		return err
	}
	m.Recorder.Eventf(mb, nil, corev1.EventTypeNormal, "Moved", "Move", "moved from replica %d to replica %d in %s",
		mv.From, mv.To, time.Since(mv.Started.Time).Round(time.Second))
	return m.setMove(ctx, mb, mc, nil, nil)
}

// copy has the move's target copy the mailbox from its source (only what changed).
func (m *Mover) copy(ctx context.Context, mc *mailv1alpha1.MailCluster, mv *mailv1alpha1.MailboxMove, addr string) (moveStats, error) {
	var st moveStats
	target, err := newAdminClient(ctx, m.Client, mc.Namespace, mc.Name, int(mv.To))
	if err != nil {
		return st, err
	}
	err = target.call(ctx, http.MethodPost, fmt.Sprintf("/admin/v1/moves/%s/pull?from=%d", url.PathEscape(addr), mv.From), &st)
	return st, err
}

// moveStats is what one copy did, as the servers report it.
type moveStats struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// agree waits until every replica's directory puts the mailbox on shard, frozen or not. While
// one does not, the cluster is asked to write its directory again: its first try may have
// read the Mailbox before the move's last status write reached the operator's cache.
func (m *Mover) agree(ctx context.Context, mc *mailv1alpha1.MailCluster, mv *mailv1alpha1.MailboxMove, addr string, shard int, frozen bool) error {
	err := m.replicasAgree(ctx, mc, mv, addr, shard, frozen)
	if errors.Is(err, errWaiting) {
		m.wake(ctx, mc)
	}
	return err
}

func (m *Mover) replicasAgree(ctx context.Context, mc *mailv1alpha1.MailCluster, mv *mailv1alpha1.MailboxMove, addr string, shard int, frozen bool) error {
	for r := range replicasOf(mc, mv) {
		admin, err := newAdminClient(ctx, m.Client, mc.Namespace, mc.Name, r)
		if err != nil {
			return err
		}
		var got struct {
			Shard  int  `json:"shard"`
			Frozen bool `json:"frozen"`
		}
		if err := admin.call(ctx, http.MethodGet, "/admin/v1/directory/mailboxes/"+url.PathEscape(addr), &got); err != nil {
			return err
		}
		if got.Shard != shard || got.Frozen != frozen {
			return fmt.Errorf("replica %d's directory puts the mailbox on %d (frozen %v): %w", r, got.Shard, got.Frozen, errWaiting)
		}
	}
	return nil
}

// replicasOf counts the replicas that run during a move: all that spec.replicas asks for,
// and the source and target whatever it says.
func replicasOf(mc *mailv1alpha1.MailCluster, mv *mailv1alpha1.MailboxMove) int {
	return int(max(ptr.Deref(mc.Spec.Replicas, 1), mv.From+1, mv.To+1))
}

// sameUsage checks that the target holds what the source does (bytes and messages).
func sameUsage(ctx context.Context, source, target *adminClient, addr string) error {
	key, err := dirspec.NormalizeAddress(addr)
	if err != nil {
		return err
	}
	var counts [2]usage
	for i, a := range []*adminClient{source, target} {
		var list []struct {
			Address  string `json:"address"`
			Bytes    int64  `json:"bytes"`
			Messages int64  `json:"messages"`
		}
		if err := a.call(ctx, http.MethodGet, "/admin/v1/mailboxes", &list); err != nil {
			return err
		}
		for _, u := range list {
			if u.Address == key {
				counts[i] = usage{u.Bytes, u.Messages}
			}
		}
	}
	if counts[0] != counts[1] {
		return fmt.Errorf("the target holds mail for %s that differs from the source's (%d against %d messages); the move needs a person",
			addr, counts[1].messages, counts[0].messages)
	}
	return nil
}

// setMove writes the mailbox's move (nil: over) and, with shard, its new shard, then has the
// cluster write its directory.
func (m *Mover) setMove(ctx context.Context, mb *mailv1alpha1.Mailbox, mc *mailv1alpha1.MailCluster, shard *int32, mv *mailv1alpha1.MailboxMove) error {
	base := mb
	mb = mb.DeepCopy() // mb may be the cache's own object (see round)
	mb.Status.Move = mv
	if shard != nil {
		mb.Status.Shard = shard
	}
	// Optimistic concurrency: a status written meanwhile (by another leader) fails this one.
	if err := m.Client.Status().Patch(ctx, mb, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	m.wake(ctx, mc)
	return nil
}

// wake has the cluster write its directory from the Mailboxes' statuses.
func (m *Mover) wake(ctx context.Context, mc *mailv1alpha1.MailCluster) {
	select {
	case m.Wake <- event.GenericEvent{Object: mc}:
	case <-ctx.Done():
	}
}

// cluster is the MailCluster that serves the mailbox's domain.
func (m *Mover) cluster(ctx context.Context, mb *mailv1alpha1.Mailbox) (*mailv1alpha1.MailCluster, error) {
	var domains mailv1alpha1.MailDomainList
	if err := m.Client.List(ctx, &domains, client.InNamespace(mb.Namespace),
		client.MatchingFields{indexDomain: addressDomain(mb.Spec.Address)}); err != nil {
		return nil, err
	}
	for _, d := range domains.Items {
		var mc mailv1alpha1.MailCluster
		if err := m.Client.Get(ctx, client.ObjectKey{Namespace: mb.Namespace, Name: d.Spec.ClusterRef.Name}, &mc); err == nil {
			return &mc, nil
		}
	}
	return nil, fmt.Errorf("no cluster serves the mailbox's domain: %w", errWaiting)
}

// call runs an admin request and decodes its JSON answer into out (when not nil).
func (a *adminClient) call(ctx context.Context, method, path string, out any) error {
	body, err := a.do(ctx, method, path)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(body, out)
}
