"""Architecture contracts: probes/ never imports the UI."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_probes_never_import_textual_or_tui():
    offenders = []
    for path in (ROOT / "probes").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in ("textual", "tui"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {n}")
    assert offenders == []


def test_common_options_work_before_and_after_the_command():
    from tui.cli import build_parser
    p = build_parser()
    before = p.parse_args(["--config", "X", "--host", "h1", "check"])
    after = p.parse_args(["check", "--config", "X", "--host", "h1"])
    assert (before.config, before.host) == (after.config, after.host) == ("X", ["h1"])
    plain = p.parse_args(["check"])
    assert plain.config is None and plain.host == [] and plain.interval == 2.0
