# Shared settings and helpers of the end-to-end cluster scripts (cluster-up.sh, cluster-down.sh).
# Everything the cluster writes lives under $E2E_STATE and $E2E_RUN; the few fixed paths that
# kubelet and the CNI plugins insist on are recorded before the first start and removed by
# cluster-down.sh only when the cluster created them.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
K8S_BIN=${K8S_BIN:-$E2E_ROOT/bin/k8s/$K8S_VERSION}
E2E_STATE=${E2E_STATE:-/var/lib/kubemail-e2e}
E2E_RUN=${E2E_RUN:-/run/kubemail-e2e}
E2E_NODE=${E2E_NODE:-kubemail-e2e}
E2E_APISERVER_PORT=${E2E_APISERVER_PORT:-6443}
E2E_ETCD_PORT=${E2E_ETCD_PORT:-23790}
E2E_POD_CIDR=${E2E_POD_CIDR:-10.244.0.0/24}
E2E_SERVICE_CIDR=${E2E_SERVICE_CIDR:-10.96.0.0/16}
E2E_APISERVER_SERVICE_IP=${E2E_APISERVER_SERVICE_IP:-10.96.0.1}
E2E_BRIDGE=${E2E_BRIDGE:-kme2e0}
E2E_PAUSE_IMAGE=${E2E_PAUSE_IMAGE:-kubemail.local/pause:e2e}
E2E_PVS=${E2E_PVS:-8}

PKI=$E2E_STATE/pki
LOGS=$E2E_STATE/logs
PIDS=$E2E_RUN/pids
CONTAINERD_SOCK=$E2E_RUN/containerd/containerd.sock
KUBECONFIG_ADMIN=$E2E_STATE/admin.kubeconfig

# The daemons, in start order; cluster-down.sh stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler coredns containerd kubelet kube-proxy)

# The fixed host paths kubelet, containerd's CNI cache and the plugins write outside our folders.
FIXED_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/netns /etc/cni)

# The sysctls the cluster sets (here and in kubelet and kube-proxy); their values before the
# first start are kept in $E2E_STATE/host/sysctl and put back by cluster-down.sh.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait
  net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce)

log() { printf 'e2e-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# pid_alive NAME: the PID recorded for daemon NAME, when that process still runs the same
# program (a PID reused by another program does not count).
pid_alive() {
  local f=$PIDS/$1 pid exe
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$exe" = "$(cat "$f.exe" 2>/dev/null)" ] || return 1
  echo "$pid"
}

# poll SECONDS WHAT COMMAND...: run COMMAND every half second until it succeeds or time is up.
poll() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

node_ip() { ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p'; }

# cluster_mounts: the mounts of the cluster (under its folders, kubelet's root and the pods'
# network namespaces), deepest first, so they can be unmounted in that order.
cluster_mounts() {
  awk '{print $5}' /proc/self/mountinfo | while read -r m; do
    m=$(printf '%b' "$m") # mountinfo escapes spaces as \040
    case "$m" in
      "$E2E_STATE" | "$E2E_STATE"/* | "$E2E_RUN" | "$E2E_RUN"/* | /run/netns/cni-* | /var/run/netns/cni-* | /var/lib/kubelet/*) echo "$m" ;;
    esac
  done | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# kubepods_cgroups: the cgroup folders kubelet made for pods (cgroupfs driver, v1 and v2).
kubepods_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/kubepods /sys/fs/cgroup/kubepods.slice; do
    [ -d "$d" ] && echo "$d"
  done
}
