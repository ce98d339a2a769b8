GO        ?= go
PKGS      := ./...
BIN       := bin/routelab
# Tests run with the race detector; CI may add flags through TESTFLAGS.
TESTFLAGS ?=

.PHONY: all build run test lint bench bench-gateway check-alerts clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/routelab

run: build
	./$(BIN) serve

test:
	$(GO) test -race -count=1 $(TESTFLAGS) $(PKGS)

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

clean:
	rm -rf bin
