# Sluice — make targets. `make demo` and `make test` are the two commands a
# newcomer needs; see README.md.

GO        ?= go
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK ?= $(GOBIN_DIR)/staticcheck
FUZZTIME  ?= 60s
PKGS      := ./...

.PHONY: all build test test-unit test-integration demo bench bench-failover lint fuzz clean

all: build

build:
	$(GO) build -o bin/sluice ./cmd/sluice

# Unit tests (with the race detector), the committed fuzz seed corpora (run by
# `go test` as ordinary tests), and the integration tests against real
# replicated PostgreSQL clusters started by the test harness.
test: test-unit test-integration

test-unit:
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)

test-integration:
	$(GO) test -count=1 -timeout 15m ./integration/...

demo:
	$(GO) run ./cmd/sluice demo --config config.yaml

bench: build
	bash scripts/bench.sh && bash scripts/bench-mysql.sh && $(MAKE) --no-print-directory bench-pool

# Connection pooling, Sluice (transaction mode) vs PgBouncer: pgbench TPS at
# 64 and 500 clients, proxy RSS per idle connection (10,000 of them) and
# connect latency. Results go to bench/results/pool-<date>.md; knobs
# (POOL_DURATION, POOL_CLIENTS, POOL_MODE, ...) at the head of the script.
.PHONY: bench-pool
bench-pool: build
	bash scripts/bench-pool.sh

# Failover under load: RUNS kills of the primary per protocol behind a fleet
# of three Sluice instances (see bench/failover/main.go). Results go to
# bench/results/failover-<date>.md, logs to bench/results/failover-<date>-logs/.
RUNS      ?= 5
PROTOCOLS ?= pg,mysql
BENCH_FAILOVER_FLAGS ?=

bench-failover:
	$(GO) run ./bench/failover -runs $(RUNS) -protocols $(PROTOCOLS) $(BENCH_FAILOVER_FLAGS)

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if [ ! -x "$(STATICCHECK)" ]; then $(GO) install honnef.co/go/tools/cmd/staticcheck@latest; fi
	$(STATICCHECK) ./...

# Longer fuzzing of every fuzz target (FUZZTIME each).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
