"""The one place that makes host-supplied text safe to show.

Everything from a host (names, XML values, log lines, command output) is untrusted: a raw ESC
can retitle or drive the terminal, Rich markup such as `[@click=app.quit]` can become an app
action, and bidi overrides or zero-width characters can disguise what is shown. `visible()`
turns all of those into visible escapes; the TUI wraps the result in `rich.text.Text`
(tui/safe.py), and the headless commands print it as is.
"""

from __future__ import annotations

import re

MAX_LINE = 16 * 1024
CUT_MARKER = "…[cut]"

# C0 (except tab), DEL, C1; bidi embeddings/overrides/isolates; zero-width and BOM;
# line/paragraph separators. Also (logs area): the Arabic letter mark (a bidi control), the
# soft hyphen and Mongolian vowel separator (invisible), interlinear annotation controls, and
# the invisible "tag" characters U+E0000-E007F (text smuggled past a reader).
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\u2066-\u2069\ufeff"
    "\u00ad\u061c\u180e\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def _escape(m: re.Match[str]) -> str:
    cp = ord(m.group())
    if cp > 0xFFFF:
        return f"\\U{cp:08x}"
    return f"\\x{cp:02x}" if cp <= 0xFF else f"\\u{cp:04x}"


def visible(text: str | bytes, *, limit: int = MAX_LINE) -> str:
    """Return `text` with every control, bidi and zero-width character shown as an escape.

    Bytes are decoded as UTF-8 with replacement characters; lines longer than `limit`
    characters are cut with a marker.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if len(text) > limit:
        text = text[:limit] + CUT_MARKER
    return _UNSAFE.sub(_escape, text)
