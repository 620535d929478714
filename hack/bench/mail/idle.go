package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kubemail/kubemail/hack/bench/imapload"
)

// runIdle measures the memory of -idle connections idling in IDLE and then, with them still
// idling, of -idle-compress more that switched on COMPRESS DEFLATE first. Added on top, the
// compressed ones grow the server by what they cost; opened after the plain ones had closed
// they would first reuse the memory those left behind in the server's heap.
func runIdle(ctx context.Context, o *options, s *system, res *sysResult, imapAccounts []imapload.Account) error {
	// The connections idle in the mailboxes of the IMAP mix, -imap-prefill messages or more
	// each. Filling them (or finding them full) also logs every account in once, so that
	// every server answers the measured logins from its authentication cache.
	cfg := imapload.Config{Addr: s.imapsAddr, TLS: true, Accounts: imapAccounts, Mailbox: "INBOX", Clients: o.imapClients}
	if err := imapload.Prefill(ctx, cfg, o.imapPrefill); err != nil {
		return fmt.Errorf("%s: IMAP logins before IDLE: %w", s.name, err)
	}
	compress := false
	if o.idleCompress > 0 {
		var err error
		if compress, err = imapload.HasCapability(ctx, cfg, imapload.CapCompressDeflate); err != nil {
			return fmt.Errorf("%s: CAPABILITY: %w", s.name, err)
		}
		res.noCompress = !compress
	}

	ir, release, err := idleVariant(ctx, cfg, o.idle, s, "IDLE")
	defer release()
	if err != nil {
		return err
	}
	res.idle = append(res.idle, ir)
	if !compress {
		if o.idleCompress > 0 {
			fmt.Fprintf(os.Stderr, "%s: no COMPRESS=DEFLATE, no compressed idle connections\n", s.name)
		}
		return nil
	}
	cfg.Compress = true
	irz, releaseZ, err := idleVariant(ctx, cfg, o.idleCompress, s, "IDLE with COMPRESS=DEFLATE, on top")
	releaseZ()
	if err != nil {
		return err
	}
	res.idleZ = append(res.idleZ, irz)
	return nil
}

// idleVariant opens n idling connections as cfg says and measures them; they idle until
// release is called.
func idleVariant(ctx context.Context, cfg imapload.Config, n int, s *system, label string) (idleResult, func(), error) {
	var pss []int64
	var pssErr error
	measure := func() (int64, error) {
		p, err := s.pss()
		pss = append(pss, p)
		pssErr = errors.Join(pssErr, err)
		return s.rss()
	}
	r, release, err := imapload.IdleConnsHeld(ctx, cfg, n, measure)
	if err != nil {
		return idleResult{}, release, fmt.Errorf("%s: IMAP %s: %w", s.name, label, err)
	}
	ir := idleResult{IdleResult: r}
	if pssErr == nil && len(pss) >= 2 && r.Conns > 0 {
		ir.pssPerConn = (pss[len(pss)-1] - pss[0]) / int64(r.Conns)
	}
	fmt.Fprintf(os.Stderr, "%s: %s: %d connections (%d failed) opened in %s: RSS %.1f -> %.1f MiB, %.1f KiB per connection; PSS %.1f KiB per connection\n",
		s.name, label, r.Conns, r.Failed, r.Open.Round(time.Millisecond), float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20),
		float64(r.BytesPerConn)/1024, float64(ir.pssPerConn)/1024)
	if r.FirstError != nil {
		fmt.Fprintf(os.Stderr, "%s: first %s failure: %v\n", s.name, label, r.FirstError)
	}
	return ir, release, nil
}
