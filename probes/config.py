"""The user's config file: tenants, the reachability policy, the prefix rule, and other areas'
tables, read once with tomllib into frozen dataclasses.

Where: `--config FILE`, else `$XDG_CONFIG_HOME/tenantscope/config.toml` (default
`~/.config/tenantscope/config.toml`). A missing default file means an empty config; a missing
explicit file is an error. Every unknown key and every bad value is refused with a
`ConfigError` naming the file, the line and the key (tomllib gives no line numbers for keys,
so the line is found by scanning the text): a typo must not silently place a tenant wrongly.

```toml
[[tenant]]
name = "acme"
domains = ["acme-*"]                 # libvirt domain name globs
metadata = [{namespace = "http://example.com/ns", path = "tenant/@id", value = "acme"}]
netns = ["acme-*"]                   # network namespace name globs
cgroups = ["/machine.slice/*acme*"]  # cgroup path globs (containers)
containers = ["acme-*", "com.example.tenant=acme"]  # container name globs, or label KEY=GLOB

[policy]
allow = [["acme", "globex"], ["acme", "initech", [443, 8443]]]

[prefix]
separator = "-"    # tenant = the part of a name before the first separator
enabled = true
generated = ["instance-*"]  # names never read as tenant-prefix (default: probes/generated_names.py)
```

[network]
probe_ports = [22, 443]   # active probes also try a TCP connect to these
probe_timeout = 0.5       # seconds per probe (0.05-10)
ovsdb = "unix:/run/x/db.sock"  # a private OVS database to read (the training lab runs its own)
[network.addresses]
acme-web-1 = ["10.0.0.5"] # addresses of domains the host cannot see (IPv4)

[logs]                    # probes/logs/config.py LogsConfig: files, journal, journal_files,
                          # journal_directory, since, libvirt_events, start_lines, ring, view,
                          # native_files
```

`[network]` and `[logs]` are typed here (NetworkSettings, LogsConfig) with the same
file:line:key errors. Tables other areas own (`[keymap]`, `[checks]`, ...) are accepted as
opaque data here and validated by their owners (`Config.table(name)`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from probes.logs.config import LogsConfig

# the one Policy/AllowRule: the network area's (what the checks and the prober judge by)
from probes.network.model import AllowRule, Policy

# Top-level tables owned by other areas: accepted here, read with Config.table().
OPAQUE_TABLES = frozenset({"keymap"})  # tui/keymap.py checks it against the bindings


class ConfigError(Exception):
    """A config problem, with a message complete for the user: FILE:LINE: KEY: what is wrong."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        self.file, self.line, self.key, self.message = file, line, key, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class MetadataSelector:
    """Matches a libvirt <metadata> element (or, with a final `@attr`, one of its attributes)."""

    path: str  # "instance/owner/project" or "tenant/@id" (local names, '/'-separated)
    value: str = "*"  # glob on the element text or the attribute value
    namespace: str = ""  # the element's XML namespace URI; "" = any

    @property
    def attr(self) -> str:
        last = self.path.rsplit("/", 1)[-1]
        return last[1:] if last.startswith("@") else ""

    @property
    def element(self) -> str:
        return self.path.rsplit("/", 1)[0] if self.attr else self.path


@dataclass(frozen=True)
class TenantRule:
    name: str
    domains: tuple[str, ...] = ()
    metadata: tuple[MetadataSelector, ...] = ()
    netns: tuple[str, ...] = ()
    cgroups: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()  # name globs, or "label=glob"


@dataclass(frozen=True)
class PrefixRule:
    separator: str = "-"
    enabled: bool = True
    generated: tuple[str, ...] | None = None  # globs of made-up names; None: the built-in rules


@dataclass(frozen=True)
class NetworkSettings:
    """The `[network]` table: active probes, a private OVS database, addresses libvirt lacks."""

    probe_ports: tuple[int, ...] = ()
    probe_timeout: float = 0.5
    ovsdb: str = ""
    addresses: tuple[tuple[str, tuple[str, ...]], ...] = ()  # domain name -> IPv4 addresses


@dataclass(frozen=True)
class Silence:
    """`[checks] silence`: a check's warnings about only these tenants are accepted."""

    check_id: str
    tenants: tuple[str, ...]
    line: int = 0  # where it is written (the catalog is checked later, by probes/checks/silence.py)


@dataclass(frozen=True)
class Config:
    path: str = ""  # the file it came from; "" when none
    tenants: tuple[TenantRule, ...] = ()
    policy: Policy = field(default_factory=Policy)
    prefix: PrefixRule = PrefixRule()
    theme: str = ""
    network: NetworkSettings = field(default_factory=NetworkSettings)
    logs: LogsConfig = field(default_factory=LogsConfig)
    silences: tuple[Silence, ...] = ()  # [checks] silence
    opaque: tuple[tuple[str, Any], ...] = ()  # (table name, read-only data) for other areas

    def table(self, name: str) -> Mapping[str, Any]:
        """Another area's table, read-only ({} when absent)."""
        return next((v for k, v in self.opaque if k == name), FrozenTable({}))


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tenantscope" / "config.toml"


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """The config from `path` (explicit: must exist) or from the default place (may be absent)."""
    explicit = path is not None
    p = Path(path) if path is not None else default_path()
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(str(p), 0, "", "no such file") from None
        return Config()
    except IsADirectoryError:
        raise ConfigError(str(p), 0, "", "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(str(p), 0, "", "permission denied") from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(p), 0, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse(text, str(p))


def parse(text: str, file: str = "<config>") -> Config:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise ConfigError(file, int(m.group(1)) if m else 0, "", f"not valid TOML: {msg}") from None
    return _Reader(text, file).config(doc)


class _Reader:
    """Validates the parsed document; every error is located in the text."""

    def __init__(self, text: str, file: str) -> None:
        self.lines = text.splitlines()
        self.file = file

    # -- errors with line numbers

    def fail(self, where: tuple[str | int, ...], message: str) -> ConfigError:
        key = ".".join(f"[{w}]" if isinstance(w, int) else w for w in where).replace(".[", "[")
        return ConfigError(self.file, self.locate(where), key, message)

    def locate(self, where: tuple[str | int, ...]) -> int:
        """The line of `where` (e.g. ("tenant", 1, "domains")): the header of that [table] or
        [[array]] element, then each key after it within that table; 0 when not found."""
        parts = list(where)
        headers = [n for n, line in enumerate(self.lines) if re.match(r"\s*\[", line)]
        start, end, found = 0, (headers[0] if headers else len(self.lines)), -1
        lead = 1  # a dotted header ([network.addresses]) names several parts at once
        while lead < len(parts) and all(isinstance(x, str) for x in parts[: lead + 1]):
            name = ".".join(str(x) for x in parts[: lead + 1])
            if any(re.match(r"\s*\[\s*" + re.escape(name) + r"\s*\]", self.lines[n]) for n in headers):
                lead += 1
            else:
                break
        if lead > 1:
            parts = [".".join(str(x) for x in parts[:lead]), *parts[lead:]]
        if parts and isinstance(parts[0], str):
            rx = re.compile(r"\s*\[\[?\s*" + re.escape(parts[0]) + r"\s*\]\]?\s*(#.*)?$")
            mine = [n for n in headers if rx.match(self.lines[n])]
            if mine:
                indexed = len(parts) > 1 and isinstance(parts[1], int)
                found = mine[min(parts[1], len(mine) - 1)] if indexed else mine[0]  # type: ignore[index]
                start = found + 1
                end = next((n for n in headers if n > found), len(self.lines))
                parts = parts[2:] if indexed else parts[1:]
        pos = start
        for part in parts:
            if isinstance(part, int):
                continue
            krx = re.compile(r"(^|[\s{,.])[\"']?" + re.escape(part) + r"[\"']?\s*=")
            n = next((n for n in range(pos, end) if krx.search(_strip_comment(self.lines[n]))), None)
            if n is None:
                break
            found, pos = n, n
        return found + 1

    # -- typed getters

    def table(self, v: Any, where: tuple[str | int, ...], allowed: set[str]) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(where, f"expected a table, got {_kind(v)}")
        for k in v:
            if k not in allowed:
                raise self.fail(where + (k,), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return v

    def string(self, v: Any, where: tuple[str | int, ...], *, empty: bool = False) -> str:
        if not isinstance(v, str):
            raise self.fail(where, f"expected a string, got {_kind(v)}")
        if not empty and not v:
            raise self.fail(where, "must not be empty")
        return v

    def strings(self, v: Any, where: tuple[str | int, ...]) -> tuple[str, ...]:
        if not isinstance(v, list):
            raise self.fail(where, f"expected a list of strings, got {_kind(v)}")
        return tuple(self.string(x, where + (i,)) for i, x in enumerate(v))

    def boolean(self, v: Any, where: tuple[str | int, ...]) -> bool:
        if not isinstance(v, bool):
            raise self.fail(where, f"expected true or false, got {_kind(v)}")
        return v

    # -- the document

    def config(self, doc: dict[str, Any]) -> Config:
        known = {"tenant", "policy", "prefix", "theme", "network", "logs", "checks"} | OPAQUE_TABLES
        self.table(doc, (), known)
        tenants = self.tenants(doc.get("tenant", []))
        policy = self.policy(doc.get("policy", {}), {t.name for t in tenants})
        prefix = self.prefix(doc.get("prefix", {}))
        theme = self.string(doc["theme"], ("theme",)) if "theme" in doc else ""
        opaque = tuple((k, _freeze(doc[k])) for k in sorted(OPAQUE_TABLES) if k in doc)
        for k, v in opaque:
            if not isinstance(v, Mapping):
                raise self.fail((k,), f"expected a table, got {_kind(doc[k])}")
        return Config(
            path=self.file,
            tenants=tenants,
            policy=policy,
            prefix=prefix,
            theme=theme,
            network=self.network(doc.get("network", {})),
            logs=self.logs(doc.get("logs", {})),
            silences=self.silences(doc.get("checks", {})),
            opaque=opaque,
        )

    def network(self, v: Any) -> NetworkSettings:
        w: tuple[str | int, ...] = ("network",)
        self.table(v, w, {"probe_ports", "probe_timeout", "ovsdb", "addresses"})
        ports = v.get("probe_ports", [])
        if not isinstance(ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
        ):
            raise self.fail(w + ("probe_ports",), "expected a list of port numbers 1-65535")
        t = v.get("probe_timeout", 0.5)
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.05 <= t <= 10:
            raise self.fail(w + ("probe_timeout",), "expected seconds between 0.05 and 10")
        ovsdb = self.string(v.get("ovsdb", ""), w + ("ovsdb",), empty=True)
        raw = v.get("addresses", {})
        if not isinstance(raw, dict):
            raise self.fail(w + ("addresses",), "expected a table of domain name = [addresses]")
        addresses = []
        for name, addrs in sorted(raw.items()):
            aw = w + ("addresses", name)
            for a in self.strings(addrs, aw):
                try:
                    ipaddress.IPv4Address(a)
                except ValueError:
                    raise self.fail(aw, f"{a!r} is not an IPv4 address") from None
            addresses.append((str(name), tuple(addrs)))
        return NetworkSettings(tuple(ports), float(t), ovsdb, tuple(addresses))

    def silences(self, v: Any) -> tuple[Silence, ...]:
        w: tuple[str | int, ...] = ("checks",)
        self.table(v, w, {"silence"})
        raw = v.get("silence", {})
        if not isinstance(raw, dict):
            raise self.fail(w + ("silence",), "expected a table of check id = [tenants]")
        out = []
        for cid, tenants in raw.items():
            sw = w + ("silence", cid)
            out.append(Silence(cid, self.strings(tenants, sw), self.locate(sw)))
        return tuple(out)

    def logs(self, v: Any) -> LogsConfig:
        w: tuple[str | int, ...] = ("logs",)
        kinds = {f.name: type(getattr(LogsConfig(), f.name)) for f in fields(LogsConfig)}
        self.table(v, w, set(kinds))
        minimum = {"start_lines": 0, "ring": 1, "view": 0}
        kw: dict[str, Any] = {}
        for k, x in v.items():
            kw_ = w + (k,)
            kind = kinds[k]
            if kind is tuple:
                paths = self.strings(x, kw_)
                bad = next((p for p in paths if not p.startswith("/")), None)
                if bad is not None:
                    raise self.fail(kw_, f"expected absolute paths, got {bad!r}")
                kw[k] = paths
            elif kind is bool:
                kw[k] = self.boolean(x, kw_)
            elif kind is int:
                if not isinstance(x, int) or isinstance(x, bool) or x < minimum.get(k, 0):
                    raise self.fail(kw_, f"expected a whole number >= {minimum.get(k, 0)}")
                kw[k] = x
            else:
                kw[k] = self.string(x, kw_, empty=True)
        return LogsConfig(**kw)

    def tenants(self, v: Any) -> tuple[TenantRule, ...]:
        if not isinstance(v, list):
            raise self.fail(("tenant",), "expected [[tenant]] tables")
        out: list[TenantRule] = []
        seen: set[str] = set()
        for i, t in enumerate(v):
            w: tuple[str | int, ...] = ("tenant", i)
            self.table(t, w, {"name", "domains", "metadata", "netns", "cgroups", "containers"})
            if "name" not in t:
                raise self.fail(w + ("name",), "missing: every [[tenant]] needs a name")
            name = self.string(t["name"], w + ("name",))
            if name in seen:
                raise self.fail(w + ("name",), f"tenant {name!r} is defined twice")
            seen.add(name)
            md = t.get("metadata", [])
            if not isinstance(md, list):
                raise self.fail(w + ("metadata",), f"expected a list of tables, got {_kind(md)}")
            sels = []
            for j, m in enumerate(md):
                mw = w + ("metadata", j)
                self.table(m, mw, {"namespace", "path", "value"})
                if "path" not in m:
                    raise self.fail(mw + ("path",), "missing: a metadata selector needs a path")
                sels.append(
                    MetadataSelector(
                        path=self.string(m["path"], mw + ("path",)).strip("/"),
                        value=self.string(m.get("value", "*"), mw + ("value",)),
                        namespace=self.string(m.get("namespace", ""), mw + ("namespace",), empty=True),
                    )
                )
            out.append(
                TenantRule(
                    name=name,
                    domains=self.strings(t.get("domains", []), w + ("domains",)),
                    metadata=tuple(sels),
                    netns=self.strings(t.get("netns", []), w + ("netns",)),
                    cgroups=self.strings(t.get("cgroups", []), w + ("cgroups",)),
                    containers=self.strings(t.get("containers", []), w + ("containers",)),
                )
            )
        return tuple(out)

    def policy(self, v: Any, tenants: set[str]) -> Policy:
        self.table(v, ("policy",), {"allow"})
        allow = v.get("allow", [])
        if not isinstance(allow, list):
            raise self.fail(("policy", "allow"), f"expected a list of [a, b] pairs, got {_kind(allow)}")
        rules = []
        for i, r in enumerate(allow):
            w: tuple[str | int, ...] = ("policy", "allow", i)
            if (
                not isinstance(r, list)
                or len(r) not in (2, 3)
                or not all(isinstance(x, str) and x for x in r[:2])
            ):
                raise self.fail(w, 'expected ["tenant-a", "tenant-b"] or ["a", "b", [ports]]')
            ports: tuple[int, ...] = ()
            if len(r) == 3:
                if not isinstance(r[2], list) or not all(
                    isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in r[2]
                ):
                    raise self.fail(w, "ports must be a list of numbers 1-65535")
                ports = tuple(r[2])
            rules.append(AllowRule(r[0], r[1], ports))
        return Policy(allow=tuple(rules))

    def prefix(self, v: Any) -> PrefixRule:
        self.table(v, ("prefix",), {"separator", "enabled", "generated"})
        return PrefixRule(
            separator=self.string(v.get("separator", "-"), ("prefix", "separator")),
            enabled=self.boolean(v.get("enabled", True), ("prefix", "enabled")),
            generated=self.strings(v["generated"], ("prefix", "generated")) if "generated" in v else None,
        )


def _strip_comment(line: str) -> str:
    # good enough for locating keys: a '#' inside a quoted value only shortens the search
    return line.split("#", 1)[0]


def _kind(v: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(v), type(v).__name__)


class FrozenTable(Mapping[str, Any]):
    """A read-only, hashable table (so that Config and Options stay hashable)."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._d = items

    def __getitem__(self, k: str) -> Any:
        return self._d[k]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._d.items(), key=lambda kv: kv[0])))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenTable({self._d!r})"


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return FrozenTable({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v
