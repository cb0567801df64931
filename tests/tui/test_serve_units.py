"""Units of `tenantscope serve` that need no SSH: the followers' output filter (on streams
split anywhere) and the authorized_keys parser (our option, OpenSSH's, and refusals)."""

from __future__ import annotations

import asyncssh
import pytest

from tui.serve import keys
from tui.serve.app_process import app_argv, child_env
from tui.serve.filter import FollowerFilter

# What Textual writes when it starts (mouse, focus, paste, in-band resize, kitty keyboard,
# mode queries) around ordinary drawing.
START = (
    b"\x1b[?1049h\x1b[?1000h\x1b[?1003h\x1b[?1015h\x1b[?1006h\x1b[?25l\x1b[?1004h\x1b[?2004h"
    b"\x1b[>1u\x1b[?2026$p\x1b[?2048h\x1b[?2048$p\x1b[c\x1b[6n\x1b[1;1H\x1b[38;2;1;2;3mhello\x1b[0m"
    b"\x1b[?1000;25;1006l"
)
KEPT = b"\x1b[?1049h\x1b[?25l\x1b[1;1H\x1b[38;2;1;2;3mhello\x1b[0m\x1b[?25l"


def test_filter_removes_modes_and_queries_keeps_drawing() -> None:
    assert FollowerFilter().feed(START) == KEPT


@pytest.mark.parametrize("cut", range(1, len(START)))
def test_filter_on_a_stream_split_anywhere(cut: int) -> None:
    f = FollowerFilter()
    assert f.feed(START[:cut]) + f.feed(START[cut:]) == KEPT


def _key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def test_authorized_keys_options() -> None:
    a, b, c, d, e = (_key() for _ in range(5))
    text = "\n".join(
        [
            "# comment",
            "",
            f"tenantscope-write {a}",
            f"{b}",
            f"restrict,tenantscope-write {c}",
            f'command="/bin/sh" {d}',  # an option we cannot honour: skipped, never granted
            f'no-port-forwarding,from="10.0.0.1, 10.0.0.2" {e}',  # unknown (from=): skipped
            "garbage line",
        ]
    )
    got = {g.key_data: g.write for g in keys.parse(text)}
    data = {k: asyncssh.import_public_key(k).public_data for k in (a, b, c, d, e)}
    assert got == {data[a]: True, data[b]: False, data[c]: True}


def test_child_env_is_allow_listed() -> None:
    env = child_env("xterm-256color; rm -rf /", {"TENANTSCOPE_READONLY": "1"})
    assert env["TERM"] == "xterm-256color"  # a hostile TERM falls back
    assert env["LANG"] == "C.UTF-8" and env["TENANTSCOPE_READONLY"] == "1"
    assert not {"COLUMNS", "LINES", "LD_PRELOAD", "PYTHONPATH"} & set(env)


def test_app_argv_carries_the_server_options() -> None:
    import argparse

    ns = argparse.Namespace(
        config="lab.toml",
        host=["a", "b"],
        identity=[],
        interval=2.0,
        demo=False,
        app_arg=["--x"],
        libvirt=None,
        hosts_file=None,
        inventory=None,
        limit=None,
        known_hosts=None,
        ssh_config=None,
        accept_new_host_keys=False,
    )
    argv = app_argv(ns)
    assert (
        argv[-2:] == ["run", "--x"]
        and "--host" in argv
        and argv[argv.index("--config") + 1].endswith("/lab.toml")
    )


async def test_presenters_header_counts_followers(tmp_path, monkeypatch) -> None:
    """`serve --presenter` writes the follower count to a file; the presenter's header shows it."""
    from rich.text import Text

    from probes.session import Options
    from tests.fixtures.tui import sample_state
    from tui.app import TenantScopeApp
    from tui.source import StaticSource

    count = tmp_path / "followers"
    count.write_text("3\n")
    monkeypatch.setenv("TENANTSCOPE_FOLLOWERS_FILE", str(count))
    app = TenantScopeApp(Options(), source=StaticSource(sample_state()))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()

        def header() -> str:
            r = app.query_one("#header-main").render()
            return r.plain if isinstance(r, Text) else str(r)

        assert "presenting: 3 following" in header()
        count.write_text("4\n")
        for _ in range(40):
            await pilot.pause(0.05)
            if "presenting: 4 following" in header():
                break
        assert "presenting: 4 following" in header()
    monkeypatch.delenv("TENANTSCOPE_FOLLOWERS_FILE")
    app = TenantScopeApp(Options(), source=StaticSource(sample_state()))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        r = app.query_one("#header-main").render()
        assert "presenting" not in (r.plain if isinstance(r, Text) else str(r))


def test_listen_says_what_is_wrong() -> None:
    """`--listen 127.0.0.1:0` said "expected ADDRESS:PORT" (it was one): the port is out of range."""
    from tui.serve.server import ServeError, parse_listen

    assert parse_listen("127.0.0.1:2222") == ("127.0.0.1", 2222)
    with pytest.raises(ServeError, match=r"port 0 out of range \(1-65535\)"):
        parse_listen("127.0.0.1:0")
    with pytest.raises(ServeError, match="expected ADDRESS:PORT"):
        parse_listen("127.0.0.1")
