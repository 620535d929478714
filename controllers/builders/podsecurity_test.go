package builders

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// restrictedViolations evaluates a pod template the way the API server's Pod Security admission
// does in a namespace labelled pod-security.kubernetes.io/enforce=restricted.
func restrictedViolations(t *testing.T, tmpl *corev1.PodTemplateSpec) policy.AggregateCheckResult {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	return policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &tmpl.ObjectMeta, &tmpl.Spec))
}

func TestPodTemplateIsRestricted(t *testing.T) {
	for name, mc := range map[string]*mailv1alpha1.MailCluster{"minimal": minimalCluster(), "full": fullCluster()} {
		t.Run(name, func(t *testing.T) {
			sts := StatefulSet(mc, testImage, testTLSSecret, "h")
			if res := restrictedViolations(t, &sts.Spec.Template); !res.Allowed {
				t.Errorf("pods would be refused in a restricted namespace: %s", res.ForbiddenDetail())
			}
		})
	}
}

// The evaluator is not a rubber stamp: each of these changes to the builder's pod must fail.
func TestPodSecurityCatchesMutations(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.PodSpec)
		reason string
	}{
		{"runAsNonRoot dropped", func(s *corev1.PodSpec) {
			s.SecurityContext.RunAsNonRoot = nil
			s.Containers[0].SecurityContext.RunAsNonRoot = nil
		}, "runAsNonRoot != true"},
		{"runAsNonRoot false in the container", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.RunAsNonRoot = ptr.To(false)
		}, "runAsNonRoot != true"},
		// CHOWN is allowed by baseline; only restricted refuses it.
		{"capability added", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"CHOWN"}
		}, "unrestricted capabilities"},
		{"capabilities not dropped", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Drop = nil
		}, "unrestricted capabilities"},
		{"allowPrivilegeEscalation true", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		}, "allowPrivilegeEscalation != false"},
		// Restricted reports hostPath through its volume-type allow-list.
		{"hostPath volume", func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}}})
		}, `restricted volume types (volume "host" uses restricted volume type "hostPath")`},
		{"seccompProfile missing", func(s *corev1.PodSpec) {
			s.SecurityContext.SeccompProfile = nil
			s.Containers[0].SecurityContext.SeccompProfile = nil
		}, "seccompProfile"},
		{"seccompProfile unconfined", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, "seccompProfile"},
		{"runs as root", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.RunAsUser = ptr.To(int64(0))
		}, "runAsUser=0"},
		{"host port", func(s *corev1.PodSpec) {
			s.Containers[0].Ports[0].HostPort = 25
		}, "hostPort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := StatefulSet(minimalCluster(), testImage, testTLSSecret, "h")
			tmpl := sts.Spec.Template.DeepCopy()
			tt.mutate(&tmpl.Spec)
			res := restrictedViolations(t, tmpl)
			if res.Allowed {
				t.Fatal("the restricted policy allowed the mutated pod")
			}
			if !strings.Contains(res.ForbiddenDetail(), tt.reason) {
				t.Errorf("refused for %q, want a refusal mentioning %q", res.ForbiddenDetail(), tt.reason)
			}
		})
	}
}
