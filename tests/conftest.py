"""Shared pytest configuration. Area fixtures live in tests/fixtures/<area>.py and are
imported by the test modules that use them."""
