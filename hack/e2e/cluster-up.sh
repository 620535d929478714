#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this Linux machine, as root, from binaries
# built from the Go module proxy and Debian's packages: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet and kube-proxy, with bridge CNI
# networking, locally built images and local PersistentVolumes. No registry is used.
#
#   hack/e2e/cluster-up.sh [IMAGE_TAR...]     images to import (docker save tarballs)
#
# Running it again is safe: running daemons are kept, missing ones started, images re-imported,
# the pool of free PersistentVolumes topped up. hack/e2e/cluster-down.sh undoes it all.
# The admin kubeconfig is written to $E2E_STATE/admin.kubeconfig (printed at the end).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(uname -s)" = Linux ] || die "the end-to-end cluster runs on Linux only"
[ "$(id -u)" = 0 ] || die "the end-to-end cluster needs root (it runs kubelet and containerd)"

# On a failure the daemons' last words go to the terminal: cluster-down.sh removes their logs.
failed() {
  local f
  for f in "$LOGS"/*.log; do
    [ -f "$f" ] || continue
    printf '\n==> %s (last 30 lines) <==\n' "$f" >&2
    tail -n 30 "$f" >&2
  done
  log "failed (hack/e2e/cluster-down.sh cleans up)"
}
trap failed ERR

for tar in "$@"; do
  [ -f "$tar" ] || die "image tarball $tar not found (make image-tar builds it)"
done

# --- Debian packages ----------------------------------------------------------------------------
packages=(containerd runc containernetworking-plugins iptables conntrack socat openssl iproute2 procps ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  # The package may try to start its own containerd; policy-rc.d keeps every service down.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Kubernetes binaries (cached under bin/k8s/<version>) ----------------------------------------
"$E2E_ROOT/hack/envtest/build.sh" --node >/dev/null

mkdir -p "$E2E_STATE" "$E2E_RUN" "$PIDS" "$LOGS" "$PKI"

# --- what the host looked like before the first start -------------------------------------------
if [ ! -d "$E2E_STATE/host" ]; then
  mkdir -p "$E2E_STATE/host.tmp"
  for s in "${SYSCTLS[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && printf '%s=%s\n' "$s" "$v"
  done >"$E2E_STATE/host.tmp/sysctl"
  for p in "${FIXED_PATHS[@]}"; do
    [ -e "$p" ] || echo "$p"
  done >"$E2E_STATE/host.tmp/created-paths"
  mv "$E2E_STATE/host.tmp" "$E2E_STATE/host"
fi

NODE_IP=$(node_ip)
[ -n "$NODE_IP" ] || die "cannot find this machine's IPv4 address (no default route)"

# --- certificates --------------------------------------------------------------------------------
cert() { # name subject [serverAltNames]
  local name=$1 subj=$2 san=${3:-}
  [ -f "$PKI/$name.crt" ] && return
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
}
if [ ! -f "$PKI/ca.crt" ]; then
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=kubemail-e2e-ca" -days 365 -sha256 -out "$PKI/ca.crt" 2>/dev/null
fi
[ -f "$PKI/sa.key" ] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null && openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
cert apiserver "/CN=kube-apiserver" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$E2E_APISERVER_SERVICE_IP"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=kubemail-e2e-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"
cert kubelet-client "/O=system:nodes/CN=system:node:$E2E_NODE"
cert kubelet "/CN=$E2E_NODE" "DNS:$E2E_NODE,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"

kubeconfig() { # file cert-name server
  [ -f "$1" ] && grep -q "server: $3\$" "$1" && return
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubemail-e2e
  cluster: {server: $3, certificate-authority: $PKI/ca.crt}
users:
- name: $2
  user: {client-certificate: $PKI/$2.crt, client-key: $PKI/$2.key}
contexts:
- name: kubemail-e2e
  context: {cluster: kubemail-e2e, user: $2}
current-context: kubemail-e2e
EOF
}
server=https://$NODE_IP:$E2E_APISERVER_PORT
kubeconfig "$KUBECONFIG_ADMIN" admin "$server"
kubeconfig "$E2E_STATE/controller-manager.kubeconfig" controller-manager "$server"
kubeconfig "$E2E_STATE/scheduler.kubeconfig" scheduler "$server"
kubeconfig "$E2E_STATE/kube-proxy.kubeconfig" kube-proxy "$server"
kubeconfig "$E2E_STATE/kubelet.kubeconfig" kubelet-client "$server"

# write_config FILE: write standard input to FILE unless it holds that already (kube-proxy exits
# when its configuration file changes, even to the same content).
write_config() {
  local tmp=$1.tmp
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# start NAME COMMAND...: start a daemon in its own session unless it already runs.
start() {
  local name=$1
  shift
  if pid_alive "$name" >/dev/null; then return; fi
  log "starting $name"
  # The program's resolved path is recorded with its PID, so a PID the kernel later gives to
  # another program is never taken for the daemon. (Without job control setsid execs in place:
  # $! is the daemon's own PID.)
  readlink -f "$(command -v "$1")" >"$PIDS/$name.exe"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name"
}

# --- etcd and the control plane ------------------------------------------------------------------
start etcd "$K8S_BIN/etcd" --name kubemail-e2e --data-dir "$E2E_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((E2E_ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((E2E_ETCD_PORT + 10))" \
  --initial-cluster "kubemail-e2e=http://127.0.0.1:$((E2E_ETCD_PORT + 10))" --unsafe-no-fsync=false --log-level warn

start kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$E2E_ETCD_PORT" \
  --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port "$E2E_APISERVER_PORT" \
  --service-cluster-ip-range "$E2E_SERVICE_CIDR" --allow-privileged=false \
  --authorization-mode Node,RBAC --client-ca-file "$PKI/ca.crt" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --enable-admission-plugins NodeRestriction --profiling=false
poll 60 "the API server" kubectl get --raw /readyz

start kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig "$E2E_STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$E2E_STATE/controller-manager.kubeconfig" --authorization-kubeconfig "$E2E_STATE/controller-manager.kubeconfig" \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" --use-service-account-credentials \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$E2E_SERVICE_CIDR" --leader-elect=false --bind-address 127.0.0.1 --profiling=false
start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig "$E2E_STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$E2E_STATE/scheduler.kubeconfig" --authorization-kubeconfig "$E2E_STATE/scheduler.kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --profiling=false

# --- cluster DNS: pod and Service names (a StatefulSet's pods under its headless Service) ---------
# CoreDNS runs on the node, on the node's address (kubelet gives it to pods as their resolver);
# it answers the pods, the node and nobody else.
write_config "$E2E_STATE/Corefile" <<EOF
.:53 {
  bind $NODE_IP
  acl {
    allow net $E2E_POD_CIDR 127.0.0.0/8 $NODE_IP/32
    block
  }
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $KUBECONFIG_ADMIN
    pods insecure
    ttl 5
    fallthrough in-addr.arpa ip6.arpa
  }
  forward . /etc/resolv.conf
  cache 5
}
EOF
start coredns "$K8S_BIN/coredns" -conf "$E2E_STATE/Corefile"

# --- containerd ------------------------------------------------------------------------------------
mkdir -p "$E2E_STATE/cni/net.d" "$E2E_STATE/containerd" "$E2E_RUN/containerd"
write_config "$E2E_STATE/containerd/config.toml" <<EOF
version = 2
root = "$E2E_STATE/containerd/root"
state = "$E2E_RUN/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$E2E_RUN/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$E2E_PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE (as in many VMs) runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$E2E_STATE/cni/net.d"
EOF
write_config "$E2E_STATE/cni/net.d/10-kubemail-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kubemail-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$E2E_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$E2E_POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$E2E_STATE/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
# Debian's containerd finds its shim on PATH.
PATH=/usr/bin:/usr/sbin:/bin:/sbin start containerd /usr/bin/containerd --config "$E2E_STATE/containerd/config.toml"
poll 30 "containerd" ctr --address "$CONTAINERD_SOCK" version

ctr_images() { ctr --address "$CONTAINERD_SOCK" -n k8s.io images "$@"; }
if ! ctr_images ls -q | grep -qx "$E2E_PAUSE_IMAGE"; then
  log "building the pause image"
  (cd "$E2E_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$E2E_STATE/pause" ./hack/e2e/pause)
  (cd "$E2E_ROOT/hack/image" && go run . --pause "$E2E_STATE/pause" --tag "$E2E_PAUSE_IMAGE" --arch "$(go env GOARCH)" --out "$E2E_STATE/pause.tar" >/dev/null)
  ctr_images import "$E2E_STATE/pause.tar" >/dev/null
fi
for tar in "$@"; do
  log "importing $tar"
  ctr_images import "$tar" >/dev/null
done

# --- host networking ------------------------------------------------------------------------------
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1

# --- kubelet and kube-proxy -----------------------------------------------------------------------
mkdir -p "$E2E_STATE/kubelet" "$E2E_STATE/pod-logs"
write_config "$E2E_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
podLogsDir: $E2E_STATE/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
maxPods: 50
EOF
start kubelet "$K8S_BIN/kubelet" --config "$E2E_STATE/kubelet.yaml" --kubeconfig "$E2E_STATE/kubelet.kubeconfig" \
  --root-dir "$E2E_STATE/kubelet" --hostname-override "$E2E_NODE" --node-ip "$NODE_IP"

write_config "$E2E_STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $E2E_STATE/kube-proxy.kubeconfig}
hostnameOverride: $E2E_NODE
clusterCIDR: $E2E_POD_CIDR
conntrack: {maxPerCore: 0}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
EOF
start kube-proxy "$K8S_BIN/kube-proxy" --config "$E2E_STATE/kube-proxy.yaml"

poll 60 "node $E2E_NODE to register" kubectl get node "$E2E_NODE"
kubectl wait --for=condition=Ready "node/$E2E_NODE" --timeout=120s >/dev/null

# --- storage: a default StorageClass and a pool of local PersistentVolumes -------------------------
kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
# A released volume (its claim deleted) is wiped and offered again; then the pool is topped up.
for pv in $(kubectl get pv -l kubemail.io/e2e-pool -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
  kubectl delete pv "$pv" --wait=true >/dev/null
  rm -rf "${E2E_STATE:?}/volumes/$pv"
done
free=$(kubectl get pv -l kubemail.io/e2e-pool -o jsonpath='{range .items[?(@.status.phase=="Available")]}{.metadata.name}{"\n"}{end}' | grep -c . || true)
while [ "$free" -lt "$E2E_PVS" ]; do
  pv=e2e-pv-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  mkdir -p "$E2E_STATE/volumes/$pv"
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  labels: {kubemail.io/e2e-pool: "true"}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: $E2E_STATE/volumes/$pv}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$E2E_NODE]}
EOF
  free=$((free + 1))
done

log "node $E2E_NODE is Ready (API server $server)"
echo "$KUBECONFIG_ADMIN"
