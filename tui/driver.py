"""The terminal driver: Textual's LinuxDriver whose input thread sleeps until there is input.

Textual's input thread waits for keys with `select(0.1)` so that it notices, ten times a
second, whether the app is exiting and whether a lone ESC has waited long enough to be the
Escape key. An idle console pays those wake-ups for hours (~1 ms of CPU a second, the
biggest single cost of an idle tenantscope after its own refresh). Here the thread waits on
the terminal and on a pipe that the exit event writes to: it wakes for input, for exit, and
only while the key parser holds a partial sequence, at that sequence's deadline. And when the
terminal hangs up (end of input, or EIO) it stops watching it and ends the app: Textual's loop
read nothing again and again at full speed (a console whose SSH session dropped while SIGHUP
was ignored spun two threads at ~70% of a core each until killed). Everything else (the
parsing, the events, the final read at exit) is Textual's code as it is.

`run_input_thread` is a copy of LinuxDriver's with the wait and the hang-up changed (Textual,
https://github.com/Textualize/textual, MIT licence, Copyright (c) 2021 Will McGugan); the test
tests/tui/test_driver.py pins Textual's source of it, so a Textual upgrade that changes the
original fails there rather than behaving differently on screen.
"""

from __future__ import annotations

import os
import selectors
import threading
from codecs import getincrementaldecoder
from typing import Any

from textual._loop import loop_last
from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

IDLE_WAIT = None  # no timeout while nothing is pending: input or the exit pipe wakes the thread


class _WakingEvent(threading.Event):
    """The driver's exit event: setting it also writes to a pipe the input thread waits on."""

    def __init__(self) -> None:
        super().__init__()
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        super().set()
        if self._write_fd < 0:  # closed (never write to a number the system may have reused)
            return
        try:
            os.write(self._write_fd, b"x")
        except OSError:  # full: already woken
            pass

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 512):
                pass
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.read_fd = self._write_fd = -1


class QuietLinuxDriver(LinuxDriver):
    """LinuxDriver without the input thread's ten wake-ups a second (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_event: _WakingEvent = _WakingEvent()
        self.wakeups = 0  # the input thread's waits that returned (tests read it)

    def close(self) -> None:
        super().close()
        self.exit_event.close()

    def hung_up(self) -> None:
        """The terminal is gone: nobody can see or drive this console any more, so it ends
        (the user's SSH session dropped while SIGHUP was ignored, e.g. under nohup)."""
        app = self._app
        app.call_from_thread(app.exit, None, 1, "the terminal hung up")

    def _wait(self, parser: XTermParser) -> float | None:
        """How long the input thread may sleep: until a partial sequence's deadline, else
        until input or exit."""
        deadline = getattr(parser, "_timeout_time", 0.0)  # (Textual's Parser; 0.0: poll as Textual)
        if deadline is None:
            return IDLE_WAIT
        return max(0.0, min(0.1, deadline - get_time()))

    def run_input_thread(self) -> None:
        """Wait for input and dispatch events (LinuxDriver's, with the wait changed)."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        wake_fd = self.exit_event.read_fd
        selector.register(wake_fd, selectors.EVENT_READ)

        fileno = self.fileno
        EVENT_READ = selectors.EVENT_READ

        parser = XTermParser(self._debug)
        feed = parser.feed
        tick = parser.tick

        utf8_decoder = getincrementaldecoder("utf-8")().decode
        decode = utf8_decoder
        read = os.read

        hung_up = False  # (not Textual's: see below)

        def process_selector_events(
            selector_events: list[tuple[selectors.SelectorKey, int]],
            final: bool = False,
        ) -> None:
            nonlocal hung_up
            selector_events = [(k, m) for k, m in selector_events if k.fd != wake_fd]
            for last, (_selector_key, mask) in loop_last(selector_events):
                if mask & EVENT_READ:
                    try:
                        data = read(fileno, 1024 * 4)
                    except OSError:  # (not Textual's) the terminal is gone (EIO)
                        data = b""
                    unicode_data = decode(data, final=final and last)
                    if not unicode_data:
                        # This can occur if the stdin is piped
                        hung_up = hung_up or not final
                        break
                    for event in feed(unicode_data):
                        self.process_message(event)
            for event in tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                events = selector.select(None if hung_up else self._wait(parser))
                self.wakeups += 1
                process_selector_events(events)
                if hung_up and self.fileno in selector.get_map():
                    # (not Textual's) end of input: the terminal hung up (an SSH session that
                    # dropped, SIGHUP ignored). Textual's loop read nothing again and again at
                    # full speed; here the terminal is no longer watched and the app is told
                    selector.unregister(self.fileno)
                    self.hung_up()
            self.exit_event.drain()  # (the event is cleared and may be set again: a new thread)
            selector.unregister(wake_fd)
            if self.fileno in selector.get_map():
                selector.unregister(self.fileno)
            process_selector_events(selector.select(0.1), final=True)

        finally:
            selector.close()
            try:
                for _event in feed(""):
                    pass
            except (EOFError, ParseError):
                pass
