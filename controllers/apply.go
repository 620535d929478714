package controllers

import (
	"context"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// apply creates obj (as built by controllers/builders), owned by owner, or brings the live
// object's owned fields to obj's values. It reports whether it wrote anything. Only the fields
// the builders decide are touched, so what the API server or others set (a Service's cluster
// IP, a StatefulSet's immutable parts) stays.
func apply(ctx context.Context, c client.Client, scheme *runtime.Scheme, owner, obj client.Object) (bool, error) {
	desired := obj.DeepCopyObject().(client.Object)
	res, err := controllerutil.CreateOrUpdate(ctx, c, obj, func() error {
		setMeta(obj, desired)
		copyOwnedFields(obj, desired)
		return controllerutil.SetControllerReference(owner, obj, scheme)
	})
	return res != controllerutil.OperationResultNone, err
}

// setMeta gives obj desired's labels and annotations. A Secret keeps labels and annotations
// others added (a user's, or a backup tool's); the workload objects follow the builders exactly.
func setMeta(obj, desired client.Object) {
	if _, secret := obj.(*corev1.Secret); secret {
		obj.SetLabels(merged(obj.GetLabels(), desired.GetLabels()))
		obj.SetAnnotations(merged(obj.GetAnnotations(), desired.GetAnnotations()))
		return
	}
	obj.SetLabels(desired.GetLabels())
	if a := desired.GetAnnotations(); a != nil {
		obj.SetAnnotations(a)
	}
}

func merged(live, want map[string]string) map[string]string {
	if len(want) == 0 {
		return live
	}
	out := maps.Clone(live)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

func copyOwnedFields(obj, desired client.Object) {
	switch o := obj.(type) {
	case *corev1.Secret:
		d := desired.(*corev1.Secret)
		o.Data = d.Data
		if o.CreationTimestamp.IsZero() {
			o.Type = d.Type // immutable later
		}
	case *corev1.ConfigMap:
		o.Data = desired.(*corev1.ConfigMap).Data
	case *corev1.ServiceAccount:
	case *rbacv1.Role:
		o.Rules = desired.(*rbacv1.Role).Rules
	case *rbacv1.RoleBinding:
		o.RoleRef, o.Subjects = desired.(*rbacv1.RoleBinding).RoleRef, desired.(*rbacv1.RoleBinding).Subjects
	case *corev1.Service:
		d := desired.(*corev1.Service)
		o.Spec.Type, o.Spec.Selector, o.Spec.Ports = d.Spec.Type, d.Spec.Selector, d.Spec.Ports
		o.Spec.PublishNotReadyAddresses, o.Spec.ExternalTrafficPolicy = d.Spec.PublishNotReadyAddresses, d.Spec.ExternalTrafficPolicy
		if o.CreationTimestamp.IsZero() {
			o.Spec.ClusterIP = d.Spec.ClusterIP
		}
	case *policyv1.PodDisruptionBudget:
		o.Spec = desired.(*policyv1.PodDisruptionBudget).Spec
	case *appsv1.StatefulSet:
		d := desired.(*appsv1.StatefulSet)
		if o.CreationTimestamp.IsZero() {
			o.Spec = d.Spec // selector, serviceName and claim templates are immutable later
		} else {
			o.Spec.Replicas, o.Spec.Template, o.Spec.UpdateStrategy = d.Spec.Replicas, d.Spec.Template, d.Spec.UpdateStrategy
			o.Spec.PersistentVolumeClaimRetentionPolicy = d.Spec.PersistentVolumeClaimRetentionPolicy
		}
	case *unstructured.Unstructured:
		o.Object["spec"] = desired.(*unstructured.Unstructured).Object["spec"]
	}
}

// secretData returns the data of a Secret from the cache, or nil when it does not exist.
func secretData(ctx context.Context, c client.Client, ns, name string) (map[string][]byte, error) {
	var sec corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &sec); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return sec.Data, nil
}
