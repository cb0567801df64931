"""The config file: a good one read completely; bad ones refused naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from probes import config
from probes.config import AllowRule, ConfigError, MetadataSelector, load, parse
from probes.network.policy import allows
from tests.helpers import DATA as TEST_DATA
from tui import cli

DATA = TEST_DATA / "config"


def test_good_file_is_read_completely():
    c = load(DATA / "good.toml")
    assert c.path == str(DATA / "good.toml")
    assert [t.name for t in c.tenants] == ["acme", "globex"]
    acme, globex = c.tenants
    assert acme.domains == ("acme-*", "web-[0-9]*")
    assert acme.netns == ("acme-*",) and acme.cgroups == ("/machine.slice/*acme*",)
    assert acme.containers == ("acme-*", "com.example.tenant=acme")
    assert globex.metadata == (
        MetadataSelector(path="tenant/@id", value="globex", namespace="http://example.com/tenancy/1"),
        MetadataSelector(path="owner/project", value="gx-*"),
    )
    assert globex.metadata[0].attr == "id" and globex.metadata[0].element == "tenant"
    assert c.policy.allow == (AllowRule("acme", "globex"), AllowRule("acme", "initech", (443, 8443)))
    assert allows(c.policy, "globex", "acme") and allows(c.policy, "initech", "acme", 443)
    assert not allows(c.policy, "initech", "acme", 22) and not allows(c.policy, "globex", "initech")
    # a port-limited rule allows its ports only: not "any traffic" (port None, ICMP)
    assert not allows(c.policy, "initech", "acme") and not allows(c.policy, "acme", "initech", None)
    assert (c.prefix.separator, c.prefix.enabled) == ("_", True)
    assert c.theme == "high-contrast"
    assert c.table("keymap")["quit"] == "ctrl+q"
    assert c.logs.files == ("/var/log/libvirt/qemu/*.log",)  # [logs] is typed (LogsConfig)
    assert dict(c.table("absent")) == {}
    hash(c)  # frozen all the way down: Options holding it stays hashable


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load(path)
    return e.value


def test_unknown_key_names_file_line_and_key():
    e = _error(DATA / "unknown_key.toml")
    assert (e.file, e.line) == (str(DATA / "unknown_key.toml"), 7)
    assert e.key == "tenant[1].domain"
    assert str(e).startswith(f"{DATA / 'unknown_key.toml'}:7: tenant[1].domain: unknown key")
    assert "domains" in str(e)  # the keys that would have been right


def test_bad_value_type_names_file_line_and_key():
    e = _error(DATA / "bad_value.toml")
    assert (e.line, e.key) == (6, "prefix.enabled")
    assert "expected true or false, got a string" in str(e)


def test_unknown_key_inside_an_inline_table_is_located():
    e = _error(DATA / "bad_nested.toml")
    assert (e.line, e.key) == (5, "tenant[0].metadata[1].vaule")


@pytest.mark.parametrize(
    "text,line,key,words",
    [
        ("colour = 1\n", 1, "colour", "unknown key"),
        ('[[tenant]]\ndomains = ["a"]\n', 1, "tenant[0].name", "needs a name"),
        ('[[tenant]]\nname = "a"\n[[tenant]]\nname = "a"\n', 4, "tenant[1].name", "defined twice"),
        ('[[tenant]]\nname = "a"\nnetns = "a-*"\n', 3, "tenant[0].netns", "list of strings"),
        ('[[tenant]]\nname = ""\n', 2, "tenant[0].name", "must not be empty"),
        ('[policy]\nallow = [["a", "b", [0]]]\n', 2, "policy.allow[0]", "1-65535"),
        ('[policy]\nallow = [["a"]]\n', 2, "policy.allow[0]", "expected"),
        ("theme = 3\n", 1, "theme", "expected a string"),
        ("keymap = 3\n", 1, "keymap", "expected a table"),
        ("[ssh]\nport = 22\n", 1, "ssh", "unknown key"),  # a table nothing reads is refused
        ("[network]\nprobe_port = [22]\n", 2, "network.probe_port", "unknown key"),
        ("[network]\nprobe_timeout = 60\n", 2, "network.probe_timeout", "between 0.05 and 10"),
        ('[network.addresses]\nweb = ["10.0.0.300"]\n', 2, "network.addresses.web", "not an IPv4"),
        ('[prefix]\nseparator = ""\n', 2, "prefix.separator", "must not be empty"),
        ('[[tenant]]\nname = "a"\ndomains = [\n', 0, "", "not valid TOML"),
        ('[[tenant]]\nname = "a"\nname = "b"\n', 3, "", "not valid TOML"),
    ],
)
def test_bad_configs(text: str, line: int, key: str, words: str):
    with pytest.raises(ConfigError) as e:
        parse(text, "c.toml")
    assert e.value.key == key
    assert words in str(e.value)
    if line:
        assert e.value.line == line
        assert str(e.value).startswith(f"c.toml:{line}: ")


def test_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.default_path() == tmp_path / "xdg" / "tenantscope" / "config.toml"
    assert load() == config.Config()  # no default file: an empty config
    e = _error(tmp_path / "nope.toml")  # an explicit file must exist
    assert str(e) == f"{tmp_path / 'nope.toml'}: no such file"


def test_default_file_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "tenantscope").mkdir()
    (tmp_path / "tenantscope" / "config.toml").write_text('[[tenant]]\nname = "acme"\n')
    assert [t.name for t in load().tenants] == ["acme"]


def test_not_utf8_and_directory(tmp_path: Path):
    (tmp_path / "bin.toml").write_bytes(b"name = '\xff'\n")
    assert "not UTF-8" in str(_error(tmp_path / "bin.toml"))
    assert "is a directory" in str(_error(tmp_path))


@pytest.mark.parametrize("argv_tail", [["check"], ["snapshot", "-o", "/dev/null"]])
def test_cli_refuses_bad_config_in_one_line(argv_tail, capsys: pytest.CaptureFixture[str]):
    bad = DATA / "unknown_key.toml"
    rc = cli.main([*argv_tail, "--config", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2
    assert (
        err == f"tenantscope: {bad}:7: tenant[1].domain: unknown key (expected one of: "
        "cgroups, containers, domains, metadata, name, netns)\n"
    )


def test_cli_loads_the_config_once_into_options():
    args = cli.build_parser().parse_args(["check", "--config", str(DATA / "good.toml")])
    opts = cli.options_from(args)
    assert opts.config is not None and [t.name for t in opts.config.tenants] == ["acme", "globex"]
    demo = cli.options_from(cli.build_parser().parse_args(["check", "--demo"]))
    assert demo.config == config.Config()  # the demo ignores the user's default config
