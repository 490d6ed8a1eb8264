"""Per-torrent settings: one table behind ``torrent.add``, ``torrent.set`` and the resume data.

Each setting is declared once: how an RPC value is checked (into a plain JSON value, which
is also how it is stored), its default from the session's configuration, whether
``torrent.add`` and ``torrent.set`` take it, and how a live change reaches the torrent. A new
per-torrent option is one ``TorrentSetting`` here plus its field on ``TorrentOptions``; the
RPC methods, the batch add, magnets and the resume store need no change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from btd.core.bandwidth import MAX_RATE
from btd.core.labels import LABELS_KEY, check_labels
from btd.core.torrent_env import TorrentOptions
from btd.core.types import ENCRYPTION_POLICIES


class SettingError(ValueError):
    """A bad value for one setting; ``name`` is the parameter to blame."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class TorrentSetting:
    """One per-torrent option (the field of ``TorrentOptions`` with the same name)."""

    name: str
    check: Callable[[Any], Any]
    """An RPC value -> the canonical JSON value (stored as is); ValueError(message) if bad."""
    default: Callable[[Any], Any]
    """The session's ``session`` config section -> the JSON value when none was given."""
    at_add: bool = True  # ``torrent.add`` takes it
    settable: bool = True  # ``torrent.set`` takes it
    apply: Callable[[Any, Any], None] | None = None
    """(torrent, option value): make a change live before the options record it; may raise
    ValueError to refuse it."""
    decode: Callable[[Any], Any] = _same  # JSON value -> the ``TorrentOptions`` field's value
    encode: Callable[[Any], Any] = _same  # the field's value -> JSON value
    report: Callable[[Any], Any] | None = None
    """torrent -> the value ``torrent.set`` answers, when it is not the stored one (the
    queue position: stored as an order key, reported as a place)."""


# -- checkers (RPC values -> canonical JSON values) ---------------------------------------------
def json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``check``, with null allowed (meaning: not given, the default applies)."""

    def check_or_null(value: Any) -> Any:
        return None if value is None else check(value)

    return check_or_null


def check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {json_name(value)}")
    return value


def check_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {json_name(value)}")
    return value


def check_absolute_path(value: Any) -> str:
    """An absolute path (``~`` expanded); NUL bytes, unknown users and ``..`` elements are
    refused (``..`` is not normalised away: through a symlink the kernel resolves it
    elsewhere than the text says, so the caller names the folder it means)."""
    text = check_str(value)
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user that does not exist
        raise ValueError(f"cannot expand {text!r}") from None
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    if ".." in path.parts:
        raise ValueError("must not contain '..': give the folder it leads to")
    return str(path)


def check_rate(value: Any) -> int:
    """A rate limit in bytes per second; 0 is unlimited."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RATE:
        raise ValueError(f"must be 0 (unlimited) .. {MAX_RATE} bytes/s")
    return value


def check_file_indices(value: Any) -> list[int]:
    """Distinct file indices >= 0, sorted (checked against the torrent's files when it is
    made: btd.core.file_selection)."""
    if not isinstance(value, list) or not all(type(i) is int and i >= 0 for i in value):
        raise ValueError("expected a list of file indices (integers >= 0)")
    return sorted(set(value))


def check_file_priorities(value: Any) -> dict[str, str]:
    """File index (a string, as JSON keys are) -> ``low``, ``normal`` or ``high``."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k.isdigit() and v in ("low", "normal", "high")
        for k, v in value.items()
    ):
        raise ValueError("expected an object of file index -> low, normal or high")
    return dict(value)


def _set_strategy(torrent: Any, strategy: str) -> None:
    torrent.set_strategy(strategy)  # ValueError: no such strategy


def _set_download_limit(torrent: Any, rate: int) -> None:
    torrent.set_rate_limits(rate, None)


def _set_upload_limit(torrent: Any, rate: int) -> None:
    torrent.set_rate_limits(None, rate)


def _set_allow_local(torrent: Any, allow: bool) -> None:
    torrent.options = replace(torrent.options, allow_local_trackers=allow)  # read by the policy
    torrent.announcer.refresh_policy()


# -- the queue and seeding goals (core/queue.py, core/seeding_goals.py) -------------------------
GLOBAL = "global"  # a goal's "use the session's value" (null in RPC answers)


def check_position(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a queue position: an integer >= 0 (0 = first)")
    return value


def check_encryption(value: Any) -> str:
    if value not in ENCRYPTION_POLICIES:
        raise ValueError(
            f"expected null (use the session's) or one of {', '.join(ENCRYPTION_POLICIES)}"
        )
    return str(value)


def _set_encryption(torrent: Any, value: Any) -> None:
    """New connections follow it; open ones keep what they negotiated."""
    torrent.options = replace(torrent.options, encryption=value)


def _goal_checker(unit: str) -> Callable[[Any], Any]:
    def check_goal(value: Any) -> Any:
        if value is None or value == GLOBAL:
            return GLOBAL
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not (value == -1 or 0 <= value < 1e12):
            got = repr(value) if ok else json_name(value)
            raise ValueError(
                f"expected null (use the session's), -1 (unlimited) or {unit} >= 0, got {got}"
            )
        return value

    return check_goal


def _decode_goal(value: Any) -> float | None:
    if value is None or value == GLOBAL:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a goal")
    return value


def _set_goal(name: str) -> Callable[[Any, Any], None]:
    def apply(torrent: Any, value: Any) -> None:
        torrent.options = replace(torrent.options, **{name: value})
        torrent.goals_changed()

    return apply


def _move_in_queue(torrent: Any, position: int) -> float:
    torrent.queue_move(position)
    return torrent.options.queue_position  # the order key the queue gave it


def _decode_key(value: Any) -> float:
    """A stored order key, or (``torrent.set``) the place asked for: kept as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not an order key")
    return value


SETTINGS: dict[str, TorrentSetting] = {
    s.name: s
    for s in (
        TorrentSetting(
            "save_path",
            optional(check_absolute_path),
            lambda cfg: str(cfg.download_dir),
            settable=False,  # torrent.move
            decode=lambda value: Path(value).expanduser(),
            encode=str,
        ),
        TorrentSetting("paused", check_bool, lambda cfg: False, settable=False),
        TorrentSetting(
            "strategy", optional(check_str), lambda cfg: cfg.piece_strategy, apply=_set_strategy
        ),
        TorrentSetting("download_limit", check_rate, lambda cfg: 0, apply=_set_download_limit),
        TorrentSetting("upload_limit", check_rate, lambda cfg: 0, apply=_set_upload_limit),
        TorrentSetting(  # torrent.set_files changes it (core/file_selection.py)
            "files_skipped",
            optional(check_file_indices),
            lambda cfg: [],
            settable=False,
            decode=lambda value: tuple(check_file_indices(value)),
            encode=list,
        ),
        TorrentSetting(
            "file_priorities",
            check_file_priorities,
            lambda cfg: {},
            settable=False,
            decode=lambda value: tuple(
                sorted((int(k), v) for k, v in check_file_priorities(value).items())
            ),
            encode=lambda pairs: {str(i): name for i, name in pairs},
        ),
        TorrentSetting(
            "encryption", optional(check_encryption), lambda cfg: None, apply=_set_encryption
        ),
        TorrentSetting(
            "allow_local_trackers", check_bool, lambda cfg: False, apply=_set_allow_local
        ),
        TorrentSetting(
            LABELS_KEY,
            check_labels,  # [] clears them (core/labels.py)
            lambda cfg: [],
            decode=lambda value: tuple(check_labels(value)),
            encode=list,
        ),
        TorrentSetting(  # stored: the order key; set and reported: the place (0 = first)
            "queue_position",
            optional(check_position),
            lambda cfg: None,
            at_add=False,
            apply=_move_in_queue,
            decode=lambda value: None if value is None else _decode_key(value),
            report=lambda torrent: torrent.queue_position,
        ),
        TorrentSetting(
            "force_start",
            optional(check_bool),
            lambda cfg: False,
            apply=lambda torrent, value: torrent.set_force_start(value),
        ),
        *(
            TorrentSetting(
                name,
                _goal_checker(unit),
                lambda cfg: None,
                apply=_set_goal(name),
                decode=_decode_goal,
            )
            for name, unit in (
                ("ratio_limit", "a ratio"),
                ("seeding_time_limit", "minutes"),
                ("idle_seeding_limit", "minutes"),
            )
        ),
    )
}
ADD_KEYS = tuple(name for name, s in SETTINGS.items() if s.at_add)
SET_KEYS = tuple(name for name, s in SETTINGS.items() if s.settable)
LABEL_DEFAULT_KEYS = tuple(name for name in ADD_KEYS if name != LABELS_KEY)


def check_given(raw: Mapping[str, Any], keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """The settings given in ``raw``, checked; SettingError names the first bad one. A null
    is passed to the checker (``optional`` ones take it as "not given"). ``what`` says which
    call this is, for the error on an unknown key."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in keys:
            raise SettingError(name, f"unknown parameter of {what}; known: {list(keys)}")
        try:
            out[name] = SETTINGS[name].check(value)
        except SettingError:
            raise
        except ValueError as exc:
            raise SettingError(name, str(exc)) from None
    return out


def check_add(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``torrent.add``'s options: checked, canonical, only those given (a null one is not)."""
    checked = check_given(raw, ADD_KEYS, "torrent.add")
    return {name: value for name, value in checked.items() if value is not None}


def check_label_defaults(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One label's defaults (the YAML ``labels.<label>`` mapping): any add-time setting but
    ``labels``, checked as ``torrent.add`` checks it; SettingError names the bad one."""
    checked = check_given(raw, LABEL_DEFAULT_KEYS, "a label's defaults")
    return {name: value for name, value in checked.items() if value is not None}


def options_from(given: Mapping[str, Any], cfg: Any) -> TorrentOptions:
    """A torrent's options from checked (or stored) values, defaults from ``cfg`` (the
    ``session`` config section). A stored value that no longer decodes takes the default:
    a damaged record must not keep a torrent from loading."""
    values: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        raw = given.get(name)
        if raw is not None:
            try:  # a stored value in its checked form is checked again; others decoded
                value = setting.check(raw) if setting.decode is _same else setting.decode(raw)
                if value is not None:
                    values[name] = value
                    continue
            except (TypeError, ValueError):
                pass
        values[name] = setting.decode(setting.default(cfg))
    return TorrentOptions(**values)


def options_json(options: TorrentOptions) -> dict[str, Any]:
    """Every setting of ``options`` as JSON values (the resume record's part)."""
    return {name: s.encode(getattr(options, name)) for name, s in SETTINGS.items()}


def current_settings(torrent: Any) -> dict[str, Any]:
    """The settable settings as ``torrent.set`` answers them (``report`` where one is set)."""
    stored = options_json(torrent.options)
    return {
        name: stored[name] if s.report is None else s.report(torrent)
        for name, s in SETTINGS.items()
        if s.settable
    }


def apply_settings(torrent: Any, raw: Mapping[str, Any]) -> list[str]:
    """``torrent.set``: check every given setting first (nothing changes if one is bad), then
    apply each and record it in ``torrent.options``. Returns the names changed. A checker
    that answers None means "no change" (a setting where null means something, such as "use
    the global value", checks it into a value of its own). An ``apply`` that returns a value
    has it recorded instead of the given one (the queue position's order key)."""
    checked = {k: v for k, v in check_given(raw, SET_KEYS, "torrent.set").items() if v is not None}
    for name, value in checked.items():
        setting = SETTINGS[name]
        decoded = setting.decode(value)
        if setting.apply is not None:
            try:
                recorded = setting.apply(torrent, decoded)
            except ValueError as exc:
                raise SettingError(name, str(exc)) from None
            if recorded is not None:
                decoded = recorded
        torrent.options = replace(torrent.options, **{name: decoded})
    return list(checked)
