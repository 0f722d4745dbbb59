"""The catalog index: what ``sslbench list`` and ``sslbench plugins`` show, cached on disk.

Loading the plugins imports every built-in module, and they define ``nn.Module`` classes, so
torch comes with them: a second or more before the first line is printed. The index is the
JSON-serialisable listing of one real load (every entry's kind, name, plugin, distribution,
version, summary and JSON-safe metadata such as ``display``; the plugins loaded and what they
registered; the failures), stored in :func:`~sslbench.core.paths.cache_dir` and reused while its
fingerprint matches.

The fingerprint is computed without importing any plugin, from: the index format and sslbench's
version; size and mtime of every file under ``sslbench/builtin`` and of the core modules that
build the listing; every ``sslbench`` entry point (name, value, distribution name and version,
and size and mtime of its module, located with :func:`importlib.util.find_spec` without importing
it); and ``SSLBENCH_DISABLE_PLUGIN_AUTOLOAD``. Editing a built-in or a plugin's entry module,
installing, removing or upgrading a plugin, or flipping the variable rebuilds the index. (A
plugin whose registrations change in a module other than its entry module, without a version
change, is not noticed; such a plugin is rare, and reinstalling it is enough.)

A cache that cannot be read (missing, corrupt, another format) is rebuilt; one that cannot be
written (read-only home) is skipped. Neither is ever an error.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sslbench
from sslbench.core.catalog import KINDS
from sslbench.core.paths import cache_dir
from sslbench.core.plugins import (
    AUTOLOAD_ENV,
    BUILTIN_PACKAGE,
    ENTRY_POINT_GROUP,
    PluginFailure,
    PluginInfo,
    Plugins,
)

FORMAT = 1


@dataclass(frozen=True)
class IndexEntry:
    """One registered component as listed (no component object: nothing to import)."""

    kind: str
    name: str
    plugin: str
    distribution: str | None
    version: str | None
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Index:
    """A listing of one plugin load: entries, plugins loaded, plugins that failed."""

    entries: list[IndexEntry]
    loaded: list[PluginInfo]
    failures: list[PluginFailure]

    @classmethod
    def from_plugins(cls, plugins: Plugins) -> Index:
        entries = [IndexEntry(e.kind, e.name, e.plugin, e.distribution, e.version, e.summary,
                              _json_safe(e.metadata))
                   for kind in KINDS for e in plugins.catalog.entries(kind)]
        return cls(entries, list(plugins.loaded), list(plugins.failures))

    @classmethod
    def from_json(cls, doc: dict) -> Index:
        return cls([IndexEntry(**e) for e in doc["entries"]],
                   [PluginInfo(**p) for p in doc["loaded"]],
                   [PluginFailure(**f) for f in doc["failures"]])

    def to_json(self) -> dict:
        return {"entries": [asdict(e) for e in self.entries],
                "loaded": [asdict(p) for p in self.loaded],
                "failures": [asdict(f) for f in self.failures]}

    def entries_of(self, kind: str) -> list[IndexEntry]:
        return sorted((e for e in self.entries if e.kind == kind), key=lambda e: e.name)

    def display(self, kind: str, name: str) -> str | None:
        """The entry's ``display`` metadata (e.g. ``ResNet-18``), or None if it has none."""
        for entry in self.entries:
            if entry.kind == kind and entry.name == name:
                return entry.metadata.get("display")
        return None


def load_index(load: Callable[[], Plugins]) -> Index:
    """The cached index if its fingerprint matches; else ``load()`` the plugins, cache, return."""
    fp = fingerprint()
    index = read_index(fp)
    if index is None:
        index = Index.from_plugins(load())
        write_index(index, fp)
    return index


def index_path() -> Path:
    """One file per environment (interpreter prefix + sslbench checkout), so two virtual
    environments sharing a home folder do not evict each other's index."""
    where = f"{sys.prefix}\0{Path(sslbench.__file__).parent}"
    return cache_dir() / f"catalog-{hashlib.sha256(where.encode()).hexdigest()[:12]}.json"


def read_index(fp: str) -> Index | None:
    """The cached index with fingerprint ``fp``, or None (missing, stale, corrupt)."""
    try:
        doc = json.loads(index_path().read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT or doc.get("fingerprint") != fp:
            return None
        return Index.from_json(doc["index"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_index(index: Index, fp: str) -> None:
    """Store the index atomically (temp file + rename); a folder we cannot write is skipped."""
    path = index_path()
    text = json.dumps({"format": FORMAT, "fingerprint": fp, "index": index.to_json()})
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)  # no fsync: a torn cache is only rebuilt
    except OSError:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def fingerprint() -> str:
    """A hash of everything that decides the listing, computed without importing plugins."""
    parts = {
        "format": FORMAT,
        "sslbench": sslbench.__version__,
        "autoload": os.environ.get(AUTOLOAD_ENV, ""),
        "builtin": _package_files(BUILTIN_PACKAGE),
        "core": [_stat(Path(__file__).with_name(n)) for n in ("plugins.py", "catalog.py",
                                                               "index.py")],
        "entry_points": _entry_points(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _package_files(package: str) -> list:
    spec = importlib.util.find_spec(package)  # imports the parent package only
    files = []
    for root in spec.submodule_search_locations or []:
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [_stat(Path(folder) / n) for n in sorted(names) if n.endswith(".py")]
    return files


def _entry_points() -> list:
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        value = getattr(ep, "value", None)
        module = value.split(":")[0].strip() if isinstance(value, str) else None
        found.append([ep.name, value, getattr(dist, "name", None), getattr(dist, "version", None),
                      _stat(_module_file(module)) if module else None])
    return sorted(found, key=json.dumps)


def _module_file(name: str) -> Path | None:
    """Where module ``name`` lives, found without running it (nor its parent packages)."""
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
        for part in rest:
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(
                part, list(spec.submodule_search_locations))
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _stat(path: Path | None) -> list | None:
    try:
        st = path.stat()
    except (OSError, AttributeError):
        return [str(path), None, None] if path else None
    return [str(path), st.st_size, st.st_mtime_ns]


def _json_safe(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata values JSON can carry (display names, recipes); others are left out."""
    safe = {}
    for key, value in metadata.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        safe[key] = value
    return safe
