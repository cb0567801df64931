"""`make bench` = `python -m bench [NAME ...]`: every benchmark (or the named ones), one after
the other, each in a process of its own so that one bench's memory, threads and daemons do not
weigh on the next one's figures. Each prints its own baseline and ratio; this prints which ran,
how long each took, and which failed (exit 1 if any did).

    .venv/bin/python -m bench                 # all of them (root: labs, guests, sshd)
    .venv/bin/python -m bench logs filters    # some
    .venv/bin/python -m bench --list
"""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def names() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    known = names()
    p = argparse.ArgumentParser(prog="python -m bench", description="run the benchmarks")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"which ones (default all): {', '.join(known)}")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(known))
        return 0
    unknown = [n for n in args.names if n not in known]
    if unknown:
        p.error(f"no benchmark named {', '.join(unknown)} (there are: {', '.join(known)})")
    ran: list[tuple[str, int, float]] = []
    for name in args.names or known:
        print(f"\n===== bench.{name}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode
        ran.append((name, rc, time.monotonic() - t0))
    print("\n===== summary")
    for name, rc, took in ran:
        print(f"bench.{name:<20} {'ok' if rc == 0 else f'FAILED (exit {rc})':<16} {took:7.1f} s")
    return 1 if any(rc for _, rc, _ in ran) else 0


if __name__ == "__main__":
    sys.exit(main())
