# mlfs: versioned datasets and run tracking through a filesystem.
GO ?= go
BIN := bin/mlfs

.PHONY: all build demo test race fuzz bench vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mlfs

# The quick start: installs what it needs, then runs the iris lab on a
# mount with the embedded local store: versions, lazy reads, runs with
# lineage and models (see scripts/demo). REMOTE=s3, gcs or azure publishes
# to a bucket of an emulator that the demo starts (file: to a folder), and
# adds a second machine on that bucket.
REMOTE ?=
demo:
	REMOTE='$(REMOTE)' bash scripts/demo

# Every test, the FUSE ones included; run as root for all of them.
test: vet
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./cas/... ./index/... ./repo/... ./fs/... ./worktree/... ./daemon/... ./tracking/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# Each fuzz target for FUZZTIME (default 30s); the seed corpus is in the tests.
FUZZTIME ?= 30s
fuzz:
	bash scripts/fuzz $(FUZZTIME)

# End-to-end benchmarks; figures go to docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./cas/...
	bash scripts/bench

clean:
	rm -rf bin .demo
