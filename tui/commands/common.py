"""What every command shares: the common options (defined once), the Options they make, the
one-line user errors, and a single observation.

Users never see a traceback: a UserError prints one line naming what was wrong (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from probes.model import State
from probes.session import Options, Session

log = logging.getLogger("tenantscope")


class UserError(Exception):
    """An error whose message is complete for the user (exit code 2)."""


MIN_INTERVAL = 0.1  # seconds: below this the probes would poll back to back


def interval_seconds(text: str) -> float:
    """`--interval`: a number of seconds of at least MIN_INTERVAL (0 or a negative number made
    the console poll without a pause and never show a first observation)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= MIN_INTERVAL:  # (also refuses nan)
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL} seconds, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """A number > 0 (`record --duration -5` wrote a recording of no observation, exit 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def add_common(p: argparse.ArgumentParser, *, sub: bool = True) -> None:
    """The options every command takes, before or after the command name.

    On subcommands they default to SUPPRESS, so a value given before the command
    (`tenantscope --config X check`) is not overwritten by the subcommand's default.
    """

    def dflt(value: Any) -> Any:
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
        "--interval",
        type=interval_seconds,
        default=dflt(2.0),
        metavar="SECONDS",
        help="refresh interval (default 2)",
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


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenantscope")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def load_config(args: argparse.Namespace, demo: bool) -> Any:
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
    """The session's Options from the common options; a bad config, host list or journal
    file is one line now (UserError), before anything runs."""
    demo = demo or bool(getattr(args, "demo", False))
    config = load_config(args, demo)
    from probes.logs.config import checked  # the [logs] table and --journal-*: checked here

    try:
        journal_files, journal_dir = checked(
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
        journal_files=journal_files,
        journal_dir=journal_dir,
        **fleet_options(args),
    )


def fleet_options(args: argparse.Namespace) -> dict[str, Any]:
    """SSH and fleet options, checked now so that a bad inventory is one clear line."""
    from probes.fleet import FleetError, load_targets

    kw: dict[str, Any] = dict(
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


def setup_logging(path: str | None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    if path:
        try:
            h = logging.FileHandler(path)
        except OSError as e:
            raise UserError(f"--log-file {path}: cannot write: {e.strerror or e}") from None
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.DEBUG)
    else:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.WARNING)


def observation_problems(state: State) -> list[str]:
    """One line per host that could not be observed, for the headless commands: an SSH
    connection that is not up; a host seen only through libvirt whose libvirt did not answer
    (its only source: every VM check errs, the others pass on nothing); the local host's
    libvirt when `--libvirt URI` named it and it did not answer; a journal the user named that
    could not be read (the log checks passed on nothing); every probe failed."""
    from probes.checks.base import nothing_observed
    from probes.hosts.connection import connection_problems
    from probes.model import ConnState
    from probes.untrusted import visible

    unseen = {hs.host.name for hs in state.hosts if nothing_observed(hs)}
    out = connection_problems(state, unseen)
    for hs in state.hosts:
        c = hs.connection("libvirt")
        if c is None or c.state == ConnState.UP:
            continue
        if hs.host.libvirt_uri_given:  # (a view's own URI, or --libvirt for the local host)
            why = c.detail.split("retrying: ", 1)[-1]  # (the console's "since T, retrying")
            uri = hs.host.libvirt_uri or "libvirt"
            why = why.removeprefix(f"cannot connect to {uri}: ")
            what = " not observed:" if hs.host.name in unseen else ":"
            out.append(f"{visible(hs.host.name)}{what} libvirt {visible(uri)} {c.state}: {visible(why)}")
    for hs in state.hosts:  # a journal the user named (--journal-file, --journal-dir) not read
        for src in hs.logs.sources if hs.logs is not None else ():
            if src.name.startswith("journal:") and src.state in ("absent", "failed", "unreadable"):
                out.append(f"{visible(hs.host.name)}: {visible(src.name)} {src.state}: {visible(src.detail)}")
    if not out and state.hosts and all(_all_probes_failed(h) for h in state.hosts):
        out.append("every probe failed on every host: nothing was observed")
    return out


def _all_probes_failed(hs: Any) -> bool:
    return bool(hs.probe_errors) and not hs.workloads and hs.facts is None and hs.topology is None


async def observe(opts: Options) -> State:
    """One observation of every probe (snapshot, report)."""
    session = Session(opts)
    try:
        return await session.refresh_once()
    finally:
        await session.stop()


def observe_once(opts: Options) -> State:
    return run_to_result(observe(opts))


T = TypeVar("T")


def run_to_result(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run whose task finishes holding nothing: on Python 3.11 asyncio.run's SIGINT
    clean-up (signal.getsignal) formats the repr of its task, result included -- a whole State,
    ~100 ms of CPU per host with a 2,500-rule firewall (found by bench.filters)."""
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    asyncio.run(main())
    return box[0]


def console_extras(app: Any, args: argparse.Namespace, opts: Options) -> None:
    """Theme, keymap and recording for the console (tui/theming.py, tui/keymap.py,
    probes/record.py); each refuses bad input with one line before the screen opens."""
    from tui import extras

    try:
        extras.configure(
            app, theme=getattr(args, "theme", None), config=opts.config, record=getattr(args, "record", None)
        )
    except ValueError as e:
        raise UserError(str(e)) from None
