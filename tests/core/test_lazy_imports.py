"""What a session does not use is not imported: libvirt without a daemon socket to connect to,
asyncssh without SSH hosts, pyroute2 for the topology (its dumps are parsed by hand).
Each heavy import costs megabytes of RSS for as long as the console runs (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from probes.hosts.local import libvirt_daemon_present


def run_program(program: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run `program` in a fresh interpreter from the repository; what it printed last, as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_daemon_socket_decides_for_local_system_uris_only(tmp_path: Path) -> None:
    run = tmp_path / "run-libvirt"
    run.mkdir()
    assert not libvirt_daemon_present("qemu:///system", str(run))
    assert not libvirt_daemon_present("lxc:///system", str(run))
    (run / "virtqemud-sock-ro").touch()  # the modular daemon answers qemu:///system
    assert libvirt_daemon_present("qemu:///system", str(run))
    assert not libvirt_daemon_present("lxc:///system", str(run))
    (run / "libvirt-sock").touch()  # the monolithic libvirtd answers every driver
    assert libvirt_daemon_present("lxc:///system", str(run))
    # not a local system daemon: libvirt itself answers
    for uri in ("test:///default", "qemu:///session", "qemu+ssh://hv/system", "qemu+unix:///system"):
        assert libvirt_daemon_present(uri, str(tmp_path / "nowhere"))


PROGRAM = r"""
import asyncio, json, sys
from probes.hosts.local import LocalHost
from probes.inventory.libvirt import LibvirtProbe
from probes.model import HostState
from probes.network.topology import _libvirt_uri, read_netlink

async def main():
    host = LocalHost("h", libvirt_uri="qemu:///system", root=sys.argv[1])
    probe = LibvirtProbe()
    r = await probe.collect(host)
    st = probe.merge(HostState(host.host), r)
    nets_uri = await _libvirt_uri(host)
    topo = await asyncio.to_thread(read_netlink)  # the host's own namespace, and named ones  # the topology's libvirt networks: not asked either
    await probe.close()
    c = st.connection("libvirt")
    feed = probe.feed()
    print(json.dumps({"absent": r.absent, "state": c.state.value if c else None,
                      "libvirt": "libvirt" in sys.modules, "asyncssh": "asyncssh" in sys.modules,
                      "nets_uri": nets_uri, "feed": [feed.mode, feed.detail],
                      "pyroute2": "pyroute2" in sys.modules, "links": len(topo.links),
                      "xml": "xml.etree.ElementTree" in sys.modules}))

asyncio.run(main())
"""


def test_no_daemon_socket_no_libvirt_import(tmp_path: Path) -> None:
    """A local host whose /run/libvirt has no daemon socket (a fake root here): the inventory
    says absent (a state, not a probe error) without importing libvirt, and no SSH client is
    loaded for a local session."""
    got = run_program(PROGRAM, str(tmp_path))
    assert "no libvirt daemon socket" in got["absent"]
    assert got["state"] == "absent"
    assert got["libvirt"] is False
    assert got["asyncssh"] is False
    assert got["nets_uri"] is None
    assert got["feed"][0] == "polled" and "no libvirt daemon socket" in got["feed"][1]  # the `!` screen
    assert "looked for every 30 s" in got["feed"][1]  # the safety poll, not every 2 s
    assert got["links"] >= 1 and got["pyroute2"] is False
    assert got["xml"] is False  # the domain and network XML parsers come with libvirt


START = r"""
import json, sys
from tui import cli
from tui.commands.baseline import with_baseline
from tui.commands.common import console_extras, options_from
args = cli.build_parser().parse_args(["run", "--libvirt", "test:///default"])
from tui.app import TenantScopeApp
opts = with_baseline(options_from(args), None)
app = TenantScopeApp(opts, read_only=False)
console_extras(app, args, opts)  # theme, keymap (none given), no recording
print(json.dumps(sorted(sys.modules)))
"""


def test_console_start_imports_only_what_it_runs(tmp_path: Path) -> None:
    """`tenantscope run` up to the screen opening (the parser, the options, the app, its
    extras) on a local host: no SSH client, no importlib.metadata (only --version needs it),
    no screen that is not shown (the keymap's binding ids are read only when a keymap is
    configured), no re2 before a log line arrives."""
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}
    mods = set(run_program(START, env=env))
    assert "tui.app" in mods  # it did get that far
    for absent in ("asyncssh", "importlib.metadata", "email", "tui.screens.help", "tui.screens.fleet", "re2"):
        assert absent not in mods, absent
    # nor the recording format without a baseline, the filter parsers before there are rules to
    # parse (msgspec with either), importlib.resources for the themes and alerting's files
    for absent in (
        "probes.record",
        "probes.network.filterparse",
        "msgspec",
        "importlib.resources",
        "zipfile",
    ):
        assert absent not in mods, absent


RUNNING = r"""
import json, sys
from pathlib import Path
from tui import cli  # what the entry point imports first
import asyncio
from tests.fixtures.tui import make_app, sample_state
from probes.network import filterread, ovsflows, probeport  # a local console's, at import

async def main():
    app, source = make_app(sample_state())
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        source.push(sample_state())  # a State rendered while the panes are up
        await pilot.pause(0.3)
    probeport.sweep(Path(sys.argv[1]))  # what the session's start runs as root
    probeport.Recorder(Path(sys.argv[1]))
    print(json.dumps(sorted(sys.modules)))

asyncio.run(main())
"""


def test_running_console_imports_no_screen_it_did_not_open(tmp_path: Path) -> None:
    """The screens that follow the State (probe errors, fleet, changes) are imported when they
    are opened, not by every render checking whether they are on top. Nor is OpenSSL loaded
    (~4 MiB): not by asyncio (tui/lazyssl.py), the compositor's pin of Textual's source (a
    CRC), the nonces of the filter and flow readers or the probe-port sweep at start."""
    mods = set(run_program(RUNNING, str(tmp_path)))
    assert "tui.panes.findings" in mods  # the console did render
    for absent in ("tui.screens.probe_errors", "tui.screens.fleet", "tui.screens.changes", "re2"):
        assert absent not in mods, absent
    for absent in ("ssl", "_ssl", "_hashlib", "hmac"):
        assert absent not in mods, absent


UPDATES_CACHE = r"""
import json, sys
from pathlib import Path
from probes.facts.probe import PendingUpdates, _load_cache, _save_cache
cache = Path(sys.argv[1]) / "updates-h.json"
none = _load_cache(cache)
before = "msgspec" in sys.modules
_save_cache(cache, PendingUpdates("apt", 1.0, (), 3))
got = _load_cache(cache)
print(json.dumps({"none": none is None, "msgspec_before": before, "total": got.total, "cached": got.from_cache}))
"""


def test_no_updates_cache_no_msgspec(tmp_path: Path) -> None:
    """The facts probe looks for the last update lookup's cache at every start: without one,
    msgspec (its decoder, ~0.6 MiB) is not imported; with one, it is read as before."""
    got = run_program(UPDATES_CACHE, str(tmp_path))
    assert got == {"none": True, "msgspec_before": False, "total": 3, "cached": True}
