"""The configuration's shape: frozen dataclasses, the key table and one check per key.

Kept apart from the YAML reading (``btd.core.config``) so the checks can be reused for the
command-line overrides, and so the schema reads as one table. Every check takes the value as
YAML (or the command line) gave it and returns the typed value, or raises ``Invalid``.

Size: about 470 lines: one dataclass per section and one key table, which every setting of
the day-one controls (limits, queue, goals, disk guard) lengthens by a line or two; the
checkers are short functions that read best next to the table that names them.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from btd.core import paths
from btd.core.alt_speed import AltSchedule
from btd.core.bandwidth import MAX_RATE
from btd.core.limits import PEER_INACTIVITY_TIMEOUT, PEER_REPLACE_GRACE
from btd.core.types import ENCRYPTION_POLICIES

if TYPE_CHECKING:
    from btd.core.plugin_config import SettingLines

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
DEFAULT_PLUGINS: tuple[str, ...] = (
    "rarest_first",
    "sequential",
    "udp_tracker",
    "resume_sqlite",
    "web_seed",
    "utp",
)
GOAL_ACTIONS: tuple[str, ...] = ("pause", "remove", "remove_data")  # seeding_goal_action
DEFAULT_UMASK = 0o022  # Transmission's default too: files 0644, folders 0755
# sun_path is 108 bytes on Linux, one of them for the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


def _default_plugins() -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: MappingProxyType({}) for name in DEFAULT_PLUGINS})


def _no_labels() -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class DaemonConfig:
    """The ``daemon:`` section."""

    state_dir: Path
    log_level: str = "info"
    shutdown_timeout: float = 10.0


@dataclass(frozen=True)
class ControlConfig:
    """The ``control:`` section; ``socket`` is always resolved (null in YAML = the default)."""

    socket: Path
    allowed_group: str | int | None = None


@dataclass(frozen=True)
class SessionConfig:
    """The ``session:`` section."""

    download_dir: Path
    listen_host: str = "0.0.0.0"
    listen_port: int = 6881
    max_connections: int = 200
    max_connections_per_torrent: int = 50
    upload_slots: int = 4
    peer_inactivity_timeout: int = int(PEER_INACTIVITY_TIMEOUT)
    peer_replace_grace: int = int(PEER_REPLACE_GRACE)
    piece_strategy: str = "rarest-first"
    encryption: str = "prefer"  # core/types.py ENCRYPTION_POLICIES
    peer_id_prefix: str = "-BT0100-"
    umask: int | None = DEFAULT_UMASK  # None: keep the umask btd was started with
    download_limit: int = 0  # bytes/s, 0 = unlimited (core/bandwidth.py)
    upload_limit: int = 0
    alt_download_limit: int = 0  # the alternative ("turtle") pair (core/alt_speed.py)
    alt_upload_limit: int = 0
    alt_enabled: bool = False
    alt_schedule: AltSchedule | None = None
    min_free_space: int = 0  # bytes; downloads pause below it (0: off)
    incomplete_dir: Path | None = None  # downloads live here until complete (None: off)
    # the queue (core/queue.py): -1 = unlimited, 0 = none run
    max_active_downloads: int = -1
    max_active_seeds: int = -1
    max_active_torrents: int = -1
    stalled_minutes: int = 0  # 0: a stalled torrent still counts
    # seeding goals (core/seeding_goals.py): -1 = unlimited
    ratio_limit: float = -1.0
    seeding_time_limit: float = -1  # minutes
    idle_seeding_limit: float = -1  # minutes
    seeding_goal_action: str = "pause"


@dataclass(frozen=True)
class Config:
    """The whole configuration.

    ``plugins`` is a read-only ``MappingProxyType`` of plugin name -> read-only
    ``MappingProxyType`` of that plugin's settings (values inside are what YAML produced: plain
    lists, dicts, str, int, ...; plugins must not mutate them). ``source`` is the file read
    (absolute), None for built-in defaults; it takes no part in equality or hashing, so a
    file equal to the defaults compares equal to ``default_config()``.
    """

    daemon: DaemonConfig
    control: ControlConfig
    session: SessionConfig
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=_default_plugins, hash=False)
    # ``labels:``: label -> that label's add-time defaults, checked (core/labels.py)
    labels: Mapping[str, Mapping[str, Any]] = field(default_factory=_no_labels, hash=False)
    source: Path | None = field(default=None, compare=False)
    # Where each plugin setting was written (plugins' ConfigErrors get FILE:LINE from it).
    plugin_lines: SettingLines | None = field(default=None, compare=False, repr=False)


class Invalid(Exception):
    """A value failed its check; the caller adds the key, the file, the line and ``got ...``."""

    def __init__(self, message: str, show_value: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.show_value = show_value


def describe(value: Any, raw: str | None = None, tag: str | None = None) -> str:
    """How a bad value is shown after ``got``: strings quoted, YAML scalars as written."""
    if isinstance(value, bool):
        return f"{raw if raw is not None else str(value).lower()} (a boolean)"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if raw is not None and tag is not None and tag.startswith("tag:yaml.org,2002:"):
        return raw
    return repr(value)


# --- scalar checks ---------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(value: Any, env: Mapping[str, str]) -> int:
    if not _is_int(value) or value <= 0:
        raise Invalid("must be a positive integer")
    return int(value)


def check_port(value: Any, env: Mapping[str, str]) -> int:
    if not _is_int(value) or not 0 <= value <= 65535:
        raise Invalid("must be an integer 0..65535 (0 = pick a free port)")
    return int(value)


def check_rate(value: Any, env: Mapping[str, str]) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_RATE:
        raise Invalid("must be a rate in bytes per second, 0 (unlimited) or more")
    return int(value)


def check_bool(value: Any, env: Mapping[str, str]) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def check_alt_schedule(value: Any, env: Mapping[str, str]) -> AltSchedule | None:
    try:
        return AltSchedule.parse(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def check_log_level(value: Any, env: Mapping[str, str]) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise Invalid(f"must be one of {', '.join(LOG_LEVELS)}")
    return value.lower()


def check_timeout(value: Any, env: Mapping[str, str]) -> float:
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and value > 0
    if not ok:
        raise Invalid("must be a number of seconds greater than 0")
    return float(value)


def check_group(value: Any, env: Mapping[str, str]) -> str | int | None:
    if value is None:
        return None
    if _is_int(value):
        if value < 0:
            raise Invalid("must be a group name, a gid >= 0, or null")
        return int(value)
    if isinstance(value, str) and value.strip():
        return value
    raise Invalid("must be a group name, a gid >= 0, or null")


def check_host(value: Any, env: Mapping[str, str]) -> str:
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise Invalid("must be an IP address to listen on, such as 0.0.0.0 or ::")


def check_name(value: Any, env: Mapping[str, str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a non-empty string")
    return value


def check_peer_id_prefix(value: Any, env: Mapping[str, str]) -> str:
    ok = isinstance(value, str) and len(value) == 8
    if not ok or not all(" " <= ch <= "~" for ch in value):
        raise Invalid("must be exactly 8 printable ASCII characters")
    return value


def check_bytes(value: Any, env: Mapping[str, str]) -> int:
    if not _is_int(value) or value < 0:
        raise Invalid("must be a number of bytes, an integer >= 0 (0 = off)")
    return int(value)


def check_umask(value: Any, env: Mapping[str, str]) -> int | None:
    """Octal digits, as umask(1) reads them: 0022, "0002", 2, 0o027; null = inherited."""
    if value is None:
        return None
    if _is_int(value) and 0 <= value <= 0o777:
        return int(value)  # already a number (the defaults, a program)
    if isinstance(value, str):
        digits = value.strip().lower().removeprefix("0o")
        if digits and all(ch in "01234567" for ch in digits) and int(digits, 8) <= 0o777:
            return int(digits, 8)
    raise Invalid("must be an octal umask such as 0022 or 0002, or null for the inherited one")


def check_active_limit(value: Any, env: Mapping[str, str]) -> int:
    if not _is_int(value) or value < -1:
        raise Invalid("must be an integer >= 0, or -1 for unlimited")
    return int(value)


def check_minutes(value: Any, env: Mapping[str, str]) -> int:
    if not _is_int(value) or value < 0:
        raise Invalid("must be a whole number of minutes >= 0 (0 = off)")
    return int(value)


def check_goal(value: Any, env: Mapping[str, str]) -> float:
    """A seeding goal: a ratio or minutes >= 0, or -1 for unlimited."""
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    if not ok or not (value == -1 or 0 <= value < 1e12):
        raise Invalid("must be a number >= 0, or -1 for unlimited")
    return value


def check_encryption(value: Any, env: Mapping[str, str]) -> str:
    if value not in ENCRYPTION_POLICIES:
        raise Invalid(f"must be one of {', '.join(ENCRYPTION_POLICIES)}")
    return str(value)


def check_goal_action(value: Any, env: Mapping[str, str]) -> str:
    if value not in GOAL_ACTIONS:
        raise Invalid(f"must be one of {', '.join(GOAL_ACTIONS)}")
    return str(value)


def format_octal(value: int) -> str:
    """How an octal key is written back: ``0o22`` -> ``"0022"``."""
    return f"{value:04o}"


# --- paths -----------------------------------------------------------------------------------

_VAR = re.compile(r"\$(\$|\w+|\{\w+\})")


def _expand_vars(text: str, env: Mapping[str, str]) -> str:
    """os.path.expandvars against ``env``, but an undefined variable is an error; ``$$`` = ``$``."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "$":
            return "$"
        name = name.strip("{}")
        if name not in env:
            raise Invalid(f"undefined environment variable ${name} in {describe(text)}", False)
        return env[name]

    return _VAR.sub(sub, text)


def _expand_user(text: str, env: Mapping[str, str]) -> tuple[str, str]:
    """Split a leading ``~`` or ``~user`` off and expand it (HOME from ``env``)."""
    if not text.startswith("~"):
        return "", text
    head, sep, rest = text.partition("/")
    if head == "~":
        home = env.get("HOME") or os.path.expanduser("~")
    else:
        home = os.path.expanduser(head)
        if home == head:
            raise Invalid(f"unknown user in {head}", False)
    return home + sep, rest


def expand_path(value: Any, env: Mapping[str, str], expand_vars: bool = True) -> Path:
    """``~`` and ``$VARS`` expanded (the expanded home is not re-expanded); must be absolute."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise Invalid("must be a non-empty path")
    if "\0" in value:
        raise Invalid("must not contain a NUL character", False)
    home, rest = _expand_user(value, env)
    text = home + (_expand_vars(rest, env) if expand_vars else rest)
    if not os.path.isabs(text):
        raise Invalid("must be an absolute path (after ~ and $VAR expansion)")
    return Path(text)


def _path_or_default(default: Callable[[Mapping[str, str]], Path]) -> Callable[..., Path]:
    """A path check where null means the platform default (systemd, then XDG, then ~)."""

    def check(value: Any, env: Mapping[str, str]) -> Path:
        if value is None:
            return default(env)
        return expand_path(value, env)

    return check


def check_socket_path(path: Path) -> Path:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise Invalid(
            f"socket path is longer than {MAX_SOCKET_PATH_BYTES} bytes, the limit of a Unix "
            f"socket address: {describe(str(path))}",
            False,
        )
    return path


def check_socket(value: Any, env: Mapping[str, str]) -> Path:
    if value is None:
        return paths.default_socket(env)
    return check_socket_path(expand_path(value, env))


def check_optional_dir(value: Any, env: Mapping[str, str]) -> Path | None:
    """An absolute folder path, or null (off)."""
    return None if value is None else expand_path(value, env)


_state_dir = _path_or_default(paths.default_state_dir)
_download_dir = _path_or_default(paths.default_download_dir)


# --- command-line flags ----------------------------------------------------------------------


def check_flag_path(value: Any, env: Mapping[str, str]) -> Path:
    """A path flag: ``~`` expanded (no $VARS: the shell did that), relative to the cwd."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if text and not text.startswith("~") and "\0" not in text:
        return Path(os.path.abspath(text))
    return expand_path(value, env, expand_vars=False)


def check_flag_socket(value: Any, env: Mapping[str, str]) -> Path:
    return check_socket_path(check_flag_path(value, env))


def check_flag_port(value: Any, env: Mapping[str, str]) -> int:
    """A port flag may still be the text argparse saw."""
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        value = int(value)
    return check_port(value, env)


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One configuration key: its check, its default and whether SIGHUP can apply it live.

    ``octal``: a plain YAML number is handed to the check as the digits written (``22`` is
    0o22, as for umask(1)) and the value is written back as octal text.
    """

    name: str
    check: Callable[[Any, Mapping[str, str]], Any]
    default: Callable[[Mapping[str, str]], Any]
    live: bool = False
    octal: bool = False


def _const(value: Any) -> Callable[[Mapping[str, str]], Any]:
    return lambda env: value


SECTIONS: dict[str, tuple[type, tuple[Key, ...]]] = {
    "daemon": (
        DaemonConfig,
        (
            Key("state_dir", _state_dir, paths.default_state_dir),
            Key("log_level", check_log_level, _const("info"), live=True),
            Key("shutdown_timeout", check_timeout, _const(10.0)),
        ),
    ),
    "control": (
        ControlConfig,
        (
            Key("socket", check_socket, paths.default_socket),
            Key("allowed_group", check_group, _const(None), live=True),
        ),
    ),
    "session": (
        SessionConfig,
        (
            Key("download_dir", _download_dir, paths.default_download_dir),
            Key("listen_host", check_host, _const("0.0.0.0")),
            Key("listen_port", check_port, _const(6881)),
            Key("max_connections", check_positive_int, _const(200), live=True),
            Key("max_connections_per_torrent", check_positive_int, _const(50), live=True),
            Key("upload_slots", check_positive_int, _const(4), live=True),
            Key(
                "peer_inactivity_timeout",
                check_positive_int,
                _const(int(PEER_INACTIVITY_TIMEOUT)),
                live=True,
            ),
            Key(
                "peer_replace_grace", check_positive_int, _const(int(PEER_REPLACE_GRACE)), live=True
            ),
            Key("piece_strategy", check_name, _const("rarest-first"), live=True),
            Key("encryption", check_encryption, _const("prefer"), live=True),
            Key("peer_id_prefix", check_peer_id_prefix, _const("-BT0100-")),
            Key("umask", check_umask, _const(DEFAULT_UMASK), live=True, octal=True),
            Key("download_limit", check_rate, _const(0), live=True),
            Key("upload_limit", check_rate, _const(0), live=True),
            Key("alt_download_limit", check_rate, _const(0), live=True),
            Key("alt_upload_limit", check_rate, _const(0), live=True),
            Key("alt_enabled", check_bool, _const(False), live=True),
            Key("alt_schedule", check_alt_schedule, _const(None), live=True),
            Key("min_free_space", check_bytes, _const(0), live=True),
            Key("incomplete_dir", check_optional_dir, _const(None), live=True),
            Key("max_active_downloads", check_active_limit, _const(-1), live=True),
            Key("max_active_seeds", check_active_limit, _const(-1), live=True),
            Key("max_active_torrents", check_active_limit, _const(-1), live=True),
            Key("stalled_minutes", check_minutes, _const(0), live=True),
            Key("ratio_limit", check_goal, _const(-1.0), live=True),
            Key("seeding_time_limit", check_goal, _const(-1), live=True),
            Key("idle_seeding_limit", check_goal, _const(-1), live=True),
            Key("seeding_goal_action", check_goal_action, _const("pause"), live=True),
        ),
    ),
}
TOP_LEVEL: tuple[str, ...] = (*SECTIONS, "labels", "plugins")
LIVE_KEYS: frozenset[str] = frozenset(
    f"{section}.{key.name}" for section, (_, keys) in SECTIONS.items() for key in keys if key.live
)
