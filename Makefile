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
KUBECTL ?= $(ENVTEST_ASSETS)/kubectl

# The release this build is: a tag (v0.1.0) or a commit; the binaries print it with --version.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
endif
LDFLAGS := -X github.com/kubemail/kubemail/internal/version.Version=$(VERSION)

# The container image: both binaries, made with `make image-tar` (no container engine needed).
IMAGE_REPO ?= kubemail/kubemail
IMG ?= $(IMAGE_REPO):$(VERSION)
IMAGE_ARCH ?= $(shell go env GOARCH)
IMAGE_BUILD_DIR ?= $(BIN)/image/linux-$(IMAGE_ARCH)
IMAGE_TAR ?= $(ROOT)/dist/kubemail-$(VERSION)-linux-$(IMAGE_ARCH).tar
# Root certificates for outbound TLS (Debian's ca-certificates).
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# Every timestamp in the image: the last commit's, so one commit always gives one image digest.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

GO_TEST_FLAGS ?= -race -count=1

.PHONY: all
all: build

##@ Build

.PHONY: build
build: ## Build the manager, the mailserver and the kubectl-mail plugin into bin/
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: image-tar
image-tar: ## Build the container image without a container engine into dist/ (docker save format: docker load, ctr images import).
	GOOS=linux GOARCH=$(IMAGE_ARCH) CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(IMAGE_BUILD_DIR)/ ./cmd/manager ./cmd/mailserver
	@mkdir -p $(dir $(abspath $(IMAGE_TAR)))
	cd hack/image && go run . --manager $(IMAGE_BUILD_DIR)/manager --mailserver $(IMAGE_BUILD_DIR)/mailserver \
		--version $(VERSION) --revision "$$(git rev-parse HEAD 2>/dev/null)" --tag $(IMG) --arch $(IMAGE_ARCH) \
		--ca-bundle $(CA_BUNDLE) --created $(SOURCE_DATE_EPOCH) --out $(abspath $(IMAGE_TAR))

.PHONY: dev
dev: ## Run a local control plane, the operator, config/samples and the sample mail server.
	@echo "make dev: building the operator and the mail server into bin/, and the local control plane into bin/k8s/ if it is not there yet"
	@$(MAKE) --no-print-directory build envtest-assets
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
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/ and the Helm chart, then docs/api.md from the CRDs.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	@if [ -d controllers ]; then $(CONTROLLER_GEN) rbac:roleName=kubemail-manager paths=./controllers/... output:rbac:artifacts:config=config/rbac; fi
	go run ./hack/chartgen
	go run ./hack/apidocs

.PHONY: api-docs
api-docs: ## Write the API reference docs/api.md from the CRDs and config/samples.
	go run ./hack/apidocs

.PHONY: verify
verify: ## Fail when generated files are stale, gofmt would change a file, or go vet complains.
	hack/verify.sh

##@ Deploy

.PHONY: deploy
deploy: envtest-assets ## Install config/default (namespace, CRDs, RBAC, operator) into the current kubeconfig's cluster, running image IMG.
	hack/deploy.sh $(KUBECTL) $(IMG)

##@ Test

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl for tests into bin/k8s/ (skipped when present).
	hack/envtest/build.sh

.PHONY: test
test: envtest-assets verify $(HELM) ## Run every test tier (unit, protocol, integration, Helm chart, image).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: bench-operator
bench-operator: envtest-assets ## Measure the operator with 10,000 new Mailboxes (MAILBOXES=n to change): time to Ready, peak RSS, API writes.
	go run ./hack/bench/operator -mailboxes $(or $(MAILBOXES),10000)

.PHONY: bench
bench: bench-mail bench-replicas bench-operator ## Run bench-mail, bench-replicas, then bench-operator (MAILBOXES=n for a quicker run).

.PHONY: crash-test
crash-test: ## SIGKILL the mail server under SMTP load ROUNDS times (default 20): every acknowledged message stored exactly once?
	KUBEMAIL_CRASH_ROUNDS=$(or $(ROUNDS),20) go test -count=1 -v -timeout 30m -run 'TestCrashLosesNoAcknowledgedMail$$' ./test/mailserver/ \
		| grep -E 'round|rounds|^(ok|FAIL|---)|crash_test'

.PHONY: bench-mail
bench-mail: ## Mail server vs Postfix + Dovecot on this machine: SMTP, POP3, IMAP, idle memory, fsync (root; BENCH_MESSAGES, BENCH_MAILBOXES, BENCH_BASELINE=rev, BENCH_ARGS).
	go run ./hack/bench/mail -messages $(or $(BENCH_MESSAGES),10000) -mailboxes $(or $(BENCH_MAILBOXES),100) $(if $(BENCH_BASELINE),-baseline $(BENCH_BASELINE)) $(BENCH_ARGS)

.PHONY: bench-replicas
bench-replicas: ## Three replicas (handoff, login proxying) vs one: SMTP and IMAP, three rounds (root; BENCH_MESSAGES, BENCH_ARGS).
	go run ./hack/bench/mail -systems kubemail,kubemail3 -run smtp,imap -rounds 3 -messages $(or $(BENCH_MESSAGES),10000) -imap-duration 20s $(BENCH_ARGS)

##@ End-to-end (root, Linux: a real single-node cluster on this machine)

E2E_KUBECONFIG := /var/lib/kubemail-e2e/admin.kubeconfig

.PHONY: e2e-cluster-up
e2e-cluster-up: envtest-assets image-tar ## Start a single-node cluster (etcd, control plane, containerd, kubelet, kube-proxy) with our image; safe to rerun.
	hack/e2e/cluster-up.sh $(IMAGE_TAR)

.PHONY: e2e-cluster-down
e2e-cluster-down: ## Stop the single-node cluster and undo its changes to this machine; safe to rerun.
	hack/e2e/cluster-down.sh

.PHONY: e2e-test
e2e-test: $(HELM) ## Run the end-to-end suite (test/e2e) against the running single-node cluster.
	KUBECONFIG=$(E2E_KUBECONFIG) KUBEMAIL_E2E_IMAGE=$(IMG) HELM=$(HELM) KUBECTL=$(KUBECTL) \
		go test -tags e2e -count=1 -v -timeout 30m ./test/e2e

.PHONY: e2e
e2e: ## Cluster up, helm install and the end-to-end suite, then cluster down and a check that nothing is left.
	@status=0; \
	start=$$(date +%s); $(MAKE) --no-print-directory VERSION=$(VERSION) e2e-cluster-up || status=1; \
	echo "e2e-cluster-up took $$(( $$(date +%s) - start ))s"; \
	if [ $$status = 0 ]; then start=$$(date +%s); $(MAKE) --no-print-directory VERSION=$(VERSION) e2e-test || status=1; \
		echo "the end-to-end suite took $$(( $$(date +%s) - start ))s"; \
		if [ $$status != 0 ]; then tail -n 40 /var/lib/kubemail-e2e/logs/kubelet.log /var/lib/kubemail-e2e/logs/containerd.log || true; fi; fi; \
	$(MAKE) --no-print-directory e2e-cluster-down || status=1; \
	hack/e2e/leftovers.sh || status=1; \
	exit $$status

##@ Help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
