"""The catalog: the only list of what exists (name -> component), with provenance and typo help."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from sslbench.errors import UsageError

KINDS = ("methods", "backbones", "optimizers", "schedulers", "datasets", "loggers")


@dataclass(frozen=True)
class Entry:
    """One registered component and where it came from."""

    kind: str
    name: str
    component: Any
    plugin: str
    distribution: str | None = None
    version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The name tables print (``display=`` metadata), else the registered name."""
        return self.metadata.get("display") or self.name

    @property
    def summary(self) -> str:
        doc = (getattr(self.component, "__doc__", None) or "").strip()
        return self.metadata.get("summary") or (doc.splitlines()[0] if doc else "")


class DuplicateNameError(ValueError):
    """A plugin tried to register a name another plugin already owns."""


class Catalog:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add_all(self, entries: list[Entry]) -> None:
        """Add a plugin's entries, all or none: a name taken by another plugin adds nothing."""
        seen: dict[tuple[str, str], Entry] = {}
        for entry in entries:
            key = (entry.kind, entry.name)
            existing = self._entries[entry.kind].get(entry.name) or seen.get(key)
            if existing is not None:
                raise DuplicateNameError(
                    f"{entry.kind[:-1]} {entry.name!r} is registered by both "
                    f"{existing.plugin!r} and {entry.plugin!r}"
                )
            seen[key] = entry
        for entry in entries:
            self._entries[entry.kind][entry.name] = entry

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[Entry]:
        return [self._entries[kind][name] for name in self.names(kind)]

    def entry(self, kind: str, name: str) -> Entry:
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UsageError(unknown_name_message(kind[:-1], name, self.names(kind))) from None

    def get(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).component

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._entries[kind]


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    """``unknown method 'simsaim'; did you mean 'simsiam'?`` (or the list of known names)."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        hint = "known: " + ", ".join(known) if known else "none are registered"
    return f"unknown {what} {name!r}; {hint}"
