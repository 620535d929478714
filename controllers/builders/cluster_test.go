package builders

import (
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/names"
)

const (
	testImage     = "ghcr.io/kubemail/kubemail:v1.2.3"
	testTLSSecret = "mail-tls"
)

// minimalCluster is a MailCluster as a user writes it, with nothing but a hostname.
func minimalCluster() *mailv1alpha1.MailCluster {
	return &mailv1alpha1.MailCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: "mail-system"},
		Spec:       mailv1alpha1.MailClusterSpec{Hostname: "mx.example.com"},
	}
}

// fullCluster sets every field the builders read.
func fullCluster() *mailv1alpha1.MailCluster {
	mc := minimalCluster()
	mc.Spec = mailv1alpha1.MailClusterSpec{
		Hostname:        "mail.example.org",
		Replicas:        ptr.To(int32(3)),
		Image:           "registry.example.org/kubemail:pinned",
		ImagePullPolicy: corev1.PullAlways,
		Storage:         mailv1alpha1.StorageSpec{Size: ptr.To(resource.MustParse("50Gi")), StorageClassName: ptr.To("fast-ssd")},
		Service: mailv1alpha1.ServiceSpec{
			Type:                  corev1.ServiceTypeNodePort,
			Annotations:           map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
		},
		ProxyProtocol: &mailv1alpha1.ProxyProtocolSpec{TrustedNetworks: []string{"10.0.0.0/8", "fd00::/8"}},
		Outbound: &mailv1alpha1.OutboundSpec{Relay: &mailv1alpha1.RelaySpec{Host: "smtp.relay.example.net", Port: 465, TLS: "Implicit",
			CredentialsSecretRef: &mailv1alpha1.LocalObjectReference{Name: "relay-credentials"}}},
		Limits: mailv1alpha1.LimitsSpec{
			MaxMessageSize:      ptr.To(resource.MustParse("50Mi")),
			MaxRecipients:       250,
			MaxConnectionsPerIP: 40,
			MaxMessagesPerHour:  300,
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
		},
		Scheduling: mailv1alpha1.SchedulingSpec{
			NodeSelector: map[string]string{"node-role.example.org/mail": "true"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "mail", Effect: corev1.TaintEffectNoSchedule}},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}},
				}}},
			}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/instance": "mail"}},
			}},
			PriorityClassName: "mail-critical",
		},
	}
	return mc
}

// ownedObject is one object the operator creates for a cluster, as the builders return it.
type ownedObject struct {
	kind string
	obj  metav1.Object
}

func ownedObjects(t *testing.T, mc *mailv1alpha1.MailCluster) []ownedObject {
	t.Helper()
	cm, hash, err := ConfigMap(mc)
	if err != nil {
		t.Fatal(err)
	}
	return []ownedObject{
		{"ConfigMap", cm},
		{"StatefulSet", StatefulSet(mc, testImage, testTLSSecret, hash)},
		{"Service/headless", HeadlessService(mc)},
		{"Service/client", ClientService(mc)},
		{"ServiceAccount", ServiceAccount(mc)},
		{"Role", Role(mc, 1)},
		{"RoleBinding", RoleBinding(mc)},
		{"PodDisruptionBudget", PodDisruptionBudget(mc)},
		{"NetworkPolicy", NetworkPolicy(mc)},
	}
}

func TestClusterObjectsGolden(t *testing.T) {
	for name, mc := range map[string]*mailv1alpha1.MailCluster{"minimal": minimalCluster(), "full": fullCluster()} {
		t.Run(name, func(t *testing.T) {
			objs := ownedObjects(t, mc)
			objs = append(objs, ownedObject{"Role (3 directory parts)", Role(mc, 3)})
			goldenObjects(t, "cluster-"+name+".yaml", objs)
		})
	}
}

func TestLabelsAndSelectors(t *testing.T) {
	mc := minimalCluster()
	wantSelector := map[string]string{
		"app.kubernetes.io/name":      "kubemail",
		"app.kubernetes.io/instance":  "mail",
		"app.kubernetes.io/component": "mailserver",
	}
	if got := SelectorLabels(mc); !reflect.DeepEqual(got, wantSelector) {
		t.Errorf("SelectorLabels = %v, want %v", got, wantSelector)
	}
	wantLabels := map[string]string{"app.kubernetes.io/managed-by": "kubemail-operator"}
	for k, v := range wantSelector {
		wantLabels[k] = v
	}
	if got := Labels(mc); !reflect.DeepEqual(got, wantLabels) {
		t.Errorf("Labels = %v, want %v", got, wantLabels)
	}
	// Callers add to the maps they get; that must not leak into the next object.
	Labels(mc)["extra"] = "x"
	SelectorLabels(mc)["extra"] = "x"
	if _, leaked := Labels(mc)["extra"]; leaked {
		t.Error("Labels returns a shared map")
	}

	// Two clusters in one namespace must never select each other's pods.
	other := minimalCluster()
	other.Name = "mail2"
	sts := StatefulSet(mc, testImage, testTLSSecret, "h")
	otherPods := labels.Set(StatefulSet(other, testImage, testTLSSecret, "h").Spec.Template.Labels)
	selectors := map[string]*metav1.LabelSelector{
		"StatefulSet":         sts.Spec.Selector,
		"PodDisruptionBudget": PodDisruptionBudget(mc).Spec.Selector,
		"headless Service":    {MatchLabels: HeadlessService(mc).Spec.Selector},
		"client Service":      {MatchLabels: ClientService(mc).Spec.Selector},
	}
	for what, ls := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Fatalf("%s selector: %v", what, err)
		}
		if !reflect.DeepEqual(ls.MatchLabels, wantSelector) || len(ls.MatchExpressions) > 0 {
			t.Errorf("%s selector = %+v, want exactly %v", what, ls, wantSelector)
		}
		if !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
			t.Errorf("%s selector %v does not match the cluster's own pods %v", what, sel, sts.Spec.Template.Labels)
		}
		if sel.Matches(otherPods) {
			t.Errorf("%s selector %v also matches pods of cluster %q", what, sel, other.Name)
		}
	}
}

func TestOwnedObjectsMeta(t *testing.T) {
	wantNames := map[string]string{
		"ConfigMap":           "mail-config",
		"StatefulSet":         "mail",
		"Service/headless":    "mail-headless",
		"Service/client":      "mail",
		"ServiceAccount":      "mail-mailserver",
		"Role":                "mail-mailserver",
		"RoleBinding":         "mail-mailserver",
		"PodDisruptionBudget": "mail",
		"NetworkPolicy":       "mail",
	}
	mc := minimalCluster()
	objs := ownedObjects(t, mc)
	if len(objs) != len(wantNames) {
		t.Fatalf("test covers %d objects, expects names for %d", len(objs), len(wantNames))
	}
	for _, o := range objs {
		if got, want := o.obj.GetName(), wantNames[o.kind]; got != want {
			t.Errorf("%s name = %q, want %q", o.kind, got, want)
		}
		if got := o.obj.GetNamespace(); got != "mail-system" {
			t.Errorf("%s namespace = %q, want the cluster's namespace mail-system", o.kind, got)
		}
		if got := o.obj.GetLabels(); !reflect.DeepEqual(got, Labels(mc)) {
			t.Errorf("%s labels = %v, want %v", o.kind, got, Labels(mc))
		}
	}
}

func TestContainerPortsAreUnprivileged(t *testing.T) {
	want := []corev1.ContainerPort{
		{Name: "smtp", ContainerPort: 2525, Protocol: corev1.ProtocolTCP},
		{Name: "submission", ContainerPort: 2587, Protocol: corev1.ProtocolTCP},
		{Name: "submissions", ContainerPort: 2465, Protocol: corev1.ProtocolTCP},
		{Name: "imap", ContainerPort: 2143, Protocol: corev1.ProtocolTCP},
		{Name: "imaps", ContainerPort: 2993, Protocol: corev1.ProtocolTCP},
		{Name: "pop3", ContainerPort: 2110, Protocol: corev1.ProtocolTCP},
		{Name: "pop3s", ContainerPort: 2995, Protocol: corev1.ProtocolTCP},
		{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "cluster", ContainerPort: 7993, Protocol: corev1.ProtocolTCP},
	}
	c := StatefulSet(minimalCluster(), testImage, testTLSSecret, "h").Spec.Template.Spec.Containers[0]
	if !reflect.DeepEqual(c.Ports, want) {
		t.Errorf("container ports = %+v\nwant %+v", c.Ports, want)
	}
	for _, p := range c.Ports {
		if p.ContainerPort < 1024 || p.HostPort != 0 {
			t.Errorf("port %s: %d (host %d); a non-root container without capabilities cannot bind below 1024 and must not use host ports",
				p.Name, p.ContainerPort, p.HostPort)
		}
	}
}

// The server listens where the pod says it does: a listener on a port the pod does not declare
// would be unreachable through the Services.
func TestListenersMatchContainerPorts(t *testing.T) {
	mc := minimalCluster()
	cfg := ServerConfig(mc)
	ports := map[string]int32{}
	for _, p := range StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	l := cfg.Listeners
	for name, ln := range map[string]config.Listener{"smtp": l.SMTP, "submission": l.Submission, "submissions": l.Submissions,
		"imap": l.IMAP, "imaps": l.IMAPS, "pop3": l.POP3, "pop3s": l.POP3S, "http": l.HTTP} {
		port, ok := ports[name]
		if !ok {
			t.Errorf("listener %s has no container port", name)
			continue
		}
		if want := ":" + strconv.Itoa(int(port)); ln.Address != want {
			t.Errorf("listener %s address = %q, container port is %d", name, ln.Address, port)
		}
	}
}

func TestHeadlessService(t *testing.T) {
	svc := HeadlessService(minimalCluster())
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("clusterIP = %q, want None", svc.Spec.ClusterIP)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("publishNotReadyAddresses is off; replicas could not find each other while starting")
	}
	want := map[string]int32{"smtp": 2525, "submission": 2587, "submissions": 2465, "imap": 2143, "imaps": 2993, "pop3": 2110, "pop3s": 2995, "http": 8080}
	got := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		got[p.Name] = p.Port
		if p.TargetPort != intstr.FromString(p.Name) || p.Protocol != corev1.ProtocolTCP {
			t.Errorf("port %s: target %v protocol %s", p.Name, p.TargetPort.String(), p.Protocol)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("headless ports = %v, want %v", got, want)
	}
	if sts := StatefulSet(minimalCluster(), testImage, testTLSSecret, "h"); sts.Spec.ServiceName != svc.Name {
		t.Errorf("StatefulSet serviceName = %q, headless Service is %q", sts.Spec.ServiceName, svc.Name)
	}
}

func TestClientServicePorts(t *testing.T) {
	mc := minimalCluster()
	svc := ClientService(mc)
	want := []corev1.ServicePort{
		{Name: "smtp", Port: 25, TargetPort: intstr.FromString("smtp"), Protocol: corev1.ProtocolTCP},
		{Name: "submission", Port: 587, TargetPort: intstr.FromString("submission"), Protocol: corev1.ProtocolTCP},
		{Name: "submissions", Port: 465, TargetPort: intstr.FromString("submissions"), Protocol: corev1.ProtocolTCP},
		{Name: "imap", Port: 143, TargetPort: intstr.FromString("imap"), Protocol: corev1.ProtocolTCP},
		{Name: "imaps", Port: 993, TargetPort: intstr.FromString("imaps"), Protocol: corev1.ProtocolTCP},
		{Name: "pop3", Port: 110, TargetPort: intstr.FromString("pop3"), Protocol: corev1.ProtocolTCP},
		{Name: "pop3s", Port: 995, TargetPort: intstr.FromString("pop3s"), Protocol: corev1.ProtocolTCP},
	}
	if !reflect.DeepEqual(svc.Spec.Ports, want) {
		t.Errorf("client Service ports = %+v\nwant %+v", svc.Spec.Ports, want)
	}
	// Every named target must exist in the pod, or the Service forwards nowhere.
	podPorts := map[string]bool{}
	for _, p := range StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Template.Spec.Containers[0].Ports {
		podPorts[p.Name] = true
	}
	for _, p := range svc.Spec.Ports {
		if !podPorts[p.TargetPort.StrVal] {
			t.Errorf("client Service port %s targets %q, which the pod does not declare", p.Name, p.TargetPort.StrVal)
		}
		if p.Name == "http" {
			t.Error("the client Service exposes the http (metrics and health) port")
		}
	}
}

func TestClientServiceTypeAndTrafficPolicy(t *testing.T) {
	tests := []struct {
		name       string
		typ        corev1.ServiceType
		policy     corev1.ServiceExternalTrafficPolicy
		wantType   corev1.ServiceType
		wantPolicy corev1.ServiceExternalTrafficPolicy
	}{
		{"default is a LoadBalancer keeping client addresses", "", "", corev1.ServiceTypeLoadBalancer, corev1.ServiceExternalTrafficPolicyLocal},
		{"LoadBalancer defaults to Local", corev1.ServiceTypeLoadBalancer, "", corev1.ServiceTypeLoadBalancer, corev1.ServiceExternalTrafficPolicyLocal},
		{"LoadBalancer with Cluster", corev1.ServiceTypeLoadBalancer, corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceTypeLoadBalancer, corev1.ServiceExternalTrafficPolicyCluster},
		{"NodePort defaults to Local", corev1.ServiceTypeNodePort, "", corev1.ServiceTypeNodePort, corev1.ServiceExternalTrafficPolicyLocal},
		{"NodePort with Cluster", corev1.ServiceTypeNodePort, corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceTypeNodePort, corev1.ServiceExternalTrafficPolicyCluster},
		{"ClusterIP has no external policy", corev1.ServiceTypeClusterIP, "", corev1.ServiceTypeClusterIP, ""},
		// The API server rejects externalTrafficPolicy on a ClusterIP Service; never send one.
		{"ClusterIP ignores a stray policy", corev1.ServiceTypeClusterIP, corev1.ServiceExternalTrafficPolicyLocal, corev1.ServiceTypeClusterIP, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := minimalCluster()
			mc.Spec.Service.Type = tt.typ
			mc.Spec.Service.ExternalTrafficPolicy = tt.policy
			svc := ClientService(mc)
			if svc.Spec.Type != tt.wantType || svc.Spec.ExternalTrafficPolicy != tt.wantPolicy {
				t.Errorf("type %q policy %q, want %q %q", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy, tt.wantType, tt.wantPolicy)
			}
		})
	}
}

func TestClientServiceAnnotations(t *testing.T) {
	mc := minimalCluster()
	if a := ClientService(mc).Annotations; a != nil {
		t.Errorf("annotations without any in the spec: %v", a)
	}
	mc.Spec.Service.Annotations = map[string]string{"metallb.universe.tf/address-pool": "public", "external-dns.alpha.kubernetes.io/hostname": "mx.example.com"}
	svc := ClientService(mc)
	if !reflect.DeepEqual(svc.Annotations, mc.Spec.Service.Annotations) {
		t.Errorf("annotations = %v, want %v", svc.Annotations, mc.Spec.Service.Annotations)
	}
	svc.Annotations["added-by-apply"] = "x"
	if _, ok := mc.Spec.Service.Annotations["added-by-apply"]; ok {
		t.Error("the Service's annotations share the MailCluster's map")
	}
}

func TestRole(t *testing.T) {
	for _, tt := range []struct {
		parts int
		want  []string
	}{
		{0, []string{"mail-directory"}}, // an empty directory still has its first Secret
		{1, []string{"mail-directory"}},
		{3, []string{"mail-directory", "mail-directory-1", "mail-directory-2"}},
	} {
		role := Role(minimalCluster(), tt.parts)
		want := []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			ResourceNames: tt.want,
			Verbs:         []string{"get", "list", "watch"},
		}}
		if !reflect.DeepEqual(role.Rules, want) {
			t.Errorf("%d parts: rules = %+v\nwant %+v", tt.parts, role.Rules, want)
		}
	}
}

func TestRoleBinding(t *testing.T) {
	mc := minimalCluster()
	rb := RoleBinding(mc)
	role, sa := Role(mc, 1), ServiceAccount(mc)
	if want := (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}); rb.RoleRef != want {
		t.Errorf("roleRef = %+v, want %+v", rb.RoleRef, want)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: "mail-system"}}
	if !reflect.DeepEqual(rb.Subjects, want) {
		t.Errorf("subjects = %+v, want %+v", rb.Subjects, want)
	}
	if got := StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Template.Spec.ServiceAccountName; got != sa.Name {
		t.Errorf("pods run as ServiceAccount %q, the binding grants %q", got, sa.Name)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	pdb := PodDisruptionBudget(fullCluster())
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
	}
	if pdb.Spec.MinAvailable != nil {
		t.Errorf("minAvailable = %v; set only maxUnavailable", pdb.Spec.MinAvailable)
	}
}

func podSpec(sts *appsv1.StatefulSet) *corev1.PodSpec { return &sts.Spec.Template.Spec }

func TestStatefulSetReplicas(t *testing.T) {
	mc := minimalCluster()
	if got := StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Replicas; got == nil || *got != 1 {
		t.Errorf("replicas without spec = %v, want 1", got)
	}
	mc.Spec.Replicas = ptr.To(int32(5))
	if got := StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Replicas; *got != 5 {
		t.Errorf("replicas = %d, want 5", *got)
	}
}

func TestStatefulSetImage(t *testing.T) {
	mc := minimalCluster()
	if got := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h")).Containers[0].Image; got != testImage {
		t.Errorf("image = %q, want the operator's image %q", got, testImage)
	}
	mc.Spec.Image = "registry.example.org/kubemail:custom"
	mc.Spec.ImagePullPolicy = corev1.PullAlways
	c := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h")).Containers[0]
	if c.Image != mc.Spec.Image || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q (%s), want %q (Always)", c.Image, c.ImagePullPolicy, mc.Spec.Image)
	}
}

func TestStatefulSetVolumeClaim(t *testing.T) {
	tests := []struct {
		name      string
		storage   mailv1alpha1.StorageSpec
		wantSize  string
		wantClass *string
	}{
		{"defaults", mailv1alpha1.StorageSpec{}, "10Gi", nil},
		{"size and class from spec", mailv1alpha1.StorageSpec{Size: ptr.To(resource.MustParse("200Gi")), StorageClassName: ptr.To("fast-ssd")}, "200Gi", ptr.To("fast-ssd")},
		// An explicit empty class asks for no dynamic provisioning; it must not become nil.
		{"empty class kept", mailv1alpha1.StorageSpec{StorageClassName: ptr.To("")}, "10Gi", ptr.To("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := minimalCluster()
			mc.Spec.Storage = tt.storage
			sts := StatefulSet(mc, testImage, testTLSSecret, "h")
			if len(sts.Spec.VolumeClaimTemplates) != 1 {
				t.Fatalf("%d volume claim templates, want 1", len(sts.Spec.VolumeClaimTemplates))
			}
			pvc := sts.Spec.VolumeClaimTemplates[0]
			got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if got.Cmp(resource.MustParse(tt.wantSize)) != 0 {
				t.Errorf("size = %s, want %s", got.String(), tt.wantSize)
			}
			if !reflect.DeepEqual(pvc.Spec.StorageClassName, tt.wantClass) {
				t.Errorf("storageClassName = %v, want %v", ptr.Deref(pvc.Spec.StorageClassName, "<nil>"), ptr.Deref(tt.wantClass, "<nil>"))
			}
			if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("access modes = %v", pvc.Spec.AccessModes)
			}
			if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
				p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
				t.Errorf("PVC retention = %+v; mail must survive deleting or scaling the StatefulSet", p)
			}
			// The claim is what the data mount uses.
			var mountsData bool
			for _, m := range podSpec(sts).Containers[0].VolumeMounts {
				mountsData = mountsData || (m.Name == pvc.Name && m.MountPath == ServerConfig(mc).DataDir && !m.ReadOnly)
			}
			if !mountsData {
				t.Errorf("no writable mount of claim %q at the server's dataDir", pvc.Name)
			}
		})
	}
}

func TestStatefulSetProbes(t *testing.T) {
	c := podSpec(StatefulSet(minimalCluster(), testImage, testTLSSecret, "h")).Containers[0]
	for name, tt := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{
		"liveness":  {c.LivenessProbe, "/healthz"},
		"readiness": {c.ReadinessProbe, "/readyz"},
		"startup":   {c.StartupProbe, "/readyz"},
	} {
		if tt.probe == nil || tt.probe.HTTPGet == nil {
			t.Errorf("%s probe = %+v, want HTTP GET %s", name, tt.probe, tt.path)
			continue
		}
		if g := tt.probe.HTTPGet; g.Path != tt.path || g.Port != intstr.FromString("http") {
			t.Errorf("%s probe GET %s on port %s, want %s on http", name, g.Path, g.Port.String(), tt.path)
		}
	}
	// PROXY protocol is never on the http port: the kubelet does not send the header.
	if ServerConfig(fullCluster()).Listeners.HTTP.ProxyProtocol {
		t.Error("http listener expects PROXY headers; probes would fail")
	}
}

func TestStatefulSetShutdown(t *testing.T) {
	mc := minimalCluster()
	grace := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h")).TerminationGracePeriodSeconds
	limits := ServerConfig(mc).Limits
	shutdown := limits.DrainDelay.Duration + limits.ShutdownTimeout.Duration
	if grace == nil || time.Duration(*grace)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds = %v, must exceed the server's drain and shutdown timeout %s or the kubelet kills it mid-transaction",
			grace, shutdown)
	}
	// The drain outlasts the readiness probe's verdict: the pod leaves the endpoints before
	// its listeners close.
	probe := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h")).Containers[0].ReadinessProbe
	if verdict := time.Duration(probe.PeriodSeconds*probe.FailureThreshold) * time.Second; limits.DrainDelay.Duration <= verdict {
		t.Errorf("drainDelay %s must exceed the readiness probe's %s to fail", limits.DrainDelay.Duration, verdict)
	}
}

func TestStatefulSetSecurityAndFiles(t *testing.T) {
	mc := minimalCluster()
	spec := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h"))
	psc := spec.SecurityContext
	if psc == nil || ptr.Deref(psc.FSGroup, 0) != 65532 || ptr.Deref(psc.RunAsUser, 0) != 65532 || ptr.Deref(psc.RunAsGroup, 0) != 65532 {
		t.Errorf("pod security context = %+v, want user, group and fsGroup 65532 so the server owns its volume", psc)
	}
	c := spec.Containers[0]
	if !ptr.Deref(c.SecurityContext.ReadOnlyRootFilesystem, false) {
		t.Error("root filesystem is writable")
	}

	// The config file the container reads is the ConfigMap's key, mounted from that ConfigMap.
	cm, _, err := ConfigMap(mc)
	if err != nil {
		t.Fatal(err)
	}
	cfgArg := c.Args[slices.Index(c.Args, "--config")+1]
	if _, ok := cm.Data[path.Base(cfgArg)]; !ok {
		t.Errorf("server reads %s; ConfigMap has keys %v", cfgArg, cm.Data)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if m, v := mounts["config"], volumes["config"]; m.MountPath != path.Dir(cfgArg) || v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("config mount %+v, volume %+v; want ConfigMap %s at %s", m, v.VolumeSource, cm.Name, path.Dir(cfgArg))
	}
	// The certificate files the server is told about are in the mounted TLS Secret.
	tlsCfg := ServerConfig(mc).TLS
	if m, v := mounts["tls"], volumes["tls"]; v.Secret == nil || v.Secret.SecretName != testTLSSecret ||
		path.Dir(tlsCfg.CertFile) != m.MountPath || path.Dir(tlsCfg.KeyFile) != m.MountPath || !m.ReadOnly {
		t.Errorf("tls mount %+v, volume %+v; server expects %s and %s from Secret %s", m, v.VolumeSource, tlsCfg.CertFile, tlsCfg.KeyFile, testTLSSecret)
	}
}

func TestStatefulSetAffinity(t *testing.T) {
	mc := minimalCluster()
	got := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h")).Affinity
	want := &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(mc)},
				TopologyKey:   "kubernetes.io/hostname",
			},
		}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default affinity = %+v\nwant a preferred anti-affinity over hostnames %+v", got, want)
	}
	if got.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		t.Error("default anti-affinity is required; more replicas than nodes would not schedule")
	}

	mc = fullCluster()
	got = podSpec(StatefulSet(mc, testImage, testTLSSecret, "h")).Affinity
	if !reflect.DeepEqual(got, mc.Spec.Scheduling.Affinity) {
		t.Errorf("affinity = %+v, want the user's %+v in place of the default", got, mc.Spec.Scheduling.Affinity)
	}
	spec := podSpec(StatefulSet(mc, testImage, testTLSSecret, "h"))
	s := mc.Spec.Scheduling
	if !reflect.DeepEqual(spec.NodeSelector, s.NodeSelector) || !reflect.DeepEqual(spec.Tolerations, s.Tolerations) ||
		!reflect.DeepEqual(spec.TopologySpreadConstraints, s.TopologySpreadConstraints) || spec.PriorityClassName != s.PriorityClassName {
		t.Errorf("scheduling not passed through: %+v", spec)
	}
	if !reflect.DeepEqual(spec.Containers[0].Resources, mc.Spec.Resources) {
		t.Errorf("resources = %+v, want %+v", spec.Containers[0].Resources, mc.Spec.Resources)
	}
}

func TestServerConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg := ServerConfig(minimalCluster())
		if err := cfg.Validate(); err != nil {
			t.Fatalf("the server would refuse this config: %v", err)
		}
		if cfg.Hostname != "mx.example.com" {
			t.Errorf("hostname = %q", cfg.Hostname)
		}
		if k := cfg.Directory.Kubernetes; cfg.Directory.File != "" || k == nil || k.Namespace != "mail-system" || k.Secret != "mail-directory" {
			t.Errorf("directory source = %+v, want Secret mail-directory in namespace mail-system", cfg.Directory)
		}
		for name, l := range listeners(cfg) {
			if l.ProxyProtocol {
				t.Errorf("listener %s expects PROXY headers without spec.proxyProtocol", name)
			}
		}
		if len(cfg.ProxyProtocol.TrustedNetworks) != 0 {
			t.Errorf("trusted networks without spec.proxyProtocol: %v", cfg.ProxyProtocol.TrustedNetworks)
		}
		want := config.Limits{MaxMessageBytes: 25 << 20, MaxRecipients: 100, MaxConnectionsPerIP: 20}
		if l := cfg.Limits; l.MaxMessageBytes != want.MaxMessageBytes || l.MaxRecipients != want.MaxRecipients || l.MaxConnectionsPerIP != want.MaxConnectionsPerIP {
			t.Errorf("limits = %+v, want %+v", l, want)
		}
	})
	t.Run("from spec", func(t *testing.T) {
		mc := fullCluster()
		cfg := ServerConfig(mc)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("the server would refuse this config: %v", err)
		}
		for name, l := range listeners(cfg) {
			if wantPP := name != "http"; l.ProxyProtocol != wantPP {
				t.Errorf("listener %s proxyProtocol = %v, want %v", name, l.ProxyProtocol, wantPP)
			}
		}
		if !slices.Equal(cfg.ProxyProtocol.TrustedNetworks, []string{"10.0.0.0/8", "fd00::/8"}) {
			t.Errorf("trusted networks = %v", cfg.ProxyProtocol.TrustedNetworks)
		}
		if l := cfg.Limits; l.MaxMessageBytes != 50<<20 || l.MaxRecipients != 250 || l.MaxConnectionsPerIP != 40 || l.MaxMessagesPerHour != 300 {
			t.Errorf("limits = %+v, want 50Mi, 250 recipients, 40 connections per IP, 300 messages per hour", l)
		}
		wantRelay := config.Relay{Host: "smtp.relay.example.net", Port: 465, TLS: "implicit",
			UsernameFile: "/etc/kubemail/relay/username", PasswordFile: "/etc/kubemail/relay/password"}
		if r := cfg.Outbound.Relay; r == nil || *r != wantRelay {
			t.Errorf("outbound relay = %+v, want %+v", r, wantRelay)
		}
		plain := fullCluster()
		plain.Spec.Outbound.Relay = &mailv1alpha1.RelaySpec{Host: "10.1.2.3", Port: 25, TLS: "None"}
		pc := ServerConfig(plain)
		if err := pc.Validate(); err != nil {
			t.Errorf("the server would refuse a relay without TLS: %v", err)
		}
		if r := pc.Outbound.Relay; r == nil || r.TLS != "none" || r.UsernameFile != "" || r.Port != 25 {
			t.Errorf("relay without TLS = %+v", r)
		}
		if sts := StatefulSet(plain, testImage, testTLSSecret, "h"); len(sts.Spec.Template.Spec.Volumes) != 4 {
			t.Errorf("a relay without credentials mounts %d volumes, want the 4 of every pod", len(sts.Spec.Template.Spec.Volumes))
		}
		cfg.ProxyProtocol.TrustedNetworks[0] = "0.0.0.0/0"
		if mc.Spec.ProxyProtocol.TrustedNetworks[0] != "10.0.0.0/8" {
			t.Error("the config shares the MailCluster's trusted networks")
		}
	})
}

func listeners(c *config.Config) map[string]config.Listener {
	l := c.Listeners
	return map[string]config.Listener{"smtp": l.SMTP, "submission": l.Submission, "submissions": l.Submissions,
		"imap": l.IMAP, "imaps": l.IMAPS, "pop3": l.POP3, "pop3s": l.POP3S, "http": l.HTTP}
}

// What the pods read back from the ConfigMap is what ServerConfig built.
func TestConfigMapLoadsInTheServer(t *testing.T) {
	t.Setenv("POD_NAME", "mail-0") // replica 0: the shard the settings leave at 0
	for name, mc := range map[string]*mailv1alpha1.MailCluster{"minimal": minimalCluster(), "full": fullCluster()} {
		t.Run(name, func(t *testing.T) {
			cm, _, err := ConfigMap(mc)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
				t.Fatal(err)
			}
			loaded, err := config.Load(file)
			if err != nil {
				t.Fatalf("the server cannot load the ConfigMap: %v", err)
			}
			if want := ServerConfig(mc); !reflect.DeepEqual(loaded, want) {
				t.Errorf("loaded %+v\nbuilt  %+v", loaded, want)
			}
		})
	}
}

func TestConfigHash(t *testing.T) {
	hashOf := func(t *testing.T, mc *mailv1alpha1.MailCluster) string {
		t.Helper()
		_, h, err := ConfigMap(mc)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := hashOf(t, fullCluster())
	if again := hashOf(t, fullCluster()); again != base {
		t.Fatalf("same cluster, different hashes %s and %s", base, again)
	}
	if sts := StatefulSet(fullCluster(), testImage, testTLSSecret, base); sts.Spec.Template.Annotations["mail.kubemail.io/config-hash"] != base {
		t.Errorf("pod template annotations = %v, want the config hash %s", sts.Spec.Template.Annotations, base)
	}
	tests := []struct {
		name    string
		change  func(*mailv1alpha1.MailCluster)
		rollout bool
	}{
		{"hostname", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Hostname = "mx2.example.org" }, true},
		{"max message size", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Limits.MaxMessageSize = ptr.To(resource.MustParse("10Mi")) }, true},
		{"max recipients", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Limits.MaxRecipients = 251 }, true},
		{"max connections per IP", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Limits.MaxConnectionsPerIP = 41 }, true},
		{"trusted networks", func(mc *mailv1alpha1.MailCluster) { mc.Spec.ProxyProtocol.TrustedNetworks = []string{"192.168.0.0/16"} }, true},
		{"proxy protocol off", func(mc *mailv1alpha1.MailCluster) { mc.Spec.ProxyProtocol = nil }, true},
		{"namespace", func(mc *mailv1alpha1.MailCluster) { mc.Namespace = "other" }, true},
		{"replicas", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Replicas = ptr.To(int32(7)) }, false},
		{"image", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Image = "other:tag" }, false},
		{"resources", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Resources = corev1.ResourceRequirements{} }, false},
		{"storage", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Storage.Size = ptr.To(resource.MustParse("1Ti")) }, false},
		{"service", func(mc *mailv1alpha1.MailCluster) {
			mc.Spec.Service = mailv1alpha1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}
		}, false},
		{"scheduling", func(mc *mailv1alpha1.MailCluster) { mc.Spec.Scheduling = mailv1alpha1.SchedulingSpec{} }, false},
		{"labels", func(mc *mailv1alpha1.MailCluster) { mc.Labels = map[string]string{"team": "mail"} }, false},
		// 50Mi written as bytes is the same setting.
		{"same size, other spelling", func(mc *mailv1alpha1.MailCluster) {
			mc.Spec.Limits.MaxMessageSize = ptr.To(resource.MustParse("52428800"))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := fullCluster()
			tt.change(mc)
			if changed := hashOf(t, mc) != base; changed != tt.rollout {
				t.Errorf("changing %s: hash changed = %v, want %v", tt.name, changed, tt.rollout)
			}
		})
	}
}

// spec.autoconfig.enabled adds HTTPS: the settings file's autoconfig listener on the container
// port, the client Service's 443 to it; off, nothing of it appears.
func TestAutoconfigPort(t *testing.T) {
	mc := minimalCluster()
	has := func(mc *mailv1alpha1.MailCluster) (listener string, svc, container bool) {
		for _, p := range ClientService(mc).Spec.Ports {
			if p.Name == "https" && p.Port == 443 && p.TargetPort.StrVal == "https" {
				svc = true
			}
		}
		for _, p := range StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Template.Spec.Containers[0].Ports {
			if p.Name == "https" && p.ContainerPort == 8443 {
				container = true
			}
		}
		return ServerConfig(mc).Listeners.Autoconfig.Address, svc, container
	}
	if l, svc, c := has(mc); l != "" || svc || c {
		t.Errorf("autoconfig off: listener %q, service port %v, container port %v", l, svc, c)
	}
	mc.Spec.Autoconfig = &mailv1alpha1.AutoconfigSpec{Enabled: true}
	if l, svc, c := has(mc); l != ":8443" || !svc || !c {
		t.Errorf("autoconfig on: listener %q, service port %v, container port %v", l, svc, c)
	}
}

// Every pod reaches the others on the internal port, under names the shared certificate
// covers; the settings do not depend on the number of replicas.
func TestClusterSettings(t *testing.T) {
	mc := minimalCluster()
	mc.Spec.Replicas = ptr.To(int32(3))
	cfg := ServerConfig(mc)
	if cfg.Cluster.PeerAddress != "mail-{shard}.mail-headless.mail-system.svc:7993" || cfg.Cluster.Listen != ":7993" {
		t.Errorf("cluster settings %+v", cfg.Cluster)
	}
	cfg.Shard = 2
	if err := cfg.Validate(); err != nil {
		t.Errorf("the settings of replica 2: %v", err)
	}
	for shard := range 3 {
		host, _, _ := net.SplitHostPort(cfg.Cluster.Peer(shard))
		if host != names.Pod(mc.Name, shard)+".mail-headless.mail-system.svc" || !matchesWildcard(ClusterCertificateNames(mc)[0], host) {
			t.Errorf("replica %d at %q: the cluster certificate %v must cover it", shard, host, ClusterCertificateNames(mc))
		}
	}
	pod := StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Template.Spec
	if !slices.ContainsFunc(pod.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == "cluster" && p.ContainerPort == 7993 }) {
		t.Errorf("no cluster container port: %v", pod.Containers[0].Ports)
	}
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "mail-cluster-tls" }) {
		t.Errorf("the cluster certificate is not mounted: %v", pod.Volumes)
	}
	for _, p := range ClientService(mc).Spec.Ports {
		if p.Name == "cluster" {
			t.Errorf("the internal port is on the client Service")
		}
	}
}

func matchesWildcard(pattern, host string) bool {
	rest, ok := strings.CutPrefix(pattern, "*.")
	label, domain, found := strings.Cut(host, ".")
	return ok && found && label != "" && domain == rest
}

// The internal port admits the cluster's pods alone; every client port and the metrics port
// admit anyone.
func TestNetworkPolicy(t *testing.T) {
	mc := minimalCluster()
	np := NetworkPolicy(mc)
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("ingress rules: %+v", np.Spec.Ingress)
	}
	open, internal := np.Spec.Ingress[0], np.Spec.Ingress[1]
	if len(open.From) != 0 {
		t.Errorf("the client ports admit only %v", open.From)
	}
	var openPorts []int32
	for _, p := range open.Ports {
		openPorts = append(openPorts, p.Port.IntVal)
	}
	for _, p := range StatefulSet(mc, testImage, testTLSSecret, "h").Spec.Template.Spec.Containers[0].Ports {
		if p.Name != "cluster" && !slices.Contains(openPorts, p.ContainerPort) {
			t.Errorf("container port %s (%d) is not admitted", p.Name, p.ContainerPort)
		}
	}
	if slices.Contains(openPorts, 7993) {
		t.Errorf("the internal port is open to anyone")
	}
	if len(internal.Ports) != 1 || internal.Ports[0].Port.IntVal != 7993 || len(internal.From) != 1 ||
		!maps.Equal(internal.From[0].PodSelector.MatchLabels, SelectorLabels(mc)) {
		t.Errorf("internal port rule %+v, want 7993 from the cluster's pods", internal)
	}
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, SelectorLabels(mc)) {
		t.Errorf("the policy selects %v", np.Spec.PodSelector.MatchLabels)
	}
}
