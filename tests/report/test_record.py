"""Record and replay: the file format (deltas, bounded size, truncation and corruption open up
to the last good point), a real recording of namespaces with a fault injected mid-recording
whose findings appear at the same points in replay, and the replay keys in the TUI."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from probes import record
from probes.session import Options, make_deriver
from tests.fixtures.recording import CONFIG, inject_fault, tsj_net  # noqa: F401
from tests.fixtures.runbook import incident_state
from tests.helpers import needs_root, needs_tool
from tui.cli import main


def states(n: int):
    st = incident_state()
    out = []
    for i in range(n):
        hs = replace(st.hosts[0], refreshed_at=st.taken_at + i)
        out.append(replace(st, hosts=(hs,), taken_at=st.taken_at + i))
    return out


def write(path, sts, **kw) -> record.Recorder:
    r = record.Recorder(path, **kw)
    for s in sts:
        r.add(s)
    r.close()
    return r


def test_round_trip_and_unchanged_hosts_are_not_stored(tmp_path):
    sts = states(5)
    p = tmp_path / "a.tsr"
    write(p, sts)
    rec = record.load(p)
    assert rec.problem == "" and rec.times == [s.taken_at for s in sts]
    assert [s.hosts for s in rec.states] == [s.hosts for s in sts]
    # nothing changed (the same HostState objects): nothing written
    r = record.Recorder(tmp_path / "b.tsr")
    r.add(sts[0])
    size1 = r.size
    r.add(replace(sts[0], taken_at=sts[0].taken_at + 1))
    assert r.size == size1
    # a second host appears, the first unchanged: only the new host is stored (a delta)
    other = replace(sts[0].hosts[0], host=replace(sts[0].hosts[0].host, name="hv2"), logs=None, topology=None)
    r.add(replace(sts[0], hosts=(sts[0].hosts[0], other), taken_at=sts[0].taken_at + 2))
    delta = r.size - size1
    assert delta < size1 / 2
    r.close()
    rec = record.load(tmp_path / "b.tsr")
    assert len(rec.states) == 2 and rec.states[1].hosts == (sts[0].hosts[0], other)


def test_size_limit_stops_recording(tmp_path):
    r = write(tmp_path / "c.tsr", states(50), max_bytes=8000)
    assert r.full and r.size <= 8000
    rec = record.load(tmp_path / "c.tsr")
    assert rec.problem == "" and 0 < len(rec.states) < 50


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file_opens_up_to_the_cut(tmp_path, cut):
    p = tmp_path / "d.tsr"
    write(p, states(10))
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * cut)])
    rec = record.load(p)
    assert 0 < len(rec.states) < 10
    assert "cut short" in rec.problem and f"first {len(rec.states)} observation" in rec.problem
    assert rec.states == record.load(tmp_path / "d.tsr").states  # stable


def test_corrupted_frame_stops_with_a_message(tmp_path):
    p = tmp_path / "e.tsr"
    write(p, states(6))
    data = bytearray(p.read_bytes())
    data[len(data) * 2 // 3] ^= 0xFF
    p.write_bytes(bytes(data))
    rec = record.load(p)
    assert 0 < len(rec.states) < 6 and "checksum" in rec.problem


def test_not_a_recording(tmp_path, capsys):
    p = tmp_path / "x.tsr"
    p.write_text("hello")
    with pytest.raises(record.RecordError, match="not a tenantscope recording"):
        record.load(p)
    assert main(["replay", str(p)]) == 2
    assert "x.tsr: not a tenantscope recording" in capsys.readouterr().err


@needs_root
@needs_tool("ip")
async def test_real_recording_with_fault_replays_the_same_findings(tmp_path, tsj_net, capsys):
    from probes.config import parse
    from probes.engine import Engine
    from probes.inventory.netns import NetnsProbe
    from probes.network.policy import from_config
    from probes.network.topology import TopologyProbe
    from probes.session import make_hosts

    cfg = parse(CONFIG, "test-config")
    opts = Options(config=cfg, libvirt_uri="test:///default")
    engine = Engine(
        make_hosts(opts),
        lambda h: [NetnsProbe(interval=0.2), TopologyProbe(interval=0.2, policy=from_config(cfg))],
        make_deriver(opts),
    )
    path = tmp_path / "lab.tsr"
    rec = record.Recorder(path)
    live: list = []

    def on_state(st):
        n = rec.frames
        rec.add(st, force=True)
        if rec.frames > n:  # written (an unchanged State is not)
            live.append(st)

    def shared(st) -> bool:
        return any(f.status.value == "fail" and {"acme", "globex"} <= set(f.tenants) for f in st.findings)

    def both_seen(st) -> bool:
        names = {w.name for w in st.workloads()}
        hs = st.hosts[0]
        return (
            {"tsj-a1", "tsj-b1"} <= names
            and hs.topology is not None
            and any(lk.name == "tsj-hb" for lk in hs.topology.links)
        )

    engine.subscribe(on_state)
    engine.start()
    try:

        async def until(pred, what):
            for _ in range(300):
                if live and pred(live[-1]):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        await until(both_seen, "the namespaces")
        await asyncio.sleep(0.5)
        assert not shared(live[-1])
        await asyncio.to_thread(inject_fault)
        await until(shared, "the fault's finding")
        await asyncio.sleep(0.3)
    finally:
        await engine.stop()
        rec.close()

    loaded = record.load(path)
    assert loaded.problem == "" and len(loaded.states) == len(live)
    derive = make_deriver(opts)
    replayed = [derive(s) for s in loaded.states]
    key = lambda st: sorted((f.check_id, f.status.value, f.summary) for f in st.findings)  # noqa: E731
    assert [key(s) for s in replayed] == [key(s) for s in live]  # same findings at each point
    first = next(i for i, s in enumerate(live) if shared(s))
    assert next(i for i, s in enumerate(replayed) if shared(s)) == first > 0
    assert loaded.times[first] == live[first].taken_at

    # the incident report of the real run (its last point): the fault, both tenants, the wrong cell
    from probes.report.build import as_markdown, build

    rep = build(replayed[-1])
    assert {"acme", "globex"} <= set(rep.tenants_involved)
    wrong = {(c.src, c.dst) for m in rep.matrices for c in m.cells if c.status == "wrong"}
    assert {("acme", "globex"), ("globex", "acme")} <= wrong
    md = as_markdown(rep)  # the evidence names the bridge and the workload behind each port
    assert "bridge tsj-bra is shared by tenants acme, globex" in md
    assert "`vm/netns/tsj-a1 (tenant acme)`" in md and "`vm/netns/tsj-b1 (tenant globex)`" in md

    # `tenantscope diff` between two instants of the real recording: the fault and nothing else
    import json

    from tui.cli import main

    (tmp_path / "c.toml").write_text(CONFIG)
    before, after = f"{path}@{loaded.times[first - 1]:.3f}", f"{path}@{loaded.times[-1]:.3f}"
    common = ["--config", str(tmp_path / "c.toml"), "--libvirt", "test:///default"]
    assert main(["diff", before, before, *common]) == 0  # an instant against itself: nothing
    capsys.readouterr()
    assert main(["diff", before, after, "--format", "json", *common]) == 1
    d = json.loads(capsys.readouterr().out)
    # (only the test's own objects: other namespaces may come and go on a shared machine)
    others = [
        (c["kind"], c["summary"]) for c in d["changes"] if c["area"] != "findings" and "tsj-" in c["summary"]
    ]
    assert others == [("port-joined", "host/tsj-hb joined bridge tsj-bra (left tsj-brb)")]
    new = {c["summary"].split()[0] for c in d["changes"] if c["kind"] == "finding-new"}
    assert "NET-02" in new and not [c for c in d["changes"] if c["kind"] == "finding-cleared"]

    # cut mid-stream after the fault: opens up to the cut, the fault still there if before it
    data = path.read_bytes()
    cut = tmp_path / "cut.tsr"
    cut.write_bytes(data[: len(data) - 10])
    short = record.load(cut)
    assert len(short.states) == len(live) - 1 and "cut short" in short.problem


async def test_replay_in_the_tui_keys_and_header(tmp_path):
    from tests.fixtures.tui import T0
    from tui.replay import ReplaySource, replay_app_class

    p = tmp_path / "r.tsr"
    sts = states(4)
    # the fault (NET-02 missing) until the third observation
    sts = [replace(s, findings=()) for s in sts]
    write(p, sts)
    rec = record.load(p)
    seen = []

    def derive(st):
        seen.append(st.taken_at)
        return st if st.taken_at < T0 + 2 else replace(st, findings=incident_state().findings)

    src = ReplaySource(rec, derive=derive, autoplay=False)
    app = replay_app_class()(source=src, read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert "replay of hv1 at 2026-09-21 14:13:20 UTC · ⏸ paused 1x · 1/4" in app.state.source
        await pilot.press("full_stop", "full_stop")
        await pilot.pause(0.3)
        assert src.index == 2 and len(app.pane("findings").ordered) == 4
        await pilot.press("comma")
        await pilot.pause(0.3)
        assert app.pane("findings").ordered == ()
        await pilot.press("right_square_bracket")
        assert src.speed == 2.0
        await pilot.press("g")
        await pilot.pause()
        for ch in "14:13:23":
            await pilot.press({":": "colon"}.get(ch, ch))
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert src.index == 3
        assert app.read_only
        assert "probe" not in {e.action for e in __import__("tui.bindings").bindings.key_entries(app)}


async def test_record_flag_on_the_console(tmp_path):
    from tests.fixtures.tui import make_app
    from tui import extras

    app, source = make_app(states(1)[0])
    p = tmp_path / "console.tsr"
    rec = extras.start_recording(app, str(p))
    async with app.run_test(size=(120, 40)) as pilot:
        for st in states(4)[1:]:
            source.push(replace(st, taken_at=st.taken_at + 5))  # a second apart at least
            await pilot.pause()
    rec.close()
    loaded = record.load(p)
    assert loaded.problem == "" and len(loaded.states) == 3


async def test_replay_changes_since_an_instant_of_the_recording(tmp_path):
    """B / --since: the replay's own baseline; later observations mark the findings that
    appeared after it as new, and C lists them (issue 18: "changes since T" in a replay)."""
    from tests.fixtures.tui import T0
    from tui.replay import ReplaySource, replay_app_class
    from tui.screens.changes import ChangesScreen

    p = tmp_path / "r.tsr"
    write(p, [replace(s, findings=()) for s in states(4)])
    rec = record.load(p)

    def derive(st):  # the fault's findings from the third observation (14:13:22) on
        return st if st.taken_at < T0 + 2 else replace(st, findings=incident_state().findings)

    src = ReplaySource(rec, derive=derive, autoplay=False)
    assert src.state.drift is None  # nothing set: no comparison
    assert "not a time" in (src.since("14:99") or "")
    assert "starts later, at 14:13:20" in (src.since("14:13:00") or "")
    assert src.since("14:13:21") is None and src.since_label.endswith("@14:13:21 UTC")
    assert src.state.drift is not None and src.state.drift.changes == ()  # index 0: nothing yet
    src.seek(3)
    drift = src.state.drift
    keys = {f.key for f in incident_state().findings if f.status.value != "pass"}  # a pass is not news
    assert keys and drift is not None and set(drift.new_findings()) == keys and drift.cleared == ()
    src.seek(1)  # the baseline itself: nothing changed
    assert src.state.drift is not None and src.state.drift.changes == ()

    src2 = ReplaySource(rec, derive=derive, autoplay=False)
    app = replay_app_class()(source=src2, read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("full_stop", "B")  # at 14:13:21: empty answer = this observation
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert src2.since_label.endswith("@14:13:21 UTC")
        await pilot.press("full_stop", "full_stop", "C")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ChangesScreen)
        summary = str(app.screen.query_one("#changes-summary").render())
        assert "r.tsr@14:13:21 UTC" in summary and f"{len(keys)} new finding(s), 0 cleared" in summary
        assert app.screen.query_one("#changes-table").row_count == len(keys)


def test_replay_since_on_the_command_line(tmp_path, capsys):
    p = tmp_path / "r.tsr"
    write(p, states(2))
    assert main(["replay", str(p), "--since", "25:00"]) == 2
    assert "--since: not a time: '25:00'" in capsys.readouterr().err
