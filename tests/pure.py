"""Pure test modules: they run two at a time (`make test` runs `pytest -n 2 -m pure`, then the
rest one at a time), so what makes them safe to run in parallel is checked, not hoped.

A pure module's tests neither change this host nor read it: no process started, no signal to
another process, no netlink, raw or packet socket, no network address but loopback, no daemon
socket, no libvirt connection but the in-process test driver, no file written outside the
temporary directory and the checkout, nothing read under /proc (but the test's own process),
/sys, /run, /var/log or /dev. While a pure test runs (its set-up and call), an audit hook
(sys.addaudithook) and wrappers for what C code does without Python's audit events (libvirt,
psutil) refuse anything else: the operation raises and the test FAILS naming it, so a module
that gains a real-host test lists it in SERIAL_TESTS (it then runs serially, as before).

So the tests that read the whole host or create objects on it (namespaces, cgroups, domains,
daemons, processes) never run beside another test: they are all in the serial part.

`TENANTSCOPE_PURE_AUDIT=FILE` (any run, any tests): refuse nothing, and append to FILE one line
per test that did something a pure test may not do, with the first such thing; how
PURE_MODULES was chosen (`pytest ... ; sort -u FILE`).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import REPO

# Paths relative to the repository. A module is listed only after a run of it under
# TENANTSCOPE_PURE_AUDIT found nothing but the tests of SERIAL_TESTS; the guard keeps it so.
PURE_MODULES: frozenset[str] = frozenset(
    {
        "tests/checks/test_catalog_layout.py",
        "tests/checks/test_checks_report.py",
        "tests/checks/test_checks_runtime.py",
        "tests/checks/test_checks_simulated.py",
        "tests/core/test_config.py",
        "tests/core/test_derive_identity.py",
        "tests/core/test_drift.py",
        "tests/core/test_engine_derive.py",
        "tests/core/test_hostsummary.py",
        "tests/core/test_one_of_each.py",
        "tests/core/test_readme.py",
        "tests/core/test_requests.py",
        "tests/core/test_tenancy.py",
        "tests/core/test_tests_readme.py",
        "tests/hosts/test_fleet.py",
        "tests/hosts/test_fleet_scale.py",
        "tests/hosts/test_libvirt_view.py",
        "tests/inventory/test_domxml.py",
        "tests/inventory/test_domxml_fast.py",
        "tests/inventory/test_libvirt_testdriver.py",
        "tests/logs/test_logs_lazy.py",
        "tests/logs/test_fastlog.py",
        "tests/logs/test_logs_parse.py",
        "tests/network/test_network_unit.py",
        "tests/report/test_record.py",
        "tests/report/test_report.py",
        "tests/tui/test_findings_fleet.py",
        "tests/tui/test_findings_inplace.py",
        "tests/tui/test_fleet_changes.py",
        "tests/tui/test_fleet_header.py",
        "tests/tui/test_keymap.py",
        "tests/tui/test_logs_pane.py",
        "tests/tui/test_network_pane.py",
        "tests/tui/test_reach_filter_marks.py",
        "tests/tui/test_resources_pane.py",
        "tests/tui/test_runbook.py",
        "tests/tui/test_runbook_findings.py",
        "tests/tui/test_runbook_readonly.py",
        "tests/tui/test_serve_units.py",
        "tests/tui/test_themes.py",
        "tests/tui/test_tui_app.py",
        "tests/tui/test_tui_snapshots.py",
        "tests/tui/test_tui_untrusted.py",
        "tests/tui/test_workload_kinds.py",
        "tests/xen/test_xen.py",
    }
)

# Tests of pure modules that do touch the host (a real journal tool, namespaces, a local
# session's start, a lab): they run in the serial part. "module::function" (all its parameters).
SERIAL_TESTS: frozenset[str] = frozenset(
    {
        "tests/logs/test_logs_lazy.py::test_lazy_journal_lines_equal_the_per_line_path_on_a_real_journal",
        "tests/report/test_record.py::test_real_recording_with_fault_replays_the_same_findings",
        "tests/tui/test_logs_pane.py::test_hostile_lines_leave_the_terminal_title_and_clipboard_alone",
        "tests/tui/test_logs_pane.py::test_figures_states_skip_the_pane_and_new_lines_still_reach_it",
        "tests/tui/test_network_pane.py::test_probe_action_on_real_lab",
        "tests/tui/test_resources_pane.py::test_real_burn_shows_in_pane_and_interval_and_pause_reach_the_probe",
        "tests/tui/test_runbook.py::test_network_step_on_real_namespaces_cancel_then_run",
        "tests/tui/test_tui_app.py::test_a_failing_probe_shows_in_the_header_and_its_list",
        "tests/tui/test_tui_app.py::test_engine_is_started_coalesced_and_stopped",
        "tests/tui/test_tui_untrusted.py::test_markup_in_a_real_libvirt_domain_name_stays_text",
    }
)

AUDIT_ENV = "TENANTSCOPE_PURE_AUDIT"

_WRITABLE = tuple(
    os.path.realpath(p) + os.sep for p in {tempfile.gettempdir(), str(REPO), sys.prefix, "/tmp"}
)
_HOST_TREES = ("/proc/", "/sys/", "/run/", "/var/run/", "/var/log/", "/var/lib/", "/dev/")
_DEV_OK = frozenset(
    {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/ptmx", "/dev/tty", "/dev/shm"}
)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork", "os.forkpty", "os.system", "pty.spawn"}
)
_CHANGE_EVENTS = frozenset(
    {
        "os.mkdir",
        "os.rmdir",
        "os.remove",
        "os.rename",
        "os.symlink",
        "os.link",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
    }
)


class NotPure(RuntimeError):
    """A pure test did something to or with the real host."""


_active = False  # a pure test is running (refuse), or an audit run records
_refuse = True
_seen: list[str] = []


def _path(p: Any) -> str | None:
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if isinstance(p, os.PathLike):
        p = os.fspath(p)
    if not isinstance(p, str):
        return None  # a file descriptor, or a path relative to one
    return os.path.abspath(p)


def _own_proc(p: str) -> bool:
    rest = p[len("/proc/") :]
    first = rest.split("/", 1)[0]
    return first in ("self", "thread-self", str(os.getpid()))


def _host_read(p: str) -> bool:
    q = p + "/"
    if q.startswith("/proc/"):
        return p == "/proc" or not _own_proc(p)
    if q.startswith("/dev/"):
        return not (p in _DEV_OK or p.startswith(("/dev/pts/", "/dev/shm/", "/dev/fd/")))
    return q.startswith(_HOST_TREES)


def _writable(p: str) -> bool:
    return (os.path.realpath(p) + os.sep).startswith(_WRITABLE) or p in _DEV_OK


def _address_ok(family: int, addr: Any) -> bool:
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(addr, tuple):
        return str(addr[0]) in _LOOPBACK
    if family == socket.AF_UNIX:
        if isinstance(addr, bytes | str) and addr[:1] in ("\0", b"\0", "", b""):
            return True  # abstract or unnamed: private to the processes that share it
        p = _path(addr)
        return p is not None and _writable(p)
    return False


def _library_lookup() -> bool:
    """Called from ctypes.util.find_library, which runs `ldconfig -p` (a read of the linker's
    cache), or gcc/ld to a temporary file when that finds nothing: done once by the first
    import that looks a library up (asyncssh looks for liboqs), in whichever test imports it
    first; alone, tests/hosts/test_fleet.py's inventory test failed on it."""
    f = sys._getframe(2)
    while f is not None:
        if f.f_code.co_name == "find_library" and f.f_code.co_filename.endswith(
            os.path.join("ctypes", "util.py")
        ):
            return True
        f = f.f_back
    return False


def _why(event: str, args: tuple[Any, ...]) -> str | None:
    if event in _PROCESS_EVENTS:
        return None if _library_lookup() else f"{event} {args[:2]!r}"
    if event == "open":
        p = _path(args[0])
        if p is None:
            return None
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        )
        if writes and not _writable(p):
            return f"writes {p}"
        if _host_read(p):
            return f"reads {p}"
        return None
    if event in ("os.listdir", "os.scandir"):
        p = _path(args[0]) if args else None
        return f"lists {p}" if p is not None and _host_read(p) else None
    if event in _CHANGE_EVENTS:
        for a in args[:2]:
            p = _path(a)
            if p is not None and not _writable(p):
                return f"{event} {p}"
        return None
    if event == "socket.__new__":
        _, family, kind, _proto = args
        if family not in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, -1):
            return f"opens a socket of family {family}"
        if kind != -1 and kind & 0xF == socket.SOCK_RAW:
            return "opens a raw socket"
        return None
    if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
        sock, addr = args[0], args[-1]
        if addr is None:
            return None
        return None if _address_ok(sock.family, addr) else f"{event} {addr!r}"
    if event in ("os.kill", "os.killpg"):
        return None if event == "os.kill" and args[0] == os.getpid() else f"{event} {args!r}"
    if event == "ctypes.call_function":
        return "calls C through ctypes"
    return None


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _active:
        return
    why = _why(event, args)
    if why is None:
        return
    _seen.append(why)
    if _refuse:
        raise NotPure(f"a pure test may not do this: {why} (tests/pure.py)")


def _guard_callable(owner: Any, name: str, allowed: Callable[..., bool], what: str) -> None:
    real = getattr(owner, name, None)
    if real is None:
        return

    def guarded(*args: Any, **kw: Any) -> Any:
        if _active and not allowed(*args, **kw):
            _seen.append(what)
            if _refuse:
                raise NotPure(f"a pure test may not do this: {what} (tests/pure.py)")
        return real(*args, **kw)

    guarded.__wrapped__ = real  # type: ignore[attr-defined]
    setattr(owner, name, guarded)


def _test_driver(uri: Any = None, *_a: Any, **_k: Any) -> bool:
    return isinstance(uri, str) and uri.startswith("test:")


def _own_pid(pid: Any = None, *_a: Any, **_k: Any) -> bool:
    return pid is None or pid == os.getpid()


def install() -> None:
    """The audit hook (once per process; it stays, idle, outside pure tests) and the wrappers
    for C code that reads the host without Python's audit events."""
    sys.addaudithook(_hook)
    try:
        import libvirt

        for name in ("open", "openReadOnly", "openAuth"):
            _guard_callable(libvirt, name, _test_driver, f"libvirt.{name} of a real daemon")
    except ImportError:
        pass
    import psutil

    for name in ("pids", "process_iter"):
        _guard_callable(psutil, name, lambda *a, **k: False, f"psutil.{name} (every process)")
    _guard_callable(psutil, "pid_exists", _own_pid, "psutil.pid_exists of another process")
    real_init = psutil.Process.__init__

    def init(self: psutil.Process, pid: int | None = None) -> None:
        if _active and not _own_pid(pid):
            _seen.append("psutil.Process of another process")
            if _refuse:
                raise NotPure("a pure test may not do this: psutil.Process of another process")
        real_init(self, pid)

    psutil.Process.__init__ = init  # type: ignore[method-assign]


def _is_pure(item: pytest.Item) -> bool:
    return item.get_closest_marker("pure") is not None


def pytest_configure(config: pytest.Config) -> None:
    global _refuse
    config.addinivalue_line("markers", "pure: neither reads nor changes this host (tests/pure.py)")
    _refuse = not os.environ.get(AUDIT_ENV)
    install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = os.path.relpath(str(item.path), REPO)
        name = getattr(item, "originalname", None) or item.name
        if rel in PURE_MODULES and f"{rel}::{name}" not in SERIAL_TESTS:
            item.add_marker(pytest.mark.pure)


def _begin(item: pytest.Item) -> None:
    global _active
    _active = bool(os.environ.get(AUDIT_ENV)) or _is_pure(item)
    _seen.clear()


def _end(item: pytest.Item) -> None:
    global _active
    was, _active = _active, False
    seen = list(dict.fromkeys(_seen))
    _seen.clear()
    if not (was and seen):
        return
    audit = os.environ.get(AUDIT_ENV)
    if audit:
        with open(audit, "a") as f:
            f.write(f"{item.nodeid}\t{seen[0]}\n")
    elif _refuse:
        pytest.fail(
            f"in a pure module (tests/pure.py) but: {'; '.join(seen)}; "
            "list it in SERIAL_TESTS there (or take its module out of PURE_MODULES)",
            pytrace=False,
        )


# Set-up and call only: a tear-down also finalizes the module and session fixtures that earlier
# (serial) tests made, when this test happens to be the last one using their scope (a plain
# `pytest tests/...` run, not `make test`'s parts): stopping a daemon there is not this test's.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _begin(item)
    try:
        return (yield)
    finally:
        _end(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    _begin(item)
    try:
        return (yield)
    finally:
        _end(item)
