# edgepack — `make build` and `make test` set up everything they need on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
RECIPE ?= recipes/sensitivity-minilm.yaml
TARGET ?= cpu
BUCKET ?=
CHANNEL ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgepack-installed
SYSTEM_STAMP := $(VENV)/.edgepack-system

.PHONY: build test lint publish router bench venv system-deps clean

# The venv is rebuilt only when pyproject.toml changes (or TORCH_SPEC does).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	@echo "$(TORCH_SPEC)" > $@

venv: $(STAMP)

# Services the tests start themselves (Redis, promtool, Chromium); Debian packages.
$(SYSTEM_STAMP): .ci/system-packages.txt | $(STAMP)
	bash .ci/install-system-packages.sh
	@touch $@

system-deps: $(SYSTEM_STAMP)

build: $(STAMP)
	$(BIN)/edgepack build --recipe $(RECIPE) --target $(TARGET) $(if $(CI),--quiet,)

test: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

publish: build
	@test -n "$(BUCKET)" || { echo "error: set BUCKET=s3://bucket/prefix" >&2; exit 2; }
	$(BIN)/edgepack publish dist/$$($(BIN)/python -c "import sys; from pipeline.chat.recipe import load_build_recipe; from pipeline.target import load_target; print(load_build_recipe(sys.argv[1]).name + '-' + load_target(sys.argv[2]).name)" $(RECIPE) $(TARGET)) --to $(BUCKET) $(if $(CHANNEL),--channel $(CHANNEL),)

# The sidecar with the config this build emitted (dist/<recipe>-<target>/deploy/router.yaml),
# upstreams swapped for local stand-ins; `make build` first (a no-op when nothing changed).
router: build
	$(BIN)/python -m router.demo --config dist/$$($(BIN)/python -c "import sys; from pipeline.chat.recipe import load_build_recipe; from pipeline.target import load_target; print(load_build_recipe(sys.argv[1]).name + '-' + load_target(sys.argv[2]).name)" $(RECIPE) $(TARGET))/deploy/router.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/quantize.py

clean:
	rm -rf dist .cache
