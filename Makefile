# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs, builds the sample store and serves the app
#   make test   installs (Chromium too) and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SAMPLE  = sample_data/digits
STORE   = sample_data/digits.store
SUDO    = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo store sample test lint chromium bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

sample: $(SAMPLE)/digits.parquet

$(SAMPLE)/digits.parquet: | $(STAMP)
	$(BIN)/explorer sample --out $(SAMPLE)

store: $(STORE)/manifest.json

$(STORE)/manifest.json: $(SAMPLE)/digits.parquet
	$(BIN)/explorer build $(SAMPLE)/digits.parquet --out $(STORE) \
	    --id id --label label --prediction prediction \
	    --image-col image --image-root $(SAMPLE) --layouts umap,largevis,hmds --seed 0

demo: store
	$(BIN)/explorer demo --store $(STORE)

# Browser tests drive Debian's Chromium; never `playwright install` (it downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	    echo "installing Debian's chromium for the browser tests"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/build.py

clean:
	rm -rf $(STORE) $(SAMPLE) test-artifacts .pytest_cache .ruff_cache .mypy_cache
