"""Container runtime daemon checks (RT-01..RT-09), in the spirit of docker-bench-security.

Pure functions of HostState.runtimes: each daemon's settings with where they were read (its
command line, its daemon.json, its API), its networks and its socket's owner and mode. A
finding names the daemon by its socket and lists the containers (and so the tenants) that
run under it: a daemon setting is every one of its tenants' problem.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from probes.checks.base import CheckSpec, Skip, check, finding
from probes.model import Evidence, Finding, HostState, RuntimeDaemon, Severity, State, Status

DAEMON_JSON = "/etc/docker/daemon.json"


def _daemons(state: State, runtime: str | None = None) -> list[tuple[HostState, RuntimeDaemon]]:
    every = [(hs, d) for hs in state.hosts for d in hs.runtimes]
    if not every:
        raise Skip("no Docker or Podman daemon found")
    got = [(hs, d) for hs, d in every if runtime is None or d.runtime == runtime]
    if not got:
        raise Skip(f"no {runtime} daemon found (the setting is {runtime}'s)")
    return got


def _name(d: RuntimeDaemon) -> str:
    return f"{d.runtime} daemon {d.socket or f'pid {d.pid}'}"


def _where(d: RuntimeDaemon) -> str:
    return (
        f"{'dockerd' if d.runtime == 'docker' else 'podman system service'} pid {d.pid}"
        if d.pid
        else _name(d)
    )


def _emit(
    spec: CheckSpec,
    hs: HostState,
    d: RuntimeDaemon,
    status: Status,
    summary: str,
    evidence: list[Evidence],
    fix: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    ws = [w for w in hs.workloads if w.container and w.container.daemon and w.container.daemon == d.socket]
    return finding(
        spec,
        status,
        f"{_name(d)}: {summary}",
        host=hs.host.name,
        tenants=[w.tenant for w in ws if w.tenant],
        workloads=[w.key for w in ws],
        evidence=evidence,
        fix=fix,
        severity=severity,
    )


def _setting_evidence(d: RuntimeDaemon, key: str, default: str) -> Evidence:
    s = d.setting(key)
    if s is None:
        return Evidence(f"{_where(d)} and {DAEMON_JSON}", f"{key} not set: Docker's default is {default}")
    return Evidence(s.source, f"{key}={s.value}")


def _true(d: RuntimeDaemon, key: str) -> bool | None:
    s = d.setting(key)
    return None if s is None else s.value.lower() in ("true", "1", "yes")


def _json_fix(key: str, value: str) -> str:
    return f'add "{key}": {value} to {DAEMON_JSON} (or dockerd --{key}={value.strip(chr(34))}), then restart dockerd'


@check(
    "RT-01",
    "runtime",
    "Container runtime remaps root to an unprivileged user (user namespaces)",
    "Without user namespace remapping, root in every container of the daemon is root on the host: "
    "one breakout (a kernel bug, a bad mount) lands with full privileges over every other tenant.",
    Severity.MEDIUM,
    _json_fix("userns-remap", '"default"'),
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt01_userns_remap(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state):
        remap = d.setting("userns-remap")
        userns = any(o.startswith("name=userns") for o in d.security_options)
        ev = [_setting_evidence(d, "userns-remap", "off")]
        if d.security_options:
            ev.append(Evidence("API /info SecurityOptions", ", ".join(d.security_options)))
        if d.rootless:
            yield _emit(spec, hs, d, Status.PASS, "rootless: the daemon itself runs in a user namespace", ev)
        elif userns or (remap is not None and remap.value not in ("", "false")):
            yield _emit(spec, hs, d, Status.PASS, "user namespace remapping on", ev)
        elif d.runtime == "podman":
            yield _emit(
                spec,
                hs,
                d,
                Status.WARN,
                "rootful Podman: containers run without a user namespace unless each asks for one",
                ev,
                fix='podman run --userns=auto ...  (or userns = "auto" in containers.conf), or run Podman as a user',
            )
        else:
            yield _emit(
                spec, hs, d, Status.FAIL, "no user namespace remapping: container root is host root", ev
            )


@check(
    "RT-02",
    "runtime",
    "No inter-container communication on Docker's default bridge",
    "On docker0 with icc on, every container on the default network reaches every other one on "
    "every port, whoever's tenant it is: the default network is one flat segment.",
    Severity.MEDIUM,
    _json_fix("icc", "false") + "; give each tenant a user-defined network",
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt02_icc_default_bridge(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state, "docker"):
        bridge = next((n for n in d.networks if n.name == "bridge" and n.driver == "bridge"), None)
        ev = [_setting_evidence(d, "icc", "true")]
        icc = bridge.icc if bridge is not None else _true(d, "icc")
        if bridge is not None:
            ev.append(
                Evidence(
                    f"docker network inspect bridge ({bridge.bridge or 'docker0'})",
                    f"com.docker.network.bridge.enable_icc={'unknown' if icc is None else str(icc).lower()}",
                )
            )
        if icc is False:
            yield _emit(spec, hs, d, Status.PASS, "icc off on the default bridge", ev)
        else:
            yield _emit(
                spec, hs, d, Status.FAIL, "containers on the default bridge talk to each other freely", ev
            )


@check(
    "RT-03",
    "runtime",
    "Runtime API not on TCP without TLS client verification",
    "The runtime's API is root on the host: on a TCP socket without TLS client certificates anyone "
    "who reaches the port, another tenant's workload included, starts a privileged container.",
    Severity.CRITICAL,
    "listen on the unix socket only, or add tlsverify with tlscacert/tlscert/tlskey (dockerd "
    "--tlsverify); Podman's service has no TLS: keep it on a unix socket",
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt03_tcp_without_tls(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state):
        tcp = [h for h in d.hosts if h.startswith("tcp://")]
        hosts_ev = d.setting("hosts")
        ev = [
            Evidence(hosts_ev.source if hosts_ev else _where(d), "listens on " + ", ".join(d.hosts or ("?",)))
        ]
        if not tcp:
            yield _emit(spec, hs, d, Status.PASS, "unix socket only", ev)
            continue
        verify = _true(d, "tlsverify")
        ev.append(_setting_evidence(d, "tlsverify", "false"))
        if d.runtime == "docker" and verify:
            yield _emit(spec, hs, d, Status.PASS, f"TCP {', '.join(tcp)} with TLS client verification", ev)
        elif d.runtime == "docker" and _true(d, "tls"):
            yield _emit(
                spec,
                hs,
                d,
                Status.FAIL,
                f"TCP {', '.join(tcp)} with TLS but no client verification: any client is accepted",
                ev + [_setting_evidence(d, "tls", "false")],
            )
        else:
            yield _emit(spec, hs, d, Status.FAIL, f"TCP {', '.join(tcp)} without TLS: the API is open", ev)


@check(
    "RT-04",
    "runtime",
    "Containers survive a daemon restart (live-restore)",
    "Without live-restore, restarting or upgrading dockerd stops every container of every tenant: "
    "patching the runtime becomes an outage, so it is put off.",
    Severity.LOW,
    _json_fix("live-restore", "true"),
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt04_live_restore(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state, "docker"):
        ev = [_setting_evidence(d, "live-restore", "false")]
        if _true(d, "live-restore"):
            yield _emit(spec, hs, d, Status.PASS, "live-restore on", ev)
        else:
            yield _emit(
                spec, hs, d, Status.WARN, "live-restore off: a daemon restart stops every container", ev
            )


@check(
    "RT-05",
    "runtime",
    "no-new-privileges by default for every container",
    "With no-new-privileges as the daemon's default, no process in any container gains privileges "
    "through setuid binaries or file capabilities, whatever image a tenant brings.",
    Severity.MEDIUM,
    _json_fix("no-new-privileges", "true"),
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt05_no_new_privileges(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state, "docker"):
        ev = [_setting_evidence(d, "no-new-privileges", "false")]
        if _true(d, "no-new-privileges"):
            yield _emit(spec, hs, d, Status.PASS, "no-new-privileges is the default", ev)
        else:
            yield _emit(
                spec,
                hs,
                d,
                Status.WARN,
                "containers may gain privileges unless each sets no-new-privileges",
                ev,
            )


@check(
    "RT-06",
    "runtime",
    "Default ulimits set for containers",
    "Without default ulimits a container inherits the daemon's (often unlimited) open files and "
    "processes: one tenant's container can exhaust the host's file table or PIDs.",
    Severity.LOW,
    'add "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 4096}, '
    '"nproc": {"Name": "nproc", "Soft": 1024, "Hard": 2048}} to ' + DAEMON_JSON,
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt06_default_ulimits(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state, "docker"):
        s = d.setting("default-ulimits")
        ev = [_setting_evidence(d, "default-ulimits", "none (the daemon's own limits)")]
        if s is not None and s.value not in ("", "{}", "null"):
            yield _emit(spec, hs, d, Status.PASS, "default ulimits set", ev)
        else:
            yield _emit(spec, hs, d, Status.WARN, "no default ulimits: containers inherit the daemon's", ev)


@check(
    "RT-07",
    "runtime",
    "Userland proxy off",
    "With the userland proxy on, each published port is served by a docker-proxy process running "
    "as root on the host: more root code facing the network, and container logs see the proxy's "
    "address instead of the client's.",
    Severity.LOW,
    _json_fix("userland-proxy", "false"),
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt07_userland_proxy(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state, "docker"):
        ev = [_setting_evidence(d, "userland-proxy", "true")]
        if _true(d, "userland-proxy") is False:
            yield _emit(spec, hs, d, Status.PASS, "userland proxy off", ev)
        else:
            yield _emit(
                spec, hs, d, Status.WARN, "userland proxy on: a root docker-proxy per published port", ev
            )


@check(
    "RT-08",
    "runtime",
    "Runtime socket owned by root (or the rootless user), mode 660 or stricter",
    "Whoever can write to the runtime's socket controls every container and starts privileged ones: "
    "it must belong to root (or the rootless daemon's user) and be closed to others.",
    Severity.HIGH,
    "chown root:docker SOCKET && chmod 660 SOCKET (and keep the docker group to administrators)",
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt08_socket_owner_mode(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state):
        if not d.socket or d.socket_mode is None:
            yield _emit(spec, hs, d, Status.SKIPPED, f"socket {d.socket or '(none)'} could not be read", [])
            continue
        mode = d.socket_mode
        ev = [Evidence(f"stat {d.socket}", f"owner {d.socket_owner}, group {d.socket_group}, mode {mode:o}")]
        fix = f"chown root:docker {shlex.quote(d.socket)} && chmod 660 {shlex.quote(d.socket)}"
        owner_ok = d.socket_owner == "root" or (d.rootless and d.socket_owner not in ("", "root"))
        if mode & 0o002:
            yield _emit(
                spec, hs, d, Status.FAIL, "socket writable by every local user", ev, fix, Severity.CRITICAL
            )
        elif not owner_ok:
            yield _emit(spec, hs, d, Status.FAIL, f"socket owned by {d.socket_owner}, not root", ev, fix)
        elif mode & 0o004 or mode & 0o001:
            yield _emit(spec, hs, d, Status.WARN, f"socket mode {mode:o} gives others access bits", ev, fix)
        else:
            yield _emit(
                spec, hs, d, Status.PASS, f"socket {d.socket_owner}:{d.socket_group} mode {mode:o}", ev
            )


@check(
    "RT-09",
    "runtime",
    "Runtime runs rootless",
    "A rootless daemon (Docker rootless mode, Podman as a user) runs in a user namespace itself: a "
    "breakout from any container lands as an unprivileged user, not as root over every tenant.",
    Severity.INFO,
    "dockerd-rootless-setuptool.sh install (per service user), or run Podman as that user",
    reads=("workloads", "runtimes"),
    scope="host",
)
def rt09_rootless(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, d in _daemons(state):
        ev = [Evidence(f"/proc/{d.pid}/status" if d.pid else _name(d), f"daemon uid {d.uid}")]
        if d.security_options:
            ev.append(Evidence("API /info SecurityOptions", ", ".join(d.security_options)))
        if d.rootless:
            yield _emit(spec, hs, d, Status.PASS, f"rootless (uid {d.uid}): a strength", ev)
        else:
            yield _emit(spec, hs, d, Status.WARN, "runs as root", ev, severity=Severity.INFO)
