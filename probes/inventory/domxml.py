"""libvirt domain XML (XMLDesc) -> VmDetails: everything the isolation checks look at.

Why a parser of our own rather than libvirt's getters: one XMLDesc call carries the whole
configuration (devices, tuning, security labels, metadata), works the same over every URI
(test driver, qemu:///system, qemu+ssh://) and can be saved and replayed.

Safety: the XML comes from a host and is untrusted. It is parsed with defusedxml (no DTDs, no
entities, no external references: libvirt never emits any) and bounded in size; values are
stored raw (made safe where shown). A document that cannot be read raises DomainXmlError,
whose message names the domain: the caller shows that domain with the error, never crashes.
Secrets are never kept: a graphics password becomes `passwd_set=True`, nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.etree.ElementTree import Element, ParseError

try:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring as _defused_fromstring
except ImportError:  # a stale venv: keep the inventory working with the stdlib guard below
    _defused_fromstring = None

    class DefusedXmlException(ValueError):  # type: ignore[no-redef]
        pass


from probes.model import (
    CpuTune,
    Disk,
    Graphics,
    Hostdev,
    MemTune,
    MetadataItem,
    Nic,
    SecLabel,
    VmDetails,
)

MAX_XML = 8 << 20  # bytes; a real domain is a few KiB
MAX_METADATA_ITEMS = 200
MAX_METADATA_TEXT = 4096
# libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (KiB): "no limit", the same as absent.
UNLIMITED_KIB = 9007199254740991
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

_UNITS = {
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
    "p": 1024**5,
    "pib": 1024**5,
    "pb": 1000**5,
    "e": 1024**6,
    "eib": 1024**6,
    "eb": 1000**6,
}


class DomainXmlError(ValueError):
    """The XML of one domain could not be read; the message names the domain."""


@dataclass(frozen=True)
class ParsedDomain:
    name: str
    uuid: str
    vm: VmDetails


def parse_domain(xml: str | bytes, *, name_hint: str = "", secure: bool = False) -> ParsedDomain:
    """Parse one domain's XMLDesc. `name_hint` (the name libvirt gave) names it in errors.

    `secure`: the XML was fetched with VIR_DOMAIN_XML_SECURE (or read from libvirt's own
    files), so a missing `passwd` means "no password"; otherwise passwords are unknown.
    """
    label = repr(name_hint) if name_hint else "(unnamed)"
    if len(xml) > MAX_XML:
        raise DomainXmlError(f"domain {label}: XML is {len(xml)} bytes, over the {MAX_XML} limit")
    try:
        root = safe_fromstring(xml)
    except ParseError as e:
        raise DomainXmlError(f"domain {label}: malformed XML: {e}") from None
    except DefusedXmlException as e:
        raise DomainXmlError(
            f"domain {label}: XML refused ({type(e).__name__}: "
            f"DTDs and entities are not allowed in domain XML)"
        ) from None
    if root.tag != "domain":
        raise DomainXmlError(f"domain {label}: root element is <{root.tag}>, not <domain>")
    name = _text(root, "name") or name_hint
    label = repr(name) if name else label
    try:
        return ParsedDomain(name=name, uuid=_text(root, "uuid"), vm=_details(root, secure))
    except (ValueError, TypeError, AttributeError) as e:  # a shape we did not expect
        raise DomainXmlError(f"domain {label}: unreadable XML: {e}") from None


# "<!" opens a comment, a CDATA section, or a declaration (DOCTYPE, ENTITY, ...): in well-formed
# XML a literal "<" appears nowhere else (attribute values and text must escape it).
_DECLARATION = re.compile(r"<!(?!--|\[CDATA\[)")


def safe_fromstring(xml: str | bytes) -> Element:
    """Parse untrusted XML with no DTD, no entities, no external references.

    Raises ParseError (malformed) or DefusedXmlException (refused).

    Text (what XMLDesc and file reads give) that holds no declaration at all has no DTD, so
    nothing but the five predefined entities and character references can occur: it goes to
    the stdlib's C parser, ~3x faster than defusedxml's Python-level handlers (1,000 domains
    parsed on a console's first frame). A declaration anywhere (even inside a comment or a
    CDATA section: refused rather than parsed) or bytes (whose encoding the parser decides)
    take defusedxml's path.
    """
    if isinstance(xml, str):
        if _DECLARATION.search(xml) is not None:
            raise DefusedXmlException("DTD or markup declaration (<!DOCTYPE, <!ENTITY, ...)")
        return ElementTree.fromstring(xml)
    if _defused_fromstring is not None:
        return _defused_fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    text = xml if isinstance(xml, str) else xml.decode("utf-8", "replace")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DefusedXmlException("DTD or entity declaration")
    return ElementTree.fromstring(xml)


def error_details(message: str) -> VmDetails:
    """What a domain whose XML failed shows: nothing but the error."""
    return VmDetails(parse_error=message)


# ------------------------------------------------------------------ helpers


def _find(el: Element, path: str) -> Element | None:
    """`el.find(path)` for a path of plain tags ("os/type"), step by step: the C fast path of
    each step instead of ElementPath's (~40x slower per call; three calls per domain). The
    first match in document order, as ElementPath gives."""
    if "/" not in path:
        return el.find(path)
    head, _, rest = path.partition("/")
    for child in el.findall(head):
        found = _find(child, rest)
        if found is not None:
            return found
    return None


def _text(el: Element | None, path: str = "", default: str = "") -> str:
    if el is None:
        return default
    node = _find(el, path) if path else el
    if node is None or node.text is None:
        return default
    return node.text.strip()


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isascii() and value.isdigit():  # most values: plain decimal digits
        return int(value)
    v = value.strip()
    try:
        return int(v, 0) if v.lower().startswith("0x") else int(v)
    except ValueError:
        return None


def _yes(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("yes", "on", "true", "1")


def _kib(el: Element | None) -> int | None:
    """A libvirt scaled integer (`unit=` attribute, KiB by default) in KiB."""
    if el is None:
        return None
    n = _int(el.text)
    if n is None:
        return None
    unit = (el.get("unit") or "KiB").strip().lower()
    mult = _UNITS.get(unit)
    if mult is None:
        return None
    return (n * mult) // 1024


def _limit(el: Element | None) -> int | None:
    v = _kib(el)
    return None if v is None or v >= UNLIMITED_KIB else v


# ------------------------------------------------------------------ the domain


def _details(root: Element, secure: bool) -> VmDetails:
    devices = root.find("devices")
    vcpu = root.find("vcpu")
    cpu = root.find("cpu")
    numa_mem = _find(root, "numatune/memory")
    mb = root.find("memoryBacking")
    ls = root.find("launchSecurity")
    return VmDetails(
        domain_type=root.get("type", ""),
        vcpus=_int(vcpu.text if vcpu is not None else None) or 0,
        cpuset=(vcpu.get("cpuset", "") if vcpu is not None else ""),
        memory_kib=_kib(root.find("memory")) or 0,
        current_memory_kib=_kib(root.find("currentMemory")) or 0,
        cpu_mode=(cpu.get("mode", "custom") if cpu is not None else ""),
        cpu_features=tuple(
            (f.get("name", ""), f.get("policy", "require"))
            for f in (cpu.findall("feature") if cpu is not None else ())
        ),
        memtune=_memtune(root.find("memtune")),
        cputune=_cputune(root.find("cputune")),
        numatune_mode=(numa_mem.get("mode", "strict") if numa_mem is not None else ""),
        numatune_nodeset=(
            numa_mem.get("nodeset", "")
            or (
                f"placement={numa_mem.get('placement')}"
                if numa_mem is not None and numa_mem.get("placement")
                else ""
            )
        )
        if numa_mem is not None
        else "",
        disks=tuple(_disk(d) for d in _children(devices, "disk")),
        nics=tuple(_nic(n) for n in _children(devices, "interface")),
        graphics=tuple(_graphics(g, secure) for g in _children(devices, "graphics")),
        hostdevs=tuple(_hostdev(h) for h in _children(devices, "hostdev")),
        seclabels=tuple(_seclabel(s) for s in root.findall("seclabel")),
        metadata=_metadata(root.find("metadata")),
        has_guest_agent=any(
            (c.find("target") is not None and c.find("target").get("name") == GUEST_AGENT_CHANNEL)  # type: ignore[union-attr]
            for c in _children(devices, "channel")
        ),
        emulator=_text(devices, "emulator"),
        nosharepages=mb is not None and mb.find("nosharepages") is not None,
        hugepages=mb is not None and mb.find("hugepages") is not None,
        locked_memory=mb is not None and mb.find("locked") is not None,
        launch_security=(ls.get("type", "") if ls is not None else ""),
        blkio_weight=_int(_text(root, "blkiotune/weight") or None),
        os_type=_text(root, "os/type"),
        xen_guest=_xen_guest(root),
    )


def _xen_guest(root: Element) -> str:
    """pv, pvh or hvm for a Xen domain (libvirt's libxl/xen XML), "" for any other."""
    if root.get("type", "") != "xen":
        return ""
    t = _find(root, "os/type")
    if t is None:
        return "pv"  # libvirt's default for a Xen domain without <os><type>
    kind, machine = (t.text or "").strip().lower(), t.get("machine", "").lower()
    if kind == "hvm":
        return "hvm"
    if kind == "xenpvh" or machine == "xenpvh":
        return "pvh"
    return "pv"  # linux, xen (libvirt's names for PV)


def _children(parent: Element | None, tag: str) -> list[Element]:
    return parent.findall(tag) if parent is not None else []


def _memtune(el: Element | None) -> MemTune:
    if el is None:
        return MemTune()
    return MemTune(
        hard_limit_kib=_limit(el.find("hard_limit")),
        soft_limit_kib=_limit(el.find("soft_limit")),
        swap_hard_limit_kib=_limit(el.find("swap_hard_limit")),
        min_guarantee_kib=_limit(el.find("min_guarantee")),
    )


def _cputune(el: Element | None) -> CpuTune:
    if el is None:
        return CpuTune()
    pins = []
    for p in el.findall("vcpupin"):
        v = _int(p.get("vcpu"))
        if v is not None:
            pins.append((v, p.get("cpuset", "")))
    ep = el.find("emulatorpin")
    return CpuTune(
        shares=_int(_text(el, "shares") or None),
        period=_int(_text(el, "period") or None),
        quota=_int(_text(el, "quota") or None),
        emulator_period=_int(_text(el, "emulator_period") or None),
        emulator_quota=_int(_text(el, "emulator_quota") or None),
        vcpupin=tuple(pins),
        emulatorpin=ep.get("cpuset", "") if ep is not None else "",
    )


# ------------------------------------------------------------------ devices


def _disk(d: Element) -> Disk:
    target = d.find("target")
    src = d.find("source")
    drv = d.find("driver")
    return Disk(
        type=d.get("type", "file"),
        device=d.get("device", "disk"),
        bus=(target.get("bus", "") if target is not None else ""),
        target=(target.get("dev", "") if target is not None else ""),
        source=_disk_source(d.get("type", "file"), src),
        shareable=d.find("shareable") is not None,
        readonly=d.find("readonly") is not None,
        encrypted=d.find("encryption") is not None
        or (src is not None and src.find("encryption") is not None),
        driver_type=(drv.get("type", "") if drv is not None else ""),
    )


def _disk_source(dtype: str, src: Element | None) -> str:
    """One string per source: a path, `pool/volume`, or `protocol:name` for network disks."""
    if src is None:
        return ""
    if dtype == "volume" or src.get("pool"):
        return f"{src.get('pool', '')}/{src.get('volume', '')}"
    if dtype == "network" or src.get("protocol"):
        host = src.find("host")
        where = ""
        if host is not None and host.get("name"):
            where = f"@{host.get('name')}" + (f":{host.get('port')}" if host.get("port") else "")
        return f"{src.get('protocol', '')}:{src.get('name', '')}{where}"
    if dtype == "nvme":
        a = src.find("address")
        if a is not None:
            return "nvme:" + _pci_address(a) + (f"/ns{src.get('namespace')}" if src.get("namespace") else "")
    for attr in ("file", "dev", "dir", "path", "name"):
        if src.get(attr):
            return src.get(attr, "")
    return ""


def _nic(n: Element) -> Nic:
    ntype = n.get("type", "")
    src = n.find("source")
    target = n.find("target")
    model = n.find("model")
    mac = n.find("mac")
    vlan = n.find("vlan")
    tags = tuple(
        t
        for t in (_int(tag.get("id")) for tag in (vlan.findall("tag") if vlan is not None else ()))
        if t is not None
    )
    vp = n.find("virtualport")
    vp_params = vp.find("parameters") if vp is not None else None
    fr = n.find("filterref")
    port = n.find("port")
    bw = n.find("bandwidth")
    source, bridge = "", ""
    if src is not None:
        if ntype == "network":
            source = src.get("network", "")
            bridge = src.get("bridge", "")  # real libvirt adds it in the live XML
        elif ntype == "bridge":
            source = bridge = src.get("bridge", "")
        elif ntype == "direct":
            source = src.get("dev", "") + (f" ({src.get('mode')})" if src.get("mode") else "")
        elif ntype == "hostdev":
            a = src.find("address")
            source = _pci_address(a) if a is not None else ""
        elif ntype in ("vhostuser", "vdpa"):
            source = src.get("path", "") or src.get("dev", "")
        elif src.get("address") or src.get("port"):  # udp, mcast, server, client
            source = f"{src.get('address', '')}:{src.get('port', '')}"
        else:
            source = src.get("dev", "") or src.get("bridge", "") or src.get("network", "")
    return Nic(
        type=ntype,
        mac=(mac.get("address", "") if mac is not None else ""),
        source=source,
        bridge=bridge,
        target_dev=(target.get("dev", "") if target is not None else ""),
        model=(model.get("type", "") if model is not None else ""),
        vlan_tags=tags,
        vlan_trunk=(vlan is not None and (_yes(vlan.get("trunk")) or len(tags) > 1)),
        virtualport_type=(vp.get("type", "") if vp is not None else ""),
        virtualport_interfaceid=(vp_params.get("interfaceid", "") if vp_params is not None else ""),
        filterref=(fr.get("filter", "") if fr is not None else ""),
        filter_params=tuple(
            (p.get("name", ""), p.get("value", ""))
            for p in (fr.findall("parameter") if fr is not None else ())
        ),
        port_isolated=port is not None and _yes(port.get("isolated")),
        portgroup=(src.get("portgroup", "") if src is not None else ""),
        bandwidth_in_kbps=_int(bw.find("inbound").get("average"))
        if bw is not None and bw.find("inbound") is not None
        else None,  # type: ignore[union-attr]
        bandwidth_out_kbps=_int(bw.find("outbound").get("average"))
        if bw is not None and bw.find("outbound") is not None
        else None,  # type: ignore[union-attr]
    )


def _graphics(g: Element, secure: bool) -> Graphics:
    listen, listen_type = g.get("listen", ""), ("address" if g.get("listen") else "")
    for child in g.findall("listen"):
        t = child.get("type", "address")
        if t == "none":
            if not listen:
                listen_type = "none"
            continue
        # the first usable <listen> wins; libvirt mirrors its address into the attribute
        listen_type = t
        if t == "address":
            listen = child.get("address", "") or listen
        elif t == "network":
            listen = child.get("address", "") or listen  # live XML resolves the address
        elif t == "socket":
            listen = child.get("socket", "")
        break
    tls = g.get("defaultMode") == "secure" or any(c.get("mode") == "secure" for c in g.findall("channel"))
    return Graphics(
        type=g.get("type", ""),
        listen=listen,
        listen_type=listen_type,
        port=_port(g.get("port")),
        autoport=_yes(g.get("autoport")),
        passwd_set=bool(g.get("passwd")),  # the password itself is never kept
        passwd_known=secure or bool(g.get("passwd")),
        tls=tls,
    )


def _port(value: str | None) -> int:
    port = _int(value)
    return -1 if port is None else port


def _pci_address(a: Element) -> str:
    def h(attr: str, width: int) -> str:
        v = _int(a.get(attr))
        return f"{v:0{width}x}" if v is not None else "?" * width

    return f"{h('domain', 4)}:{h('bus', 2)}:{h('slot', 2)}.{h('function', 1)}"


def _hostdev(h: Element) -> Hostdev:
    htype = h.get("type", "")
    src = h.find("source")
    addr = ""
    if src is not None:
        a = src.find("address")
        if htype == "pci" and a is not None:
            addr = _pci_address(a)
        elif htype == "usb":
            vendor, product = src.find("vendor"), src.find("product")
            if vendor is not None and product is not None:
                addr = f"{vendor.get('id', '')}:{product.get('id', '')}"
            elif a is not None:
                addr = f"{a.get('bus', '')}.{a.get('device', '')}"
        elif htype == "mdev" and a is not None:
            addr = a.get("uuid", "")
        elif htype == "scsi":
            ad = src.find("adapter")
            if src.get("protocol"):
                addr = f"{src.get('protocol')}:{src.get('name', '')}"
            elif ad is not None and a is not None:
                addr = f"{ad.get('name', '')}:{a.get('bus', '')}:{a.get('target', '')}:{a.get('unit', '')}"
        elif htype == "scsi_host":
            addr = f"{src.get('protocol', '')}:{src.get('wwpn', '')}"
        elif a is not None:
            addr = " ".join(f"{k}={v}" for k, v in sorted(a.attrib.items()))
    return Hostdev(type=htype, mode=h.get("mode", "subsystem"), address=addr, managed=_yes(h.get("managed")))


def _seclabel(s: Element) -> SecLabel:
    stype = s.get("type", "dynamic")
    # libvirt: relabel defaults to yes, except for type none (nothing to relabel)
    relabel = _yes(s.get("relabel"), default=stype != "none")
    return SecLabel(
        type=stype,
        model=s.get("model", ""),
        relabel=relabel,
        label=_text(s, "label"),
        imagelabel=_text(s, "imagelabel"),
    )


# ------------------------------------------------------------------ metadata


def _split(tag: str) -> tuple[str, str]:
    """("namespace", "local") of an ElementTree name ("{namespace}local"), ("", tag) without one."""
    if tag[:1] == "{":
        end = tag.find("}")
        if end > 0:
            return tag[1:end], tag[end + 1 :]
    return "", tag


def _metadata(md: Element | None) -> tuple[MetadataItem, ...]:
    """Every element under <metadata> that has text or attributes, as (namespace, path).

    `path` starts at the top element of its namespace: `instance/owner/project` for Nova's
    `<nova:instance><nova:owner><nova:project uuid=...>NAME`.
    """
    if md is None:
        return ()
    items: list[MetadataItem] = []
    for top in md:
        if not isinstance(top.tag, str):
            continue
        ns, local = _split(top.tag)
        _walk(top, ns, local, items)
    return tuple(items)


def _walk(el: Element, ns: str, path: str, items: list[MetadataItem]) -> None:
    """One element of the metadata and its children, into `items` (a function of its own: a
    recursive closure is a reference cycle, garbage for the collector at every domain parsed)."""
    if len(items) >= MAX_METADATA_ITEMS:
        return
    text = (el.text or "").strip()[:MAX_METADATA_TEXT]
    attrs = tuple((_split(k)[1], v[:MAX_METADATA_TEXT]) for k, v in el.attrib.items())
    if text or attrs:
        items.append(MetadataItem(namespace=ns, path=path, text=text, attrs=attrs))
    for child in el:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        _walk(child, ns, f"{path}/{_split(child.tag)[1]}", items)
