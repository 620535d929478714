#!/usr/bin/env bash
# Fails when anything of the end-to-end cluster is still on this machine: a process of its
# binaries or containers, a mount under its folders or a pod network namespace, its bridge or a
# pod's veth, an iptables rule or chain of kubelet, kube-proxy or the CNI plugins, its folders.
# `make e2e` runs it after hack/e2e/cluster-down.sh.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

found=()
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)
  case "$exe" in
    "$K8S_BIN"/*) found+=("process ${p#/proc/}: $cmd") ;;
    */containerd | */containerd-shim*) [[ "$cmd" == *"$E2E_STATE"* || "$cmd" == *"$E2E_RUN"* ]] && found+=("process ${p#/proc/}: $cmd") ;;
  esac
done
while read -r d; do found+=("cgroup $d"); done < <(kubepods_cgroups)
while read -r m; do found+=("mount $m"); done < <(cluster_mounts)
ip link show "$E2E_BRIDGE" >/dev/null 2>&1 && found+=("network device $E2E_BRIDGE")
while read -r l; do found+=("network device $l"); done < <(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1)
for cmd in iptables ip6tables; do
  command -v "$cmd-save" >/dev/null || continue
  n=$("$cmd-save" 2>/dev/null | grep -cE 'KUBE-|CNI-' || true)
  [ "$n" -gt 0 ] && found+=("$n $cmd lines with KUBE- or CNI-")
done
if command -v nft >/dev/null; then
  while read -r t; do found+=("nftables table $t"); done < <(nft list tables 2>/dev/null | grep -E 'kube-proxy|kubelet')
fi
for d in "$E2E_STATE" "$E2E_RUN"; do [ -e "$d" ] && found+=("folder $d"); done

if [ ${#found[@]} -gt 0 ]; then
  log "left behind:"
  printf '  %s\n' "${found[@]}" >&2
  exit 1
fi
log "nothing of the cluster is left on this machine"
