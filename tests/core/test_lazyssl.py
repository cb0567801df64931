"""tui/lazyssl.py: the console's asyncio loads OpenSSL only when TLS is used (issue 16: ssl's
libcrypto and libssl were ~4 MiB of an idle local console), and TLS through asyncio still
works: as a client with the default context (ssl=True, the stand-in's first use), as a server
with a context of the caller's, and an SSL socket is still refused by loop.sock_* calls."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).parents[2]


def _certs(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tsh-lazyssl test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = d / "ca.pem", d / "cert.pem", d / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


# A TLS echo server that knows nothing of tenantscope: prints its port, echoes one line.
SERVER = r"""
import asyncio, ssl, sys
async def echo(r, w):
    w.write(await r.readline()); await w.drain(); w.close()
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"""

CLIENT = r"""
import json, socket, sys
from tui import cli  # what the entry point imports first
import asyncio
from asyncio import base_events, selector_events, sslproto
from tui import lazyssl

out = {"stand_in": all(m.ssl is lazyssl.STAND_IN for m in (base_events, selector_events, sslproto))}

async def main(port, cert, key):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False); b.setblocking(False)
    await loop.sock_sendall(a, b"plain")  # each sock_* call asks whether this is an SSL socket
    out["plain"] = (await loop.sock_recv(b, 16)).decode()
    out["ssl_after_plain"] = "ssl" in sys.modules or "_ssl" in sys.modules
    # TLS with the default context (SSL_CERT_FILE trusts the test CA): ssl is imported now
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=True, server_hostname="localhost")
    w.write(b"over tls\n"); await w.drain()
    out["client"] = (await r.readline()).decode().strip()
    w.close()
    import ssl
    out["restored"] = all(m.ssl is ssl for m in (base_events, selector_events, sslproto))
    out["again_errors"] = sslproto.SSLAgainErrors == (ssl.SSLWantReadError, ssl.SSLSyscallError)
    # a server with the caller's own context
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async def echo(r, w):
        w.write(await r.readline()); await w.drain(); w.close()
    srv = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
    r, w = await asyncio.open_connection(
        "127.0.0.1", srv.sockets[0].getsockname()[1], ssl=ssl.create_default_context(), server_hostname="localhost"
    )
    w.write(b"served\n"); await w.drain()
    out["server"] = (await r.readline()).decode().strip()
    w.close(); srv.close()
    s = ssl.create_default_context().wrap_socket(socket.socket(), server_hostname="localhost", do_handshake_on_connect=False)
    try:
        await loop.sock_recv(s, 1)
        out["refused"] = False
    except TypeError:
        out["refused"] = True
    s.close(); a.close(); b.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
print(json.dumps(out))
"""


def test_asyncio_tls_works_with_ssl_imported_at_first_use(tmp_path: Path) -> None:
    ca, cert, key = _certs(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(cert), str(key)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SSL_CERT_FILE": str(ca)}
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, port, str(cert), str(key)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env,
        )
    finally:
        server.kill()
        server.wait()
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "stand_in": True,  # the console's asyncio started without ssl
        "plain": "plain",
        "ssl_after_plain": False,  # plain socket calls did not load it
        "client": "over tls",
        "restored": True,
        "again_errors": True,
        "server": "served",
        "refused": True,
    }
