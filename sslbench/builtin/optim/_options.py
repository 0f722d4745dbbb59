"""Reading a component's ``options`` table: known keys only, typed like their defaults.

Shared by the optimizer and schedule plugins of this package (a leading underscore: not a
plugin module). The ``ValueError`` it raises becomes a one-line usage error in
``engine.optim`` (``optimizer 'lars': unknown option 'bogus' (allowed: eta)``).
"""

from __future__ import annotations

from typing import Any

KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
         list: "a list"}


def read_options(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``options``; an unknown key or a mistyped value is an error.

    A value is typed like its default (an int is accepted for a float); a default of ``None``
    accepts any value, for the caller to check.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) if defaults else "none"
        raise ValueError(f"unknown option {unknown[0]!r} (allowed: {allowed})")
    values = dict(defaults)
    for key, value in options.items():
        values[key] = _typed(key, value, defaults[key])
    return values


def _typed(key: str, value: Any, default: Any) -> Any:
    if default is None:  # no fixed type: the component checks the value itself
        return value
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise ValueError(f"option {key!r} must be {KINDS.get(kind, kind.__name__)}, got {value!r}")


def positive(values: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if not values[key] > 0:
            raise ValueError(f"option {key!r} must be > 0, got {values[key]!r}")
