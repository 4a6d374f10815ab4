# One entry point. `make demo` sets everything up and runs the demo;
# `make test` runs the tests (setting up first if needed).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BUILD ?= build
# Put the published checkpoints here (see README); without them demo weights are used.
CHECKPOINTS ?= weights
FLAVOUR ?= cpu
REPOSITORY ?= $(BUILD)/repository/$(FLAVOUR)
# 1: the repository also serves deepfake_explainer (Grad-CAM heatmaps; ~1.5 GB more memory).
EXPLAINER ?= 1
# Ensemble weights/threshold written by `deepfake calibrate`; served when the file exists.
SETTINGS ?= ensemble-settings.json
PYTEST_ARGS ?=

REQUIREMENTS := $(wildcard requirements/*.txt) \
	pyproject.toml client/pyproject.toml
STAMP := $(VENV)/.installed

.PHONY: setup browser postgresql redis prometheus export repository serve demo test test-busy test-fast clean

setup: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/facenet.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . -e ./client
	touch $@

# Checkpoints -> fixed checkpoints -> ONNX (+ parity report). Uses demo weights
# (seeded, untrained) when $(CHECKPOINTS) does not hold the four published files.
export: setup
	$(BIN)/deepfake-export all --checkpoints $(CHECKPOINTS) --out $(BUILD) --demo-if-missing
	$(BIN)/deepfake-export quantize --artifacts $(BUILD)

repository: export
	$(BIN)/deepfake-export repository --flavour $(FLAVOUR) --artifacts $(BUILD) --out $(REPOSITORY) \
		$(if $(filter 1,$(EXPLAINER)),--explainer) $(if $(wildcard $(SETTINGS)),--settings $(SETTINGS))

serve: repository
	$(BIN)/python -m deepfake_dev.local_server --repository $(REPOSITORY)

demo: repository
	$(BIN)/python -m deepfake_dev.demo --repository $(REPOSITORY)

# $(call apt_install,PRESENT,PACKAGES,WHO): when the shell test PRESENT fails, Debian's PACKAGES are
# installed with apt when root (CI); on a developer's machine (not root) never sudo, only say what
# to install.
define apt_install
@if ! { $(1); } >/dev/null 2>&1; then \
	if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	else \
		echo "make: $(3) need Debian's $(2); install with: sudo apt-get install $(2)"; \
	fi; \
fi
endef

# The browser tests (tests/web) drive Debian's headless Chromium through its chromedriver
# (no browser download). Missing: installed with apt when root (CI); on a developer's machine
# (not root) never sudo, only say what to install (the browser tests then fail saying so).
CHROMIUM ?= chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
browser:
	$(call apt_install,command -v $(CHROMIUM) && [ -x $(CHROMEDRIVER) ],chromium chromium-driver,the browser tests (tests/web))

# The record tests (tests/records) start a real PostgreSQL server (initdb + pg_ctl in a temporary
# folder): Debian's postgresql, installed with apt when missing.
postgresql:
	$(call apt_install,command -v initdb || ls /usr/lib/postgresql/*/bin/initdb,postgresql,the record-store tests (tests/records; else SQLite only))

# The distributed job tests (tests/records/test_jobs_integration.py) start Debian's redis-server in
# a temporary folder: installed with apt when missing.
redis:
	$(call apt_install,command -v redis-server,redis-server,the distributed job test (else skipped))

# The drift dashboard's test (tests/deploy/test_deploy_drift.py) scrapes the gateway with Debian's
# prometheus, started in a temporary folder: installed with apt when missing.
prometheus:
	$(call apt_install,command -v prometheus,prometheus,the drift dashboard test (else skipped))

test: setup browser postgresql redis prometheus
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The serving-under-load tests again, with two busy loops taking the machine's cores (CI runs
# it after `make test`): refusals, deadlines and bulk work must hold on a busy machine too.
test-busy: setup
	.ci/with-busy-loops 2 $(BIN)/python -m pytest -m integration tests/reliability $(PYTEST_ARGS)

# Unit tests only (no full-size models, no server).
test-fast: setup browser postgresql redis prometheus
	$(BIN)/python -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

clean:
	rm -rf $(BUILD)
