"""YAML -> frozen, typed Config. Errors name the key path, the file and the line.

The YAML is composed into nodes (``yaml.SafeLoader``) rather than loaded into dicts, so every
value keeps the line it was written on and duplicate keys can be refused. The file is only
ever read. The shape and the per-key checks live in ``btd.core.config_schema``.

Size: about 480 lines: the node reader that keeps a line for every error, the file's trust
checks (owner and mode, refused like sshd's StrictModes) and the search for the file; the
schema and its checkers are in config_schema.py.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from btd.core import paths
from btd.core.config_schema import (
    DEFAULT_PLUGINS,
    LIVE_KEYS,
    SECTIONS,
    TOP_LEVEL,
    Config,
    ControlConfig,
    DaemonConfig,
    Invalid,
    Key,
    SessionConfig,
    check_flag_path,
    check_flag_port,
    check_flag_socket,
    check_log_level,
    describe,
)
from btd.core.errors import ConfigError
from btd.core.labels import check_label
from btd.core.plugin_config import SettingLines, unknown_key
from btd.core.torrent_settings import LABEL_DEFAULT_KEYS, SettingError, check_label_defaults

__all__ = [
    "DEFAULT_PLUGINS",
    "LIVE_KEYS",
    "Config",
    "ConfigError",
    "ControlConfig",
    "DaemonConfig",
    "SessionConfig",
    "default_config",
    "find_config_file",
    "load_config",
    "parse_config",
    "with_overrides",
]

_NULL = "tag:yaml.org,2002:null"
_QUOTED = ("'", '"')
_MERGE = "tag:yaml.org,2002:merge"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Walks the composed node tree; knows the file name for the errors it raises."""

    def __init__(self, loader: yaml.SafeLoader, filename: str, env: Mapping[str, str]) -> None:
        self.loader = loader
        self.filename = filename
        self.env = env
        self.plugin_lines: dict[str, int] = {}  # "plugins.<name>.<key>..." -> line

    def error(self, message: str, key: str, node: yaml.Node | None) -> ConfigError:
        line = _line(node) if node is not None else None
        return ConfigError(message, key=key, filename=self.filename, line=line)

    def construct(self, node: yaml.Node, key: str) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.error(_yaml_problem(exc), key, node) from None
        except (TypeError, ValueError) as exc:  # e.g. an unhashable key inside a mapping
            raise self.error(f"cannot read value: {exc}", key, node) from None

    def got(self, node: yaml.Node, value: Any) -> str:
        raw = node.value if isinstance(node, yaml.ScalarNode) else None
        return describe(value, raw, node.tag)

    def got_bad(self, node: yaml.Node, value: Any, spec: Key) -> str:
        """``got`` for a refused value; a number in quotes is called a string, with the fix."""
        shown = self.got(node, value)
        if not isinstance(value, str) or node.style not in _QUOTED or spec.octal:
            return shown
        try:
            number = yaml.safe_load(value)  # what the text would be without its quotes
        except yaml.YAMLError:
            return shown
        if not isinstance(number, int | float) or isinstance(number, bool):
            return shown
        try:
            spec.check(number, self.env)
        except Invalid:
            return f"the string {shown}"
        return f"the string {shown} (remove the quotes)"

    def items(self, node: yaml.MappingNode, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The mapping's keys (strings, no duplicates; ``<<`` merges applied), in order."""
        self.check_duplicates(node, path)
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            raise self.error(_yaml_problem(exc), path, node) from None
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.construct(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                shown = self.got(key_node, key) if key is not None else "a " + key_node.id
                raise self.error(f"keys must be strings, got {shown}", path, key_node)
            result[key] = (key_node, value_node)
        return result

    def check_duplicates(self, node: yaml.MappingNode, path: str) -> None:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            key = self.construct(key_node, path)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue
            if first is not key_node:
                dotted = f"{path}.{key}" if path else str(key)
                message = f"duplicate key (first given on line {_line(first)})"
                raise self.error(message, dotted, key_node)

    def check_duplicates_deep(self, root: yaml.Node, path: str) -> None:
        """Duplicates anywhere below ``root`` (plugin settings), and no recursive aliases
        (they would make comparing configs recurse forever). Shared nodes are walked once."""
        done: set[int] = set()

        def walk(node: yaml.Node, where: str, ancestors: frozenset[int]) -> None:
            if id(node) in ancestors:
                raise self.error("a recursive alias is not allowed here", where, node)
            if id(node) in done:
                return
            inner = ancestors | {id(node)}
            if isinstance(node, yaml.MappingNode):
                self.check_duplicates(node, where)
                for key_node, value_node in node.value:
                    name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                    walk(value_node, f"{where}.{name}", inner)
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    walk(item, f"{where}[{i}]", inner)
            done.add(id(node))

        walk(root, path, frozenset())

    def section(self, name: str, node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if node.tag == _NULL:
            return {}
        if not isinstance(node, yaml.MappingNode):
            got = self.got(node, self.construct(node, name))
            raise self.error(f"must be a mapping, got {got}", name, node)
        return self.items(node, name)

    def typed_section(self, name: str, node: yaml.Node | None) -> Any:
        cls, keys = SECTIONS[name]
        given = self.section(name, node) if node is not None else {}
        known = tuple(k.name for k in keys)
        for key, (key_node, _) in given.items():
            if key not in known:
                raise self.error(unknown_key(key, known), f"{name}.{key}", key_node)
        values: dict[str, Any] = {}
        for spec in keys:
            if spec.name not in given:
                values[spec.name] = spec.default(self.env)
                continue
            value_node = given[spec.name][1]
            value = self.construct(value_node, f"{name}.{spec.name}")
            given_value = value
            if spec.octal and type(value) is int and value_node.style is None:
                given_value = value_node.value  # the digits as written: 0022, 22, 2 are octal
            try:
                values[spec.name] = spec.check(given_value, self.env)
            except Invalid as exc:
                message = exc.message
                if exc.show_value:
                    message += f", got {self.got_bad(value_node, value, spec)}"
                raise self.error(message, f"{name}.{spec.name}", value_node) from None
        if name == "session":
            self.check_per_torrent(values, given)
        return cls(**values)

    def check_per_torrent(self, values: dict[str, Any], given: Mapping[str, Any]) -> None:
        total = values["max_connections"]
        if "max_connections_per_torrent" not in given:
            default = values["max_connections_per_torrent"]
            values["max_connections_per_torrent"] = min(default, total)
        elif values["max_connections_per_torrent"] > total:
            node = given["max_connections_per_torrent"][1]
            raise self.error(
                f"must not exceed session.max_connections ({total}), "
                f"got {values['max_connections_per_torrent']}",
                "session.max_connections_per_torrent",
                node,
            )

    def labels(self, node: yaml.Node) -> Mapping[str, Mapping[str, Any]]:
        """``labels:``: label -> its add-time defaults, checked as ``torrent.add`` checks them."""
        result: dict[str, Mapping[str, Any]] = {}
        for name, (key_node, value_node) in self.section("labels", node).items():
            key = f"labels.{name}"
            try:
                if check_label(name) != name:
                    raise ValueError("a label must not start or end with spaces")
            except ValueError as exc:
                raise self.error(str(exc), key, key_node) from None
            values: dict[str, Any] = {}
            for setting, (setting_node, item_node) in self.section(key, value_node).items():
                where = f"{key}.{setting}"
                if setting not in LABEL_DEFAULT_KEYS:
                    raise self.error(unknown_key(setting, LABEL_DEFAULT_KEYS), where, setting_node)
                value = self.construct(item_node, where)
                try:
                    values.update(check_label_defaults({setting: value}))
                except SettingError as exc:
                    message = f"{exc}, got {self.got(item_node, value)}"
                    raise self.error(message, where, item_node) from None
            result[name] = MappingProxyType(values)
        return MappingProxyType(result)

    def plugins(self, node: yaml.Node) -> Mapping[str, Mapping[str, Any]]:
        result: dict[str, Mapping[str, Any]] = {}
        if node.tag != _NULL and not isinstance(node, yaml.MappingNode):
            got = self.got(node, self.construct(node, "plugins"))
            message = f"must be a mapping of plugin name -> settings, got {got}"
            raise self.error(message, "plugins", node)
        for name, (key_node, value_node) in self.section("plugins", node).items():
            key = f"plugins.{name}"
            self.plugin_lines[key] = _line(key_node)
            if not name.strip():
                raise self.error("plugin names must be non-empty", "plugins", key_node)
            if value_node.tag == _NULL:
                result[name] = MappingProxyType({})
                continue
            if not isinstance(value_node, yaml.MappingNode):
                got = self.got(value_node, self.construct(value_node, key))
                raise self.error(
                    f"plugin settings must be a mapping or null, got {got}", key, value_node
                )
            self.check_duplicates_deep(value_node, key)
            _setting_lines(value_node, key, self.plugin_lines)
            result[name] = MappingProxyType(dict(self.construct(value_node, key)))
        return MappingProxyType(result)


def _setting_lines(root: yaml.Node, path: str, out: dict[str, int]) -> None:
    """The line of every key path below ``root`` (``a.b``, ``a[0]``), for plugins' errors.
    Shared (aliased) nodes are walked once, so an alias bomb costs nothing."""
    done: set[int] = set()
    todo = [(root, path)]
    while todo:
        node, where = todo.pop()
        if id(node) in done:
            continue
        done.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                out.setdefault(f"{where}.{name}", _line(key_node))
                todo.append((value_node, f"{where}.{name}"))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out.setdefault(f"{where}[{i}]", _line(item))
                todo.append((item, f"{where}[{i}]"))


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "; ".join(parts) or "invalid YAML"


def _compose(text: str, filename: str) -> tuple[yaml.SafeLoader, yaml.Node | None]:
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        return loader, loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"YAML syntax error: {_yaml_problem(exc)}", "", filename, line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"not valid YAML text: {exc.reason}", "", filename, line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", "", filename) from None
    except RecursionError:
        raise ConfigError("YAML nested too deeply", "", filename) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_config(
    text: str, filename: str = "<string>", env: Mapping[str, str] = os.environ
) -> Config:
    """Parse YAML text; an empty document (or one that is only null) means the defaults."""
    loader, root = _compose(text, filename)
    if root is None or root.tag == _NULL:
        return default_config(env)
    reader = _Reader(loader, filename, env)
    if not isinstance(root, yaml.MappingNode):
        got = reader.got(root, reader.construct(root, ""))
        raise reader.error(f"the top level must be a mapping of sections, got {got}", "", root)
    given = reader.items(root, "")
    for name, (key_node, _) in given.items():
        if name not in TOP_LEVEL:
            raise reader.error(
                unknown_key(name, TOP_LEVEL).replace("key", "section", 1), name, key_node
            )

    def node(name: str) -> yaml.Node | None:
        return given[name][1] if name in given else None

    sections: dict[str, Any] = {name: reader.typed_section(name, node(name)) for name in SECTIONS}
    labels_node = node("labels")
    if labels_node is not None:
        sections["labels"] = reader.labels(labels_node)
    plugins_node = node("plugins")
    plugins = reader.plugins(plugins_node) if plugins_node is not None else None
    if plugins is None:
        return Config(**sections)
    lines = SettingLines(filename, MappingProxyType(reader.plugin_lines))
    return Config(**sections, plugins=plugins, plugin_lines=lines)


def default_config(env: Mapping[str, str] = os.environ) -> Config:
    """The configuration used when no file is found."""
    built = {
        name: cls(**{key.name: key.default(env) for key in keys})
        for name, (cls, keys) in SECTIONS.items()
    }
    return Config(**built)


def _exists(path: Path, key: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ConfigError(f"cannot look at the file: {exc.strerror}", key, str(path)) from None
    return True


def find_config_file(explicit: Path | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """--config (must exist), else $BTD_CONFIG (must exist), else the first default candidate."""
    if explicit is not None:
        path = Path(explicit)
        if not _exists(path, "--config"):
            raise ConfigError("no such configuration file", "--config", str(path))
        return path
    from_env = env.get("BTD_CONFIG")
    if from_env:
        path = Path(from_env)
        if not _exists(path, "$BTD_CONFIG"):
            raise ConfigError("no such configuration file", "$BTD_CONFIG", str(path))
        return path
    for candidate in paths.default_config_candidates(env):
        if _exists(candidate, ""):
            return candidate
    return None


def check_file_trust(st: os.stat_result, folder: os.stat_result, our_uid: int) -> str | None:
    """Why a configuration file may not be trusted (sshd's StrictModes), or None: it can set
    ``notify_command``, so only root or the daemon's user may own or write it, or its folder
    (unless sticky). Pure: the tests give made-up owners."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (0, our_uid):
        return (
            f"the file belongs to uid {st.st_uid}, not to root or to the daemon's user "
            f"(uid {our_uid}): its owner could make btd run commands; chown it"
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "everyone" if mode & stat.S_IWOTH else "its group"
        return (
            f"the file is writable by {who} (mode {mode:04o}): they could set notify_command "
            "and run commands as the daemon's user; chmod go-w it"
        )
    folder_mode = stat.S_IMODE(folder.st_mode)
    if folder_mode & (stat.S_IWGRP | stat.S_IWOTH) and not folder_mode & stat.S_ISVTX:
        return (
            f"its folder is writable by others (mode {folder_mode:04o}, not sticky): they "
            "could put another file in its place; move it or chmod go-w the folder"
        )
    if folder.st_uid not in (0, our_uid):
        return f"its folder belongs to uid {folder.st_uid}, not to root or the daemon's user"
    return None


def read_trusted(path: Path, our_uid: int | None = None) -> bytes:
    """The bytes of the configuration file, if ``check_file_trust`` passes (checked on the
    opened file, so it cannot be swapped between the check and the read)."""
    name, uid = str(path), os.geteuid() if our_uid is None else our_uid
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            folder = os.stat(os.path.dirname(os.path.realpath(path)))
            problem = check_file_trust(st, folder, uid)
            if problem is not None:
                raise ConfigError(f"refusing to use it: {problem}", "", name)
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", "", name) from None


def load_config(
    explicit: Path | None = None, env: Mapping[str, str] = os.environ, *, our_uid: int | None = None
) -> Config:
    """Find, read and parse the configuration (no file: the defaults); a file others could
    have written is refused (``check_file_trust``)."""
    path = find_config_file(explicit, env)
    if path is None:
        return default_config(env)
    name = str(path)
    data = read_trusted(path, our_uid)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", "", name, line) from None
    config = parse_config(text, name, env)
    return dataclasses.replace(config, source=Path(os.path.abspath(path)))


def _flag(flag: str, check: Any, value: Any, env: Mapping[str, str]) -> Any:
    try:
        return check(value, env)
    except Invalid as exc:
        got = f", got {describe(value)}" if exc.show_value else ""
        raise ConfigError(exc.message + got, flag) from None


def with_overrides(
    config: Config,
    *,
    state_dir: Path | str | None = None,
    socket: Path | str | None = None,
    download_dir: Path | str | None = None,
    listen_port: int | str | None = None,
    log_level: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Config:
    """The config with the ``btd`` flags applied; a bad flag raises ConfigError(key="--flag")."""
    daemon, control, session = config.daemon, config.control, config.session
    if state_dir is not None:
        path = _flag("--state-dir", check_flag_path, state_dir, env)
        daemon = dataclasses.replace(daemon, state_dir=path)
    if log_level is not None:
        level = _flag("--log-level", check_log_level, log_level, env)
        daemon = dataclasses.replace(daemon, log_level=level)
    if socket is not None:
        path = _flag("--socket", check_flag_socket, socket, env)
        control = dataclasses.replace(control, socket=path)
    if download_dir is not None:
        path = _flag("--download-dir", check_flag_path, download_dir, env)
        session = dataclasses.replace(session, download_dir=path)
    if listen_port is not None:
        port = _flag("--listen-port", check_flag_port, listen_port, env)
        session = dataclasses.replace(session, listen_port=port)
    return dataclasses.replace(config, daemon=daemon, control=control, session=session)
