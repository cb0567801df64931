"""Parsers for the Xen toolstack's output: `xl info`, `xl list -l`, `xl getenforce`,
`xenstore-ls -f -p`. Pure functions of text, so they are tested against recorded output."""

from __future__ import annotations

import json
import re

from probes.xen.model import XenDomain, XenstoreGrant

MAX_GRANTS = 200


def parse_xl_info(text: str) -> dict[str, str]:
    """`name : value` lines (the first colon splits: values may contain colons)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def _dict(v: object) -> dict[str, object]:
    return v if isinstance(v, dict) else {}


def _int(v: object) -> int:
    return int(str(v)) if str(v).isdigit() else 0


def _truthy(v: object) -> bool:
    return str(v).lower() in ("true", "1", "yes")


def parse_xl_list_l(text: str) -> tuple[XenDomain, ...]:
    """`xl list -l`: a JSON array of {"domid": N, "config": libxl_domain_config}. Raises
    ValueError when it is not that."""
    doc = json.loads(text)
    if not isinstance(doc, list):
        raise ValueError("xl list -l: not a JSON array")
    out = []
    for item in doc:
        if not isinstance(item, dict):
            continue
        cfg = _dict(item.get("config"))
        c_info, b_info = _dict(cfg.get("c_info")), _dict(cfg.get("b_info"))
        kind = str(c_info.get("type") or "")
        if not kind:  # older libxl: the build type is the key "type.hvm" / "type.pv"
            kind = next((k[5:] for k in b_info if isinstance(k, str) and k.startswith("type.")), "")
        domid = item.get("domid")
        out.append(
            XenDomain(
                domid=domid if isinstance(domid, int) else -1,
                name=str(c_info.get("name") or "")[:256],
                uuid=str(c_info.get("uuid") or ""),
                guest_type=kind,
                device_model=str(b_info.get("device_model") or ""),
                device_model_version=str(b_info.get("device_model_version") or ""),
                stubdomain=_truthy(b_info.get("device_model_stubdomain")),
                dm_restrict=_truthy(b_info.get("dm_restrict")),
                max_memkb=_int(b_info.get("max_memkb")),
            )
        )
    return tuple(out)


def parse_getenforce(text: str) -> str:
    """`xl getenforce`: Enforcing, Permissive, or "Flask XSM Disabled" (tools/xl/xl_flask.c)."""
    t = text.strip().lower()
    if t == "enforcing":
        return "enforcing"
    if t == "permissive":
        return "permissive"
    if "disabled" in t:
        return "disabled"
    return ""


_PERMS = re.compile(r"\(([nrwb]\d+(?:,[nrwb]\d+)*)\)\s*$")


def parse_xenstore_ls(text: str) -> tuple[XenstoreGrant, ...]:
    """Keys a guest may write although another domain owns them, from `xenstore-ls -f -p`.

    The first permission is the owner and what every domain not listed gets; the owner always
    has full access, dom0 is the toolstack. A guest writing under its own home
    (/local/domain/ITS-ID) is normal; write access for a *different* guest, or for everyone,
    is what lets one tenant change another's devices or configuration.
    """
    out: list[XenstoreGrant] = []
    for line in text.splitlines():
        m = _PERMS.search(line)
        if not m or not line.startswith("/"):
            continue
        path = line.split(" = ", 1)[0].split(":", 1)[0].strip()
        perms = m.group(1).split(",")
        owner, default = int(perms[0][1:]), perms[0][0]
        writers: list[int] = [-1] if default in "wb" else []
        for p in perms[1:]:
            dom = int(p[1:])
            if p[0] in "wb" and dom not in (0, owner):
                writers.append(dom)
        home = re.match(r"^/local/domain/(\d+)(/|$)", path)
        if home:  # a guest writing below its own home is what frontends do
            writers = [w for w in writers if w != int(home.group(1))]
        if writers:
            out.append(XenstoreGrant(path, owner, m.group(1), tuple(writers)))
            if len(out) >= MAX_GRANTS:
                break
    return tuple(out)
