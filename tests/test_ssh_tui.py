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
    opts = Options(hosts_file=str(hosts), known_hosts=good.known_hosts, ssh_config=str(cfg),
                   identity=(good.client_key, stranger.client_key), interval=0.5)
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
