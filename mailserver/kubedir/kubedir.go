// Package kubedir feeds the mail server's directory from the operator's directory Secrets,
// watched by name through the Kubernetes API so that a change takes effect in about a second.
package kubedir

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/version"
	"github.com/kubemail/kubemail/mailserver/directory"
)

// stuckAfter is how long the parts may disagree before it is reported: the operator writes all
// parts within milliseconds, so half a minute means it stopped mid-update.
const stuckAfter = 30 * time.Second

// Source watches one mail cluster's directory Secrets. Each part is watched on its own, with a
// field selector on its name, because the pod's Role grants get/list/watch on those names only.
type Source struct {
	client    kubernetes.Interface
	namespace string
	cluster   string
	validate  directory.PasswordHashValidator
	log       *slog.Logger

	stuckAfter time.Duration
	// onSync, for tests, sees the outcome of every look at the parts.
	onSync func(outcome)
}

// New connects like kubectl does: KUBECONFIG or ~/.kube/config when present, else the pod's
// service account, so a server started by hand against a cluster behaves as it does in a pod.
// An empty namespace means the kubeconfig context's, or the pod's own.
func New(cfg *config.KubernetesDirectory, validate directory.PasswordHashValidator, log *slog.Logger) (directory.Source, error) {
	if cfg == nil || cfg.Secret == "" {
		return nil, errors.New("directory.kubernetes.secret: required (the first directory Secret, e.g. mail-directory)")
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil)
	rc, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("directory: no Kubernetes API to read Secret %s from (in-cluster service account, or KUBECONFIG): %w", cfg.Secret, err)
	}
	ns := cfg.Namespace
	if ns == "" {
		if ns, _, err = loader.Namespace(); err != nil {
			return nil, fmt.Errorf("directory.kubernetes.namespace: not set, and the current one is unknown: %w", err)
		}
	}
	return newSource(rc, ns, cfg.Secret, validate, log)
}

func newSource(rc *rest.Config, namespace, secret string, validate directory.PasswordHashValidator, log *slog.Logger) (*Source, error) {
	cluster, ok := strings.CutSuffix(secret, dirsecret.SecretName("", 0))
	if !ok || cluster == "" {
		return nil, fmt.Errorf("directory.kubernetes.secret %q: directory Secrets are named <cluster>%s", secret, dirsecret.SecretName("", 0))
	}
	if validate == nil {
		return nil, errors.New("directory: no password hash validator")
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "kubemail-mailserver/" + version.Version
	// A part is up to a MiB; protobuf carries it without base64 and decodes it faster.
	rc.ContentType = runtime.ContentTypeProtobuf
	rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("directory: Kubernetes client for %s: %w", rc.Host, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Source{client: client, namespace: namespace, cluster: cluster, validate: validate,
		log: log.With("namespace", namespace, "secret", secret), stuckAfter: stuckAfter}, nil
}

// outcome is what one look at the parts found: nothing new, a directory swapped in, parts
// still disagreeing, or input rejected.
type outcome struct {
	loaded  bool
	waiting error
	failed  error
}

// Run implements directory.Source. Until the parts first assemble into a valid directory, live
// stays unloaded; afterwards a bad or missing Secret keeps the last good directory in force.
func (s *Source) Run(ctx context.Context, live *directory.Live, events directory.Events) error {
	ctx, cancel := context.WithCancel(ctx)
	r := &run{Source: s, ctx: ctx, live: live, events: events,
		wake: make(chan struct{}, 1), watchErrs: make(chan watchError, 16), stuck: time.NewTimer(time.Hour)}
	r.stuck.Stop()
	defer func() {
		cancel()
		r.wg.Wait()
	}()
	s.log.Info("watching the directory Secrets")
	r.setParts(1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-r.stuck.C:
		case we := <-r.watchErrs:
			r.watchFailed(we)
			continue
		}
		out := r.sync()
		if s.onSync != nil {
			s.onSync(out)
		}
	}
}

// run is the state of one Run; only Run's goroutine touches it, informers only poke wake.
type run struct {
	*Source
	ctx    context.Context
	live   *directory.Live
	events directory.Events
	wg     sync.WaitGroup

	parts     []*part // index i watches part i
	wake      chan struct{}
	watchErrs chan watchError

	sum    [32]byte             // of the parts last assembled
	dir    *directory.Directory // what they assembled into, or
	dirErr error                // why they did not
	stored *directory.Directory

	lastErr      string // last reported failure; "" once a directory is in force again
	waitingSince time.Time
	stuck        *time.Timer
}

type part struct {
	index    int
	name     string
	key      string // in the informer's store
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
}

type watchError struct {
	part *part
	err  error
}

func (r *run) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// setParts watches parts 0..n-1 and stops watching any beyond.
func (r *run) setParts(n int) {
	for len(r.parts) > n {
		p := r.parts[len(r.parts)-1]
		p.stop()
		r.parts = r.parts[:len(r.parts)-1]
	}
	for i := len(r.parts); i < n; i++ {
		r.parts = append(r.parts, r.watch(i))
	}
}

func (r *run) watch(i int) *part {
	name := dirsecret.SecretName(r.cluster, i)
	lw := cache.NewListWatchFromClient(r.client.CoreV1().RESTClient(), "secrets", r.namespace,
		fields.OneTermEqualSelector("metadata.name", name))
	inf := cache.NewSharedIndexInformerWithOptions(lw, &corev1.Secret{},
		cache.SharedIndexInformerOptions{ObjectDescription: "directory Secret " + name})
	p := &part{index: i, name: name, key: r.namespace + "/" + name, informer: inf}
	// The setters fail only on a started informer; this one is not.
	_ = inf.SetTransform(trim)
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		select {
		case r.watchErrs <- watchError{p, err}:
		default: // the reflector retries, and reports again
		}
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.poke() },
		UpdateFunc: func(any, any) { r.poke() },
		DeleteFunc: func(any) { r.poke() },
	})
	ctx, stop := context.WithCancel(r.ctx)
	p.stop = stop
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		inf.RunWithContext(ctx)
	}()
	go func() {
		defer r.wg.Done()
		// A Secret that does not exist yields no event; the end of the first list tells.
		select {
		case <-inf.HasSyncedChecker().Done():
			r.poke()
		case <-ctx.Done():
		}
	}()
	return p
}

// trim keeps only what the directory needs, so that annotations such as kubectl's
// last-applied-configuration do not double the memory a part takes.
func trim(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	out := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace,
		UID: s.UID, ResourceVersion: s.ResourceVersion}, Data: map[string][]byte{}}
	for _, k := range []string{dirsecret.KeyDirectory, dirsecret.KeyGeneration, dirsecret.KeyParts} {
		if v, ok := s.Data[k]; ok {
			out.Data[k] = v
		}
	}
	return out, nil
}

// data returns the part's Secret data; synced is false until the first list answered.
func (p *part) data() (data map[string][]byte, exists, synced bool) {
	if !p.informer.HasSynced() {
		return nil, false, false
	}
	obj, exists, _ := p.informer.GetStore().GetByKey(p.key)
	if s, ok := obj.(*corev1.Secret); exists && ok {
		return s.Data, true, true
	}
	return nil, false, true
}

func (r *run) sync() outcome {
	first := r.parts[0]
	data, exists, synced := first.data()
	if !synced {
		return outcome{}
	}
	if !exists {
		r.notWaiting()
		return r.fail(fmt.Errorf("directory Secret %s/%s not found; waiting for the operator to create it", r.namespace, first.name))
	}
	n, err := dirsecret.PartCount(data)
	if err != nil {
		r.notWaiting()
		return r.fail(fmt.Errorf("directory Secret %s/%s: %w", r.namespace, first.name, err))
	}
	if n != len(r.parts) {
		r.log.Debug("directory parts changed", "from", len(r.parts), "to", n)
		r.setParts(n)
	}
	gen := string(data[dirsecret.KeyGeneration])
	datas := []map[string][]byte{data}
	for _, p := range r.parts[1:] {
		d, exists, synced := p.data()
		switch {
		case !synced:
			return r.wait(fmt.Errorf("directory Secret %s/%s (part %d of %d): no answer from the API server yet", r.namespace, p.name, p.index, n))
		case !exists:
			return r.wait(fmt.Errorf("directory Secret %s/%s (part %d of %d, generation %q) not found", r.namespace, p.name, p.index, n, gen))
		case string(d[dirsecret.KeyGeneration]) != gen:
			return r.wait(fmt.Errorf("directory Secret %s/%s has generation %q, the first part %q", r.namespace, p.name, d[dirsecret.KeyGeneration], gen))
		}
		datas = append(datas, d)
	}
	r.notWaiting()

	if sum := checksum(datas); sum != r.sum {
		r.sum = sum
		r.dir, r.dirErr = r.assemble(datas)
		if r.dirErr != nil {
			r.dirErr = fmt.Errorf("directory Secrets %s/%s generation %q: %w", r.namespace, first.name, gen, r.dirErr)
		}
	}
	if r.dirErr != nil {
		return r.fail(r.dirErr)
	}
	if r.dir == r.stored && r.lastErr == "" {
		return outcome{}
	}
	r.live.Store(r.dir)
	r.stored, r.lastErr = r.dir, ""
	r.log.Debug("directory generation in force", "generation", gen, "parts", n)
	if r.events != nil {
		r.events.Reloaded(r.dir)
	}
	return outcome{loaded: true}
}

func (r *run) assemble(datas []map[string][]byte) (*directory.Directory, error) {
	spec, err := dirsecret.Assemble(datas)
	if err != nil {
		return nil, err
	}
	return directory.FromSpec(spec, r.validate)
}

// wait is for parts that do not agree yet: normal while the operator writes an update, a
// problem only when it lasts.
func (r *run) wait(reason error) outcome {
	if r.waitingSince.IsZero() {
		r.waitingSince = time.Now()
		r.stuck.Reset(r.stuckAfter)
	}
	out := outcome{waiting: reason}
	if time.Since(r.waitingSince) >= r.stuckAfter {
		out.failed = r.fail(fmt.Errorf("%w, for more than %s: is the operator stuck mid-update?", reason, r.stuckAfter)).failed
	}
	return out
}

func (r *run) notWaiting() {
	r.waitingSince = time.Time{}
	r.stuck.Stop()
}

// fail reports a problem once, not on every event while it lasts.
func (r *run) fail(err error) outcome {
	if msg := err.Error(); msg != r.lastErr {
		r.lastErr = msg
		r.log.Error("directory Secrets rejected; keeping the last good directory", "err", err)
		if r.events != nil {
			r.events.Failed(err)
		}
	}
	return outcome{failed: err}
}

// watchFailed handles a list or watch the informer will retry with backoff. Reconnects are
// routine; an error that keeps the directory from being read at all is reported.
func (r *run) watchFailed(we watchError) {
	p, err := we.part, we.err
	if p.index >= len(r.parts) || r.parts[p.index] != p {
		return // no longer watched
	}
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) {
		r.log.Debug("watch of a directory Secret ended; resuming", "part", p.name, "err", err)
		return
	}
	if apierrors.IsForbidden(err) {
		err = fmt.Errorf("reading directory Secret %s/%s: %w (the mail server's Role must name every part of the directory)", r.namespace, p.name, err)
	} else {
		err = fmt.Errorf("reading directory Secret %s/%s: %w", r.namespace, p.name, err)
	}
	if !p.informer.HasSynced() || apierrors.IsForbidden(we.err) || apierrors.IsUnauthorized(we.err) {
		r.fail(err)
		return
	}
	r.log.Warn("watching a directory Secret failed; retrying", "err", err)
}

// checksum identifies the parts' content, so a re-list or an edit of other fields does not
// rebuild the directory.
func checksum(datas []map[string][]byte) [32]byte {
	h := sha256.New()
	for _, d := range datas {
		for _, k := range []string{dirsecret.KeyGeneration, dirsecret.KeyParts, dirsecret.KeyDirectory} {
			v, ok := d[k]
			n := uint64(len(v))
			if !ok {
				n = ^uint64(0)
			}
			_ = binary.Write(h, binary.BigEndian, n)
			h.Write(v)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
