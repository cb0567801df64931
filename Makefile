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

# Two parts: the pure test modules (tests/pure.py: they neither read nor change this host, and
# that is checked while they run) PURE_WORKERS at a time, then all the others one at a time, so
# nothing that reads the whole host or creates objects on it runs beside another test. Both parts
# run even when the first fails; each ends with its slowest 30 tests and set-ups (--durations:
# the suite's budget is 10 min). Exit status 5 (nothing selected, e.g. PYTEST_ARGS naming only
# serial tests) is not a failure of a part. PYTEST_ARGS goes to both (without -m of its own).
PURE_WORKERS ?= 2
PURE_FAILED  := $(VENV)/.pure-part-failed
PYTEST       := $(BIN)/python -m pytest -ra --durations=30

test: system-test $(STAMP) lint
	@rm -f $(PURE_FAILED)
	TENANTSCOPE_FORBID_SKIPS=$(FORBID_SKIPS) $(PYTEST) -n $(PURE_WORKERS) -m pure $(PYTEST_ARGS) || [ $$? -eq 5 ] || touch $(PURE_FAILED)
	TENANTSCOPE_FORBID_SKIPS=$(FORBID_SKIPS) $(PYTEST) -m "not pure" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	@if [ -e $(PURE_FAILED) ]; then rm -f $(PURE_FAILED); echo "make test: the pure part failed (above)" >&2; exit 1; fi

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

$(STAMP): pyproject.toml probes/logs/_fastlog.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
