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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailDomainSpec is a domain whose mail a MailCluster receives and sends.
type MailDomainSpec struct {
	// Domain is the mail domain, such as example.com or bücher.example (an internationalised
	// domain, in U-labels or A-labels). status.dnsRecords names it in A-labels, the form DNS
	// uses. It cannot be changed; create a new MailDomain instead.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="domain is immutable; create a new MailDomain instead"
	Domain MailDomainName `json:"domain"`

	// ClusterRef names the MailCluster, in the same namespace, that serves this domain.
	ClusterRef LocalObjectReference `json:"clusterRef"`

	// DKIM signs mail leaving this domain. The operator generates the key once and keeps it in a
	// Secret it owns; status.dnsRecords shows the record to publish.
	// +kubebuilder:default={}
	// +optional
	DKIM DKIMSpec `json:"dkim,omitempty"`

	// CatchAll receives mail for addresses of this domain that match no Mailbox or MailAlias.
	// Empty means such mail is refused with 550 5.1.1.
	// +optional
	CatchAll EmailAddress `json:"catchAll,omitempty"`

	// DefaultQuota applies to this domain's Mailboxes that set no quota of their own; empty
	// means unlimited.
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : !quantity(self).isLessThan(quantity('0'))",message="defaultQuota must not be negative"
	// +optional
	DefaultQuota *resource.Quantity `json:"defaultQuota,omitempty"`

	// DMARC is the policy suggested in status.dnsRecords.
	// +kubebuilder:default={}
	// +optional
	DMARC DMARCSpec `json:"dmarc,omitempty"`

	// MTASTS is the MTA-STS policy (RFC 8461) other servers get for mail to this domain, served
	// by the cluster when its spec.autoconfig is enabled.
	// +kubebuilder:default={}
	// +optional
	MTASTS MTASTSSpec `json:"mtaSTS,omitempty"`
}

// MTASTSSpec is a domain's MTA-STS policy.
type MTASTSSpec struct {
	// Mode: testing (senders report failures but deliver), enforce (senders deliver only over
	// verified TLS to the MX host), or none. Start with testing.
	// +kubebuilder:validation:Enum=none;testing;enforce
	// +kubebuilder:default=testing
	// +optional
	Mode string `json:"mode,omitempty"`
}

// DKIMSpec configures DKIM signing for a domain.
type DKIMSpec struct {
	// Enabled turns signing on.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Selector is the DNS label of the key: the record lives at <selector>._domainkey.<domain>.
	// +kubebuilder:default=kubemail
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="selector must be one lowercase DNS label such as kubemail or mail2026"
	// +optional
	Selector string `json:"selector,omitempty"`

	// Algorithm of the key: rsa-sha256 (2048-bit, understood everywhere) or ed25519-sha256
	// (short keys, not yet verified by every receiver).
	// +kubebuilder:validation:Enum=rsa-sha256;ed25519-sha256
	// +kubebuilder:default=rsa-sha256
	// +optional
	Algorithm string `json:"algorithm,omitempty"`
}

// DMARCSpec is the DMARC policy to publish.
type DMARCSpec struct {
	// Policy for mail that fails DMARC: none (monitor), quarantine or reject.
	// +kubebuilder:validation:Enum=none;quarantine;reject
	// +kubebuilder:default=none
	// +optional
	Policy string `json:"policy,omitempty"`

	// ReportAddress receives aggregate reports (rua).
	// +optional
	ReportAddress EmailAddress `json:"reportAddress,omitempty"`
}

// DNSRecord is one record to publish for a domain.
type DNSRecord struct {
	// Type of the record: MX, TXT, A, AAAA or PTR.
	Type string `json:"type"`
	// Name is the fully qualified owner name.
	Name string `json:"name"`
	// Value is the record data as it goes into a zone file (without TXT string quoting).
	Value string `json:"value"`
	// Priority of an MX record.
	// +optional
	Priority *int32 `json:"priority,omitempty"`
	// Purpose says what the record is for: mx, host (the MX host's address), ptr (reverse DNS,
	// set by the address's owner), spf, dkim, dmarc.
	Purpose string `json:"purpose"`
	// Note says what to watch out for when publishing it.
	// +optional
	Note string `json:"note,omitempty"`
}

// MailDomainStatus is the observed state of a MailDomain.
type MailDomainStatus struct {
	// Conditions: Ready, with reasons such as ClusterNotFound.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Mailboxes is the number of Mailboxes in this domain.
	// +optional
	Mailboxes int32 `json:"mailboxes,omitempty"`

	// DKIMSecretName is the Secret holding the DKIM private key.
	// +optional
	DKIMSecretName string `json:"dkimSecretName,omitempty"`

	// DNSRecords are the records to publish in the domain's zone.
	// +optional
	DNSRecords []DNSRecord `json:"dnsRecords,omitempty"`
}

// MailDomain is a mail domain served by a MailCluster.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=md,categories=mail
// +kubebuilder:printcolumn:name="Domain",type=string,JSONPath=`.spec.domain`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterRef.name`
// +kubebuilder:printcolumn:name="Mailboxes",type=integer,JSONPath=`.status.mailboxes`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MailDomain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailDomainSpec   `json:"spec"`
	Status MailDomainStatus `json:"status,omitempty"`
}

// MailDomainList is a list of MailDomains.
// +kubebuilder:object:root=true
type MailDomainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MailDomain `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MailDomain{}, &MailDomainList{})
}
