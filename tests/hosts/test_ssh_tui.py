"""The console over SSH: each host's connection state is in the header (one up, one whose host
key is refused), and the refused host never holds the other up."""

from __future__ import annotations

from rich.text import Text

from probes.session import Options
from tests.fixtures.sshd import sshd_factory  # noqa: F401
from tui.app import TenantScopeApp


def _plain(widget) -> str:  # type: ignore[no-untyped-def]
    r = widget.render()
    return r.plain if isinstance(r, Text) else str(r)


async def test_header_shows_each_ssh_hosts_state(sshd_factory, tmp_path):
    good, stranger = sshd_factory(), sshd_factory()
    hosts = tmp_path / "hosts"
    # the libvirt test driver for both: qemu+ssh would run the system ssh client
    hosts.write_text(f"{good.target} test:///default\n{stranger.target} test:///default\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    opts = Options(
        hosts_file=str(hosts),
        known_hosts=good.known_hosts,
        ssh_config=str(cfg),
        identity=(good.client_key, stranger.client_key),
        interval=0.5,
    )
    app = TenantScopeApp(opts)
    async with app.run_test(size=(160, 48)) as pilot:
        text = ""
        for _ in range(200):
            await pilot.pause(0.05)
            text = _plain(app.query_one("#header-main"))
            if "ssh: up" in text and "host key refused" in text:
                break
        assert f"127.0.0.1:{good.port}" in text and f"127.0.0.1:{stranger.port}" in text
        assert "ssh: up" in text and "ssh: host key refused" in text, text


def test_only_host_narrows_observations_findings_and_tenants():
    """The host picker's pure part: a tenant spanning two hosts keeps only that host's share."""
    from probes.model import Finding, Host, HostState, Severity, State, Status, Tenant
    from tui.hostfilter import next_host, only_host

    st = State(
        hosts=(HostState(Host("hv1")), HostState(Host("hv2"))),
        tenants=(
            Tenant("acme", ("hv1/vm/a", "hv2/vm/b"), ("hv1", "hv2")),
            Tenant("globex", ("hv2/vm/c",), ("hv2",)),
        ),
        findings=(
            Finding("VM-01", "vm", "t", Status.FAIL, Severity.HIGH, host="hv1"),
            Finding("VM-01", "vm", "t", Status.FAIL, Severity.HIGH, host="hv2"),
            Finding("SW-01", "software", "t", Status.PASS, Severity.INFO),
        ),
    )
    one = only_host(st, "hv1")
    assert [h.host.name for h in one.hosts] == ["hv1"]
    assert one.tenants == (Tenant("acme", ("hv1/vm/a",), ("hv1",)),)
    assert [f.host for f in one.findings] == ["hv1", ""]
    assert only_host(st, None) is st
    assert [next_host(st, h) for h in (None, "hv1", "hv2")] == ["hv1", "hv2", None]


async def test_key_h_picks_one_host_then_all():
    from probes.model import Host, HostState, Placement, State, Tenant, Workload, WorkloadKind
    from tui.source import StaticSource

    w1 = Workload(WorkloadKind.VM, "acme-a", "hv1", tenant="acme", placed_by=Placement.PREFIX)
    w2 = Workload(WorkloadKind.VM, "globex-b", "hv2", tenant="globex", placed_by=Placement.PREFIX)
    st = State(
        hosts=(HostState(Host("hv1"), workloads=(w1,)), HostState(Host("hv2"), workloads=(w2,))),
        tenants=(Tenant("acme", (w1.key,), ("hv1",)), Tenant("globex", (w2.key,), ("hv2",))),
    )
    app = TenantScopeApp(Options(), source=StaticSource(st))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        tree = app.pane("tenants").query_one("Tree")

        def labels() -> set[str]:
            return {n.label.plain.split()[0] for n in tree.root.children}

        assert {"acme", "globex"} <= labels()
        await pilot.press("h")
        await pilot.pause()
        assert app.host_filter == "hv1" and "globex" not in labels() and "acme" in labels()
        await pilot.press("h", "h")
        await pilot.pause()
        assert app.host_filter is None and {"acme", "globex"} <= labels()
        assert "hv2" in _plain(app.query_one("#header-main"))  # the header keeps every host
