# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Lint what exists: benchmarks/ and examples/ may be absent in a partial checkout.
LINT_PATHS := $(wildcard waflow tests benchmarks examples)

.PHONY: demo test lint typecheck pytest bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the example shop bot end to end against the built-in fake of Meta's API.
demo: $(STAMP)
	$(BIN)/waflow demo

## The whole quality gate: lint, format, types, the documentation site, tests with coverage.
test: lint typecheck docs pytest

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP)
	$(BIN)/mypy --strict waflow

pytest: $(STAMP)
	$(BIN)/pytest --cov=waflow --cov-report=term $(PYTEST_ARGS)

## The documentation site (mkdocs.yml) into site/, strictly: a broken link, anchor or docstring fails.
## Its code blocks are executed by tests/test_docs.py.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## Benchmarks against the peer (pywa), in their own virtualenv (.bench-venv); see docs/performance.md.
## BENCH_ARGS: e.g. `send_overhead`, `--quick` (a smoke run), `--rebuild` (a fresh .bench-venv).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .bench-venv .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov site
