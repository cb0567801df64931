# Two commands do all set-up on a fresh Debian/Ubuntu machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean system-demo system-test

demo: system-demo $(STAMP)
	$(BIN)/tenantscope demo

# As root every tool is installed, so a skip means something did not run: the run fails
# (tests/skip_policy.py). `make test FORBID_SKIPS=0` allows skips explicitly.
FORBID_SKIPS ?= 1

# --durations: every run ends with its slowest 30 tests and set-ups (the suite's budget is 10 min)
test: system-test $(STAMP) lint
	TENANTSCOPE_FORBID_SKIPS=$(FORBID_SKIPS) $(BIN)/python -m pytest -ra --durations=30 $(PYTEST_ARGS)

# ruff (lint + format) and mypy (strict on probes/): part of `make test`, so of CI
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: system-test $(STAMP)
	$(BIN)/python -m bench

system-demo:
	@bash .ci/system-packages demo

system-test:
	@bash .ci/system-packages test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
