"""asyncssh, imported without the CryptographyDeprecationWarnings its DSA support raises.

asyncssh 2.x names `cryptography`'s deprecated DSA classes in its annotations, so importing it
prints five warnings before anything else on every SSH use. Only those are silenced (that
category, that message, raised from asyncssh's own modules): any other warning still shows.
Import asyncssh through this module everywhere (`from probes.hosts.quiet_asyncssh import asyncssh`).
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings(
    "ignore",
    message=r"DSA is deprecated",
    category=CryptographyDeprecationWarning,
    module=r"asyncssh(\.|$)",
)

import asyncssh  # noqa: E402  (after the filter, on purpose)

__all__ = ["asyncssh"]
