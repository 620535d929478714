#!/usr/bin/env bash
# Installs kubemail with kustomize (config/default) into the cluster of the current kubeconfig:
# namespace, CRDs, RBAC and the operator. IMG=repo:tag deploys another image than the release's,
# for both the operator and (through KUBEMAIL_IMAGE) the mail servers.
# Usage: hack/deploy.sh KUBECTL [IMG]
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=$1
img=${2:-}

dir=config/default
if [ -n "$img" ]; then
  name=${img%:*}
  tag=${img##*:}
  if [ "$name" = "$img" ] || [[ "$tag" == */* ]]; then
    echo "deploy: IMG=$img has no tag; give repository:tag" >&2
    exit 1
  fi
  # An overlay in bin/ (ignored by git): the image, then KUBEMAIL_IMAGE copied from it again,
  # since the base copied it before the overlay changed the image.
  dir=bin/deploy
  mkdir -p "$dir"
  cat >"$dir/kustomization.yaml" <<YAML
resources:
  - ../../config/default
images:
  - name: kubemail/kubemail
    newName: $name
    newTag: $tag
replacements:
  - source:
      kind: Deployment
      name: kubemail
      fieldPath: spec.template.spec.containers.[name=manager].image
    targets:
      - select:
          kind: Deployment
          name: kubemail
        fieldPaths:
          - spec.template.spec.containers.[name=manager].env.[name=KUBEMAIL_IMAGE].value
YAML
fi
# Server-side apply: the CRDs are too large for the last-applied annotation of client-side apply.
"$kubectl" apply --server-side --field-manager=kubemail-deploy -k "$dir"
