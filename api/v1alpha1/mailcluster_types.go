/*
Copyright 2026 The kubemail Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailClusterSpec is the desired state of a mail server cluster.
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !(has(self.tls.secretName) && has(self.tls.issuerRef))",message="tls: set secretName or issuerRef, not both"
type MailClusterSpec struct {
	// Hostname is the fully qualified name the servers announce in their SMTP banner and EHLO,
	// and the name MX records point at. It is also the name on the TLS certificate.
	Hostname DomainName `json:"hostname"`

	// Replicas is the number of mail server pods. Each mailbox lives on one replica (Mailbox
	// status.shard; new mailboxes go to the replica with the fewest), and every replica serves
	// every mailbox: mail is handed to the mailbox's replica and IMAP and POP3 logins are
	// proxied to it, so clients may reach any replica through the Service. Scaling up takes
	// effect at once for new mailboxes; existing ones stay where they are (Mailbox spec.shard
	// moves one). Scaling down first moves the mailboxes of the replicas going away to the
	// others, two at a time, while mail keeps flowing (Mailbox status.move); those replicas
	// keep running meanwhile (Progressing, reason ScaleDownHeld).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image is the mail server image. Empty means the image the operator itself runs, so the
	// operator and its servers move in lockstep.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// ImagePullPolicy for the mail server image.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +kubebuilder:default=IfNotPresent
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Storage is the persistent volume every replica keeps its mail and queue on.
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// TLS says where the servers' certificate comes from. Without it the operator generates a
	// self-signed certificate for Hostname, so STARTTLS works from the first minute, and says so
	// in a condition.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// Service shapes the Service clients and other mail servers connect to.
	// +kubebuilder:default={}
	// +optional
	Service ServiceSpec `json:"service,omitempty"`

	// ProxyProtocol accepts HAProxy PROXY protocol headers (v1 and v2) from the listed networks,
	// so the servers see the client's real address behind a load balancer.
	// +optional
	ProxyProtocol *ProxyProtocolSpec `json:"proxyProtocol,omitempty"`

	// Outbound configures how mail leaves the cluster: directly to each domain's MX hosts, or
	// through a relay (smarthost) when the cluster cannot send on port 25.
	// +optional
	Outbound *OutboundSpec `json:"outbound,omitempty"`

	// Autoconfig serves mail clients their settings (Thunderbird autoconfig, Outlook
	// autodiscover, Apple profiles) and every domain's MTA-STS policy over HTTPS on port 443 of
	// the client Service. The names autoconfig.DOMAIN, autodiscover.DOMAIN and mta-sts.DOMAIN
	// must reach the Service, with a certificate that names them: spec.tls.issuerRef adds them
	// to the cluster's Certificate, so publish their records (status.dnsRecords) before a domain
	// joins, since an ACME issuer validates every name of the certificate (Let's Encrypt allows
	// 100 names: 33 domains). Clients and senders refuse the self-signed certificate.
	// +optional
	Autoconfig *AutoconfigSpec `json:"autoconfig,omitempty"`

	// Limits protect the servers from oversized or abusive traffic.
	// +kubebuilder:default={}
	// +optional
	Limits LimitsSpec `json:"limits,omitempty"`

	// Resources of the mail server container. A memory limit also sets the server's Go memory
	// limit (GOMEMLIMIT) to 90% of it, so the server collects garbage harder near the limit
	// rather than being killed at it.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Scheduling constraints of the mail server pods.
	// +optional
	Scheduling SchedulingSpec `json:"scheduling,omitempty"`
}

// StorageSpec describes each replica's persistent volume.
type StorageSpec struct {
	// Size of each replica's volume.
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self > 0 : quantity(self).isGreaterThan(quantity('0'))",message="storage size must be greater than zero"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volume claims; empty means the cluster's default class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// TLSSpec names the source of the servers' certificate.
type TLSSpec struct {
	// SecretName of a kubernetes.io/tls Secret holding the certificate and key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// IssuerRef is a cert-manager issuer; the operator requests a Certificate for Hostname from
	// it, named <cluster>-tls and written by cert-manager to the Secret <cluster>-tls. Until that
	// Secret holds the certificate the servers use a self-signed one, and the
	// SelfSignedCertificate condition (reason CertificatePending) says what is awaited.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// IssuerReference names a cert-manager Issuer or ClusterIssuer.
type IssuerReference struct {
	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Kind of the issuer.
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	// +kubebuilder:default=Issuer
	// +optional
	Kind string `json:"kind,omitempty"`

	// Group of the issuer.
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
}

// ServiceSpec shapes the client-facing Service.
// +kubebuilder:validation:XValidation:rule="!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'",message="externalTrafficPolicy applies only to LoadBalancer and NodePort Services"
type ServiceSpec struct {
	// Type of the Service. Mail from the internet needs LoadBalancer (or NodePort behind your own
	// load balancer).
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +kubebuilder:default=LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// Annotations added to the Service, for example a cloud load balancer's settings.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// ExternalTrafficPolicy of a LoadBalancer or NodePort Service. Empty means Local, which keeps
	// the client's address visible to the servers (needed for SPF checks and rate limits).
	// +kubebuilder:validation:Enum=Cluster;Local
	// +optional
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// ProxyProtocolSpec lists who may send PROXY protocol headers.
type ProxyProtocolSpec struct {
	// TrustedNetworks are the CIDRs of the load balancers allowed to send PROXY headers.
	// Connections from elsewhere are served as if PROXY protocol were off.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="each trusted network must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	// +listType=set
	TrustedNetworks []string `json:"trustedNetworks"`
}

// AutoconfigSpec turns client autoconfiguration and MTA-STS on.
type AutoconfigSpec struct {
	// Enabled adds port 443 (HTTPS) to the client Service and the mail servers.
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`
}

// OutboundSpec configures delivery to other domains.
type OutboundSpec struct {
	// Relay sends all outbound mail through a smarthost instead of each domain's MX hosts.
	// +optional
	Relay *RelaySpec `json:"relay,omitempty"`
}

// RelaySpec is a smarthost.
// +kubebuilder:validation:XValidation:rule="!(has(self.tls) && self.tls == 'None' && has(self.credentialsSecretRef))",message="credentialsSecretRef needs tls StartTLS or Implicit: with None the password would cross the network in clear text"
type RelaySpec struct {
	// Host name or address of the relay.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// Port of the relay.
	// +kubebuilder:default=587
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// TLS mode: StartTLS (required STARTTLS), Implicit (TLS from the first byte, usually port
	// 465) or None (only for a relay on a trusted network).
	// +kubebuilder:validation:Enum=StartTLS;Implicit;None
	// +kubebuilder:default=StartTLS
	// +optional
	TLS string `json:"tls,omitempty"`

	// CredentialsSecretRef names a Secret with `username` and `password` keys for AUTH. It is
	// mounted into the mail server pods, which read it at every connection to the relay, so
	// changed credentials apply without a restart. While it is missing or lacks a key the
	// pods cannot start and the cluster reports Ready=False with reason RelayCredentialsMissing.
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`
}

// LimitsSpec bounds what one client or message may do.
type LimitsSpec struct {
	// MaxMessageSize is the largest message accepted (advertised with SMTP SIZE).
	// +kubebuilder:default="25Mi"
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self > 0 : quantity(self).isGreaterThan(quantity('0'))",message="maxMessageSize must be greater than zero"
	// +optional
	MaxMessageSize *resource.Quantity `json:"maxMessageSize,omitempty"`

	// MaxRecipients per message.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxRecipients int32 `json:"maxRecipients,omitempty"`

	// MaxConnectionsPerIP is the number of simultaneous connections one client address may hold
	// on one replica.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxConnectionsPerIP int32 `json:"maxConnectionsPerIP,omitempty"`

	// MaxMessagesPerHour is how many messages one authenticated user may submit per hour;
	// 0 means no limit. The replica that holds the user's mailbox counts them, in a sliding
	// hour, whichever replica the client reached; past the limit MAIL FROM gets 450 4.7.1 and
	// the user's client retries later.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxMessagesPerHour int32 `json:"maxMessagesPerHour,omitempty"`
}

// SchedulingSpec places the mail server pods.
type SchedulingSpec struct {
	// NodeSelector of the pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of the pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity of the pods. Empty means a preferred anti-affinity that spreads replicas over nodes.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// TopologySpreadConstraints of the pods.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// PriorityClassName of the pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// MailClusterStatus is the observed state of a mail server cluster.
type MailClusterStatus struct {
	// Conditions: Ready, Progressing, Degraded, SelfSignedCertificate.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Replicas is the number of mail server pods that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of mail server pods that are serving.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Selector is the label selector of the pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// Domains is the number of MailDomains served by this cluster.
	// +optional
	Domains int32 `json:"domains,omitempty"`

	// Mailboxes is the number of Mailboxes served by this cluster.
	// +optional
	Mailboxes int32 `json:"mailboxes,omitempty"`

	// Endpoints lists where clients reach the cluster.
	// +listType=map
	// +listMapKey=name
	// +optional
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// Endpoint is one service a cluster offers.
type Endpoint struct {
	// Name of the service: smtp, submission, submissions, imap, imaps, pop3, pop3s.
	Name string `json:"name"`
	// Host clients connect to.
	Host string `json:"host"`
	// Port clients connect to.
	Port int32 `json:"port"`
}

// MailCluster runs a cluster of kubemail mail servers: SMTP, submission, IMAP and POP3 on
// persistent volumes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=mc,categories=mail
// +kubebuilder:printcolumn:name="Hostname",type=string,JSONPath=`.spec.hostname`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MailCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailClusterSpec   `json:"spec"`
	Status MailClusterStatus `json:"status,omitempty"`
}

// MailClusterList is a list of MailClusters.
// +kubebuilder:object:root=true
type MailClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MailCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MailCluster{}, &MailClusterList{})
}
