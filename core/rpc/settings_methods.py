"""``session.get``, ``session.set`` and ``session.reset``: the settings a user changes at run
time (core/settings_store.py says which, and keeps them in ``<state_dir>/settings.yaml``).

A change goes through the same path as a SIGHUP reload (``BtdService.apply_config``:
``Session.apply_config``, then the plugins' ``btd_config_reloaded``), so every key that
reloads live works here without code of its own. Every key is checked before anything
changes; the file is written on the thread pool, one change at a time, before the change
is applied, and the reply says per key whether it was saved (a failed write leaves the
change in force until the daemon restarts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from btd.core.config_schema import Config
from btd.core.errors import ConfigError
from btd.core.rpc.dispatch import require
from btd.core.rpc.errors import INVALID_PARAMS, STORAGE, RpcError, invalid_params
from btd.core.settings_store import (
    SETTABLE,
    SettingsError,
    as_json,
    check_settings,
    current,
    forget_settings,
    save_settings,
    settings_path,
    with_settings,
)

_log = Logger()


def settings_methods(
    config: Callable[[], Config],
    apply: Callable[[Config], Any],
    run_blocking: Callable[..., defer.Deferred[Any]],
    reread: Callable[[], Config] | None = None,
) -> dict[str, Callable[..., Any]]:
    """The methods, given the running config, the live-apply path, the thread pool and (for
    ``session.reset``) a way to read the files again as SIGHUP does."""
    lock = defer.DeferredLock()  # one read-modify-write of the file at a time

    def get() -> dict[str, Any]:
        """Every setting session.set can change, with its value in force."""
        return current(config())

    def check(settings: dict[str, Any]) -> dict[str, Any]:
        try:
            typed = check_settings(settings)
            with_settings(config(), typed)  # rules between keys
        except SettingsError as exc:
            raise invalid_params(exc.name, exc.message) from None
        return typed

    def set_(settings: Any = None, **more: Any) -> defer.Deferred[dict[str, Any]]:
        """Change settings of the running daemon and save them (all checked first)."""
        if settings is not None and more:
            raise invalid_params(
                "settings", "give the keys inside settings, or beside it, not both"
            )
        if settings is None:
            settings = more
        require("settings", settings, dict)
        if not settings:
            raise invalid_params("settings", "no setting given")
        typed = check(settings)
        path = settings_path(config().daemon.state_dir)

        def saved(ok: bool, error: str | None = None) -> dict[str, Any]:
            try:  # the config in force now (a SIGHUP may have come meanwhile), plus these
                apply(with_settings(config(), typed))
            except SettingsError as exc:
                raise invalid_params(exc.name, exc.message) from None
            except ConfigError as exc:  # e.g. control.allowed_group no longer resolves
                raise RpcError(INVALID_PARAMS, f"not applied: {exc}") from None
            reply = {
                "applied": as_json(typed),
                "saved": dict.fromkeys(typed, ok),
                "file": str(path),
            }
            if error is not None:
                reply["error"] = error
            return reply

        def failed(failure: Any) -> dict[str, Any]:
            failure.trap(OSError)
            why = f"cannot write {path}: {failure.value}"
            _log.error("session.set: {why}; the change lasts until restart", why=why)
            return saved(False, why)

        d = lock.run(run_blocking, save_settings, path.parent, typed)
        return d.addCallbacks(lambda _: saved(True), failed)

    def reset(keys: Any) -> defer.Deferred[dict[str, Any]]:
        """Forget saved settings: the configuration files' values apply again."""
        require("keys", keys, list)
        for name in keys:
            if not isinstance(name, str) or name not in SETTABLE:
                raise invalid_params("keys", f"not a setting: {name!r}")
        if reread is None:
            raise invalid_params("keys", "this daemon cannot re-read its configuration")
        path = settings_path(config().daemon.state_dir)

        def reapply(_: object) -> dict[str, Any]:
            error = None
            try:
                apply(reread())  # as SIGHUP: the user's file, then what is left of ours
            except ConfigError as exc:
                error = f"the configuration does not load ({exc}); fix it and send SIGHUP"
            now = current(config())
            reply = {"reset": {name: now[name] for name in keys}, "file": str(path)}
            return reply if error is None else {**reply, "error": error}

        def failed(failure: Any) -> Any:
            failure.trap(OSError)
            raise RpcError(STORAGE, f"cannot write {path}: {failure.value}")

        d = lock.run(run_blocking, forget_settings, path.parent, tuple(keys))
        return d.addCallbacks(reapply, failed)

    return {"session.get": get, "session.set": set_, "session.reset": reset}
