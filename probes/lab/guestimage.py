"""A tiny Linux guest image from Debian packages only: for the lab's VMs and the tests.

Debian's cloud kernel (`apt-get download` + `dpkg-deb -x`: nothing is installed), a
busybox-static userland with the virtio modules, and qemu-guest-agent with the libraries `ldd`
lists, packed with `cpio`. Built once into a cache directory (TENANTSCOPE_GUEST_CACHE, default
/var/cache/tenantscope/guest), keyed by the package versions and a hash of the init script, so
a newer kernel or a changed script rebuilds it; a lock keeps two builders apart.

The guest boots in about 2 s under QEMU/TCG (direct kernel boot). Its kernel command line says
what it does (`ts.*`): its address(es) and default route, the TCP port its busybox httpd
listens on, and what answers on the guest-agent channel (real qemu-ga, or for tests an agent
that hangs, writes garbage, or none). It prints `TSV-READY` on its serial console when ready.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("TENANTSCOPE_GUEST_CACHE", "/var/cache/tenantscope/guest"))
PACKAGES = ("linux-image-cloud-amd64", "busybox-static", "qemu-guest-agent")
MODULES = (  # load order (modinfo -F depends)
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
    "drivers/char/virtio_console",
)
AGENT_MODES = ("real", "hang", "garbage", "flood", "none")  # all but real: for tests

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m.ko; done
for w in $(cat /proc/cmdline); do
  case $w in ts.*=*) k=${w%%=*}; k=${k#ts.}; eval "ts_$k=\${w#*=}";; esac
done
ip link set lo up
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set eth0 up
if [ -n "$ts_ip" ]; then ip addr add "$ts_ip" dev eth0; fi
if [ -n "$ts_ip2" ]; then ip addr add "$ts_ip2" dev eth0; fi
if [ -n "$ts_gw" ]; then ip route add default via "$ts_gw"; fi
if [ -n "$ts_dhcp" ]; then udhcpc -i eth0 -s /udhcpc.sh -q -n -t 20 -T 1 >/dev/null 2>&1; fi
mkdir -p /www; echo "tenantscope guest $ts_name" > /www/index.html
httpd -p "${ts_port:-8080}" -h /www
port=""
for i in $(seq 1 50); do
  for p in /dev/vport*p1; do [ -e "$p" ] && port=$p; done
  [ -n "$port" ] && break; sleep 0.1
done
case "$ts_agent" in
  real) [ -n "$port" ] && (/usr/sbin/qemu-ga -m virtio-serial -p "$port" -f /tmp/qemu-ga.pid -t /tmp &) ;;
  hang) [ -n "$port" ] && (cat "$port" > /dev/null &) ;;
  garbage) [ -n "$port" ] && (exec 3<>"$port"; while true; do echo 'not json {{{ <garbage>' >&3; sleep 0.05; done &) ;;
  flood) rm /bin/ping /bin/nc
    printf '#!/bin/sh\nyes floodfloodfloodfloodfloodflood | head -c 4000000\n' > /bin/ping
    cp /bin/ping /bin/nc; chmod 755 /bin/ping /bin/nc
    [ -n "$port" ] && (/usr/sbin/qemu-ga -m virtio-serial -p "$port" -f /tmp/qemu-ga.pid -t /tmp &) ;;
esac
echo "TSV-READY $ts_name" > /dev/ttyS0
while true; do sleep 3600; done
"""

UDHCPC = r"""#!/bin/sh
case "$1" in
  bound|renew) ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" ;;
esac
"""


@dataclass(frozen=True)
class GuestImage:
    kernel: str
    initrd: str
    version: str  # the package versions it was built from


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )


def _run(argv: list[str], cwd: str | Path | None = None, timeout: float = 300) -> str:
    r = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r.stdout


def _versions() -> dict[str, str]:
    """Candidate versions (apt-cache policy) of the packages, the kernel's real package too."""
    out: dict[str, str] = {}
    kernel_pkg = ""
    for line in _run(["apt-cache", "depends", "linux-image-cloud-amd64"]).splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            kernel_pkg = line.split(":", 1)[1].strip()
    if not kernel_pkg:
        raise RuntimeError("apt-cache: linux-image-cloud-amd64 depends on no kernel package")
    for p in (kernel_pkg, "busybox-static", "qemu-guest-agent"):
        cand = ""
        for line in _run(["apt-cache", "policy", p]).splitlines():
            if line.strip().startswith("Candidate:"):
                cand = line.split(":", 1)[1].strip()
        if not cand or cand == "(none)":
            raise RuntimeError(f"apt-cache: no candidate version of {p}")
        out[p] = cand
    return out


def build_image(cache: Path = CACHE) -> GuestImage:
    """The kernel and initramfs, built once per package versions (a lock serialises builders)."""
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)  # QEMU runs as libvirt-qemu: it must read the kernel and initrd
    with open(cache / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        versions = _versions()
        import hashlib

        recipe = hashlib.sha256((INIT + UDHCPC + " ".join(MODULES)).encode()).hexdigest()[:12]
        stamp = " ".join(f"{k}={v}" for k, v in sorted(versions.items())) + f" init={recipe}"
        kernel, initrd = cache / "vmlinuz", cache / "initrd.cpio.gz"
        if (cache / "stamp").exists() and (cache / "stamp").read_text() == stamp and initrd.exists():
            return GuestImage(str(kernel), str(initrd), stamp)
        with tempfile.TemporaryDirectory(prefix="tsv-guest-build-", dir=cache) as work:
            w = Path(work)
            os.chmod(w, 0o755)  # apt-get download drops to _apt where it can
            _run(["apt-get", "download", "-q", *(f"{k}={v}" for k, v in versions.items())], cwd=w)
            debs = sorted(w.glob("*.deb"))
            root, k = w / "root", w / "k"
            for deb in debs:
                _run(["dpkg-deb", "-x", str(deb), str(k if deb.name.startswith("linux-image") else root)])
            vmlinuz = next((k / "boot").glob("vmlinuz-*"))
            moddir = next((k / "lib" / "modules").iterdir()) / "kernel"
            (root / "lib" / "modules").mkdir(parents=True, exist_ok=True)
            for m in MODULES:
                shutil.copy(moddir / f"{m}.ko", root / "lib" / "modules" / (Path(m).name + ".ko"))
            _copy_libraries(root, root / "usr" / "sbin" / "qemu-ga")
            for d in ("proc", "sys", "dev", "tmp", "etc", "www", "var/run"):
                (root / d).mkdir(parents=True, exist_ok=True)
            names = " ".join(Path(m).name for m in MODULES)
            (root / "init").write_text(INIT.replace("MODULES", names))
            (root / "udhcpc.sh").write_text(UDHCPC)
            for f in ("init", "udhcpc.sh"):
                os.chmod(root / f, 0o755)
            files = _run(["sh", "-c", "find . | LC_ALL=C sort"], cwd=root)
            cpio = subprocess.run(
                ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
                cwd=root,
                input=files.encode(),
                capture_output=True,
                check=True,
            ).stdout
            import gzip

            tmp_initrd = cache / "initrd.tmp"
            tmp_initrd.write_bytes(gzip.compress(cpio, 6))
            shutil.copy(vmlinuz, cache / "vmlinuz.tmp")
            for f in ("initrd.tmp", "vmlinuz.tmp"):
                os.chmod(cache / f, 0o644)
            os.replace(cache / "vmlinuz.tmp", kernel)
            os.replace(tmp_initrd, initrd)
            (cache / "stamp").write_text(stamp)
        return GuestImage(str(kernel), str(initrd), stamp)


def _copy_libraries(root: Path, binary: Path) -> None:
    """The binary's shared libraries (as `ldd` resolves them on this Debian host) and the loader."""
    out = _run(["ldd", str(binary)])
    for line in out.splitlines():
        parts = line.split()
        path = next((p for p in parts if p.startswith("/")), "")
        if "not found" in line:
            raise RuntimeError(f"ldd {binary.name}: {line.strip()}")
        if not path:
            continue
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(path), dest)
    # Debian's loader path is /lib64/ld-linux-x86-64.so.2 (a symlink into /lib/x86_64-linux-gnu)


def why_not() -> str:
    """'' when an image can be built here (the tools exist), else why not."""
    missing = [n for n in ("apt-get", "apt-cache", "dpkg-deb", "cpio", "ldd") if shutil.which(n) is None]
    return f"needs {', '.join(missing)}" if missing else ""


def cached(cache: Path = CACHE) -> GuestImage | None:
    """The image already built (no package lookup), or None."""
    kernel, initrd, stamp = cache / "vmlinuz", cache / "initrd.cpio.gz", cache / "stamp"
    try:
        return (
            GuestImage(str(kernel), str(initrd), stamp.read_text())
            if kernel.exists() and initrd.exists()
            else None
        )
    except OSError:
        return None


def cmdline(
    name: str,
    *,
    address: str = "",
    address2: str = "",
    gateway: str = "",
    port: int = 8080,
    agent: str = "real",
    dhcp: bool = False,
) -> str:
    """The kernel command line that tells the guest's init what to run (see INIT)."""
    if agent not in AGENT_MODES:
        raise ValueError(f"agent: one of {', '.join(AGENT_MODES)}")
    out = ["console=ttyS0", "quiet", "panic=-1", f"ts.name={name}", f"ts.agent={agent}", f"ts.port={port}"]
    out += [f"ts.{k}={v}" for k, v in (("ip", address), ("ip2", address2), ("gw", gateway)) if v]
    return " ".join(out + (["ts.dhcp=1"] if dhcp else []))
