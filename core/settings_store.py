"""Settings changed at run time (``session.set``): which keys, their checks, and the file
that keeps them, ``<state_dir>/settings.yaml``.

The user's YAML is never rewritten (it has their comments and layout). ``session.set`` writes
the keys it changed to this file instead (a temporary file, fsync, rename; mode 0600), in the
same shape as btd.yaml (``session: {download_limit: ...}``); at start and on every SIGHUP it
is read OVER the user's file, and command-line flags go over both. The settable keys are the
live keys of the schema (``config_schema.SECTIONS``): those of ``session:`` by their bare
name (``download_limit``), others dotted (``daemon.log_level``); ``control.*`` (who may use
the socket) is left to the file the administrator owns. Blocking: the daemon reads it before
the reactor runs and writes it on the thread pool.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from btd.core.config_render import key_value
from btd.core.config_schema import SECTIONS, Config, Invalid, Key, describe
from btd.core.durable import fsync_dir

FILE_NAME = "settings.yaml"
MAX_FILE = 1 << 20  # bytes read of it: it holds a few dozen keys
NOT_SETTABLE = frozenset({"control.allowed_group"})  # access control stays in the admin's file


def _settable() -> dict[str, tuple[str, Key]]:
    names: dict[str, tuple[str, Key]] = {}
    for section, (_, keys) in SECTIONS.items():
        for key in keys:
            dotted = f"{section}.{key.name}"
            if key.live and dotted not in NOT_SETTABLE:
                names[key.name if section == "session" else dotted] = (section, key)
    return names


SETTABLE: dict[str, tuple[str, Key]] = _settable()  # public name -> (section, key)


class SettingsError(ValueError):
    """A refused ``session.set`` value; ``name`` is the key to blame."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def public_name(section: str, key: str) -> str:
    return key if section == "session" else f"{section}.{key}"


def _restart_only(name: str) -> bool:
    section, _, key = name.rpartition(".")
    section = section or "session"
    keys = SECTIONS.get(section, (None, ()))[1]
    return any(k.name == key for k in keys)


def check_setting(name: str, value: Any, env: Mapping[str, str] = os.environ) -> Any:
    """One key's value, typed by the schema's own check (as if read from btd.yaml)."""
    if name not in SETTABLE:
        if _restart_only(name):
            why = "needs a restart (or is not changed at run time): set it in the YAML file"
        else:
            why = "unknown setting"
        raise SettingsError(name, f"{why}; settable: {', '.join(sorted(SETTABLE))}")
    _, key = SETTABLE[name]
    given = str(value) if key.octal and type(value) is int else value  # 22 is 0o22, as in YAML
    try:
        return key.check(given, env)
    except Invalid as exc:
        got = f", got {describe(value)}" if exc.show_value else ""
        raise SettingsError(name, exc.message + got) from None


def check_settings(raw: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Every key checked (SettingsError names the first bad one)."""
    return {name: check_setting(name, value, env) for name, value in raw.items()}


def with_settings(config: Config, typed: Mapping[str, Any]) -> Config:
    """``config`` with the checked settings in place; SettingsError if the result breaks a
    rule between keys (as the YAML reader's)."""
    changes: dict[str, dict[str, Any]] = {}
    for name, value in typed.items():
        section, key = SETTABLE[name]
        changes.setdefault(section, {})[key.name] = value
    sections = {
        name: dataclasses.replace(getattr(config, name), **values)
        for name, values in changes.items()
    }
    new = dataclasses.replace(config, **sections)
    session = new.session
    if session.max_connections_per_torrent > session.max_connections:
        blame = "max_connections_per_torrent" if "max_connections_per_torrent" in typed else None
        name = blame or "max_connections"
        raise SettingsError(
            name,
            f"max_connections_per_torrent ({session.max_connections_per_torrent}) must not "
            f"exceed max_connections ({session.max_connections})",
        )
    return new


def current(config: Config) -> dict[str, Any]:
    """Every settable key's value in ``config``, as JSON (``session.get``)."""
    return {
        name: key_value(getattr(getattr(config, section), key.name), key, False)
        for name, (section, key) in SETTABLE.items()
    }


def as_json(typed: Mapping[str, Any]) -> dict[str, Any]:
    return {name: key_value(value, SETTABLE[name][1], False) for name, value in typed.items()}


# -- the file ---------------------------------------------------------------------------------
def settings_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / FILE_NAME


@dataclass
class Saved:
    """What the file holds: the checked values to apply, and why any entry was skipped."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _read_raw(path: Path) -> dict[str, Any]:
    """The file's mapping ({} if there is none); ValueError if it is not one we wrote."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return {}
    if len(data) > MAX_FILE:
        raise ValueError(f"larger than {MAX_FILE} bytes")
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"not readable YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError("not a mapping of sections (section: {key: value})")
    return raw


def load_saved(state_dir: Path | str, env: Mapping[str, str] = os.environ) -> Saved:
    """Read the file; an entry that no longer checks (or a damaged file) is skipped with a
    problem to report, never a reason not to start."""
    path = settings_path(state_dir)
    saved = Saved()
    try:
        raw = _read_raw(path)
    except (OSError, ValueError) as exc:
        saved.problems.append(f"{path}: ignored: {exc}")
        return saved
    for section, keys in raw.items():
        for key, value in keys.items():
            name = public_name(str(section), str(key))
            try:
                saved.values[name] = check_setting(name, value, env)
            except SettingsError as exc:
                saved.problems.append(f"{path}: {section}.{key} ignored: {exc.message}")
    return saved


def apply_saved(config: Config, saved: Saved) -> tuple[Config, list[str]]:
    """``config`` with the saved settings over it (and problems, if the mix breaks a rule)."""
    try:
        return with_settings(config, saved.values), saved.problems
    except SettingsError as exc:
        return config, [*saved.problems, f"saved settings ignored: {exc}"]


def _write(path: Path, raw: Mapping[str, Any]) -> None:
    text = (
        "# Written by btd (session.set): these settings override btd.yaml.\n"
        "# Remove a key here (or `btctl settings --reset KEY`) to go back to btd.yaml.\n"
        + yaml.safe_dump(dict(raw), sort_keys=True, default_flow_style=False, allow_unicode=True)
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _update(state_dir: Path | str, set_: Mapping[str, Any], drop: tuple[str, ...]) -> Path:
    path = settings_path(state_dir)
    try:
        raw = _read_raw(path)
    except ValueError:  # damaged: kept aside, not lost, and a fresh file written
        os.replace(path, path.with_name(f"{FILE_NAME}.damaged-{int(time.time())}"))
        raw = {}
    for name in drop:
        section, key = SETTABLE[name]
        raw.get(section, {}).pop(key.name, None)
    for name, value in set_.items():
        section, key = SETTABLE[name]
        raw.setdefault(section, {})[key.name] = key_value(value, key, True)
    _write(path, {section: keys for section, keys in raw.items() if keys})
    return path


def save_settings(state_dir: Path | str, typed: Mapping[str, Any]) -> Path:
    """Merge checked settings into the file, atomically (blocking); returns its path."""
    return _update(state_dir, typed, ())


def forget_settings(state_dir: Path | str, names: tuple[str, ...]) -> Path:
    """Remove keys from the file (``session.reset``), atomically (blocking)."""
    return _update(state_dir, {}, names)
