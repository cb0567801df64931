"""What followers of a presenter must not receive from the shared terminal's output.

The presenter's app turns on mouse reporting, focus events, bracketed paste, in-band resize
(mode 2048) and the kitty keyboard protocol, and queries the terminal (DECRQM, DA, cursor
position). A follower's terminal would honour the modes (and keep them after the session,
leaving it spewing mouse escapes) and answer the queries into a session that ignores its
input. The filter removes exactly those sequences and passes everything else byte for byte.
It works on a stream: a sequence split across two reads is held back until complete.
"""

from __future__ import annotations

import re

# DEC private modes a follower must not turn on: mouse (9, 1000-1006, 1015, 1016), focus
# (1004), bracketed paste (2004), synchronized-output query is harmless, in-band resize (2048).
BLOCKED_MODES = frozenset(
    {"9", "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1015", "1016", "2004", "2048"}
)

_CSI = re.compile(rb"\x1b\[([\x30-\x3f]*)([\x20-\x2f]*)([\x40-\x7e])")
_INCOMPLETE = re.compile(rb"\x1b(\[[\x30-\x3f]*[\x20-\x2f]*)?$")


def _rewrite(m: re.Match[bytes]) -> bytes:
    params, inter, final = m.group(1), m.group(2), m.group(3)
    if params.startswith(b"?") and final in (b"h", b"l") and not inter:
        modes = [p for p in params[1:].split(b";") if p.decode(errors="replace") not in BLOCKED_MODES]
        return b"\x1b[?" + b";".join(modes) + final if modes else b""
    if final == b"u" and params[:1] in (b">", b"<", b"=", b"?"):
        return b""  # kitty keyboard protocol: push, pop, set, query
    if final == b"p" and inter == b"$":
        return b""  # DECRQM mode query
    if final == b"c" and (not params or params[:1] in (b">", b"=", b"0")):
        return b""  # device attributes query
    if final == b"n" and params in (b"6", b"?6", b"5"):
        return b""  # cursor position / status report
    if final == b"t" and params in (b"14", b"16", b"18"):
        return b""  # window size queries
    return m.group(0)


class FollowerFilter:
    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        data = self._tail + data
        self._tail = b""
        m = _INCOMPLETE.search(data[-64:]) if data else None
        if m is not None:
            cut = len(data) - (len(data[-64:]) - m.start())
            data, self._tail = data[:cut], data[cut:]
        return _CSI.sub(_rewrite, data)


# Sent to a follower's terminal when it joins (what it missed: the alternate screen, no cursor)
# and when it leaves (its terminal as it was).
JOIN = b"\x1b[?1049h\x1b[?25l\x1b[2J\x1b[H"
LEAVE = b"\x1b[0m\x1b[?25h\x1b[?1049l"
