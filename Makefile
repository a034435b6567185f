# Set-up, build, tests, demo and benchmarks. `make test` is what CI runs (.ci/run).
SWIFT ?= swift

.PHONY: deps build test demo bench fixtures clean

# System packages (FFmpeg, OpenBLAS), installed with apt-get only when missing.
deps:
	@scripts/make/install-deps.sh

build: deps
	$(SWIFT) build -c release

# Tests are built optimised: numeric code in a debug build is 10-100x slower.
test: deps
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build

# The synthetic dataset, a small non-local network trained on it, and its evaluation.
demo: build
	@scripts/make/demo.sh

# Decoding, the training step and the whole pipeline, measured (see README: Speed).
bench: build
	@scripts/make/bench.sh

# Regenerates the PyTorch fixtures (needs torch and safetensors; never run by CI).
PYTHON ?= /tmp/torch/bin/python
fixtures:
	$(PYTHON) scripts/fixtures/make_layer_fixtures.py
	$(PYTHON) scripts/fixtures/make_model_fixtures.py
	$(PYTHON) scripts/fixtures/make_train_fixtures.py

clean:
	rm -rf .build
