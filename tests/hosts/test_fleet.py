"""Fleet targets: --host syntax, hosts files, Ansible inventories (INI and YAML)."""

from __future__ import annotations

import os

import pytest

from probes.fleet import (
    FleetError,
    Target,
    expand_host_pattern,
    load_targets,
    parse_target,
    read_hosts_file,
    read_inventory,
)
from tests.helpers import DATA as TEST_DATA

DATA = str(TEST_DATA / "inventories")


def _p(name: str) -> str:
    return os.path.join(DATA, name)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("hv1", Target("hv1", "hv1", source="--host")),
        ("root@hv1", Target("hv1", "hv1", user="root", source="--host")),
        ("ssh://root@127.0.0.1:2222", Target("127.0.0.1:2222", "127.0.0.1", "root", 2222, source="--host")),
        ("ssh://hv1", Target("hv1", "hv1", source="--host")),
        (
            "admin@[2001:db8::1]:2200",
            Target("[2001:db8::1]:2200", "2001:db8::1", "admin", 2200, source="--host"),
        ),
        ("2001:db8::1", Target("2001:db8::1", "2001:db8::1", source="--host")),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text,msg",
    [
        ("", "empty"),
        ("http://hv1", "only ssh://"),
        ("hv1:port", "bad port"),
        ("hv1:70000", "out of range"),
        ("-oProxyCommand=x", "cannot start with '-'"),
        ("hv 1", "spaces"),
        ("@hv1", "empty user"),
        ("ssh://hv1/path", "unexpected path"),
    ],
)
def test_bad_targets_say_what_is_wrong(text, msg):
    with pytest.raises(FleetError, match=msg):
        parse_target(text)


def test_target_addresses_and_default_libvirt_uri():
    t = parse_target("ssh://root@hv1:2222")
    assert t.ssh_address == "root@hv1:2222"
    # shown only: libvirt is opened through the host's own SSH connection (a forwarded socket)
    assert t.default_libvirt_uri() == "qemu+ssh://root@hv1:2222/system"
    assert parse_target("hv2").default_libvirt_uri() == "qemu+ssh://hv2/system"


def test_hosts_file():
    ts = read_hosts_file(_p("hosts.txt"))
    assert [t.name for t in ts] == ["hv1.example:2222", "hv2.example", "hv3", "[2001:db8::5]:22"]
    assert ts[0].user == "root" and ts[0].port == 2222
    assert ts[1].libvirt_uri == "qemu+ssh://admin@hv2.example/system?socket=/run/libvirt/libvirt-sock-ro"
    assert ts[2].source.endswith("hosts.txt:4")


def test_host_ranges():
    assert expand_host_pattern("hv[01:03].x") == ["hv01.x", "hv02.x", "hv03.x"]
    assert expand_host_pattern("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand_host_pattern("n[1:9:4]") == ["n1", "n5", "n9"]
    assert expand_host_pattern("r[1:2]c[1:2]") == ["r1c1", "r1c2", "r2c1", "r2c2"]


@pytest.mark.parametrize("fname", ["fleet.ini", "fleet.yml"])
def test_ansible_inventory(fname):
    ts = {t.name: t for t in read_inventory(_p(fname))}
    assert list(ts) == [
        "bastion",
        "hv01.dc1.example",
        "hv02.dc1.example",
        "hv03.dc1.example",
        "hv-big",
        "st1",
        "localhost",
    ]
    assert (ts["bastion"].address, ts["bastion"].user, ts["bastion"].port) == ("10.0.0.1", "nobody", None)
    assert ts["bastion"].groups == ()
    # host vars beat group vars
    hv2 = ts["hv02.dc1.example"]
    assert (hv2.address, hv2.user, hv2.groups) == ("hv02.dc1.example", "admin", ("dc1", "hypervisors"))
    # the child group's vars beat the parent's, which beat all:vars
    big = ts["hv-big"]
    assert (big.address, big.user, big.port) == ("192.0.2.10", "root", 2222)
    assert big.libvirt_uri == "qemu+ssh://root@192.0.2.10:2222/system?socket=/run/libvirt/libvirt-sock"
    st1 = ts["st1"]
    assert (st1.address, st1.user, st1.port, st1.groups) == ("192.0.2.20", "ops", 2200, ("dc1", "storage"))
    assert ts["localhost"].local and not big.local


def test_ini_and_yaml_agree():
    assert [
        (t.name, t.address, t.user, t.port, t.groups, t.libvirt_uri, t.local)
        for t in read_inventory(_p("fleet.ini"))
    ] == [
        (t.name, t.address, t.user, t.port, t.groups, t.libvirt_uri, t.local)
        for t in read_inventory(_p("fleet.yml"))
    ]


def test_limit_selects_groups_and_hosts():
    names = [t.name for t in load_targets(inventory=_p("fleet.ini"), limit="storage,bastion")]
    assert names == ["bastion", "st1"]
    with pytest.raises(FleetError, match="matches no host"):
        load_targets(inventory=_p("fleet.ini"), limit="nope")


@pytest.mark.parametrize(
    "fname,msg",
    [
        ("bad-port.ini", r"bad-port.ini:2: host 'hv1': ansible_port 'twenty-two' is not a number"),
        ("bad.yml", r"bad.yml: group 'all': host 'hv1': vars must be a mapping"),
        ("missing.ini", r"missing.ini: no such file"),
    ],
)
def test_bad_inventories_name_file_and_line(fname, msg):
    with pytest.raises(FleetError, match=msg):
        read_inventory(_p(fname))


def test_invalid_yaml_names_the_line(tmp_path):
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  hosts:\n    hv1: {\n")
    with pytest.raises(FleetError, match=r"inv.yml:\d+: not valid YAML"):
        read_inventory(str(p))


def test_duplicate_names_are_refused():
    with pytest.raises(FleetError, match="listed twice"):
        load_targets(["hv1", "root@hv1"])


def test_make_hosts_from_an_inventory():
    from probes.hosts.local import LocalHost
    from probes.hosts.ssh import SSHHost
    from probes.session import Options, make_hosts

    hosts = make_hosts(
        Options(inventory=_p("fleet.yml"), limit="hypervisors,control", known_hosts="/nonexistent/kh")
    )
    by = {h.name: h for h in hosts}
    assert list(by) == ["hv01.dc1.example", "hv02.dc1.example", "hv03.dc1.example", "hv-big", "localhost"]
    assert isinstance(by["localhost"], LocalHost) and by["localhost"].host.libvirt_uri == "qemu:///system"
    big = by["hv-big"]
    assert isinstance(big, SSHHost) and big.host.kind == "ssh"
    assert big.host.address == "root@192.0.2.10:2222"
    assert big.host.libvirt_uri == "qemu+ssh://root@192.0.2.10:2222/system?socket=/run/libvirt/libvirt-sock"
    assert by["hv01.dc1.example"].host.libvirt_uri == "qemu+ssh://admin@hv01.dc1.example/system"
    assert by["hv01.dc1.example"].libvirt_forward is not None and big.libvirt_forward is None
    assert big.known_hosts == "/nonexistent/kh"
    # one --host with --libvirt: that URI is the host's
    (one,) = make_hosts(Options(hosts=("root@hv9",), libvirt_uri="qemu+ssh://root@hv9/system?socket=/x"))
    assert one.host.libvirt_uri == "qemu+ssh://root@hv9/system?socket=/x"
