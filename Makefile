# nightshift: `make demo` runs a real nightly of examples/stack, `make test` tests everything.
GO      ?= go
BIN     := bin/nightshift
PKGS    := ./...

.PHONY: build test unit check bench fuzz chaos demo demo-stop clean

build:
	$(GO) build -o $(BIN) ./cmd/nightshift

# Unit tests and end-to-end tests; the latter start their own dockerd and
# registry (apt-get install docker.io docker-registry busybox-static git).
test: check
	$(GO) test -race -count=1 $(PKGS)

# Unit tests only: no engine, no registry.
unit:
	$(GO) test -short -count=1 $(PKGS)

check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); \
	elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then "$$($(GO) env GOPATH)/bin/staticcheck" $(PKGS); \
	else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@latest); skipped"; fi

# Speed goals, measured against their baselines in one run; prints ratios:
# the nightly (schedule, overhead, push of both tags), command tests,
# promote of a 10-image stack to another namespace (vs docker pull + tag +
# push of each), prune of 1,000 tags (vs crane digest + crane delete per
# tag), ensure and --changed-since (vs one curl -I and one git diff), the
# idle daemon, a BuildKit build + push (vs the classic builder's); then the
# dashboard's latency.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./bench/
	$(GO) test -run '^$$' -bench Dashboard -benchtime 400x -count 1 ./web/

# Fault injection (see the README's Reliability section): each scenario runs
# the real binary against a private dockerd and registry, prints one line of
# figures and its seed, and the target fails when a figure breaks a promise.
# Slow, so not part of make test. CHAOS_SEED=N replays a run's faults,
# CHAOS_ROUNDS=N scales the rounds (default 1), CHAOS_ONLY=a,b picks scenarios.
chaos: build
	$(GO) run ./chaos -bin $(BIN)

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz FuzzReadStages -fuzztime $(FUZZTIME) ./rebuild/

demo: build
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

clean:
	rm -rf bin .demo examples/stack/logs examples/stack/nightshift.db examples/stack/docker/busybox
