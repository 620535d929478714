# kubemail — build, generate, test.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

ROOT := $(CURDIR)
BIN := $(ROOT)/bin
K8S_VERSION := 1.37.2
ENVTEST_ASSETS := $(BIN)/k8s/$(K8S_VERSION)
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)

CONTROLLER_GEN := $(BIN)/controller-gen
HELM := $(BIN)/helm

GO_TEST_FLAGS ?= -race -count=1

.PHONY: all
all: build

##@ Build

.PHONY: build
build: ## Build the manager and mailserver binaries into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/ ./cmd/...

.PHONY: dev
dev: build envtest-assets ## Run a local control plane, the operator, config/samples and the sample mail server.
	go run ./hack/dev

##@ Generated code

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(HELM): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $@ helm.sh/helm/v3/cmd/helm

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/, then docs/api.md from the CRDs.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	@if [ -d controllers ]; then $(CONTROLLER_GEN) rbac:roleName=kubemail-manager paths=./controllers/... output:rbac:artifacts:config=config/rbac; fi
	go run ./hack/apidocs

.PHONY: api-docs
api-docs: ## Write the API reference docs/api.md from the CRDs and config/samples.
	go run ./hack/apidocs

.PHONY: verify
verify: ## Fail when generated files are stale, gofmt would change a file, or go vet complains.
	hack/verify.sh

##@ Test

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl for tests into bin/k8s/ (skipped when present).
	hack/envtest/build.sh

.PHONY: test
test: envtest-assets verify ## Run every test tier (unit, protocol, integration).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
