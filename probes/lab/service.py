"""The lab workload's service, run as `python -I -S service.py JSON` (standard library only).

As root it enters the workload's network namespace and cgroups and names itself after the
workload; then, as uid/gid 65534, it takes its own user (65534 outside = 0 inside), UTS, IPC,
mount and pid namespaces. The process started (the launcher) forks the namespace's init, which
pivots into an empty tmpfs root, sets no_new_privs and a seccomp filter refusing what a service
never needs, listens on the port and answers every connection with its name. The launcher
forwards signals and exits with its init; the init dies with the launcher (PR_SET_PDEATHSIG).

SIGUSR1 starts two CPU burners at nice 19 (the noisy-neighbour fault), SIGUSR2 stops them.
"""

import ctypes
import json
import os
import signal
import socket
import struct
import sys

a = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)


def ck(r, what):
    if r != 0:
        sys.stderr.write("tsl-service: %s: %s\n" % (what, os.strerror(ctypes.get_errno())))
        sys.stderr.flush()
        os._exit(3)


fd = os.open(a["netns"], os.O_RDONLY)
ck(libc.setns(fd, 0x40000000), "setns net")
os.close(fd)
for d in a["cgroups"]:
    with open(d + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
name = a["name"].encode()[:15]
libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/uid_map stays ours to write
ck(libc.unshare(0x10000000 | 0x04000000 | 0x08000000 | 0x00020000 | 0x20000000), "unshare")
for f, v in (("setgroups", "deny"), ("uid_map", "0 65534 1"), ("gid_map", "0 65534 1")):
    with open("/proc/self/" + f, "w") as fh:
        fh.write(v)
ck(libc.sethostname(ctypes.c_char_p(name), len(name)), "sethostname")

null = os.open("/dev/null", os.O_RDWR)  # before the fork: the init's pivot_root moves our root too
child = os.fork()
if child:  # the launcher, outside the pid namespace
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda s, f: os.kill(child, s))
    while True:
        try:
            _, st = os.waitpid(child, 0)
            os._exit(os.waitstatus_to_exitcode(st) & 0xFF)
        except InterruptedError:
            continue

# pid 1 of the workload
libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL: never outlive the launcher
MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2
ck(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
ck(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"size=64k,mode=0755"), "mount tmpfs")
os.mkdir("/tmp/old")
ck(libc.syscall(155, b"/tmp", b"/tmp/old"), "pivot_root")
os.chdir("/")
ck(libc.umount2(b"/old", MNT_DETACH), "umount old root")
os.rmdir("/old")

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", a["port"]))
s.listen(64)

ck(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
deny = a["deny"]
if deny:
    n = len(deny)
    ins = [(0x20, 0, 0, 4), (0x15, 1, 0, 0xC000003E), (0x06, 0, 0, 0x7FFF0000), (0x20, 0, 0, 0)]
    ins += [(0x15, n - k, 0, nr) for k, nr in enumerate(deny)]
    ins += [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x00050000 | 1)]  # ALLOW; ERRNO(EPERM)
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in ins))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(ins), ctypes.addressof(buf))
    ck(libc.prctl(22, 2, ctypes.byref(prog), 0, 0), "seccomp")

burners = []


def burn(sig, frame):
    while len(burners) < 2:
        pid = os.fork()
        if pid == 0:
            libc.prctl(1, 9, 0, 0, 0)
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            signal.signal(signal.SIGUSR2, signal.SIG_DFL)
            os.nice(a.get("nice", 0))
            while True:
                pass
        burners.append(pid)


def calm(sig, frame):
    while burners:
        pid = burners.pop()
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except OSError:
            pass


def stop(sig, frame):
    calm(sig, frame)
    os._exit(0)


signal.signal(signal.SIGUSR1, burn)
signal.signal(signal.SIGUSR2, calm)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
signal.signal(signal.SIGINT, stop)
os.write(1, b"ready\n")
for fd in (0, 1, 2):
    os.dup2(null, fd)
os.close(null)
reply = a["name"].encode() + b"\n"
while True:
    try:
        c, _ = s.accept()
    except OSError:
        continue
    try:
        c.sendall(reply)
    except OSError:
        pass
    c.close()
