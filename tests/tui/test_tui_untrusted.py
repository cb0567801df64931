"""Host-supplied text reaches the screen only as visible, inert text.

A workload named `[@click=app.quit]x\\x1b]0;pwned\\x07` must show literally (escapes made
visible), must not become a clickable action, and no ESC byte may reach the terminal. Checked
on every rendered segment of the screen, then by clicking on the names.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from textual.geometry import Region
from textual.widgets import DataTable

from probes.model import (
    Connection,
    ConnState,
    Evidence,
    Finding,
    Host,
    ProbeError,
    Severity,
    Status,
    Tenant,
)
from probes.session import Options
from tests.fixtures.tui import EVIL, T0, make_app, sample_state, vm
from tui.app import TenantScopeApp
from tui.panes.tenants import TenantTree
from tui.screens.finding import FindingScreen
from tui.screens.probe_errors import ProbeErrorsScreen

SHOWN = "[@click=app.quit]x\\x1b]0;pwned\\x07"  # what the user must see


def evil_state():
    st = sample_state()
    h = st.hosts[0]
    h = replace(
        h,
        host=replace(h.host, name="hv1" + EVIL),
        workloads=h.workloads + (vm(EVIL, EVIL, host="hv1" + EVIL, rule=EVIL), vm(EVIL + "-2")),
        connections=(Connection("libvirt" + EVIL, ConnState.UNREACHABLE, EVIL, T0 - 5),),
        probe_errors=(ProbeError("libvirt", "hv1" + EVIL, EVIL, T0, T0),),
    )
    f = Finding(
        "VM-01",
        "vm",
        "t" + EVIL,
        Status.FAIL,
        Severity.HIGH,
        "hv1" + EVIL,
        summary=EVIL,
        why=EVIL,
        tenants=(EVIL,),
        workloads=(EVIL,),
        evidence=(Evidence(EVIL, EVIL + "\n" + EVIL),),
        fix=EVIL,
    )
    return replace(st, hosts=(h,), tenants=st.tenants + (Tenant(EVIL),), findings=(f,))


def screen_segments(app):  # type: ignore[no-untyped-def]
    """Every segment of every widget on the current screen, as the compositor gets them."""
    for w in app.screen.query("*"):
        if not w.display or w.size.area == 0:
            continue
        for strip in w.render_lines(Region(0, 0, w.size.width, w.size.height)):
            yield from strip


def assert_inert(app) -> str:  # type: ignore[no-untyped-def]
    text = []
    for seg in screen_segments(app):
        assert "\x1b" not in seg.text and "\x07" not in seg.text, repr(seg.text)
        if seg.style is not None:
            meta = seg.style.meta or {}
            assert not any("@click" in str(k) or "quit" in str(v) for k, v in meta.items()), meta
            assert not seg.style.link
        text.append(seg.text)
    return "".join(text)


async def test_evil_names_show_literally_and_do_nothing():
    app, _ = make_app(evil_state())
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        tree = app.query_one(TenantTree)
        labels = [n.label.plain for n in tree.root.children] + [
            c.label.plain for n in tree.root.children for c in n.children
        ]
        assert any(lbl.startswith(SHOWN) for lbl in labels)
        assert any(f"placed: {SHOWN}" in lbl or f"prefix: {SHOWN}" in lbl for lbl in labels)
        table = app.query_one("#findings-table", DataTable)
        assert [str(c) for c in table.get_row_at(0)][3:] == [SHOWN, SHOWN]
        everything = assert_inert(app)
        assert SHOWN in everything
        assert f"hv1{SHOWN}" in everything  # the header's host name
        # click on the names: nothing runs
        for n in tree.root.children:
            if n.label.plain.startswith(SHOWN):
                tree.move_cursor(n)
        await pilot.pause()
        region = tree.region
        for dy in range(min(8, region.height)):
            await pilot.click(TenantTree, offset=(5, dy))
        await pilot.click("#findings-table", offset=(60, 1))
        await pilot.click("#header-main", offset=(30, 0))
        await pilot.pause()
        assert app.is_running and app.return_code is None


async def test_evil_text_in_detail_and_probe_error_screens():
    app, _ = make_app(evil_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("5", "enter")
        await pilot.pause()
        assert isinstance(app.screen, FindingScreen)
        everything = assert_inert(app)
        assert everything.count(SHOWN) >= 6  # summary, why, tenants, workloads, evidence, fix
        await pilot.click("#finding-body", offset=(2, 4))
        await pilot.press("escape", "1")
        await pilot.pause()
        tree = app.query_one(TenantTree)
        for n in tree.root.children:  # the evil tenant's evil workload
            if n.label.plain.startswith(SHOWN) and n.children:
                tree.move_cursor(n.children[0])
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        from tui.screens.workload import WorkloadScreen

        assert isinstance(app.screen, WorkloadScreen)
        assert assert_inert(app).count(SHOWN) >= 3  # name, tenant, rule, finding summary
        await pilot.press("escape", "exclamation_mark")
        await pilot.pause()
        assert isinstance(app.screen, ProbeErrorsScreen)
        assert SHOWN in assert_inert(app)
        assert app.is_running and app.return_code is None


async def test_markup_in_a_real_libvirt_domain_name_stays_text():
    """The real path, app -> Engine -> libvirt probe -> test driver: a domain defined on the
    libvirt test driver (libvirt's XML refuses control characters in names, so this one
    carries markup and a bidi override)."""
    import libvirt

    name = "[@click=app.quit]x[b]bold\u202eevil"
    rw = libvirt.open("test:///default")  # read-write only here, on the test driver's private state
    dom = rw.defineXML(
        f"<domain type='test'><name>{name}</name><memory>1024</memory><os><type>hvm</type></os></domain>"
    )
    try:
        app = TenantScopeApp(Options(libvirt_uri="test:///default", interval=0.5))
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(100):
                if app.state and len(app.state.workloads()) >= 2:
                    break
                await asyncio.sleep(0.05)
            await pilot.pause(0.3)
            tree = app.query_one(TenantTree)
            labels = [c.label.plain for n in tree.root.children for c in n.children]
            assert any(lbl.startswith("[@click=app.quit]x[b]bold\\u202eevil") for lbl in labels), labels
            # the wiring itself: the engine's libvirt probe fed the tree and the header
            assert any(lbl.startswith("test  vm · running") for lbl in labels), labels
            assert "✓ libvirt: up" in app.query_one("#header-main").render().plain
            assert_inert(app)
            for dy in range(4):
                await pilot.click(TenantTree, offset=(4, dy))
            await pilot.pause()
            assert app.is_running and app.return_code is None
    finally:
        dom.undefine()
        rw.close()


async def test_notifications_carry_host_names_as_plain_text():
    """`h` notified "showing host NAME" with Textual's default markup on: a host named
    `[@click=app.quit]x` became a link that quits, its escape sequence went out raw. Every
    notification (the app's and its panes') is now plain text through visible()."""
    st = evil_state()
    app, _ = make_app(replace(st, hosts=(*st.hosts, replace(st.hosts[0], host=Host("hv2")))))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        await pilot.press("h")
        await pilot.pause()
        app.query_one("#pane-resources").notify("from a pane: " + EVIL)  # Widget.notify too
        await pilot.pause()
        shown = [n for n in app._notifications]
        assert len(shown) == 2 and not any(n.markup for n in shown)
        assert shown[0].message == "showing host hv1" + SHOWN
        assert shown[1].message == "from a pane: " + SHOWN
        assert all("\x1b" not in n.message for n in shown)
        assert app.is_running


async def test_a_tenant_filter_in_the_findings_title_is_plain_text():
    """The Findings pane's `t` filter names the tenant in the pane's border subtitle, a string
    Textual reads as markup: a tenant named `[@click=app.quit]x` (a prefix of a hostile domain
    name) became markup there. Now it is Text through visible()."""
    from rich.text import Text

    from tui.panes.findings import FindingsPane

    app, _ = make_app(evil_state())
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("5", "t")
        await pilot.pause()
        sub = str(app.query_one(FindingsPane).border_subtitle)  # (Textual keeps it as markup)
        assert Text.from_markup(sub).plain.startswith(f"filter tenant {SHOWN} · "), sub
        assert "\x1b" not in sub
        assert app.is_running


def test_a_findings_workloads_read_as_names_on_their_host():
    """The finding detail listed its workloads by key ('demo-hv1/vm/acme-db-1', a path to read
    backwards); now as the summaries and the Tenants pane name them: 'acme-db-1 (vm on
    demo-hv1)'. A hostile name stays inert; a key of another shape is shown as it is."""
    from probes.model import Finding, Severity, Status
    from tui.screens.finding import detail_text

    f = Finding(
        check_id="VM-09",
        title="t",
        area="vm",
        status=Status.FAIL,
        severity=Severity.CRITICAL,
        summary="s",
        host="demo-hv1",
        workloads=("demo-hv1/vm/acme-db-1", f"hv/2/container/{EVIL}", "odd-key"),
    )
    text = detail_text(f, {}).plain
    assert "Workloads\nacme-db-1 (vm on demo-hv1)\n" in text
    assert "(container on hv/2)" in text and "\nodd-key\n" in text
    assert "\x1b" not in text


def test_a_log_lines_workloads_read_as_names_on_their_host():
    """The log line detail said 'workload: demo-hv1/vm/initech-build-1' (the key): now as the
    finding detail names it, for the touched workload of a MAC denial too."""
    from probes.logs.model import LogEvent
    from tui.screens.log_line import log_line_text

    e = LogEvent(
        at=T0,
        host="demo-hv1",
        source="file:/var/log/syslog",
        severity="err",
        message="m",
        tenant="initech",
        workload="demo-hv1/vm/initech-build-1",
        attributed_by="name",
        target_tenant="acme",
        target_workload="demo-hv1/vm/acme-db-1",
    )
    text = log_line_text(e).plain
    assert "\nworkload: initech-build-1 (vm on demo-hv1)\n" in text
    assert "\ntouched workload: acme-db-1 (vm on demo-hv1)" in text and "/vm/" not in text
