"""Parsers: journal JSON, syslog, audit, kernel, qemu and libvirtd lines to one LogEvent.

One pass per line, built for a million lines a second's worth of budget: the line format is
found from the source (a file path) or the first bytes, the timestamp prefix is cached per
second, and one combined regex (`classify.SIGNAL`) decides whether the message is an isolation
signal; only signals get their fields parsed (AVC contexts, AppArmor profile, OOM victim...).
Nothing here makes text safe to show: messages are stored raw and shown via visible().
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from probes.logs import classify
from probes.logs.fastlog import native
from probes.logs.model import SEVERITIES, SEVERITY_RANK, LogEvent, new_event

MAX_MESSAGE = 64 * 1024
_classify = classify.classify_with  # stored; the display cuts at 16 KiB with a marker
_RANK = SEVERITY_RANK
# one tags tuple per tag, shared by every entry (an entry per signal line is built: a fresh
# one-tuple each time was one more object for the cyclic collector to walk)
_TAGS = {tag: (tag,) for tag in (*classify.SIGNAL_TAGS, classify.LIFECYCLE, classify.GUEST_CRASH)}

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

# "Nov 27 10:00:00 hv1 prog[123]: msg" and "2026-11-27T10:00:00.123+00:00 hv1 prog[123]: msg"
_SYSLOG = re.compile(
    r"(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" (?P<host>\S+) (?P<prog>[^\s:\[]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)",
    re.S,
)
# libvirtd.log: "2026-11-27 10:31:20.675+0000: 5461: error : func:673 : msg"
_LIBVIRTD = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4}): (?P<tid>\d+): (?P<lvl>\w+) : "
    r"(?:(?P<func>[\w.]+):\d+ : )?(?P<msg>.*)",
    re.S,
)
# qemu log: "2026-11-27 10:33:57.701+0000: msg" (libvirt) or "2026-11-27T10:33:59.045615Z qemu: msg"
_QEMU = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?):? (?P<msg>.*)", re.S
)
_AUDIT = re.compile(r"type=(?P<type>\S+) msg=audit\((?P<ts>\d+(?:\.\d+)?):\d+\): ?(?P<msg>.*)", re.S)
_KERNEL_AUDIT = re.compile(
    r"audit: type=(?P<type>\d+) audit\((?P<ts>\d+(?:\.\d+)?):\d+\): ?(?P<msg>.*)", re.S
)

_LIBVIRT_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "error": "err"}

_ts_cache: dict[str, float] = {}
_pairs: dict[tuple[str, str], tuple[str, str]] = {}  # a memo of signal fields' pairs (_event)


def _cached(key: str, fn) -> float:
    v = _ts_cache.get(key)
    if v is None:
        if len(_ts_cache) > 4096:
            _ts_cache.clear()
        v = _ts_cache[key] = fn(key)
    return v


def _bsd_base(s: str) -> float:
    """'Nov 27 10:00:00' (no year: this year, or last year if that would be in the future)."""
    mon = _MONTHS.get(s[:3], 1)
    day = int(s[4:6])
    hh, mm, ss = int(s[7:9]), int(s[10:12]), int(s[13:15])
    now = time.localtime()
    year = now.tm_year
    t = time.mktime((year, mon, day, hh, mm, ss, 0, 0, -1))
    if t > time.time() + 86400:
        t = time.mktime((year - 1, mon, day, hh, mm, ss, 0, 0, -1))
    return t


def _iso_base(s: str) -> float:
    """'2026-11-27T10:00:00' or with a space: seconds since the epoch, as UTC."""
    return float(
        calendar.timegm(
            (int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), int(s[17:19]), 0, 0, 0)
        )
    )


def _iso_minute(s: str) -> float:
    return _iso_base(s + ":00")


def iso_time(s: str) -> float:
    """ISO-ish timestamps of syslog, libvirt and qemu, with fraction and zone."""
    try:  # cached per minute
        base = _ts_cache.get(s[:16])
        if base is None:
            base = _cached(s[:16], _iso_minute)
        t = base + int(s[17:19])
    except (ValueError, IndexError):
        return 0.0
    rest = s[19:]
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        t += float("0" + rest[:i])
        rest = rest[i:]
    if rest and rest[0] in "+-" and len(rest) >= 5:
        z = rest[1:].replace(":", "")
        off = int(z[:2]) * 3600 + int(z[2:4]) * 60
        t -= off if rest[0] == "+" else -off
    return t


def _bsd_minute(s: str) -> float:
    return _bsd_base(s + ":00")


def _syslog_time(ts: str) -> float:
    if ts[0].isdigit():
        return iso_time(ts)
    try:  # cached per minute: 'Nov 27 10:00' + seconds
        base = _ts_cache.get(ts[:12])
        if base is None:
            base = _cached(ts[:12], _bsd_minute)
        return base + int(ts[13:15])
    except (ValueError, OverflowError):
        return 0.0


# ---------------------------------------------------------------- message sub-parsers

# the same matches as (\w+)=("(?:[^"\\]|\\.)*"|\S+), 3.5x faster: `\b` (a leftmost match
# starts where its word starts: from inside the word, the match from its start comes first),
# the quoted value unrolled (one way to read a quoted value either way: no other match), and
# possessive (a shorter run of \w, [^"\\] or \S could only be followed by a character of the
# same run, never by the `=` or `"` that must come next: giving back never helps)
_KV = re.compile(r'\b(\w++)=("[^"\\]*+(?:\\.[^"\\]*+)*+"|\S++)')
_AVC_PERMS = re.compile(r"\{ ([^}]*) \}")
_OOM_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")
_OOM_KILL = re.compile(r"oom-kill:(\S+)")
_BRIDGE = re.compile(r"(\S+): port (\d+)\((\S+)\) entered (\w+) state")
_MARTIAN = re.compile(r"martian source (\S+) from (\S+), on dev (\S+)")
_KVM_PID = re.compile(r"kvm \[(\d+)\]")
_HEX = re.compile(r"[0-9A-F]+")


_HEX_KEYS = frozenset({"comm", "path", "name", "exe", "profile", "cwd"})


def _unquote(k: str, v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    # audit writes a string with spaces or specials unquoted, as hex (comm=6E616D65)
    if k in _HEX_KEYS and len(v) >= 2 and len(v) % 2 == 0 and _HEX.fullmatch(v):
        try:
            return bytes.fromhex(v).decode("utf-8", "replace")
        except ValueError:
            return v
    return v


_AUDIT_KEYS = (
    "scontext",
    "tcontext",
    "tclass",
    "comm",
    "path",
    "name",
    "pid",
    "profile",
    "operation",
    "requested_mask",
    "denied_mask",
    "apparmor",
    "exe",
    "permissive",
)


_AUDIT_KEYSET = frozenset(_AUDIT_KEYS)


def audit_pairs(msg: str, keys: frozenset[str], hexkeys: frozenset[str]) -> list[tuple[str, str]]:
    """The wanted key=value pairs of an audit record, unquoted, a key seen twice keeping its
    first value (the reference of probes/logs/_fastlog.c's audit_pairs)."""
    # _unquote's common case inline (a quoted value)
    out = [
        (k, v[1:-1] if len(v) >= 2 and v[0] == '"' and v[-1] == '"' else _unquote(k, v))
        for k, v in _KV.findall(msg)
        if k in keys
    ]
    if len(dict(out)) != len(out):
        first: dict[str, str] = {}
        for k, v in out:
            first.setdefault(k, v)
        out = list(first.items())
    return out


def audit_fields(msg: str) -> tuple[tuple[str, str], ...]:
    """Key fields of an AVC or AppArmor record, unquoted (hex-encoded values decoded)."""
    fast = native()
    out = (fast.audit_pairs if fast is not None else audit_pairs)(msg, _AUDIT_KEYSET, _HEX_KEYS)
    m = _AVC_PERMS.search(msg)
    if m:
        out.append(("perms", m.group(1).strip()))
    return tuple(out)


def signal_fields(tag: str, msg: str) -> tuple[tuple[str, str], ...]:
    """Fields for a classified message (only signals pay for this)."""
    if tag == classify.MAC_DENIAL:
        return audit_fields(msg)
    if tag == classify.OOM_KILL or tag == classify.OOM_CONTEXT:
        out = []
        m = _OOM_KILLED.search(msg)
        if m:
            out += [("pid", m.group(1)), ("comm", m.group(2))]
        m = _OOM_KILL.search(msg)
        if m:
            for part in m.group(1).split(","):
                k, _, v = part.partition("=")
                if k in ("task_memcg", "oom_memcg", "task", "pid", "uid"):
                    out.append((k, v))
        return tuple(out)
    if tag == classify.BRIDGE_PORT:
        m = _BRIDGE.search(msg)
        return (("bridge", m.group(1)), ("port", m.group(3)), ("state", m.group(4))) if m else ()
    if tag == classify.MARTIAN:
        m = _MARTIAN.search(msg)
        return (("src", m.group(1)), ("dst", m.group(2)), ("dev", m.group(3))) if m else ()
    if tag == classify.QEMU_ERROR:
        m = _KVM_PID.search(msg)
        return (("pid", m.group(1)),) if m else ()
    if tag == classify.DISK_LOCK:
        return disk_lock_fields(msg)
    return ()


_LOCK_PERM = re.compile(r'Failed to get (shared )?"([a-z ]+)" lock')
# where qemu's message names the image: its hint, a -blockdev JSON, a -drive option
_LOCK_DISK = (
    re.compile(r"Is another process using the image \[([^\]]+)\]\?"),
    re.compile(r'"filename":"((?:[^"\\]|\\.)+)"'),
    re.compile(r"-drive (?:[^ ]*,)?file=([^,: ]+)"),
    re.compile(r"Could not open '([^']+)'"),
)


def disk_lock_fields(msg: str) -> tuple[tuple[str, str], ...]:
    """("lock", "write" / "shared write"), ("disk", PATH) of a qemu image-lock failure."""
    out: list[tuple[str, str]] = []
    m = _LOCK_PERM.search(msg)
    if m:
        out.append(("lock", (m.group(1) or "") + m.group(2)))
    for rx in _LOCK_DISK:
        d = rx.search(msg)
        if d:
            out.append(("disk", d.group(1)))
            break
    return tuple(out)


def shared_fields(
    fields: tuple[tuple[str, str], ...], memo: dict[tuple[str, str], tuple[str, str]], want_pid: bool
) -> tuple[tuple[tuple[str, str], ...], int]:
    """The fields as the memo's pair objects (the same (key, value) pair object for every entry
    that has it: a profile, a context, comm=qemu...: fewer new objects for the cyclic collector
    to walk), and when `want_pid` the first digits `pid` field as a number (else 0). The
    reference of probes/logs/_fastlog.c's shared_fields."""
    fields = tuple(map(memo.setdefault, fields, fields))
    if want_pid:
        for k, v in fields:
            if k == "pid" and v.isdigit():
                return fields, int(v)
    return fields, 0


def _event(
    at: float,
    host: str,
    source: str,
    severity: str,
    msg: str,
    kind: str,
    program: str = "",
    pid: int = 0,
    extra: tuple[tuple[str, str], ...] = (),
) -> LogEvent:
    if len(msg) > MAX_MESSAGE:
        msg = msg[:MAX_MESSAGE]
    fast = native()
    make = fast.new_event if fast is not None else new_event
    tag, sev = _classify(fast, msg)
    if tag:
        fields = signal_fields(tag, msg)
        if extra:
            fields = extra + fields
        if len(_pairs) > 8192:
            _pairs.clear()
        fields, found = (fast.shared_fields if fast is not None else shared_fields)(fields, _pairs, not pid)
        pid = pid or found
        if sev is not None and _RANK.get(sev, 6) < _RANK.get(severity, 6):  # classify.more_severe
            severity = sev
        return make(
            at,
            host,
            source,
            severity,
            msg,
            "",
            "",
            _TAGS.get(tag) or (tag,),
            0,
            kind,
            program,
            pid,
            fields,
            "",
            "",
            "",
        )
    if severity == "err" and kind in ("qemu", "libvirtd"):
        tag = classify.QEMU_ERROR if kind == "qemu" else classify.LIBVIRT_ERROR
        return make(
            at, host, source, severity, msg, "", "", _TAGS[tag], 0, kind, program, pid, extra, "", "", ""
        )
    return make(at, host, source, severity, msg, "", "", (), 0, kind, program, pid, extra, "", "", "")


# ---------------------------------------------------------------- line formats


def split_syslog(line: str) -> tuple[str, str, str, str | None, str] | None:
    """(ts, host, prog, pid or None, msg) of a syslog line, None for another line (the
    reference of probes/logs/_fastlog.c's split_syslog)."""
    m = _SYSLOG.match(line)
    return m.groups() if m else None  # type: ignore[return-value]


def parse_syslog(line: str, host: str, source: str) -> LogEvent:
    fast = native()
    return _syslog(fast.split_syslog(line) if fast is not None else split_syslog(line), line, host, source)


def _syslog(g: tuple[str, str, str, str | None, str] | None, line: str, host: str, source: str) -> LogEvent:
    """parse_syslog of a line split (split_syslog) already."""
    if g is None:
        return parse_plain(line, host, source)
    ts, hostname, prog, pid, msg = g
    at = _syslog_time(ts)
    if prog == "kernel":
        return parse_kernel(msg, at, hostname if host == "" else host, source)
    if prog == "audit" or msg.startswith("type="):
        am = _AUDIT.match(msg)
        if am:
            return _event(
                at,
                host,
                source,
                "notice",
                am.group("msg"),
                "audit",
                prog,
                int(pid) if pid else 0,
                (("type", am.group("type")),),
            )
    return _event(at, host, source, "info", msg, "syslog", prog, int(pid) if pid else 0)


def kernel_head(msg: str) -> tuple[int, tuple[str, str, str] | None]:
    """(pos, audit) of a kernel message: pos is past its "[12345.678901] " uptime prefix
    (dmesg-style lines: its "] " within the first 20 characters), audit the (ts, type, inner
    message) of its audit header, None when it has none. The reference of
    probes/logs/_fastlog.c's kernel_head."""
    pos = msg.find("] ", 0, 20) + 2 if msg.startswith("[") else 0
    if pos == 1:
        pos = 0
    if msg.startswith("audit: ", pos):
        am = _KERNEL_AUDIT.match(msg, pos)
        if am:
            return pos, am.group("ts", "type", "msg")
    return pos, None


def parse_kernel(msg: str, at: float, host: str, source: str, severity: str = "info") -> LogEvent:
    fast = native()
    pos, audit = fast.kernel_head(msg) if fast is not None else kernel_head(msg)
    if audit is not None:
        ts, typ, inner = audit
        return _event(float(ts), host, source, "notice", inner, "audit", "kernel", 0, (("type", typ),))
    return _event(at, host, source, severity, msg[pos:] if pos else msg, "kernel", "kernel")


def parse_audit(line: str, host: str, source: str) -> LogEvent:
    # audit.log may carry "node=HOST " before type=
    if line.startswith("node="):
        _, _, line = line.partition(" ")
    m = _AUDIT.match(line)
    if not m:
        return parse_plain(line, host, source)
    return _event(
        float(m.group("ts")),
        host,
        source,
        "notice",
        m.group("msg"),
        "audit",
        "audit",
        0,
        (("type", m.group("type")),),
    )


def parse_libvirtd(line: str, host: str, source: str) -> LogEvent:
    m = _LIBVIRTD.match(line)
    if not m:
        return parse_plain(line, host, source, kind="libvirtd")
    sev = _LIBVIRT_LEVELS.get(m.group("lvl"), "info")
    extra = (("func", m.group("func")),) if m.group("func") else ()
    return _event(
        iso_time(m.group("ts")), host, source, sev, m.group("msg"), "libvirtd", "libvirtd", 0, extra
    )


def parse_qemu(line: str, host: str, source: str, *, last_at: float = 0.0) -> LogEvent:
    m = _QEMU.match(line)
    if not m:
        # command-line continuation lines and qemu's own untimed messages
        return _event(last_at, host, source, "info", line, "qemu", "qemu")
    msg = m.group("msg")
    sev = "info"
    error = "error" in msg.lower()
    if error or (msg.startswith("qemu-system") and ": " in msg and "terminating" not in msg):
        sev = "err" if error else "warning"
    return _event(iso_time(m.group("ts")), host, source, sev, msg, "qemu", "qemu")


def parse_plain(line: str, host: str, source: str, kind: str = "text") -> LogEvent:
    return _event(0.0, host, source, "info", line, kind)


def parser_for(source: str):
    """The line parser for a file source (by its path), syslog for anything unknown."""
    path = source[5:] if source.startswith("file:") else source
    if "/audit/" in path or path.endswith("audit.log"):
        return parse_audit
    if "/libvirt/qemu/" in path:
        return parse_qemu
    if path.endswith("libvirtd.log"):
        return parse_libvirtd
    return parse_auto


def parse_auto(line: str, host: str, source: str) -> LogEvent:
    """Sniff the format from the first bytes."""
    if line.startswith("type="):
        return parse_audit(line, host, source)
    dated = len(line) > 20 and line[4:5] == "-" and line[7:8] == "-"
    if dated and line[10:11] == " ":
        if _LIBVIRTD.match(line):
            return parse_libvirtd(line, host, source)
        return parse_qemu(line, host, source)
    fast = native()
    g = fast.split_syslog(line) if fast is not None else split_syslog(line)
    if g is None and dated:
        return parse_qemu(line, host, source)
    return _syslog(g, line, host, source)


# ---------------------------------------------------------------- journal JSON


def _jstr(v: Any) -> str:
    """A journal field: a string, a list of byte values (binary/control chars), or a list of
    those (a field repeated); decoded as UTF-8 with replacement characters."""
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        if v and all(isinstance(b, int) for b in v):
            try:
                return bytes(v).decode("utf-8", "replace")
            except ValueError:
                return "".join(chr(0xFFFD) for _ in v)
        return "\n".join(_jstr(x) for x in v)
    if v is None:
        return ""
    return str(v)


def parse_journal_obj(obj: Mapping[str, Any], host: str, source: str = "journal") -> LogEvent:
    msg = _jstr(obj.get("MESSAGE"))
    try:
        at = int(_jstr(obj.get("__REALTIME_TIMESTAMP") or "0")) / 1e6
    except ValueError:
        at = 0.0
    try:
        prio = int(_jstr(obj.get("PRIORITY") or "6"))
        sev = SEVERITIES[prio] if 0 <= prio < 8 else "info"
    except ValueError:
        sev = "info"
    prog = _jstr(obj.get("SYSLOG_IDENTIFIER") or obj.get("_COMM") or "")
    try:
        pid = int(_jstr(obj.get("_PID") or obj.get("SYSLOG_PID") or "0"))
    except ValueError:
        pid = 0
    extra = []
    for k in ("_SYSTEMD_UNIT", "_SYSTEMD_CGROUP", "_HOSTNAME"):
        v = obj.get(k)
        if v:
            extra.append((k.lstrip("_").lower(), _jstr(v)))
    transport = _jstr(obj.get("_TRANSPORT") or "")
    if transport == "kernel" or prog == "kernel":
        e = parse_kernel(msg, at, host, source, sev)
    elif transport == "audit" or msg.startswith("type="):
        am = _AUDIT.match(msg)
        e = _event(
            at,
            host,
            source,
            sev,
            am.group("msg") if am else msg,
            "audit",
            prog or "audit",
            pid,
            (("type", am.group("type")),) if am else (),
        )
    else:
        kind = (
            "qemu"
            if prog.startswith("qemu")
            else "libvirtd"
            if prog in ("libvirtd", "virtqemud")
            else "journal"
        )
        e = _event(at, host, source, sev, msg, kind, prog, pid)
    if extra:
        from dataclasses import replace

        e = replace(e, fields=e.fields + tuple(extra), pid=e.pid or pid)
    return e


def parse_journal_line(line: str, host: str, source: str = "journal") -> tuple[LogEvent, str]:
    """One `journalctl -o json` line: (entry, cursor). Bad JSON becomes a plain entry."""
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
    except ValueError:
        return parse_plain(line, host, source, kind="journal"), ""
    return parse_journal_obj(obj, host, source), _jstr(obj.get("__CURSOR") or "")


# ---------------------------------------------------------------- libvirt events

# virsh event --timestamp: "2026-11-27 10:33:58.028+0000: event 'lifecycle' for domain 'NAME': Started Booted"
_VIRSH_EVENT = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4}): event '(?P<ev>[\w-]+)' for domain '(?P<dom>.*)': ?(?P<detail>.*)",
    re.S,
)
_NOISY_EVENTS = frozenset({"balloon-change", "rtc-change", "metadata-change", "memory-device-size-change"})


def parse_virsh_event(line: str, host: str, source: str = "libvirt-events") -> LogEvent | None:
    """A `virsh event --all --loop --timestamp` line; None for noise and non-events."""
    m = _VIRSH_EVENT.match(line)
    if not m:
        return None
    ev = m.group("ev")
    if ev in _NOISY_EVENTS:
        return None
    dom, detail = m.group("dom"), m.group("detail")
    msg = f"domain {dom}: {ev} {detail}".rstrip()
    first = detail.split(" ", 1)[0] if detail else ""
    sev = "info"
    tags: tuple[str, ...] = (classify.LIFECYCLE,)
    if (
        (ev == "lifecycle" and first == "Crashed")
        or ev in ("watchdog", "io-error", "io-error-reason")
        or (ev == "lifecycle" and "Crashed" in detail)
        or ev == "control-error"
    ):
        sev = "err"
        tags = (classify.GUEST_CRASH,)
    return LogEvent(
        iso_time(m.group("ts")),
        host,
        source,
        sev,
        msg,
        tags=tags,
        kind="lifecycle",
        program="libvirt",
        fields=(("domain", dom), ("event", ev), ("detail", detail)),
    )


def tenantscope_event(
    at: float, host: str, severity: str, msg: str, fields: tuple[tuple[str, str], ...] = ()
) -> LogEvent:
    return LogEvent(
        at, host, "tenantscope", severity, msg, kind="tenantscope", program="tenantscope", fields=fields
    )
