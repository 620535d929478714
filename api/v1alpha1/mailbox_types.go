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

// DeletionPolicy says what happens to a mailbox's stored mail when the Mailbox is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the stored mail on the volume; a new Mailbox with the same
	// address finds it again.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete purges the stored mail before the Mailbox goes away.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// MailboxSpec is one mail account.
// +kubebuilder:validation:XValidation:rule="!has(self.aliases) || !(self.address in self.aliases)",message="aliases must not repeat the mailbox's own address"
type MailboxSpec struct {
	// Address of the mailbox, such as alice@example.com. Its domain needs a MailDomain in the
	// same namespace. It cannot be changed; create a new Mailbox instead.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="address is immutable; create a new Mailbox instead"
	Address EmailAddress `json:"address"`

	// DisplayName is the person's name, used in generated mail such as bounces.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// PasswordSecretRef names the Secret key holding the password. Without it the operator
	// generates a strong password once into a Secret named <name>-credentials. Only a hash of the
	// password ever reaches the mail servers.
	// +optional
	PasswordSecretRef *PasswordSecretRef `json:"passwordSecretRef,omitempty"`

	// Quota is the most mail the mailbox may hold; 0 means unlimited. Empty means the
	// MailDomain's defaultQuota.
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : !quantity(self).isLessThan(quantity('0'))",message="quota must not be negative"
	// +optional
	Quota *resource.Quantity `json:"quota,omitempty"`

	// Aliases are further addresses that deliver to this mailbox and that it may send as. Each
	// must be in a domain this cluster serves.
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	// +optional
	Aliases []EmailAddress `json:"aliases,omitempty"`

	// Forwarding sends a copy of every incoming message to other addresses.
	// +optional
	Forwarding *ForwardingSpec `json:"forwarding,omitempty"`

	// Suspended refuses logins and submission for this mailbox; incoming mail is still stored.
	// +kubebuilder:default=false
	// +optional
	Suspended bool `json:"suspended,omitempty"`

	// DeletionPolicy says what happens to the stored mail when this Mailbox is deleted.
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Shard pins the mailbox to one replica of its cluster (an ordinal below spec.replicas):
	// the operator moves it there, with every folder, UID and flag, while mail keeps flowing
	// (status.move shows the move). Empty leaves the placement to the operator.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=63
	// +optional
	Shard *int32 `json:"shard,omitempty"`
}

// PasswordSecretRef names the key of a Secret that holds a password.
type PasswordSecretRef struct {
	// Name of the Secret, in the Mailbox's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the Secret.
	// +kubebuilder:default=password
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// ForwardingSpec forwards incoming mail.
type ForwardingSpec struct {
	// To is where copies go: local or external addresses. External ones are sent with an
	// SRS-rewritten envelope sender so SPF still passes at the destination.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +listType=set
	To []EmailAddress `json:"to"`

	// KeepCopy also stores each message in this mailbox.
	// +kubebuilder:default=true
	// +optional
	KeepCopy *bool `json:"keepCopy,omitempty"`
}

// MailboxStatus is the observed state of a Mailbox.
type MailboxStatus struct {
	// Conditions: Ready, with reasons such as DomainNotFound, SecretMissing, PasswordInvalid,
	// AddressConflict and Suspended.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Quota in effect (from the Mailbox or its domain's default); empty means unlimited.
	// +optional
	Quota *resource.Quantity `json:"quota,omitempty"`

	// Usage is the size of the stored mail, as the mail servers report it to the operator
	// (every minute by default: the operator's --mailbox-usage-interval).
	// +optional
	Usage *resource.Quantity `json:"usage,omitempty"`

	// Messages is the number of stored messages.
	// +optional
	Messages int64 `json:"messages,omitempty"`

	// Shard is the replica ordinal that holds this mailbox's data. It changes only when a move
	// ends.
	// +optional
	Shard *int32 `json:"shard,omitempty"`

	// Move is the move of the mailbox to another replica under way, if any.
	// +optional
	Move *MailboxMove `json:"move,omitempty"`

	// CredentialsSecretName names the Secret with the generated password, when the operator
	// generated one.
	// +optional
	CredentialsSecretName string `json:"credentialsSecretName,omitempty"`

	// Login says whether the mailbox can log in: Enabled; Suspended (spec.suspended); or
	// LoginDisabled (its password Secret is missing or invalid: mail is still accepted and
	// stored, and logins come back once the Secret holds a valid password). Empty while the
	// mailbox is not served at all (see the Ready condition).
	// +kubebuilder:validation:Enum=Enabled;Suspended;LoginDisabled
	// +optional
	Login LoginState `json:"login,omitempty"`
}

// MailboxMove is a mailbox's move from one replica to another.
type MailboxMove struct {
	// From is the replica that holds the mailbox until the move ends; To the one it goes to.
	From int32 `json:"from"`
	To   int32 `json:"to"`
	// Phase: Copying (the mail is copied while the mailbox is served as always), Freezing (a
	// few seconds: its mail waits in the replicas' queues and its logins get a temporary
	// failure while the last changes are copied), Switching (the new replica serves it; the old
	// copy is removed).
	// +kubebuilder:validation:Enum=Copying;Freezing;Switching
	Phase MovePhase `json:"phase"`
	// Started is when the move began.
	Started metav1.Time `json:"started"`
}

// MovePhase is where a mailbox's move stands.
type MovePhase string

const (
	MoveCopying   MovePhase = "Copying"
	MoveFreezing  MovePhase = "Freezing"
	MoveSwitching MovePhase = "Switching"
)

// LoginState is whether a served Mailbox can log in.
type LoginState string

const (
	LoginEnabled   LoginState = "Enabled"
	LoginSuspended LoginState = "Suspended"
	LoginDisabled  LoginState = "LoginDisabled"
)

// Mailbox is a mail account: an address, a password and the mail stored for it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mbx,categories=mail
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Quota",type=string,JSONPath=`.status.quota`
// +kubebuilder:printcolumn:name="Used",type=string,JSONPath=`.status.usage`
// +kubebuilder:printcolumn:name="Login",type=string,JSONPath=`.status.login`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Shard",type=integer,JSONPath=`.status.shard`,priority=1
// +kubebuilder:printcolumn:name="Moving",type=string,JSONPath=`.status.move.phase`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Mailbox struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailboxSpec   `json:"spec"`
	Status MailboxStatus `json:"status,omitempty"`
}

// MailboxList is a list of Mailboxes.
// +kubebuilder:object:root=true
type MailboxList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Mailbox `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Mailbox{}, &MailboxList{})
}
