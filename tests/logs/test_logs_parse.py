"""Parsers, attribution and classification on the real-format corpus, and LOG-01..LOG-04."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from probes import snapshot
from probes.checks.base import REGISTRY, load_catalog
from probes.logs import classify, parsers
from probes.logs.attribute import Attributor, Index, cgroup_name, mcs_pair
from probes.logs.model import LoggingSetup, LogSource, LogView, SourceState, parse_ref
from probes.logs.query import QueryError, Search, parse_query
from probes.logs.ring import Ring
from probes.model import Status
from tests.fixtures.journal import corpus_expected, corpus_lines, fleet_state

QEMU_LOG = "file:/var/log/libvirt/qemu/acme-web.log"


def parsed_corpus():
    st = fleet_state()
    att = Attributor(Index(st))
    out = []
    for i, line in enumerate(corpus_lines(), 1):
        src = (
            QEMU_LOG
            if i >= 14
            else ("file:/var/log/libvirt/libvirtd.log" if i == 13 else "file:/var/log/syslog")
        )
        e = parsers.parser_for(src)(line, "hv1", src)
        out.append(att.attribute(e))
    return st, out


def test_corpus_is_parsed_and_attributed_to_the_right_tenant():
    _, events = parsed_corpus()
    expected = corpus_expected()
    assert len(events) == len(expected) == 15
    got = [(e.tenant, e.tags[0] if e.tags else "", e.target_tenant, e.attributed_by) for e in events]
    assert got == expected


def test_corpus_fields_and_severities():
    _, ev = parsed_corpus()
    avc = ev[0]
    assert avc.kind == "audit" and avc.pid == 4321 and avc.at == pytest.approx(1795773601.123)
    assert avc.field("scontext").endswith("s0:c12,c34") and avc.field("tcontext").endswith("c56,c78")
    assert avc.field("comm") == "qemu-system-x86" and avc.field("perms") == "read write"
    assert avc.workload == "hv1/vm/acme-web" and avc.target_workload == "hv1/vm/globex-db"
    aa = ev[2]
    assert aa.field("profile") == "libvirt-2c4f5a6e-1111-4222-8333-444455556666"
    assert aa.field("name") == "/var/lib/libvirt/images/globex-db.qcow2"
    oom = ev[5]
    assert oom.severity == "err" and oom.pid == 5555 and oom.field("comm") == "qemu-system-x86"
    assert ev[4].field("task_memcg").startswith("/machine.slice/machine-qemu")
    assert ev[7].field("state") == "forwarding" and ev[7].field("port") == "tapacme1"
    assert ev[9].field("src") == "10.9.0.2"
    assert ev[12].severity == "err" and ev[12].kind == "libvirtd"
    assert ev[13].severity == "err" and ev[13].kind == "qemu"
    assert ev[11].tenant == "" and ev[11].program == "systemd" and ev[11].pid == 1


def test_audit_hex_encoded_comm_and_audit_log_format():
    line = (
        "type=AVC msg=audit(1700000000.5:9): avc:  denied  { open } for  pid=77 "
        'comm=71656D752073797374656D path="/srv/x" scontext=u:r:svirt_t:s0:c1,c2 '
        "tcontext=u:o:svirt_image_t:s0:c3,c4 tclass=file permissive=0"
    )
    e = parsers.parse_audit(line, "hv1", "file:/var/log/audit/audit.log")
    assert e.field("comm") == "qemu system" and e.field("pid") == "77" and e.pid == 77
    assert e.tags == (classify.MAC_DENIAL,) and e.at == 1700000000.5


def test_helpers():
    assert mcs_pair("system_u:system_r:svirt_t:s0:c34,c12") == "c12,c34"
    assert mcs_pair("unconfined") == ""
    assert cgroup_name(r"/machine.slice/machine-qemu\x2d3\x2dglobex\x2ddb.scope/libvirt") == "globex-db"
    assert cgroup_name("/machine/qemu-12-acme-web.libvirt-qemu/emulator") == "acme-web"
    assert cgroup_name("/system.slice/docker-" + "a" * 64 + ".scope") == "a" * 64
    assert parse_ref("log:hv1#42") == ("hv1", 42) and parse_ref("/etc/x") is None


def test_ambiguous_tokens_do_not_attribute():
    st = fleet_state()  # eth0 is in two namespaces
    e = parsers.parse_syslog("Nov 27 10:00:00 hv1 kernel: eth0: link up", "hv1", "file:/var/log/syslog")
    assert Attributor(Index(st)).attribute(e).tenant == ""


def test_equal_evidence_goes_to_the_workload_named_first():
    """Two domain names (equal rank): the first in the line wins, whatever the hash seed
    (before, the winner was a set's iteration order, which changes from process to process)."""
    st = fleet_state()
    att = Attributor(Index(st))
    for first, second, tenant in (("acme-web", "globex-db", "acme"), ("globex-db", "acme-web", "globex")):
        line = f"Nov 27 10:00:00 hv1 libvirtd[7]: migrating {first} next to {second}"
        e = att.attribute(parsers.parse_syslog(line, "hv1", "file:/var/log/syslog"))
        assert (e.tenant, e.workload, e.attributed_by) == (tenant, f"hv1/vm/{first}", "name")
    # stronger evidence later in the line still wins over a name named first
    line = "Nov 27 10:00:00 hv1 libvirtd[7]: acme-web: profile libvirt-7d1e2f3a-5555-4666-8777-888899990000"
    e = att.attribute(parsers.parse_syslog(line, "hv1", "file:/var/log/syslog"))
    assert e.tenant == "globex" and e.attributed_by == "profile"


def test_libvirt_domain_short_cgroup_names():
    from probes.model import Host, HostState, State
    from tests.fixtures.journal import _vm

    w = _vm(
        "tenantlong-a-very-long-domain-name",
        "tl",
        "1" * 8 + "-1111-4111-8111-" + "1" * 12,
        "c1,c2",
        "tapx",
        "52:54:00:00:00:09",
    )
    st = State(hosts=(HostState(Host("hv1"), workloads=(w,)),))
    # libvirt truncates the name in cgroup paths to 20 characters
    e = parsers.parse_syslog(
        "Nov 27 10:00:00 hv1 kernel: oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/machine/"
        "qemu-4-tenantlong-a-very-lo.libvirt-qemu/emulator,task=qemu,pid=9",
        "hv1",
        "file:/var/log/syslog",
    )
    assert Attributor(Index(st)).attribute(e).tenant == "tl"


def test_journal_json_message_as_byte_list():
    obj = {
        "MESSAGE": list(b"hello \x1b]0;x\x07 \xff"),
        "PRIORITY": "3",
        "_PID": "12",
        "SYSLOG_IDENTIFIER": "qemu-system-x86_64",
        "__REALTIME_TIMESTAMP": "1700000000250000",
        "__CURSOR": "s=abc;i=1",
        "_SYSTEMD_CGROUP": r"/machine.slice/machine-qemu\x2d1\x2dacme\x2dweb.scope",
    }
    e, cur = parsers.parse_journal_line(json.dumps(obj), "hv1")
    assert e.message == "hello \x1b]0;x\x07 \ufffd" and cur == "s=abc;i=1"
    assert e.severity == "err" and e.at == 1700000000.25 and e.pid == 12 and e.kind == "qemu"
    e = Attributor(Index(fleet_state())).attribute(e)
    assert e.tenant == "acme" and e.attributed_by == "cgroup"
    bad, cur = parsers.parse_journal_line("{not json", "hv1")
    assert bad.message == "{not json" and cur == ""


def test_virsh_events():
    e = parsers.parse_virsh_event(
        "2026-11-27 10:33:58.028+0000: event 'lifecycle' for domain 'acme-web': Crashed Panicked", "hv1"
    )
    assert e.tags == (classify.GUEST_CRASH,) and e.severity == "err" and e.field("domain") == "acme-web"
    assert Attributor(Index(fleet_state())).attribute(e).tenant == "acme"
    assert (
        parsers.parse_virsh_event(
            "2026-11-27 10:33:58.028+0000: event 'balloon-change' for domain 'x': 1", "h"
        )
        is None
    )
    assert parsers.parse_virsh_event("events received: 3", "h") is None


def view_of(events, **kw) -> LogView:
    ring = Ring(100)
    evs = ring.append_many(events)
    return LogView(
        events=tuple(evs), total=ring.total, signals=tuple(e for e in evs if classify.is_signal(e.tags)), **kw
    )


def state_with(view: LogView):
    st = fleet_state()
    return replace(st, hosts=(replace(st.hosts[0], logs=view),))


def run(st, cid):
    load_catalog()
    assert cid in REGISTRY
    from probes.checks.base import run_checks

    return [f for f in run_checks(st, [cid])]


def test_log_checks_on_the_corpus():
    _, events = parsed_corpus()
    # unattributed in the view: the checks attribute them from the State themselves
    raw = [
        replace(e, tenant="", workload="", target_tenant="", target_workload="", attributed_by="")
        for e in events
    ]
    st = state_with(view_of(raw))
    f1 = run(st, "LOG-01")
    crit = [f for f in f1 if f.severity == "critical"]
    # the AVC and the AppArmor denial: one finding (same subject and object), two lines
    assert len(crit) == 1 and crit[0].status == Status.FAIL and crit[0].tenants == ("acme", "globex")
    assert [parse_ref(ev.where) for ev in crit[0].evidence] == [("hv1", 1), ("hv1", 3)]
    same = [f for f in f1 if f.severity != "critical"]
    assert [f.tenants for f in same] == [("globex",)]
    f2 = run(st, "LOG-02")
    assert [(f.status, f.tenants) for f in f2 if f.workloads] == [(Status.FAIL, ("acme",))]
    f3 = run(st, "LOG-03")
    assert [(f.status, f.workloads) for f in f3] == [(Status.FAIL, ("hv1/vm/globex-db",))]


def test_log_checks_pass_skip_and_logging_setup():
    st = fleet_state()
    assert run(st, "LOG-01")[0].status == Status.SKIPPED
    good = LoggingSetup(journald=True, journal_persistent=True, audit_log=True, auditd=True)
    st = state_with(
        view_of([], setup=good, sources=(LogSource("journal", "journal", SourceState.FOLLOWING),))
    )
    assert [f.status for f in run(st, "LOG-01")] == [Status.PASS]
    assert [f.status for f in run(st, "LOG-04")] == [Status.PASS]
    bad = LoggingSetup(journald=True, journal_persistent=False, audit_log=False, auditd=False)
    st = state_with(
        view_of(
            [],
            setup=bad,
            sources=(
                LogSource(
                    "file:/var/log/audit/audit.log", "file", SourceState.UNREADABLE, "permission denied"
                ),
                LogSource("journal", "journal", SourceState.ABSENT, "No journal files were found."),
            ),
        )
    )
    f4 = run(st, "LOG-04")
    summaries = sorted(f.summary for f in f4)
    assert summaries == [
        "log source unreadable: file:/var/log/audit/audit.log",
        "no audit log (no auditd, no /var/log/audit/audit.log)",
        "no log source can be read",
        "the journal is not persistent (lost at reboot)",
    ]


def test_logview_round_trips_through_snapshot():
    _, events = parsed_corpus()
    st = state_with(
        view_of(
            events,
            setup=LoggingSetup(journald=True),
            sources=(LogSource("journal", "journal", SourceState.FOLLOWING, "", 3, 1.0),),
        )
    )
    assert snapshot.loads(snapshot.dumps(st)) == st


def test_ring_bounds_and_since():
    r = Ring(5)
    _, events = parsed_corpus()
    r.append_many(events[:4])
    assert [e.seq for e in r.since(2)] == [3, 4]
    r.append_many(events[4:9])
    assert len(r) == 5 and r.total == 9 and r.dropped == 4 and r.first_seq == 5
    assert [e.seq for e in r.since(0)] == [5, 6, 7, 8, 9]
    assert r.get(4) is None and r.get(7).seq == 7 and r.newest(2)[0].seq == 8


def test_queries():
    _, ev = parsed_corpus()
    q = parse_query("tenant:acme sev:warning")
    assert [e.tags[0] for e in ev if q.matches(e)] == ["mac-denial", "mac-denial", "qemu-error", "qemu-error"]
    # the target tenant of a cross-tenant denial sees it too
    assert sum(parse_query("tenant:globex tag:mac-denial").matches(e) for e in ev) == 3
    assert [e.program for e in ev if parse_query("tenant:- session").matches(e)] == ["systemd"]
    assert sum(parse_query("source:file:/var/log/libvirt").matches(e) for e in ev) == 3
    with pytest.raises(QueryError, match="sev:loud"):
        parse_query("sev:loud")
    with pytest.raises(QueryError, match="search"):
        Search("(", regex=True).compile()
    assert Search("a.b").compile().search("a.b") and not Search("a.b").compile().search("axb")


def test_query_predicate_agrees_with_matches():
    _, ev = parsed_corpus()
    for text in (
        "",
        "tenant:acme",
        "tenant:-",
        "tenant:globex tag:mac-denial",
        "sev:err",
        "source:file:/var/log/libvirt host:hv1",
        "session root",
        "workload:acme sev:warning",
    ):
        q = parse_query(text)
        assert [q.predicate()(e) for e in ev] == [q.matches(e) for e in ev], text


def test_visible_shows_other_invisible_and_bidi_characters():
    from probes.untrusted import visible

    s = "a\u061cb\u00adc\U000e0041\U000e007fd\ufff9e\u180ef"
    assert visible(s) == "a\\u061cb\\xadc\\U000e0041\\U000e007fd\\ufff9e\\u180ef"
    assert visible("x" * 20000).endswith("…[cut]") and len(visible("x" * 20000)) == 16384 + 6
    assert visible(b"\xff ok") == "\ufffd ok"
