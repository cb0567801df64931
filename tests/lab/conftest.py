"""The lab tests' fixtures, found by pytest by name here (an import in a test module that only
a parameter uses is removed by `ruff check --fix`, which once made `lab` "not found")."""

from tests.fixtures.lab import lab, lab_lock
from tests.fixtures.libvirtd import libvirtd

__all__ = ["lab", "lab_lock", "libvirtd"]
