package imapd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Scripts (testdata/imapdiff/*.imap) are what the differential test sends to both servers:
//
//	# comment
//	!user bob                 log in as bob@example.com instead of alice
//	!nologin                  do not log in: the script does, and its greeting is compared
//	!starttls                 with !nologin: connect to the STARTTLS port instead of implicit TLS
//	!include common.imap      the lines of another file, here
//	C: a1 SELECT INBOX        a command of session 1 (tagged; tags are unique in a script)
//	C2: b1 APPEND INBOX {@m.eml}  a command of session 2 (connected and logged in on first use;
//	                          sessions 1 to 9; put a command that may leave a session unusable,
//	                          such as an unterminated literal, in a session of its own)
//	C+: DONE                  a line answering a continuation request (IDLE, AUTHENTICATE);
//	                          not sent (and noted) if the server sent none
//	W: \* \d+ EXISTS          wait until session 1 receives a matching line (W2: session 2);
//	                          the lines are recorded under the session's pending or last command
//
// In a command line, {@file} is a synchronising literal with a file of testdata/imapdiff
// (LF line ends become CRLF), {"text"} one with a Go-quoted string; a + before the closing
// brace ({@file+}) makes it non-synchronising (LITERAL+), and ~{...} sends a literal8.
// ${UIDVALIDITY} and ${HIGHESTMODSEQ} are replaced by the last such value the session saw.
//
// IMAPDIFF_TRACE=1 in the environment prints each line as it is sent, with the time.

const (
	diffScriptDir = "testdata/imapdiff"
	// diffReadTimeout bounds every read: a server that does not answer a command within it is
	// recorded as not answering, and its session ends.
	diffReadTimeout = 10 * time.Second
	// diffWaitTimeout bounds W: lines: events arrive within milliseconds on loopback, and a
	// server that never sends one should not cost the full diffReadTimeout.
	diffWaitTimeout = 2 * time.Second
)

type diffScript struct {
	name     string
	user     string
	login    bool
	starttls bool
	steps    []diffStep
}

type diffStep struct {
	session int  // 1 to 9
	cont    bool // answers a continuation request
	wait    *regexp.Regexp
	line    string
	lineNo  int
}

func loadScript(path string) (*diffScript, error) {
	s := &diffScript{name: strings.TrimSuffix(filepath.Base(path), ".imap"), user: alice, login: true}
	return s, s.load(path, 0)
}

var stepRE = regexp.MustCompile(`^([CW])([1-9]?)(\+?): ?(.*)$`)

func (s *diffScript) load(path string, depth int) error {
	if depth > 3 {
		return fmt.Errorf("%s: includes nest too deep", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		where := fmt.Sprintf("%s:%d", filepath.Base(path), i+1)
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		case line == "!nologin":
			s.login = false
		case line == "!starttls":
			s.starttls = true
		case strings.HasPrefix(line, "!user "):
			s.user = strings.TrimSpace(strings.TrimPrefix(line, "!user ")) + "@example.com"
		case strings.HasPrefix(line, "!include "):
			if err := s.load(filepath.Join(filepath.Dir(path), strings.TrimSpace(line[len("!include "):])), depth+1); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		default:
			m := stepRE.FindStringSubmatch(line)
			if m == nil {
				return fmt.Errorf("%s: not a script line: %q", where, line)
			}
			st := diffStep{session: 1, line: m[4], lineNo: i + 1, cont: m[3] == "+"}
			if m[2] != "" {
				st.session = int(m[2][0] - '0')
			}
			if st.cont && m[1] == "W" {
				return fmt.Errorf("%s: W+ is not a kind of line", where)
			}
			if m[1] == "W" {
				re, err := regexp.Compile(m[4])
				if err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
				st.wait = re
			}
			s.steps = append(s.steps, st)
		}
	}
	return nil
}

// target is one server as the runner sees it.
type diffTarget struct {
	name      string
	addr      string // STARTTLS
	tlsAddr   string // implicit TLS
	clientTLS *tls.Config
}

// transcript is what one server answered to one script: for each command (by tag) the raw
// responses, continuation requests and W: lines included.
type diffTranscript struct {
	tags      []string
	responses map[string][]string
	// lines holds the script lines sent for each tag, for messages.
	lines map[string][]string
	// commands counts tagged commands, for the test's log.
	commands int
}

func newTranscript() *diffTranscript {
	return &diffTranscript{responses: map[string][]string{}, lines: map[string][]string{}}
}

func (tr *diffTranscript) add(tag, line string) {
	if _, ok := tr.responses[tag]; !ok {
		tr.tags = append(tr.tags, tag)
	}
	tr.responses[tag] = append(tr.responses[tag], line)
}

// session is one connection of a script run.
type diffSession struct {
	conn    net.Conn
	r       *bufio.Reader
	tr      *diffTranscript
	pending string // tag of a command waiting for a continuation line
	last    string // tag of the session's last command, for W: lines
	broken  string // why the session can no longer be used
	vars    map[string]string
}

var varRE = regexp.MustCompile(`\[(UIDVALIDITY|HIGHESTMODSEQ) (\d+)\]`)

// readLine reads one response, literals included.
func (s *diffSession) readLine(timeout time.Duration) (string, error) {
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return "", err
		}
		n, ok := literalLength(line)
		if !ok {
			out := strings.TrimSuffix(b.String(), "\r\n")
			for _, m := range varRE.FindAllStringSubmatch(out, -1) {
				s.vars[m[1]] = m[2]
			}
			return out, nil
		}
		if _, err := io.CopyN(&b, s.r, int64(n)); err != nil {
			return "", err
		}
	}
}

var literalEnd = regexp.MustCompile(`\{(\d+)\+?\}\r?\n$`)

func literalLength(line string) (int, bool) {
	m := literalEnd.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil && n < 64<<20
}

func (s *diffSession) fail(tag string, err error) {
	note := "<connection closed>"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		note = "<no answer within the read timeout>"
	} else if !errors.Is(err, io.EOF) {
		note = "<connection error>"
	}
	s.broken = note
	s.tr.add(tag, note)
}

// untilTagged records responses for tag until its tagged response or a continuation request.
func (s *diffSession) untilTagged(tag string) {
	for {
		line, err := s.readLine(diffReadTimeout)
		if err != nil {
			s.fail(tag, err)
			return
		}
		s.tr.add(tag, line)
		if strings.HasPrefix(line, "+") {
			s.pending = tag
			return
		}
		if t, _, _ := strings.Cut(line, " "); t == tag {
			s.pending = ""
			return
		}
	}
}

// literalRE finds the literals of a script line.
var literalRE = regexp.MustCompile(`~?\{(@[^{}+]+|"(?:[^"\\]|\\.)*")(\+?)\}`)

// send writes a command, its literals with the waits a synchronising literal needs. It
// returns false if the server answered before the command was complete (NO to a literal).
func (s *diffSession) send(tag, line string) bool {
	for k, v := range s.vars {
		line = strings.ReplaceAll(line, "${"+k+"}", v)
	}
	for {
		m := literalRE.FindStringSubmatchIndex(line)
		if m == nil {
			break
		}
		data, err := literalData(line[m[2]:m[3]])
		if err != nil {
			s.broken = "<script error>"
			s.tr.add(tag, fmt.Sprintf("<script error: %v>", err))
			return false
		}
		sync := m[5] == m[4]
		prefix := line[:m[0]]
		if strings.HasPrefix(line[m[0]:], "~") {
			prefix += "~"
		}
		head := fmt.Sprintf("%s{%d}\r\n", prefix, len(data))
		if !sync {
			head = fmt.Sprintf("%s{%d+}\r\n", prefix, len(data))
		}
		if !s.write(tag, head) {
			return false
		}
		if sync {
			for {
				resp, err := s.readLine(diffReadTimeout)
				if err != nil {
					s.fail(tag, err)
					return false
				}
				if strings.HasPrefix(resp, "+") {
					break
				}
				s.tr.add(tag, resp)
				if t, _, _ := strings.Cut(resp, " "); t == tag {
					return false
				}
			}
		}
		if !s.write(tag, data) {
			return false
		}
		line = line[m[1]:]
	}
	return s.write(tag, line+"\r\n")
}

func (s *diffSession) write(tag, data string) bool {
	s.conn.SetWriteDeadline(time.Now().Add(diffReadTimeout))
	if _, err := io.WriteString(s.conn, data); err != nil {
		s.fail(tag, err)
		return false
	}
	return true
}

func literalData(spec string) (string, error) {
	if strings.HasPrefix(spec, "@") {
		b, err := os.ReadFile(filepath.Join(diffScriptDir, spec[1:]))
		if err != nil {
			return "", err
		}
		return strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n"), nil
	}
	return strconv.Unquote(spec)
}

// run plays a script against one server, each session in its own connection.
func (sc *diffScript) run(t diffTarget) (*diffTranscript, error) {
	tr := newTranscript()
	sessions := map[int]*diffSession{}
	defer func() {
		for _, s := range sessions {
			if s.broken == "" {
				s.conn.SetDeadline(time.Now().Add(time.Second))
				io.WriteString(s.conn, "zz LOGOUT\r\n")
			}
			s.conn.Close()
		}
	}()
	open := func(n int) (*diffSession, error) {
		if s := sessions[n]; s != nil {
			return s, nil
		}
		s, err := sc.connect(t, tr, n == 1 && !sc.login)
		if err != nil {
			return nil, fmt.Errorf("%s: session %d: %w", t.name, n, err)
		}
		sessions[n] = s
		return s, nil
	}
	for _, st := range sc.steps {
		if os.Getenv("IMAPDIFF_TRACE") != "" {
			fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().Format("15:04:05.000"), t.name, st.line)
		}
		s, err := open(st.session)
		if err != nil {
			return nil, err
		}
		if st.wait != nil {
			s.waitFor(st.wait)
			continue
		}
		if st.cont {
			tag := s.last
			tr.lines[tag] = append(tr.lines[tag], st.line)
			switch {
			case s.broken != "":
			case s.pending == "":
				tr.add(tag, "<no continuation request: "+st.line+" not sent>")
			default:
				if s.write(tag, s.expand(st.line)+"\r\n") {
					s.untilTagged(tag)
				}
			}
			continue
		}
		tag, _, _ := strings.Cut(st.line, " ")
		if _, dup := tr.lines[tag]; dup {
			return nil, fmt.Errorf("%s line %d: tag %s used twice", sc.name, st.lineNo, tag)
		}
		tr.commands++
		tr.lines[tag] = []string{st.line}
		if s.pending != "" && s.broken == "" {
			// The server asked for more where the script expected a tagged answer.
			s.broken = "<session left waiting for a continuation line>"
			tr.add(s.pending, s.broken)
		}
		s.last = tag
		if s.broken != "" {
			tr.add(tag, s.broken)
			continue
		}
		if s.send(tag, st.line) {
			s.untilTagged(tag)
		}
		if fields := strings.Fields(st.line); len(fields) >= 2 && strings.EqualFold(fields[1], "STARTTLS") &&
			s.pending == "" && s.broken == "" {
			if last := tr.responses[tag]; strings.HasPrefix(last[len(last)-1], tag+" OK") {
				cfg := t.clientTLS.Clone()
				cfg.ServerName, _, _ = net.SplitHostPort(t.addr)
				tc := tls.Client(s.conn, cfg)
				s.conn, s.r = tc, bufio.NewReader(tc)
			}
		}
	}
	return tr, nil
}

func (s *diffSession) expand(line string) string {
	for k, v := range s.vars {
		line = strings.ReplaceAll(line, "${"+k+"}", v)
	}
	return line
}

// waitFor records lines until one matches re, under the session's pending or last command.
func (s *diffSession) waitFor(re *regexp.Regexp) {
	tag := s.pending
	if tag == "" {
		tag = s.last
	}
	if s.broken != "" {
		return
	}
	deadline := time.Now().Add(diffWaitTimeout)
	for {
		line, err := s.readLine(time.Until(deadline))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.tr.add(tag, fmt.Sprintf("<no line matching %q>", re.String()))
			return
		}
		if err != nil {
			s.fail(tag, err)
			return
		}
		s.tr.add(tag, line)
		if re.MatchString(line) {
			return
		}
	}
}

// connect opens a session: implicit TLS and a login as the script's user, unless the
// script logs in itself, in which case its greeting is recorded under the tag "greeting".
func (sc *diffScript) connect(t diffTarget, tr *diffTranscript, scripted bool) (*diffSession, error) {
	var conn net.Conn
	var err error
	cfg := t.clientTLS.Clone()
	// From 127.0.0.1, whichever address the server listens on (see dovecotIP).
	dialer := &net.Dialer{Timeout: diffReadTimeout, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	if scripted && sc.starttls {
		conn, err = dialer.Dial("tcp", t.addr)
	} else {
		conn, err = tls.DialWithDialer(dialer, "tcp", t.tlsAddr, cfg)
	}
	if err != nil {
		return nil, err
	}
	s := &diffSession{conn: conn, r: bufio.NewReader(conn), tr: tr, vars: map[string]string{}}
	if scripted {
		for { // skip Dovecot's "waiting for authentication" notes; see rule 11
			line, err := s.readLine(diffReadTimeout)
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("greeting: %w", err)
			}
			tr.add("greeting", line)
			if !strings.HasPrefix(line, "* OK Waiting for authentication") {
				break
			}
		}
		return s, nil
	}
	// A private transcript: the greeting and login of an unscripted session are not compared.
	s.tr = newTranscript()
	if _, err := s.readLine(diffReadTimeout); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if s.send("zz0", fmt.Sprintf("zz0 LOGIN %q %q", sc.user, password)) {
		s.untilTagged("zz0")
	}
	resp := s.tr.responses["zz0"]
	if len(resp) == 0 || !strings.HasPrefix(resp[len(resp)-1], "zz0 OK") {
		conn.Close()
		return nil, fmt.Errorf("login as %s: %q", sc.user, resp)
	}
	s.tr = tr
	return s, nil
}
