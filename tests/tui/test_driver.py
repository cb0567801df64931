"""The terminal driver's input thread (tui/driver.py) on a real pseudo-terminal: asleep while
nothing is typed, keys and a lone ESC delivered as Textual delivers them, a quick exit."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import pty
import signal
import sys
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any

import pytest
from textual import events
from textual.message import Message

from tui.driver import QuietLinuxDriver

# Textual's originals that tui/driver.py copies or relies on (sha256 of their source, first 16
# hex digits). A Textual upgrade that changes one fails here: re-copy LinuxDriver's
# run_input_thread into QuietLinuxDriver (keeping only the wait changed) and update the pins.
PINNED = {
    "textual.drivers.linux_driver.LinuxDriver.run_input_thread": "d796af6d69db337d",
    "textual.drivers.linux_driver.LinuxDriver.disable_input": "6154c5a7c1743fe9",
    "textual._parser.Parser.tick": "44606084ad3bf7c1",
    "textual._parser.Parser.feed": "390106cde019dd29",
}


def _source_pin(path: str) -> str:
    import importlib

    mod, cls, fn = path.rsplit(".", 2)
    obj = getattr(getattr(importlib.import_module(mod), cls), fn)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_textual_code_the_driver_copies_is_unchanged() -> None:
    assert {p: _source_pin(p) for p in PINNED} == PINNED


@pytest.mark.skipif(
    bool(os.environ.get("TEXTUAL_DRIVER")), reason="TEXTUAL_DRIVER chooses the driver in this environment"
)
def test_the_app_runs_the_quiet_driver_on_linux() -> None:
    from tui.app import TenantScopeApp

    assert TenantScopeApp.get_driver_class(object.__new__(TenantScopeApp)) is QuietLinuxDriver


class _Recording(QuietLinuxDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.got: list[Message] = []

    def process_message(self, message: Message) -> None:
        self.got.append(message)


def _keys(d: _Recording) -> list[str]:
    return [m.key for m in list(d.got) if isinstance(m, events.Key)]


def _until(cond: Any, timeout: float = 2.0) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - t0


@contextlib.contextmanager
def _driver_on_a_pty(
    monkeypatch: pytest.MonkeyPatch, cls: type[_Recording] = _Recording
) -> Iterator[tuple[_Recording, threading.Thread, list[int]]]:
    """A driver whose terminal is a real pty (its input thread not started yet) and the pty's
    [master, slave] descriptors (a test that closes one sets it to -1); all undone after."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    stdin = os.fdopen(os.dup(slave), "rb", buffering=0)
    monkeypatch.setattr(sys, "__stdin__", stdin)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTSTP, signal.SIGCONT)}
    driver = cls(object(), mouse=False)
    thread = threading.Thread(target=driver._run_input_thread, daemon=True)
    fds = [master, slave]
    try:
        yield driver, thread, fds
    finally:
        driver.exit_event.set()
        thread.join(2)
        driver.exit_event.close()
        for s, h in handlers.items():
            signal.signal(s, h)
        stdin.close()
        for fd in fds:
            if fd >= 0:
                os.close(fd)


async def test_input_thread_sleeps_until_input_and_exits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with _driver_on_a_pty(monkeypatch) as (driver, thread, (master, _slave)):
        assert driver.fileno == sys.__stdin__.fileno()
        thread.start()
        time.sleep(0.5)
        assert driver.wakeups == 0  # Textual's driver: 5 wake-ups in 0.5 s
        os.write(master, b"a")
        _until(lambda: "a" in _keys(driver))
        os.write(master, b"\x1b")  # a lone ESC: the Escape key once the parser's delay passes
        waited = _until(lambda: "escape" in _keys(driver))
        assert waited < 1.0
        woken = driver.wakeups
        time.sleep(0.3)
        assert driver.wakeups == woken  # asleep again once the sequence is resolved
        t0 = time.monotonic()
        driver.exit_event.set()
        thread.join(2)
        assert not thread.is_alive()
        assert time.monotonic() - t0 < 0.5


def test_the_exit_event_writes_nothing_once_its_pipe_is_closed() -> None:
    """After the driver closes, setting its exit event must not write to the pipe's old
    descriptor number (the system may have given it to another file since)."""
    from tui.driver import _WakingEvent

    ev = _WakingEvent()
    ev.set()
    assert os.read(ev.read_fd, 16) == b"x"
    ev.clear()
    ev.close()
    r, w = os.pipe()  # likely takes one of the numbers just freed
    try:
        ev.set()
        assert ev.is_set()
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 16)  # nothing written to whatever now holds the old numbers
    finally:
        os.close(r)
        os.close(w)


async def test_a_terminal_that_hangs_up_ends_the_console_instead_of_spinning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pty's other side closes (an SSH session gone while SIGHUP was ignored): the input
    thread stops watching the terminal and tells the app once, then sleeps until the exit.
    Textual's loop read nothing again and again: two orphaned consoles of a failed serve test
    spun at ~70% of a core each. (The app is a stand-in recording the call: `hung_up` is the
    driver's own hook, which calls App.exit from the thread in the console.)"""
    told: list[float] = []

    class Driver(_Recording):
        def hung_up(self) -> None:
            told.append(time.monotonic())

    with _driver_on_a_pty(monkeypatch, Driver) as (driver, thread, fds):
        thread.start()
        time.sleep(0.2)
        for i in (0, 1):  # the other side goes
            os.close(fds[i])
            fds[i] = -1
        _until(lambda: len(told) == 1)
        woken = driver.wakeups
        time.sleep(0.5)
        assert driver.wakeups - woken <= 1 and len(told) == 1  # asleep, told once
        driver.exit_event.set()
        thread.join(2)
        assert not thread.is_alive()
