"""Lazy log lines: a source's new lines are kept as one block of bytes (a local file's new
bytes, a remote follower's frame, journalctl's JSON lines gathered as they stream); only the
lines that may matter are parsed when they arrive, the others when someone looks at them.

One compiled pattern over the whole block (RE2 when installed: a DFA, the same class of speed
as grep; else Python's re, same answers; for a file's block the native scan of
probes/logs/_fastlog.c when built, same answers, lines counted in the same pass) finds the
*candidates*, whole lines that contain:
- a signal needle (classify._NEEDLES: every signal pattern contains one);
- an audit record (`msg=audit(`: such a line may teach the attributor a PID);
- after a date at the start of the line, `error` (qemu's and libvirtd's `err` lines are
  tagged qemu-error or libvirt-error by their kind);
(the journal has its own pattern: JOURNAL_CANDIDATE_PATTERN).
Candidates are parsed, classified and attributed at ingest, exactly as before. Every other
line stays raw bytes in its Chunk: it cannot carry a tag and it teaches no PID; it is parsed
and attributed only when the Logs pane shows, filters or searches it, then cached in the
chunk. Lines that may be warnings (a dated line with `qemu-system` or `: warning : `) are found by
a second pattern over the chunk when a severity filter first asks (`Chunk.maybe`); the rest
are notice or lower (`LazyLine.quiet`): such a filter drops them without parsing.

Results equal parsing every line in arrival order (tests/logs/test_logs_lazy.py proves it
against the per-line path on the corpus, the real messages, the hostile lines and the bench):
- untimed lines (a qemu command line) take the time of the timed line before them, found by
  walking back (the chunk knows the time its source had before it: `prev_at`);
- a lazy line is attributed with the PIDs the attributor knew when the line arrived
  (Attributor.pid_at, by arrival order), never with those learned after;
- a lazy line without a workload is attributed again when the index changed (what the
  service's re-attribution does for parsed entries).
"""

from __future__ import annotations

import functools
import gc
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from probes.logs import classify, parsers
from probes.logs.fastlog import native
from probes.logs.model import LogEvent

if TYPE_CHECKING:
    from probes.logs.attribute import Attributor


@functools.cache
def _re2() -> Any:
    """google-re2 (a DFA scans a block ~3x faster than re's backtracking alternation), imported
    with the first pattern compiled: a console whose hosts send no log line does not carry it
    (~2.5 MiB resident with libstdc++; issue 16). None: not installed, Python's re is used."""
    try:
        import re2
    except ImportError:  # pragma: no cover - the dependency is in pyproject
        return None
    return re2


_NEEDLE_ALT = "|".join(re.escape(n) for n in (*classify._NEEDLES, "msg=audit("))
# a digit as the parsers' str patterns see it (\d: any Unicode digit, 2-4 bytes in UTF-8)
_D = r"(?:[0-9]|[\x80-\xff]{2,4})"
_DATE = rf"{_D}{{4}}-{_D}{{2}}-{_D}{{2}}"
# whole lines; the date branch is anchored at the line start, the needles anywhere in it
CANDIDATE_PATTERN = rf"(?m)^(?:{_DATE}[^\n]*[Ee][Rr][Rr][Oo][Rr]|[^\n]*(?:{_NEEDLE_ALT}))[^\n]*"
# the other lines that may be warnings (qemu's `qemu-system...: ` lines, libvirtd's warning
# level): looked for only when a severity filter asks (Chunk.maybe)
MAYBE_WARNING_PATTERN = rf"(?m)^{_DATE}[^\n]*(?:qemu-system|: warning : )[^\n]*"


def _compile(pattern: str) -> Any:
    """RE2 over bytes as Latin-1 (every byte one character: invalid UTF-8 from a hostile host
    matches like any byte), else Python's re over bytes."""
    re2 = _re2()
    if re2 is not None:
        opts = re2.Options()
        opts.encoding = re2.Options.Encoding.LATIN1
        return re2.compile(pattern.encode("latin-1"), opts)
    return re.compile(pattern.encode("latin-1"))  # pragma: no cover


# The journal's `journalctl -o json` lines: the needles (journalctl escapes only `"`, `\` and
# sends messages with control characters as byte lists), and every entry whose parse may give a
# tag or teach a PID without a needle: a message as a list (bytes, repeated field), an audit
# record, a program that may be qemu, a priority other than 4-7 (err and worse: qemu-error /
# libvirt-error by kind; anything int() reads unlike a plain digit).
JOURNAL_CANDIDATE_PATTERN = (
    rf"(?m)^[^\n]*(?:{_NEEDLE_ALT}|audit: type=|" + r'"MESSAGE":\[|"MESSAGE":"type=|"_TRANSPORT":"audit"|'
    r'"SYSLOG_IDENTIFIER":(?:\[|"qemu)|"_COMM":(?:\[|"qemu)|"PRIORITY":"(?:[0-3]|[^0-9"]|[0-9][^"])'
    r")[^\n]*"
)
JOURNAL_MAYBE_WARNING_PATTERN = r'(?m)^[^\n]*"PRIORITY":"4"[^\n]*'


class Patterns(NamedTuple):
    candidate: Any
    maybe_warning: Any
    journal_candidate: Any
    journal_maybe_warning: Any


@functools.cache
def patterns() -> Patterns:
    """The four patterns, compiled when the first block arrives."""
    return Patterns(
        _compile(CANDIDATE_PATTERN),
        _compile(MAYBE_WARNING_PATTERN),
        _compile(JOURNAL_CANDIDATE_PATTERN),
        _compile(JOURNAL_MAYBE_WARNING_PATTERN),
    )


_ALL: frozenset[int] = frozenset({-2})  # marker: every line (compared by identity)
_NONE: frozenset[int] = frozenset({-1})


def tenant_pattern(att: Attributor, host: str, tenant: str | None, journal: bool) -> Any:
    """A pattern every lazy line attributed to `tenant` matches somewhere (and few others):
    one of the tenant's index keys (tokens are found in the message, part of the line), one of
    its PIDs as the parsers read them (`[PID]`), and the lines a byte-level look cannot judge
    (non-ASCII bytes; in the journal a backslash, a cgroup or unit field, a PID field). None:
    no line can be the tenant's by these ways. tenant None: any tenant but none ("")."""
    from probes.logs.attribute import Hit

    alts = sorted(
        re.escape(k)
        for k, h in att.index.combined(host).items()
        if isinstance(h, Hit) and (h.tenant == tenant if tenant is not None else h.tenant != "") and k
    )
    pids = att.pids_of(host, tenant)
    if pids and not journal:
        alts.append(r"\[0*(?:" + "|".join(str(p) for p in sorted(pids)) + r")\]")
    if not alts:
        return None
    alts.append(r"[\x80-\xff]")
    if journal:
        alts += [r"\\", '"_SYSTEMD_CGROUP":', '"_SYSTEMD_UNIT":']
        if pids:
            alts += ['"_PID":', '"SYSLOG_PID":']
    return _compile("|".join(alts))


def tenant_rx(att: Attributor, host: str, tenant: str | None, journal: bool) -> Any:
    """tenant_pattern, compiled again only when the index changed or a PID was learned."""
    key = (host, tenant, journal)
    c = att.lazy_cache.get(key)
    if c is not None and c[0] is att.index and c[1] == att.pid_version:
        return c[2]
    rx = tenant_pattern(att, host, tenant, journal)
    att.lazy_cache[key] = (att.index, att.pid_version, rx)
    return rx


def _line_numbers(rx: Any, data: bytes) -> list[int]:
    """Line numbers (from 0) of the lines of `data` a whole-line pattern matches."""
    out = []
    count = data.count
    line = prev = 0
    for m in rx.finditer(data):
        start = m.start()
        line += count(b"\n", prev, start)
        prev = start
        out.append(line)
    return out


def candidates(data: bytes, rx: Any = None) -> list[tuple[int, int]]:
    """(start, end) of every candidate line of a block of complete lines (end excludes \\n).
    With RE2, its compiled regexp is asked directly (what re2's finditer does for bytes, less
    a Python match object per line: a quarter of the scan's cost at 100,000 candidates)."""
    if rx is None:
        rx = patterns().candidate
    regexp = getattr(rx, "_regexp", None)
    re2 = _re2()
    if regexp is None or re2 is None:
        return [m.span() for m in rx.finditer(data)]
    match, unanchored = regexp.Match, re2._Anchor.UNANCHORED
    out: list[tuple[int, int]] = []
    pos = 0
    end = len(data)
    while True:
        span = match(unanchored, data, pos, end)[0]
        if span[0] < 0:
            return out
        out.append(span)
        if span[1] == end:
            return out
        pos = span[1] if span[1] > pos else pos + 1  # (an empty match: step on, as finditer)


def candidate_lines(data: bytes, rx: Any = None) -> tuple[list[tuple[int, int, int]], int]:
    """(line number from 0, start, end) of every candidate line of a block, and its number of
    newlines (the reference of probes/logs/_fastlog.c's candidate_lines, which does both in one
    pass for a file's block: CANDIDATE_PATTERN)."""
    count = data.count
    out = []
    line = prev = 0
    for start, end in candidates(data, rx):
        line += count(b"\n", prev, start)
        prev = start
        out.append((line, start, end))
    return out, line + count(b"\n", prev)


# CANDIDATE_PATTERN's needles, for the native scan
NEEDLES = tuple(n.encode("latin-1") for n in (*classify._NEEDLES, "msg=audit("))


def _journal_parse(line: str, host: str, source: str) -> LogEvent:
    return parsers.parse_journal_line(line, host, source)[0]


class SourceContext:
    """What a source carries from one block to the next: its parser, its patterns and the
    time of its last timed line (untimed lines of a file take it; journal entries do not)."""

    __slots__ = ("host", "journal", "last_at", "parse", "retime", "source")

    def __init__(
        self,
        host: str,
        source: str,
        parse: Callable[[str, str, str], LogEvent] | None = None,
        *,
        journal: bool = False,
    ):
        self.host = host
        self.source = source
        self.parse = parse or (_journal_parse if journal else parsers.parser_for(source))
        self.journal = journal
        self.retime = not journal
        self.last_at = 0.0

    @property
    def candidate(self) -> Any:
        p = patterns()
        return p.journal_candidate if self.journal else p.candidate

    @property
    def maybe(self) -> Any:
        p = patterns()
        return p.journal_maybe_warning if self.journal else p.maybe_warning


class Chunk:
    """One block of complete lines of one source, numbered from `first_seq` in the ring."""

    __slots__ = (
        "_attributed",
        "_index",
        "_lines",
        "_lock",
        "_maybe",
        "_parsed",
        "_tenants",
        "att",
        "data",
        "first_seq",
        "host",
        "n",
        "order0",
        "parse",
        "prev_at",
        "retime",
        "rx_maybe",
        "source",
    )

    def __init__(
        self, data: bytes, ctx: SourceContext, att: Attributor, order0: int, prev_at: float, n: int = -1
    ) -> None:
        self.data = data
        self.n = data.count(b"\n") if n < 0 else n  # (ingest counts them while it looks for candidates)
        self.host = ctx.host
        self.source = ctx.source
        self.parse = ctx.parse
        self.retime = ctx.retime
        self.rx_maybe = ctx.maybe
        self.att = att
        self.order0 = order0  # the attributor's arrival order of line 0
        self.prev_at = prev_at
        self.first_seq = 0  # set by the ring
        self._maybe: frozenset[int] | None = None
        self._tenants: tuple[object, dict[str | None, frozenset[int]]] = (None, {})
        self._lines: list[bytes] | None = None
        self._parsed: dict[int, LogEvent] = {}  # lazy lines parsed (and re-timed), not attributed
        self._attributed: dict[int, LogEvent] = {}
        self._index: object = att.index
        self._lock = threading.Lock()  # the pane (loop) and a filter worker may both ask

    @property
    def maybe(self) -> frozenset[int]:
        """Lines that may be warnings though not candidates (found on first use, cached)."""
        m = self._maybe
        if m is None:
            m = self._maybe = frozenset(_line_numbers(self.rx_maybe, self.data))
        return m

    def may_be_tenant(self, tenant: str | None, i: int) -> bool:
        """False when lazy line i cannot be attributed to `tenant` (non-empty): found by one
        pattern over the chunk per tenant (cached while the index stays), without parsing."""
        att = self.att
        idx, per = self._tenants
        if idx is not att.index:
            per = {}
            self._tenants = (att.index, per)
        lines = per.get(tenant)
        if lines is None:
            lines = per[tenant] = self._tenant_lines(tenant)
        return lines is _ALL or i in lines

    def _tenant_lines(self, tenant: str | None) -> frozenset[int]:
        """(tenant None: any tenant but none)"""
        att = self.att
        if "/qemu/" in self.source:  # a domain's log file: its lines are the domain's
            fh = att._file(self.host, self.source)
            if fh is not None:
                same = fh.tenant == tenant if tenant is not None else fh.tenant != ""
                return _ALL if same else _NONE
        rx = tenant_rx(att, self.host, tenant, not self.retime)
        return frozenset(_line_numbers(rx, self.data)) if rx is not None else _NONE

    def lines(self) -> list[bytes]:
        if self._lines is None:
            self._lines = self.data.split(b"\n")
        return self._lines

    def raw(self, i: int) -> bytes:
        return self.lines()[i]

    def _parse_bytes(self, raw: bytes) -> LogEvent:
        text = raw.decode("utf-8", "replace")
        try:
            return self.parse(text, self.host, self.source)
        except Exception as e:  # a parser bug must not lose the line
            return parsers.parse_plain(text, "", "?", kind=f"unparsed: {e}"[:40])

    def _parse_raw(self, i: int) -> LogEvent:
        return self._parse_bytes(self.lines()[i])

    def parsed(self, i: int) -> LogEvent:
        """Line i parsed, with the time of the line before when it has none."""
        e = self._parsed.get(i)
        if e is not None:
            return e
        e = self._parse_raw(i)
        if not e.at and self.retime:
            at = self._at_before(i)
            if at:
                e = replace(e, at=at)
        self._parsed[i] = e
        return e

    def _at_before(self, i: int, start: int = -1) -> float:
        """The time of the nearest timed line before line i (which starts at byte `start`
        when known: then walked back in the bytes, without splitting the chunk)."""
        return self._at_back(i - 1, start - 1 if start > 0 else -1)

    def _at_back(self, j: int, end: int) -> float:
        """From line j (ending at byte `end`, its newline, when known) back to a timed line."""
        data = self.data
        while j >= 0:
            p = self._parsed.get(j) or self._attributed.get(j)
            if p is not None:
                return p.at  # already re-timed
            if end >= 0 and self._lines is None:
                start = data.rfind(b"\n", 0, end) + 1
                at = self._parse_bytes(data[start:end]).at
                end = start - 1
            else:
                at = self._parse_raw(j).at
            if at:
                return at
            j -= 1
        return self.prev_at

    def last_at(self) -> float:
        """The time of the last timed line (what the next chunk's untimed lines take)."""
        return self._at_back(self.n - 1, len(self.data) - 1)

    def event(self, i: int) -> LogEvent:
        """Line i parsed and attributed (cached; again when the index changed and it had no
        workload)."""
        with self._lock:
            att = self.att
            if self._index is not att.index:
                self._index = att.index
                self._attributed = {k: v for k, v in self._attributed.items() if v.workload}
            e = self._attributed.get(i)
            if e is None:
                e = att.attribute(self.parsed(i), self.order0 + i, late=True)
                if self.first_seq and e.seq != self.first_seq + i:
                    object.__setattr__(e, "seq", self.first_seq + i)  # ours: made for this line
                self._attributed[i] = e
            return e


def ingest(data: bytes, ctx: SourceContext, att: Attributor) -> tuple[Chunk, dict[int, LogEvent]]:
    """A block of complete lines -> its chunk and its candidates, parsed and attributed (line
    index -> entry), in arrival order. Advances the attributor's arrival order by every line."""
    order0 = att.advance(0)
    chunk = Chunk(data, ctx, att, order0, ctx.last_at, n=0)  # its lines are counted below
    found: dict[int, LogEvent] = {}
    # the entries of a block are young objects that make no cycles: the cyclic collector
    # walked them (and, every few blocks, the whole heap) again and again while they were
    # built, ~30% of ingest's CPU (bench.logs); paused per block, as probes/network/filterread
    # does for a ruleset (the next allocation after it collects the young ones once)
    paused = gc.isenabled()
    gc.disable()
    try:
        chunk.n = _ingest_lines(data, ctx, att, chunk, order0, found)
    finally:
        if paused:
            gc.enable()
    att.advance(chunk.n)
    if chunk.n and ctx.retime:
        ctx.last_at = chunk.last_at()
    return chunk, found


def _ingest_lines(
    data: bytes, ctx: SourceContext, att: Attributor, chunk: Chunk, order0: int, found: dict[int, LogEvent]
) -> int:
    """Parses and attributes the candidates (their orders given: the attributor's clock is
    advanced after); returns the number of lines, counted on the way (one pass, not two)."""
    if not data:
        return 0
    fast = None if ctx.journal else native()
    spans: list[tuple[int, int, int, str]]
    n: int
    if fast is not None:
        spans, n = fast.candidate_lines(data, NEEDLES, True)  # (the lines decoded too)
    else:
        found3, n = candidate_lines(data, ctx.candidate)
        spans = [(line, a, b, data[a:b].decode("utf-8", "replace")) for line, a, b in found3]
    parse = ctx.parse
    host, source = ctx.host, ctx.source
    for line, start, _end, text in spans:
        try:
            e = parse(text, host, source)
        except Exception as ex:  # a parser bug must not lose the line
            e = parsers.parse_plain(text, "", "?", kind=f"unparsed: {ex}"[:40])
        if not e.at and ctx.retime:
            at = chunk._at_before(line, start)
            if at:
                e = replace(e, at=at)
        e = att.attribute(e, order=order0 + line, fresh=True)  # (fresh from parse)
        chunk._attributed[line] = e
        found[line] = e
    return n


class LazyLine:
    """A line of a chunk, handed out by the ring: reads like a LogEvent, parses on demand."""

    __slots__ = ("chunk", "i")

    def __init__(self, chunk: Chunk, i: int) -> None:
        self.chunk = chunk
        self.i = i

    def __repr__(self) -> str:
        return f"LazyLine({self.chunk.source}#{self.seq})"

    @property
    def event(self) -> LogEvent:
        return self.chunk.event(self.i)

    def may_be_tenant(self, tenant: str | None) -> bool:
        return self.chunk.may_be_tenant(tenant, self.i)

    @property
    def quiet(self) -> bool:
        """No tag, and severity notice or lower: a severity filter from warning up drops it
        unparsed (the others may be warnings: parsed when filtered)."""
        return self.i not in self.chunk.maybe

    @property
    def raw(self) -> bytes:
        return self.chunk.raw(self.i)

    @property
    def message_in_raw(self) -> bool:
        """The message is part of the raw line as it stands (a file's line); a journal
        line is JSON, where `"` and `\\` are escaped."""
        return self.chunk.retime

    @property
    def seq(self) -> int:
        return self.chunk.first_seq + self.i

    @property
    def host(self) -> str:
        return self.chunk.host

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def tags(self) -> tuple[str, ...]:
        return ()

    @property
    def at(self) -> float:
        return self.chunk.parsed(self.i).at

    @property
    def severity(self) -> str:
        return self.chunk.parsed(self.i).severity

    @property
    def message(self) -> str:
        return self.chunk.parsed(self.i).message

    @property
    def kind(self) -> str:
        return self.chunk.parsed(self.i).kind

    @property
    def program(self) -> str:
        return self.chunk.parsed(self.i).program

    @property
    def pid(self) -> int:
        return self.chunk.parsed(self.i).pid

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        return self.chunk.parsed(self.i).fields

    def field(self, name: str) -> str:
        return self.chunk.parsed(self.i).field(name)

    @property
    def tenant(self) -> str:
        return self.event.tenant

    @property
    def workload(self) -> str:
        return self.event.workload

    @property
    def attributed_by(self) -> str:
        return self.event.attributed_by

    @property
    def target_tenant(self) -> str:
        return ""

    @property
    def target_workload(self) -> str:
        return ""


def materialize(e: Any) -> LogEvent:
    """A LogEvent for an entry of the ring (a LazyLine is parsed and attributed)."""
    return e.event if type(e) is LazyLine else e
