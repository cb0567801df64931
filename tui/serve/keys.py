"""authorized_keys for `tenantscope serve`: OpenSSH's format, read again for every connection
(a key removed from the file is refused at once), with one option of our own:

    tenantscope-write ssh-ed25519 AAAA... instructor@laptop    # may change things; may present
    ssh-ed25519 AAAA... trainee@laptop                          # read-only (the default)

Options OpenSSH defines and that do not widen access (`restrict`, `no-*-forwarding`,
`no-pty` is NOT accepted: the console needs a terminal) are accepted and ignored (serve never
forwards anything); a line with any other option is skipped with a warning, as OpenSSH skips
lines it cannot honour: an option we do not understand must not silently grant access.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from probes.hosts.quiet_asyncssh import asyncssh

log = logging.getLogger(__name__)

WRITE = "tenantscope-write"
HARMLESS = frozenset(
    {"restrict", "no-port-forwarding", "no-agent-forwarding", "no-x11-forwarding", "no-user-rc", "pty"}
)


@dataclass(frozen=True)
class Grant:
    key_data: bytes  # the public key blob
    write: bool
    comment: str


def _split_options(line: str) -> tuple[str, str]:
    """(options, rest) where options may contain quoted commas and spaces."""
    i, quoted = 0, False
    while i < len(line):
        c = line[i]
        if c == '"':
            quoted = not quoted
        elif c in " \t" and not quoted:
            break
        elif c == "\\" and quoted:
            i += 1
        i += 1
    return line[:i], line[i:].strip()


def _options(text: str) -> list[str]:
    out, cur, quoted = [], "", False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return [o.strip() for o in out if o.strip()]


def parse(text: str, where: str = "authorized_keys") -> list[Grant]:
    grants: list[Grant] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        opts: list[str] = []
        first = line.split(None, 1)[0]
        if not _is_key_type(first):
            o, line = _split_options(line)
            opts = _options(o)
        parts = line.split(None, 2)
        if len(parts) < 2:
            log.warning("%s:%d: not a key line, skipped", where, n)
            continue
        bad = [o for o in opts if o.lower() != WRITE and o.lower().split("=", 1)[0] not in HARMLESS]
        if bad:
            log.warning(
                "%s:%d: option(s) %s not supported by tenantscope serve: key skipped",
                where,
                n,
                ", ".join(bad),
            )
            continue
        try:
            key = asyncssh.import_public_key(f"{parts[0]} {parts[1]}")
        except (asyncssh.KeyImportError, ValueError) as e:
            log.warning("%s:%d: bad key (%s), skipped", where, n, e)
            continue
        grants.append(
            Grant(key.public_data, any(o.lower() == WRITE for o in opts), parts[2] if len(parts) > 2 else "")
        )
    return grants


def _is_key_type(tok: str) -> bool:
    return tok.startswith(("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"))


def load(path: str) -> list[Grant]:
    """The grants in `path` now; an unreadable file grants nothing (and says why in the log)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse(f.read(), path)
    except OSError as e:
        log.warning("%s: cannot read authorized keys: %s", path, e.strerror)
        return []
