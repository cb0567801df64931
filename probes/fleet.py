"""Which hosts to watch: `--host` targets, `--hosts-file` and Ansible inventories (INI, YAML).

Everything here is pure parsing into `Target`s (no connections): the SSH transport
(probes/hosts/ssh.py) turns targets into hosts. Inventories are the files on-call teams already
keep, so tenantscope reads them instead of asking for another list: groups (with `:children`
and `:vars`), host ranges (`hv[01:20]`), `ansible_host`, `ansible_user`, `ansible_port`
(and the old `ansible_ssh_*` spellings), `ansible_connection=local`, plus our own
`tenantscope_libvirt_uri` for a host whose libvirt is not at `qemu+ssh://USER@HOST/system`.

Bad input raises FleetError with the file, line and what was wrong: the CLI prints it as is.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit


class FleetError(ValueError):
    """A target, hosts file or inventory that cannot be used; the message is for the user."""


@dataclass(frozen=True)
class Target:
    """One host to watch. `address` is what SSH connects to (a name from ~/.ssh/config works);
    None for user/port means "whatever ~/.ssh/config or the defaults say"."""

    name: str  # the display name and the key everywhere else (inventory alias, or as given)
    address: str
    user: str | None = None
    port: int | None = None
    libvirt_uri: str | None = None
    groups: tuple[str, ...] = ()
    local: bool = False  # ansible_connection=local: watch this machine directly
    identity: str | None = None  # ansible_ssh_private_key_file
    source: str = ""  # where it came from: "--host", "FILE:LINE"

    @property
    def ssh_address(self) -> str:
        """user@host:port as far as known, for messages and Host.address."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"

    def default_libvirt_uri(self) -> str:
        """The host's system libvirt as shown. tenantscope does not open it with libvirt's
        ssh transport (that runs the system `ssh`): the SSH host forwards the remote socket
        over its own connection (probes/hosts/libvirt_forward.py)."""
        return f"qemu+ssh://{self.ssh_address}/system"


# ---------------------------------------------------------------- single targets

_PORT_RE = re.compile(r"^\d{1,5}$")


def parse_target(text: str, *, source: str = "--host") -> Target:
    """`[ssh://][user@]host[:port]`, `[v6::addr]:port`; the name is what was given minus the
    scheme and user (so the same host keeps the same name whoever logs in)."""
    raw = text.strip()
    if not raw:
        raise FleetError(f"{source}: empty host target")
    if any(c.isspace() or ord(c) < 32 for c in raw):
        raise FleetError(f"{source}: host target {raw!r} contains spaces or control characters")
    body = raw
    if "://" in raw:
        u = urlsplit(raw)
        if u.scheme != "ssh":
            raise FleetError(f"{source}: {raw!r}: only ssh:// targets are supported")
        if u.path not in ("", "/") or u.query or u.fragment:
            raise FleetError(f"{source}: {raw!r}: unexpected path or query in an ssh:// target")
        body = u.netloc
    user: str | None = None
    if "@" in body:
        user, _, body = body.rpartition("@")
        user = unquote(user)
        if not user:
            raise FleetError(f"{source}: {raw!r}: empty user name")
    port: int | None = None
    if body.startswith("["):
        end = body.find("]")
        if end < 0:
            raise FleetError(f"{source}: {raw!r}: unclosed '[' in the address")
        host, rest = body[1:end], body[end + 1 :]
        if rest:
            if not rest.startswith(":") or not _PORT_RE.match(rest[1:]):
                raise FleetError(f"{source}: {raw!r}: bad port {rest[1:]!r}")
            port = int(rest[1:])
    elif body.count(":") == 1:
        host, _, p = body.partition(":")
        if not _PORT_RE.match(p):
            raise FleetError(f"{source}: {raw!r}: bad port {p!r}")
        port = int(p)
    else:
        host = body  # a bare name, or an IPv6 address without a port
    if not host:
        raise FleetError(f"{source}: {raw!r}: no host name")
    if host.startswith("-"):
        raise FleetError(f"{source}: {raw!r}: a host name cannot start with '-'")
    if port is not None and not 0 < port < 65536:
        raise FleetError(f"{source}: {raw!r}: port {port} out of range")
    name = f"[{host}]:{port}" if port and ":" in host else f"{host}:{port}" if port else host
    return Target(name=name, address=host, user=user, port=port, source=source)


def read_hosts_file(path: str) -> list[Target]:
    """One target a line; `#` starts a comment; an optional second field is that host's
    libvirt URI (e.g. `hv3 qemu+ssh://admin@hv3/system?socket=/run/libvirt/x`)."""
    out: list[Target] = []
    for n, line in enumerate(_read(path).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) > 2:
            raise FleetError(f"{path}:{n}: expected 'TARGET [LIBVIRT-URI]', got {len(fields)} fields")
        t = parse_target(fields[0], source=f"{path}:{n}")
        if len(fields) == 2:
            t = replace(t, libvirt_uri=fields[1])
        out.append(t)
    return out


# ---------------------------------------------------------------- Ansible inventories


@dataclass
class _Group:
    name: str
    hosts: list[str]
    children: list[str]
    vars: dict[str, Any]


class _Inventory:
    def __init__(self, path: str) -> None:
        self.path = path
        self.groups: dict[str, _Group] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_where: dict[str, str] = {}
        self.order: list[str] = []

    def group(self, name: str) -> _Group:
        return self.groups.setdefault(name, _Group(name, [], [], {}))

    def add_host(self, group: str, host: str, hvars: Mapping[str, Any], where: str) -> None:
        g = self.group(group)
        if host not in g.hosts:
            g.hosts.append(host)
        if host not in self.host_vars:
            self.order.append(host)
            self.host_where[host] = where
        self.host_vars.setdefault(host, {}).update(hvars)

    def targets(self) -> list[Target]:
        parents: dict[str, set[str]] = {}
        for g in self.groups.values():
            for c in g.children:
                if c not in self.groups:
                    self.group(c)
                parents.setdefault(c, set()).add(g.name)

        def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
            if name in seen:
                raise FleetError(f"{self.path}: group {name!r} is its own child")
            ps = parents.get(name, set())
            return 1 + max((depth(p, seen | {name}) for p in ps), default=0)

        def member_groups(host: str) -> set[str]:
            direct = {g.name for g in self.groups.values() if host in g.hosts}
            out, todo = set(), list(direct)
            while todo:
                g = todo.pop()
                if g not in out:
                    out.add(g)
                    todo.extend(parents.get(g, ()))
            return out

        result = []
        for host in self.order:
            groups = member_groups(host)
            merged: dict[str, Any] = dict(self.groups["all"].vars) if "all" in self.groups else {}
            for g in sorted(groups - {"all"}, key=lambda n: (depth(n), n)):
                merged.update(self.groups[g].vars)
            merged.update(self.host_vars[host])
            result.append(self._target(host, merged, tuple(sorted(groups - {"all", "ungrouped"}))))
        return result

    def _target(self, host: str, v: Mapping[str, Any], groups: tuple[str, ...]) -> Target:
        where = self.host_where.get(host, self.path)
        address = str(v.get("ansible_host", v.get("ansible_ssh_host", host)))
        user = v.get("ansible_user", v.get("ansible_ssh_user"))
        port_v = v.get("ansible_port", v.get("ansible_ssh_port"))
        port = None
        if port_v is not None:
            try:
                port = int(str(port_v))
            except ValueError:
                raise FleetError(f"{where}: host {host!r}: ansible_port {port_v!r} is not a number") from None
            if not 0 < port < 65536:
                raise FleetError(f"{where}: host {host!r}: ansible_port {port} out of range")
        if not address or address.startswith("-") or any(c.isspace() for c in address):
            raise FleetError(f"{where}: host {host!r}: bad address {address!r}")
        uri = v.get("tenantscope_libvirt_uri")
        local = str(v.get("ansible_connection", "")) == "local"
        key = v.get("ansible_ssh_private_key_file", v.get("ansible_private_key_file"))
        return Target(
            name=host,
            address=address,
            user=str(user) if user is not None else None,
            port=port,
            libvirt_uri=str(uri) if uri else None,
            groups=groups,
            local=local,
            identity=os.path.expanduser(str(key)) if key else None,
            source=where,
        )


_RANGE_RE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::(\d+))?\]")


def expand_host_pattern(pattern: str, where: str = "") -> list[str]:
    """Ansible host ranges: `hv[01:03]` -> hv01 hv02 hv03, `db-[a:c]`, `[1:9:2]` (stride)."""
    m = _RANGE_RE.search(pattern)
    if not m:
        return [pattern]
    lo, hi, stride = m.group(1), m.group(2), int(m.group(3) or 1)
    if stride < 1:
        raise FleetError(f"{where}: bad stride in {pattern!r}")
    if lo.isdigit() and hi.isdigit():
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        items = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1, stride)]
    elif len(lo) == 1 and len(hi) == 1 and lo.isalpha() and hi.isalpha():
        letters = string.ascii_letters
        items = [letters[i] for i in range(letters.index(lo), letters.index(hi) + 1, stride)]
    else:
        raise FleetError(f"{where}: cannot expand the range in {pattern!r}")
    if not items:
        raise FleetError(f"{where}: empty range in {pattern!r}")
    if len(items) > 10000:
        raise FleetError(f"{where}: range in {pattern!r} expands to {len(items)} hosts")
    head, tail = pattern[: m.start()], pattern[m.end() :]
    return [h for i in items for h in expand_host_pattern(head + i + tail, where)]


def _ini_value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split_kv(tokens: Iterable[str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tok in tokens:
        if "=" not in tok:
            raise FleetError(f"{where}: expected key=value, got {tok!r}")
        k, _, v = tok.partition("=")
        out[k] = _ini_value(v)
    return out


def parse_ini_inventory(text: str, path: str) -> list[Target]:
    import shlex

    inv = _Inventory(path)
    inv.group("all")
    section, kind = "ungrouped", "hosts"
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            if not s.endswith("]"):
                raise FleetError(f"{where}: unclosed section header {s!r}")
            name = s[1:-1].strip()
            section, _, kind = name.partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise FleetError(f"{where}: unknown section kind {kind!r} (hosts, children or vars)")
            if not section:
                raise FleetError(f"{where}: empty group name")
            inv.group(section)
            continue
        try:
            tokens = shlex.split(s, comments=True)
        except ValueError as e:
            raise FleetError(f"{where}: {e}") from None
        if not tokens:
            continue
        if kind == "hosts":
            hvars = _split_kv(tokens[1:], where)
            for h in expand_host_pattern(tokens[0], where):
                inv.add_host(section, h, hvars, where)
        elif kind == "children":
            if len(tokens) != 1:
                raise FleetError(f"{where}: a [{section}:children] line names one group")
            inv.group(section).children.append(tokens[0])
        else:
            if "=" not in s:
                raise FleetError(f"{where}: expected key=value in [{section}:vars]")
            k, _, v = s.partition("=")
            inv.group(section).vars[k.strip()] = _ini_value(v)
    return inv.targets()


def parse_yaml_inventory(text: str, path: str) -> list[Target]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FleetError(f"{path}{line}: not valid YAML: {problem}") from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise FleetError(
            f"{path}: an inventory is a mapping of groups (e.g. 'all:'), got {type(doc).__name__}"
        )
    inv = _Inventory(path)
    inv.group("all")

    def walk(name: str, body: Any, parent: str | None) -> None:
        where = f"{path}: group {name!r}"
        g = inv.group(str(name))
        if parent is not None and g.name not in inv.groups[parent].children:
            inv.groups[parent].children.append(g.name)
        if body is None:
            return
        if not isinstance(body, dict):
            raise FleetError(f"{where}: expected hosts/vars/children, got {type(body).__name__}")
        unknown = set(body) - {"hosts", "vars", "children"}
        if unknown:
            raise FleetError(
                f"{where}: unknown key(s) {', '.join(map(str, sorted(unknown)))} (hosts, vars or children)"
            )
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise FleetError(f"{where}: 'hosts' must be a mapping of host names")
        for h, hv in hosts.items():
            if hv is not None and not isinstance(hv, dict):
                raise FleetError(f"{where}: host {h!r}: vars must be a mapping")
            for hn in expand_host_pattern(str(h), where):
                inv.add_host(g.name, hn, hv or {}, f"{path}: host {hn!r}")
        gv = body.get("vars") or {}
        if not isinstance(gv, dict):
            raise FleetError(f"{where}: 'vars' must be a mapping")
        g.vars.update(gv)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise FleetError(f"{where}: 'children' must be a mapping of groups")
        for c, cb in children.items():
            walk(str(c), cb, g.name)

    for name, body in doc.items():
        walk(str(name), body, None if name == "all" else "all")
    return inv.targets()


def read_inventory(path: str) -> list[Target]:
    """An Ansible inventory file, INI or YAML (by extension, else by content)."""
    text = _read(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".yml", ".yaml") or (ext not in (".ini", ".cfg") and _looks_yaml(text)):
        return parse_yaml_inventory(text, path)
    return parse_ini_inventory(text, path)


def _looks_yaml(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        return s == "---" or (s.endswith(":") and not s.startswith("["))
    return False


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise FleetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FleetError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise FleetError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise FleetError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise FleetError(f"{path}: cannot read: {e.strerror}") from None


# ---------------------------------------------------------------- the whole fleet


def select(targets: Sequence[Target], limit: str | None) -> list[Target]:
    """Ansible-style `--limit a,b`: host names or group names (`all` for everything)."""
    if not limit:
        return list(targets)
    wanted = {p.strip() for p in limit.split(",") if p.strip()}
    out = [t for t in targets if "all" in wanted or t.name in wanted or wanted & set(t.groups)]
    if not out:
        raise FleetError(f"--limit {limit!r} matches no host or group")
    return out


def load_targets(
    hosts: Sequence[str] = (),
    hosts_file: str | None = None,
    inventory: str | None = None,
    limit: str | None = None,
) -> list[Target]:
    """All targets from the command line, a hosts file and an inventory, in that order;
    names must be unique (the same name twice is most likely a mistake)."""
    targets = [parse_target(h) for h in hosts]
    if hosts_file:
        targets += read_hosts_file(hosts_file)
    if inventory:
        targets += read_inventory(inventory)
    targets = select(targets, limit)
    seen: dict[str, Target] = {}
    for t in targets:
        if t.name in seen:
            raise FleetError(f"{t.source}: host {t.name!r} is listed twice (also at {seen[t.name].source})")
        seen[t.name] = t
    return targets


def targets_from_options(opts: Any) -> list[Target]:
    """Targets from probes.session.Options (hosts, hosts_file, inventory, limit)."""
    return load_targets(
        tuple(getattr(opts, "hosts", ()) or ()),
        getattr(opts, "hosts_file", None),
        getattr(opts, "inventory", None),
        getattr(opts, "limit", None),
    )
