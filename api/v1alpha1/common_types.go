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

// DomainName is a lowercase, fully qualified DNS name such as "example.com".
// +kubebuilder:validation:MinLength=4
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self == self.lowerAscii()",message="must be lowercase (write example.com, not Example.COM)"
// +kubebuilder:validation:XValidation:rule="self.lowerAscii().matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?[.])+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')",message="must be a fully qualified DNS name such as example.com: labels of letters, digits and inner hyphens, separated by dots, with no trailing dot"
type DomainName string

// MailDomainName is a mail domain: a lowercase, fully qualified DNS name such as "example.com",
// which may be internationalised, in U-labels ("bücher.example") or A-labels
// ("xn--bcher-kva.example"); both forms name the same domain. The operator checks the name
// against IDNA2008 too, which the API server cannot do, and reports a name that fails on the
// MailDomain's Ready condition (InvalidSpec).
// +kubebuilder:validation:MinLength=4
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule=`!self.matches(r'\p{Lu}')`,message="must be lowercase (write example.com, not Example.COM)"
// +kubebuilder:validation:XValidation:rule=`self.matches(r'^([\p{L}\p{M}\p{N}]([-\p{L}\p{M}\p{N}]{0,61}[\p{L}\p{M}\p{N}])?[.])+\p{L}([-\p{L}\p{M}\p{N}]{0,61}[\p{L}\p{M}\p{N}])?$')`,message="must be a fully qualified DNS name such as example.com or bücher.example: labels of letters (of any script), digits and inner hyphens, separated by dots, with no trailing dot"
type MailDomainName string

// EmailAddress is an addr-spec (local-part@domain) whose domain is lowercase. Internationalised
// addresses (RFC 6530) are allowed: the local part is a dot-atom of letters of any script,
// digits and !#$%&'*+/=?^_{|}~-, at most 64 octets in UTF-8, and the domain may be in
// U-labels (jörg@bücher.example).
// +kubebuilder:validation:MinLength=6
// +kubebuilder:validation:MaxLength=254
// +kubebuilder:validation:XValidation:rule="self.matches('^[^@]+@[^@]+$')",message="must be an email address of the form local-part@domain, with exactly one @"
// +kubebuilder:validation:XValidation:rule=`!self.matches('^[^@]+@[^@]+$') || self.matches(r"^(?:[a-zA-Z0-9!#$%&'*+/=?^_{|}~-]|[^\x00-\x7F\p{C}\p{Z}]|\x{200C}|\x{200D})+([.](?:[a-zA-Z0-9!#$%&'*+/=?^_{|}~-]|[^\x00-\x7F\p{C}\p{Z}]|\x{200C}|\x{200D})+)*@")`,message="the part before @ must be letters (of any script), digits or !#$%&'*+/=?^_{|}~- in runs separated by single dots"
// +kubebuilder:validation:XValidation:rule=`!self.matches('^[^@]+@[^@]+$') || size(bytes(self.split('@')[0])) <= 64`,message="the part before @ must be at most 64 octets in UTF-8 (a character outside ASCII takes 2 to 4)"
// +kubebuilder:validation:XValidation:rule=`size(bytes(self)) <= 254`,message="must be at most 254 octets in UTF-8 (a character outside ASCII takes 2 to 4)"
// +kubebuilder:validation:XValidation:rule=`!self.matches(r'@.*\p{Lu}')`,message="the domain of an address must be lowercase (write alice@example.com, not alice@Example.com)"
// +kubebuilder:validation:XValidation:rule=`!self.matches('^[^@]+@[^@]+$') || self.matches(r'@([\p{L}\p{M}\p{N}]([-\p{L}\p{M}\p{N}]{0,61}[\p{L}\p{M}\p{N}])?[.])+\p{L}([-\p{L}\p{M}\p{N}]{0,61}[\p{L}\p{M}\p{N}])?$')`,message="the part after @ must be a fully qualified domain name such as example.com or bücher.example"
type EmailAddress string

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeySelector names one key of a Secret in the same namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key inside the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// Condition types shared by every kind.
const (
	// ConditionReady is True when the object is in effect: its configuration reached the mail
	// servers (for a MailCluster: every replica is serving).
	ConditionReady = "Ready"
	// ConditionProgressing is True while a MailCluster rolls out a change.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when a MailCluster serves with fewer replicas than asked for.
	ConditionDegraded = "Degraded"
	// ConditionSelfSignedCertificate is True when a MailCluster serves TLS with a certificate the
	// operator generated because no certificate was configured.
	ConditionSelfSignedCertificate = "SelfSignedCertificate"
)

// Condition reasons, one vocabulary for all kinds.
const (
	ReasonReconciled      = "Reconciled"
	ReasonClusterNotFound = "ClusterNotFound"
	ReasonDomainNotFound  = "DomainNotFound"
	// ReasonSecretMissing: a Mailbox's password Secret, or its key, does not exist. The mailbox
	// still receives mail; its logins are disabled until the Secret is there.
	ReasonSecretMissing = "SecretMissing"
	// ReasonPasswordInvalid: a Mailbox's password is empty, not UTF-8, or has control
	// characters. As with SecretMissing, mail is kept and logins are disabled.
	ReasonPasswordInvalid = "PasswordInvalid"
	// ReasonSuspended: a Mailbox with spec.suspended receives mail and refuses logins.
	ReasonSuspended = "Suspended"
	// ReasonDomainUnavailable: an object is served, but an alias, forwarding target or member
	// of it is in a domain whose MailDomain was deleted while in use: mail that would reach
	// that domain is refused with a temporary error.
	ReasonDomainUnavailable = "DomainUnavailable"
	// ReasonDomainInUse: a MailDomain being deleted is held while Mailboxes or MailAliases
	// still use it (see AnnotationForceDelete).
	ReasonDomainInUse = "DomainInUse"
	// ReasonLoadBalancerPending: the client Service of type LoadBalancer has no address yet.
	ReasonLoadBalancerPending = "LoadBalancerPending"
	// ReasonLocalProcesses: the mail servers run as local processes (make dev), not as pods.
	ReasonLocalProcesses      = "LocalProcesses"
	ReasonAddressConflict     = "AddressConflict"
	ReasonRollingOut          = "RollingOut"
	ReasonReplicasUnavailable = "ReplicasUnavailable"
	ReasonInvalidSpec         = "InvalidSpec"
	// ReasonScaleDownHeld: spec.replicas went below a replica that holds mailboxes; it keeps
	// running (a Progressing reason) until they are moved to the others (or deleted).
	ReasonScaleDownHeld = "ScaleDownHeld"
	// ReasonHandoffBacklog: the cluster serves, but a replica has held mail for another replica
	// (the one that holds its mailboxes) for more than five minutes: it cannot reach it.
	ReasonHandoffBacklog = "HandoffBacklog"
	// ReasonRelayCredentialsMissing: the Secret named by spec.outbound.relay.credentialsSecretRef
	// is missing or lacks its username or password key, so the mail server pods cannot start.
	ReasonRelayCredentialsMissing = "RelayCredentialsMissing"
)
