"""tests/README.md maps every check of the catalog to its tests: a check without a row, a row
for a check that is gone, or a row none of whose files names the id fails; every file the map
names exists."""

from __future__ import annotations

import re

from probes.checks.base import load_catalog
from tests.helpers import REPO

README = (REPO / "tests" / "README.md").read_text()


def _table(section: str) -> list[list[str]]:
    body = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("| ---")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows[1:]]  # without the header


def _files(cell: str) -> list[str]:
    return [f.strip() for f in cell.split(",") if f.strip()]


def test_every_check_id_has_its_tests_in_the_map() -> None:
    rows = {r[0]: _files(r[-1]) for r in _table("Check ids and their tests")}
    catalog = set(load_catalog())
    missing = sorted(catalog - set(rows))
    assert not missing, f"tests/README.md has no row for {missing}: add `| ID | area | title | tests |`"
    gone = sorted(set(rows) - catalog)
    assert not gone, f"tests/README.md lists checks that are not in the catalog: {gone}"
    for cid, files in rows.items():
        assert files, f"{cid}: no test named"
        for f in files:
            assert (REPO / f).is_file(), f"{cid}: {f} does not exist"
        assert any(re.search(rf"\b{re.escape(cid)}\b", (REPO / f).read_text()) for f in files), (
            f"{cid}: none of {files} mentions it"
        )


def test_every_file_the_feature_map_names_exists() -> None:
    rows = _table("Features and their tests")
    assert len(rows) > 20
    for feature, cell in rows:
        files = _files(cell)
        assert files, feature
        for f in files:
            assert f.startswith("tests/") and (REPO / f).is_file(), f"{feature}: {f} does not exist"
