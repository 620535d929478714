#!/usr/bin/env bash
# Stops the end-to-end cluster hack/e2e/cluster-up.sh started and undoes its changes to the
# host: pods are deleted while kubelet still runs (so their networks are torn down by the CNI
# plugins), the daemons are stopped by the PIDs cluster-up.sh recorded, then whatever is left is
# removed: container processes (found by their cgroups), containerd shims serving our socket,
# mounts under the cluster's folders, pod network namespaces, the bridge, the KUBE-/CNI-
# iptables chains and rules, the kubepods cgroups, the sysctls (put back to their old values)
# and the fixed paths the cluster created. Safe to run at any time, also after a failed or
# partial start, and more than once.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "cluster-down needs root"

# stop NAME [SIGNAL]: stop a daemon by its recorded PID and wait for it (up to 30 s, then KILL).
stop() {
  local pid
  pid=$(pid_alive "$1") || { rm -f "$PIDS/$1" "$PIDS/$1.exe"; return 0; }
  log "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 60); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
  [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null && sleep 0.5
  rm -f "$PIDS/$1" "$PIDS/$1.exe"
}

# 1. Pods away while the node still runs them, so kubelet stops them and tears their networks
#    down. The controllers and the scheduler go first, so nothing is recreated.
if pid_alive kube-apiserver >/dev/null && pid_alive kubelet >/dev/null; then
  stop kube-controller-manager
  stop kube-scheduler
  if kubectl get pods -A -o name 2>/dev/null | grep -q .; then
    log "deleting pods"
    kubectl delete pods --all -A --grace-period=2 --timeout=90s >/dev/null 2>&1 || true
  fi
fi

# 2. The daemons, in reverse start order.
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop "${DAEMONS[i]}"; done

# 3. Left-over container processes: everything in a kubepods cgroup was started by our kubelet.
kubepods_procs() {
  local d
  for d in $(kubepods_cgroups); do
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}
shim_procs() { # containerd shims serving our socket
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $CONTAINERD_SOCK" && echo "${p#/proc/}"
  done
}
for _ in 1 2 3; do
  procs=$(kubepods_procs; shim_procs)
  [ -n "$procs" ] || break
  log "killing left-over container processes: $(echo $procs)"
  kill -KILL $procs 2>/dev/null
  sleep 1
done

# 4. Mounts under our folders and the pods' network namespaces.
for _ in 1 2 3; do
  ms=$(cluster_mounts)
  [ -n "$ms" ] || break
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<<"$ms"
done
rm -f /run/netns/cni-* 2>/dev/null

# 5. The pods' veths, the bridge, and the iptables chains and rules kubelet, kube-proxy and the
# CNI plugins made. The kernel removes a pod's veth with its network namespace, but only a moment
# after the last process in it is gone (killed above): delete the host ends on our bridge now.
for l in $(ip -o link show master "$E2E_BRIDGE" type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link delete "$l" 2>/dev/null
done
ip link show "$E2E_BRIDGE" >/dev/null 2>&1 && ip link delete "$E2E_BRIDGE"
for cmd in iptables ip6tables; do
  command -v "$cmd-save" >/dev/null || continue
  rules=$("$cmd-save" 2>/dev/null) || continue
  if grep -qE 'KUBE-|CNI-' <<<"$rules"; then
    log "removing the cluster's $cmd rules"
    grep -vE 'KUBE-|CNI-' <<<"$rules" | "$cmd-restore"
  fi
done
command -v conntrack >/dev/null && conntrack -D -s "$E2E_POD_CIDR" >/dev/null 2>&1

# 6. The kubepods cgroups (depth first).
for d in $(kubepods_cgroups); do
  find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done

# 7. The host's sysctls and fixed paths as they were.
if [ -f "$E2E_STATE/host/sysctl" ]; then
  while IFS= read -r kv; do sysctl -qw "$kv" 2>/dev/null; done <"$E2E_STATE/host/sysctl"
fi
if [ -f "$E2E_STATE/host/created-paths" ]; then
  while IFS= read -r p; do
    case "$p" in /var/lib/kubelet | /var/log/containers | /var/log/pods | /var/lib/cni | /run/netns | /etc/cni) rm -rf "$p" ;; esac
  done <"$E2E_STATE/host/created-paths"
fi

# 8. Our folders.
left=$(cluster_mounts)
if [ -n "$left" ]; then
  die "still mounted, not removing $E2E_STATE: $left"
fi
rm -rf "$E2E_STATE" "$E2E_RUN"
log "down"
