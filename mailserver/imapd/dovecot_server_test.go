package imapd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/selfsigned"
)

// dovecot is a private Dovecot instance on loopback, the oracle of the differential test: same
// users, same password, the same standard folders with the same special-use attributes as a
// kubemail mailbox has, so that the only differences left are those of the IMAP servers.
type dovecot struct {
	// addr offers STARTTLS, tlsAddr implicit TLS; both present dovecotCert.
	addr, tlsAddr string
	clientTLS     *tls.Config
	log           string
}

// dovecotIP is where Dovecot listens. Not 127.0.0.1: Dovecot treats a connection whose two
// ends have the same address as secure, and would accept passwords before STARTTLS; clients
// connect from 127.0.0.1, so the test sees what a remote client sees.
const dovecotIP = "127.0.0.2"

// dovecotImapBinary is what the dovecot-imapd package adds to dovecot-core: without it Dovecot
// starts but refuses every IMAP login.
const dovecotImapBinary = "/usr/lib/dovecot/imap"

func dovecotBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot" // sbin is not always in a user's PATH
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("dovecot (Debian's dovecot-imapd) is not installed; it is the reference this test compares " +
			"kubemail's IMAP server with. Install it with: apt-get install -y dovecot-imapd (Debian/Ubuntu; " +
			".ci/run shows how to keep its system service from starting)")
	}
	if _, err := os.Stat(dovecotImapBinary); err != nil {
		t.Fatalf("%s is missing: Dovecot's IMAP server comes with the dovecot-imapd package; "+
			"install it with: apt-get install -y dovecot-imapd", dovecotImapBinary)
	}
	return bin
}

// dovecotCert is made once per test binary, like tlstest's (the key pair is not exported there).
var dovecotCert = sync.OnceValues(func() ([2][]byte, error) {
	certPEM, keyPEM, err := selfsigned.Certificate([]string{dovecotIP, "localhost"}, 24*time.Hour)
	return [2][]byte{certPEM, keyPEM}, err
})

// startDovecot runs a fresh Dovecot (empty mail directories) in the foreground until the test
// ends, and returns once it greets clients with its capabilities (that is, once its
// authentication process is up).
func startDovecot(t *testing.T) *dovecot {
	t.Helper()
	bin := dovecotBinary(t)
	pem, err := dovecotCert()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: Dovecot's sockets live under base_dir, and a unix socket path must stay
	// under 108 bytes; and when run as root the mail processes run as nobody, who must reach
	// the home directories.
	dir, err := os.MkdirTemp("", "kmdc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "home"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "home"), 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	// Readable by Dovecot's auth worker, which runs as default_internal_user.
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("cert.pem", pem[0]), write("key.pem", pem[1])
	// bob has a quota of 4000 bytes, as in newEnv's directory.
	passwd := write("passwd", []byte(fmt.Sprintf("%s:{PLAIN}%s::::::\n%s:{PLAIN}%s::::::userdb_quota_rule=*:storage=4000B\n",
		alice, password, bob, password)))
	plainPort, tlsPort := freePort(t, dovecotIP), freePort(t, dovecotIP)

	users := "default_internal_user = dovecot\ndefault_login_user = dovenull\nmail_uid = nobody\nmail_gid = nogroup\n"
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		users = fmt.Sprintf("default_internal_user = %s\ndefault_login_user = %s\n", u.Username, u.Username)
	}
	conf := write("dovecot.conf", []byte(fmt.Sprintf(dovecotConf, filepath.Base(dir), dir, dir, dir,
		dovecotIP, certFile, keyFile, users, passwd, dir, plainPort, tlsPort)))

	var out bytes.Buffer
	cmd := exec.Command(bin, "-F", "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that the master and its children are stopped together; and
	// killed with the test binary if that dies before its cleanup runs (a timeout's SIGQUIT),
	// Dovecot's children following their master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// SIGKILL to the group: the instance and its mail are thrown away, and Dovecot's master
	// takes a second to stop its children on SIGTERM.
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem[0])
	d := &dovecot{addr: fmt.Sprintf("%s:%d", dovecotIP, plainPort), tlsAddr: fmt.Sprintf("%s:%d", dovecotIP, tlsPort),
		clientTLS: &tls.Config{RootCAs: pool}, log: filepath.Join(dir, "dovecot.log")}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("dovecot exited at start: %s\n%s", out.String(), d.logTail())
		default:
		}
		if d.ready() {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not greet on %s within 10s: %s\n%s", d.addr, out.String(), d.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready reports whether Dovecot greets with its capabilities. Until its authentication process
// answers it first sends "* OK Waiting for authentication process to respond..", which would
// otherwise show up in a script's first response.
func (d *dovecot) ready() bool {
	c, err := net.DialTimeout("tcp", d.addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, "* OK [CAPABILITY") {
			return true
		}
	}
}

func (d *dovecot) logTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "dovecot.log:\n" + string(b)
}

func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dovecotConf is the package defaults except where noted. Arguments: instance name, base_dir,
// state_dir, log_path's directory, listening address, certificate, key, the users processes run as, passwd
// file, homes' directory, IMAP port, IMAPS port.
const dovecotConf = `instance_name = %s
base_dir = %s/run
state_dir = %s/state
log_path = %s/dovecot.log
protocols = imap
listen = %s
ssl = yes
ssl_cert = <%s
ssl_key = <%s
auth_mechanisms = plain
# Failed logins are answered at once, as kubemail answers them until a client fails often:
# no fixed delay, and no growing penalty per address (anvil's, off without its socket).
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
%s
first_valid_uid = 1
# LAYOUT=fs: folder names may contain dots, as kubemail's may.
mail_location = maildir:~/Maildir:LAYOUT=fs
mail_plugins = quota
protocol imap {
  # COMPRESS=DEFLATE and QUOTA are in the issue's list of capabilities.
  mail_plugins = $mail_plugins imap_quota imap_zlib
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
}
passdb {
  driver = passwd-file
  args = %s
}
userdb {
  driver = static
  args = home=%s/home/%%u
}
# kubemail's standard folders (store/names.go), subscribed from the start.
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    auto = subscribe
    special_use = \Sent
  }
  mailbox Drafts {
    auto = subscribe
    special_use = \Drafts
  }
  mailbox Trash {
    auto = subscribe
    special_use = \Trash
  }
  mailbox Junk {
    auto = subscribe
    special_use = \Junk
  }
  mailbox Archive {
    auto = subscribe
    special_use = \Archive
  }
}
service imap-login {
  inet_listener imap {
    port = %d
  }
  inet_listener imaps {
    port = %d
  }
}
`
