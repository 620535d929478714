package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/selfsigned"
	"github.com/kubemail/kubemail/internal/testutil"
)

const testHost = "mail.example.test"

type pair struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

func newPair(t *testing.T) pair {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Certificate([]string{testHost, "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair{certPEM, keyPEM, c.Leaf}
}

func (p pair) serial() *big.Int { return p.leaf.SerialNumber }

// write replaces the files in place, as `cp` or an editor would.
func (p pair) write(t *testing.T, certFile, keyFile string) {
	t.Helper()
	writeFile(t, certFile, p.certPEM)
	writeFile(t, keyFile, p.keyPEM)
}

// writeFile replaces name in one step (a new file renamed over it), as Kubernetes updates a
// mounted Secret: a watcher never reads a half-written file, which would be a different error
// than the one a test expects.
func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := name + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func servedSerial(t *testing.T, r *Reloader) *big.Int {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{ServerName: testHost})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	if c == nil || c.Leaf == nil {
		t.Fatal("GetCertificate returned no certificate")
	}
	return c.Leaf.SerialNumber
}

// run starts r.Run and stops it when the test ends.
func run(t *testing.T, r *Reloader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// recorder collects what the hooks report.
type recorder struct {
	mu       sync.Mutex
	reloaded []*big.Int
	errs     []error
}

func (rec *recorder) options(poll time.Duration) Options {
	return Options{
		PollInterval: poll,
		OnReload: func(c *x509.Certificate) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.reloaded = append(rec.reloaded, c.SerialNumber)
		},
		OnError: func(err error) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.errs = append(rec.errs, err)
		},
	}
}

func (rec *recorder) reloadedSerial(s *big.Int) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, r := range rec.reloaded {
		if r.Cmp(s) == 0 {
			return true
		}
	}
	return false
}

func (rec *recorder) errors() []error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]error(nil), rec.errs...)
}

func TestNewReloaderServesInitialPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	p := newPair(t)
	p.write(t, certFile, keyFile)

	r, err := NewReloader(certFile, keyFile, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, r); got.Cmp(p.serial()) != 0 {
		t.Errorf("serving serial %v, want %v", got, p.serial())
	}
	if err := r.LastError(); err != nil {
		t.Errorf("LastError = %v, want nil", err)
	}
	cfg := r.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLSConfig().MinVersion = %#x, want TLS 1.2 (%#x)", cfg.MinVersion, tls.VersionTLS12)
	}
	if cfg.GetCertificate == nil {
		t.Fatal("TLSConfig().GetCertificate is nil")
	}
	if c, err := cfg.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c.Leaf.SerialNumber.Cmp(p.serial()) != 0 {
		t.Errorf("TLSConfig().GetCertificate = %v, %v; want the loaded certificate", c, err)
	}
}

func TestNewReloaderRejectsBadPair(t *testing.T) {
	a, b := newPair(t), newPair(t)
	tests := []struct {
		name      string
		cert, key []byte // nil: file missing
		wantInErr string
	}{
		{"missing key", a.certPEM, nil, "no such file"},
		{"not PEM", []byte("not a certificate"), a.keyPEM, "failed to find any PEM data"},
		{"key of another certificate", a.certPEM, b.keyPEM, "does not match"},
		{"key and cert swapped", a.keyPEM, a.certPEM, "PEM inputs may have been switched"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			if tc.cert != nil {
				writeFile(t, certFile, tc.cert)
			}
			if tc.key != nil {
				writeFile(t, keyFile, tc.key)
			}
			r, err := NewReloader(certFile, keyFile, Options{})
			if err == nil {
				t.Fatalf("NewReloader succeeded (%v), want error", r)
			}
			for _, want := range []string{certFile, keyFile, tc.wantInErr} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// watched is a Reloader serving a pair it watches in files of a temporary folder, its polling
// off, so changes must be noticed through the folder's watch.
type watched struct {
	certFile, keyFile string
	old               pair
	r                 *Reloader
	rec               *recorder
}

func startWatched(t *testing.T) watched {
	t.Helper()
	dir := t.TempDir()
	w := watched{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), old: newPair(t), rec: &recorder{}}
	w.old.write(t, w.certFile, w.keyFile)
	r, err := NewReloader(w.certFile, w.keyFile, w.rec.options(-1))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	w.r = r
	return w
}

func TestReloadsRewrittenFiles(t *testing.T) {
	w := startWatched(t)
	certFile, keyFile, r, rec := w.certFile, w.keyFile, w.r, w.rec

	next := newPair(t)
	next.write(t, certFile, keyFile)
	testutil.Eventually(t, "the rewritten pair to be served", func() bool {
		return servedSerial(t, r).Cmp(next.serial()) == 0
	})
	testutil.Eventually(t, "OnReload for the rewritten pair", func() bool { return rec.reloadedSerial(next.serial()) })
	if err := r.LastError(); err != nil {
		t.Errorf("LastError = %v, want nil", err)
	}
}

// A file reached through a symlink into another directory can be rewritten
// without any event in the watched directory; only polling notices.
func TestPollingNoticesChangesTheWatchCannotSee(t *testing.T) {
	real, mount := t.TempDir(), t.TempDir()
	old := newPair(t)
	old.write(t, filepath.Join(real, "tls.crt"), filepath.Join(real, "tls.key"))
	certFile, keyFile := filepath.Join(mount, "tls.crt"), filepath.Join(mount, "tls.key")
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join(real, name), filepath.Join(mount, name)); err != nil {
			t.Fatal(err)
		}
	}

	r, err := NewReloader(certFile, keyFile, Options{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)

	next := newPair(t)
	next.write(t, filepath.Join(real, "tls.crt"), filepath.Join(real, "tls.key"))
	testutil.Eventually(t, "the polled pair to be served", func() bool {
		return servedSerial(t, r).Cmp(next.serial()) == 0
	})
}

// secretVolume lays out dir the way the kubelet projects a kubernetes.io/tls
// Secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/.
type secretVolume struct {
	t   *testing.T
	dir string
	gen int
	cur string
}

func newSecretVolume(t *testing.T, p pair) *secretVolume {
	v := &secretVolume{t: t, dir: t.TempDir()}
	v.update(p)
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *secretVolume) files() (certFile, keyFile string) {
	return filepath.Join(v.dir, "tls.crt"), filepath.Join(v.dir, "tls.key")
}

// update performs the kubelet's atomic update: write a new timestamped
// directory, point ..data_tmp at it, rename ..data_tmp over ..data, and remove
// the old directory.
func (v *secretVolume) update(p pair) {
	t := v.t
	t.Helper()
	v.gen++
	ts := fmt.Sprintf("..2026_11_26_10_00_%02d.123456789", v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	p.write(t, filepath.Join(v.dir, ts, "tls.crt"), filepath.Join(v.dir, ts, "tls.key"))
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.cur != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.cur)); err != nil {
			t.Fatal(err)
		}
	}
	v.cur = ts
}

func TestReloadsKubernetesSecretVolumeUpdate(t *testing.T) {
	old := newPair(t)
	vol := newSecretVolume(t, old)
	certFile, keyFile := vol.files()

	var rec recorder
	// Polling off: the ..data swap must be noticed through the directory watch.
	r, err := NewReloader(certFile, keyFile, rec.options(-1))
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, r); got.Cmp(old.serial()) != 0 {
		t.Fatalf("serving serial %v, want %v", got, old.serial())
	}
	run(t, r)

	for i := 0; i < 2; i++ {
		next := newPair(t)
		vol.update(next)
		testutil.Eventually(t, "the swapped-in pair to be served", func() bool {
			return servedSerial(t, r).Cmp(next.serial()) == 0
		})
	}
	if errs := rec.errors(); len(errs) != 0 {
		t.Errorf("OnError called for an atomic update: %v", errs)
	}
}

func TestBrokenUpdateKeepsServingLastGoodPair(t *testing.T) {
	w := startWatched(t)
	certFile, keyFile, old, r, rec := w.certFile, w.keyFile, w.old, w.r, w.rec

	// A new certificate with the old key: a mismatched pair.
	next := newPair(t)
	writeFile(t, certFile, next.certPEM)
	testutil.Eventually(t, "LastError to report the mismatch", func() bool { return r.LastError() != nil })
	if err := r.LastError(); !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), certFile) {
		t.Errorf("LastError = %q, want a mismatch error naming %s", err, certFile)
	}
	testutil.Eventually(t, "OnError to be called", func() bool { return len(rec.errors()) > 0 })
	if got := servedSerial(t, r); got.Cmp(old.serial()) != 0 {
		t.Errorf("after a broken update serving serial %v, want the old %v", got, old.serial())
	}

	// Completing the update recovers.
	writeFile(t, keyFile, next.keyPEM)
	testutil.Eventually(t, "the repaired pair to be served", func() bool {
		return servedSerial(t, r).Cmp(next.serial()) == 0
	})
	if err := r.LastError(); err != nil {
		t.Errorf("LastError after recovery = %v, want nil", err)
	}
}

func TestReloadOnDemand(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	old := newPair(t)
	old.write(t, certFile, keyFile)
	var rec recorder
	r, err := NewReloader(certFile, keyFile, rec.options(-1))
	if err != nil {
		t.Fatal(err)
	}

	if err := r.Reload(); err != nil {
		t.Fatalf("Reload of unchanged files: %v", err)
	}
	if rec.reloadedSerial(old.serial()) {
		t.Error("OnReload called although the files did not change")
	}

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := r.Reload(); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Reload with the key missing = %v, want a not-exist error", err)
		}
	}
	if n := len(rec.errors()); n != 1 {
		t.Errorf("OnError called %d times for one unchanged broken state, want 1", n)
	}
	if got := servedSerial(t, r); got.Cmp(old.serial()) != 0 {
		t.Errorf("serving serial %v, want the old %v", got, old.serial())
	}

	next := newPair(t)
	next.write(t, certFile, keyFile)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload of a good pair: %v", err)
	}
	if got := servedSerial(t, r); got.Cmp(next.serial()) != 0 {
		t.Errorf("serving serial %v, want %v", got, next.serial())
	}
	if !rec.reloadedSerial(next.serial()) {
		t.Error("OnReload not called for the new pair")
	}
}

// serve accepts TLS connections on a loopback listener until the test ends.
func serve(t *testing.T, config *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", config)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// handshake connects to addr trusting only p and returns the server's leaf.
func handshake(addr string, trust pair, config *tls.Config) (*x509.Certificate, error) {
	if config == nil {
		config = &tls.Config{}
	}
	config.RootCAs = x509.NewCertPool()
	config.RootCAs.AddCert(trust.leaf)
	config.ServerName = testHost
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, config)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestHandshakeServesReloadedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	old := newPair(t)
	old.write(t, certFile, keyFile)
	r, err := NewReloader(certFile, keyFile, Options{PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	addr := serve(t, r.TLSConfig())

	leaf, err := handshake(addr, old, nil)
	if err != nil {
		t.Fatalf("handshake with the initial certificate: %v", err)
	}
	if leaf.SerialNumber.Cmp(old.serial()) != 0 {
		t.Fatalf("server presented serial %v, want %v", leaf.SerialNumber, old.serial())
	}

	next := newPair(t)
	next.write(t, certFile, keyFile)
	var lastErr error
	testutil.Eventually(t, "a handshake to present the new certificate", func() bool {
		leaf, lastErr = handshake(addr, next, nil)
		return lastErr == nil && leaf.SerialNumber.Cmp(next.serial()) == 0
	})
	// Clients that only trust the old certificate are now refused.
	if _, err := handshake(addr, old, nil); err == nil {
		t.Error("handshake trusting only the replaced certificate succeeded")
	}
}

func TestRunStopsWithContextAndRefusesSecondRun(t *testing.T) {
	// The Secret-volume layout swaps both files at once, so no check can see a half-written
	// update and report it (this test asserts that Run reports no error at all).
	vol := newSecretVolume(t, newPair(t))
	certFile, keyFile := vol.files()
	var rec recorder
	r, err := NewReloader(certFile, keyFile, rec.options(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	// Once a change has been picked up, Run is in its loop.
	next := newPair(t)
	vol.update(next)
	testutil.Eventually(t, "Run to pick up a change", func() bool { return rec.reloadedSerial(next.serial()) })

	stopped, stop := context.WithCancel(context.Background())
	stop()
	if err := r.Run(stopped); err == nil {
		t.Error("a second concurrent Run returned nil, want an error")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if errs := rec.errors(); len(errs) != 0 {
		t.Errorf("OnError called: %v", errs)
	}
}
