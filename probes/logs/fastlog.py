"""The logs' native helpers (probes/logs/_fastlog.c, built by `pip install -e .`), loaded with
the first block of log lines (as re2 is): a file block's candidate lines, an audit record's
key=value pairs and a message's index tokens, the scans the logs pipeline pays most for
(bench.logs, issue 16). The Python in lazy.candidate_lines, parsers.audit_pairs and
attribute.key_tokens is the reference and the fallback when the extension is not built (tests/logs/test_fastlog.py: same answers; and in
`make test` the extension is the one loaded)."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


# what the callers use: a build without one of them is not used at all
HELPERS = (
    "audit_pairs",
    "candidate_lines",
    "event_class",
    "first_needle",
    "kernel_head",
    "key_tokens",
    "new_event",
    "place_entries",
    "set_attribution",
    "shared_fields",
    "split_syslog",
)


@functools.cache
def native() -> Any:
    """probes.logs._fastlog, or None (not built, or TENANTSCOPE_PURE_LOGS=1 asks for the
    Python references: for comparisons)."""
    if os.environ.get("TENANTSCOPE_PURE_LOGS") == "1":
        log.debug("logs: the Python parsers run (TENANTSCOPE_PURE_LOGS=1)")
        return None
    try:
        from probes.logs import _fastlog
    except ImportError as e:
        log.debug("logs: the native helpers are not built (%s): the Python parsers run", e)
        return None
    missing = [name for name in HELPERS if not hasattr(_fastlog, name)]
    if missing:  # an extension built from an older _fastlog.c (not rebuilt since)
        log.debug("logs: the native helpers are an older build (no %s): the Python parsers run", missing[0])
        return None
    from probes.logs.model import ATTRIBUTION, LogEvent

    _fastlog.event_class(LogEvent, ATTRIBUTION, "seq")  # (the class its new_event builds)
    log.debug("logs: the native helpers run (%s)", _fastlog.__file__)
    return _fastlog
