"""Skips are failures under `make test` as root: the README's "as root nothing is skipped" is
checked, not hoped.

A test may skip only for a missing tool or privilege, decided before it runs (tests/helpers.py).
As root, `make test` installs every tool, so any skip there means something did not run: the
run fails and lists what skipped and why. The Makefile (so CI, which runs `make test`) turns
this on with TENANTSCOPE_FORBID_SKIPS=1; a developer who runs pytest directly, or a subset as
a non-root user, sees skips reported as usual. `make test FORBID_SKIPS=0` allows them
explicitly.
"""

from __future__ import annotations

import os

import pytest

ENV = "TENANTSCOPE_FORBID_SKIPS"

_skipped: list[str] = []


def forbidden() -> bool:
    """Skips fail the run: asked for by the environment, and as root (nothing is missing)."""
    return os.environ.get(ENV, "") not in ("", "0") and os.geteuid() == 0


def _reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return f"{lr[0]}:{lr[1]}: {lr[2]}"
    return str(lr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(f"{report.nodeid} -- {_reason(report)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if forbidden() and _skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if forbidden() and _skipped:
        terminalreporter.section(f"{len(_skipped)} skipped as root under {ENV}=1: the run fails", red=True)
        for line in _skipped:
            terminalreporter.line(line)
        terminalreporter.line(
            "as root every tool is installed (make test), so nothing may skip; "
            "run pytest directly or `make test FORBID_SKIPS=0` to allow skips"
        )
