package builders

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

func TestAssignShards(t *testing.T) {
	tests := []struct {
		name     string
		shards   []int
		replicas int
		want     []int
	}{
		{"new mailboxes spread over the replicas", []int{-1, -1, -1, -1}, 3, []int{0, 1, 2, 0}},
		{"sticky shards stay, new ones fill the emptiest", []int{0, 0, -1, 2, -1}, 3, []int{0, 0, 1, 2, 1}},
		{"a shard beyond a scaled-down cluster stays and does not count", []int{4, -1, -1}, 2, []int{4, 0, 1}},
		{"no replicas is one", []int{-1, -1}, 0, []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := append([]int(nil), tt.shards...)
			AssignShards(got, tt.replicas)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AssignShards(%v, %d) = %v, want %v", tt.shards, tt.replicas, got, tt.want)
			}
		})
	}
}

func TestClusterConditions(t *testing.T) {
	sts := func(gen, observed int64, replicas, ready, updated int32, cur, upd string) appsv1.StatefulSet {
		s := appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{ObservedGeneration: observed, Replicas: replicas, ReadyReplicas: ready,
			UpdatedReplicas: updated, CurrentRevision: cur, UpdateRevision: upd}}
		s.Generation = gen
		return s
	}
	serving := sts(2, 2, 2, 2, 2, "r1", "r1")
	type want struct {
		ready, progressing, degraded string // "Status/Reason"
		readyReplicas                int32
		msg                          string
	}
	tests := []struct {
		name string
		o    ClusterObservation
		want want
	}{
		{"serving", ClusterObservation{Want: 2, StatefulSet: serving},
			want{"True/Reconciled", "False/Reconciled", "False/Reconciled", 2, "2 of 2 replicas serving"}},
		{"rolling out", ClusterObservation{Want: 2, StatefulSet: sts(3, 3, 2, 2, 1, "r1", "r2")},
			want{"False/RollingOut", "True/RollingOut", "False/Reconciled", 2, "1 of 2 replicas updated"}},
		{"StatefulSet not observed yet", ClusterObservation{Want: 1, StatefulSet: sts(1, 0, 0, 0, 0, "", "")},
			want{"False/RollingOut", "True/RollingOut", "False/Reconciled", 0, "rolling out"}},
		{"a replica down", ClusterObservation{Want: 2, StatefulSet: sts(2, 2, 2, 1, 2, "r1", "r1")},
			want{"False/ReplicasUnavailable", "False/Reconciled", "True/ReplicasUnavailable", 1, "1 of 2 replicas ready"}},
		{"local processes", ClusterObservation{Want: 1, LocalReplicas: 1, StatefulSet: sts(1, 0, 0, 0, 0, "", "")},
			want{"True/LocalProcesses", "False/Reconciled", "False/Reconciled", 1, "no pods: 1 of 1 mail servers run as local processes"}},
		{"load balancer pending", ClusterObservation{Want: 2, StatefulSet: serving, LoadBalancerPending: "EXTERNAL-IP <pending>"},
			want{"False/LoadBalancerPending", "False/Reconciled", "True/LoadBalancerPending", 2, "<pending>"}},
		{"relay Secret missing beats the load balancer", ClusterObservation{Want: 2, StatefulSet: sts(2, 2, 2, 0, 2, "r1", "r1"),
			LoadBalancerPending: "pending", RelayProblem: "Secret relay does not exist"},
			want{"False/RelayCredentialsMissing", "False/Reconciled", "True/RelayCredentialsMissing", 0, "Secret relay does not exist"}},
		{"scaled down below a replica holding mailboxes", ClusterObservation{Want: 1, Held: 1, StatefulSet: serving},
			want{"True/Reconciled", "True/ScaleDownHeld", "False/Reconciled", 2, "2 of 2 replicas serving"}},
		{"held, and rolling out", ClusterObservation{Want: 1, Held: 1, StatefulSet: sts(3, 3, 2, 2, 1, "r1", "r2")},
			want{"False/RollingOut", "True/RollingOut", "False/Reconciled", 2, "1 of 2 replicas updated"}},
		{"serving with a handoff backlog", ClusterObservation{Want: 2, StatefulSet: serving, HandoffBacklog: "mail-1 holds 3 messages"},
			want{"True/Reconciled", "False/Reconciled", "True/HandoffBacklog", 2, "2 of 2 replicas serving"}},
		{"a replica down outweighs its backlog", ClusterObservation{Want: 2, StatefulSet: sts(2, 2, 2, 1, 2, "r1", "r1"), HandoffBacklog: "mail-0 holds 3 messages"},
			want{"False/ReplicasUnavailable", "False/Reconciled", "True/ReplicasUnavailable", 1, "1 of 2 replicas ready"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Generation, tt.o.TLSSecret = 7, "tls"
			conds, readyReplicas, ready := ClusterConditions(tt.o)
			by := map[string]metav1.Condition{}
			for _, c := range conds {
				by[c.Type] = c
				if c.ObservedGeneration != 7 {
					t.Errorf("%s: observedGeneration %d", c.Type, c.ObservedGeneration)
				}
			}
			state := func(typ string) string { return string(by[typ].Status) + "/" + by[typ].Reason }
			got := want{state(mailv1alpha1.ConditionReady), state(mailv1alpha1.ConditionProgressing), state(mailv1alpha1.ConditionDegraded), readyReplicas, ""}
			if got.ready != tt.want.ready || got.progressing != tt.want.progressing || got.degraded != tt.want.degraded || readyReplicas != tt.want.readyReplicas {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if msg := by[mailv1alpha1.ConditionReady].Message; !strings.Contains(msg, tt.want.msg) {
				t.Errorf("Ready message %q, want it to contain %q", msg, tt.want.msg)
			}
			if ready != (by[mailv1alpha1.ConditionReady].Status == metav1.ConditionTrue) {
				t.Errorf("ready %v disagrees with the condition", ready)
			}
		})
	}
}

func TestClusterCertificateCondition(t *testing.T) {
	tests := []struct {
		o          ClusterObservation
		status     metav1.ConditionStatus
		reason, in string
	}{
		{ClusterObservation{TLSSecret: "mine"}, metav1.ConditionFalse, "CertificateConfigured", "Secret mine"},
		{ClusterObservation{SelfSigned: true, Hostname: "mx.example"}, metav1.ConditionTrue, "NoCertificateConfigured", "set spec.tls"},
		{ClusterObservation{SelfSigned: true, Hostname: "mx.example", Autoconfig: true}, metav1.ConditionTrue, "NoCertificateConfigured",
			"refuse autoconfiguration and policies"},
		{ClusterObservation{SelfSigned: true, Hostname: "mx.example", TLSWaiting: "waiting for cert-manager"}, metav1.ConditionTrue,
			"CertificatePending", "waiting for cert-manager; serving a self-signed certificate for mx.example meanwhile"},
	}
	for _, tt := range tests {
		conds, _, _ := ClusterConditions(tt.o)
		c := conds[0]
		if c.Type != mailv1alpha1.ConditionSelfSignedCertificate || c.Status != tt.status || c.Reason != tt.reason || !strings.Contains(c.Message, tt.in) {
			t.Errorf("%+v: got %+v", tt.o, c)
		}
	}
}
