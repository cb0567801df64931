"""asyncio without OpenSSL until something uses TLS (issue 16: an idle console's memory is
taken from the host's tenants).

asyncio imports ssl whether or not TLS is ever used, and ssl loads OpenSSL: libcrypto, libssl
and the ssl module's own objects, ~4 MiB resident for the console's whole life. The console
itself never speaks TLS (SSH has its own cryptography, libvirt its own library). `install()`,
run when tui/cli.py (the entry point) imports this module, before anything imports asyncio, imports asyncio while `import ssl`
fails, then gives the asyncio modules that kept `ssl = None` a stand-in instead: the first
time any name of it is read (a TLS connection or server, start_tls, an SSLContext check), it
imports the real ssl and puts it back in those modules, which from then on are exactly what
they would have been. The one name asyncio reads without TLS, `ssl.SSLSocket` on every
`loop.sock_*` call (to refuse an SSL socket), is answered without importing ssl while ssl is
not imported: no SSL socket can exist before it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


class _NoSSLSocket:
    """What `ssl.SSLSocket` is to asyncio while ssl is not imported: nothing is an instance."""


class _LaterSSL:
    """The stand-in for the ssl module in the asyncio modules that imported it."""

    def __getattr__(self, name: str) -> Any:
        if name == "SSLSocket" and "ssl" not in sys.modules:
            return _NoSSLSocket
        return getattr(load(), name)

    def __repr__(self) -> str:
        return "<ssl, imported at its first use (tui/lazyssl.py)>"


STAND_IN = _LaterSSL()
_holders: list[ModuleType] = []  # the modules whose `ssl` is the stand-in


def load() -> ModuleType:
    """Import ssl and give it to the modules that hold the stand-in (as their import would)."""
    import ssl

    for mod in _holders:
        if vars(mod).get("ssl") is STAND_IN:
            vars(mod)["ssl"] = ssl
        if mod.__name__ == "asyncio.sslproto" and not hasattr(mod, "SSLAgainErrors"):
            # sslproto's module-level line, skipped while ssl was None
            vars(mod)["SSLAgainErrors"] = (ssl.SSLWantReadError, ssl.SSLSyscallError)
    _holders.clear()
    return ssl


def install() -> bool:
    """Import asyncio without ssl (once, and only before anything imported either; only where
    ssl can be loaded later). True when asyncio now holds the stand-in."""
    if "asyncio" in sys.modules or "ssl" in sys.modules or importlib.util.find_spec("_ssl") is None:
        return False
    before = set(sys.modules)
    sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError
    try:
        importlib.import_module("asyncio")
    finally:
        del sys.modules["ssl"]
    for name in set(sys.modules) - before:
        mod = sys.modules[name]
        if isinstance(mod, ModuleType) and "ssl" in vars(mod) and vars(mod)["ssl"] is None:
            vars(mod)["ssl"] = STAND_IN
            _holders.append(mod)
    return bool(_holders)


install()  # at the import: tui/cli.py imports this module before anything that imports asyncio
