"""The log sources over a real SSH connection (OpenSSH sshd on 127.0.0.1): a file followed
through rename, truncation and re-creation, and a journal file, exactly as locally."""

from __future__ import annotations

import asyncio

from probes.logs import sources
from probes.logs.sources import JournalSpec
from tests.fixtures.journal import journal_remote, write_journal
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401 - fixture
from tests.test_logs_sources import CollectSink, run_scenario, wait_for


async def test_file_followed_over_ssh_loses_and_repeats_nothing(tmp_path, sshd):  # noqa: F811
    host = ssh_host(sshd)
    try:
        async def follow(path, h, sink):  # noqa: ANN001, ANN202
            await sources.follow_file_stream(path, h, sink, start_lines=3, interval=0.02)
        sink = await run_scenario(tmp_path, follow, host=host)
        assert any(s[2] == "" and s[1].value == "following" for s in sink.states)  # python3 follower
    finally:
        await host.close()


@journal_remote
async def test_saved_journal_followed_over_ssh(tmp_path, sshd):  # noqa: F811
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
