"""What ``register(name, component, **metadata)`` accepts, per kind: checked when it is called.

A plugin that registers a lambda as a method, misspells a metadata key (``recipes=`` for a
dataset's ``recipe=``) or gives a key the wrong type fails to load with one line naming the
plugin, the component, the key and the allowed keys; it is not silently half-registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

# kind -> metadata key -> (check, what the check wants)
_TEXT = (lambda v: isinstance(v, str), "a string")
_RECIPE = (lambda v: isinstance(v, dict), "a partial run config dict")
_RECIPES = (lambda v: isinstance(v, dict) and all(isinstance(r, dict) for r in v.values()),
            "a dict {dataset name: partial run config dict}")
_MODEL = (lambda v: isinstance(v, type) and issubclass(v, BaseModel), "a pydantic model class")
_COMMON = {"display": _TEXT, "summary": _TEXT}
METADATA: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "methods": _COMMON,
    # example_options: what the conformance kit builds a backbone with when it needs some
    # (timm's ``model``)
    "backbones": {**_COMMON, "recipes": _RECIPES,
                  "example_options": (lambda v: isinstance(v, dict), "a dict of options")},
    "datasets": {**_COMMON, "recipe": _RECIPE, "options": _MODEL},
    "optimizers": _COMMON,
    "schedulers": _COMMON,
    # requires: the tracker client's module, extra: the pip extra that installs it
    "loggers": {**_COMMON, "requires": _TEXT, "extra": _TEXT},
}


def check_registration(kind: str, name: Any, component: Any, metadata: dict[str, Any]) -> None:
    """Raise ``ValueError`` with one line if this registration breaks the kind's contract."""
    what = kind[:-1]
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"{what} names must be non-empty strings without surrounding blanks, "
                         f"got {name!r}")
    allowed = METADATA.get(kind, _COMMON)
    for key, value in metadata.items():
        if key not in allowed:
            raise ValueError(f"{what} {name!r}: unknown metadata {key!r} "
                             f"(allowed: {', '.join(sorted(allowed))})")
        check, wanted = allowed[key]
        if not check(value):
            raise ValueError(f"{what} {name!r}: metadata {key!r} must be {wanted}, "
                             f"got {type(value).__name__}")
    if kind == "methods":
        from sslbench.core.components import MethodTraits

        try:
            MethodTraits.of(component)
        except ValueError as exc:
            raise ValueError(f"method {name!r}: {exc}") from None
    elif not callable(component) or isinstance(component, type) and issubclass(
            component, BaseModel):
        raise ValueError(f"{what} {name!r} must be a factory function (or class), got "
                         f"{type(component).__name__}")
