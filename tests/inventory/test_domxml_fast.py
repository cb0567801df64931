"""Domain XML given as text (XMLDesc) is parsed by the stdlib's C parser when it holds no
declaration, and by defusedxml otherwise (issue 16: 1,000 domains on the first frame). Both
paths must give the same result on every domain XML the tests know (hand-written, the demo
fleet, the real-world corpus), and hostile text must still be refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from probes.inventory import domxml
from probes.inventory.domxml import DomainXmlError, parse_domain
from tests.helpers import CORPUS, REPO
from tests.helpers import DATA as TEST_DATA

DATA = TEST_DATA / "domains"
FLEET = REPO / "probes" / "demo" / "fleet.xml"


def _documents() -> list[tuple[str, str]]:
    docs = [(p.name, p.read_text()) for p in sorted(DATA.glob("*.xml"))]
    for i, dom in enumerate(ET.parse(FLEET).getroot().iter("domain")):
        docs.append((f"fleet-{i}", ET.tostring(dom, encoding="unicode")))
    if CORPUS.is_dir():
        docs += [(p.name, p.read_text(errors="replace")) for p in sorted(CORPUS.glob("*.xml"))]
    return docs


def _outcome(text: str, name: str) -> object:
    try:
        return parse_domain(text, name_hint=name, secure=True)
    except DomainXmlError as e:
        return str(e)


def test_fast_path_equals_defusedxml(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _documents()
    assert len(docs) > 10
    fast = [_outcome(text, name) for name, text in docs]
    # the same text through defusedxml (bytes take that path)
    slow = [_outcome(text.encode(), name) for name, text in docs]
    for (name, _), a, b in zip(docs, fast, slow, strict=True):
        if isinstance(a, str) and isinstance(b, str):  # both refused: both name the domain
            assert name in a and name in b
        else:
            assert a == b, name


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><domain><name>&a;</name></domain>',
        '<!-- hello --><!DOCTYPE domain SYSTEM "file:///etc/passwd"><domain><name>x</name></domain>',
        "<domain><name>x</name><!-- <!ENTITY in a comment --></domain>",  # refused: conservative
        "<domain><description><![CDATA[<!DOCTYPE x>]]></description></domain>",
    ],
)
def test_declarations_refused_on_the_fast_path(text: str) -> None:
    with pytest.raises(DomainXmlError, match="not allowed"):
        parse_domain(text, name_hint="bomb")


def test_comments_and_cdata_parse() -> None:
    p = parse_domain(
        "<!-- made by hand --><domain type='kvm'><name>ok</name><uuid>u</uuid>"
        "<description><![CDATA[a < b]]></description><vcpu>2</vcpu></domain>",
        name_hint="ok",
    )
    assert (p.name, p.vm.vcpus) == ("ok", 2)


def test_text_takes_the_c_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """A document without declarations never reaches defusedxml (the fast path is taken)."""

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("defusedxml called")

    monkeypatch.setattr(domxml, "_defused_fromstring", refuse)
    assert parse_domain((DATA / "full.xml").read_text(), name_hint="full").name


def test_parsing_leaves_no_cyclic_garbage() -> None:
    """A fleet's first inventory parses thousands of domains: nothing a parse makes may need
    the cyclic collector to be freed (a recursive closure did: 5 objects per domain)."""
    import gc

    docs = [text for _, text in _documents()][:40]
    assert any("<metadata>" in d for d in docs)
    gc.collect()
    gc.disable()
    try:
        for text in docs:
            _outcome(text, "d")
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_plain_tag_paths_find_what_elementpath_finds() -> None:
    """domxml._find walks "a/b" step by step (the C fast path): the same element as
    ElementPath's find, also when the first <a> has no <b> or several <a> exist."""
    paths = ("numatune/memory", "blkiotune/weight", "os/type", "devices/emulator", "memory", "nope/x")
    made = ET.fromstring(
        "<domain><os/><os><type>hvm</type></os><numatune><memnode/></numatune>"
        "<numatune><memory mode='strict'/><memory mode='x'/></numatune></domain>"
    )
    roots = [made]
    for _, text in _documents()[:80]:
        try:
            roots.append(domxml.safe_fromstring(text))
        except (ET.ParseError, domxml.DefusedXmlException):  # the malformed and hostile ones
            continue
    assert len(roots) > 20
    for root in roots:
        for path in paths:
            assert domxml._find(root, path) is root.find(path), path
    assert domxml._find(made, "numatune/memory").get("mode") == "strict"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, None),
        ("", None),
        ("12", 12),
        (" 12 ", 12),
        ("007", 7),
        ("0x1F", 31),
        ("0X1f", 31),
        ("-5", -5),
        ("1_000", 1000),
        ("²", None),  # a digit to str.isdigit, not to int()
        ("١٢", 12),  # Arabic-Indic digits: int() reads them
        ("12a", None),
        ("0x", None),
    ],
)
def test_integers_read_as_before(text: str | None, value: int | None) -> None:
    assert domxml._int(text) == value


@pytest.mark.parametrize(
    "tag",
    ["domain", "{http://example.com/ts/1}tenant", "{}local", "{no-end", "{a}b}c", "", "{", "}x", "a{b}c"],
)
def test_a_names_namespace_split_as_the_pattern_did(tag: str) -> None:
    """Metadata names are split without a regular expression (three per domain): the same
    (namespace, local) pairs as the pattern ^\\{([^}]*)\\}(.*)$ gave, and ("", tag) without one."""
    import re

    m = re.match(r"^\{([^}]*)\}(.*)$", tag)
    assert domxml._split(tag) == ((m.group(1), m.group(2)) if m else ("", tag))
