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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailAliasSpec is an address that fans out to other addresses.
// +kubebuilder:validation:XValidation:rule="!(self.address in self.members)",message="an alias must not list itself as a member"
type MailAliasSpec struct {
	// Address of the alias, such as team@example.com. Its domain needs a MailDomain in the same
	// namespace. It cannot be changed; create a new MailAlias instead.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="address is immutable; create a new MailAlias instead"
	Address EmailAddress `json:"address"`

	// Members receive every message sent to the alias: local mailboxes, other aliases or
	// external addresses.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +listType=set
	Members []EmailAddress `json:"members"`
}

// MailAliasStatus is the observed state of a MailAlias.
type MailAliasStatus struct {
	// Conditions: Ready, with reasons such as DomainNotFound and AddressConflict.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Members is the number of members in effect.
	// +optional
	Members int32 `json:"members,omitempty"`
}

// MailAlias is an address whose mail goes to a list of other addresses.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mal,categories=mail
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MailAlias struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailAliasSpec   `json:"spec"`
	Status MailAliasStatus `json:"status,omitempty"`
}

// MailAliasList is a list of MailAliases.
// +kubebuilder:object:root=true
type MailAliasList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MailAlias `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MailAlias{}, &MailAliasList{})
}
