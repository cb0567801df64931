"""The log sources over a real SSH connection (OpenSSH sshd on 127.0.0.1): a file followed
through rename, truncation and re-creation, and a journal file, exactly as locally."""

from __future__ import annotations

import asyncio

from probes.logs import sources
from probes.logs.sources import JournalSpec
from tests.fixtures.journal import journal_remote, write_journal
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401 - fixture
from tests.logs.test_logs_sources import CollectSink, run_scenario, wait_for


async def test_file_followed_over_ssh_loses_and_repeats_nothing(tmp_path, sshd):
    host = ssh_host(sshd)
    try:

        async def follow(path, h, sink):
            await sources.follow_file_stream(path, h, sink, start_lines=3, interval=0.02)

        sink = await run_scenario(tmp_path, follow, host=host)
        assert any(s[2] == "" and s[1].value == "following" for s in sink.states)  # python3 follower
    finally:
        await host.close()


@journal_remote
async def test_saved_journal_followed_over_ssh(tmp_path, sshd):
    j = tmp_path / "saved.journal"
    write_journal(j, [{"MESSAGE": f"m{i}", "PRIORITY": "3"} for i in range(3)])
    host = ssh_host(sshd)
    sink = CollectSink()
    task = asyncio.create_task(sources.follow_journal(JournalSpec(files=(str(j),), lines=10), host, sink))
    try:
        await wait_for(lambda: len(sink.events) >= 3, "journal entries over ssh")
        write_journal(j, [{"MESSAGE": b"live \x1b[2J", "PRIORITY": "4"}])
        await wait_for(lambda: len(sink.events) >= 4, "an appended entry over ssh")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await host.close()
    assert sink.messages == ["m0", "m1", "m2", "live \x1b[2J"]
    assert [e.severity for e in sink.events] == ["err"] * 3 + ["warning"]


async def test_logs_service_over_ssh(tmp_path, sshd):
    """The whole service on an SSH host: globs expanded remotely (find), files followed by
    the remote follower, entries in the engine's State."""
    from probes.engine import Engine
    from probes.logs.service import LogService
    from probes.logs.sources import LogsConfig

    (tmp_path / "libvirt" / "qemu").mkdir(parents=True)
    (tmp_path / "app.log").write_text("Nov 27 10:00:00 hv1 app[1]: hello\n")
    (tmp_path / "libvirt" / "qemu" / "acme-web.log").write_text(
        "2026-11-27T10:00:11.045615Z qemu-system-x86_64: KVM internal error. Suberror: 1\n"
    )
    assert await sources.expand(str(tmp_path / "libvirt" / "qemu" / "*.log"), ssh_host(sshd)) == [
        str(tmp_path / "libvirt" / "qemu" / "acme-web.log")
    ]
    host = ssh_host(sshd)
    svc = LogService(
        LogsConfig(
            files=(str(tmp_path / "app.log"), str(tmp_path / "libvirt" / "qemu" / "*.log")),
            journal=False,
            libvirt_events=False,
        )
    )
    engine = Engine([host], lambda h: [svc.probe()])
    engine.subscribe(svc.observe)  # as the session wires it
    try:
        st = await engine.refresh_once()
        lv = st.hosts[0].logs
        got = {e.message: e.tags for e in lv.events if e.source.startswith("file:")}
        assert got == {"hello": (), "qemu-system-x86_64: KVM internal error. Suberror: 1": ("qemu-error",)}
        assert {s.state.value for s in lv.sources} == {"following"}
        with open(tmp_path / "app.log", "a") as f:
            f.write("Nov 27 10:00:01 hv1 app[1]: live over ssh\n")
        engine.start()
        await wait_for(
            lambda: any(e.message == "live over ssh" for e in svc.entries(host.name, 0).entries),
            "a live line over ssh",
        )
    finally:
        await engine.stop()
