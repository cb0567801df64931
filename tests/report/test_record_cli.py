"""The record, report and replay commands end to end: record the demo fleet (real libvirt test
driver), report from the recording, and replay it in a real terminal (tmux) at 80x24 with
TERM=xterm-256color and TERM=xterm (16 colours): header, runbook keys, report key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import record
from tests.helpers import REPO, needs_tool
from tui.cli import main

ROOT = REPO


@pytest.fixture(scope="module")
def demo_recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "demo.tsr"
    assert main(["record", "--demo", "-o", str(out), "--duration", "1.5", "--interval", "0.5"]) == 0
    return out


def test_record_then_report_from_it(demo_recording, tmp_path, capsys):
    rec = record.load(demo_recording)
    assert rec.problem == "" and rec.states and rec.header.source == "demo"
    assert rec.states[-1].hosts[0].host.name == "demo-hv1"
    assert main(["report", "--from", str(demo_recording), "-o", str(tmp_path)]) == 0
    doc = json.loads(next(tmp_path.glob("tenantscope-report-demo-hv1-*.json")).read_text())
    assert any(f["check_id"] == "VM-09" for f in doc["findings"])  # derived again on load


def test_record_refuses_an_unwritable_path(capsys):
    assert main(["record", "--demo", "-o", "/nonexistent-dir/x.tsr", "--duration", "0.1"]) == 2
    assert "/nonexistent-dir/x.tsr: cannot write" in capsys.readouterr().err


@needs_tool("tmux")
@pytest.mark.parametrize("term", ["xterm-256color", "xterm"])
def test_replay_in_tmux(demo_recording, tmp_path, term):
    sock = f"tsj-{os.getpid()}-{term}"
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    cmd = f"cd {tmp_path} && exec {sys.executable} -m tui.cli replay {demo_recording}"
    env = {
        **os.environ,
        "TERM": term,
        "PYTHONPATH": str(ROOT),
        "XDG_STATE_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    subprocess.run(tmux + ["new-session", "-d", "-x", "80", "-y", "24", "-s", "r", cmd], check=True, env=env)

    def screen_with(text: str) -> str:
        end = time.monotonic() + 30
        screen = ""
        while time.monotonic() < end:
            screen = subprocess.run(
                tmux + ["capture-pane", "-p", "-t", "r"], capture_output=True, text=True
            ).stdout
            if text in screen:
                break
            time.sleep(0.2)
        return screen

    try:
        screen_with("replay of demo-hv1")
        screen = screen_with("1 Tenants")
        assert "replay of demo-hv1" in screen and "1 Tenants" in screen  # tabs at 80x24
        subprocess.run(tmux + ["send-keys", "-t", "r", "L"], check=True)
        screen_with("Review logs since")
        subprocess.run(tmux + ["send-keys", "-t", "r", "Enter"], check=True)
        screen = screen_with("✓ done")
        assert "Runbook" in screen and "Review logs" in screen and "✓ done" in screen
        subprocess.run(tmux + ["send-keys", "-t", "r", "e"], check=True)
        end = time.monotonic() + 30
        while time.monotonic() < end and len(list(tmp_path.glob("tenantscope-report-*"))) < 3:
            time.sleep(0.2)
        assert sorted(p.suffix for p in tmp_path.glob("tenantscope-report-*")) == [".json", ".md", ".svg"]
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
