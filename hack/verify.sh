#!/usr/bin/env bash
# Fails when generated files are stale, gofmt would change a file, go vet complains, or a
# module's go.mod/go.sum is untidy. Regenerates into the work tree and compares with git.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
bad=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$bad" ]; then
  echo "verify: gofmt would change these files (run gofmt -w):" >&2
  echo "$bad" >&2
  fail=1
fi

{ go vet ./... && go vet -tags e2e ./test/e2e/; } || { echo "verify: go vet failed" >&2; fail=1; }

for mod in . hack/tools hack/envtest hack/envtest/etcd hack/image; do
  if ! (cd "$mod" && go mod tidy -diff >/dev/null); then
    echo "verify: $mod/go.mod or go.sum is not tidy (run: cd $mod && go mod tidy)" >&2
    fail=1
  fi
done

generated=(api config/crd config/rbac docs charts/kubemail/templates/crds charts/kubemail/files)
before=$(git diff --no-ext-diff -- "${generated[@]}"; git ls-files -o --exclude-standard -- "${generated[@]}")
make -s generate manifests
after=$(git diff --no-ext-diff -- "${generated[@]}"; git ls-files -o --exclude-standard -- "${generated[@]}")
if [ "$before" != "$after" ]; then
  echo "verify: generated files were stale; 'make generate manifests' changed:" >&2
  git status --short -- "${generated[@]}" >&2
  fail=1
fi
exit $fail
