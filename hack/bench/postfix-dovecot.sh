#!/usr/bin/env bash
# Postfix + Dovecot as a private instance under one directory, the reference that
# `make bench-mail` measures kubemail against.
#
#   hack/bench/postfix-dovecot.sh install      # Debian packages, no system daemon left running
#   hack/bench/postfix-dovecot.sh up DIR       # configure and start an instance in DIR
#   hack/bench/postfix-dovecot.sh down DIR     # stop the instance started in DIR
#
# `up` reads DIR/accounts (one "address<TAB>argon2id-hash" a line, all in one domain) and, when
# present, DIR/tls/tls.crt and tls.key (otherwise it makes a self-signed pair). It serves the
# same job as the kubemail rig: Postfix smtpd on 127.0.0.1:$PF_SMTP_PORT accepts mail for the
# domain and hands it over LMTP (unix socket) to Dovecot, which stores Maildir and serves IMAPS
# on 127.0.0.1:$DC_IMAPS_PORT and POP3S on 127.0.0.1:$DC_POP3S_PORT. Durability settings are the
# packages' defaults (Postfix fsyncs its queue file before 250; Dovecot mail_fsync=optimized).
# Everything it writes is under DIR; `down` signals the PIDs that `up` recorded and nothing else.
set -euo pipefail

PF_SMTP_PORT=${PF_SMTP_PORT:-20025}
DC_IMAPS_PORT=${DC_IMAPS_PORT:-20993}
DC_POP3S_PORT=${DC_POP3S_PORT:-20995}
# Enough processes and descriptors for 1,000 idle IMAP connections (Dovecot runs one imap-login
# and one imap process for each TLS connection).
DC_PROCESS_LIMIT=${DC_PROCESS_LIMIT:-2500}

die() { echo "postfix-dovecot.sh: $*" >&2; exit 1; }

# pid_alive PID: the process exists (and is not a zombie).
pid_alive() { [[ -n "$1" && -e /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# system_daemons prints the PIDs of a Postfix or Dovecot master serving the system configuration.
system_daemons() {
	local f pid
	for f in /var/spool/postfix/pid/master.pid /run/dovecot/master.pid; do
		[[ -r $f ]] || continue
		pid=$(tr -dc 0-9 <"$f")
		if pid_alive "$pid"; then echo "$pid"; fi
	done
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@"
}

install_packages() {
	local need=()
	for p in postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd openssl; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
	done
	[[ ${#need[@]} -eq 0 ]] && return 0
	[[ $(id -u) -eq 0 ]] || die "installing ${need[*]} needs root"
	local before
	before=$(system_daemons)
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	# Keep the packages from starting their system daemons: the benchmark runs its own instance.
	local policy=/usr/sbin/policy-rc.d made_policy=""
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	local rc=0
	apt_install "${need[@]}" || rc=$?
	if [[ $rc -ne 0 ]]; then
		# Perhaps the package lists were never fetched or are stale.
		rc=0
		{ apt-get -o DPkg::Lock::Timeout=600 update -q && apt_install "${need[@]}"; } || rc=$?
	fi
	if [[ -n $made_policy ]]; then rm -f "$policy"; fi
	[[ $rc -eq 0 ]] || die "apt-get install ${need[*]} failed"
	# Should a package have started its daemon anyway, stop it (only if it was not running before).
	local pid
	for pid in $(system_daemons); do
		grep -qx "$pid" <<<"$before" && continue
		echo "stopping system daemon $pid started by the package install" >&2
		kill "$pid" 2>/dev/null || true
	done
}

# wait_gone PID...: wait up to 20 s for the processes to exit.
wait_gone() {
	local i pid alive
	for ((i = 0; i < 200; i++)); do
		alive=""
		for pid in "$@"; do pid_alive "$pid" && alive=1; done
		[[ -z $alive ]] && return 0
		sleep 0.1
	done
	return 1
}

up() {
	local dir=$1
	[[ $(id -u) -eq 0 ]] || die "up needs root (Postfix and Dovecot drop privileges themselves)"
	[[ -r $dir/accounts ]] || die "$dir/accounts is missing"
	dir=$(cd "$dir" && pwd)
	install_packages
	local domain
	domain=$(awk -F'\t' 'NF { sub(/.*@/, "", $1); print $1; exit }' "$dir/accounts")
	[[ -n $domain ]] || die "$dir/accounts lists no address"

	# Daemons run as postfix, mail and dovenull: they must reach into DIR.
	chmod 755 "$dir"
	runuser -u postfix -- test -x "$dir" || die "user postfix cannot enter $dir: make its parent folders searchable (chmod o+x)"
	mkdir -p "$dir/tls"
	if [[ ! -s $dir/tls/tls.crt || ! -s $dir/tls/tls.key ]]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
			-keyout "$dir/tls/tls.key" -out "$dir/tls/tls.crt" 2>/dev/null
	fi

	# Dovecot.
	local dc=$dir/dovecot
	mkdir -p "$dc/run" "$dc/state" "$dc/mail"
	chown mail:mail "$dc/mail"
	awk -F'\t' 'NF { printf "%s:{ARGON2ID}%s\n", $1, $2 }' "$dir/accounts" >"$dc/passwd"
	chown root:dovecot "$dc/passwd"
	chmod 640 "$dc/passwd"
	cat >"$dc/dovecot.conf" <<EOF
# Private Dovecot instance of the kubemail benchmark; package defaults except where noted.
instance_name = kubemail-bench-dovecot
base_dir = $dc/run
state_dir = $dc/state
log_path = $dc/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = required
ssl_cert = <$dir/tls/tls.crt
ssl_key = <$dir/tls/tls.key
auth_mechanisms = plain
# kubemail keeps successful verifications for a while too (auth.Verifier).
auth_cache_size = 10M
first_valid_uid = $(id -u mail)
first_valid_gid = $(id -g mail)
mail_uid = mail
mail_gid = mail
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=ARGON2ID $dc/passwd
}
userdb {
  driver = static
  args = home=$dc/mail/%d/%n
}
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
# Room for the idle-connection test (the defaults allow 100 login processes and 10
# connections per user and address).
default_process_limit = $DC_PROCESS_LIMIT
default_client_limit = $((DC_PROCESS_LIMIT * 4))
mail_max_userip_connections = $DC_PROCESS_LIMIT
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DC_IMAPS_PORT
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $DC_POP3S_PORT
  }
}
service imap {
  process_limit = $DC_PROCESS_LIMIT
}
# COMPRESS=DEFLATE (RFC 4978), which kubemail offers too: the benchmark also measures idle
# connections that compress.
protocol imap {
  mail_plugins = \$mail_plugins imap_zlib
}
service pop3 {
  process_limit = $DC_PROCESS_LIMIT
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol pop3 {
  pop3_uidl_format = %08Xu%08Xv
}
EOF

	# Postfix.
	local pf=$dir/postfix
	mkdir -p "$pf/etc" "$pf/spool" "$pf/data"
	chown postfix:postfix "$pf/data"
	awk -F'\t' 'NF { printf "%s OK\n", $1 }' "$dir/accounts" >"$pf/etc/vmailbox"
	cat >"$pf/etc/main.cf" <<EOF
# Private Postfix instance of the kubemail benchmark; package defaults except where noted.
compatibility_level = 3.7
queue_directory = $pf/spool
data_directory = $pf/data
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
myhostname = mx.$domain
mydomain = $domain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_transport = error:no local delivery
virtual_mailbox_domains = $domain
virtual_mailbox_maps = texthash:$pf/etc/vmailbox
virtual_transport = lmtp:unix:$dc/run/lmtp
# Loopback only: no DNS for the client's name.
smtpd_peername_lookup = no
biff = no
EOF
	cat >"$pf/etc/master.cf" <<EOF
127.0.0.1:$PF_SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

	ulimit -n "$(ulimit -Hn)"
	dovecot -c "$dc/dovecot.conf" || die "dovecot did not start; see $dc/dovecot.log"
	local i
	for ((i = 0; i < 100; i++)); do [[ -s $dc/run/master.pid ]] && break; sleep 0.1; done
	tr -dc 0-9 <"$dc/run/master.pid" >"$dir/dovecot.pid"
	# The postfix command reports errors to syslog, or to its terminal when it has one.
	if ! script -qec "postfix -c $pf/etc start" /dev/null >"$pf/start.log" 2>&1; then
		cat "$pf/start.log" >&2
		down "$dir"
		die "postfix did not start"
	fi
	for ((i = 0; i < 100; i++)); do [[ -s $pf/spool/pid/master.pid ]] && break; sleep 0.1; done
	tr -dc 0-9 <"$pf/spool/pid/master.pid" >"$dir/postfix.pid"
	echo "postfix master $(cat "$dir/postfix.pid") smtp 127.0.0.1:$PF_SMTP_PORT; dovecot master $(cat "$dir/dovecot.pid") imaps 127.0.0.1:$DC_IMAPS_PORT pop3s 127.0.0.1:$DC_POP3S_PORT"
}

down() {
	local dir=$1 pids=() f pid
	for f in "$dir/postfix.pid" "$dir/dovecot.pid"; do
		[[ -r $f ]] || continue
		pid=$(tr -dc 0-9 <"$f")
		if pid_alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
		rm -f "$f"
	done
	# Both masters stop their children when they exit.
	if [[ ${#pids[@]} -gt 0 ]] && ! wait_gone "${pids[@]}"; then
		for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	fi
}

case "${1:-}" in
install) install_packages ;;
up) [[ $# -eq 2 ]] || die "usage: $0 up DIR"; up "$2" ;;
down) [[ $# -eq 2 ]] || die "usage: $0 down DIR"; down "$2" ;;
*) die "usage: $0 install | up DIR | down DIR" ;;
esac
