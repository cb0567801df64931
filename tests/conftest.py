"""Shared pytest configuration. Area fixtures live in tests/fixtures/<area>.py and are
imported by the test modules that use them. The skip policy (tests/skip_policy.py) applies to
every run: pytest finds its hooks here by name."""

import os

import pytest

from tests import pure
from tests.skip_policy import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary

__all__ = [
    "pytest_configure",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
]


def pytest_configure(config: pytest.Config) -> None:
    """The pure-module guard (tests/pure.py): which tests may run in parallel, checked."""
    config.pluginmanager.register(pure, "tenantscope-pure")


def pytest_sessionstart(session) -> None:  # type: ignore[no-untyped-def]
    """What earlier, finished test sessions left that every later log reader would read again:
    the QEMU logs libvirt keeps of their (PID-named) test domains."""
    if os.geteuid() == 0 and not os.environ.get("PYTEST_XDIST_WORKER"):  # once, not per worker
        from tests.fixtures.libvirtd import sweep_stale_qemu_logs

        sweep_stale_qemu_logs()
