GO        ?= go
PKGS      := ./...
BIN       := bin/routelab
# Tests run with the race detector; CI may add flags through TESTFLAGS.
TESTFLAGS ?=

.PHONY: all build run test test-long lint bench bench-gateway check-alerts newcomer clean

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
# loopback (vegeta); see bench/gateway. BENCH_GATEWAY_FLAGS passes options.
bench-gateway:
	$(GO) build -o bin/gateway-bench ./bench/gateway
	./bin/gateway-bench $(BENCH_GATEWAY_FLAGS)

# The README's quick start on this checkout, scripted (run by .ci/run).
newcomer:
	bash scripts/newcomer.sh

clean:
	rm -rf bin

# The committed experiment reports (experiments/reports/*.yaml → a directory
# of the same name); check-reports regenerates them into a temporary
# directory and fails if any committed file differs (Parquet outputs are not
# committed: they carry a wall-clock column). The baseline takes about 2 CPU
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

check-reports: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; status=0; \
	for r in $(REPORTS); do \
		n=$$(basename $$r); \
		./$(BIN) experiment --spec $$r.yaml --out $$tmp/$$n >/dev/null || exit 1; \
		diff -r -x '*.parquet' $$r $$tmp/$$n >/dev/null || { echo "$$r: regenerated report differs from the committed one (run make reports)"; status=1; }; \
	done; \
	bash scripts/routerbench-report.sh --check || status=1; \
	bash scripts/routerbench-heldout-report.sh --check || status=1; \
	exit $$status

# Executes notebooks/*.ipynb headlessly with the GoNB kernel and writes their
# outputs back (committed); installs Jupyter (Debian packages), GoNB, gopls
# and goimports when missing. NOTEBOOKS=notebooks/x.ipynb runs one.
.PHONY: notebooks
notebooks:
	bash scripts/notebooks.sh
