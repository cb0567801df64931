"""Shared pytest configuration. Area fixtures live in tests/fixtures/<area>.py and are
imported by the test modules that use them. The skip policy (tests/skip_policy.py) applies to
every run: pytest finds its hooks here by name."""

from tests.skip_policy import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary

__all__ = ["pytest_runtest_logreport", "pytest_sessionfinish", "pytest_terminal_summary"]
