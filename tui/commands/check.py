"""`tenantscope check`: observe once, run the catalog headless, print text/JSON/Prometheus."""

from __future__ import annotations

import argparse
import sys
import time

from probes.model import RequestState, State
from probes.requests import ActiveProbe, FactsRefresh
from probes.session import Options, Session
from probes.untrusted import visible
from tui.commands.baseline import add_baseline_arg, with_baseline, write_atomically
from tui.commands.common import UserError, observation_problems, options_from, run_to_result

NAME = "check"
HELP = "run the isolation checks headless; exit 1 on any fail"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="check the bundled demo fleet")
    p.add_argument(
        "--check", action="append", default=[], metavar="ID", help="run only this check (repeatable)"
    )
    p.add_argument(
        "--format",
        choices=("text", "json", "prometheus", "markdown"),
        default="text",
        help="text (default), json, prometheus (node_exporter textfile); markdown: with --list",
    )
    p.add_argument("--list", action="store_true", help="list the check catalog and exit")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of --format json and exit")
    p.add_argument(
        "--updates",
        action="store_true",
        help="also look up pending security updates (SW-02: runs apt/dnf, slow; cached)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="text: why and evidence for every result")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also send active reachability probes (ICMP echo, TCP connect with --probe-port) "
        "from inside each tenant namespace to every other tenant's addresses (NET-05, NET-06)",
    )
    p.add_argument(
        "--probe-port",
        action="append",
        type=int,
        default=[],
        metavar="PORT",
        help="with --probe: also try a TCP connect to PORT (repeatable)",
    )
    p.add_argument(
        "--probe-from",
        default=None,
        metavar="SOURCES",
        help="with --probe: VM sources besides the tenant namespaces, comma-separated: segment "
        "(a temporary probe port on each VM's bridge, removed after the run), guest (commands "
        "through each VM's guest agent), none (default: segment)",
    )
    add_baseline_arg(p)
    p.add_argument(
        "--fail-on",
        choices=("any", "new"),
        default="any",
        help="exit 1 on any fail (default), or only on a fail new since --baseline (alert on drift)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="write the report to FILE atomically (temp file + rename), e.g. node_exporter's textfile dir",
    )


def run(args: argparse.Namespace) -> int:
    """Observe once, run the catalog, print text/JSON/Prometheus. Exit 0 all pass, 1 any fail,
    2 the run itself failed (a host unreachable, every probe failed, bad arguments)."""
    import json
    from dataclasses import replace

    from probes.checks import report
    from probes.checks.base import load_catalog
    from probes.checks.silence import SilenceError, silences_from

    catalog = load_catalog()
    if args.schema:
        sys.stdout.write(json.dumps(report.json_schema(), indent=1) + "\n")
        return 0
    if args.list:
        sys.stdout.write(
            report.catalog_markdown(catalog) if args.format == "markdown" else report.catalog_text(catalog)
        )
        return 0
    if args.format == "markdown":
        raise UserError("--format markdown goes with --list (the catalog table)")
    wanted = [c.strip().upper() for c in args.check]
    unknown = [c for c in wanted if c not in catalog]
    if unknown:
        raise UserError(f"unknown check id {', '.join(unknown)} (see `tenantscope check --list`)")
    opts = replace(options_from(args), checks=tuple(wanted), updates=bool(args.updates))
    probe = (
        ActiveProbe(
            ports=tuple(args.probe_port) or None, sources=("namespace", *_probe_from(args.probe_from))
        )
        if args.probe
        else None
    )
    if args.probe_port and not args.probe:
        raise UserError("--probe-port goes with --probe")
    if args.probe_from is not None and not args.probe:
        raise UserError("--probe-from goes with --probe")
    from tui.readonly import env_read_only

    if (args.probe or args.updates) and (getattr(args, "read_only", False) or env_read_only()):
        raise UserError(
            "read-only: --probe and --updates change things (traffic, package manager); "
            "drop --read-only / TENANTSCOPE_READONLY=1 to use them"
        )
    try:
        silences_from(opts.config, list(catalog))
    except SilenceError as e:
        raise UserError(str(e)) from None
    if args.fail_on == "new" and not args.baseline:
        raise UserError("--fail-on new goes with --baseline FILE")
    opts = with_baseline(opts, args.baseline)
    state = run_to_result(_observe(opts, probe))
    out = {
        "text": lambda s: report.as_text(s, verbose=args.verbose),
        "json": report.as_json,
        "prometheus": report.as_prometheus,
    }[args.format]
    if args.output:
        write_atomically(args.output, out(state))
    else:
        sys.stdout.write(out(state))
    problems = observation_problems(state)
    for line in problems:  # unreachable, auth failed, host key refused: one line each
        print(f"tenantscope: {line}", file=sys.stderr)
    return max(report.exit_code(state, args.fail_on), 2 if problems else 0)


def _probe_from(given: str | None) -> list[str]:
    """`--probe-from`: segment and/or guest, or none; default segment (--probe is refused in
    read-only mode, so a probe run may add its temporary probe ports)."""
    if given is None:
        return ["segment"]
    names = [x.strip() for x in given.split(",") if x.strip()]
    bad = [x for x in names if x not in ("segment", "guest", "none")]
    if bad or not names:
        raise UserError(f"--probe-from: expected segment, guest or none (comma-separated), got {given!r}")
    return [x for x in names if x != "none"]


async def _observe(opts: Options, probe: ActiveProbe | None) -> State:
    """One observation of every probe; then, as requests to the session: the facts probe once
    more where it learned of disk images it has not stat'ed yet (VM-10 needs the domains the
    first pass found), and the active probes when asked."""
    session = Session(opts)
    try:
        await session.refresh_once()
        await session.request(FactsRefresh(stale_only=True)).result()
        if probe is not None:  # active reachability probes, only when asked
            t0 = time.monotonic()
            st = await session.request(probe).result()
            state = session.state
            if st.state != RequestState.DONE:
                raise UserError(f"active probes {st.state.value}: {st.message}")
            n = sum(len(h.reach.results) for h in state.hosts if h.reach)
            print(f"tenantscope: probed {n} pair(s) in {time.monotonic() - t0:.2f} s", file=sys.stderr)
            for h in state.hosts:
                for c in h.reach.changes if h.reach else ():
                    print(
                        f"tenantscope: {h.host.name}: {visible(c)} (removed after the run)", file=sys.stderr
                    )
                for e in h.reach.errors if h.reach else ():
                    print(f"tenantscope: {h.host.name}: {visible(e)}", file=sys.stderr)
        return session.state
    finally:
        await session.stop()
