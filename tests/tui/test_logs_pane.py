"""The Logs pane through the Pilot: hostile text stays inert; follow, pause, filter, search,
jump-to-evidence and the dropped count work on a live ring; and in a real terminal (tmux) the
hostile lines leave the title and the clipboard alone."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from datetime import UTC

from textual.app import App
from textual.geometry import Region

from probes.logs import parsers
from probes.logs.model import LogView
from probes.logs.ring import Ring
from tests.fixtures.journal import fleet_state, hostile_state
from tests.fixtures.tui import make_app
from tests.helpers import REPO, needs_tool
from tui.panes.logs import LogLines, LogsPane

ROOT = REPO


def pane_segments(app):
    for w in app.screen.query("LogsPane, LogsPane *"):
        if not w.display or w.size.area == 0:
            continue
        for strip in w.render_lines(Region(0, 0, w.size.width, w.size.height)):
            yield from strip


def assert_inert(app) -> str:
    text = []
    for seg in pane_segments(app):
        for bad in ("\x1b", "\x07", "\x9b", "\x9d", "\x00", "\r", "\u202e", "\u2066", "\u200b", "\ufeff"):
            assert bad not in seg.text, repr(seg.text)
        if seg.style is not None:
            meta = seg.style.meta or {}
            assert not any("@click" in str(k) or "quit" in str(v) for k, v in meta.items()), meta
            assert not seg.style.link
        text.append(seg.text)
    return "".join(text)


async def test_hostile_corpus_is_shown_inert():
    app, _ = make_app(hostile_state())
    async with app.run_test(size=(220, 60)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        pane = app.query_one(LogsPane)
        ll = pane.query_one(LogLines)
        assert len(ll.lines) == 14
        ll.action_home()
        await pilot.pause()
        shown = assert_inert(app)
        for _ in range(len(ll.lines)):  # page through: every line is drawn and checked
            await pilot.press("pagedown")
            await pilot.pause()
            shown += assert_inert(app)
            if ll.cursor == len(ll.lines) - 1:
                break
        assert "\t" not in shown  # tabs are expanded: a raw tab would shift the columns
        for literal in (
            "\\x1b]0;PWNED-TITLE\\x07",
            "\\x1b[2J\\x1b[H",
            "\\x9b31m",
            "\\x07\\x07",
            "carriage\\x0dreturn",
            "\\x1b]52;c;ZXZpbA==",
            "[@click=app.quit]click me[/]",
            "[bold red]loud[/]",
            "\\u202eevil",
            "\\u2066iso",
            "zero\\u200bwidth",
            "\ufffd\ufffd\ufffd(",
            "\\x00",
            "\\u2028",
        ):
            assert literal in shown, literal
        # a hostile tenant and source name are shown as text too (cut to their column)
        row = ll.line_text(ll.lines[-1]).plain
        assert " [@click=app. " in row and "mac-denial" in row and not row.count("\x1b")  # (12 wide here)
        # the long line is cut at 16 KiB with a marker (scroll right to its end)
        long = next(e for e in ll.lines if e.message.startswith("long "))
        text = ll.line_text(long).plain
        assert "…[cut]" in text and "TAIL-NOT-SHOWN" not in text
        # clicking around must not run an action hidden in a line
        await pilot.click(LogLines, offset=(60, 6))
        await pilot.pause()
        assert app.is_running


def live_events(n: int, start: int = 0) -> list:
    out = []
    for i in range(start, start + n):
        tenant = ("acme", "globex", "")[i % 3]
        sev = "err" if i % 10 == 0 else "info"
        e = parsers.parse_syslog(
            f"Nov 27 10:00:00 hv1 app[1]: entry {i} {'needle' if i % 7 == 0 else 'hay'}",
            "hv1",
            "file:/var/log/syslog",
        )
        out.append(replace(e, tenant=tenant, severity=sev))
    return out


def with_ring(st, ring: Ring):
    hs = st.hosts[0]
    view = LogView(events=ring.newest(10), dropped=ring.dropped, total=ring.total)
    return replace(st, hosts=(replace(hs, logs=view),))


async def test_follow_pause_filter_search_jump_and_dropped():
    ring = Ring(capacity=80)
    ring.append_many(live_events(50))
    # the ring stands for the session's: the source hands it to the pane (log_entries)
    st = with_ring(fleet_state(), ring)
    app, source = make_app(st, rings={"hv1": ring})
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        pane = app.query_one(LogsPane)
        ll = pane.query_one(LogLines)
        assert len(ll.lines) == 50 and ll.follow and ll.cursor == 49
        # moving up pauses; what arrives meanwhile is kept, the view does not move
        await pilot.press("up", "up")
        assert not ll.follow and ll.cursor == 47
        y = ll.scroll_offset.y
        ring.append_many(live_events(20, 50))
        source.push(with_ring(fleet_state(), ring))
        await pilot.pause(0.3)
        assert len(ll.lines) == 70 and ll.scroll_offset.y == y and ll.cursor == 47
        assert "paused" in str(pane.query_one("#logs-status").render())
        await pilot.press("end")
        assert ll.follow and ll.cursor == 69
        # the ring drops the oldest: counted and shown
        ring.append_many(live_events(30, 70))
        source.push(with_ring(fleet_state(), ring))
        await pilot.pause(0.3)
        assert ring.dropped == 20
        status = str(pane.query_one("#logs-status").render())
        assert "20 dropped" in status and "100 received" in status
        assert len(ll.lines) == 80 and ll.lines[0].seq == 21
        # filter by tenant and severity
        await pilot.press("colon")
        await pilot.press(*"tenant:acme sev:err")
        await pilot.press("enter")
        await pilot.pause()
        assert ll.lines and all(e.tenant == "acme" and e.severity == "err" for e in ll.lines)
        assert [int(e.message.split()[1]) for e in ll.lines] == [
            i for i in range(20, 100) if i % 3 == 0 and i % 10 == 0
        ]
        await pilot.press("escape")
        await pilot.pause()
        assert len(ll.lines) == 80  # the pane holds what the ring holds
        # `t` cycles the tenant filter, `o` the source
        await pilot.press("t")
        assert {e.tenant for e in ll.lines} == {"acme"}
        await pilot.press("escape", "o")
        assert ll.lines == []  # journal: none here
        await pilot.press("o")
        assert len(ll.lines) == 80 and all(e.source.startswith("file:") for e in ll.lines)
        await pilot.press("escape")
        # search forward and back
        await pilot.press("slash", *"needle", "enter")
        await pilot.pause()
        first = ll.cursor
        assert "needle" in ll.lines[first].message and not ll.follow
        await pilot.press("n")
        assert ll.cursor != first and "needle" in ll.lines[ll.cursor].message
        second = ll.cursor
        await pilot.press("N")
        assert ll.cursor == first
        # a regex search
        await pilot.press("R", "slash", *["ctrl+u"], *r"entry 9\d ", "enter")
        await pilot.pause()
        assert ll.lines[ll.cursor].message.startswith("entry 9")
        assert second != first
        # a bad regex is a message, not a crash
        await pilot.press("slash", "ctrl+u", *"(", "enter")
        await pilot.pause()
        assert "search /(/" in str(pane.query_one("#logs-status").render())
        # jump from a finding's evidence
        found = pane.show_entries(["log:hv1#25", "log:hv1#40", ("hv1", 3), "/etc/passwd"])
        await pilot.pause()
        assert found == 2  # seq 3 was dropped from the ring
        assert [e.seq for e in ll.lines] == [25, 40] and ll.cursor == 0
        assert "no longer in the ring" in str(pane.query_one("#logs-status").render())
        await pilot.press("escape")
        await pilot.pause()
        assert len(ll.lines) == 80


async def test_a_bad_search_or_filter_says_why_in_a_half_screen_pane():
    """At 140 columns (make demo's size in the README) the Logs pane is ~68 wide: the message
    of a bad regex or filter came last in the status line, after the counters and the search,
    and was cut off: a user saw nothing happen. It comes first now."""
    app, _ = make_app(hostile_state())
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4", "R", "slash", "(", "enter")
        await pilot.pause()
        status = app.query_one(LogsPane).query_one("#logs-status")
        assert status.size.width < 80

        def shown() -> str:
            return "".join(s.text for s in status.render_lines(Region(0, 0, status.size.width, 1))[0])

        assert "missing ), unterminated subpattern" in shown(), shown()
        await pilot.press("escape", "colon", *"sev:bogus", "enter")
        await pilot.pause()
        assert "sev:bogus" in shown() and "severity" in shown(), shown()


async def test_snapshot_without_live_ring_shows_the_view():
    st = hostile_state()
    app, source = make_app(st)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        ll = app.query_one(LogLines)
        assert [e.seq for e in ll.lines] == list(range(1, 15))
        source.push(st)  # the same view again: nothing is added twice
        await pilot.pause(0.3)
        assert len(ll.lines) == 14


@needs_tool("tmux")
def test_hostile_lines_leave_the_terminal_title_and_clipboard_alone(tmp_path):
    sock = f"tsg-{os.getpid()}"
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    py = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else "python3"
    cmd = f"cd {ROOT} && exec {py} -c 'from tests.fixtures.journal import run_hostile_app; run_hostile_app()'"
    subprocess.run(
        tmux + ["new-session", "-d", "-x", "200", "-y", "50", "-s", "logs", cmd],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        subprocess.run(tmux + ["set-option", "-g", "set-clipboard", "on"], check=True)
        before = subprocess.run(
            tmux + ["display", "-p", "-t", "logs", "#{pane_title}"], capture_output=True, text=True
        ).stdout.strip()

        def wait_screen(text: str, key: str = "") -> str:
            end = time.monotonic() + 30
            screen = ""
            while time.monotonic() < end:
                if key:  # again until it shows: the Logs pane takes the focus once the app is ready
                    subprocess.run(tmux + ["send-keys", "-t", "logs", key], check=True)
                screen = subprocess.run(
                    tmux + ["capture-pane", "-p", "-t", "logs"], capture_output=True, text=True
                ).stdout
                if text in screen:
                    break
                time.sleep(0.2)
            return screen

        # the newest line is drawn (the pane follows); its text is the same in every frame (the
        # source column's width is not: waiting for the whole file name timed out at 30 s)
        assert "line sep" in wait_screen("line sep")
        screen = wait_screen("\\x1b]0;PWNED-TITLE\\x07", key="Home")  # and the oldest, made visible
        assert "\\x1b]0;PWNED-TITLE\\x07" in screen
        time.sleep(0.5)
        after = subprocess.run(
            tmux + ["display", "-p", "-t", "logs", "#{pane_title}"], capture_output=True, text=True
        ).stdout.strip()
        assert "PWNED" not in after and after == before
        buffers = subprocess.run(tmux + ["list-buffers"], capture_output=True, text=True).stdout
        assert "evil" not in buffers and buffers.strip() == ""
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def snapshot_state():
    """The hostile corpus and the real-format corpus, attributed, at fixed times."""
    from probes.logs.attribute import Attributor, Index
    from probes.logs.model import LogSource, SourceState
    from tests.fixtures.journal import corpus_lines
    from tests.fixtures.tui import T0

    st = hostile_state()
    att = Attributor(Index(st))
    hostile = [e for e in st.hosts[0].logs.events][:6]
    corpus = [
        att.attribute(parsers.parse_auto(line, "hv1", "file:/var/log/syslog")) for line in corpus_lines()[:12]
    ]
    ring = Ring(100)
    evs = ring.append_many([replace(e, at=T0 + i, seq=0) for i, e in enumerate(hostile + corpus)])
    view = LogView(
        events=tuple(evs),
        total=ring.total,
        sources=(
            LogSource("file:/var/log/syslog", "file", SourceState.FOLLOWING),
            LogSource("file:/var/log/audit/audit.log", "file", SourceState.UNREADABLE, "permission denied"),
        ),
    )
    return replace(st, hosts=(replace(st.hosts[0], logs=view),))


class LogsOnly(App):
    """Only the Logs pane (so that other panes' changes do not move this snapshot)."""

    def __init__(self, state) -> None:
        super().__init__()
        self.state = state
        self._tz = UTC

    def get_theme_variable_defaults(self) -> dict[str, str]:
        from tui.status import THEME_DEFAULTS

        return dict(THEME_DEFAULTS)

    def compose(self):
        yield LogsPane()

    def on_mount(self) -> None:
        pane = self.query_one(LogsPane)
        pane.show(self.state)
        pane.focus_target().focus()


def test_logs_pane_snapshot_120x30(snap_compare):
    async def pause_two_up(pilot) -> None:
        await pilot.pause()
        await pilot.press("up", "up")  # paused, the cursor two rows up
        await pilot.pause()

    assert snap_compare(LogsOnly(snapshot_state()), terminal_size=(120, 30), run_before=pause_two_up)


async def test_pane_reloads_when_the_ring_is_reattributed():
    ring = Ring(capacity=100)
    ring.append_many(live_events(10))
    # the ring stands for the session's: the source hands it to the pane (log_entries)
    st = with_ring(fleet_state(), ring)
    app, source = make_app(st, rings={"hv1": ring})
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        ll = app.query_one(LogLines)
        assert sum(e.tenant == "acme" for e in ll.lines) == 4
        # the inventory arrived: the service re-attributes what the ring holds
        assert ring.update(lambda e: replace(e, tenant="initech") if not e.tenant else None) == 3
        ring.append_many(live_events(1, 10))
        source.push(with_ring(fleet_state(), ring))
        await pilot.pause(0.3)
        assert [e.tenant for e in ll.lines] == [("acme", "globex", "initech")[i % 3] for i in range(10)] + [
            "globex"
        ]
        assert [e.seq for e in ll.lines] == list(range(1, 12))


async def test_lazy_lines_are_parsed_when_shown_and_filters_fill_in_from_the_newest(monkeypatch):
    """A ring of lazy lines (a local file's blocks): showing the pane parses only the rows on
    screen; a tenant filter shows the newest matches at once and the older ones in slices
    between key presses, ending with exactly what filtering everything at once gives."""
    import tui.panes.logs as logs_pane
    from bench.logs import fleet, make_lines
    from probes.logs import lazy
    from probes.logs.attribute import Attributor, Index
    from probes.logs.query import Query

    monkeypatch.setattr(logs_pane, "FILTER_SLICE", 0.0)  # one batch of 512 entries per slice
    st = fleet()
    att = Attributor(Index(st))
    ctx = lazy.SourceContext("hv1", "file:/var/log/syslog")
    ring = Ring(5000)
    chunks = []
    lines = make_lines(4000)
    for k in range(0, 4000, 1000):
        chunk, found = lazy.ingest(("\n".join(lines[k : k + 1000]) + "\n").encode(), ctx, att)
        ring.append_chunk(chunk, found)
        chunks.append((chunk, set(found)))
    app, _ = make_app(with_ring(st, ring), rings={"hv1": ring})
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        ll = app.query_one(LogLines)
        pane = app.query_one(LogsPane)
        assert len(ll.lines) == 4000
        parsed_late = sum(len(set(c._parsed) - found) for c, found in chunks)
        assert 0 < parsed_late <= 10 + ll.size.height  # the rows on screen (and State's newest 10)
        prepended = []
        orig = LogLines.prepend
        monkeypatch.setattr(
            LogLines, "prepend", lambda self, older: (prepended.append(len(older)), orig(self, older))
        )
        await pilot.press("t")  # tenant t00
        for _ in range(200):
            if pane._filtering is None:
                break
            await pilot.pause(0.02)
        assert pane._filtering is None
        want = Query(tenant="t00").predicate()
        expected = [e.seq for e in ring if want(e)]
        assert expected and [e.seq for e in ll.lines] == expected
        assert all("t00" in (e.tenant, e.target_tenant) for e in map(lazy.materialize, ll.lines))
        assert len(prepended) >= 2 and sum(prepended) < len(expected)  # newest first, then slices


async def test_reattribution_reload_of_two_hosts_parses_no_lazy_line():
    """Two hosts' rings of lazy lines; an inventory change re-attributes the parsed entries:
    the pane reloads them in place and parses only what is on screen (it merged the hosts by
    time before, which parsed every line)."""
    from bench.logs import fleet, make_lines
    from probes.logs import lazy
    from probes.logs.attribute import Attributor, Index
    from probes.model import Host, HostState

    st = fleet()
    st = replace(st, hosts=(st.hosts[0], HostState(Host("hv2"))))
    att = Attributor(Index(st))
    rings, chunks = {}, []
    for h in ("hv1", "hv2"):
        ring = rings[h] = Ring(5000)
        block = ("\n".join(make_lines(2000)) + "\n").encode()
        chunk, found = lazy.ingest(block, lazy.SourceContext(h, "file:/var/log/syslog"), att)
        ring.append_chunk(chunk, found)
        chunks.append((chunk, set(found)))
    app, source = make_app(st, rings=rings)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        ll = app.query_one(LogLines)
        assert len(ll.lines) == 4000
        before = [e.seq for e in ll.lines]
        assert rings["hv1"].update(lambda e: replace(e, tenant="moved") if e.tags else None) > 0
        source.push(with_ring(st, rings["hv1"]))
        await pilot.pause(0.3)
        assert [e.seq for e in ll.lines] == before
        assert sum(e.tenant == "moved" for e in ll.lines if type(e) is not lazy.LazyLine) == 200
        parsed_late = sum(len(set(c._parsed) - found) for c, found in chunks)
        # rows drawn before and after the reload, and the State's newest 10: not the 3,600
        assert parsed_late <= 3 * ll.size.height + 10


async def test_arriving_lines_scroll_without_a_screen_layout():
    """A new line moves the Logs pane's scrollbar and view, not the whole screen's layout:
    the first lines that overflow make the scrollbar appear (one layout, asked for by the
    scrollbar); later lines are followed with no layout pass at all."""
    ring = Ring(capacity=500)
    ring.append_many(live_events(3))
    app, source = make_app(with_ring(fleet_state(), ring), rings={"hv1": ring})
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        ll = app.query_one(LogLines)
        assert not ll.show_vertical_scrollbar
        layouts = 0
        screen = app.screen
        real = screen._refresh_layout

        def counted(*a, **k):
            nonlocal layouts
            layouts += 1
            return real(*a, **k)

        screen._refresh_layout = counted
        ring.append_many(live_events(100, 3))
        source.push(with_ring(fleet_state(), ring))
        await pilot.pause(0.3)
        assert ll.show_vertical_scrollbar and layouts >= 1  # the scrollbar came
        for start in (103, 140):
            layouts = 0
            ring.append_many(live_events(37, start))
            source.push(with_ring(fleet_state(), ring))
            await pilot.pause(0.3)
            assert layouts == 0
            n = start + 37
            assert len(ll.lines) == n and ll.cursor == n - 1
            assert ll.vertical_scrollbar.window_virtual_size == n
            assert ll.scroll_offset.y == ll.max_scroll_y == n - ll.scrollable_content_region.height
            shown = "".join(s.text for s in pane_segments(app))
            assert f"entry {n - 1} " in shown  # the newest line is on screen


async def test_figures_states_skip_the_pane_and_new_lines_still_reach_it(tmp_path, monkeypatch):
    """The pane reads only `host.logs` and `tenants`: a State that moves nothing else (every
    figures refresh of an idle console) does not reach it, and a line appended to a real
    followed file still does, through the session's log service, engine and app."""
    import asyncio

    from probes.engine import Engine
    from probes.logs.service import LogService
    from probes.logs.sources import LogsConfig
    from probes.session import Options, Session, make_deriver
    from tests.fixtures.journal import local_host
    from tui.app import TenantScopeApp

    (tmp_path / "var/log").mkdir(parents=True)
    syslog = tmp_path / "var/log/syslog"
    syslog.write_text("Nov 27 10:00:00 hv1 kernel: booted\n")
    svc = LogService(LogsConfig(files=("/var/log/syslog",), journal=False, libvirt_events=False))
    engine = Engine([local_host(tmp_path)], lambda h: [svc.probe()], make_deriver(Options()))
    engine.subscribe(svc.observe)  # as the session wires it
    session = Session(Options(), engine=engine)
    session.logs = svc
    shows = []
    real = LogsPane.show
    monkeypatch.setattr(LogsPane, "show", lambda self, st: shows.append(st) or real(self, st))
    app = TenantScopeApp(source=session)

    async def until(cond, what: str) -> None:
        for _ in range(300):
            if cond():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(LogsPane)
        await until(lambda: any("booted" in e.message for e in pane.store), "the backlog in the pane")
        await pilot.pause(0.5)
        n = len(shows)
        state = app.state
        assert state is not None
        app._on_source_state(replace(state, taken_at=state.taken_at + 2))  # a figures-only State
        await pilot.pause(0.4)
        assert app.state is not state and len(shows) == n
        with open(syslog, "a") as f:
            f.write("Nov 27 10:10:00 hv1 kernel: br0: port 3(tapglobex1) entered disabled state\n")
        await until(lambda: any("tapglobex1" in e.message for e in pane.store), "the new line in the pane")


async def test_enter_shows_the_whole_line_and_what_was_made_of_it_inert():
    """The pane cuts a line to its column; Enter shows it whole with its source, signals and
    attribution (found by usercheck: a cut line could only be read by panning). Hostile lines
    stay inert there too."""
    from tui.safe import untrusted
    from tui.screens.log_line import LogLineScreen

    app, _ = make_app(hostile_state())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        ll = app.query_one(LogsPane).query_one(LogLines)
        ll.focus()
        ll.action_home()
        for i in range(len(ll.lines)):
            ll.cursor = i
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, LogLineScreen) and app.screen.entry is ll.lines[i]
            body = str(app.screen.query_one("#log-line-body").render())
            for bad in ("\x1b", "\x07", "\x9b", "\x00", "\r", "\u202e"):
                assert bad not in body, (i, repr(body[:200]))
            e = ll.lines[i]
            if "mac-denial" in e.tags:
                assert "isolation signals: mac-denial" in body and "tenant: " in body
            # the whole message, wrapped (the one sanitizer's 16 KiB cap still holds)
            assert untrusted(e.message).plain in body
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, LogLineScreen)


def test_a_filter_of_chosen_lines_says_what_they_are():
    """The status line said "filter: 0 evidence line(s)" after the runbook's log review (found
    by usercheck): lines chosen by a finding or the runbook say what they are and how many."""
    from probes.logs.query import Query

    one = frozenset({("hv1", 1)})
    assert Query(seqs=one, chosen="the evidence of VM-09").describe() == "the evidence of VM-09 (1 line)"
    assert Query(seqs=frozenset(), chosen="warnings and isolation signals").describe() == (
        "warnings and isolation signals (0 lines)"
    )
    assert Query(seqs=one).describe() == "chosen lines (1 line)"


async def test_a_narrow_logs_pane_gives_the_message_the_room():
    """At 140 columns the Logs pane is half the screen: the tenant and source columns (14 each)
    left the message ~20 characters ("qemu-system-x86 inv"). A narrow pane shrinks the tenant
    column and drops the source (Enter and `o` show it); a wide one keeps both."""
    seen = {}
    for width in (66, 96, 118):
        app = LogsOnly(snapshot_state())
        async with app.run_test(size=(width + 2, 20)) as pilot:
            await pilot.pause()
            lines = app.query_one(LogLines)
            row = lines.line_text(lines.lines[-1]).plain
            seen[width] = (lines.size.width, "syslog" in row, row.index("Started Session"))
    narrow, middle, wide = (seen[w] for w in (66, 96, 118))
    # time, severity, tenant (and source): where the message starts
    assert narrow[0] < 80 and not narrow[1] and narrow[2] == 8 + 1 + 7 + 1 + 10 + 1
    assert 80 <= middle[0] < 110 and middle[1] and middle[2] == 8 + 1 + 7 + 1 + 12 + 1 + 10 + 1
    assert wide[0] >= 110 and wide[1] and wide[2] == 8 + 1 + 7 + 1 + 14 + 1 + 14 + 1
