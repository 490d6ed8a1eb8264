"""Tests for btd.core.config: typed parsing, errors with key and line, search, overrides."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core import paths
from btd.core.config import (
    DEFAULT_PLUGINS,
    LIVE_KEYS,
    Config,
    check_file_trust,
    default_config,
    find_config_file,
    load_config,
    parse_config,
    with_overrides,
)
from btd.core.config_render import plain_config, reload_diff, to_yaml
from btd.core.config_schema import SECTIONS
from btd.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ENV = {"HOME": "/home/u", "DATA": "/srv/data"}


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(text, "btd.yaml", env=ENV if env is None else env)


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


# --- good configs ----------------------------------------------------------------------------


def test_empty_file_and_comments_mean_defaults() -> None:
    assert parse("") == default_config(ENV)
    assert parse("# nothing here\n\n") == default_config(ENV)
    assert parse("~\n") == default_config(ENV)


def test_defaults() -> None:
    config = default_config(ENV)
    assert config.daemon.state_dir == Path("/home/u/.local/share/btd")
    assert config.daemon.log_level == "info"
    assert config.daemon.shutdown_timeout == 10.0
    assert config.control.socket == paths.default_socket(ENV)
    assert config.control.allowed_group is None
    assert config.session.download_dir == Path("/home/u/Downloads")
    assert (config.session.listen_host, config.session.listen_port) == ("0.0.0.0", 6881)
    assert config.session.max_connections == 200
    assert config.session.max_connections_per_torrent == 50
    assert config.session.upload_slots == 4
    assert config.session.piece_strategy == "rarest-first"
    assert config.session.peer_id_prefix == "-BT0100-"
    assert tuple(config.plugins) == DEFAULT_PLUGINS
    assert all(settings == {} for settings in config.plugins.values())
    assert config.source is None


def test_values_are_typed_and_paths_expanded() -> None:
    config = parse(
        "daemon:\n"
        "  state_dir: ~/state\n"
        "  log_level: DEBUG\n"
        "  shutdown_timeout: 2.5\n"
        "control:\n"
        "  socket: ${DATA}/btd.sock\n"
        "  allowed_group: 1001\n"
        "session:\n"
        "  download_dir: $DATA/dl/$$x\n"
        "  listen_host: '::1'\n"
        "  listen_port: 0\n"
        "  max_connections: 20\n"
        "  piece_strategy: sequential\n"
    )
    assert config.daemon == dataclasses.replace(
        config.daemon, state_dir=Path("/home/u/state"), log_level="debug", shutdown_timeout=2.5
    )
    assert config.control.socket == Path("/srv/data/btd.sock")
    assert config.control.allowed_group == 1001
    assert config.session.download_dir == Path("/srv/data/dl/$x")
    assert config.session.listen_host == "::1"
    assert config.session.listen_port == 0
    # per-torrent default shrinks to max_connections when that is lower and it was not given
    assert config.session.max_connections_per_torrent == 20
    assert parse("control:\n  allowed_group: btd\n").control.allowed_group == "btd"


def test_null_sections_and_plugins() -> None:
    assert parse("daemon:\nsession:\n") == default_config(ENV)
    assert parse("plugins:\n").plugins == {}
    assert parse("plugins: {}\n").plugins == {}
    config = parse("plugins:\n  sequential:\n  notify_webhook:\n    url: http://127.0.0.1/x\n")
    expected = {"sequential": {}, "notify_webhook": {"url": "http://127.0.0.1/x"}}
    assert dict(config.plugins) == expected


def test_plugins_are_read_only() -> None:
    config = parse("plugins:\n  watch_dir: {dirs: [/a, /b]}\n")
    assert isinstance(config.plugins, MappingProxyType)
    assert isinstance(config.plugins["watch_dir"], MappingProxyType)
    with pytest.raises(TypeError):
        config.plugins["x"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        config.plugins["watch_dir"]["dirs"] = []  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.session = config.session  # type: ignore[misc]
    hash(config)


def test_merge_keys_and_anchors() -> None:
    config = parse(
        "plugins:\n  a: &common {retries: 3}\n  b: *common\n"
        "session:\n  <<: {max_connections: 30, upload_slots: 2}\n  upload_slots: 5\n"
    )
    assert config.plugins["b"] == {"retries": 3}
    assert (config.session.max_connections, config.session.upload_slots) == (30, 5)


# --- bad configs: every one names the key and the line ---------------------------------------

BAD = [
    # (name, yaml, key, line, fragment of the message)
    (
        "string for int",
        "session:\n  max_connections: lots\n",
        "session.max_connections",
        2,
        'must be a positive integer, got "lots"',
    ),
    (
        "quoted number",
        "session:\n  upload_slots: '4'\n",
        "session.upload_slots",
        2,
        'must be a positive integer, got the string "4" (remove the quotes)',
    ),
    (
        "quoted port",
        'session:\n  listen_port: "6881"\n',
        "session.listen_port",
        2,
        'got the string "6881" (remove the quotes)',
    ),
    (
        "quoted number that would not do either",
        'session:\n  listen_port: "99999"\n',
        "session.listen_port",
        2,
        'must be an integer 0..65535 (0 = pick a free port), got the string "99999"\n',
    ),
    (
        "quoted float for a timeout",
        'daemon:\n  shutdown_timeout: "2.5"\n',
        "daemon.shutdown_timeout",
        2,
        'got the string "2.5" (remove the quotes)',
    ),
    (
        "umask with a digit that is not octal",
        "session:\n  umask: 0089\n",
        "session.umask",
        2,
        'must be an octal umask such as 0022 or 0002, or null for the inherited one, got "0089"\n',
    ),
    (
        "quoted umask that is not octal gets no quote hint",
        'session:\n  umask: "0089"\n',
        "session.umask",
        2,
        'got "0089"\n',
    ),
    ("umask too wide", "session:\n  umask: 01777\n", "session.umask", 2, "octal umask"),
    ("umask as a word", "session:\n  umask: group\n", "session.umask", 2, 'got "group"'),
    ("umask as a bool", "session:\n  umask: yes\n", "session.umask", 2, "got yes (a boolean)"),
    ("umask negative", "session:\n  umask: -2\n", "session.umask", 2, "got -2"),
    (
        "bool for int",
        "session:\n\n  listen_port: yes\n",
        "session.listen_port",
        3,
        "got yes (a boolean)",
    ),
    (
        "float for int",
        "session:\n  max_connections: 1.5\n",
        "session.max_connections",
        2,
        "got 1.5",
    ),
    ("zero for positive", "session:\n  upload_slots: 0\n", "session.upload_slots", 2, "got 0"),
    ("negative port", "session:\n  listen_port: -1\n", "session.listen_port", 2, "got -1"),
    ("port too big", "session:\n  listen_port: 65536\n", "session.listen_port", 2, "got 65536"),
    (
        "unknown log level",
        "daemon:\n  log_level: loud\n",
        "daemon.log_level",
        2,
        'must be one of debug, info, warning, error, critical, got "loud"',
    ),
    (
        "unknown key",
        "session:\n  max_conections: 3\n",
        "session.max_conections",
        2,
        "did you mean max_connections?",
    ),
    ("unknown section", "daemon: {}\nsesion: {}\n", "sesion", 2, "did you mean session?"),
    (
        "non-mapping section",
        "control: /run/btd.sock\n",
        "control",
        1,
        'must be a mapping, got "/run/btd.sock"',
    ),
    ("section is a list", "daemon:\n  - info\n", "daemon", 2, "got a list"),
    ("plugins not a mapping", "plugins:\n  - rarest_first\n", "plugins", 2, "got a list"),
    (
        "plugin settings not a mapping",
        "plugins:\n  rarest_first: {}\n  udp_tracker: yes\n",
        "plugins.udp_tracker",
        3,
        "must be a mapping or null, got yes (a boolean)",
    ),
    (
        "duplicate key",
        "session:\n  listen_port: 1\n  listen_port: 2\n",
        "session.listen_port",
        3,
        "duplicate key (first given on line 2)",
    ),
    ("duplicate section", "daemon: {}\nsession: {}\ndaemon: {}\n", "daemon", 3, "line 1"),
    (
        "duplicate inside plugin settings",
        "plugins:\n  w:\n    a: [1]\n    b: {c: 1,\n      c: 2}\n",
        "plugins.w.b.c",
        5,
        "duplicate key (first given on line 4)",
    ),
    (
        "per torrent above total",
        "session:\n  max_connections: 10\n  max_connections_per_torrent: 11\n",
        "session.max_connections_per_torrent",
        3,
        "must not exceed session.max_connections (10)",
    ),
    ("timeout zero", "daemon:\n  shutdown_timeout: 0\n", "daemon.shutdown_timeout", 2, "got 0"),
    (
        "timeout nan",
        "daemon:\n  shutdown_timeout: .nan\n",
        "daemon.shutdown_timeout",
        2,
        "got .nan",
    ),
    (
        "peer id prefix too short",
        "session:\n  peer_id_prefix: -BT01-\n",
        "session.peer_id_prefix",
        2,
        "exactly 8",
    ),
    (
        "peer id prefix not ascii",
        "session:\n  peer_id_prefix: -BT010é-\n",
        "session.peer_id_prefix",
        2,
        "exactly 8 printable ASCII",
    ),
    (
        "listen host not an address",
        "session:\n  listen_host: example.org\n",
        "session.listen_host",
        2,
        "must be an IP address",
    ),
    (
        "relative path",
        "daemon:\n  state_dir: state\n",
        "daemon.state_dir",
        2,
        "must be an absolute path",
    ),
    (
        "empty path",
        "session:\n  download_dir: ''\n",
        "session.download_dir",
        2,
        "must be a non-empty path",
    ),
    (
        "undefined variable",
        "control:\n  socket: $NOPE/btd.sock\n",
        "control.socket",
        2,
        "undefined environment variable $NOPE",
    ),
    (
        "socket path too long",
        f"control:\n  socket: /{'s' * 120}\n",
        "control.socket",
        2,
        "longer than 107 bytes",
    ),
    ("negative gid", "control:\n  allowed_group: -5\n", "control.allowed_group", 2, "got -5"),
    (
        "group is a bool",
        "control:\n  allowed_group: no\n",
        "control.allowed_group",
        2,
        "got no (a boolean)",
    ),
    (
        "unknown encryption policy",
        "session:\n  encryption: always\n",
        "session.encryption",
        2,
        "must be one of prefer, require, plain",
    ),
    (
        "empty strategy",
        "session:\n  piece_strategy: ''\n",
        "session.piece_strategy",
        2,
        "non-empty string",
    ),
    (
        "python tag",
        "daemon:\n  log_level: !!python/object/apply:os.getcwd []\n",
        "daemon.log_level",
        2,
        "could not determine a constructor",
    ),
    (
        "recursive alias",
        "plugins:\n  p:\n    a: &x [1, *x]\n",
        "plugins.p.a[1]",
        3,
        "recursive alias",
    ),
    (
        "non-string key",
        "session:\n  max_connections: 5\n  8: 9\n",
        "session",
        3,
        "keys must be strings, got 8",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_config_names_key_and_line(text: str, key: str, line: int, fragment: str) -> None:
    error = refused(text)
    assert (error.key, error.line, error.filename) == (key, line, "btd.yaml")
    assert str(error).startswith(f"btd.yaml:{line}: {key}: ")
    assert fragment in str(error) + "\n"


def test_error_format_matches_the_documented_example() -> None:
    text = "# comment\n" * 10 + "session:\n  max_connections: lots\n"
    error = refused(text)
    expected = 'btd.yaml:12: session.max_connections: must be a positive integer, got "lots"'
    assert str(error) == expected


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("daemon:\n  log_level: info\n session: x\n", 3, "YAML syntax error"),
        ("daemon: [\n", 2, "YAML syntax error"),
        ("daemon: {}\n---\nsession: {}\n", 2, "single document"),
        ("daemon:\n\tlog_level: info\n", 2, "YAML syntax error"),
        ("daemon: {}\nsession: \x07\n", 2, "not valid YAML text"),
        ("daemon: " + "[" * 3000 + "]" * 3000 + "\n", None, "nested too deeply"),
        ("- daemon\n- session\n", 1, "top level must be a mapping of sections, got a list"),
        ("\n\njust text\n", 3, 'top level must be a mapping of sections, got "just text"'),
    ],
    ids=[
        "bad indent",
        "unclosed flow",
        "two documents",
        "tab",
        "control char",
        "deep",
        "list",
        "scalar",
    ],
)
def test_file_level_errors_have_a_line(text: str, line: int | None, fragment: str) -> None:
    error = refused(text)
    assert (error.key, error.line) == ("", line)
    assert str(error).startswith(f"btd.yaml:{line}: " if line else "btd.yaml: ")
    assert fragment in str(error)


# --- the search order ------------------------------------------------------------------------


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_search_order(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert find_config_file(None, env) is None
    user = write(tmp_path / "xdg" / "btd" / "btd.yaml")
    assert find_config_file(None, env) == user
    from_env = write(tmp_path / "env.yaml")
    env["BTD_CONFIG"] = str(from_env)
    assert find_config_file(None, env) == from_env
    explicit = write(tmp_path / "explicit.yaml")
    assert find_config_file(explicit, env) == explicit


def test_search_falls_back_to_home_config(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    home = write(tmp_path / ".config" / "btd" / "btd.yaml")
    assert find_config_file(None, env) == home
    assert find_config_file(None, {**env, "BTD_CONFIG": ""}) == home


def test_explicit_and_env_files_must_exist(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "BTD_CONFIG": str(tmp_path / "missing-env.yaml")}
    write(tmp_path / ".config" / "btd" / "btd.yaml")
    with pytest.raises(ConfigError) as info:
        find_config_file(tmp_path / "missing.yaml", env)
    assert info.value.key == "--config" and "missing.yaml" in str(info.value)
    with pytest.raises(ConfigError) as info:
        find_config_file(None, env)
    assert info.value.key == "$BTD_CONFIG" and "missing-env.yaml" in str(info.value)


def test_load_config(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert load_config(None, env) == default_config(env)
    assert load_config(None, env).source is None
    path = write(tmp_path / "c.yaml", "session:\n  listen_port: 7000\n")
    config = load_config(path, env)
    assert config.session.listen_port == 7000
    assert config.source == path.absolute()


def test_load_config_names_the_file(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    bad = write(tmp_path / "bad.yaml", "session:\n  listen_port: high\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env)
    assert str(info.value).startswith(f"{bad}:2: session.listen_port: ")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env)  # a directory cannot be read
    assert info.value.filename == str(tmp_path) and "cannot read" in str(info.value)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"daemon:\n  log_level: \xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(latin, env)
    assert (info.value.line, "not UTF-8" in str(info.value)) == (2, True)


def test_failed_parse_never_modifies_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "btd.yaml", "session:\n  max_connections: lots\n  bogus: 1\n")
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_size)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    with pytest.raises(ConfigError):
        load_config(path, {"HOME": str(tmp_path)})
    assert path.read_bytes() == before[0]
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["btd.yaml"]


# --- overrides -------------------------------------------------------------------------------


def test_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = default_config(ENV)
    config = with_overrides(
        base,
        state_dir="~/s",
        socket=tmp_path / "b.sock",
        download_dir="dl",
        listen_port="0",
        log_level="WARNING",
        env=ENV,
    )
    assert config.daemon.state_dir == Path("/home/u/s")
    assert config.control.socket == tmp_path / "b.sock"
    assert config.session.download_dir == tmp_path / "dl"
    assert config.session.listen_port == 0
    assert config.daemon.log_level == "warning"
    assert config.session.max_connections == base.session.max_connections
    assert with_overrides(base) == base
    assert with_overrides(base, listen_port=7000).session.listen_port == 7000


@pytest.mark.parametrize(
    ("flags", "key", "fragment"),
    [
        ({"listen_port": 70000}, "--listen-port", "got 70000"),
        ({"listen_port": "x"}, "--listen-port", 'got "x"'),
        ({"listen_port": True}, "--listen-port", "(a boolean)"),
        ({"listen_port": "-1"}, "--listen-port", 'got "-1"'),
        ({"log_level": "verbose"}, "--log-level", 'got "verbose"'),
        ({"state_dir": ""}, "--state-dir", "non-empty path"),
        ({"socket": "/" + "s" * 120}, "--socket", "longer than 107 bytes"),
    ],
)
def test_bad_overrides(flags: dict[str, object], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(default_config(ENV), **flags)  # type: ignore[arg-type]
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ") and fragment in str(info.value)


# --- to_yaml round trip ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "mask"),
    [
        ("0022", 0o022),
        ("022", 0o022),
        ("22", 0o022),  # octal digits, as umask(1) reads them
        ("0002", 0o002),
        ("2", 0o002),
        ('"0002"', 0o002),
        ("'027'", 0o027),
        ("0o027", 0o027),
        ("0777", 0o777),
        ("0", 0),
        ("null", None),
    ],
)
def test_umask_forms(written: str, mask: int | None) -> None:
    assert parse(f"session:\n  umask: {written}\n").session.umask == mask


def test_umask_default_and_round_trip() -> None:
    assert default_config(ENV).session.umask == 0o022
    assert "  umask: '0022'\n" in to_yaml(default_config(ENV))
    for text in ("0002", "null", "0"):
        config = parse(f"session: {{umask: {text}}}\n")
        assert parse(to_yaml(config)) == config


def test_plain_config_is_json_with_paths_as_strings() -> None:
    import json

    config = parse(
        "daemon: {state_dir: /srv/$$odd}\n"
        "session: {umask: 0002}\n"
        "plugins: {web: {when: 2024-01-02, tags: [a, 1]}, sequential: null}\n"
    )
    data = plain_config(config)
    assert list(data) == [*SECTIONS, "labels", "plugins"]
    assert data["daemon"]["state_dir"] == "/srv/$odd"  # not doubled: this is not YAML
    assert data["session"]["umask"] == "0002"
    assert data["session"]["download_dir"] == str(config.session.download_dir)
    assert data["plugins"] == {"web": {"when": "2024-01-02", "tags": ["a", 1]}, "sequential": {}}
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert plain_config(config, for_yaml=True)["daemon"]["state_dir"] == "/srv/$$odd"
    numbered = parse("plugins: {x: {8: 9, t: [1, {2: 3}]}}\n")
    assert parse(to_yaml(numbered)) == numbered  # YAML keeps the int keys
    assert plain_config(numbered)["plugins"] == {"x": {"8": 9, "t": [1, {"2": 3}]}}  # JSON


def test_round_trip_defaults() -> None:
    config = default_config(ENV)
    assert parse(to_yaml(config)) == config


def test_round_trip_everything_set(tmp_path: Path) -> None:
    text = (
        "daemon: {state_dir: /srv/$$odd dir, log_level: error, shutdown_timeout: 0.25}\n"
        "control: {socket: /run/b.sock, allowed_group: '1000'}\n"
        "session: {download_dir: /d, listen_host: '::', listen_port: 1, max_connections: 3,\n"
        "  max_connections_per_torrent: 2, upload_slots: 9, piece_strategy: 'yes',\n"
        "  peer_id_prefix: '-XX1234-'}\n"
        "plugins:\n  web: {url: 'http://127.0.0.1:1/', tries: 3, events: [done, 'no'], t: null}\n"
        "  sequential:\n"
    )
    config = parse(text)
    assert config.daemon.state_dir == Path("/srv/$odd dir")
    assert config.control.allowed_group == "1000"
    again = parse(to_yaml(config))
    assert again == config
    assert again.plugins["web"]["events"] == ["done", "no"]
    assert parse(to_yaml(parse("plugins: {}\n"))).plugins == {}


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
_path = _text.filter(lambda t: "\0" not in t).map(lambda t: Path("/" + t))
_settings = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    state_dir=_path,
    download_dir=_path,
    strategy=_text.filter(str.strip),
    group=st.none() | st.integers(0, 2**32) | _text.filter(str.strip),
    ports=st.tuples(st.integers(0, 65535), st.integers(1, 10**6), st.integers(1, 10**6)),
    timeout=st.floats(min_value=1e-6, max_value=1e9),
    umask=st.none() | st.integers(0, 0o777),
    plugins=st.dictionaries(
        _text.filter(str.strip), st.dictionaries(_text, _settings, max_size=3), max_size=3
    ),
)
def test_round_trip_property(
    state_dir: Path,
    download_dir: Path,
    strategy: str,
    group: object,
    ports: tuple[int, int, int],
    timeout: float,
    umask: int | None,
    plugins: dict[str, dict[str, object]],
) -> None:
    base = default_config(ENV)
    port, total, slots = ports
    config = dataclasses.replace(
        base,
        daemon=dataclasses.replace(base.daemon, state_dir=state_dir, shutdown_timeout=timeout),
        control=dataclasses.replace(base.control, allowed_group=group),
        session=dataclasses.replace(
            base.session,
            download_dir=download_dir,
            piece_strategy=strategy,
            listen_port=port,
            max_connections=total,
            max_connections_per_torrent=1,
            upload_slots=slots,
            umask=umask,
        ),
        plugins=MappingProxyType({k: MappingProxyType(v) for k, v in plugins.items()}),
    )
    assert parse(to_yaml(config)) == config


def test_to_yaml_of_loaded_config_names_source(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "session: {listen_port: 9}\n")
    config = load_config(path, {"HOME": str(tmp_path)})
    assert str(path) in to_yaml(config).splitlines()[0]
    assert yaml.safe_load(to_yaml(config))["session"]["listen_port"] == 9


# --- reload_diff -----------------------------------------------------------------------------


def test_reload_diff() -> None:
    old = parse("plugins: {a: {}, b: {x: 1}, c: {}}\n")
    assert reload_diff(old, old) == ([], [])
    new = parse(
        "daemon: {log_level: debug, shutdown_timeout: 3}\n"
        "control: {allowed_group: btd}\n"
        "session: {max_connections: 100, max_connections_per_torrent: 10, upload_slots: 8,\n"
        "  piece_strategy: sequential, listen_port: 7000, umask: 0002,\n"
        "  peer_inactivity_timeout: 300, peer_replace_grace: 30,\n"
        "  download_limit: 1, upload_limit: 2, alt_download_limit: 3, alt_upload_limit: 4,\n"
        "  alt_enabled: true, alt_schedule: {start: '22:00', end: '07:00'},\n"
        "  min_free_space: 1000, incomplete_dir: /tmp/incomplete,\n"
        "  max_active_downloads: 2, max_active_seeds: 3, max_active_torrents: 4,\n"
        "  stalled_minutes: 5, ratio_limit: 2.0, seeding_time_limit: 60,\n"
        "  idle_seeding_limit: 30, seeding_goal_action: remove, encryption: require}\n"
        "plugins: {a: {}, b: {x: 2}, d: {}}\n"
    )
    live, restart = reload_diff(old, new)
    assert sorted(live) == sorted(LIVE_KEYS)
    assert restart == [
        "daemon.shutdown_timeout",
        "session.listen_port",
        "plugins.b",
        "plugins.c",
        "plugins.d",
    ]
    assert reload_diff(old, with_overrides(old, log_level="error")) == (["daemon.log_level"], [])
    assert reload_diff(old, with_overrides(old, state_dir="/x")) == ([], ["daemon.state_dir"])


# --- the shipped file and the docs -----------------------------------------------------------


def test_shipped_file_parses_to_the_defaults(tmp_path: Path) -> None:
    shipped = REPO / "config" / "btd.yaml"
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/user/7", "STATE_DIRECTORY": "/var/x"}
    config = load_config(shipped, env)
    assert config == default_config(env)
    assert config.source == shipped


def test_shipped_file_spells_out_every_key() -> None:
    root = yaml.compose((REPO / "config" / "btd.yaml").read_text(), Loader=yaml.SafeLoader)
    top = {k.value: v for k, v in root.value}
    assert list(top) == [*SECTIONS, "labels", "plugins"]
    for name, (cls, _) in SECTIONS.items():
        written = [k.value for k, _ in top[name].value]
        assert written == [f.name for f in dataclasses.fields(cls)], name
    assert [k.value for k, _ in top["plugins"].value] == list(DEFAULT_PLUGINS)


def test_docs_name_every_key() -> None:
    doc = (REPO / "docs" / "CONFIG.md").read_text()
    for name, (cls, _) in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"`{name}.{f.name}`" in doc
    for key in LIVE_KEYS:
        assert key in doc
    for name in DEFAULT_PLUGINS:
        assert f"`{name}`" in doc


def test_docs_list_the_default_plugins_in_order() -> None:
    """Every place CONFIG.md lists DEFAULT_PLUGINS names exactly those, in that order."""
    import re

    doc = (REPO / "docs" / "CONFIG.md").read_text()
    paragraphs = [p for p in re.split(r"\n\s*\n|\n- |\n\|", doc) if "DEFAULT_PLUGINS`" in p]
    assert len(paragraphs) >= 2  # the key table and the plugins section
    for text in paragraphs:
        listed = [
            n for n in re.findall(r"`(\w+)`", text) if n not in ("DEFAULT_PLUGINS", "plugins")
        ]
        assert listed == list(DEFAULT_PLUGINS), text
    assert "78" in doc and "SIGHUP" in doc


# -- issue 13 class 8: a configuration file others could write is refused (StrictModes) --------
NOTIFY = "plugins:\n  notify_command:\n    command: ['/bin/true']\n"


def _config_in(tmp_path: Path, mode: int, folder_mode: int = 0o755) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "btd.yaml"
    path.write_text(NOTIFY)
    os.chmod(path, mode)
    os.chmod(folder, folder_mode)
    return path


@pytest.mark.parametrize(
    "mode, folder_mode, why",
    [
        (0o666, 0o755, "writable by everyone (mode 0666)"),
        (0o664, 0o755, "writable by its group (mode 0664)"),
        (0o620, 0o755, "writable by its group"),
        (0o644, 0o777, "its folder is writable by others (mode 0777, not sticky)"),
        (0o644, 0o775, "its folder is writable by others"),
    ],
)
def test_a_config_file_others_can_write_is_refused(
    tmp_path: Path, mode: int, folder_mode: int, why: str
) -> None:
    path = _config_in(tmp_path, mode, folder_mode)
    with pytest.raises(ConfigError) as info:
        load_config(path, {"HOME": str(tmp_path)})
    assert why in str(info.value) and str(path) in str(info.value)
    assert "refusing to use it" in str(info.value)


def test_a_config_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = _config_in(tmp_path, 0o644)
    me = os.geteuid()
    if me == 0:  # root can give it away; the daemon's user is then someone else
        os.chown(path, 4242, -1)
        with pytest.raises(ConfigError, match="belongs to uid 4242"):
            load_config(path, {"HOME": str(tmp_path)})
        os.chown(path, 0, -1)
    # a daemon under another uid trusts the file only if root or that uid owns it
    owner = os.stat(path).st_uid
    if owner != 0:
        with pytest.raises(ConfigError, match=f"belongs to uid {owner}"):
            load_config(path, {"HOME": str(tmp_path)}, our_uid=owner + 1)
    assert load_config(path, {"HOME": str(tmp_path)}, our_uid=owner).source == path


def test_a_root_or_own_file_in_a_sticky_folder_is_used(tmp_path: Path) -> None:
    path = _config_in(tmp_path, 0o600, 0o1777)
    config = load_config(path, {"HOME": str(tmp_path)})
    assert "notify_command" in config.plugins


def test_trust_rules_with_made_up_owners() -> None:
    def st(uid: int, mode: int) -> os.stat_result:
        return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))

    assert check_file_trust(st(0, 0o100644), st(0, 0o40755), 1000) is None
    assert check_file_trust(st(1000, 0o100600), st(1000, 0o40700), 1000) is None
    assert "uid 1001" in str(check_file_trust(st(1001, 0o100644), st(0, 0o40755), 1000))
    assert "belongs to uid 1001" in str(check_file_trust(st(0, 0o100644), st(1001, 0o40755), 1000))
    assert check_file_trust(st(0, 0o100644), st(0, 0o41777), 1000) is None  # sticky /tmp
