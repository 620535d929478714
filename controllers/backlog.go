package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/names"
)

// defaultBacklogAge is how long a message may wait in a replica's handoff queue (for the
// replica that holds its mailbox) before the MailCluster reports itself Degraded: the mail is
// safe there, but a replica that cannot reach another for this long needs a look.
const defaultBacklogAge = 5 * time.Minute

// backlogs holds what the collector last read of each cluster's handoff queues: the problem
// its Degraded condition tells, or none. A changed problem wakes the MailCluster reconciler.
type backlogs struct {
	age      time.Duration // a message waiting longer is a problem
	mu       sync.Mutex
	problems map[types.NamespacedName]string
	changed  chan event.GenericEvent
}

func newBacklogs(age time.Duration) *backlogs {
	if age <= 0 {
		age = defaultBacklogAge
	}
	return &backlogs{age: age, problems: map[types.NamespacedName]string{}, changed: make(chan event.GenericEvent, 64)}
}

// problem is the cluster's backlog problem, "" when it has none (or nothing was read yet).
// The methods of a nil *backlogs do nothing: no collector runs.
func (b *backlogs) problem(key types.NamespacedName) string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.problems[key]
}

// set records the cluster's problem ("" for none) and wakes its reconciler when it changed.
func (b *backlogs) set(ctx context.Context, mc *mailv1alpha1.MailCluster, problem string) {
	if b == nil {
		return
	}
	key := types.NamespacedName{Namespace: mc.Namespace, Name: mc.Name}
	b.mu.Lock()
	was := b.problems[key]
	if problem == "" {
		delete(b.problems, key)
	} else {
		b.problems[key] = problem
	}
	b.mu.Unlock()
	if was == problem {
		return
	}
	select {
	case b.changed <- event.GenericEvent{Object: mc}:
	case <-ctx.Done():
	}
}

// read reads one replica's handoff queue and describes it when its oldest message has waited
// too long ("" otherwise, or when the replica cannot say).
func (b *backlogs) read(ctx context.Context, admin *adminClient, cluster string, ordinal int, now time.Time) string {
	if b == nil {
		return ""
	}
	body, err := admin.do(ctx, http.MethodGet, "/admin/v1/handoff")
	if err != nil {
		return ""
	}
	var q struct {
		Messages int        `json:"messages"`
		Oldest   *time.Time `json:"oldest"`
	}
	if json.Unmarshal(body, &q) != nil || q.Oldest == nil || now.Sub(*q.Oldest) < b.age {
		return ""
	}
	return fmt.Sprintf("%s holds %d messages for other replicas, the oldest for %s", names.Pod(cluster, ordinal), q.Messages,
		now.Sub(*q.Oldest).Round(time.Second))
}

// backlogProblem joins the replicas' backlog descriptions into the condition's message.
func backlogProblem(found []string) string {
	if len(found) == 0 {
		return ""
	}
	return strings.Join(found, "; ") + " (it cannot reach the replicas that hold their mailboxes; see its handoff metrics and logs)"
}
