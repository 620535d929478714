package imapload

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

// CapCompressDeflate is the capability of RFC 4978's COMPRESS DEFLATE.
const CapCompressDeflate imap.Cap = "COMPRESS=DEFLATE"

// HasCapability logs in as the first account and tells whether the server announces c once
// logged in (Dovecot announces COMPRESS=DEFLATE only then).
func HasCapability(ctx context.Context, cfg Config, c imap.Cap) (bool, error) {
	if err := cfg.defaults(); err != nil {
		return false, err
	}
	cl, err := login(&cfg, func(string, time.Duration, error) {}, cfg.Accounts[0])
	if err != nil {
		return false, err
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	caps, err := cl.Capability().Wait()
	if err != nil {
		return false, fmt.Errorf("CAPABILITY: %w", err)
	}
	cl.Logout().Wait()
	return caps.Has(c), nil
}

// deflateIdler is a connection that logged in, selected the mailbox, switched on COMPRESS
// DEFLATE (RFC 4978) and idles. go-imap's client has no COMPRESS, so it speaks the few
// commands it needs itself: line by line, each command compressed and flushed on its own.
type deflateIdler struct {
	conn net.Conn
	// raw reads the connection; lines reads the commands' answers from raw, or once
	// compression is on from the inflater over raw.
	raw   *bufio.Reader
	lines *bufio.Reader
	// compressed is set once COMPRESS is answered: commands are deflated from then on.
	compressed bool
	tag        int
}

// clientDeflaters compress the idlers' commands. A compressor holds about 1 MB, too much to
// keep one for each of thousands of idle connections; a command borrows one and the sync flush
// that ends the command lets the next one start afresh (as kubemail's server does too).
var clientDeflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // the level is valid: no error
	return w
}}

// openDeflateIdler connects, logs in as acct, selects cfg.Mailbox, sends COMPRESS DEFLATE and
// then IDLE, and returns once the server has answered IDLE with its continuation.
func openDeflateIdler(cfg *Config, acct Account) (_ *deflateIdler, err error) {
	tlsConfig := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // benchmark servers use self-signed certificates
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	var conn net.Conn
	if cfg.TLS {
		conn, err = tls.DialWithDialer(dialer, "tcp", cfg.Addr, tlsConfig)
	} else {
		conn, err = dialer.Dial("tcp", cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Addr, err)
	}
	d := &deflateIdler{conn: conn}
	d.raw = bufio.NewReaderSize(conn, 4096)
	d.lines = d.raw
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	// Setting up is bounded; idling is not.
	conn.SetDeadline(time.Now().Add(time.Minute))
	if greeting, err := d.readLine(); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	} else if !strings.HasPrefix(greeting, "* OK") {
		return nil, fmt.Errorf("greeting: %q", greeting)
	}
	if cfg.StartTLS {
		if err := d.command("STARTTLS"); err != nil {
			return nil, err
		}
		tc := tls.Client(conn, tlsConfig)
		d.conn, d.raw = tc, bufio.NewReaderSize(tc, 4096)
		d.lines = d.raw
	}
	if err := d.command("LOGIN " + quote(acct.User) + " " + quote(acct.Password)); err != nil {
		return nil, fmt.Errorf("logging in as %s: %w", acct.User, err)
	}
	if err := d.command("SELECT " + quote(cfg.Mailbox)); err != nil {
		return nil, fmt.Errorf("selecting %s as %s: %w", cfg.Mailbox, acct.User, err)
	}
	if err := d.command("COMPRESS DEFLATE"); err != nil {
		return nil, err
	}
	// The server deflates everything after its OK; the inflater reads raw's bytes (raw is a
	// ByteReader, so flate buffers nothing beyond what it needs).
	d.compressed = true
	d.lines = bufio.NewReaderSize(flate.NewReader(d.raw), 4096)
	if err := d.send("IDLE"); err != nil {
		return nil, err
	}
	for {
		line, err := d.readLine()
		if err != nil {
			return nil, fmt.Errorf("IDLE: %w", err)
		}
		if strings.HasPrefix(line, "+") {
			break
		}
		if !strings.HasPrefix(line, "* ") {
			return nil, fmt.Errorf("IDLE: %q", line)
		}
	}
	d.conn.SetDeadline(time.Time{})
	return d, nil
}

// alive tells whether the server still holds the connection: a read that times out at once
// means it sent nothing and did not hang up.
func (d *deflateIdler) alive() bool {
	d.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer d.conn.SetReadDeadline(time.Time{})
	_, err := d.raw.Peek(1)
	var ne net.Error
	return err == nil || errors.As(err, &ne) && ne.Timeout()
}

// close ends IDLE and logs out, then closes the connection.
func (d *deflateIdler) close() {
	defer d.conn.Close()
	d.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := d.write("DONE"); err != nil {
		return
	}
	if err := d.await(d.lastTag()); err != nil {
		return
	}
	d.command("LOGOUT")
}

// command sends one command and waits for its tagged OK.
func (d *deflateIdler) command(cmd string) error {
	if err := d.send(cmd); err != nil {
		return err
	}
	return d.await(d.lastTag())
}

func (d *deflateIdler) lastTag() string { return "z" + strconv.Itoa(d.tag) }

// send writes a command under a new tag.
func (d *deflateIdler) send(cmd string) error {
	d.tag++
	return d.write(d.lastTag() + " " + cmd)
}

// write sends one line, deflated once compression is on, and flushes it.
func (d *deflateIdler) write(line string) error {
	line += "\r\n"
	if !d.compressed {
		_, err := io.WriteString(d.conn, line)
		return err
	}
	w := clientDeflaters.Get().(*flate.Writer)
	w.Reset(d.conn)
	_, err := io.WriteString(w, line)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		clientDeflaters.Put(w)
	}
	return err
}

// await reads responses until the one tagged tag, which must be OK.
func (d *deflateIdler) await(tag string) error {
	for {
		line, err := d.readLine()
		if err != nil {
			return err
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			continue
		}
		if !strings.HasPrefix(strings.ToUpper(rest), "OK") {
			return fmt.Errorf("server answered %s", rest)
		}
		return nil
	}
}

// readLine reads one response line without its CRLF, literals included in it.
func (d *deflateIdler) readLine() (string, error) {
	var b strings.Builder
	for {
		part, err := d.lines.ReadString('\n')
		if err != nil {
			return "", err
		}
		part = strings.TrimRight(part, "\r\n")
		b.WriteString(part)
		n, ok := literalSize(part)
		if !ok {
			return b.String(), nil
		}
		if _, err := io.CopyN(&b, d.lines, n); err != nil {
			return "", err
		}
	}
}

// literalSize returns n when line ends with a literal's announcement {n} (or {n+}).
func literalSize(line string) (int64, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(line[open+1:len(line)-1], "+"), 10, 64)
	return n, err == nil && n >= 0
}

// quote makes an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
