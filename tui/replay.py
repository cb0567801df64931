"""Replay: a recording played through the same derive step (tenancy, checks) and the same panes
as live, with play/pause, step, speed and jump-to-time keys.

`ReplaySource` has the StateSource interface (tui/source.py): the app cannot tell it from the
Engine except by the header, which says "replay of HOST at TIME" (State.source) with the
position, speed and whether it plays. Replay sessions are always read-only.

Keys (app bindings, shown only while replaying): space play/pause, . and , step one
observation forward/back, ] and [ faster/slower, g jump to a time (HH:MM:SS, or +S/-S
seconds from now), < and > to the start/end, B "changes since": the replay's own baseline
(an instant of the same recording; every later observation is compared with it, as `--baseline`
does live: the Findings pane marks new findings, C lists the changes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probes.drift import diff
from probes.heap import HeapKeeper
from probes.logs.model import LogSlice
from probes.model import State
from probes.record import Recording
from probes.requests import Request, RequestHandle
from probes.session import FixedRequests, Options, make_deriver

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


class ReplaySource:
    def __init__(
        self,
        rec: Recording,
        opts: Options | None = None,
        *,
        speed: float = 1.0,
        derive: Callable[[State], State] | None = None,
        autoplay: bool = True,
    ) -> None:
        if not rec.states:
            raise ValueError(f"{rec.path}: no observation to replay")
        self.rec = rec
        self._derive = derive or make_deriver(opts or Options())
        self._cache: dict[int, State] = {}
        # "changes since T" (b, --since): the derived State at T and its label; None = off
        self._since: tuple[State, str] | None = None
        self._subs: list[Callable[[State], Any]] = []
        self.index = 0
        self.speed = speed
        self.playing = autoplay
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # the request path: an audit runs on the recorded State; the rest is "not available in replay"
        self._requests = FixedRequests(lambda: self.state, self._put, "replay")
        self.heap = HeapKeeper()  # (the app's freezing: probes/heap.py)
        self.state = self._at(0)

    # -- what the app needs

    def subscribe(self, fn: Callable[[State], Any]) -> None:
        self._subs.append(fn)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._play())

    def request(self, req: Request) -> RequestHandle:
        return self._requests.request(req)

    def cancel(self, rid: int) -> bool:
        return self._requests.cancel(rid)

    def log_entries(self, host: str, after: int | None) -> LogSlice | None:
        return None  # a recording holds each host's newest entries (LogView), not a ring

    def _put(self, state: State) -> None:
        self.state = state
        for fn in list(self._subs):
            fn(state)

    async def stop(self) -> None:
        await self._requests.stop()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # -- the derived State at a position (cached: stepping back is instant)

    def derived(self, i: int) -> State:
        st = self._cache.get(i)
        if st is None:
            st = self._derive(self.rec.states[i])
            if len(self._cache) > 256:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = st
        return st

    def label(self) -> str:
        hosts = self.rec.states[self.index].hosts
        host = hosts[0].host.name if len(hosts) == 1 else f"{len(hosts)} hosts"
        t = self.rec.times[self.index]
        mode = "▶ playing" if self.playing else "⏸ paused"
        return (
            f"replay of {host} at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))} UTC · {mode} "
            f"{self.speed:g}x · {self.index + 1}/{len(self.rec.states)}"
        )

    def _at(self, i: int) -> State:
        st = self.derived(i)
        if self._since is not None:
            base, label = self._since
            st = replace(st, drift=diff(base, st, label))
        return self._requests.with_requests(replace(st, source=self.label()))

    def seek(self, i: int) -> State:
        self.index = max(0, min(i, len(self.rec.states) - 1))
        self._publish()
        return self.state

    def _publish(self) -> None:
        self.state = self._at(self.index)
        for fn in list(self._subs):
            fn(self.state)
        self._wake.set()

    # -- controls

    def toggle(self) -> None:
        if not self.playing and self.index >= len(self.rec.states) - 1:
            self.index = 0  # play again from the start
        self.playing = not self.playing
        self._publish()

    def step(self, n: int) -> None:
        self.playing = False
        self.seek(self.index + n)

    def faster(self, up: bool) -> None:
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + (1 if up else -1)))]
        self._publish()

    def index_at(self, t: float) -> int:
        """The last observation at or before `t` (the first one if `t` is earlier)."""
        best = 0
        for i, ti in enumerate(self.rec.times):
            if ti <= t:
                best = i
        return best

    def _time(self, spec: str) -> float:
        """`HH:MM[:SS]` (UTC, on the recording's day) or `+S`/`-S` seconds from here, as a time;
        ValueError with the message saying what is wrong."""
        spec = spec.strip()
        cur = self.rec.times[self.index]
        try:
            if spec[:1] in "+-":
                return cur + float(spec)
            parts = [int(p) for p in spec.split(":")]
            if not 2 <= len(parts) <= 3 or not (0 <= parts[0] < 24 and 0 <= parts[1] < 60):
                raise ValueError
            day = cur - cur % 86400
            return day + parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) == 3 else 0)
        except (ValueError, IndexError):
            raise ValueError(f"not a time: {spec!r} (use HH:MM:SS in UTC, or +SECONDS / -SECONDS)") from None

    def jump(self, spec: str) -> str | None:
        """Go to a time (see _time); None if understood, else the message saying what is wrong."""
        try:
            t = self._time(spec)
        except ValueError as e:
            return str(e)
        self.playing = False
        self.seek(self.index_at(t))
        return None

    def since(self, spec: str) -> str | None:
        """Compare every observation with the one at `spec` (see _time; empty: this one), as a
        live console does with `--baseline`. None if understood, else what is wrong."""
        if spec.strip():
            try:
                t = self._time(spec)
            except ValueError as e:
                return str(e)
            if t < self.rec.times[0] - 0.001:
                first = time.strftime("%H:%M:%S", time.gmtime(self.rec.times[0]))
                return f"{spec.strip()}: the recording starts later, at {first} UTC"
            i = self.index_at(t)
        else:
            i = self.index
        at = time.strftime("%H:%M:%S", time.gmtime(self.rec.times[i]))
        self._since = (replace(self.derived(i), drift=None), f"{self.rec.path}@{at} UTC")
        self._publish()
        return None

    @property
    def since_label(self) -> str:
        return self._since[1] if self._since is not None else ""

    async def _play(self) -> None:
        while True:
            self._wake.clear()
            if self.playing and self.index < len(self.rec.states) - 1:
                gap = (self.rec.times[self.index + 1] - self.rec.times[self.index]) / self.speed
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.05, min(gap, 10.0)))
                    continue  # a control changed something: recompute
                except TimeoutError:
                    pass
                self.index += 1
                if self.index >= len(self.rec.states) - 1:
                    self.playing = False
                self._publish()
            else:
                await self._wake.wait()


def replay_app_class() -> type[Any]:
    """TenantScopeApp with the replay keys (a subclass: the live console has none of them)."""
    from textual.binding import Binding

    from tui.app import TenantScopeApp

    class ReplayApp(ReplayActions, TenantScopeApp):
        BINDINGS = [
            # replay (tui/replay.py): shown only while replaying a recording
            Binding("P", "replay_toggle", "Play/pause", id="replay-play", key_display="P"),
            Binding("space", "replay_toggle", "Play/pause", id="replay-play-space", show=False),
            Binding("full_stop", "replay_step(1)", "Step", id="replay-step", key_display="."),
            Binding(
                "comma", "replay_step(-1)", "Step back", id="replay-step-back", key_display=",", show=False
            ),
            Binding(
                "right_square_bracket", "replay_speed(True)", "Faster", id="replay-faster", key_display="]"
            ),
            Binding(
                "left_square_bracket",
                "replay_speed(False)",
                "Slower",
                id="replay-slower",
                key_display="[",
                show=False,
            ),
            Binding("g", "replay_jump", "Jump to time", id="replay-jump"),
            Binding("B", "replay_since", "Changes since…", id="replay-since"),
            Binding(
                "less_than_sign",
                "replay_edge(False)",
                "Start",
                id="replay-start",
                key_display="<",
                show=False,
            ),
            Binding(
                "greater_than_sign", "replay_edge(True)", "End", id="replay-end", key_display=">", show=False
            ),
        ]

    return ReplayApp


class ReplayActions:
    """The replay keys act on the app's ReplaySource."""

    def _replay(self) -> ReplaySource | None:
        src = getattr(self, "source", None)
        return src if isinstance(src, ReplaySource) else None

    def action_replay_toggle(self) -> None:
        if (r := self._replay()) is not None:
            r.toggle()

    def action_replay_step(self, n: int) -> None:
        if (r := self._replay()) is not None:
            r.step(n)

    def action_replay_speed(self, up: bool) -> None:
        if (r := self._replay()) is not None:
            r.faster(up)

    def action_replay_edge(self, end: bool) -> None:
        if (r := self._replay()) is not None:
            r.playing = False
            r.seek(len(r.rec.states) - 1 if end else 0)

    def action_replay_jump(self) -> None:
        r = self._replay()
        if r is None:
            return
        from tui.screens.replay_jump import JumpTo

        def done(spec: str | None) -> None:
            if spec:
                msg = r.jump(spec)
                if msg:
                    self.notify(msg, severity="error")  # type: ignore[attr-defined]

        self.push_screen(JumpTo(), done)  # type: ignore[attr-defined]

    def action_replay_since(self) -> None:
        """Set the replay's own baseline: an instant of this recording (C then lists the changes)."""
        r = self._replay()
        if r is None:
            return
        from tui.screens.replay_jump import JumpTo

        def done(spec: str | None) -> None:
            if spec is None:
                return
            msg = r.since(spec)
            if msg:
                self.notify(msg, severity="error")  # type: ignore[attr-defined]
                return
            n = len(r.state.drift.changes) if r.state.drift is not None else 0
            self.notify(f"changes since {r.since_label}: {n} here (C lists them)", timeout=5)  # type: ignore[attr-defined]

        prompt = (
            "Changes since HH:MM:SS (UTC) or -SECONDS; empty: this observation. Enter sets it, Esc cancels"
        )
        self.push_screen(JumpTo(prompt, "14:02:00"), done)  # type: ignore[attr-defined]
