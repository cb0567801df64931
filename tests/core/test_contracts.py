"""Architecture contracts: probes/ never imports the UI."""

import subprocess
import sys

from tests.helpers import REPO

ROOT = REPO

# Run in a fresh interpreter: the import check must see only what probes/ pulls in, and
# CPython 3.11's ast module has raised SystemError here after the TUI tests ran in-process.
_SCAN = r"""
import ast, importlib, pathlib, sys
root = pathlib.Path(sys.argv[1])
STANDALONE = {"probes.lab.service"}  # a program run inside lab namespaces, not a module
bad = []
for path in sorted((root / "probes").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        bad += [f"{path.relative_to(root)}:{node.lineno} imports {n}" for n in names
                if n.split(".")[0] in ("textual", "tui")]
    mod = ".".join(path.relative_to(root).with_suffix("").parts)
    if mod.endswith("__main__") or mod in STANDALONE:
        continue
    importlib.import_module(mod.removesuffix(".__init__"))
bad += [f"importing probes loaded {m}" for m in sys.modules if m.split(".")[0] in ("textual", "tui")]
print("\n".join(bad))
"""


def test_probes_never_import_textual_or_tui():
    r = subprocess.run(
        [sys.executable, "-c", _SCAN, str(ROOT)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_common_options_work_before_and_after_the_command():
    from tui.cli import build_parser

    p = build_parser()
    before = p.parse_args(["--config", "X", "--host", "h1", "check"])
    after = p.parse_args(["check", "--config", "X", "--host", "h1"])
    assert (before.config, before.host) == (after.config, after.host) == ("X", ["h1"])
    plain = p.parse_args(["check"])
    assert plain.config is None and plain.host == [] and plain.interval == 2.0


def test_no_tracked_file_names_a_path_of_this_machine():
    """Data is found relative to the repository: a clone elsewhere (CI, a user's home) works."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split("\0")
    # spelled in two pieces so this file does not name the path itself
    needles = ("/" + "work/",)
    bad = []
    for name in filter(None, files):
        path = ROOT / name
        if path.suffix in (".svg", ".png") or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        bad += [
            f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if any(n in line for n in needles)
        ]
    assert bad == [], "absolute paths of this machine in tracked files: " + ", ".join(bad)
