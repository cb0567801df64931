"""The Xen toolstack probe: host facts and every domain, where this host is a Xen dom0.

Runs only where /proc/xen/capabilities says `control_d` (read as a file: nothing is spawned on
hosts that are not Xen dom0s). Then, through the transport (so over SSH too): `xl info`,
`xl list -l` (every domain, those libvirt does not manage included), `xl getenforce`, and
`xenstore-ls -f -p /local/domain` where xenstore-ls is installed. Each command that fails is
recorded with why; the others still count.
"""

from __future__ import annotations

from dataclasses import replace

from probes.engine import Probe
from probes.hosts.base import HostError, HostTransport
from probes.model import HostState
from probes.xen.model import XenHost
from probes.xen.parse import parse_getenforce, parse_xenstore_ls, parse_xl_info, parse_xl_list_l


class XenProbe(Probe[XenHost | None]):
    name = "xen"

    def __init__(self, interval: float = 60.0, timeout: float = 30.0) -> None:
        self.interval = interval
        self.timeout = timeout

    async def collect(self, host: HostTransport) -> XenHost | None:
        return await read_xen(host)

    def merge(self, state: HostState, result: XenHost | None) -> HostState:
        return state if state.xen == result else replace(state, xen=result)


async def _run(host: HostTransport, argv: list[str], errors: list[str]) -> str | None:
    try:
        res = await host.run(argv, timeout=20.0)
    except HostError as e:
        errors.append(f"{' '.join(argv)}: {e}")
        return None
    if not res.ok:
        errors.append(
            f"{' '.join(argv)}: {(res.stderr.strip() or f'exit {res.returncode}').splitlines()[0][:200]}"
        )
        return None
    return res.stdout


async def read_xen(host: HostTransport) -> XenHost | None:
    """The Xen host's facts, or None when `host` is not a Xen dom0."""
    try:
        caps = await host.read_text("/proc/xen/capabilities", timeout=5.0)
    except (OSError, HostError):
        return None
    if "control_d" not in caps:
        return None
    errors: list[str] = []
    info_text = await _run(host, ["xl", "info"], errors)
    info = parse_xl_info(info_text or "")
    xen = XenHost(
        version=(
            f"{info['xen_major']}.{info.get('xen_minor', '')}{info.get('xen_extra', '')}"
            if "xen_major" in info
            else info.get("xen_version", "")
        ),
        commandline=info.get("xen_commandline", ""),
        scheduler=info.get("xen_scheduler", ""),
        total_memory_mb=int(info["total_memory"]) if info.get("total_memory", "").isdigit() else 0,
        free_memory_mb=int(info["free_memory"]) if info.get("free_memory", "").isdigit() else 0,
        virt_caps=info.get("virt_caps", ""),
    )
    listed = await _run(host, ["xl", "list", "-l"], errors)
    if listed is not None:
        try:
            xen = replace(xen, domains=parse_xl_list_l(listed), domains_read=True)
        except ValueError as e:
            errors.append(f"xl list -l: {e}")
    enforce = await _run(host, ["xl", "getenforce"], [])  # fails (ENOSYS) without FLASK
    flask, source = parse_getenforce(enforce or ""), "xl getenforce"
    if not flask:
        opt = xen.option("flask")
        if opt is not None:
            flask, source = (
                {"enforcing": "enforcing", "permissive": "permissive"}.get(opt, "disabled"),
                f"xen_commandline flask={opt}",
            )
        elif xen.option("xsm") is None:
            flask, source = "disabled", "xl getenforce gave nothing; no flask= or xsm= on xen_commandline"
    xen = replace(xen, flask=flask, flask_source=source)
    store = await _run(host, ["xenstore-ls", "-f", "-p", "/local/domain"], errors)
    if store is not None:
        xen = replace(xen, xenstore_read=True, xenstore_writable=parse_xenstore_ls(store))
    return replace(xen, errors=tuple(errors))
