"""Secrets out of everything a report (or anything shared) contains.

Applied to every string of the report after it is built, so no field can leak one: graphics
passwords in domain XML (`passwd='...'`), private key blocks, key files given on command lines
(`ssh -i PATH`, `IdentityFile PATH`, `--key PATH`), tokens and passwords in command lines
(`--token=X`, `--password X`, `token=X`, `Authorization: Bearer X`), credentials in URLs
(`user:pass@`), and well-known token shapes (GitHub, AWS, Slack, JWT).
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_WORDS = r"(?:passwd|password|passphrase|secret|token|api[-_]?key|access[-_]?key|auth[-_]?token|private[-_]?key|client[-_]?secret)"

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
        ),
        "[private key redacted]",
    ),
    # XML / key=value attributes: passwd='x', password="x", token=x
    (re.compile(rf"(\b{_SECRET_WORDS}\s*=\s*)(['\"])(.*?)\2", re.I), rf"\1\2{REDACTED}\2"),
    (re.compile(rf"(\b{_SECRET_WORDS}\s*[=:]\s*)(?!['\"])[^\s,;&'\"<>]+", re.I), rf"\1{REDACTED}"),
    # command-line flags with a separate value: --password X, --token X, -p X is too ambiguous
    (re.compile(rf"(--?{_SECRET_WORDS}\s+)[^\s-][^\s]*", re.I), rf"\1{REDACTED}"),
    # key files: ssh -i PATH, -oIdentityFile=PATH, IdentityFile PATH, --key/--identity PATH
    (re.compile(r"((?:^|\s)-i\s*)(\S+)"), rf"\1{REDACTED}"),
    (re.compile(r"(IdentityFile[\s=]+)(\S+)", re.I), rf"\1{REDACTED}"),
    (re.compile(r"(--(?:key|identity|ssh-key|key-file|identity-file)[\s=]+)(\S+)", re.I), rf"\1{REDACTED}"),
    (re.compile(r"(Authorization:\s*(?:Bearer|Basic)\s+)\S+", re.I), rf"\1{REDACTED}"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
            r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
        ),
        REDACTED,
    ),
    # private key files by their usual names, wherever they appear
    (re.compile(r"\S*/\.ssh/(?:id_[A-Za-z0-9_.-]+|[A-Za-z0-9_.-]*\.(?:pem|key))\b"), REDACTED),
)


def scrub(text: str) -> str:
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text


def scrub_all(value: Any) -> Any:
    """Every string in a tree of dicts, lists and scalars (msgspec.to_builtins output)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_all(v) for v in value]
    return value
