"""The guard of the pure modules (tests/pure.py), which `make test` runs two at a time: in a
real pytest run of a throwaway test file, a test marked pure that starts a process (itself or in
a fixture's set-up), reads another process or writes outside the temp directory FAILS saying
what it did, an unmarked test
doing the same passes, and the audit mode lists instead of refusing. And the skip policy holds
in the parallel part too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, needs_root
from tests.pure import PURE_MODULES, SERIAL_TESTS

TESTS = """
import os
import socket
import subprocess
import sys

import pytest


@pytest.mark.pure
def test_pure_starts_a_process():
    subprocess.run(["true"])


@pytest.fixture
def spawner():
    subprocess.run(["true"])
    yield


@pytest.mark.pure
def test_pure_with_a_fixture_that_starts_a_process(spawner):
    pass


@pytest.mark.pure
def test_pure_reads_another_process():
    open("/proc/1/stat").read()


@pytest.mark.pure
def test_pure_swallows_the_refusal():
    try:
        open("/etc/tsq-pure-probe", "w")
    except Exception:
        pass  # the product's own error handling must not hide it


@pytest.mark.pure
def test_pure_stays_in_its_lane(tmp_path):
    (tmp_path / "f").write_text("x")
    open("/proc/self/status").read()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))


def test_serial_may_do_anything():
    subprocess.run(["true"], check=True)
    open("/proc/1/stat").read()
"""


def _pytest(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp / "test_pure_probe.py").write_text(TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.pure", "-rf"]
        + ["--rootdir", str(tmp), *args, str(tmp / "test_pure_probe.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_pure_test_that_touches_the_host_fails_and_says_what(tmp_path: Path) -> None:
    r = _pytest(tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 failed, 2 passed, 1 error" in r.stdout, r.stdout
    out = r.stdout
    assert "FAILED" in out and "test_pure_starts_a_process" in out and "subprocess.Popen" in out
    assert "ERROR" in out and "test_pure_with_a_fixture_that_starts_a_process" in out
    assert "reads /proc/1/stat" in out
    assert "writes /etc/tsq-pure-probe" in out
    assert not os.path.exists("/etc/tsq-pure-probe")
    assert "test_serial_may_do_anything" not in out.split("short test summary")[-1]


def test_the_audit_mode_lists_instead_of_refusing(tmp_path: Path) -> None:
    audit = tmp_path / "audit.txt"
    r = _pytest(tmp_path, "-k", "not swallows", env=dict(os.environ, TENANTSCOPE_PURE_AUDIT=str(audit)))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(ln.split("\t", 1) for ln in audit.read_text().splitlines())
    name = "test_pure_probe.py::"
    assert set(lines) == {
        name + "test_pure_starts_a_process",
        name + "test_pure_with_a_fixture_that_starts_a_process",
        name + "test_pure_reads_another_process",
        name + "test_serial_may_do_anything",
    }
    assert lines[name + "test_pure_reads_another_process"] == "reads /proc/1/stat"


def test_the_pure_modules_and_their_serial_tests_exist() -> None:
    assert PURE_MODULES
    for rel in PURE_MODULES:
        assert (REPO / rel).is_file(), rel
        assert rel != "tests/core/test_pure_guard.py"  # it starts processes
    for entry in SERIAL_TESTS:
        rel, name = entry.split("::")
        assert rel in PURE_MODULES, entry
        assert f"def {name}(" in (REPO / rel).read_text(), f"{entry}: renamed or gone"


@needs_root
def test_a_skip_as_root_fails_the_parallel_part_too(tmp_path: Path) -> None:
    """`make test`'s pure part runs under pytest-xdist: the workers' skips reach the policy."""
    (tmp_path / "test_policy_probe.py").write_text(
        "import pytest\n\ndef test_runs():\n    pass\n\n"
        '@pytest.mark.skipif(True, reason="tsk-missing-tool")\ndef test_skipped():\n    pass\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.skip_policy"]
        + ["-n", "2", "--rootdir", str(tmp_path), str(tmp_path / "test_policy_probe.py")],
        cwd=REPO,
        env=dict(os.environ, TENANTSCOPE_FORBID_SKIPS="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed, 1 skipped" in r.stdout and "the run fails" in r.stdout
    assert "test_policy_probe.py::test_skipped" in r.stdout
