"""A bounded ring of log entries per host, with the count of entries it had to drop.

Memory is bounded whatever a host writes: past `capacity` the oldest entries go and `dropped`
says how many. Entries carry a per-host sequence number (1, 2, ...), so a reader that
remembers the last seq it saw gets exactly the new ones (`since`), and a finding can point at
an entry by (host, seq).

A ring belongs to the logs service of one session (probes/logs/service.py); the Logs pane
reads it through its source (`Session.log_entries` -> `Ring.slice`) with its own cursor, so
the whole ring never travels through every State (the State carries only the newest entries).

Lines of a local file arrive as chunks (probes/logs/lazy.py): the ring keeps a reference to
the chunk in the slot of each of its lazy lines (nothing allocated per line) and hands out a
LazyLine for it; candidates are kept as the parsed entries they already are. `newest` (what
the State carries) hands out parsed entries only.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from probes.logs.fastlog import native
from probes.logs.lazy import Chunk, LazyLine
from probes.logs.model import DEFAULT_CAPACITY, LogEntry, LogEvent, LogSlice


def _entry(x: Any, seq: int) -> Any:
    return LazyLine(x, seq - x.first_seq) if type(x) is Chunk else x


class Ring:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        self.capacity = capacity
        self._d: deque[Any] = deque(maxlen=capacity)  # LogEvent, or the Chunk of a lazy line
        self.total = 0  # seq of the newest entry
        self.generation = 0  # bumped when kept entries are replaced (re-attribution)
        self._chunks: deque[Chunk] = deque()  # chunks with lines still kept, oldest first

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[LogEntry]:
        return map(_entry, self._d, itertools.count(self.first_seq))

    @property
    def dropped(self) -> int:
        return self.total - len(self._d)

    @property
    def first_seq(self) -> int:
        return self.total - len(self._d) + 1

    def append_many(self, events: Iterable[LogEvent]) -> list[LogEvent]:
        """Number the events and keep them; returns them with their seq set."""
        out = []
        n = self.total
        setattr_ = object.__setattr__
        for e in events:
            n += 1
            if e.seq == 0:
                # a fresh entry from a parser, not shared yet: number it in place (a copy
                # per entry would cost more than parsing it)
                setattr_(e, "seq", n)
                out.append(e)
            else:
                out.append(replace(e, seq=n))
        self.total = n
        self._d.extend(out)
        return out

    def append_chunk(self, chunk: Chunk, found: dict[int, LogEvent]) -> list[LogEvent]:
        """Keep a chunk's lines (numbered from total + 1): its parsed candidates as entries,
        the other lines lazily. Returns the candidates with their seq set."""
        first = chunk.first_seq = self.total + 1
        chunks = self._chunks
        chunks.append(chunk)
        while chunks[0].first_seq + chunks[0].n <= first + chunk.n - self.capacity:
            chunks.popleft()  # all its lines are gone (or going now)
        if not found:
            self._d.extend(itertools.repeat(chunk, chunk.n))
            self.total += chunk.n
            return []
        items: list[Any] = [chunk] * chunk.n
        fast = native()
        if fast is not None:
            out = fast.place_entries(found, items, first)  # (the loop below, natively)
        else:
            setattr_ = object.__setattr__
            out = []
            for i, e in found.items():
                setattr_(e, "seq", first + i)  # fresh from ingest, not shared yet
                items[i] = e
                out.append(e)
        self._d.extend(items)
        self.total += chunk.n
        return out

    def since(self, seq: int) -> list[LogEntry]:
        """Entries newer than `seq`, oldest first (those already dropped are not returned)."""
        k = self.total - seq
        if k <= 0:
            return []
        k = min(k, len(self._d))
        out = list(itertools.islice(reversed(self._d), k))
        out.reverse()
        return list(map(_entry, out, itertools.count(self.total - k + 1)))

    def slice(self, after: int | None) -> LogSlice:
        """The entries newer than seq `after` with the ring's counters (None: counters only)."""
        got = tuple(self.since(after)) if after is not None and self.total > after else ()
        return LogSlice(got, self.total, self.dropped, self.generation, self.capacity)

    def newest(self, n: int) -> tuple[LogEvent, ...]:
        """The newest n entries, parsed (lazy lines among them are parsed now)."""
        if n <= 0:
            return ()
        return tuple(e.event if type(e) is LazyLine else e for e in self.since(self.total - n))  # type: ignore[misc]

    def get(self, seq: int) -> LogEntry | None:
        i = seq - self.first_seq
        if i < 0 or i >= len(self._d):
            return None
        return _entry(self._d[i], seq)  # type: ignore[no-any-return]

    @property
    def oldest_chunk_order(self) -> int | None:
        """Arrival order of the oldest line of a chunk still kept (None: no chunk kept)."""
        chunks, first = self._chunks, self.first_seq
        while chunks and chunks[0].first_seq + chunks[0].n <= first:
            chunks.popleft()
        if not chunks:
            return None
        c = chunks[0]
        return c.order0 + max(0, first - c.first_seq)

    def update(self, fn: Callable[[LogEvent], LogEvent | None], newest: int | None = None) -> int:
        """Replace entries in place where fn returns a new entry (re-attribution); with
        `newest`, only the newest that many entries are looked at (the rest stay untouched:
        re-attributing the tail of a 100,000-entry ring need not walk all of it)."""
        changed = 0
        d = self._d
        k = len(d) if newest is None else max(0, min(newest, len(d)))
        tail = [d.pop() for _ in range(k)]
        tail.reverse()
        for e in tail:
            if type(e) is Chunk:  # a lazy line: attributed when it is read, with the index then
                d.append(e)
                continue
            n = fn(e)
            if n is not None and n is not e:
                changed += 1
                e = n
            d.append(e)
        if changed:
            self.generation += 1
        return changed
