"""Two sessions in one process (as `serve` and the tests run them) share nothing: each has its
own logs service, rings, tenancy placer and check runner; what one observes never shows in
the other, even for hosts of the same name."""

from __future__ import annotations

from pathlib import Path

from probes.config import load
from probes.session import Options, Session
from tests.logs.test_logs_sources import wait_for


def _opts(tmp: Path, name: str) -> tuple[Options, Path]:
    log = tmp / f"{name}.log"
    log.write_text(f"Nov 27 10:00:00 hv1 app[1]: {name} backlog\n")
    cfg = tmp / f"{name}.toml"
    cfg.write_text(f'[logs]\nfiles = ["{log}"]\njournal = false\nlibvirt_events = false\n')
    # test:///default: libvirt's built-in test host, a stand-in hypervisor on this machine
    return Options(libvirt_uri="test:///default", config=load(cfg), config_path=str(cfg), interval=1.0), log


def _messages(session: Session, host: str) -> list[str]:
    got = session.log_entries(host, 0)
    return [e.message for e in got.entries] if got is not None else []


async def test_two_sessions_in_one_process_share_nothing(tmp_path):
    oa, la = _opts(tmp_path, "tsq-alpha")
    ob, lb = _opts(tmp_path, "tsq-beta")
    a, b = Session(oa), Session(ob)
    host = a.engine.hosts[0].name
    assert host == b.engine.hosts[0].name  # the same machine: the same host name in both
    assert a.logs is not None and b.logs is not None and a.logs is not b.logs
    a.start()
    b.start()
    try:
        for log, word in ((la, "tsq-alpha live"), (lb, "tsq-beta live")):
            with open(log, "a") as f:
                f.write(f"Nov 27 10:00:01 hv1 app[1]: {word}\n")
        await wait_for(
            lambda: any("tsq-alpha live" in m for m in _messages(a, host)), "alpha's line in alpha"
        )
        await wait_for(lambda: any("tsq-beta live" in m for m in _messages(b, host)), "beta's line in beta")
        await wait_for(
            lambda: any(
                "tsq-alpha live" in e.message
                for e in (a.state.hosts[0].logs.events if a.state.hosts[0].logs else ())
            ),
            "alpha's line in alpha's State",
        )
        assert not any("tsq-beta" in m for m in _messages(a, host))
        assert not any("tsq-alpha" in m for m in _messages(b, host))
        assert not any("tsq-beta" in e.message for e in a.state.hosts[0].logs.events)
    finally:
        await a.stop()
        await b.stop()
    # one stopped, the other's ring is still its own (a process-wide registry would lose it)
    assert a.log_entries(host, 0) is None


async def test_the_logs_pane_of_one_session_shows_its_own_lines(tmp_path):
    """The Logs pane reads its session's ring (through the app's source), not a ring
    registered by host name: with a second session on the same host running in the same
    process, each pane shows its own files' lines."""
    from tui.app import TenantScopeApp
    from tui.panes.logs import LogLines, LogsPane

    oa, la = _opts(tmp_path, "tsq-gamma")
    ob, _ = _opts(tmp_path, "tsq-delta")
    other = Session(ob)
    other.start()
    try:
        await wait_for(
            lambda: any("tsq-delta" in m for m in _messages(other, other.engine.hosts[0].name)), "delta"
        )
        app = TenantScopeApp(oa)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("4")
            with open(la, "a") as f:
                f.write("Nov 27 10:00:02 hv1 app[1]: tsq-gamma live\n")
            lines = app.query_one(LogsPane).query_one(LogLines)
            for _ in range(100):
                await pilot.pause(0.1)
                if any("tsq-gamma live" in e.message for e in lines.lines):
                    break
            shown = [e.message for e in lines.lines]
            assert any("tsq-gamma backlog" in m for m in shown) and any("tsq-gamma live" in m for m in shown)
            assert not any("tsq-delta" in m for m in shown)
    finally:
        await other.stop()


def test_headless_commands_never_format_the_observed_state():
    """`check`/`snapshot` run one observation with asyncio.run; on Python 3.11 its SIGINT
    clean-up formats the repr of the finished task's result (a whole State: ~100 ms per host
    with a 2,500-rule firewall). run_to_result hands the result over without that."""
    import asyncio
    import sys

    from tui.commands.common import run_to_result

    formatted: list[int] = []

    class Costly:
        def __repr__(self) -> str:
            formatted.append(1)
            return "costly"

    async def observe() -> Costly:
        return Costly()

    import signal

    # asyncio.run installs its SIGINT clean-up only where SIGINT has Python's default handler,
    # which a shell's background job (SIGINT ignored) does not have: give it that handler
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        got = run_to_result(observe())
        assert isinstance(got, Costly) and not formatted
        asyncio.run(observe())  # what it replaces: formats it on Python 3.11
    finally:
        signal.signal(signal.SIGINT, old)
    if sys.version_info[:2] == (3, 11):
        assert formatted
