"""Container runtime daemons (Docker, Podman): where they are, how they are configured, and the
containers, networks and settings their REST API reports.

Daemons are found by their processes (`dockerd`, `podman system service`): the command line
names the API socket (-H unix://...), the data-root and the config file, whatever paths the
operator chose; the default sockets are tried too. Each daemon's configuration is its flags
over its daemon.json over what the API says (/info), each setting with where it was read,
which is the evidence the RT-* checks show. The API is read with GET requests only
(probes/inventory/runtime_api.py); when the socket is unreadable the daemon is still listed,
with why, and the container inventory falls back to files and /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from probes.hosts.base import HostError, HostTransport
from probes.inventory import procfs
from probes.inventory.runtime_api import ApiError, get_many
from probes.model import (
    ContainerNetwork,
    DaemonSetting,
    PublishedPort,
    RuntimeDaemon,
    RuntimeNetwork,
)

MAX_CONTAINERS = 2000  # inspected per daemon and poll; the rest keep the list's fields
INSPECT_EVERY = 60.0  # seconds an unchanged container's inspect is reused
API_DEADLINE = 6.0  # seconds for one daemon's API per poll (the container probe's timeout is 20 s)
MAX_LABELS = 64
MAX_TEXT = 256
DEFAULT_SOCKETS = (("docker", "/run/docker.sock"), ("podman", "/run/podman/podman.sock"))
DOCKER_CONFIG = "/etc/docker/daemon.json"

# dockerd flags that take no value (a bare flag means true; --flag=false sets false)
_DOCKER_BOOLS = frozenset(
    {
        "icc",
        "live-restore",
        "no-new-privileges",
        "userland-proxy",
        "tls",
        "tlsverify",
        "iptables",
        "ip-forward",
        "ip-masq",
        "selinux-enabled",
        "rootless",
        "experimental",
        "debug",
        "D",
        "ipv6",
        "init",
    }
)
_DOCKER_SHORT = {"H": "hosts", "g": "data-root", "D": "debug", "p": "pidfile", "b": "bridge", "G": "group"}
_DOCKER_LONG = {"host": "hosts", "graph": "data-root", "default-ulimit": "default-ulimits"}
_MULTI = frozenset({"hosts", "default-ulimits"})


@dataclass(frozen=True)
class ApiContainer:
    """What a runtime's API says about one running container."""

    id: str
    name: str
    daemon: str  # the socket it came from
    runtime: str  # docker, podman
    image: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    networks: tuple[ContainerNetwork, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    restart_policy: str = ""
    network_mode: str = ""
    pid: int = 0


@dataclass(frozen=True)
class RuntimeView:
    """Every daemon found on a host, and the running containers their APIs listed (by id)."""

    daemons: tuple[RuntimeDaemon, ...] = ()
    containers: Mapping[str, ApiContainer] = field(default_factory=dict)
    data_roots: tuple[str, ...] = ()  # dockerd data-roots (for the file fallback)

    def by_pid(self) -> dict[int, ApiContainer]:
        return {c.pid: c for c in self.containers.values() if c.pid}


# ------------------------------------------------------------------ finding the daemons


@dataclass(frozen=True)
class _Found:
    runtime: str
    pid: int = 0
    uid: int = 0
    argv: tuple[str, ...] = ()


# A constant script: the /proc directory comes in as $1; prints "PID COMM" for the daemons.
_FIND = (
    'cd -- "$1" || exit 1; for p in [0-9]*; do read -r c < "$p/comm" 2>/dev/null || continue; '
    'case "$c" in dockerd|podman) printf "%s %s\\n" "$p" "$c";; esac; done'
)


async def find_daemons(host: HostTransport) -> list[_Found]:
    """dockerd processes and `podman system service` processes, with their argv and user."""
    pids: list[tuple[int, str]] = []
    if host.is_local:  # locally: os calls, no process spawned per poll
        pids = await asyncio.to_thread(_scan_local, f"{host.root}/proc")
    else:
        try:
            res = await host.run(["sh", "-c", _FIND, "sh", f"{host.root}/proc"], timeout=10.0)
        except HostError:
            return []
        for line in res.stdout.splitlines():
            num, _, comm = line.partition(" ")
            if num.isdigit():
                pids.append((int(num), comm.strip()))
    files = [f"/proc/{p}/{f}" for p, _ in pids for f in ("cmdline", "status")]
    texts = await procfs.read_many(host, files)
    out = []
    for pid, comm in pids:
        raw = texts.get(f"/proc/{pid}/cmdline")
        if not raw:
            continue
        argv = tuple(raw.rstrip("\0").split("\0"))
        uid = _uid(texts.get(f"/proc/{pid}/status") or "")
        if comm == "dockerd":
            out.append(_Found("docker", pid, uid, argv))
        elif comm == "podman" and _is_podman_service(argv):
            out.append(_Found("podman", pid, uid, argv))
    return out


def _scan_local(proc: str) -> list[tuple[int, str]]:
    out = []
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    for n in names:
        if not n.isdigit():
            continue
        try:
            with open(f"{proc}/{n}/comm", "rb") as f:
                comm = f.read(64).decode("utf-8", "replace").strip()
        except OSError:
            continue
        if comm in ("dockerd", "podman"):
            out.append((int(n), comm))
    return out


def _uid(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("Uid:"):
            f = line.split()
            if len(f) > 1 and f[1].isdigit():
                return int(f[1])
    return 0


def _is_podman_service(argv: Sequence[str]) -> bool:
    return any(a == "system" and i + 1 < len(argv) and argv[i + 1] == "service" for i, a in enumerate(argv))


def parse_dockerd_argv(argv: Sequence[str]) -> list[tuple[str, str, str]]:
    """(daemon.json key, value, the flag as written) for each flag of a dockerd command line."""
    out: list[tuple[str, str, str]] = []
    args = list(argv[1:])
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-") or a in ("-", "--"):
            continue
        name, eq, value = a.lstrip("-").partition("=")
        short = not a.startswith("--")
        if short and len(name) > 1 and not eq:  # -Hunix:///x
            name, value, eq = name[0], name[1:], "="
        key = _DOCKER_SHORT.get(name, name) if short else _DOCKER_LONG.get(name, name)
        if name in _DOCKER_BOOLS or key in _DOCKER_BOOLS:
            out.append((key, (value or "true").lower() if eq else "true", a))
            continue
        if not eq:
            if i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
                a = f"{a} {value}"
            else:
                value = "true"
        out.append((key, value, a))
    return out


def _podman_socket(argv: Sequence[str], uid: int) -> str:
    after = False
    for a in argv:
        if after and a.startswith("unix://"):
            return a[len("unix://") :]
        if a == "service":
            after = True
    return "/run/podman/podman.sock" if uid == 0 else f"/run/user/{uid}/podman/podman.sock"


def _norm(path: str) -> str:
    return "/run/" + path[len("/var/run/") :] if path.startswith("/var/run/") else path


# ------------------------------------------------------------------ configuration


def _json_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)[:MAX_TEXT]
    return str(v)[:MAX_TEXT]


async def _docker_settings(
    host: HostTransport, f: _Found
) -> tuple[list[DaemonSetting], tuple[str, ...], str]:
    """(settings, hosts, data-root): flags win over daemon.json (dockerd refuses a key given
    both ways, so in practice each comes from one of them)."""
    flags = parse_dockerd_argv(f.argv)
    config = next((v for k, v, _ in flags if k == "config-file"), DOCKER_CONFIG)
    settings: dict[str, DaemonSetting] = {}
    hosts: list[str] = []
    try:
        doc = json.loads(await host.read_text(config, limit=1 << 20))
    except (OSError, HostError, ValueError):
        doc = None
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "hosts" and isinstance(v, list):
                hosts += [str(x) for x in v]
            settings[str(k)] = DaemonSetting(str(k), _json_value(v), config)
    flag_hosts = [v for k, v, _ in flags if k == "hosts"]
    if flag_hosts:
        hosts = flag_hosts + [h for h in hosts if h not in flag_hosts]
    multi: dict[str, list[tuple[str, str]]] = {}
    for k, v, written in flags:
        if k in _MULTI:
            multi.setdefault(k, []).append((v, written))
        else:
            settings[k] = DaemonSetting(k, v, f"dockerd {written}")
    for k, vs in multi.items():
        settings[k] = DaemonSetting(k, ", ".join(v for v, _ in vs), "dockerd " + " ".join(w for _, w in vs))
    if not hosts:
        hosts = ["unix:///var/run/docker.sock"]
    data_root = settings["data-root"].value if "data-root" in settings else "/var/lib/docker"
    return list(settings.values()), tuple(hosts), data_root


async def _socket_owner(host: HostTransport, path: str) -> tuple[str, str, int | None]:
    if host.is_local:

        def _stat() -> tuple[str, str, int | None]:
            import grp
            import pwd

            st = os.stat(host.root + path)
            try:
                user = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                user = str(st.st_uid)
            try:
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                group = str(st.st_gid)
            return user, group, stat.S_IMODE(st.st_mode)

        try:
            return await asyncio.to_thread(_stat)
        except OSError:
            return "", "", None
    try:
        res = await host.run(["stat", "-L", "-c", "%U %G %a", "--", path], timeout=5.0)
    except HostError:
        return "", "", None
    f = res.stdout.split()
    if res.ok and len(f) == 3:
        try:
            return f[0], f[1], int(f[2], 8)
        except ValueError:
            pass
    return "", "", None


# ------------------------------------------------------------------ reading one daemon's API


def _labels(d: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(d, dict):
        return ()
    return tuple(sorted((str(k)[:MAX_TEXT], str(v)[:MAX_TEXT]) for k, v in d.items()))[:MAX_LABELS]


def _d(x: object) -> dict[str, object]:
    return x if isinstance(x, dict) else {}


def _l(x: object) -> list[object]:
    return x if isinstance(x, list) else []


def _int(x: object) -> int:
    try:
        return int(str(x))
    except ValueError:
        return 0


def parse_network(doc: Mapping[str, object]) -> RuntimeNetwork:
    """One element of GET /networks (Docker's, or Podman's compat API)."""
    opts = {str(k): str(v) for k, v in _d(doc.get("Options")).items()}
    nid = str(doc.get("Id") or "")
    driver = str(doc.get("Driver") or "")
    bridge = opts.get("com.docker.network.bridge.name", "")
    if driver == "bridge" and not bridge and nid:
        bridge = f"br-{nid[:12]}"
    icc_opt = opts.get("com.docker.network.bridge.enable_icc")
    subnets = tuple(
        str(_d(c).get("Subnet")) for c in _l(_d(doc.get("IPAM")).get("Config")) if _d(c).get("Subnet")
    )
    return RuntimeNetwork(
        name=str(doc.get("Name") or "")[:MAX_TEXT],
        network_id=nid,
        driver=driver,
        bridge=bridge,
        parent=opts.get("parent", ""),
        icc=(icc_opt.lower() != "false") if icc_opt is not None else (True if driver == "bridge" else None),
        internal=bool(doc.get("Internal")),
        subnets=subnets,
        labels=_labels(doc.get("Labels")),
    )


def parse_libpod_network(doc: Mapping[str, object]) -> RuntimeNetwork:
    """One element of Podman's GET /libpod/networks/json: its own names (the compat API calls
    the default network `bridge` and does not say which interface it is)."""
    driver = str(doc.get("driver") or "")
    iface = str(doc.get("network_interface") or "")
    opts = {str(k): str(v) for k, v in _d(doc.get("options")).items()}
    return RuntimeNetwork(
        name=str(doc.get("name") or "")[:MAX_TEXT],
        network_id=str(doc.get("id") or ""),
        driver=driver,
        bridge=iface if driver == "bridge" else "",
        parent=(opts.get("parent") or iface) if driver in ("macvlan", "ipvlan") else "",
        icc=True if driver == "bridge" else None,  # Podman has no switch for it
        internal=bool(doc.get("internal")),
        subnets=tuple(str(_d(x).get("subnet")) for x in _l(doc.get("subnets")) if _d(x).get("subnet")),
        labels=_labels(doc.get("labels")),
    )


def parse_container(doc: Mapping[str, object], daemon: str, runtime: str) -> ApiContainer:
    """GET /containers/{id}/json (inspect), or an element of GET /containers/json."""
    cfg = _d(doc.get("Config"))
    hc = _d(doc.get("HostConfig"))
    ns = _d(doc.get("NetworkSettings"))
    nets = []
    for name, n in sorted(_d(ns.get("Networks")).items()):
        nd = _d(n)
        ip, plen = str(nd.get("IPAddress") or ""), _int(nd.get("IPPrefixLen"))
        nets.append(
            ContainerNetwork(
                name=str(name)[:MAX_TEXT],
                network_id=str(nd.get("NetworkID") or ""),
                address=f"{ip}/{plen}" if ip else "",
                mac=str(nd.get("MacAddress") or ""),
                gateway=str(nd.get("Gateway") or ""),
            )
        )
    ports: list[PublishedPort] = []
    if isinstance(ns.get("Ports"), dict):  # inspect: {"80/tcp": [{"HostIp":..,"HostPort":..}]}
        for spec, binds in sorted(_d(ns.get("Ports")).items()):
            port, _, proto = str(spec).partition("/")
            for b in _l(binds):
                bd = _d(b)
                ports.append(
                    PublishedPort(
                        _int(port), proto or "tcp", str(bd.get("HostIp") or ""), _int(bd.get("HostPort"))
                    )
                )
    for p in _l(doc.get("Ports")):  # the list: [{"IP":..,"PrivatePort":..,"PublicPort":..,"Type":..}]
        pd = _d(p)
        if pd.get("PublicPort"):
            ports.append(
                PublishedPort(
                    _int(pd.get("PrivatePort")),
                    str(pd.get("Type") or "tcp"),
                    str(pd.get("IP") or ""),
                    _int(pd.get("PublicPort")),
                )
            )
    rp = _d(hc.get("RestartPolicy"))
    restart = str(rp.get("Name") or "")
    if restart == "on-failure" and _int(rp.get("MaximumRetryCount")):
        restart += f":{_int(rp.get('MaximumRetryCount'))}"
    names = _l(doc.get("Names"))
    name = str(doc.get("Name") or (names[0] if names else "")).lstrip("/")
    return ApiContainer(
        id=str(doc.get("Id") or ""),
        name=name[:MAX_TEXT],
        daemon=daemon,
        runtime=runtime,
        image=str(cfg.get("Image") or doc.get("Image") or "")[:MAX_TEXT],
        labels=_labels(cfg.get("Labels") if cfg else doc.get("Labels")),
        networks=tuple(nets),
        ports=tuple(sorted(set(ports), key=lambda p: (p.container_port, p.protocol, p.host_ip, p.host_port))),
        restart_policy=restart,
        network_mode=str(hc.get("NetworkMode") or ""),
        pid=_int(_d(doc.get("State")).get("Pid")),
    )


def _signature(listed: Mapping[str, object]) -> str:
    """What the list says of a container that an inspect would change (not its Status text,
    which ticks every second): a different one means inspect again."""
    keep = {
        k: listed.get(k) for k in ("Created", "State", "Image", "Labels", "Ports", "NetworkSettings", "Names")
    }
    return json.dumps(keep, sort_keys=True, default=str)


InspectCache = dict[
    tuple[str, str], tuple[str, float, "ApiContainer"]
]  # (socket, id) -> (signature, when, record)


async def _read_api(
    host: HostTransport, d: RuntimeDaemon, cache: InspectCache | None = None
) -> tuple[RuntimeDaemon, list[ApiContainer]]:
    try:
        version, info, nets, listed = await get_many(
            host, d.socket, ["/version", "/info", "/networks", "/containers/json"]
        )
    except ApiError as e:
        return replace(d, api=str(e)), []
    if not listed.ok:
        why = listed.error or f"HTTP {listed.status}"
        return replace(d, api=f"GET /containers/json: {why}"), []
    ver, inf = _d(version.json()), _d(info.json())
    runtime = d.runtime
    if any("podman" in str(_d(c).get("Name", "")).lower() for c in _l(ver.get("Components"))):
        runtime = "podman"
    secopts = tuple(str(x)[:MAX_TEXT] for x in _l(inf.get("SecurityOptions")))
    settings = list(d.settings)
    have = {s.key for s in settings}
    if runtime == "docker" and "LiveRestoreEnabled" in inf and "live-restore" not in have:
        settings.append(DaemonSetting("live-restore", _json_value(inf["LiveRestoreEnabled"]), "API /info"))
    networks = tuple(sorted((parse_network(_d(n)) for n in _l(nets.json())), key=lambda n: n.name))
    if runtime == "podman":
        (libpod,) = await get_many(host, d.socket, ["/v4.0.0/libpod/networks/json"])
        if libpod.ok and isinstance(libpod.json(), list):
            networks = tuple(
                sorted((parse_libpod_network(_d(n)) for n in _l(libpod.json())), key=lambda n: n.name)
            )
    ids = [str(_d(c).get("Id")) for c in _l(listed.json()) if _d(c).get("Id")]
    brief = {str(_d(c).get("Id")): _d(c) for c in _l(listed.json())}
    now = time.monotonic()
    sig = {i: _signature(brief[i]) for i in ids}
    cached = cache if cache is not None else {}
    todo = [
        i
        for i in ids
        if (hit := cached.get((d.socket, i))) is None or hit[0] != sig[i] or now - hit[1] > INSPECT_EVERY
    ][:MAX_CONTAINERS]
    inspected = {r.path: r for r in await get_many(host, d.socket, [f"/containers/{i}/json" for i in todo])}
    containers = []
    for i in ids:
        r = inspected.get(f"/containers/{i}/json")
        if r is None and (d.socket, i) in cached:
            containers.append(cached[(d.socket, i)][2])
            continue
        full = _d(r.json()) if r is not None and r.ok else {}
        c = parse_container(full or brief[i], d.socket, runtime)
        if full:
            cached[(d.socket, i)] = (sig[i], now, c)
        containers.append(c)
    for key in [k for k in cached if k[0] == d.socket and k[1] not in brief]:
        del cached[key]  # gone: forget it
    return (
        replace(
            d,
            runtime=runtime,
            api="ok",
            version=str(ver.get("Version") or inf.get("ServerVersion") or "")[:64],
            rootless=d.rootless or any("name=rootless" in o for o in secopts),
            security_options=secopts,
            settings=tuple(sorted(settings, key=lambda s: s.key)),
            networks=networks,
            containers=len(containers),
        ),
        containers,
    )


async def read_api_bounded(
    host: HostTransport, d: RuntimeDaemon, cache: InspectCache | None = None, deadline: float | None = None
) -> tuple[RuntimeDaemon, list[ApiContainer]]:
    """`d` as its API describes it, within `deadline` seconds: a daemon that accepts but does
    not answer (hung, overloaded) is listed with why, and the inventory goes on from files."""
    limit = API_DEADLINE if deadline is None else deadline
    try:
        return await asyncio.wait_for(_read_api(host, d, cache), limit)
    except TimeoutError:
        return replace(d, api=f"no answer within {limit:g} s"), []


async def observe(host: HostTransport, cache: InspectCache | None = None) -> RuntimeView:
    """Every runtime daemon on `host`, its configuration and its running containers.

    `cache` (owned by the caller, e.g. the container probe): inspect results reused while a
    container's list entry is unchanged, for at most INSPECT_EVERY seconds (a `docker update`
    of the restart policy shows within that time)."""
    found = await find_daemons(host)
    daemons: list[RuntimeDaemon] = []
    roots: list[str] = []
    for f in found:
        if f.runtime == "docker":
            settings, hosts, root = await _docker_settings(host, f)
            roots.append(root)
            sock = next((h[len("unix://") :] for h in hosts if h.startswith("unix://")), "")
            if not sock and any(h.startswith("fd://") for h in hosts):
                sock = "/run/docker.sock"  # systemd socket activation: docker.socket's path
            rootless = f.uid != 0 or any(s.key == "rootless" and s.value == "true" for s in settings)
            daemons.append(
                RuntimeDaemon(
                    "docker", sock, f.pid, f.uid, rootless=rootless, hosts=hosts, settings=tuple(settings)
                )
            )
        else:
            sock = _podman_socket(f.argv, f.uid)
            tcp = tuple(a for a in f.argv if a.startswith("tcp://"))
            daemons.append(
                RuntimeDaemon(
                    "podman",
                    sock if not tcp else "",
                    f.pid,
                    f.uid,
                    rootless=f.uid != 0,
                    hosts=tcp or (f"unix://{sock}",),
                )
            )
    known = {_norm(d.socket) for d in daemons}
    for runtime, sock in DEFAULT_SOCKETS:  # a socket-activated daemon has no process yet
        if sock not in known and await _exists(host, sock):
            daemons.append(RuntimeDaemon(runtime, sock, hosts=(f"unix://{sock}",)))
            known.add(sock)
    out: list[RuntimeDaemon] = []
    containers: dict[str, ApiContainer] = {}
    for d in daemons:
        if d.socket:
            owner, group, mode = await _socket_owner(host, d.socket)
            d = replace(d, socket_owner=owner, socket_group=group, socket_mode=mode)
            d, cs = await read_api_bounded(host, d, cache)
            for c in cs:
                containers.setdefault(c.id, c)
        else:
            d = replace(d, api="no unix socket configured")
        out.append(d)
    return RuntimeView(tuple(out), containers, tuple(dict.fromkeys(roots)))


async def _exists(host: HostTransport, path: str) -> bool:
    if host.is_local:
        return await asyncio.to_thread(os.path.exists, host.root + path)
    try:
        return (await host.run(["test", "-S", path], timeout=5.0)).ok
    except HostError:
        return False
