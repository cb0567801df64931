"""The catalog's layout: a check lives in the module of its area, and its function is named
after its id, so a newcomer finds VM-04 at probes/checks/vm.py:vm04_*."""

from __future__ import annotations

from probes.checks.base import load_catalog

PREFIX = {"HOST": "host", "VM": "vm", "NET": "net", "CTR": "ctr", "RES": "res", "LOG": "log", "SW": "sw"}


def test_every_check_lives_in_the_module_of_its_area_and_is_named_after_its_id():
    wrong = []
    for cid, c in load_catalog().items():
        prefix, _, num = cid.partition("-")
        want_module = f"probes.checks.{c.spec.area}"
        want_name = f"{PREFIX.get(prefix, prefix.lower())}{num}_"
        if c.fn.__module__ != want_module or not c.fn.__name__.startswith(want_name):
            wrong.append((cid, c.spec.area, f"{c.fn.__module__}.{c.fn.__name__}"))
    assert not wrong, wrong
