"""The configuration written out: YAML (``btd --check-config``), JSON (``session.config``)
and the keys a reload changes.

Apart from config.py, which reads: this side only writes, and nothing on the read path needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from btd.core.config_schema import LIVE_KEYS, SECTIONS, Config, Key, format_octal

_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any, for_yaml: bool) -> Any:
    if isinstance(value, Mapping):
        return {(k if for_yaml else str(k)): _plain(v, for_yaml) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, for_yaml) for v in value]
    if for_yaml or isinstance(value, _JSON_SCALARS):
        return value
    return str(value)  # a YAML date or binary in plugin settings


def key_value(value: Any, key: Key, for_yaml: bool) -> Any:
    if key.octal and value is not None:
        return format_octal(value)
    if hasattr(value, "plain"):  # a structured value (session.alt_schedule)
        return value.plain()
    if isinstance(value, Path):
        # For YAML, '$' is doubled so that reading the file back does not expand anything.
        return str(value).replace("$", "$$") if for_yaml else str(value)
    return value


def plain_config(config: Config, *, for_yaml: bool = False) -> dict[str, Any]:
    """The configuration as plain data, one mapping per section, then ``labels`` and
    ``plugins``.

    Paths are strings and octal keys octal text (``"0022"``); by default every value is a
    JSON type (what ``session.config`` answers). ``for_yaml`` is what ``to_yaml`` writes.
    """
    data: dict[str, Any] = {
        name: {
            key.name: key_value(getattr(getattr(config, name), key.name), key, for_yaml)
            for key in keys
        }
        for name, (_, keys) in SECTIONS.items()
    }
    data["labels"] = {label: _plain(d, for_yaml) for label, d in config.labels.items()}
    data["plugins"] = {
        name: _plain(settings, for_yaml) for name, settings in config.plugins.items()
    }
    return data


class _Dumper(yaml.SafeDumper):
    """SafeDumper, but strings with Unicode line breaks are double-quoted (escaped): PyYAML
    folds a NEL (U+0085) in a single-quoted scalar into a space, breaking the round trip."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(config: Config) -> str:
    """The effective configuration as YAML that parse_config reads back to an equal Config."""
    data = plain_config(config, for_yaml=True)
    origin = str(config.source).replace("\n", " ") if config.source else "built-in defaults"
    header = f"# effective btd configuration (from {origin})\n"
    body = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return header + body


def reload_diff(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """(keys that differ and SIGHUP applies live, keys that differ and need a restart)."""
    live: list[str] = []
    restart: list[str] = []
    for name, (_, keys) in SECTIONS.items():
        for key in keys:
            if getattr(getattr(old, name), key.name) != getattr(getattr(new, name), key.name):
                dotted = f"{name}.{key.name}"
                (live if dotted in LIVE_KEYS else restart).append(dotted)
    if old.labels != new.labels:
        live.append("labels")  # read at each add
    for plugin in sorted(set(old.plugins) | set(new.plugins)):
        if old.plugins.get(plugin) != new.plugins.get(plugin):
            restart.append(f"plugins.{plugin}")
    return live, restart
