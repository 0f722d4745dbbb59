"""The plugin manager factory: built-ins and third-party plugins load through the same hooks.

Built-in components live in modules under :mod:`sslbench.builtin`; each module is a plugin whose
``@hookimpl`` functions register what it defines. Third-party distributions declare an entry
point in the ``sslbench`` group. A plugin that fails to import, misspells a hook, raises while
registering or registers a taken name is reported and skipped; the others keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from sslbench.core import hookspecs
from sslbench.core.catalog import KINDS, Catalog, DuplicateNameError, Entry
from sslbench.core.registration import check_registration
from sslbench.errors import UsageError

ENTRY_POINT_GROUP = "sslbench"
AUTOLOAD_ENV = "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PACKAGE = "sslbench.builtin"


@dataclass
class PluginInfo:
    """A loaded plugin: its name, distribution and what it registered (kind -> names)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. a hook without @hookimpl

    @property
    def builtin(self) -> bool:
        return self.name.startswith(BUILTIN_PACKAGE)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded, with the error in one line."""

    name: str
    distribution: str | None
    error: str
    version: str | None = None

    def __str__(self) -> str:
        dist = " ".join(filter(None, (self.distribution, self.version)))
        where = f" (from {dist})" if dist else ""
        return f"plugin {self.name!r}{where} failed: {self.error}"


@dataclass
class Plugins:
    """What one call of the app sees: the catalog, the plugins loaded and the ones that failed."""

    catalog: Catalog
    loaded: list[PluginInfo]
    failures: list[PluginFailure]

    def distributions(self) -> dict[str, str]:
        """Installed third-party distributions that registered something: name -> version.
        (A record's ``provenance.plugins`` lists only those its cell uses.)"""
        return {p.distribution: p.version or "" for p in self.loaded
                if p.distribution and p.registered}

    def warnings(self) -> list[str]:
        """One line per loaded plugin that looks wrong but loaded (``--strict`` fails on it)."""
        return [f"plugin {p.name!r}: {w}" for p in self.loaded for w in p.warnings]


def load_plugins(
    *,
    autoload: bool | None = None,
    strict: bool = False,
    extra: list[tuple[str, Any]] = (),
) -> Plugins:
    """Build a fresh plugin manager and catalog.

    ``autoload`` defaults to true unless ``SSLBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set; ``extra``
    is a list of ``(name, plugin_object)`` registered after the built-ins (tests use it for
    throwaway plugins). With ``strict`` the first failure raises :class:`UsageError`.
    """
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_ENV, "") in ("", "0")
    pm = pluggy.PluginManager("sslbench")
    pm.add_hookspecs(hookspecs)
    candidates: list[tuple[str, Any, str | None, str | None]] = []
    failures: list[PluginFailure] = []
    for name in _builtin_modules():
        candidates.append((name, importlib.import_module(name), None, None))
    if autoload:
        _load_entry_points(candidates, failures)
    candidates.extend((name, obj, None, None) for name, obj in extra)

    catalog = Catalog()
    loaded: list[PluginInfo] = []
    for name, obj, dist, version in candidates:
        info = PluginInfo(name, dist, version)
        error = _register_plugin(pm, catalog, obj, info)
        if error:
            failures.append(PluginFailure(name, dist, error, version))
        else:
            loaded.append(info)
    plugins = Plugins(catalog, loaded, failures)
    if strict and (failures or plugins.warnings()):
        raise UsageError(str(failures[0]) if failures else plugins.warnings()[0])
    return plugins


def _builtin_modules() -> list[str]:
    package = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(
        module.name
        for module in pkgutil.walk_packages(package.__path__, prefix=BUILTIN_PACKAGE + ".")
        if not module.ispkg and not module.name.rsplit(".", 1)[-1].startswith("_")
    )


def _load_entry_points(candidates: list, failures: list[PluginFailure]) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found = getattr(ep, "dist", None)  # None for entry points not read from a distribution
        dist = found.name if found else None
        version = found.version if found else None
        try:
            obj = ep.load()
        except BaseException as exc:  # a broken plugin must not break the others, even exit()
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(PluginFailure(ep.name, dist, _one_line(exc), version))
            continue
        candidates.append((ep.name, obj, dist, version))


def _register_plugin(pm: pluggy.PluginManager, catalog: Catalog, obj: Any, info: PluginInfo):
    """Register one plugin and run its hooks; return an error line, or None on success."""
    unknown = _unknown_hooks(obj)
    if unknown:
        return f"unknown hook {unknown[0]!r} (hooks are sslbench_register_<{'|'.join(KINDS)}>)"
    try:
        pm.register(obj, name=info.name)
    except Exception as exc:
        return _one_line(exc)
    staged: list[Entry] = []
    try:
        for kind in KINDS:
            for impl in getattr(pm.hook, f"sslbench_register_{kind}").get_hookimpls():
                if impl.plugin is obj:
                    impl.function(register=_stager(kind, info, staged))
        catalog.add_all(staged)
    except Exception as exc:
        pm.unregister(obj)
        return _one_line(exc)
    for entry in staged:
        info.registered.setdefault(entry.kind, []).append(entry.name)
    info.warnings += _unmarked_hooks(obj)
    return None


def _stager(kind: str, info: PluginInfo, staged: list[Entry]):
    def register(name: str, component: Any, **metadata: Any) -> None:
        check_registration(kind, name, component, metadata)
        staged.append(
            Entry(kind, name, component, info.name, info.distribution, info.version, metadata)
        )

    return register


def _unknown_hooks(obj: Any) -> list[str]:
    known = {f"sslbench_register_{kind}" for kind in KINDS}
    names = dir(obj) if not isinstance(obj, ModuleType) else list(vars(obj))
    return [n for n in names if n.startswith("sslbench_") and n not in known]


def _unmarked_hooks(obj: Any) -> list[str]:
    """Hook-named functions pluggy ignores because ``@hookimpl`` is missing: without this
    warning the plugin would load and silently register nothing from them."""
    names = vars(obj) if isinstance(obj, ModuleType) else {n: getattr(obj, n) for n in dir(obj)}
    return [f"{name}() is not decorated with @sslbench.hookimpl, so it was never called"
            for kind in KINDS
            if callable(fn := names.get(name := f"sslbench_register_{kind}"))
            and not hasattr(fn, f"{hookspecs.hookimpl.project_name}_impl")]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, DuplicateNameError) else text
