# AppleCiDEr: every target is idempotent. `make demo` and `make test` are the two fresh-machine commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MEMBERS := packages/core data_tools packages/photometry packages/images packages/spectra packages/fusion packages/stream
STAMP := $(VENV)/.installed
# extras installed with a member (Ray Data for `cider classify --engine ray`)
EXTRAS_packages/fusion := [ray]
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(MEMBERS))
# torch/torchvision pinned to the wheels on the build machines' disk (pip takes them from there).
TORCH := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
DEMO_DIR ?= demo_output
# Debian's chromium renders the night report in its real-browser test; installed with apt-get when absent.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser demo test test-fast lint bench public-benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python $(PYPROJECTS)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet $(foreach m,$(MEMBERS),-e "$(m)$(EXTRAS_$(m))") -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) browser

browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null 2>&1 && $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } || \
	echo "chromium could not be installed here: the report's browser test will skip" >&2

demo: install
	$(BIN)/cider examples --out $(DEMO_DIR)/alerts --spectra 3
	$(BIN)/cider classify $(DEMO_DIR)/alerts --spectra $(DEMO_DIR)/spectra.csv --models models \
		--out $(DEMO_DIR)/predictions.jsonl --no-progress

test: install
	@$(BIN)/pytest -n 2 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the test tree is broken" >&2; exit 1; fi; exit $$rc

test-fast: install
	$(BIN)/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

public-benchmark: install
	$(BIN)/python benchmarks/public_chain.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
