"""The plugin manager: pluggy, built-ins registered like third-party plugins.

Plugins are Python modules (or objects) with ``btd_*`` hook implementations.
Built-ins are named in BUILTIN_PLUGINS; third-party plugins come from the
``btd.plugins`` entry-point group. The YAML ``plugins:`` section says which are
enabled (absent = DEFAULT_PLUGINS) and holds each plugin's own settings, which the
plugin validates in ``btd_configure``.

A hook that raises is isolated: ``call``/``first`` log the error and go on with the
other plugins. Only configuration (``btd_configure``) is fatal, because a plugin
that cannot understand its settings must stop the daemon with a clear message.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

import pluggy
from twisted.logger import Logger

from btd.core.errors import ConfigError

PROJECT = "btd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ENTRY_POINT_GROUP = "btd.plugins"

BUILTIN_PLUGINS: dict[str, str] = {
    "rarest_first": "btd.plugins.rarest_first",
    "sequential": "btd.plugins.sequential",
    "udp_tracker": "btd.plugins.udp_tracker",
    "resume_sqlite": "btd.plugins.resume_sqlite",
    "notify_command": "btd.plugins.notify_command",
    "notify_webhook": "btd.plugins.notify_webhook",
    "watch_dir": "btd.plugins.watch_dir",
    "dht": "btd.plugins.dht",
    "pex": "btd.plugins.pex",
}

from btd.core.config_schema import DEFAULT_PLUGINS  # noqa: E402 - enabled without `plugins:`

# The core itself provides these hooks' default answers (e.g. the HTTP tracker client);
# it is registered under this name and is not a plugin a user enables.
CORE_NAME = "core"

_log = Logger(namespace="btd.plugins")


def available_plugins() -> dict[str, Callable[[], Any]]:
    """Every plugin that could be enabled: name -> loader (built-ins, then entry points)."""
    found: dict[str, Callable[[], Any]] = {
        name: (lambda module=module: importlib.import_module(module))
        for name, module in BUILTIN_PLUGINS.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.load)
    return found


class PluginHost:
    """Owns the pluggy manager and calls hooks with failures isolated per plugin."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        enabled: Iterable[str],
        available: Iterable[str] = (),
    ) -> None:
        self.pm = pm
        self.enabled = tuple(enabled)
        self.available = tuple(available)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _impls(self, name: str, /) -> list[Any]:
        caller = getattr(self.pm.hook, name)
        # pluggy calls the last registered first (tryfirst/trylast already sorted).
        return list(reversed(caller.get_hookimpls()))

    def call(self, name: str, /, **kwargs: Any) -> list[Any]:
        """Broadcast/collect hook: every non-None result; a raising plugin is logged."""
        results = []
        for impl in self._impls(name):
            try:
                args = [kwargs[a] for a in impl.argnames]
                result = impl.function(*args)
            except Exception:
                _log.failure(
                    "plugin {plugin} failed in {hook}; it is skipped",
                    plugin=impl.plugin_name,
                    hook=name,
                )
                continue
            if result is not None:
                results.append(result)
        return results

    def first(self, name: str, /, **kwargs: Any) -> Any:
        """firstresult hook: the first non-None answer; a raising plugin is skipped."""
        for impl in self._impls(name):
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception:
                _log.failure(
                    "plugin {plugin} failed in {hook}; trying the next one",
                    plugin=impl.plugin_name,
                    hook=name,
                )
                continue
            if result is not None:
                return result
        return None

    def configure(self, config: Any) -> None:
        """Give every plugin the configuration; a plugin refusing its settings is fatal."""
        for impl in self._impls("btd_configure"):
            try:
                impl.function(*[{"config": config}[a] for a in impl.argnames])
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"plugin failed to configure: {exc}", key=f"plugins.{impl.plugin_name}"
                ) from exc

    def plugin_info(self) -> list[dict[str, Any]]:
        """Enabled and available plugins with their hooks (for session.info, btctl plugins)."""
        rows = []
        for name in sorted(set(self.available) | set(self.enabled)):
            plugin = self.pm.get_plugin(name)
            hooks = []
            if plugin is not None:
                hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
            rows.append(
                {
                    "name": name,
                    "enabled": name in self.enabled,
                    "builtin": name in BUILTIN_PLUGINS,
                    "version": getattr(plugin, "__version__", None),
                    "hooks": hooks,
                }
            )
        return rows


def make_plugin_manager(
    plugins: Mapping[str, Any] | None,
    *,
    extra: Mapping[str, Any] | None = None,
    available: Mapping[str, Callable[[], Any]] | None = None,
) -> PluginHost:
    """Build the manager with exactly the enabled plugins.

    ``plugins`` is the YAML section (None = the default set). ``extra`` registers
    objects under fixed names (the core's own defaults, tests). An unknown name or a
    plugin that fails to import is a ConfigError naming ``plugins.<name>``.
    """
    from btd.core import hookspecs

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, obj in (extra or {}).items():
        pm.register(obj, name=name)
    names = list(DEFAULT_PLUGINS if plugins is None else plugins)
    loaders = available_plugins() if available is None else available
    enabled = []
    for name in names:
        loader = loaders.get(name)
        if loader is None:
            known = ", ".join(sorted(loaders)) or "none"
            raise ConfigError(f"unknown plugin (available: {known})", key=f"plugins.{name}")
        try:
            plugin = loader()
        except Exception as exc:
            raise ConfigError(
                f"plugin failed to load: {type(exc).__name__}: {exc}", key=f"plugins.{name}"
            ) from exc
        try:
            pm.register(plugin, name=name)
            pm.check_pending()  # a btd_* function that matches no hook is a mistake
        except Exception as exc:  # unknown hook names, wrong argument names
            raise ConfigError(f"plugin is not valid: {exc}", key=f"plugins.{name}") from exc
        enabled.append(name)
    return PluginHost(pm, enabled, loaders)
