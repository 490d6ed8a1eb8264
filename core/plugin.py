"""The plugin manager: pluggy, built-ins registered like third-party plugins.

A plugin is an object with ``btd_*`` hook implementations. Built-ins are classes named in
BUILTIN_PLUGINS; third-party plugins come from the ``btd.plugins`` entry-point group (a
module, a class or a factory function). A class or factory gives a FRESH instance to every
manager, so plugin state lives in that instance and two daemons can share one process. The
YAML ``plugins:`` section says which are enabled (absent = DEFAULT_PLUGINS) and holds each
plugin's own settings, which the plugin validates in ``btd_configure``.

A hook that raises is isolated: ``call``/``first`` log the error and go on with the
other plugins. Only configuration (``btd_configure``) is fatal, because a plugin
that cannot understand its settings must stop the daemon with a clear message. Why the
loop is ours and not pluggy's, and what it therefore refuses: see ``btd.core.hookspecs``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

import pluggy
from twisted.logger import Logger

from btd.core import hookspecs
from btd.core.config_schema import DEFAULT_PLUGINS  # enabled without `plugins:`
from btd.core.errors import ConfigError
from btd.core.hookspecs import PROJECT, hookimpl, hookspec
from btd.core.plugin_config import with_location

__all__ = [
    "BUILTIN_PLUGINS",
    "CORE_NAME",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "PluginHost",
    "available_plugins",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = "btd.plugins"

# name -> "module:Class"; the class is instantiated once per plugin manager.
BUILTIN_PLUGINS: dict[str, str] = {
    "rarest_first": "btd.plugins.rarest_first:RarestFirstPlugin",
    "sequential": "btd.plugins.sequential:SequentialPlugin",
    "udp_tracker": "btd.plugins.udp_tracker:UdpTrackerPlugin",
    "resume_sqlite": "btd.plugins.resume_sqlite:ResumeSqlitePlugin",
    "notify_command": "btd.plugins.notify_command:NotifyCommandPlugin",
    "notify_webhook": "btd.plugins.notify_webhook:NotifyWebhookPlugin",
    "watch_dir": "btd.plugins.watch_dir:WatchDirPlugin",
    "dht": "btd.plugins.dht:DhtPlugin",
    "pex": "btd.plugins.pex:PexPlugin",
    "http": "btd.plugins.http:HttpPlugin",
    "web_seed": "btd.plugins.web_seed:WebSeedPlugin",
    "utp": "btd.plugins.utp:UtpPlugin",
}

# The core itself provides these hooks' default answers (e.g. the HTTP tracker client);
# it is registered under this name and is not a plugin a user enables.
CORE_NAME = "core"

TRACE_ENV = "BTD_TRACE_HOOKS"
TRACE_WIDTH = 200  # characters of each argument or result shown in a trace line

_log = Logger(namespace="btd.plugins")
_trace_log = Logger(namespace="btd.plugins.trace")


def _builtin_loader(target: str) -> Callable[[], Any]:
    module, _, attr = target.partition(":")
    return lambda: getattr(importlib.import_module(module), attr)


def available_plugins() -> dict[str, Callable[[], Any]]:
    """Every plugin that could be enabled: name -> loader (built-ins, then entry points).

    A loader returns a module, a class or a factory; ``make_plugin_manager`` turns the
    last two into a fresh instance.
    """
    found: dict[str, Callable[[], Any]] = {
        name: _builtin_loader(target) for name, target in BUILTIN_PLUGINS.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.load)
    return found


def instantiate(loaded: Any) -> Any:
    """The object to register: a class or a plain function is called (a fresh instance)."""
    if inspect.isclass(loaded) or inspect.isfunction(loaded):
        return loaded()
    return loaded


def refused_options(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """``hook (option)`` for each implementation our caller cannot honour (see hookspecs)."""
    refused = []
    for caller in pm.get_hookcallers(plugin) or []:
        spec = caller.spec
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            for option in ("wrapper", "hookwrapper"):
                if getattr(impl, option, False):
                    refused.append(f"{caller.name} ({option}=True)")
            if spec is not None and spec.opts.get("historic"):
                refused.append(f"{caller.name} (historic)")
    return refused


def short(value: Any, width: int = TRACE_WIDTH) -> str:
    """``repr`` cut to ``width`` characters (trace lines stay one short line)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


class PluginHost:
    """Owns the pluggy manager and calls hooks with failures isolated per plugin."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        enabled: Iterable[str],
        available: Iterable[str] = (),
        *,
        trace: bool | None = None,
    ) -> None:
        self.pm = pm
        self.enabled = tuple(enabled)
        self.available = tuple(available)
        self.trace = os.environ.get(TRACE_ENV, "") not in ("", "0") if trace is None else trace
        if self.trace:  # calls straight through ``hook`` (pluggy's caller) are traced too
            pm.add_hookcall_monitoring(self._before, self._after)
        self._started: list[float] = []

    @property
    def hook(self) -> Any:
        """pluggy's own caller: no isolation (``btd_resume_store`` must fail loudly)."""
        return self.pm.hook

    def register(self, name: str, plugin: Any) -> None:
        """Register one more plugin object (the core's own, built by the service).

        ConfigError naming ``plugins.<name>`` for unknown hook names or options our
        caller cannot honour (wrappers, historic hooks).
        """
        check(self.pm, name, plugin)

    def _impls(self, name: str, /) -> list[Any]:
        caller = getattr(self.pm.hook, name)
        # pluggy calls the last registered first (tryfirst/trylast already sorted).
        return list(reversed(caller.get_hookimpls()))

    def call(self, name: str, /, **kwargs: Any) -> list[Any]:
        """Broadcast/collect hook: every non-None result; a raising plugin is logged."""
        results = []
        for impl in self._impls(name):
            try:
                result = self._run(name, impl, kwargs)
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
                result = self._run(name, impl, kwargs)
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
        """Give every plugin the configuration; a plugin refusing its settings is fatal.

        A ConfigError gets the file and line of its key when the config was read from one.
        """
        for impl in self._impls("btd_configure"):
            try:
                self._run("btd_configure", impl, {"config": config})
            except ConfigError as exc:
                located = with_location(exc, config)
                if located is exc:
                    raise
                raise located from exc
            except Exception as exc:
                raise with_location(
                    ConfigError(
                        f"plugin failed to configure: {exc}", key=f"plugins.{impl.plugin_name}"
                    ),
                    config,
                ) from exc

    def _run(self, name: str, impl: Any, kwargs: Mapping[str, Any]) -> Any:
        args = [kwargs[a] for a in impl.argnames]
        if not self.trace:
            return impl.function(*args)
        started = time.perf_counter()
        shown = ", ".join(f"{a}={short(kwargs[a])}" for a in impl.argnames)
        try:
            result = impl.function(*args)
        except BaseException as exc:
            _trace_log.info(
                "hook {hook} {plugin}({args}) raised {error} in {ms:.3f} ms",
                hook=name, plugin=impl.plugin_name, args=shown, error=short(exc),
                ms=(time.perf_counter() - started) * 1000,
            )  # fmt: skip
            raise
        _trace_log.info(
            "hook {hook} {plugin}({args}) -> {result} in {ms:.3f} ms",
            hook=name, plugin=impl.plugin_name, args=shown, result=short(result),
            ms=(time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return result

    # pluggy's monitoring, for calls through ``hook`` (the whole call, every plugin at once)
    def _before(self, name: str, impls: Any, kwargs: Mapping[str, Any]) -> None:
        self._started.append(time.perf_counter())

    def _after(self, outcome: Any, name: str, impls: Any, kwargs: Mapping[str, Any]) -> None:
        ms = (time.perf_counter() - self._started.pop()) * 1000
        shown = ", ".join(f"{k}={short(v)}" for k, v in kwargs.items())
        plugins = ",".join(i.plugin_name for i in reversed(impls))
        exc = outcome.exception
        what = f"raised {short(exc)}" if exc is not None else f"-> {short(outcome.get_result())}"
        _trace_log.info(
            "hook {hook} [{plugins}]({args}) {what} in {ms:.3f} ms",
            hook=name, plugins=plugins, args=shown, what=what, ms=ms,
        )  # fmt: skip

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
                    "version": _version(plugin),
                    "hooks": hooks,
                }
            )
        return rows


def _version(plugin: Any) -> str | None:
    """The plugin's ``__version__``, or its module's (a built-in class's module says it)."""
    if plugin is None:
        return None
    version = getattr(plugin, "__version__", None)
    if version is None and not inspect.ismodule(plugin):
        module = sys.modules.get(type(plugin).__module__)
        version = getattr(module, "__version__", None)
    return version


def check(pm: pluggy.PluginManager, name: str, plugin: Any) -> None:
    """Register ``plugin`` as ``name``, or raise a ConfigError saying why it is not valid."""
    try:
        pm.register(plugin, name=name)
        pm.check_pending()  # a btd_* function that matches no hook is a mistake
    except Exception as exc:  # unknown hook names, wrong argument names
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        raise ConfigError(f"plugin is not valid: {exc}", key=f"plugins.{name}") from exc
    refused = refused_options(pm, plugin)
    if refused:
        pm.unregister(plugin)
        raise ConfigError(
            f"plugin is not valid: {', '.join(refused)} cannot be honoured: btd calls each "
            "implementation itself to isolate failures (see btd.core.hookspecs)",
            key=f"plugins.{name}",
        )


def make_plugin_manager(
    plugins: Mapping[str, Any] | None,
    *,
    extra: Mapping[str, Any] | None = None,
    available: Mapping[str, Callable[[], Any]] | None = None,
    trace: bool | None = None,
) -> PluginHost:
    """Build the manager with exactly the enabled plugins, each a fresh instance.

    ``plugins`` is the YAML section (None = the default set). ``extra`` registers
    objects under fixed names (tests). An unknown name, a plugin that fails to import or one
    that is not valid is a ConfigError naming ``plugins.<name>``. ``trace`` None reads
    ``$BTD_TRACE_HOOKS``.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, obj in (extra or {}).items():
        check(pm, name, obj)
    names = list(DEFAULT_PLUGINS if plugins is None else plugins)
    loaders = available_plugins() if available is None else available
    enabled = []
    for name in names:
        loader = loaders.get(name)
        if loader is None:
            close = difflib.get_close_matches(name, sorted(loaders), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            known = ", ".join(sorted(loaders)) or "none"
            raise ConfigError(f"unknown plugin ({hint}available: {known})", key=f"plugins.{name}")
        try:
            plugin = instantiate(loader())
        except Exception as exc:
            raise ConfigError(
                f"plugin failed to load: {type(exc).__name__}: {exc}", key=f"plugins.{name}"
            ) from exc
        check(pm, name, plugin)
        enabled.append(name)
    return PluginHost(pm, enabled, loaders, trace=trace)
