# Set-up, build, tests, demo and benchmarks. `make test` is what CI runs (.ci/run).
SWIFT ?= swift
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

# The project's own loops are compiled for this machine's vector width (skylake-avx512: AVX-512,
# haswell: AVX2 and FMA, else x86-64; scripts/make/target-cpu.sh); such a binary refuses to start
# on an older CPU, with a message. `make build TARGET_CPU=x86-64` builds one for any x86-64.
TARGET_CPU ?= $(word 1,$(shell scripts/make/target-cpu.sh))
BUILD_LEVEL = $(if $(filter skylake-avx512,$(TARGET_CPU)),4,$(if $(filter haswell,$(TARGET_CPU)),3,1))
SWIFT_FLAGS = -c release -Xswiftc -target-cpu -Xswiftc $(TARGET_CPU) -Xcc -DNL_BUILD_LEVEL=$(BUILD_LEVEL)
# The tests build in a folder of their own (with testing enabled every module compiles otherwise),
# so that `make build` after `make test`, or the reverse, rebuilds nothing.
TESTS = --scratch-path .build-tests

.PHONY: deps build test demo bench fixtures format lint clean

# System packages (FFmpeg, OpenBLAS, Open MPI), installed with apt-get only when missing.
deps:
	@scripts/make/install-deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

# Tests are built optimised: numeric code in a debug build is 10-100x slower. A warning in the
# project's own code fails the build here, as in CI. The run prints a line per suite with the
# count of tests done; every line of it is kept in .build-tests/test.log. The suites run side by
# side, more threads than cores: OMP_WAIT_POLICY=passive has an idle OpenMP thread sleep rather than
# spin on a core another suite needs (a run 1.9x as long otherwise on 2 cores; see OpenMP.swift).
test: deps
	@mkdir -p .build-tests
	$(SWIFT) build $(SWIFT_FLAGS) $(TESTS) --build-tests 2>&1 | tee .build-tests/build.log | (grep -v "^\[[0-9]*/[0-9]*\]" || true)
	@! grep -E "^$(CURDIR)/(Sources|Tests)/.*: warning:" .build-tests/build.log
	@total=$$($(SWIFT) test list -c release $(TESTS) --skip-build 2>/dev/null | wc -l); \
	  OMP_WAIT_POLICY=passive $(SWIFT) test -c release $(TESTS) --skip-build 2>&1 | scripts/make/test-summary.py $$total .build-tests/test.log

# The synthetic dataset, a small non-local network trained on it, and its evaluation.
demo: build
	@scripts/make/demo.sh

# Decoding, the training step and the whole pipeline, measured (see docs/speed.md).
bench: build
	@scripts/make/bench.sh

# Regenerates the PyTorch fixtures from mmaction2 and the in-repository reference (scripts/reference).
# PYTHON is a Python with torch, safetensors and mmaction2 (see scripts/reference/mmaction2_models.py);
# never run by CI, the fixtures are committed.
PYTHON ?= python3
fixtures:
	$(PYTHON) scripts/fixtures/make_layer_fixtures.py
	$(PYTHON) scripts/fixtures/make_model_fixtures.py
	$(PYTHON) scripts/fixtures/make_train_fixtures.py
	$(PYTHON) scripts/fixtures/make_tensorboard_fixture.py

# The code's layout is swift-format's, as .swift-format sets it (120 columns): `make format`
# applies it; `make lint` fails on code it would change, and CI runs it.
format:
	$(SWIFT) format format --in-place --configuration .swift-format --recursive Sources Tests Package.swift
lint:
	$(SWIFT) format lint --strict --configuration .swift-format --recursive Sources Tests Package.swift

clean:
	rm -rf .build .build-tests
