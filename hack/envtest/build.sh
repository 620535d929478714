#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kubectl, etcd) into bin/k8s/$K8S_VERSION/ at
# the repository root; with --node also the components a real single-node cluster adds
# (kube-controller-manager, kube-scheduler, kubelet, kube-proxy). Idempotent: binaries already
# there are kept, so the folder is a cache keyed on the Kubernetes version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
K8S_VERSION=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$here/go.mod")
COREDNS_VERSION=v1.15.0
out=${ENVTEST_ASSETS_DIR:-$root/bin/k8s/${K8S_VERSION#v}}
mkdir -p "$out"

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build() { # name dir pkg
  if [ -x "$out/$1" ]; then return; fi
  echo "building $1 $K8S_VERSION from the Go module proxy into $out (first time only: several minutes, a few GB of build cache)" >&2
  (cd "$2" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$1.tmp" "$3")
  mv "$out/$1.tmp" "$out/$1"
}
build kube-apiserver "$here" k8s.io/kubernetes/cmd/kube-apiserver
build kubectl "$here" k8s.io/kubernetes/cmd/kubectl
build etcd "$here/etcd" .
if [ "${1:-}" = --node ]; then
  for c in kube-controller-manager kube-scheduler kubelet kube-proxy; do
    build "$c" "$here" "k8s.io/kubernetes/cmd/$c"
  done
  # The cluster's DNS (pod and Service names), built with its own module's requirements.
  if [ ! -x "$out/coredns" ]; then
    echo "building coredns $COREDNS_VERSION from the Go module proxy into $out (first time only: a few minutes)" >&2
    rm -rf "$out/.coredns"
    GOBIN="$out/.coredns" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
    mv "$out/.coredns/coredns" "$out/coredns"
    rmdir "$out/.coredns"
  fi
fi
echo "$out"
