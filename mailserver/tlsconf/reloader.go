// Package tlsconf provides the mail server's TLS certificate: it serves a
// certificate/key pair from files and reloads it when the files change (for
// example when cert-manager renews a Kubernetes Secret), and it can generate a
// self-signed pair for development.
package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultPollInterval is how often a running Reloader re-reads the files when
// Options.PollInterval is zero.
const DefaultPollInterval = 30 * time.Second

// settleDelay is how long the watcher waits after the last file-system event
// before reading the files. Updates arrive as bursts of events (the kubelet
// creates a directory, writes files, swaps a symlink, removes the old
// directory; a person copies the certificate and then the key), and reading in
// the middle of a burst would report a transient mismatch as an error.
const settleDelay = 100 * time.Millisecond

// Options tunes a Reloader. The zero value is usable.
type Options struct {
	// PollInterval is how often Run re-reads both files and compares their
	// content with the pair last loaded, independently of file-system events.
	// Polling is what catches updates inotify cannot see, such as a file
	// reached through a symlink into another directory being rewritten.
	// Zero means DefaultPollInterval; a negative value disables polling.
	PollInterval time.Duration

	// OnReload, if set, is called with the leaf certificate each time a
	// changed pair has been loaded and is being served.
	OnReload func(*x509.Certificate)

	// OnError, if set, is called when a changed pair cannot be loaded (the
	// previous certificate keeps being served) and when watching the
	// directory fails (Run then relies on polling). An unchanged broken pair is
	// reported once, not on every poll. Files replaced one after the other
	// rather than atomically may be reported as a mismatch if a read falls
	// between the two writes; the next event or poll then loads the pair.
	//
	// OnReload and OnError are called from the goroutine that noticed the
	// change, one at a time. They must not call Reload.
	OnError func(error)
}

// Reloader serves a certificate chain and private key loaded from two PEM
// files and swaps in a new pair when the files change, without a restart.
// Start watching with Run. All methods are safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	opts              Options

	cert atomic.Pointer[tls.Certificate]

	// checkMu serialises reads of the files and the callbacks they trigger,
	// so callbacks observe reloads in order.
	checkMu sync.Mutex
	seen    [sha256.Size]byte // digest of the file contents last attempted

	errMu   sync.Mutex
	lastErr error

	running atomic.Bool
}

// NewReloader loads the certificate chain in certFile and the private key in
// keyFile. It fails if either file cannot be read or they do not form a
// matching pair, so a misconfigured server does not start.
func NewReloader(certFile, keyFile string, opts Options) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, opts: opts}
	certPEM, keyPEM, err := r.read()
	if err == nil {
		var cert *tls.Certificate
		if cert, err = r.parse(certPEM, keyPEM); err == nil {
			r.cert.Store(cert)
			r.seen = digest(certPEM, keyPEM, nil)
			return r, nil
		}
	}
	return nil, err
}

// GetCertificate returns the current certificate. It has the signature of
// tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// TLSConfig returns a new server configuration that requires TLS 1.2 or later
// and always presents the Reloader's current certificate.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
	}
}

// LastError returns why the files currently on disk could not be loaded, or
// nil if the pair being served is the one on disk.
func (r *Reloader) LastError() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.lastErr
}

// Reload reads the files now and, if their content changed, loads the new
// pair. It returns LastError afterwards. Run calls it on file events and on
// every poll; call it directly to reload on demand, e.g. on SIGHUP.
func (r *Reloader) Reload() error {
	r.checkMu.Lock()
	defer r.checkMu.Unlock()

	certPEM, keyPEM, err := r.read()
	sum := digest(certPEM, keyPEM, err)
	if sum == r.seen {
		return r.LastError()
	}
	r.seen = sum

	var cert *tls.Certificate
	if err == nil {
		cert, err = r.parse(certPEM, keyPEM)
	}
	if err != nil {
		r.setErr(err)
		if r.opts.OnError != nil {
			r.opts.OnError(fmt.Errorf("%w; still serving the previously loaded certificate", err))
		}
		return err
	}
	r.cert.Store(cert)
	r.setErr(nil)
	if r.opts.OnReload != nil {
		r.opts.OnReload(cert.Leaf)
	}
	return nil
}

// Run watches the directories holding the two files and polls them every
// Options.PollInterval, reloading the pair when it changes, until ctx is done.
// It then returns nil. The directories rather than the files are watched
// because Kubernetes updates a Secret volume by atomically replacing a
// symlink (..data) next to the files, which a watch on the files would miss.
// If the directories cannot be watched, Run reports that through OnError and
// carries on polling. Run returns an error if the Reloader is already running.
func (r *Reloader) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("tlsconf: Reloader.Run called while already running")
	}
	defer r.running.Store(false)

	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if w, err := r.watch(); err != nil {
		r.reportWatchErr(err)
	} else {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}

	var poll <-chan time.Time
	if interval := r.pollInterval(); interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		poll = t.C
	}

	settle := time.NewTimer(settleDelay)
	settle.Stop()
	defer settle.Stop()

	// The files may have changed between NewReloader and Run.
	r.Reload()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			settle.Reset(settleDelay)
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			// Typically an event queue overflow: events were lost, so look now.
			r.reportWatchErr(err)
			settle.Reset(settleDelay)
		case <-settle.C:
			r.Reload()
		case <-poll:
			r.Reload()
		}
	}
}

func (r *Reloader) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dirs := []string{filepath.Dir(r.certFile)}
	if d := filepath.Dir(r.keyFile); d != dirs[0] {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("directory %q: %w", d, err)
		}
	}
	return w, nil
}

func (r *Reloader) reportWatchErr(err error) {
	if r.opts.OnError == nil {
		return
	}
	msg := "polling is disabled, so changes may go unnoticed until Reload is called"
	if interval := r.pollInterval(); interval > 0 {
		msg = fmt.Sprintf("relying on polling every %s", interval)
	}
	r.opts.OnError(fmt.Errorf("watching certificate %q and key %q for changes: %w; %s",
		r.certFile, r.keyFile, err, msg))
}

func (r *Reloader) pollInterval() time.Duration {
	if r.opts.PollInterval == 0 {
		return DefaultPollInterval
	}
	return r.opts.PollInterval
}

func (r *Reloader) setErr(err error) {
	r.errMu.Lock()
	r.lastErr = err
	r.errMu.Unlock()
}

func (r *Reloader) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(r.certFile); err == nil {
		keyPEM, err = os.ReadFile(r.keyFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("TLS certificate %q and key %q: %w", r.certFile, r.keyFile, err)
	}
	return certPEM, keyPEM, nil
}

func (r *Reloader) parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err == nil && cert.Leaf == nil {
		// X509KeyPair fills Leaf unless GODEBUG=x509keypairleaf=0.
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %q and key %q: %w (want a PEM certificate chain, leaf first, and the PEM private key of that leaf, as in a kubernetes.io/tls Secret's tls.crt and tls.key)",
			r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

// digest identifies what was read, so an unchanged pair (good or broken) is
// not loaded or reported again on every poll.
func digest(certPEM, keyPEM []byte, readErr error) [sha256.Size]byte {
	h := sha256.New()
	if readErr != nil {
		h.Write([]byte("error\x00" + readErr.Error()))
	} else {
		fmt.Fprintf(h, "%d\x00", len(certPEM))
		h.Write(certPEM)
		h.Write(keyPEM)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
