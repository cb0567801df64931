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


# The request path (probes/requests.py): tui/ renders the State and hands typed requests to its
# source; it never runs a probe, a check pass or a log source itself, and never reaches into
# the source's internals. The modules and names below are the runners.
RUNNER_MODULES = (
    "probes.engine",
    "probes.network.prober",
    "probes.network.remote",
    "probes.network.topology",
    "probes.facts.probe",
    "probes.resources.probe",
    "probes.inventory",
    "probes.logs.sources",
    "probes.logs.service",
    "probes.logs.remote_follow",
    "probes.logs.ring",
    "probes.hosts.local",
    "probes.hosts.ssh",
    "probes.hosts.sshmux",
)
RUNNER_NAMES = ("run_checks", "FactsProbe", "probe_matrix", "probe_host", "LogService", "live_ring")
ENGINE_ATTRS = ("engine", "update_host", "probes_of", "poke", "set_request", "run_on_host", "run_probe_now")


def tui_violations(root) -> list[str]:  # type: ignore[no-untyped-def]
    import ast

    bad: list[str] = []
    for path in sorted((root / "tui").rglob("*.py")):
        rel = path.relative_to(root)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.module:
                mod = node.module
                if any(mod == m or mod.startswith(m + ".") for m in RUNNER_MODULES):
                    bad.append(f"{where} imports the runner module {mod}")
                bad += [f"{where} imports {a.name}" for a in node.names if a.name in RUNNER_NAMES]
                if mod in ("probes", "probes.network", "probes.facts", "probes.logs"):
                    bad += [
                        f"{where} imports the runner module {mod}.{a.name}"
                        for a in node.names
                        if f"{mod}.{a.name}" in RUNNER_MODULES
                    ]
            elif isinstance(node, ast.Import):
                bad += [
                    f"{where} imports the runner module {a.name}"
                    for a in node.names
                    if any(a.name == m or a.name.startswith(m + ".") for m in RUNNER_MODULES)
                ]
            elif isinstance(node, ast.Attribute):
                if node.attr in ENGINE_ATTRS:
                    bad.append(f"{where} reaches the engine: .{node.attr}")
                if node.attr == "_source" and not (
                    str(rel) == "tui/app.py" and isinstance(node.value, ast.Name) and node.value.id == "self"
                ):
                    bad.append(f"{where} touches the app's private _source")
                inner = node.value
                if (
                    node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(inner, ast.Attribute)
                    and inner.attr in ("source", "_source")
                ):
                    bad.append(f"{where} touches a private attribute of the source: .{node.attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2:
                    arg = node.args[1]
                    if isinstance(arg, ast.Constant) and arg.value in ("_source", *ENGINE_ATTRS):
                        bad.append(f"{where} {node.func.id}(..., {arg.value!r})")
    return bad


# Being moved onto the request path (issue 12 items 2 and 7); this list only shrinks.
PENDING: tuple[str, ...] = ()


def test_tui_only_renders_and_posts_requests():
    import re

    left = [v for v in tui_violations(ROOT) if not re.sub(r":\d+", "", v).startswith(PENDING)]
    assert left == []


def test_the_contract_catches_a_pane_that_runs_a_probe(tmp_path):
    """The scan above is not vacuous: a pane written the old way fails it."""
    (tmp_path / "tui" / "panes").mkdir(parents=True)
    (tmp_path / "tui" / "panes" / "old.py").write_text(
        "from probes.network import prober\n"
        "from probes.checks.base import run_checks\n"
        "from probes.facts.probe import FactsProbe\n"
        "def probe(self):\n"
        "    src = getattr(self.app, '_source')\n"
        "    src.update_host('h', lambda s: s)\n"
        "    return self.app.source._states\n"
    )
    found = " | ".join(tui_violations(tmp_path))
    for what in (
        "probes.network.prober",
        "run_checks",
        "FactsProbe",
        "'_source'",
        ".update_host",
        "._states",
    ):
        assert what in found, what


# No module-level mutable state in probes/: caches, rings and registries of observations belong
# to objects a session owns (two sessions in one process, as `serve` and the tests run them,
# share nothing). These are process-wide by nature, each with the reason.
PROCESS_WIDE = {
    "probes/checks/base.py REGISTRY": "the check catalog, registered at import (code, not observations)",
    "probes/inventory/libvirt.py _quiet_done": "libvirt's error handler is process-wide (libvirt's own)",
    "probes/logs/parsers.py _ts_cache": "a bounded memo of a pure parse of timestamp text",
    "probes/logs/parsers.py _pairs": "a bounded memo of immutable (key, value) pairs (interning)",
    "probes/logs/lazy.py _re2 (@cache)": "the re2 module, imported at the first log block (code)",
    "probes/logs/fastlog.py native (@cache)": "the native helpers (probes/logs/_fastlog.c), loaded at the first block of log lines (code)",
    "probes/logs/lazy.py patterns (@cache)": "the four constant patterns, compiled once (code)",
}
_MUTATORS = {
    "append",
    "extend",
    "insert",
    "pop",
    "popitem",
    "clear",
    "update",
    "setdefault",
    "add",
    "discard",
    "remove",
    "appendleft",
    "extendleft",
}
_CONTAINERS = {"dict", "list", "set", "defaultdict", "OrderedDict", "deque", "WeakKeyDictionary"}


def module_state(root) -> list[str]:  # type: ignore[no-untyped-def]
    """Module-level containers that a function of the module changes, `global` rebinding, and
    functools caches on module-level functions, under root/probes (standalone programs aside)."""
    import ast

    found = []
    for path in sorted((root / "probes").rglob("*.py")):
        rel = str(path.relative_to(root))
        if rel == "probes/lab/service.py":  # a program run inside lab namespaces, not a module
            continue
        tree = ast.parse(path.read_text(), rel)
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in node.decorator_list:
                    f = d.func if isinstance(d, ast.Call) else d
                    n = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    if n in ("lru_cache", "cache"):
                        found.append(f"{rel} {node.name} (@{n})")
                continue
            targets, value = (
                (node.targets, node.value)
                if isinstance(node, ast.Assign)
                else ([node.target], node.value)
                if isinstance(node, ast.AnnAssign) and node.value is not None
                else ([], None)
            )
            call = value.func if isinstance(value, ast.Call) else None
            if isinstance(value, (ast.Dict, ast.List, ast.Set)) or (
                call is not None and getattr(call, "id", getattr(call, "attr", "")) in _CONTAINERS
            ):
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in ast.walk(fn):
                hit = ""
                if isinstance(n, ast.Global):
                    hit = ",".join(n.names)
                elif isinstance(n, (ast.Assign, ast.AugAssign, ast.Delete)):
                    ts = n.targets if isinstance(n, (ast.Assign, ast.Delete)) else [n.target]
                    hit = next(
                        (
                            t.value.id
                            for t in ts
                            if isinstance(t, ast.Subscript)
                            and isinstance(t.value, ast.Name)
                            and t.value.id in names
                        ),
                        "",
                    )
                elif (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and isinstance(n.func.value, ast.Name)
                    and n.func.value.id in names
                    and n.func.attr in _MUTATORS
                ):
                    hit = n.func.value.id
                if hit:
                    found.append(f"{rel} {hit}")
    return sorted(set(found))


def test_no_module_level_mutable_state_in_probes():
    assert [s for s in module_state(ROOT) if s not in PROCESS_WIDE] == []


def test_the_module_state_scan_finds_a_registry(tmp_path):
    (tmp_path / "probes" / "logs").mkdir(parents=True)
    (tmp_path / "probes" / "logs" / "ring.py").write_text(
        "_LIVE: dict[str, object] = {}\n"
        "_CACHE = []\n"
        "def register(host, ring):\n    _LIVE[host] = ring\n"
        "def remember(x):\n    _CACHE.insert(0, x)\n"
        "from functools import lru_cache\n"
        "@lru_cache(maxsize=8)\ndef load(path):\n    return path\n"
    )
    assert module_state(tmp_path) == [
        "probes/logs/ring.py _CACHE",
        "probes/logs/ring.py _LIVE",
        "probes/logs/ring.py load (@lru_cache)",
    ]


def test_one_owner_freezes_the_heap():
    """gc.freeze and gc.unfreeze are process-wide: they had four call points in two owners
    (the app's compose, timer and unmount; the engine's start, first inventory, keeper and
    stop). One keeper class calls them (probes/heap.py); the app asks its source's keeper (a
    session's is its engine's), so a console has one."""
    import ast

    calls = []
    for top in ("probes", "tui", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text()
            if "freeze" not in text:  # (parse only the few that could call it: fast)
                continue
            for node in ast.walk(ast.parse(text, str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("freeze", "unfreeze")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "gc"
                ):
                    calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert calls and all(c.startswith("probes/heap.py:") for c in calls), calls


async def test_a_console_on_a_session_freezes_through_its_engines_keeper():
    """The app's freezing goes to the session's engine's keeper: at compose what exists is
    frozen (before the engine starts), and the engine's keeper runs while the console does."""
    import gc

    from probes.engine import Engine
    from probes.hosts.local import LocalHost
    from probes.session import Options, Session
    from tui.app import TenantScopeApp

    gc.unfreeze()
    engine = Engine([LocalHost("tsp2-h", libvirt_uri=None)], lambda h: [], lambda s: s)
    session = Session(Options(), engine=engine)
    app = TenantScopeApp(Options(), source=session)
    assert app.source.heap is session.engine.heap
    async with app.run_test() as pilot:
        await pilot.pause()
        assert gc.get_freeze_count() > 10_000 and session.engine.heap.running
    await session.stop()
    assert gc.get_freeze_count() == 0 and not session.engine.heap.running
