"""Beyond one console: tenantscope as a probe on every host, Prometheus and Alertmanager as the
distribution (DESIGN.md, "Scaling out"). This package holds the files that set that up:

- `tenantscope-check.service` + `.timer`: run `tenantscope check --format prometheus` into
  node_exporter's textfile collector directory (written atomically by `check --output`);
- `tenantscope.rules.yml`: Prometheus alerting rules (failing checks by severity, hosts whose
  check stopped running, findings new since a baseline, probes failing).

`tenantscope alerting install` writes the units; `tenantscope alerting rules` prints the rules.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

UNIT = "tenantscope-check"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's node_exporter default


def resource(name: str) -> str:
    # imported here: every start imports this module (the alerting command's defaults), and
    # importlib.resources brings tempfile, zipfile and more (~0.5 MiB) that only this needs
    from importlib.resources import files

    return (files("probes.alerting") / name).read_text()


def rules() -> str:
    return resource("tenantscope.rules.yml")


@dataclass(frozen=True)
class Units:
    service: str
    timer: str


def units(
    *,
    executable: str | tuple[str, ...],
    textfile_dir: str = TEXTFILE_DIR,
    interval: str = "5min",
    baseline: str | None = None,
    config: str | None = None,
) -> Units:
    """The service and timer with this machine's paths filled in (argv joined with shlex)."""
    command = [executable] if isinstance(executable, str) else list(executable)  # (a program and its words)
    argv = [*command, "check", "--format", "prometheus", "--output", f"{textfile_dir}/tenantscope.prom"]
    if baseline:
        argv += ["--baseline", baseline]
    if config:
        argv += ["--config", config]
    service = resource(f"{UNIT}.service").replace("@EXEC@", shlex.join(argv))
    timer = resource(f"{UNIT}.timer").replace("@INTERVAL@", interval)
    return Units(service, timer)


def install(u: Units, unit_dir: str | Path) -> list[Path]:
    """Write the two unit files (atomically); returns their paths."""
    d = Path(unit_dir)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in ((f"{UNIT}.service", u.service), (f"{UNIT}.timer", u.timer)):
        p = d / name
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(p)
        out.append(p)
    return out
