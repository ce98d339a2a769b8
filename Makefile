GO        ?= go
PKGS      := ./...
BIN       := bin/routelab
# Tests run with the race detector; CI may add flags through TESTFLAGS.
TESTFLAGS ?=

.PHONY: all build run test test-long lint bench bench-gateway check-alerts newcomer clean chaos fuzz

all: build

# The version and commit `routelab --version` prints.
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/routelab

# RUN_FLAGS passes serve options, e.g. RUN_FLAGS="--config my.yaml".
RUN_FLAGS ?=

run: build
	./$(BIN) serve $(RUN_FLAGS)

test:
	$(GO) test -race -count=1 $(TESTFLAGS) $(PKGS)

# Long statistical runs, kept out of `make test` (run by .ci/run): interval
# coverage of every off-policy estimator over 100 seeded repetitions, on
# synthetic bandit data and against the simulator's ground truth.
test-long:
	ROUTELAB_COVERAGE_REPS=100 $(GO) test -count=1 -run 'BootstrapCoverage|CoverageAgainstSimulatorTruth' -v ./replay/ ./replay/opebench/
	ROUTELAB_HELDOUT_LONG=1 $(GO) test -count=1 -run 'HeldOutRouterBenchLong' -v ./datasets/

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# promtool checks (and unit-tests) the Prometheus alert rules; the script
# installs Debian's prometheus package when promtool is missing.
check-alerts:
	sh scripts/check-alerts.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Gateway overhead vs a bare reverse proxy, at 1000/2000/3000/5000 req/s on
# loopback (vegeta), plus SSE streaming; results also in bin/bench-gateway.json.
# See docs/gateway-benchmark.md. BENCH_GATEWAY_FLAGS passes options (-reps 3, -duration 5s).
bench-gateway:
	$(GO) build -o bin/gateway-bench ./bench/gateway
	./bin/gateway-bench -json bin/bench-gateway.json $(BENCH_GATEWAY_FLAGS)

# Replicas sharing state through Redis (docs/scale-out.md): redis-up starts
# Debian's redis-server on a free loopback port (installing it when
# missing) and writes its address to .redis-test/addr; test-redis runs the
# tests that need it (they skip without ROUTELAB_REDIS_ADDR); redis-down
# stops it.
.PHONY: redis-up redis-down test-redis
redis-up:
	sh scripts/redis.sh up
redis-down:
	sh scripts/redis.sh down
test-redis:
	@test -f .redis-test/addr || { echo "no test redis: run make redis-up first" >&2; exit 1; }
	ROUTELAB_REDIS_ADDR=$$(cat .redis-test/addr) $(GO) test -race -count=1 $(TESTFLAGS) ./sharedstate/
	ROUTELAB_REDIS_ADDR=$$(cat .redis-test/addr) $(GO) test -race -count=1 $(TESTFLAGS) -run 'TestRedis' ./gateway/

# The README's quick start on this checkout, scripted (run by .ci/run).
newcomer:
	bash scripts/newcomer.sh

clean:
	rm -rf bin

# Issue 14's attacks, replayed against the real binary on loopback (about
# a minute): one row per check, test | expected | observed | PASS/FAIL;
# fails on any FAIL. CHAOS_FLAGS passes options (--only REGEXP, --keep).
chaos: build
	$(GO) build -o bin/routelab-chaos ./cmd/routelab-chaos
	./bin/routelab-chaos --bin $(BIN) $(CHAOS_FLAGS)

# Every fuzz target in turn for FUZZTIME each (FUZZ=REGEXP selects by
# pkg.FuzzName); prints executions and new inputs per target.
FUZZTIME ?= 60s
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(FUZZ)

# The committed experiment reports (experiments/reports/*.yaml → a directory
# of the same name); check-reports regenerates them into a temporary
# directory and fails if any committed file differs (Parquet outputs are not
# committed: they carry a wall-clock column; nor are the policies/ artifacts). The baseline takes about 2 CPU
# minutes; TestCommittedReportRegenerates checks the small one in `make test`.
REPORTS := $(basename $(wildcard experiments/reports/*.yaml))

.PHONY: reports check-reports
reports: build
	@for r in $(REPORTS); do \
		echo "./$(BIN) experiment --spec $$r.yaml --out $$r"; \
		./$(BIN) experiment --spec $$r.yaml --out $$r >/dev/null || exit 1; \
	done
	bash scripts/routerbench-report.sh
	bash scripts/routerbench-heldout-report.sh
	bash scripts/routerbench-cascade-report.sh
	bash scripts/routellm-heldout-report.sh

# The held-out benchmark reports (single-threaded, 2–4 minutes each) are
# regenerated beside the experiment reports.
check-reports: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; status=0; \
	bash scripts/routerbench-heldout-report.sh --check & rb=$$!; \
	bash scripts/routellm-heldout-report.sh --check & rl=$$!; \
	bash scripts/routerbench-cascade-report.sh --check & rc=$$!; \
	for r in $(REPORTS); do \
		n=$$(basename $$r); \
		if ! ./$(BIN) experiment --spec $$r.yaml --out $$tmp/$$n >/dev/null; then \
			echo "$$r: experiment failed"; status=1; continue; \
		fi; \
		diff -r -x '*.parquet' -x policies $$r $$tmp/$$n >/dev/null || { echo "$$r: regenerated report differs from the committed one (run make reports)"; status=1; }; \
	done; \
	bash scripts/routerbench-report.sh --check || status=1; \
	wait $$rb || status=1; \
	wait $$rl || status=1; \
	wait $$rc || status=1; \
	exit $$status

# Executes notebooks/*.ipynb headlessly with the GoNB kernel and writes their
# outputs back (committed); installs Jupyter (Debian packages), GoNB, gopls
# and goimports when missing. NOTEBOOKS=notebooks/x.ipynb runs one.
.PHONY: notebooks
notebooks:
	bash scripts/notebooks.sh

# Regenerate the gRPC API's Go code (gateway/grpcapi/routelabv1, committed)
# from proto/: Debian's protoc and pinned protoc-gen-go(-grpc) in bin/tools.
.PHONY: proto
proto:
	bash scripts/proto.sh

# Kubernetes manifests (deploy/k8s) validated offline by kubeconform
# (pinned, installed into bin/) against the schemas vendored in
# deploy/k8s/schemas; k8s-schemas regenerates those from the Kubernetes
# definitions the pinned kubeconform module ships.
.PHONY: k8s-validate k8s-schemas
k8s-validate:
	bash scripts/k8s-validate.sh

k8s-schemas:
	bash scripts/k8s-validate.sh --write
