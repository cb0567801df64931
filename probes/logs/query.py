"""Filters and search over log entries: pure, so the pane, `check` and tests share them.

A filter is typed as words: `tenant:acme host:hv1 source:journal sev:warning tag:oom-kill`
plus free words that must all appear (case-insensitive). `tenant:-` keeps unattributed
entries; `source:file` matches every file source (prefix match). A search is a literal
(case-insensitive) or a Python regular expression; a bad pattern is refused with a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from probes.logs.lazy import LazyLine
from probes.logs.model import SEVERITIES, SEVERITY_RANK, LogEntry

KEYS = ("tenant", "host", "source", "sev", "tag", "workload")


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    tenant: str | None = None  # "" = unattributed only
    host: str | None = None
    source: str | None = None  # prefix
    min_severity: str | None = None  # this or more severe
    tag: str | None = None
    workload: str | None = None  # substring of the workload key
    words: tuple[str, ...] = ()  # lower-case
    seqs: frozenset[tuple[str, int]] | None = None  # jump-from-finding: exactly these entries
    chosen: str = ""  # with seqs: what they are, for the status line ("the evidence of VM-09")

    @property
    def empty(self) -> bool:
        return self == Query()

    def matches(self, e: LogEntry) -> bool:
        if self.seqs is not None:
            return (e.host, e.seq) in self.seqs
        if (
            self.tenant is not None
            and e.tenant != self.tenant
            and not (self.tenant and e.target_tenant == self.tenant)
        ):
            return False
        if self.host is not None and e.host != self.host:
            return False
        if self.source is not None and not e.source.startswith(self.source):
            return False
        if (
            self.min_severity is not None
            and SEVERITY_RANK.get(e.severity, 6) > SEVERITY_RANK[self.min_severity]
        ):
            return False
        if self.tag is not None and self.tag not in e.tags:
            return False
        if self.workload is not None and self.workload not in e.workload:
            return False
        if self.words:
            low = e.message.lower()
            return all(w in low for w in self.words)
        return True

    def predicate(self) -> Callable[[LogEntry], bool]:
        """`matches` specialised to the fields this query uses (a rebuild over 100,000
        entries must fit between two key presses)."""
        if self.seqs is not None:
            seqs = self.seqs
            return lambda e: (e.host, e.seq) in seqs
        checks: list[Callable[[LogEntry], bool]] = []
        if self.tenant is not None:
            t = self.tenant
            if t:
                # a lazy line that cannot be the tenant's (no key or PID of it in its bytes) is
                # not parsed for this (lazy.Chunk.may_be_tenant)
                checks.append(
                    lambda e: (
                        (e.may_be_tenant(t) and e.tenant == t)
                        if type(e) is LazyLine
                        else (e.tenant == t or e.target_tenant == t)
                    )
                )
            else:  # a lazy line that cannot be any tenant's is unattributed: not parsed
                checks.append(
                    lambda e: (
                        (not e.may_be_tenant(None) or e.tenant == "")
                        if type(e) is LazyLine
                        else e.tenant == ""
                    )
                )
        if self.host is not None:
            h = self.host
            checks.append(lambda e: e.host == h)
        if self.source is not None:
            src = self.source
            checks.append(lambda e: e.source.startswith(src))
        if self.min_severity is not None:
            allowed = frozenset(s for s in SEVERITIES if SEVERITY_RANK[s] <= SEVERITY_RANK[self.min_severity])
            if SEVERITY_RANK[self.min_severity] <= SEVERITY_RANK["warning"]:
                # a quiet lazy line is notice or lower: not parsed for this
                checks.append(lambda e: (type(e) is not LazyLine or not e.quiet) and e.severity in allowed)
            else:
                checks.append(lambda e: e.severity in allowed)
        if self.tag is not None:
            tag = self.tag
            checks.append(lambda e: tag in e.tags)
        if self.workload is not None:
            wl = self.workload
            checks.append(lambda e: wl in e.workload)
        if self.words:
            checks.append(_words_check(self.words))
        if not checks:
            return lambda e: True
        if len(checks) == 1:
            return checks[0]
        return lambda e: all(c(e) for c in checks)

    def describe(self) -> str:
        if self.seqs is not None:
            return (
                f"{self.chosen or 'chosen lines'} ({len(self.seqs)} line{'' if len(self.seqs) == 1 else 's'})"
            )
        parts = []
        for k, v in (
            ("tenant", self.tenant),
            ("host", self.host),
            ("source", self.source),
            ("sev", self.min_severity),
            ("tag", self.tag),
            ("workload", self.workload),
        ):
            if v is not None:
                parts.append(f"{k}:{v or '-'}")
        parts += list(self.words)
        return " ".join(parts)


_PRINTABLE = bytes(range(0x20, 0x7F))
# what in a regex looks outside its match: anchors, word boundaries, lookarounds (any `^`
# or `$` counts, escaped or in a class too: a false alarm only costs the raw-bytes test)
_CONTEXT = re.compile(r"[\^$]|\\[AZbBGz]|\(\?<?[=!]")


def _words_check(words: tuple[str, ...]) -> Callable[[LogEntry], bool]:
    """All words in the message (case-insensitive). A lazy line whose raw bytes are printable
    ASCII and lack a word is dropped without parsing it (the message is part of the line)."""
    try:
        raw_words: list[bytes] | None = [w.encode("ascii") for w in words]
    except UnicodeEncodeError:
        raw_words = None
    # a journal line is JSON: `"` and `\` are escaped in it
    plain = raw_words is not None and not any(b'"' in w or b"\\" in w for w in raw_words)

    def check(e: LogEntry) -> bool:
        if raw_words is not None and type(e) is LazyLine and (plain or e.message_in_raw):
            raw = e.raw
            if not raw.translate(None, _PRINTABLE):
                low = raw.lower()
                if not all(w in low for w in raw_words):
                    return False
        msg = e.message.lower()
        return all(w in msg for w in words)

    return check


_SEV_ALIASES = {"error": "err", "warn": "warning", "critical": "crit", "emergency": "emerg", "panic": "emerg"}


def parse_query(text: str) -> Query:
    kw: dict[str, object] = {}
    words: list[str] = []
    for tok in text.split():
        key, sep, val = tok.partition(":")
        if sep and key in KEYS:
            if key == "sev":
                v = _SEV_ALIASES.get(val.lower(), val.lower())
                if v.isdigit() and int(v) < 8:
                    v = SEVERITIES[int(v)]
                if v not in SEVERITY_RANK:
                    raise QueryError(f"sev:{val}: not a severity (one of {', '.join(SEVERITIES)})")
                kw["min_severity"] = v
            elif key == "tenant":
                kw["tenant"] = "" if val == "-" else val
            else:
                kw[key] = val
        else:
            words.append(tok.lower())
    return Query(words=tuple(words), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Search:
    pattern: str
    regex: bool = False

    def raw_excludes(self, limit: int = 16 * 1024) -> Callable[..., bool] | None:
        """A test on a lazy line's raw bytes, `excludes(raw, escaped=False)`, True only when
        the line cannot match, so it need not be parsed: printable ASCII shows as itself and
        the message is part of the line (what is searched is the message as shown, cut at
        `limit` with a marker: longer lines are looked at). `escaped`: a journal line (JSON:
        `"` and `\\` escaped), excluded only by a literal without those. A regex is tried on
        the raw line when nothing in it looks outside its match (no anchor, word boundary or
        lookaround: a match in the message is then a match in the line). None: no such test."""
        printable = _PRINTABLE
        if self.regex:
            if _CONTEXT.search(self.pattern):
                return None
            rx = self.compile()

            def excludes_rx(raw: bytes, escaped: bool = False) -> bool:
                return (
                    not escaped
                    and len(raw) <= limit
                    and not raw.translate(None, printable)
                    and rx.search(raw.decode("ascii")) is None
                )

            return excludes_rx
        try:
            needle = self.pattern.lower().encode("ascii")
        except UnicodeEncodeError:
            return None
        plain = b'"' not in needle and b"\\" not in needle

        def excludes(raw: bytes, escaped: bool = False) -> bool:
            return (
                (plain or not escaped)
                and len(raw) <= limit
                and needle not in raw.lower()
                and not raw.translate(None, printable)
            )

        return excludes

    def compile(self) -> re.Pattern[str]:
        try:
            return re.compile(self.pattern if self.regex else re.escape(self.pattern), re.I)
        except re.error as e:
            raise QueryError(f"search /{self.pattern}/: {e}") from None
