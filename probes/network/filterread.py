"""Read the filters of the namespaces whose filters decide tenant traffic, through the host
transport (locally and over SSH alike), on the topology probe's schedule.

Only namespaces that forward (IPv4 forwarding on) or hold a Linux bridge while br_netfilter
sends bridged traffic through iptables are read; when none does, nothing is spawned. All of
them are read by one constant `sh` program (the namespaces are its arguments), whose sections
are fenced by a marker with a fresh random nonce, so no rule text can fake a section.
"""

from __future__ import annotations

import gc
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from probes.hosts.base import HostTransport
from probes.network.filtermodel import NsFilters, Ruleset
from probes.network.model import Topology

BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# plain `*-save` (never `-t filter`: the legacy back end would create the table, with its hooks);
# the legacy ones only where the kernel lists legacy tables (ip*_tables_names) or has the legacy
# ebtables filter (/sys/module/ebtable_filter), so reading them never creates a table or loads
# a module. ip6tables is read (and
# shown) but not evaluated: the prediction is IPv4.
READERS = (
    "nft",
    "iptables-nft-save",
    "iptables-legacy-save",
    "ip6tables-nft-save",
    "ip6tables-legacy-save",
    "ebtables-nft-save",
    "ebtables-legacy",
)

# $2: the *-nft-save readers to skip (their family has no nftables table there: each would
# list the whole ruleset again through the kernel to show nothing); known locally, else none
INNER = r"""
n=$1; skip=" $2 "
printf '@@%s nft\n' "$n"; nft -j list ruleset 2>&1; printf '\n@@%s rc %s\n' "$n" $?
for t in iptables-nft-save ip6tables-nft-save ebtables-nft-save; do
  printf '@@%s %s\n' "$n" "$t"
  case $skip in *" $t "*) echo '#absent' ;; *) "$t" 2>&1 ;; esac
  printf '\n@@%s rc %s\n' "$n" $?
done
for t in iptables:ip_tables_names ip6tables:ip6_tables_names; do
  printf '@@%s %s-legacy-save\n' "$n" "${t%%:*}"
  if read -r x < "/proc/net/${t#*:}" 2>/dev/null; then "${t%%:*}-legacy-save" 2>&1; else echo '#absent'; fi
  printf '\n@@%s rc %s\n' "$n" $?
done
printf '@@%s ebtables-legacy\n' "$n"
if [ -d /sys/module/ebtable_filter ]; then ebtables-legacy -t filter -L 2>&1; else echo '#absent'; fi
printf '\n@@%s rc %s\n' "$n" $?
printf '@@%s sysctl\n' "$n"
cat /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables 2>/dev/null
printf '\n@@%s rc %s\n' "$n" $?
"""
# one `ip netns exec` per namespace (each costs a mount namespace and a fork or two); the
# arguments after the first two are pairs: namespace, readers to skip there
SCRIPT = r"""
n=$1; inner=$2; shift 2
while [ $# -ge 2 ]; do
  ns=$1; skip=$2; shift 2
  printf '@@%s ns %s\n' "$n" "$ns"
  if [ -z "$ns" ]; then sh -c "$inner" sh "$n" "$skip"; else ip netns exec "$ns" sh -c "$inner" sh "$n" "$skip"; fi
done
"""


async def bridge_nf_on(host: HostTransport) -> bool:
    """br_netfilter's switch in the host's namespace (a file read: no process)."""
    try:
        return (await host.read_text(host.root + BRIDGE_NF)).strip() == "1"
    except (OSError, Exception):
        return False


def namespaces_to_read(topo: Topology, bridge_nf_host: bool) -> list[tuple[str, str]]:
    """(namespace, why) whose filters decide tenant traffic: it forwards, or it has bridges
    (whose bridge-family chains, and with br_netfilter its IP chains, see bridged frames; for
    the host only when br_netfilter is on). Namespaces only processes hold are not read yet."""
    out = []
    for ns in topo.namespaces:
        if ns.error or ns.name.startswith("net:["):
            continue
        legs = [lk for lk in topo.links_in(ns.name) if lk.forwarding and lk.name != "lo"]
        bridges = any(lk.kind == "bridge" for lk in topo.links_in(ns.name))
        if ns.ip_forward or legs:
            out.append((ns.name, "forwarding"))
        elif bridges and (ns.name or bridge_nf_host):
            # the host: its switch is a file read; a namespace's is read with its rules
            out.append((ns.name, "bridge"))
    return out


NETLINK_NETFILTER = 12
NFT_MSG_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN


def nft_generation() -> int | None:
    """Blocking: nftables' ruleset generation in the calling thread's network namespace (it
    changes with every nftables or iptables-nft change), by one netlink request: no process."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        s.settimeout(1.0)
        s.send(struct.pack("=LHHLL", 20, NFT_MSG_GETGEN, 1, 1, 0) + struct.pack("=BBH", 0, 0, 0))
        data = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 20:
        return None
    length, typ = struct.unpack_from("=LH", data)
    off = 20
    while typ != 2 and off + 4 <= min(length, len(data)):  # 2: NLMSG_ERROR
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            break
        if atype & 0x7FFF == 1 and alen >= 8:  # NFTA_GEN_ID
            return int(struct.unpack_from(">L", data, off + 4)[0])
        off += (alen + 3) & ~3
    return None


NFT_MSG_GETTABLE = (10 << 8) | 1
# the *-nft-save reader of each family (nfgenmsg's NFPROTO_* number)
NFT_SAVE_FAMILIES = (("iptables-nft-save", 2), ("ip6tables-nft-save", 10), ("ebtables-nft-save", 7))


def nft_families() -> frozenset[int] | None:
    """Blocking: the families (NFPROTO_*) that have an nftables table in the calling thread's
    network namespace, by one netlink dump (no process); None when unknown."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    fams: set[int] = set()
    try:
        s.settimeout(1.0)
        flags = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
        s.send(struct.pack("=LHHLL", 20, NFT_MSG_GETTABLE, flags, 1, 0) + struct.pack("=BBH", 0, 0, 0))
        while True:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, typ = struct.unpack_from("=LH", data, off)
                if typ == 3:  # NLMSG_DONE
                    return frozenset(fams)
                if typ == 2 or length < 16:  # NLMSG_ERROR (not permitted, no nf_tables)
                    return None
                if length >= 20:
                    fams.add(data[off + 16])  # nfgenmsg.nfgen_family
                off += (length + 3) & ~3
            if not data:
                return None
    except OSError:
        return None
    finally:
        s.close()


async def nft_skips(which: list[tuple[str, str]]) -> dict[str, str]:
    """Locally: per namespace, the *-nft-save readers whose family has no table there."""
    from probes.network.nsenter import in_fresh_thread, in_netns

    def one(ns: str) -> str:
        try:
            fams = in_netns(f"/run/netns/{ns}", nft_families) if ns else nft_families()
        except OSError:
            return ""
        if fams is None:
            return ""
        return " ".join(t for t, fam in NFT_SAVE_FAMILIES if fam not in fams)

    return await in_fresh_thread(lambda: {ns: one(ns) for ns, _ in which})


NFNLGRP_NFTABLES = 7


def nft_event_socket(path: str = "") -> socket.socket:
    """Blocking: a NETLINK_NETFILTER socket in the namespace at `path` ('' = this thread's
    own) bound to nftables' notification group: every nftables (and iptables-nft, ebtables-nft,
    libvirt nwfilter, Docker) rule change there sends a message. Never creates a namespace."""
    from probes.network.nsenter import in_netns

    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            s.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        except OSError:
            s.close()
            raise
        return s

    return in_netns(path, make) if path else make()


# Legacy iptables has no generation number. Its tables' entry count and blob size (the kernel's
# IPT_SO_GET_INFO, no process) change with every rule added or removed: a namespace with legacy
# tables is read again when they change, and at least this often (a rule replaced by one of the
# same size is not seen by the counts)...
LEGACY_MAX_AGE = 300.0
# ...or this often where the counts cannot be read (not root, a table that would not answer)
LEGACY_BLIND_MAX_AGE = 30.0
IPT_SO_GET_INFO = 64  # = IP6T_SO_GET_INFO (on IPPROTO_IPV6)


def legacy_info(family: int, table: str) -> tuple[int, int] | None:
    """Blocking, in the calling thread's namespace: (entries, size) of an existing legacy
    ip/ip6 table, None when unknown. Asked only for tables the kernel lists (asking for another
    would create it)."""
    import ctypes

    level = socket.IPPROTO_IP if family == socket.AF_INET else socket.IPPROTO_IPV6
    try:
        s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except OSError:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(table.encode()[:31], 84)  # struct ipt_getinfo
        size = ctypes.c_uint32(84)
        if libc.getsockopt(s.fileno(), level, IPT_SO_GET_INFO, buf, ctypes.byref(size)) != 0:
            return None
        entries, blob = struct.unpack_from("=II", buf.raw, 76)
        return int(entries), int(blob)
    except (OSError, AttributeError):
        return None
    finally:
        s.close()


def _legacy_print() -> str:
    """The legacy ip/ip6 tables of this namespace with their counts ("?" where unknown)."""
    parts = []
    for fam, names in ((socket.AF_INET, "ip_tables_names"), (socket.AF_INET6, "ip6_tables_names")):
        try:
            with open(f"/proc/thread-self/net/{names}") as f:
                tables = sorted(f.read().split())
        except OSError:
            continue
        for t in tables:
            info = legacy_info(fam, t)
            parts.append(f"{fam}/{t}:" + (f"{info[0]}:{info[1]}" if info else "?"))
    return ",".join(parts)


def _fingerprint() -> tuple[int, str] | None:
    """Blocking, in the namespace: (nft generation, legacy tables with their counts); None
    when nft's generation cannot be read."""
    gen = nft_generation()
    return None if gen is None else (gen, _legacy_print())


@dataclass
class FilterCache:
    """The last filters read per namespace with their fingerprint (owned by the topology
    probe): locally, a namespace whose fingerprint did not change is not read again, so an
    idle console spawns nothing for filters."""

    last: dict[str, tuple[tuple[int, str], NsFilters]] = field(default_factory=dict)
    _prints: dict[str, tuple[int, str] | None] = field(default_factory=dict)
    read_at: dict[str, float] = field(default_factory=dict)  # when each namespace was last read
    remote: dict[str, NsFilters] = field(default_factory=dict)  # an SSH host's last read
    clock: Callable[[], float] = time.monotonic

    async def unchanged(self, which: list[tuple[str, str]]) -> dict[str, NsFilters]:
        from probes.network.nsenter import in_fresh_thread, in_netns

        def one(ns: str) -> tuple[int, str] | None:
            try:
                return in_netns(f"/run/netns/{ns}", _fingerprint) if ns else _fingerprint()
            except OSError:  # the namespace went away: read it (the readers say what happened)
                return None

        def every() -> dict[str, tuple[int, str] | None]:  # in_netns returns to the thread's own
            return {ns: one(ns) for ns, _ in which}

        prints = await in_fresh_thread(every)  # one thread for all namespaces, not one each
        self._prints = prints
        out = {}
        now = self.clock()
        for ns, why in which:
            fp, old = prints.get(ns), self.last.get(ns)
            if fp is None or old is None or old[0] != fp or old[1].why != why:
                continue
            age = LEGACY_BLIND_MAX_AGE if "?" in fp[1] else LEGACY_MAX_AGE
            if fp[1] and now - self.read_at.get(ns, 0.0) >= age:
                continue  # legacy tables: a same-size change is not seen by their counts
            out[ns] = old[1]
        return out

    def remember(self, filters: Iterable[NsFilters]) -> None:
        prints = self._prints
        now = self.clock()
        last, self.last = self.last, {}
        for f in filters:
            fp = prints.get(f.netns)
            if fp is not None and not f.errors:
                if f.netns not in last or last[f.netns][1] is not f:  # read now, not kept
                    self.read_at[f.netns] = now
                self.last[f.netns] = (fp, f)


async def read_filters(
    host: HostTransport,
    topo: Topology,
    timeout: float = 15.0,
    cache: FilterCache | None = None,
    only: frozenset[str] | None = None,
) -> tuple[NsFilters, ...]:
    """`only` (an SSH host whose helper reports nftables rule changes, between safety polls):
    the namespaces whose rules changed; the others are kept from the cache's last read."""
    which = namespaces_to_read(topo, await bridge_nf_on(host))
    if not which:
        return ()
    if cache is not None and host.is_local and not host.root:
        kept = await cache.unchanged(which)
        todo = [(n, w) for n, w in which if n not in kept]
        fresh = {f.netns: f for f in await _read(host, todo, timeout)} if todo else {}
        out = tuple(kept.get(n) or fresh[n] for n, _ in which)
        cache.remember(out)
        return out
    if cache is None:
        return await _read(host, which, timeout)
    last = cache.remote
    kept = {}
    if only is not None:
        for n, w in which:
            f = last.get(n)
            if n not in only and f is not None and f.why == w and not f.errors:
                kept[n] = f
    todo = [(n, w) for n, w in which if n not in kept]
    fresh = {f.netns: f for f in await _read(host, todo, timeout)} if todo else {}
    out = tuple(kept.get(n) or fresh[n] for n, _ in which)
    cache.remote = {f.netns: f for f in out}
    return out


async def _read(host: HostTransport, which: list[tuple[str, str]], timeout: float) -> tuple[NsFilters, ...]:
    nonce = os.urandom(8).hex()  # secrets.token_hex(8), without hmac's OpenSSL (~3 MiB)
    skips = await nft_skips(which) if host.is_local and not host.root else {}
    args = [x for n, _ in which for x in (n, skips.get(n, ""))]
    try:
        res = await host.run(["sh", "-c", SCRIPT, "sh", nonce, INNER, *args], timeout=timeout)
    except Exception as e:
        return tuple(NsFilters(n, why=w, errors=(f"cannot run the filter readers: {e}",)) for n, w in which)
    sections = split_sections(res.stdout, nonce)
    why = dict(which)
    return tuple(build(n, why[n], sections.get(n, {})) for n, _ in which)


def split_sections(out: str, nonce: str) -> dict[str, dict[str, tuple[int, str]]]:
    """namespace -> reader -> (exit code, output)."""
    mark = f"@@{nonce} "
    res: dict[str, dict[str, tuple[int, str]]] = {}
    ns: str | None = None
    cur: str | None = None
    buf: list[str] = []
    for ln in out.split("\n"):
        if ln.startswith(mark):
            kind, _, rest = ln[len(mark) :].partition(" ")
            if kind == "ns":
                ns, cur = rest, None
            elif kind == "rc" and cur is not None and ns is not None:
                rc = int(rest) if rest.strip().isdigit() else -1
                res.setdefault(ns, {})[cur] = (rc, "\n".join(buf))
                cur = None
            elif kind != "rc":
                cur, buf = kind, []
        elif cur is not None:
            buf.append(ln)
    return res


def build(ns: str, why: str, sec: dict[str, tuple[int, str]]) -> NsFilters:
    """One namespace's filters from its readers' outputs. A reader that is missing (exit 127)
    is named in `not_read` ("tool missing": its rules, if any, were not evaluated); one that
    failed is an error (its rules are unknown); a back end with no tables is absent."""
    # the parsers (and msgspec, ~1 MiB with them) when there are rules to parse: a console
    # imports this module for the nft event socket, on hosts that may have no namespace
    from probes.network.filterparse import (
        FilterParseError,
        nft_claimed_tables,
        parse_iptables_save,
        parse_nft,
    )

    errors: list[str] = []
    not_read: list[str] = []
    rulesets: list[Ruleset] = []
    claimed: set[tuple[str, str]] = set()
    ok: dict[str, str] = {}
    for reader in READERS:
        rc, text = sec.get(reader, (127, ""))
        if text.strip() == "#absent":
            continue
        if rc == 0:
            ok[reader] = text
        elif rc == 127:
            not_read.append(f"{reader}: not read: tool missing")
        elif not _absent(text):
            errors.append(f"{reader} in {ns or 'host'}: exit {rc}: {_first(text)}")
    if "iptables-nft-save" in ok:
        claimed |= nft_claimed_tables(ok["iptables-nft-save"], "ip")
    if "ip6tables-nft-save" in ok:
        claimed |= nft_claimed_tables(ok["ip6tables-nft-save"], "ip6")
    if "ebtables-nft-save" in ok:
        claimed |= nft_claimed_tables(ok["ebtables-nft-save"], "bridge")
    # the JSON of a large ruleset is a big graph of young objects: the cyclic collector would walk
    # it again and again while the model is built (a third of the parse); nothing here makes cycles
    paused = gc.isenabled()
    gc.disable()
    try:
        if "nft" in ok:
            rulesets.append(parse_nft(ok["nft"], frozenset(claimed)))
        for reader in READERS[1:]:
            if reader in ok:
                fam = "bridge" if reader.startswith("eb") else "ip6" if reader.startswith("ip6") else "ip"
                text = ebtables_list_to_save(ok[reader]) if reader == "ebtables-legacy" else ok[reader]
                rs = parse_iptables_save(text, reader.removesuffix("-save"), fam)
                if rs.chains:
                    rulesets.append(rs)
    except FilterParseError as e:
        errors.append(f"{ns or 'host'}: {e}")
    finally:
        if paused:
            gc.enable()
    bnf = sec.get("sysctl", (1, ""))[1].split()
    return NsFilters(
        ns,
        tuple(rulesets),
        bridge_nf_iptables=(bnf[0] == "1") if len(bnf) > 0 else None,
        bridge_nf_ip6tables=(bnf[1] == "1") if len(bnf) > 1 else None,
        why=why,
        errors=tuple(errors),
        not_read=tuple(not_read),
    )


def ebtables_list_to_save(text: str) -> str:
    """`ebtables-legacy -t filter -L` in ebtables-save's layout (as ebtables-legacy-save's own
    perl does; that script is not used: it lists through /usr/sbin/ebtables, which is the nft
    back end on Debian's default alternatives)."""
    chains: list[str] = []
    rules: list[str] = []
    chain = ""
    for ln in text.splitlines():
        if ln.startswith("Bridge table:"):
            continue
        if ln.startswith("Bridge chain:"):
            head = ln[len("Bridge chain:") :].strip()
            chain = head.split(",")[0].strip()
            policy = head.rpartition("policy:")[2].strip() or "ACCEPT"
            chains.append(f":{chain} {policy}")
        elif ln.strip() and chain:
            rules.append(f"-A {chain} {ln.strip()}")
    return "\n".join(["*filter", *chains, *rules]) + "\n"


def _absent(text: str) -> bool:
    """A back end with nothing to show (legacy tables not loaded, nft not in the kernel)."""
    t = text.lower()
    return any(
        s in t
        for s in ("not found", "no such file", "table does not exist", "can't initialize", "doesn't support")
    )


def _first(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")[:200]


def summary(filters: Iterable[NsFilters]) -> str:
    parts = []
    for f in filters:
        n = sum(len(c.rules) for rs in f.rulesets for c in rs.chains)
        parts.append(
            f"{f.netns or 'host'}: {n} rules ({', '.join(rs.source for rs in f.rulesets) or 'none'})"
        )
    return "; ".join(parts)
