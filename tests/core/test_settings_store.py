"""session.get / session.set / session.reset: the settable keys, their checks, the overrides
file (atomic, 0600, read over the user's YAML at start and on SIGHUP) and the apply path."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from btd.core.config import Config, default_config, with_overrides
from btd.core.config_schema import LIVE_KEYS
from btd.core.daemon import effective_config, parse_args
from btd.core.plugin import hookimpl, make_plugin_manager
from btd.core.rpc import errors as codes
from btd.core.rpc.errors import RpcError
from btd.core.rpc.settings_methods import settings_methods
from btd.core.service import BtdService
from btd.core.settings_store import (
    FILE_NAME,
    SETTABLE,
    SettingsError,
    apply_saved,
    check_setting,
    load_saved,
    save_settings,
    with_settings,
)


def make_config(tmp_path: Path) -> Config:
    return with_overrides(
        default_config({"HOME": str(tmp_path)}),
        state_dir=tmp_path / "state",
        socket=tmp_path / "run" / "btd.sock",
        download_dir=tmp_path / "dl",
        listen_port=0,
    )


# -- the keys ----------------------------------------------------------------------------------
def test_settable_keys_are_the_live_keys_of_the_schema() -> None:
    assert "upload_slots" in SETTABLE and "max_connections" in SETTABLE  # session: bare names
    assert "daemon.log_level" in SETTABLE  # other sections: dotted
    assert "listen_port" not in SETTABLE and "download_dir" not in SETTABLE  # restart-only
    assert "control.allowed_group" not in SETTABLE  # access control stays in the file
    dotted = {n if "." in n else f"session.{n}" for n in SETTABLE}
    assert dotted == LIVE_KEYS - {"control.allowed_group"}


def test_check_setting_uses_the_schema_checks() -> None:
    assert check_setting("upload_slots", 7) == 7
    assert check_setting("daemon.log_level", "DEBUG") == "debug"
    assert check_setting("umask", "0027") == 0o027
    assert check_setting("umask", 22) == 0o22  # an int is the digits, as YAML writes them
    assert check_setting("umask", None) is None
    for name, value, words in (
        ("upload_slots", 0, "positive integer, got 0"),
        ("upload_slots", "5", "positive integer"),
        ("listen_port", 7000, "needs a restart"),
        ("no_such_key", 1, "unknown setting"),
        ("control.allowed_group", "users", "needs a restart"),
    ):
        with pytest.raises(SettingsError) as info:
            check_setting(name, value)
        assert info.value.name == name
        assert words in info.value.message


def test_with_settings_keeps_the_rule_between_keys(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert with_settings(config, {"max_connections": 100}).session.max_connections == 100
    with pytest.raises(SettingsError) as info:
        with_settings(config, {"max_connections_per_torrent": 500})
    assert info.value.name == "max_connections_per_torrent"
    with pytest.raises(SettingsError) as info:
        with_settings(config, {"max_connections": 10})
    assert info.value.name == "max_connections"


# -- the file ----------------------------------------------------------------------------------
def test_save_is_atomic_private_and_merges(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = save_settings(state, {"upload_slots": 9, "umask": 0o027})
    assert path == state / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_settings(state, {"daemon.log_level": "debug", "upload_slots": 5})
    assert yaml.safe_load(path.read_text()) == {
        "session": {"upload_slots": 5, "umask": "0027"},
        "daemon": {"log_level": "debug"},
    }
    assert sorted(os.listdir(state)) == [FILE_NAME]  # no temporary file left
    assert load_saved(state).values == {
        "upload_slots": 5,
        "umask": 0o027,
        "daemon.log_level": "debug",
    }


def test_a_bad_entry_is_skipped_and_a_damaged_file_kept_aside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_text("session:\n  upload_slots: 0\n  max_connections: 90\n")
    saved = load_saved(state)
    assert saved.values == {"max_connections": 90}
    assert len(saved.problems) == 1 and "session.upload_slots" in saved.problems[0]

    (state / FILE_NAME).write_text("session: [unclosed\n")
    saved = load_saved(state)
    assert saved.values == {} and "ignored" in saved.problems[0]
    save_settings(state, {"upload_slots": 3})  # a fresh file; the damaged one is kept
    assert load_saved(state).values == {"upload_slots": 3}
    aside = [p for p in os.listdir(state) if p.startswith(f"{FILE_NAME}.damaged-")]
    assert len(aside) == 1
    assert load_saved(tmp_path / "nowhere").values == {}


def test_saved_settings_go_over_the_file_and_flags_over_both(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conf = tmp_path / "btd.yaml"
    conf.write_text(
        f"daemon: {{state_dir: {state}, log_level: warning}}\n"
        "session: {upload_slots: 4, max_connections: 100}\n"
    )
    save_settings(state, {"upload_slots": 11, "daemon.log_level": "debug"})
    config = effective_config(parse_args(["--config", str(conf)]))
    assert config.session.upload_slots == 11  # saved beats the file
    assert config.session.max_connections == 100  # the file's, not saved
    assert config.daemon.log_level == "debug"
    flagged = effective_config(parse_args(["--config", str(conf), "--log-level", "error"]))
    assert flagged.daemon.log_level == "error"  # a flag beats both
    # the saved file in the --state-dir given by flag is the one read
    other = tmp_path / "other"
    other.mkdir()
    save_settings(other, {"upload_slots": 2})
    args = parse_args(["--config", str(conf), "--state-dir", str(other)])
    assert effective_config(args).session.upload_slots == 2


def test_saved_values_that_break_a_rule_together_with_the_file_are_ignored(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    state = config.daemon.state_dir
    state.mkdir()
    save_settings(state, {"max_connections_per_torrent": 150})
    small = dataclasses.replace(
        config,
        session=dataclasses.replace(config.session, max_connections=100),
    )
    applied, problems = apply_saved(small, load_saved(state))
    assert applied == small and "max_connections" in problems[0]


# -- the methods on a service --------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.reloads: list[Config] = []

    @hookimpl
    def btd_config_reloaded(self, old: Config, new: Config) -> None:
        self.reloads.append(new)


def answer(value: Any) -> Any:
    if isinstance(value, defer.Deferred):
        out: list[Any] = []
        value.addBoth(out.append)
        assert out, "no answer"
        if isinstance(out[0], Failure):
            out[0].raiseException()
        return out[0]
    return value


class Daemon:
    """A BtdService (not started) with the settings methods, as the daemon builds them, and
    ``reread`` reading the files as SIGHUP does."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.conf = tmp_path / "btd.yaml"
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        self.conf.write_text(
            f"daemon: {{state_dir: {state}}}\n"
            f"control: {{socket: {tmp_path / 'btd.sock'}}}\n"
            f"session: {{download_dir: {tmp_path / 'dl'}, upload_slots: 4, listen_port: 0}}\n"
        )
        self.args = parse_args(["--config", str(self.conf)])
        self.recorder = Recorder()
        host = make_plugin_manager({}, extra={"rec": self.recorder})
        self.levels: list[str] = []
        self.service = BtdService(
            effective_config(self.args),
            host,
            MemoryReactorClock(),
            on_level_change=self.levels.append,
            reread=lambda: effective_config(self.args),
        )
        self.methods = settings_methods(
            lambda: self.service.config,
            self.service.apply_config,
            lambda fn, *a: defer.maybeDeferred(fn, *a),
            self.service.reread,
        )
        self.file = state / FILE_NAME

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return answer(self.methods[name](*args, **kwargs))

    def refused(self, name: str, *args: Any, **kwargs: Any) -> RpcError:
        with pytest.raises(RpcError) as info:
            self.call(name, *args, **kwargs)
        return info.value


def test_get_answers_every_settable_key(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    got = d.call("session.get")
    assert set(got) == set(SETTABLE)
    assert got["upload_slots"] == 4 and got["daemon.log_level"] == "info"
    assert got["umask"] == "0022"


def test_set_applies_through_the_reload_path_and_saves(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    reply = d.call("session.set", {"upload_slots": 9, "daemon.log_level": "debug"})
    assert reply == {
        "applied": {"upload_slots": 9, "daemon.log_level": "debug"},
        "saved": {"upload_slots": True, "daemon.log_level": True},
        "file": str(d.file),
    }
    for running in (d.service.config, d.service.session.config, d.recorder.reloads[-1]):
        assert running.session.upload_slots == 9
    assert d.levels == ["debug"]
    assert d.call("session.get")["upload_slots"] == 9
    assert stat.S_IMODE(d.file.stat().st_mode) == 0o600
    # keyword form, as `btctl call session.set '{"upload_slots": 3}'` sends it
    assert d.call("session.set", upload_slots=3)["applied"] == {"upload_slots": 3}

    # a restart: the saved value is read over the user's file
    assert effective_config(d.args).session.upload_slots == 3


def test_set_checks_every_key_before_changing_anything(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    for settings, field in (
        ({"upload_slots": 9, "max_connections": -1}, "max_connections"),
        ({"upload_slots": 9, "listen_port": 7000}, "listen_port"),
        ({"upload_slots": 9, "nonsense": 1}, "nonsense"),
        ({"upload_slots": 9, "max_connections_per_torrent": 10_000}, "max_connections_per_torrent"),
        ({"upload_slots": "9"}, "upload_slots"),
    ):
        err = d.refused("session.set", settings)
        assert err.code == codes.INVALID_PARAMS
        assert err.data == {"field": field}
        assert err.message.startswith(f"{field}: ")
    for bad, field in (([1], "settings"), ({}, "settings")):
        assert d.refused("session.set", bad).data == {"field": field}
    assert d.service.config.session.upload_slots == 4
    assert not d.file.exists()
    assert d.recorder.reloads == []


def test_sighup_keeps_saved_settings_on_top(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    d.call("session.set", {"upload_slots": 9})
    d.conf.write_text(d.conf.read_text().replace("upload_slots: 4", "upload_slots: 5"))
    d.conf.write_text(
        d.conf.read_text().replace("listen_port: 0}", "listen_port: 0, max_connections: 150}")
    )
    d.service.reload(effective_config(d.args))  # what SIGHUP does
    assert d.service.config.session.upload_slots == 9  # saved wins over the edited file
    assert d.service.config.session.max_connections == 150  # the file's other edit applies


def test_reset_goes_back_to_the_file(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    d.call("session.set", {"upload_slots": 9, "max_connections": 150})
    reply = d.call("session.reset", ["upload_slots"])
    assert reply == {"reset": {"upload_slots": 4}, "file": str(d.file)}
    assert d.service.config.session.upload_slots == 4
    assert d.service.config.session.max_connections == 150  # still saved
    assert load_saved(d.file.parent).values == {"max_connections": 150}
    assert d.refused("session.reset", ["listen_port"]).data == {"field": "keys"}


def test_a_failed_write_still_applies_and_says_not_saved(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    d.file.mkdir()  # the file cannot be replaced: a folder is in the way
    reply = d.call("session.set", {"upload_slots": 6})
    assert reply["saved"] == {"upload_slots": False}
    assert "cannot write" in reply["error"]
    assert d.service.config.session.upload_slots == 6
