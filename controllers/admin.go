package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// ensureAdminSecret creates, once, the token the operator presents to the cluster's servers.
func (r *MailClusterReconciler) ensureAdminSecret(ctx context.Context, mc *mailv1alpha1.MailCluster) error {
	data, err := secretData(ctx, r.Client, mc.Namespace, names.AdminSecret(mc.Name))
	if err != nil {
		return err
	}
	token := data[names.AdminTokenKey]
	if len(token) < 16 {
		token = []byte(newPassword() + newPassword())
	}
	_, err = apply(ctx, r.Client, r.Scheme, mc, builders.AdminSecret(mc, token))
	return err
}

// adminClient talks to one replica's /admin endpoints, found through the EndpointSlices of the
// cluster's headless Service (a StatefulSet pod's endpoint carries its hostname).
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(ctx context.Context, c client.Client, ns, cluster string, ordinal int) (*adminClient, error) {
	var tok corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: names.AdminSecret(cluster)}, &tok); err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(ns),
		client.MatchingLabels{discoveryv1.LabelServiceName: names.HeadlessService(cluster)}); err != nil {
		return nil, err
	}
	pod := names.Pod(cluster, ordinal)
	for _, s := range slices.Items {
		var port int32
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == names.PortHTTP.Name && p.Port != nil {
				port = *p.Port
			}
		}
		for _, ep := range s.Endpoints {
			if ep.Hostname == nil || *ep.Hostname != pod || len(ep.Addresses) == 0 || port == 0 {
				continue
			}
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				return nil, fmt.Errorf("replica %s is not ready", pod)
			}
			hostPort := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
			if local := s.Annotations[names.AnnotationLocalAddress]; local != "" {
				hostPort = local
			}
			return &adminClient{
				base:  "http://" + hostPort,
				token: string(tok.Data[names.AdminTokenKey]),
				http:  &http.Client{Timeout: 30 * time.Second},
			}, nil
		}
	}
	return nil, fmt.Errorf("replica %s has no endpoint yet", pod)
}

func (a *adminClient) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		return nil, &adminError{code: resp.StatusCode, text: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, body)}
	}
	return body, nil
}

// adminError is a replica's refusal of an admin request, with its HTTP status.
type adminError struct {
	code int
	text string
}

func (e *adminError) Error() string { return e.text }

// refused reports whether err is a replica's answer with the HTTP status code.
func refused(err error, code int) bool {
	var ae *adminError
	return errors.As(err, &ae) && ae.code == code
}

// purge deletes a mailbox's stored mail on its replica.
func (a *adminClient) purge(ctx context.Context, address string) error {
	_, err := a.do(ctx, http.MethodDelete, "/admin/v1/mailboxes/"+url.PathEscape(address))
	return err
}
