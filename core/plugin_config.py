"""Plugin settings: reading a plugin's section, and errors that say FILE:LINE like the core's.

The core validates its own sections while it walks the YAML nodes, so its errors carry the
file and line. Plugin sections reach plugins as plain mappings; the lines are kept aside
(``Config.plugin_lines``, a ``SettingLines``) and ``with_location`` adds them to a plugin's
ConfigError by its key path (``plugins.watch_dir.folders[0].path``). The plugin host does
that for every error ``btd_configure`` raises, so a plugin only names the key. Pure: no YAML.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from btd.core.errors import ConfigError

_LAST_PART = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")


@dataclass(frozen=True)
class SettingLines:
    """Where each plugin setting was written: the file, and the line of every key path.

    ``lines`` maps ``plugins.<name>``, ``plugins.<name>.<key>``, ``...<key>[<i>]`` and so
    on down to the leaves to the line the key (or list item) is written on.
    """

    filename: str
    lines: Mapping[str, int]

    def line(self, key: str) -> int | None:
        """The line of ``key``, else of the nearest enclosing key that was written."""
        while key:
            if key in self.lines:
                return self.lines[key]
            parent = _LAST_PART.sub("", key)
            if parent == key:
                return None
            key = parent
        return None


def plugin_settings(config: Any, name: str) -> Mapping[str, Any]:
    """The plugin's own mapping from ``plugins:`` (empty when it is absent or null)."""
    raw = (getattr(config, "plugins", None) or {}).get(name)
    return {} if raw is None else raw


def unknown_key(name: str, known: Iterable[str]) -> str:
    """``unknown key (did you mean X? known: ...)``, worded as the core's config errors."""
    known = tuple(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown key ({hint}known: {', '.join(known)})"


def check_keys(raw: Mapping[Any, Any], known: Iterable[str], key: str) -> None:
    """Refuse a setting the plugin does not know: a typo must not silently disable something.

    ``key`` is the mapping's own path (``plugins.<name>`` or deeper); the error names
    ``<key>.<unknown>`` and suggests the closest known name.
    """
    known = tuple(known)
    for name in raw:
        if name not in known:
            raise ConfigError(unknown_key(str(name), known), key=f"{key}.{name}")


def with_location(error: ConfigError, config: Any) -> ConfigError:
    """``error`` with the file and line of its key, when the config file says where.

    Returned unchanged if it already names a file or the key was not written in a file.
    """
    where: SettingLines | None = getattr(config, "plugin_lines", None)
    if error.filename is not None or where is None:
        return error
    line = where.line(error.key)
    if line is None:
        return error
    return ConfigError(error.reason, error.key, where.filename, line)
