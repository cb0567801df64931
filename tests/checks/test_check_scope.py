"""Host-scope checks (scope="host"): the runner runs them per host and re-runs them only on the
hosts whose declared fields changed. What makes that safe is proved here: over a mixed fleet
(the real demo fleet observed through the libvirt test driver, the checkxml and libvirt corpus
domains parsed by the real parser, real facts trees, Docker daemons, hosts with nothing), the
per-host runner gives exactly the findings, in exactly the order, of the fleet-wide run; after
one host changes, only that host is checked again; and a host-scope check sees only its host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from probes.checks.base import Check, CheckRunner, CheckSpec, finding, load_catalog
from probes.model import (
    ContainerDetails,
    DaemonSetting,
    Finding,
    Host,
    HostState,
    RuntimeDaemon,
    RuntimeNetwork,
    Severity,
    State,
    Status,
    Workload,
    WorkloadKind,
)
from tests.fixtures.checks import all_xml, collect_facts, make_tree, xml_state
from tests.helpers import CORPUS

pytest.importorskip("libvirt", reason="the demo fleet is read through the libvirt test driver")

SOCK = "/run/docker.sock"


def _renamed(hs: HostState, name: str) -> HostState:
    ws = tuple(replace(w, host=name) for w in hs.workloads)
    return replace(hs, host=replace(hs.host, name=name), workloads=ws)


def _corpus_workloads() -> tuple[Workload, ...]:
    from probes.inventory.domxml import DomainXmlError, error_details, parse_domain

    out = []
    for i, p in enumerate(sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else []):
        try:
            vm = parse_domain(p.read_bytes(), name_hint=p.stem, secure=True).vm
        except DomainXmlError as e:
            vm = error_details(str(e))
        t = "acme" if i % 2 else "globex"
        out.append(Workload(kind=WorkloadKind.VM, name=f"{t}-{p.stem}", host="hv1", state="running", vm=vm))
    return tuple(out)


def _docker_host(name: str) -> HostState:
    daemon = RuntimeDaemon(
        "docker",
        socket=SOCK,
        pid=42,
        api="ok",
        hosts=(f"unix://{SOCK}", "tcp://0.0.0.0:2375"),
        socket_owner="root",
        socket_group="docker",
        socket_mode=0o666,
        networks=(RuntimeNetwork("bridge", driver="bridge", bridge="docker0", icc=True),),
        settings=(DaemonSetting("live-restore", "true", "dockerd --live-restore=true"),),
    )
    ctr = Workload(
        WorkloadKind.CONTAINER,
        "web",
        name,
        tenant="acme",
        container=ContainerDetails(runtime="docker", daemon=SOCK),
    )
    return HostState(Host(name), workloads=(ctr,), runtimes=(daemon,))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> State:
    from tests.fixtures.tui import observe_demo

    tmp = tmp_path_factory.mktemp("scope")
    demo = asyncio.run(observe_demo())
    [d] = demo.hosts
    weak = xml_state(all_xml(), facts=collect_facts(make_tree("weak", tmp)))
    corpus = xml_state(extra=_corpus_workloads(), facts=collect_facts(make_tree("hardened", tmp)))
    hosts = (
        _renamed(d, "zz-demo"),  # not in name order: the results must keep the fleet's order
        _renamed(replace(d, topology=None, samples=None), "aa-demo-bare"),
        _renamed(weak.hosts[0], "mm-checkxml"),
        _renamed(corpus.hosts[0], "kk-corpus"),
        _docker_host("dd-docker"),
        HostState(Host("bb-empty")),
    )
    return replace(demo, hosts=hosts, findings=(), source="live")


def _host_scope() -> list[str]:
    return sorted(c for c, v in load_catalog().items() if v.scope == "host")


def test_per_host_results_are_the_fleet_wide_results(fleet: State) -> None:
    """Every subset and order of the mixed fleet: per-host == fleet-wide, finding for finding."""
    assert len(_host_scope()) > 50  # most of the catalog judges a host on its own
    cases = [fleet.hosts, fleet.hosts[::-1], *((h,) for h in fleet.hosts), fleet.hosts[2:4], ()]
    for hosts in cases:
        st = replace(fleet, hosts=tuple(hosts))
        want = CheckRunner(by_host=False).run(st)
        got = CheckRunner().run(st)
        assert got == want, [h.host.name for h in hosts]


def test_after_one_host_changed_only_that_host_is_checked_again(fleet: State) -> None:
    """A session's runner over successive States: the results are a fresh fleet-wide run's,
    and a host-scope check runs again on the changed host only (each call sees one host)."""
    seen: list[tuple[str, tuple[str, ...]]] = []

    def spy(c: Check) -> Check:
        def fn(state: State, spec: CheckSpec) -> Iterator[Finding]:
            seen.append((spec.id, tuple(h.host.name for h in state.hosts)))
            return c.fn(state, spec)

        return replace(c, fn=fn)

    catalog = {k: spy(v) for k, v in load_catalog().items()}
    runner = CheckRunner(catalog)
    first = runner.run(fleet)
    hosts = [h for h in fleet.hosts]
    scoped = {c for c, v in catalog.items() if v.scope == "host"}
    # each call sees its own host only, but for checks skipped on every host: those run once
    # more fleet-wide, to say why in the fleet's words (one SKIPPED result)
    skipped = {f.check_id for f in first if f.status is Status.SKIPPED and not f.host}
    assert all(len(names) == 1 or cid in skipped for cid, names in seen if cid in scoped)
    assert all(len(names) == 1 for cid, names in seen if cid in scoped - skipped)
    assert first == CheckRunner(by_host=False).run(fleet)

    seen.clear()
    again = runner.run(replace(fleet, hosts=tuple(replace(h) for h in hosts)))  # equal, new objects
    assert again == first and not seen

    kk = hosts[3]
    hosts[3] = replace(kk, workloads=kk.workloads[1:])  # one domain fewer on one host
    changed = replace(fleet, hosts=tuple(hosts))
    got = runner.run(changed)
    assert got == CheckRunner(by_host=False).run(changed) and got != first
    per_host_calls = [names for cid, names in seen if cid in scoped - skipped]
    assert per_host_calls and all(names == ("kk-corpus",) for names in per_host_calls)


def test_a_check_that_compares_hosts_cannot_pass_as_host_scope(fleet: State) -> None:
    """What the equality above would catch: a check that counts the fleet's domains, declared
    scope="host" by mistake, gives per-host results that differ from its fleet-wide result."""

    def counts(state: State, spec: CheckSpec) -> Iterator[Finding]:
        n = sum(len(h.workloads) for h in state.hosts)
        for h in state.hosts:
            yield finding(spec, Status.WARN, f"{n} workloads in the fleet", host=h.host.name)

    spec = CheckSpec("TST-09", "test", "counts", "why", Severity.LOW)
    cat = {"TST-09": Check(spec, counts, frozenset({"workloads"}), "host")}
    assert CheckRunner(cat).run(fleet) != CheckRunner(cat, by_host=False).run(fleet)


def test_a_corpus_path_is_used_when_present() -> None:
    """The corpus (../shared/corpus) is part of the mixed fleet when this machine has it."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus absent: {CORPUS}")
    assert len(_corpus_workloads()) > 100 and isinstance(CORPUS, Path)
