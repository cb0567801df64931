"""`tenantscope` entry point: argparse, logging, and the subcommands.

Users never see a traceback: errors print one line naming what was wrong and exit 2; the
details go to the debug log when `--log-file` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence

from probes.model import RequestState
from probes.session import Options, make_engine
from probes.untrusted import visible

log = logging.getLogger("tenantscope")


class UserError(Exception):
    """An error whose message is complete for the user (exit code 2)."""


def _common(p: argparse.ArgumentParser, *, sub: bool = True) -> None:
    """The options every command takes, before or after the command name.

    On subcommands they default to SUPPRESS, so a value given before the command
    (`tenantscope --config X check`) is not overwritten by the subcommand's default.
    """

    def dflt(value):
        return argparse.SUPPRESS if sub else value

    p.add_argument(
        "--libvirt", default=dflt(None), metavar="URI", help="libvirt URI (default qemu:///system; read-only)"
    )
    p.add_argument(
        "--config",
        default=dflt(None),
        metavar="FILE",
        help="config file (default $XDG_CONFIG_HOME/tenantscope/config.toml)",
    )
    p.add_argument(
        "--host",
        action="append",
        default=dflt([]),
        metavar="TARGET",
        help="watch a remote host over SSH: [ssh://][user@]host[:port] (repeatable)",
    )
    p.add_argument(
        "--hosts-file", default=dflt(None), metavar="FILE", help="watch the SSH targets in FILE, one a line"
    )
    p.add_argument(
        "--inventory",
        default=dflt(None),
        metavar="FILE",
        help="watch the hosts of an Ansible inventory (INI or YAML)",
    )
    p.add_argument(
        "--limit",
        default=dflt(None),
        metavar="PATTERN",
        help="only these inventory groups or hosts (comma-separated)",
    )
    p.add_argument(
        "--known-hosts",
        default=dflt(None),
        metavar="FILE",
        help="SSH known_hosts file (default ~/.ssh/known_hosts)",
    )
    p.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        default=dflt(False),
        help="trust and record the key of a host not yet in known_hosts (a changed key is always refused)",
    )
    p.add_argument(
        "--identity",
        action="append",
        default=dflt([]),
        metavar="FILE",
        help="SSH private key file (repeatable; default: agent, ~/.ssh/config, ~/.ssh/id_*)",
    )
    p.add_argument(
        "--ssh-config",
        default=dflt(None),
        metavar="FILE",
        help="OpenSSH client config (default ~/.ssh/config)",
    )
    p.add_argument(
        "--interval", type=float, default=dflt(2.0), metavar="SECONDS", help="refresh interval (default 2)"
    )
    p.add_argument(
        "--log-file", default=dflt(None), metavar="FILE", help="write tenantscope's own debug log here"
    )
    p.add_argument(
        "--journal-file",
        action="append",
        default=dflt([]),
        metavar="FILE",
        help="read this saved journal file instead of the host's journal (repeatable)",
    )
    p.add_argument(
        "--journal-dir",
        default=dflt(None),
        metavar="DIR",
        help="read the saved journal files in DIR instead of the host's journal",
    )
    p.add_argument(
        "--read-only",
        action="store_true",
        default=dflt(False),
        help="no action that changes anything: no active probes, no update lookups "
        "(also TENANTSCOPE_READONLY=1; always on for replay)",
    )
    p.add_argument(
        "--theme",
        default=dflt(None),
        metavar="NAME",
        help="colour theme (dark, light, high-contrast, colour-blind, monochrome or a user theme); remembered",
    )
    p.add_argument(
        "--record",
        default=dflt(None),
        metavar="FILE",
        help="console: also record what is observed to FILE (replay with `tenantscope replay FILE`)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenantscope")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tenantscope",
        description="Find out whether tenants on Linux virtualization hosts are still isolated.",
    )
    _common(p, sub=False)
    p.add_argument("--version", action="version", version=f"tenantscope {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="open the console (the default)")
    _common(r)
    d = sub.add_parser("demo", help="open the console on the bundled demo fleet (libvirt test driver)")
    _common(d)

    c = sub.add_parser("check", help="run the isolation checks headless; exit 1 on any fail")
    _common(c)
    c.add_argument("--demo", action="store_true", help="check the bundled demo fleet")
    c.add_argument(
        "--check", action="append", default=[], metavar="ID", help="run only this check (repeatable)"
    )
    c.add_argument(
        "--format",
        choices=("text", "json", "prometheus", "markdown"),
        default="text",
        help="text (default), json, prometheus (node_exporter textfile); markdown: with --list",
    )
    c.add_argument("--list", action="store_true", help="list the check catalog and exit")
    c.add_argument("--schema", action="store_true", help="print the JSON Schema of --format json and exit")
    c.add_argument(
        "--updates",
        action="store_true",
        help="also look up pending security updates (SW-02: runs apt/dnf, slow; cached)",
    )
    c.add_argument("-v", "--verbose", action="store_true", help="text: why and evidence for every result")
    c.add_argument(
        "--probe",
        action="store_true",
        help="also send active reachability probes (ICMP echo, TCP connect with --probe-port) "
        "from inside each tenant namespace to every other tenant's addresses (NET-05, NET-06)",
    )
    c.add_argument(
        "--probe-port",
        action="append",
        type=int,
        default=[],
        metavar="PORT",
        help="with --probe: also try a TCP connect to PORT (repeatable)",
    )
    c.add_argument(
        "--probe-from",
        default=None,
        metavar="SOURCES",
        help="with --probe: VM sources besides the tenant namespaces, comma-separated: segment "
        "(a temporary probe port on each VM's bridge, removed after the run), guest (commands "
        "through each VM's guest agent), none (default: segment)",
    )

    s = sub.add_parser("snapshot", help="write the observed state as JSON")
    _common(s)
    s.add_argument("--demo", action="store_true", help="snapshot the bundled demo fleet")
    s.add_argument("-o", "--output", required=True, metavar="FILE")

    rp = sub.add_parser("report", help="write an incident report (Markdown + JSON; secrets scrubbed)")
    _common(rp)
    rp.add_argument("--demo", action="store_true", help="report on the bundled demo fleet")
    rp.add_argument("-o", "--output-dir", default=".", metavar="DIR", help="where to write (default .)")
    rp.add_argument(
        "--from",
        dest="from_file",
        default=None,
        metavar="FILE",
        help="report on a saved snapshot (JSON) or recording (.tsr, its last point) instead of observing",
    )

    rec = sub.add_parser("record", help="record what is observed to a file, for `tenantscope replay`")
    _common(rec)
    rec.add_argument("--demo", action="store_true", help="record the bundled demo fleet")
    rec.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the recording (e.g. incident.tsr)"
    )
    rec.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: Ctrl-C)",
    )
    rec.add_argument(
        "--max-size", type=float, default=64.0, metavar="MIB", help="stop at this size (default 64 MiB)"
    )

    rpl = sub.add_parser("replay", help="open the console on a recording (read-only)")
    _common(rpl)
    rpl.add_argument("file", metavar="FILE", help="a recording made by `tenantscope record` or --record")
    rpl.add_argument("--speed", type=float, default=1.0, metavar="X", help="playback speed (default 1)")

    _lab_parser(sub)  # tenantscope lab ... (probes/lab)
    _serve_parser(sub)  # tenantscope serve ... (tui/serve)
    return p


def _lab_parser(sub) -> None:  # type: ignore[no-untyped-def]
    lab = sub.add_parser("lab", help="build, break and remove the training lab on this machine (root)")
    lab.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="the lab's state directory (default $TENANTSCOPE_LAB_DIR or /run/tenantscope-lab)",
    )
    ls = lab.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    u = ls.add_parser(
        "up", help="build the lab: tenants as namespaces on their own bridges, services, limits"
    )
    u.add_argument("--tenants", type=int, default=3, metavar="N", help="number of tenants (default 3)")
    u.add_argument(
        "--ovs",
        choices=("auto", "yes", "no"),
        default="auto",
        help="put the third tenant on a private Open vSwitch (default: where OVS is installed)",
    )
    u.add_argument(
        "--vms",
        choices=("auto", "yes", "no"),
        default="auto",
        help="tiny diskless VMs on two tenants' bridges (default: where libvirtd + QEMU run)",
    )
    ls.add_parser("down", help="remove everything the lab created (and nothing else)")
    st = ls.add_parser("status", help="what the lab has, what is broken, what is missing")
    st.add_argument("--json", action="store_true")
    b = ls.add_parser("break", help="inject a fault")
    b.add_argument("fault", metavar="FAULT")
    f = ls.add_parser("fix", help="remove a fault")
    f.add_argument("fault", metavar="FAULT")
    ls.add_parser("list-faults", help="the faults and the findings each produces")


def _serve_parser(sub) -> None:  # type: ignore[no-untyped-def]
    v = sub.add_parser(
        "serve", help="serve the console to SSH clients (public keys only; read-only by default)"
    )
    _common(v)
    v.add_argument("--listen", default="127.0.0.1:2222", metavar="ADDR:PORT", help="default 127.0.0.1:2222")
    v.add_argument(
        "--host-key",
        default=None,
        metavar="FILE",
        help="the server's SSH host key (default: $XDG_STATE_HOME/tenantscope/ssh_host_ed25519_key, "
        "created on first use)",
    )
    v.add_argument(
        "--authorized-keys",
        required=True,
        metavar="FILE",
        help="OpenSSH authorized_keys; option `tenantscope-write` lets a key change things",
    )
    v.add_argument(
        "--presenter",
        action="store_true",
        help="one session drives (the first write key), everyone else follows its screen",
    )
    v.add_argument(
        "--max-sessions", type=int, default=10, metavar="N", help="concurrent sessions (default 10)"
    )
    v.add_argument("--demo", action="store_true", help="serve the bundled demo fleet")
    v.add_argument(
        "--app-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for every session's tenantscope (repeatable)",
    )


def _load_config(args: argparse.Namespace, demo: bool):
    """The config file, parsed once per command; a bad one is a one-line error (exit 2).
    The demo fleet ignores the user's default config (it describes their own fleet)."""
    from probes.config import Config, ConfigError, load

    if demo and not args.config:
        return Config()
    try:
        return load(args.config)
    except ConfigError as e:
        raise UserError(str(e)) from None


def options_from(args: argparse.Namespace, *, demo: bool = False) -> Options:
    demo = demo or bool(getattr(args, "demo", False))
    config = _load_config(args, demo)
    from probes.logs.service import logs_extra  # [logs] table and --journal-*: checked here

    try:
        extra = logs_extra(
            config,
            getattr(args, "journal_file", []) or [],
            getattr(args, "journal_dir", None),
            local=not args.host,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    return Options(
        libvirt_uri=args.libvirt,
        demo=demo,
        config=config,
        config_path=args.config,
        hosts=tuple(args.host),
        interval=args.interval,
        checks=tuple(getattr(args, "check", []) or ()),
        extra=extra,
        **_fleet_options(args),
    )


def _fleet_options(args: argparse.Namespace) -> dict:
    """SSH and fleet options, checked now so that a bad inventory is one clear line."""
    from probes.fleet import FleetError, load_targets

    kw = dict(
        hosts_file=getattr(args, "hosts_file", None),
        inventory=getattr(args, "inventory", None),
        limit=getattr(args, "limit", None),
        known_hosts=getattr(args, "known_hosts", None),
        accept_new_host_keys=bool(getattr(args, "accept_new_host_keys", False)),
        identity=tuple(getattr(args, "identity", None) or ()),
        ssh_config=getattr(args, "ssh_config", None),
    )
    try:
        if args.host or kw["hosts_file"] or kw["inventory"]:
            targets = load_targets(tuple(args.host), kw["hosts_file"], kw["inventory"], kw["limit"])
            from probes.hosts.libvirt_uri import hostless_for_remote_targets

            problem = hostless_for_remote_targets(getattr(args, "libvirt", None))
            if problem and not any(t.local for t in targets):
                raise UserError(problem)
    except FleetError as e:
        raise UserError(str(e)) from None
    for f in kw["identity"] + ((kw["ssh_config"],) if kw["ssh_config"] else ()):
        if not os.path.isfile(f):
            raise UserError(f"{f}: no such file")
    return kw


def _setup_logging(path: str | None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    if path:
        h = logging.FileHandler(path)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.DEBUG)
    else:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.WARNING)


async def _observe_once(opts: Options):
    engine = make_engine(opts)
    try:
        return await engine.refresh_once()
    finally:
        await engine.stop()


def cmd_check(args: argparse.Namespace) -> int:
    """Observe once, run the catalog, print text/JSON/Prometheus. Exit 0 all pass, 1 any fail,
    2 the run itself failed (a host unreachable, every probe failed, bad arguments)."""
    import json
    from dataclasses import replace as _replace

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
    opts = options_from(args)
    opts = _replace(
        opts,
        checks=tuple(wanted),
        extra=opts.extra
        + ((("updates", "1"),) if args.updates else ())
        + ((("probe", ",".join(map(str, args.probe_port))),) if args.probe else ())
        + ((("probe_from", ",".join(_probe_from(args.probe_from))),) if args.probe else ()),
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
    state = asyncio.run(_observe_for_check(opts))
    out = {
        "text": lambda s: report.as_text(s, verbose=args.verbose),
        "json": report.as_json,
        "prometheus": report.as_prometheus,
    }[args.format]
    sys.stdout.write(out(state))
    from probes.hosts.connection import connection_problems

    problems = connection_problems(state)
    for line in problems:  # unreachable, auth failed, host key refused: one line each
        print(f"tenantscope: {line}", file=sys.stderr)
    if not problems and state.hosts and all(_all_probes_failed(h) for h in state.hosts):
        problems = ["every probe failed on every host"]
        print("tenantscope: every probe failed on every host: nothing was observed", file=sys.stderr)
    return max(report.exit_code(state), 2 if problems else 0)


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


def _all_probes_failed(hs) -> bool:  # type: ignore[no-untyped-def]
    return bool(hs.probe_errors) and not hs.workloads and hs.facts is None and hs.topology is None


async def _observe_for_check(opts: Options):
    """One observation of every probe; then, as requests to the session: the facts probe once
    more where it learned of disk images it has not stat'ed yet (VM-10 needs the domains the
    first pass found), and the active probes when asked."""
    from probes.requests import ActiveProbe, FactsRefresh
    from probes.session import Session

    session = Session(opts)
    try:
        await session.refresh_once()
        await session.request(FactsRefresh(stale_only=True)).result()
        if "probe" in dict(opts.extra):  # active reachability probes, only when asked
            given = dict(opts.extra)["probe"]
            ports = tuple(int(p) for p in given.split(",") if p) or None
            vm_sources = tuple(s for s in dict(opts.extra).get("probe_from", "").split(",") if s)
            t0 = time.monotonic()
            st = await session.request(ActiveProbe(ports=ports, sources=("namespace", *vm_sources))).result()
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


def cmd_snapshot(args: argparse.Namespace) -> int:
    from probes import snapshot

    state = asyncio.run(_observe_once(options_from(args)))
    try:
        snapshot.save(state, args.output)
    except OSError as e:
        raise UserError(f"{args.output}: cannot write: {e.strerror}") from None
    print(
        f"wrote {args.output}: {len(state.hosts)} host(s), {len(state.workloads())} workload(s), "
        f"{len(state.findings)} check result(s)"
    )
    return 0


def cmd_run(args: argparse.Namespace, *, demo: bool = False) -> int:
    from tui.app import TenantScopeApp
    from tui.readonly import env_read_only

    opts = options_from(args, demo=demo)
    app = TenantScopeApp(opts, read_only=bool(getattr(args, "read_only", False)) or env_read_only())
    _tui_extras(app, args, opts)
    app.run()
    return app.return_code or 0


def _tui_extras(app, args: argparse.Namespace, opts: Options) -> None:  # type: ignore[no-untyped-def]
    """Theme, keymap and recording for the console (tui/themes_user.py, tui/keymap.py,
    probes/record.py); each refuses bad input with one line before the screen opens."""
    try:
        from tui import extras
    except ImportError:
        return
    try:
        extras.configure(
            app, theme=getattr(args, "theme", None), config=opts.config, record=getattr(args, "record", None)
        )
    except ValueError as e:
        raise UserError(str(e)) from None


def cmd_report(args: argparse.Namespace) -> int:
    """Observe once (or load --from), then write the Markdown and JSON report."""
    from probes.report.build import build
    from tui.report import write_report

    if args.from_file:
        state = _load_any(args.from_file)
    else:
        state = asyncio.run(_observe_once(options_from(args)))
    try:
        paths = write_report(state, {}, args.output_dir)
    except OSError as e:
        raise UserError(f"{args.output_dir}: cannot write the report: {e.strerror or e}") from None
    r = build(state)
    print(f"wrote {', '.join(map(str, paths))}: {len(r.findings)} finding(s) on {len(r.hosts)} host(s)")
    return 0


def _load_any(path: str):  # type: ignore[no-untyped-def]
    """A snapshot (JSON) or a recording's last good point."""
    from probes import record, snapshot

    try:
        if record.is_recording(path):
            rec = record.load(path)
            if rec.problem:
                print(f"tenantscope: {rec.problem}", file=sys.stderr)
            if not rec.states:
                raise UserError(f"{path}: the recording holds no observation")
            from probes.session import make_deriver

            return make_deriver(Options())(rec.states[-1])  # the same derive step as live
        return snapshot.load(path)
    except (snapshot.SnapshotError, record.RecordError) as e:
        raise UserError(str(e)) from None


def cmd_record(args: argparse.Namespace) -> int:
    from probes import record

    opts = options_from(args)
    try:
        n, size, why = asyncio.run(
            record.record_engine(
                make_engine(opts),
                args.output,
                duration=args.duration,
                max_bytes=int(args.max_size * 1024 * 1024),
            )
        )
    except record.RecordError as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        return 130
    print(f"wrote {args.output}: {n} observation(s), {size / 1024:.1f} KiB ({why})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from probes import record
    from tui.replay import ReplaySource, replay_app_class

    try:
        rec = record.load(args.file)
    except record.RecordError as e:
        raise UserError(str(e)) from None
    if not rec.states:
        raise UserError(f"{args.file}: {rec.problem or 'the recording holds no observation'}")
    opts = options_from(args, demo=False)
    source = ReplaySource(rec, opts, speed=args.speed)
    app = replay_app_class()(opts, source=source, read_only=True)  # replay: never changes anything
    _tui_extras(app, args, opts)
    if rec.problem:
        app.call_later(app.notify, rec.problem, title="recording", severity="warning", timeout=15)
    app.run()
    return app.return_code or 0


def cmd_lab(args: argparse.Namespace) -> int:
    from probes.lab.command import run
    from probes.lab.record import LabError

    try:
        return run(
            args.lab_action,
            fault=getattr(args, "fault", ""),
            tenants=getattr(args, "tenants", 3),
            ovs=getattr(args, "ovs", "auto"),
            vms=getattr(args, "vms", "auto"),
            directory=args.dir,
            as_json=getattr(args, "json", False),
        )
    except LabError as e:
        raise UserError(f"lab: {e}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from tui.serve import ServeError, serve_main

    options_from(args, demo=args.demo)  # a bad config or host list: one line now, not in every session
    try:
        return serve_main(args)
    except ServeError as e:
        raise UserError(f"serve: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_file)
    try:
        match args.command:
            case "check":
                return cmd_check(args)
            case "snapshot":
                return cmd_snapshot(args)
            case "demo":
                return cmd_run(args, demo=True)
            case "lab":
                return cmd_lab(args)
            case "report":
                return cmd_report(args)
            case "record":
                return cmd_record(args)
            case "replay":
                return cmd_replay(args)
            case "serve":
                return cmd_serve(args)
            case _:
                return cmd_run(args)
    except UserError as e:
        print(f"tenantscope: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the last line of defence: no tracebacks for users
        log.exception("unexpected error")
        hint = (
            f" (details in {args.log_file})" if args.log_file else " (run with --log-file FILE for details)"
        )
        print(f"tenantscope: error: {type(e).__name__}: {e}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
