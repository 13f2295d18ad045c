# `make demo` and `make test` work on a fresh machine with only python3 and make:
# each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs clean

# constraints-dev.txt pins the S3 test stack, which pip cannot resolve alone in time.
$(STAMP): pyproject.toml constraints-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" -c constraints-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The docs are built strictly first: a broken link or a page missing from the nav fails.
test: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet
	$(PY) -m pytest -q

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# `make bench BENCH_ARGS="--slow-contenders --repeat 2"`: see benchmarks/bench_orders.py --help.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) benchmarks/bench_orders.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
