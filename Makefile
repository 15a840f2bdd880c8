# aisoule-ratelimit: one Rust core, thin bindings. `make help` lists the targets.
# The two commands of the README: `make run` (the main job: the reference gateway) and
# `make test` (every test).
# Both install what they need (rustup targets and components, cargo tools, pip/npm
# packages, Debian packages) on a fresh machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
EMBEDDED_TARGETS := thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf
BINDINGS := $(wildcard bindings-python bindings-node bindings-c)
# Loom and Miri get their own target dirs so their flags never rebuild the main one.
LOOM_TARGET_DIR := target/loom

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# `make run HOST=0.0.0.0 PORT=9000 GATEWAY_ARGS="--workers 8 --config limits.json"`
HOST ?= 127.0.0.1
PORT ?= 8080
GATEWAY_ARGS ?=

.PHONY: run
run: ## The main job: the reference gateway on http://127.0.0.1:8080 (HOST=, PORT=, GATEWAY_ARGS=)
	@$(MAKE) -s --no-print-directory -C bindings-python build
	exec bindings-python/.venv/bin/python -m aisoule_ratelimit gateway --host $(HOST) --port $(PORT) $(GATEWAY_ARGS)

.PHONY: summary
summary: ## Replay the conformance traces through the core, one line per trace
	$(CARGO) run --quiet --release -p aisoule-ratelimit-conformance --bin summary

.PHONY: setup
setup: ## Install the toolchain pieces the tests need (idempotent)
	rustup component add rustfmt clippy >/dev/null
	rustup target add $(EMBEDDED_TARGETS) >/dev/null
	rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1 || rustup +nightly component add miri rust-src >/dev/null

.PHONY: build
build: ## Build the workspace (release)
	$(CARGO) build --workspace --release

.PHONY: fmt
fmt: ## Format the Rust code
	$(CARGO) fmt --all

.PHONY: lint
lint: setup ## rustfmt check, clippy -D warnings, rustdoc -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p aisoule-ratelimit --features json

.PHONY: embedded
embedded: setup ## Build the core for the bare-metal targets and the firmware example
	for t in $(EMBEDDED_TARGETS); do \
	  echo "core for $$t"; \
	  $(CARGO) build --quiet -p aisoule-ratelimit --target $$t --features json,portable-atomic/critical-section; \
	done
	core/firmware/size.sh

.PHONY: test-rust
test-rust: ## The Rust tests (core, conformance traces, replay)
	$(CARGO) test --workspace

.PHONY: loom
loom: ## loom models of the table's compare-and-swap paths
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=$(LOOM_TARGET_DIR) $(CARGO) test --release -p aisoule-ratelimit --test loom

.PHONY: miri
miri: setup ## The core's unit and thread tests under Miri
	MIRIFLAGS="-Zmiri-strict-provenance" $(CARGO) +nightly miri test -p aisoule-ratelimit --lib --test threads

.PHONY: conformance
conformance: ## Every binding's replay against every trace (conformance/check), and 300 generated traces against the independent model
	conformance/check
	conformance/model/diff.sh 300 rust

.PHONY: test-bindings
test-bindings: ## Each binding's own tests (every binding built first: the Node cross-language test runs Python and C processes)
	for b in $(BINDINGS); do $(MAKE) -C $$b build; done
	for b in $(BINDINGS); do $(MAKE) -C $$b test; done

.PHONY: fuzz-smoke
fuzz-smoke: ## Each fuzz target for a short run
	if [ -d fuzz ]; then $(MAKE) -C fuzz fuzz-smoke; fi

.PHONY: bench
bench: ## The core's criterion bench (governor in the same run)
	$(CARGO) bench -p aisoule-ratelimit --bench check

.PHONY: test
test: lint embedded test-rust loom miri test-bindings conformance fuzz-smoke ## Every test (what CI runs)
	@echo "make test: all passed"
