"""The C allocator's share of the console's RSS (issue 16: an idle console is paid for by the
host's tenants).

glibc gives every thread that allocates its own malloc arena (up to 8 per core), and each arena
keeps the pages its thread freed: the worker threads' arenas were ~3 MiB of the idle console's
RSS. Those threads run Python, which allocates under the GIL, so more arenas buy no
parallelism: two (the main thread's and one the workers share) are plenty. The start-up's
garbage (imports, the first inventories and log backfills) is handed back once with
malloc_trim. Both are glibc calls (mallopt(3), malloc_trim(3)); with another C library, or when
the user set MALLOC_ARENA_MAX themselves, nothing is done.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 2
TRIM_AFTER = 15.0  # s after start: the first frame, inventories and log backfills are done


def _libc() -> Any:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def fewer_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas; call before any thread starts. True when glibc took it."""
    if "MALLOC_ARENA_MAX" in os.environ:  # the user's own setting wins
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or not hasattr(_libc(), "malloc_trim"):  # not glibc (musl has no trim)
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def trim() -> None:
    """Hand the free pages of every arena back to the system (glibc; else nothing)."""
    fn = getattr(_libc(), "malloc_trim", None)
    if fn is not None:
        fn(0)
