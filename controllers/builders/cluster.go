// Package builders turns kubemail's API objects into the Kubernetes objects they need. Every
// function is pure: no API calls, same input, same output; reconcilers fetch, call these, and
// apply the result.
package builders

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/names"
)

// SelectorLabels select a cluster's mail server pods.
func SelectorLabels(mc *mailv1alpha1.MailCluster) map[string]string {
	return map[string]string{
		names.LabelName:      names.AppName,
		names.LabelInstance:  mc.Name,
		names.LabelComponent: names.Component,
	}
}

// Labels go on every object made for a cluster.
func Labels(mc *mailv1alpha1.MailCluster) map[string]string {
	l := SelectorLabels(mc)
	l[names.LabelManagedBy] = names.ManagedBy
	return l
}

func objectMeta(mc *mailv1alpha1.MailCluster, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: mc.Namespace, Labels: Labels(mc)}
}

// ShutdownTimeout is how long a pod lets transactions in flight finish after SIGTERM; the pod's
// termination grace period adds a margin on top. DrainDelay comes before: the readiness probe
// (every 5 s, 2 failures) and the endpoints' update need that long to stop sending the pod
// new clients.
const (
	ShutdownTimeout = 45
	DrainDelay      = 15
)

// ServerConfig is the mail server's settings for a cluster's pods. The shard comes from the
// pod's own name at start-up.
func ServerConfig(mc *mailv1alpha1.MailCluster) *config.Config {
	listen := func(p names.Port) config.Listener {
		return config.Listener{Address: fmt.Sprintf(":%d", p.ContainerPort), ProxyProtocol: mc.Spec.ProxyProtocol != nil && p != names.PortHTTP}
	}
	c := &config.Config{
		Hostname:     string(mc.Spec.Hostname),
		DataDir:      names.DataDir,
		ShardFromEnv: "POD_NAME",
		Directory: config.DirectorySource{Kubernetes: &config.KubernetesDirectory{
			Namespace: mc.Namespace, Secret: dirsecret.SecretName(mc.Name, 0)}},
		TLS:   config.TLS{CertFile: names.TLSDir + "/tls.crt", KeyFile: names.TLSDir + "/tls.key"},
		Admin: config.Admin{TokenFile: names.AdminDir + "/" + names.AdminTokenKey},
		Listeners: config.Listeners{
			SMTP: listen(names.PortSMTP), Submission: listen(names.PortSubmission), Submissions: listen(names.PortSubmissions),
			IMAP: listen(names.PortIMAP), IMAPS: listen(names.PortIMAPS), POP3: listen(names.PortPOP3), POP3S: listen(names.PortPOP3S),
			HTTP: listen(names.PortHTTP),
		},
		Limits: config.Limits{
			MaxMessageBytes:     quantityValue(mc.Spec.Limits.MaxMessageSize, 25<<20),
			MaxRecipients:       int(mc.Spec.Limits.MaxRecipients),
			MaxConnectionsPerIP: int(mc.Spec.Limits.MaxConnectionsPerIP),
			// Per replica: a user's submissions spread over n replicas may reach n times this.
			MaxMessagesPerHour: int(mc.Spec.Limits.MaxMessagesPerHour),
		},
		LogFormat: "json",
	}
	if autoconfigEnabled(mc) {
		// The Service maps the standard client ports, which is what the documents name.
		c.Listeners.Autoconfig = listen(names.PortAutoconfig)
	}
	// Every cluster gets its internal listener, one replica too: the settings then stay the
	// same when it scales, and the pods need no restart for it.
	c.Cluster = config.Cluster{PeerAddress: PeerAddress(mc), Listen: fmt.Sprintf(":%d", names.PortCluster.ContainerPort),
		CertFile: names.ClusterDir + "/" + corev1.TLSCertKey, KeyFile: names.ClusterDir + "/" + corev1.TLSPrivateKeyKey,
		CAFile: names.ClusterDir + "/ca.crt"}
	c.Limits.ShutdownTimeout.Duration = ShutdownTimeout * 1e9
	c.Limits.DrainDelay.Duration = DrainDelay * 1e9
	if mc.Spec.ProxyProtocol != nil {
		c.ProxyProtocol.TrustedNetworks = append([]string(nil), mc.Spec.ProxyProtocol.TrustedNetworks...)
	}
	if r := relay(mc); r != nil {
		c.Outbound.Relay = &config.Relay{Host: r.Host, Port: int(r.Port), TLS: strings.ToLower(r.TLS)}
		if c.Outbound.Relay.TLS == "" {
			c.Outbound.Relay.TLS = "starttls"
		}
		if r.CredentialsSecretRef != nil {
			c.Outbound.Relay.UsernameFile = names.RelayDir + "/" + names.RelayUsernameKey
			c.Outbound.Relay.PasswordFile = names.RelayDir + "/" + names.RelayPasswordKey
		}
	}
	c.Default()
	return c
}

// PeerAddress names the replicas' internal listeners, {shard} for the ordinal: each pod's name
// under the headless Service, which ClusterCertificateNames covers.
func PeerAddress(mc *mailv1alpha1.MailCluster) string {
	return fmt.Sprintf("%s-{shard}.%s.%s.svc:%d", names.StatefulSet(mc.Name), names.HeadlessService(mc.Name), mc.Namespace,
		names.PortCluster.ContainerPort)
}

// ClusterCertificateNames are the names the replicas' shared certificate holds: every pod
// under the headless Service.
func ClusterCertificateNames(mc *mailv1alpha1.MailCluster) []string {
	return []string{fmt.Sprintf("*.%s.%s.svc", names.HeadlessService(mc.Name), mc.Namespace)}
}

// relay is the cluster's smarthost, or nil when mail goes to each domain's MX hosts.
func relay(mc *mailv1alpha1.MailCluster) *mailv1alpha1.RelaySpec {
	if mc.Spec.Outbound == nil {
		return nil
	}
	return mc.Spec.Outbound.Relay
}

// RelayCredentialsSecret names the Secret with the smarthost's username and password, or "".
func RelayCredentialsSecret(mc *mailv1alpha1.MailCluster) string {
	if r := relay(mc); r != nil && r.CredentialsSecretRef != nil {
		return r.CredentialsSecretRef.Name
	}
	return ""
}

func quantityValue(q *resource.Quantity, def int64) int64 {
	if q == nil {
		return def
	}
	return q.Value()
}

// ConfigMap holds the rendered settings; the returned hash goes on the pod template so a change
// rolls the pods.
func ConfigMap(mc *mailv1alpha1.MailCluster) (*corev1.ConfigMap, string, error) {
	data, err := yaml.Marshal(ServerConfig(mc))
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(data)
	cm := &corev1.ConfigMap{
		ObjectMeta: objectMeta(mc, names.ConfigMap(mc.Name)),
		Data:       map[string]string{"config.yaml": string(data)},
	}
	return cm, hex.EncodeToString(sum[:8]), nil
}

// autoconfigEnabled reports whether the cluster serves client autoconfiguration and MTA-STS.
func autoconfigEnabled(mc *mailv1alpha1.MailCluster) bool {
	return mc.Spec.Autoconfig != nil && mc.Spec.Autoconfig.Enabled
}

// clientPorts are the ports clients reach through the Service: the mail protocols, and HTTPS
// when the cluster serves autoconfiguration.
func clientPorts(mc *mailv1alpha1.MailCluster) []names.Port {
	ports := append([]names.Port{}, names.MailPorts...)
	if autoconfigEnabled(mc) {
		ports = append(ports, names.PortAutoconfig)
	}
	return ports
}

func containerPorts(mc *mailv1alpha1.MailCluster) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, p := range append(clientPorts(mc), names.PortHTTP, names.PortCluster) {
		out = append(out, corev1.ContainerPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: corev1.ProtocolTCP})
	}
	return out
}

// StatefulSet runs the cluster's mail servers. image is the operand image; tlsSecret names the
// Secret with tls.crt and tls.key; configHash comes from ConfigMap.
func StatefulSet(mc *mailv1alpha1.MailCluster, image, tlsSecret, configHash string) *appsv1.StatefulSet {
	if mc.Spec.Image != "" {
		image = mc.Spec.Image
	}
	return &appsv1.StatefulSet{
		ObjectMeta: objectMeta(mc, names.StatefulSet(mc.Name)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(ptr.Deref(mc.Spec.Replicas, 1)),
			ServiceName:         names.HeadlessService(mc.Name),
			Selector:            &metav1.LabelSelector{MatchLabels: SelectorLabels(mc)},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      Labels(mc),
					Annotations: map[string]string{names.AnnotationConfigHash: configHash},
				},
				Spec: mailPodSpec(mc, image, tlsSecret),
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{dataClaim(mc)},
		},
	}
}

// podSpec is a mail server pod: restricted Pod Security, spread over nodes unless the cluster
// says otherwise, its settings, certificate and admin token mounted read-only.
func mailPodSpec(mc *mailv1alpha1.MailCluster, image, tlsSecret string) corev1.PodSpec {
	affinity := mc.Spec.Scheduling.Affinity
	if affinity == nil {
		affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(mc)},
					TopologyKey:   corev1.LabelHostname,
				},
			}},
		}}
	}
	pod := corev1.PodSpec{
		ServiceAccountName:            names.ServiceAccount(mc.Name),
		TerminationGracePeriodSeconds: ptr.To(int64(DrainDelay + ShutdownTimeout + 15)),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:        ptr.To(true),
			RunAsUser:           ptr.To(int64(names.RunAsUser)),
			RunAsGroup:          ptr.To(int64(names.RunAsUser)),
			FSGroup:             ptr.To(int64(names.RunAsUser)),
			FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
			SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Affinity:                  affinity,
		NodeSelector:              mc.Spec.Scheduling.NodeSelector,
		Tolerations:               mc.Spec.Scheduling.Tolerations,
		TopologySpreadConstraints: mc.Spec.Scheduling.TopologySpreadConstraints,
		PriorityClassName:         mc.Spec.Scheduling.PriorityClassName,
		Containers:                []corev1.Container{mailserverContainer(mc, image)},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: names.ConfigMap(mc.Name)}}}},
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: tlsSecret}}},
			{Name: "admin", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: names.AdminSecret(mc.Name)}}},
			// The replicas' shared certificate; the server reloads it when the kubelet
			// refreshes the files.
			{Name: "cluster", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: names.ClusterTLS(mc.Name)}}},
		},
	}
	if secret := RelayCredentialsSecret(mc); secret != "" {
		// The kubelet refreshes the files when the Secret changes; the server reads them at
		// every connection to the smarthost, so rotated credentials need no restart.
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "relay", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secret,
			Items: []corev1.KeyToPath{{Key: names.RelayUsernameKey, Path: names.RelayUsernameKey},
				{Key: names.RelayPasswordKey, Path: names.RelayPasswordKey}},
		}}})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "relay", MountPath: names.RelayDir, ReadOnly: true})
	}
	return pod
}

// mailserverContainer runs /mailserver with the cluster's settings file.
func mailserverContainer(mc *mailv1alpha1.MailCluster, image string) corev1.Container {
	probe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(names.PortHTTP.Name)}},
			PeriodSeconds:    5,
			TimeoutSeconds:   2,
			FailureThreshold: failures,
		}
	}
	c := corev1.Container{
		Name:            names.Component,
		Image:           image,
		ImagePullPolicy: mc.Spec.ImagePullPolicy,
		Command:         []string{"/mailserver"},
		Args:            []string{"--config", names.ConfigFile},
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		},
		Ports:          containerPorts(mc),
		Resources:      mc.Spec.Resources,
		StartupProbe:   probe("/readyz", 60),
		LivenessProbe:  probe("/healthz", 6),
		ReadinessProbe: probe("/readyz", 2),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "data", MountPath: names.DataDir},
			{Name: "config", MountPath: names.ConfigDir, ReadOnly: true},
			{Name: "tls", MountPath: names.TLSDir, ReadOnly: true},
			{Name: "admin", MountPath: names.AdminDir, ReadOnly: true},
			{Name: "cluster", MountPath: names.ClusterDir, ReadOnly: true},
		},
	}
	if mem, ok := mc.Spec.Resources.Limits[corev1.ResourceMemory]; ok && mem.Value() > 0 {
		// The Go runtime collects harder as the heap nears GOMEMLIMIT, instead of the kernel
		// killing the pod at the container's limit; 10% stays for stacks and what Go does not count.
		c.Env = append(c.Env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(mem.Value()/10*9, 10)})
	}
	return c
}

// dataClaim is the claim template of each replica's mail volume (10 GiB unless set).
func dataClaim(mc *mailv1alpha1.MailCluster) corev1.PersistentVolumeClaim {
	storage := resource.NewQuantity(10<<30, resource.BinarySI)
	if mc.Spec.Storage.Size != nil {
		storage = mc.Spec.Storage.Size
	}
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: Labels(mc)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: mc.Spec.Storage.StorageClassName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *storage}},
		},
	}
}

func servicePorts(mc *mailv1alpha1.MailCluster, useStandard bool) []corev1.ServicePort {
	var out []corev1.ServicePort
	for _, p := range clientPorts(mc) {
		port := p.ContainerPort
		if useStandard {
			port = p.ServicePort
		}
		out = append(out, corev1.ServicePort{Name: p.Name, Port: port, TargetPort: intstr.FromString(p.Name), Protocol: corev1.ProtocolTCP})
	}
	return out
}

// HeadlessService gives every pod a stable DNS name (for the internal hand-off between
// replicas) and exposes the metrics port.
func HeadlessService(mc *mailv1alpha1.MailCluster) *corev1.Service {
	ports := append(servicePorts(mc, false), corev1.ServicePort{Name: names.PortHTTP.Name, Port: names.PortHTTP.ContainerPort,
		TargetPort: intstr.FromString(names.PortHTTP.Name), Protocol: corev1.ProtocolTCP})
	return &corev1.Service{
		ObjectMeta: objectMeta(mc, names.HeadlessService(mc.Name)),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 SelectorLabels(mc),
			Ports:                    ports,
			PublishNotReadyAddresses: true,
		},
	}
}

// ClientService exposes the standard mail ports (25, 587, 465, 143, 993, 110, 995).
func ClientService(mc *mailv1alpha1.MailCluster) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: objectMeta(mc, names.ClientService(mc.Name)),
		Spec: corev1.ServiceSpec{
			Type:     mc.Spec.Service.Type,
			Selector: SelectorLabels(mc),
			Ports:    servicePorts(mc, true),
		},
	}
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	}
	if len(mc.Spec.Service.Annotations) > 0 {
		svc.Annotations = map[string]string{}
		for k, v := range mc.Spec.Service.Annotations {
			svc.Annotations[k] = v
		}
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		svc.Spec.ExternalTrafficPolicy = mc.Spec.Service.ExternalTrafficPolicy
		if svc.Spec.ExternalTrafficPolicy == "" {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
	}
	return svc
}

// ServiceAccount is the mail server pods' identity.
func ServiceAccount(mc *mailv1alpha1.MailCluster) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: objectMeta(mc, names.ServiceAccount(mc.Name))}
}

// Role lets the mail servers read exactly their directory Secrets, by name, and nothing else.
func Role(mc *mailv1alpha1.MailCluster, directoryParts int) *rbacv1.Role {
	var secretNames []string
	for i := 0; i < max(directoryParts, 1); i++ {
		secretNames = append(secretNames, dirsecret.SecretName(mc.Name, i))
	}
	return &rbacv1.Role{
		ObjectMeta: objectMeta(mc, names.Role(mc.Name)),
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			ResourceNames: secretNames,
			Verbs:         []string{"get", "list", "watch"},
		}},
	}
}

// RoleBinding grants Role to the ServiceAccount.
func RoleBinding(mc *mailv1alpha1.MailCluster) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(mc, names.Role(mc.Name)),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: names.Role(mc.Name)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: names.ServiceAccount(mc.Name), Namespace: mc.Namespace}},
	}
}

// PodDisruptionBudget lets voluntary disruptions (node drains) take one replica at a time.
func PodDisruptionBudget(mc *mailv1alpha1.MailCluster) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(mc, names.PDB(mc.Name)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(mc)},
		},
	}
}
