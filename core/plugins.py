"""Plugin discovery (pluggy + entry points) and the core-owned name -> class registry.

Environment switches (also available as arguments of :func:`load_registry`):

* ``EFFX_DISABLE_PLUGIN_AUTOLOAD=1`` - load no entry points, only the built-ins and plugins passed
  explicitly;
* ``EFFX_LOAD_PLUGINS=name1,name2`` - load only the listed entry-point names;
* ``EFFX_TRACE_PLUGINS=1`` - print every hook call and its results to stderr.
"""
from __future__ import annotations

import difflib
import os
import sys
from importlib import metadata
from typing import Any, Iterable

import attrs
import pluggy

from . import hookspecs
from .components import KINDS
from .errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "effx"
DEFAULT_PLUGINS = ("effx.builtin.heads", "effx.builtin.metrics")
HOOK_OF_KIND = {
    "attention": "effx_attention_types",
    "positional": "effx_positional_types",
    "head": "effx_head_types",
    "metric": "effx_metric_types",
}
@attrs.frozen
class Entry:
    """One registered component: its kind, name, class and providing distribution."""

    kind: str
    name: str
    cls: type
    dist: str
    version: str


class Registry:
    """The core-owned registry: ``kind -> name -> Entry``."""

    def __init__(self, pm: pluggy.PluginManager, dist_of: dict[int, tuple[str, str]]) -> None:
        self.pm = pm
        self.entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        for kind, hook in HOOK_OF_KIND.items():
            for impl in getattr(pm.hook, hook).get_hookimpls():
                dist, version = dist_of.get(id(impl.plugin), (impl.plugin_name, "?"))
                classes = impl.function() or []
                if getattr(pm, "effx_trace", False):
                    names = [getattr(c, "name", repr(c)) for c in classes]
                    sys.stderr.write(f"effx trace: {hook} [{impl.plugin_name} from {dist} {version}] -> {names}\n")
                for cls in classes:
                    self._add(kind, cls, dist, version)

    def _add(self, kind: str, cls: type, dist: str, version: str) -> None:
        base = KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{dist} returned {cls!r} from {HOOK_OF_KIND[kind]}; expected a subclass of effx.{base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{dist}: {cls.__qualname__} has no string class attribute 'name'")
        if not attrs.has(cls.Config):
            raise PluginError(f"{dist}: {cls.__qualname__}.Config must be an attrs class")
        old = self.entries[kind].get(name)
        if old is not None and old.cls is not cls:
            raise PluginError(
                f"{kind} '{name}' is provided twice: by {old.dist} ({old.cls.__module__}) and by "
                f"{dist} ({cls.__module__}); uninstall one of them"
            )
        self.entries[kind][name] = Entry(kind, name, cls, dist, version)

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str, path: str | None = None) -> Entry:
        """Look a component up; an unknown name raises a one-line error with the fix."""
        try:
            return self.entries[kind][name]
        except KeyError:
            raise ConfigError(unknown_message(kind, name, self.names(kind), path, self.pm)) from None

    def __iter__(self):
        for kind in KINDS:
            yield from (self.entries[kind][n] for n in self.names(kind))


def unknown_message(kind: str, name: Any, installed: list[str], path: str | None,
                    pm: pluggy.PluginManager | None = None) -> str:
    where = f"{path}: " if path else ""
    msg = f"{where}unknown {kind} '{name}'. Installed: {', '.join(installed) or 'none'}."
    close = difflib.get_close_matches(str(name), installed, n=1)
    provider = None if close or pm is None else unloaded_provider(kind, str(name), pm)
    if close:
        msg += f" Did you mean '{close[0]}'?"
    elif provider is not None:
        msg += (f" It is provided by {provider}, which is installed but not loaded: check "
                f"EFFX_DISABLE_PLUGIN_AUTOLOAD and EFFX_LOAD_PLUGINS (or the autoload/only arguments).")
    else:
        msg += f" Install the package that provides it (entry-point group '{ENTRY_POINT_GROUP}'); see `effx plugins`."
    return msg


def unloaded_provider(kind: str, name: str, pm: pluggy.PluginManager) -> str | None:
    """``"<distribution> <version> (entry point '<ep>')"`` of an installed plugin this manager did not
    load whose ``kind`` hook returns a class named ``name``; None if there is none."""
    for ep in _entry_points():
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            hook = getattr(ep.load(), HOOK_OF_KIND[kind], None)
            classes = hook() if callable(hook) else []
        except Exception:  # a broken install is reported when it is loaded, not in this hint
            continue
        if any(getattr(c, "name", None) == name for c in classes or []):
            dist = f"{ep.dist.metadata['Name']} {ep.dist.version}" if ep.dist is not None else "a package"
            return f"{dist} (entry point '{ep.name}')"
    return None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def make_plugin_manager(
    plugins: Iterable[Any] = (),
    autoload: bool | None = None,
    only: Iterable[str] | None = None,
    trace: bool | None = None,
) -> tuple[pluggy.PluginManager, dict[int, tuple[str, str]]]:
    """Create the plugin manager: built-ins, then entry points (subject to the switches), then ``plugins``."""
    import importlib

    from . import __version__

    pm = pluggy.PluginManager("effx")
    pm.add_hookspecs(hookspecs)
    dist_of: dict[int, tuple[str, str]] = {}
    for modname in DEFAULT_PLUGINS:
        mod = importlib.import_module(modname)
        pm.register(mod, name=modname)
        dist_of[id(mod)] = ("effx", __version__)
    if autoload is None:
        autoload = not _env_flag("EFFX_DISABLE_PLUGIN_AUTOLOAD")
    if only is None and os.environ.get("EFFX_LOAD_PLUGINS"):
        only = [s.strip() for s in os.environ["EFFX_LOAD_PLUGINS"].split(",") if s.strip()]
    if autoload:
        _load_entry_points(pm, dist_of, None if only is None else set(only))
    for plugin in plugins:
        if pm.is_registered(plugin):
            continue
        pm.register(plugin)
        dist_of[id(plugin)] = (getattr(plugin, "__name__", repr(plugin)), "local")
    if trace if trace is not None else _env_flag("EFFX_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
        pm.effx_trace = True
    return pm, dist_of


def _load_entry_points(pm: pluggy.PluginManager, dist_of: dict, only: set[str] | None) -> None:
    for ep in _entry_points():
        if only is not None and ep.name not in only:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        dist = ep.dist.metadata["Name"] if ep.dist is not None else ep.name
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party install must say which one, and how to get rid of it
            raise PluginError(f"plugin '{ep.name}' ({ep.value}) of distribution {dist} failed to import: "
                              f"{type(exc).__name__}: {exc}; reinstall it, or `pip uninstall {dist}`") from exc
        version = ep.dist.version if ep.dist is not None else "?"
        pm.register(plugin, name=ep.name)
        dist_of[id(plugin)] = (dist, version)


_DEFAULT: tuple[tuple, Registry] | None = None
_SWITCHES = ("EFFX_DISABLE_PLUGIN_AUTOLOAD", "EFFX_LOAD_PLUGINS", "EFFX_TRACE_PLUGINS")


def load_registry(
    plugins: Iterable[Any] = (), autoload: bool | None = None, only: Iterable[str] | None = None,
    trace: bool | None = None, fresh: bool = False,
) -> Registry:
    """Return the registry; the default one (no arguments) is built once and cached."""
    global _DEFAULT
    default = not plugins and autoload is None and only is None and trace is None
    key = tuple(os.environ.get(k, "") for k in _SWITCHES)
    if default and _DEFAULT is not None and _DEFAULT[0] == key and not fresh:
        return _DEFAULT[1]
    registry = Registry(*make_plugin_manager(plugins, autoload, only, trace))
    if default:
        _DEFAULT = (key, registry)
    return registry
