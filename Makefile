# kowai — one binary, one test command.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Packages that start protoactor clusters run without -race: the library has
# data races of its own (see the cluster package docs).
NORACE   := $(shell $(GO) list ./... 2>/dev/null | grep -E '/(clustertest|durability)$$')
RACE     := $(shell $(GO) list ./... 2>/dev/null | grep -vE '/(clustertest|durability)$$')

# The pinned Node linters of the generated API documents (gateway TestAPILint).
APILINT  := tools/apilint

.PHONY: all build build-k8s run test fmt-check vet tidy-check apilint-deps api-lint image bench bench-http generate screenshots clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/kowai ./cmd/kowai

## build-k8s: the binary with the Kubernetes cluster provider (about 30 MB larger)
build-k8s:
	$(GO) build -tags k8s -ldflags "$(LDFLAGS)" -o bin/kowai ./cmd/kowai

## image: the container image (Dockerfile), stamped with the same version and commit as
## make build; needs a Docker engine (BuildKit)
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t kowai:$(VERSION) .

## run: a node on the embedded defaults (SQLite in ./data, offline model) on 127.0.0.1:8080 (loopback only)
run: build
	./bin/kowai serve

## test: gofmt check, go vet, the API linters' install, the race-enabled suite (TestAPILint
## lints the generated OpenAPI and AsyncAPI documents), then the cluster suites, then the
## Kubernetes manifests (deploy, -tags k8s: rendered with kustomize, decoded strictly); ends with
## "N passed, N failed, N skipped" and every skipped test with its reason
test: fmt-check vet apilint-deps
	$(GO) run ./internal/testsummary \
	  $(GO) test -json -race -count=1 -timeout 12m $(RACE) \
	  $(if $(strip $(NORACE)),--then $(GO) test -json -count=1 -timeout 12m $(NORACE)) \
	  --then $(GO) test -json -race -count=1 -timeout 5m -tags k8s -run '^TestK8s' ./deploy/

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags k8s ./cluster/ ./deploy/

## apilint-deps: install the pinned API linters (npm ci in tools/apilint) unless they are
## installed from the current package-lock.json. Without npm, or when the install fails,
## TestAPILint skips and says so; with CI=true either fails the build instead.
apilint-deps:
	@if [ -f $(APILINT)/node_modules/.package-lock.json ] && \
	   [ ! $(APILINT)/package-lock.json -nt $(APILINT)/node_modules/.package-lock.json ]; then exit 0; fi; \
	if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$CI" = true ]; then echo "apilint: npm (Node.js 20 or later) is required in CI"; exit 1; fi; \
	  echo "apilint: npm not found: the API lint (TestAPILint) will be SKIPPED; install Node.js 20 or later"; exit 0; \
	fi; \
	echo "apilint: npm ci in $(APILINT)"; \
	if ! (cd $(APILINT) && npm ci --loglevel=error); then \
	  if [ "$$CI" = true ]; then exit 1; fi; \
	  echo "apilint: npm ci failed: the API lint (TestAPILint) will be SKIPPED"; \
	fi

## api-lint: only the API lint: Redocly and Spectral on /openapi.json, the AsyncAPI parser on /asyncapi.json
api-lint: apilint-deps
	$(GO) test -count=1 -run '^TestAPILint$$' ./gateway/

## tidy-check: fail when go mod tidy would change go.mod or go.sum (CI runs it)
tidy-check:
	@if ! $(GO) mod tidy -diff; then echo "go.mod/go.sum are not tidy: run go mod tidy and commit the result"; exit 1; fi

## bench: every benchmark; comparative ones print their ratio against a baseline from the same run.
## MariaDB and Redis default to the accounts .ci/run sets up.
bench: export KOWAI_TEST_MYSQL_DSN ?= mysql://kowai_test:kowai_test@127.0.0.1:3306/kowai_test
bench: export KOWAI_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./...

## bench-http: the HTTP benchmark from outside (several minutes): kowai serve, a bare Fiber hello
## world and the load generator as three processes, runs alternated, on SQLite and MariaDB
## (KOWAI_TEST_MYSQL_DSN); BENCH_HTTP_FLAGS passes flags (e.g. -db sqlite -rounds 2 -d 2s)
bench-http: export KOWAI_TEST_MYSQL_DSN ?= mysql://kowai_test:kowai_test@127.0.0.1:3306/kowai_test
bench-http: build
	$(GO) build -o bin/loadgen ./tools/benchhttp/loadgen
	$(GO) build -o bin/hello ./tools/benchhttp/hello
	$(GO) run ./tools/benchhttp -kowai bin/kowai -loadgen bin/loadgen -hello bin/hello $(BENCH_HTTP_FLAGS)

## screenshots: regenerate the console's screenshots in docs/console (the README shows them) by
## running its end-to-end test (needs Node.js, npm ci in tests/console, and Debian's chromium)
screenshots:
	KOWAI_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console CI=true $(GO) test -count=1 -timeout 5m -run '^TestConsoleE2E$$' ./gateway/clustertest/

## generate: regenerate the committed protobuf code with the tools pinned in go.mod
generate:
	$(GO) tool protogen

clean:
	rm -rf bin
