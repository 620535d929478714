package builders

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/names"
)

// NetworkPolicy admits anyone to the mail ports and the metrics port of the cluster's pods, and
// only the cluster's own pods to the internal port, where the replicas hand each other mail
// and logins. It is rendered for every cluster, so that a scale from one replica needs no new
// object; where the network does not enforce policies the internal port's mutual TLS still
// refuses strangers.
func NetworkPolicy(mc *mailv1alpha1.MailCluster) *networkingv1.NetworkPolicy {
	var open []networkingv1.NetworkPolicyPort
	for _, p := range append(clientPorts(mc), names.PortHTTP) {
		open = append(open, policyPort(p))
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(mc, names.NetworkPolicy(mc.Name)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(mc)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: open},
				{
					Ports: []networkingv1.NetworkPolicyPort{policyPort(names.PortCluster)},
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(mc)}}},
				},
			},
		},
	}
}

func policyPort(p names.Port) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(p.ContainerPort))}
}
