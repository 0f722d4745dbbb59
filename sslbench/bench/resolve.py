"""Resolve a run's full config from recipes, a config file and overrides, with clear errors."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError
from torch import nn

from sslbench.core import safe_io
from sslbench.core.catalog import Catalog
from sslbench.core.components import method_trait
from sslbench.core.config import RunConfig, deep_merge, dotted_to_nested
from sslbench.engine.optim import build_optimizer, build_schedule
from sslbench.errors import UsageError


def resolve_config(catalog: Catalog, method: str, backbone: str, dataset: str, *,
                   config_file: Path | None = None, sets: list[str] = (),
                   overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults < method "*" recipe < dataset recipe < backbone's dataset recipe < method's
    dataset recipe < file < --set < explicit flags (``overrides``, dotted keys)."""
    method_cls = catalog.get("methods", method)
    factory = catalog.get("backbones", backbone)
    dataset_entry = catalog.entry("datasets", dataset)
    recipes = method_trait(method_cls, "recipes")
    backbone_recipes = catalog.entry("backbones", backbone).metadata.get("recipes") or {}
    names = {"method": {"name": method}, "backbone": {"name": backbone},
             "data": {"name": dataset}}
    layers = [recipes.get("*"), dataset_entry.metadata.get("recipe"),
              backbone_recipes.get(dataset), recipes.get(dataset),
              load_config_file(config_file) if config_file else None, parse_sets(sets),
              *(dotted_to_nested(k, v) for k, v in (overrides or {}).items() if v is not None),
              names]
    raw = deep_merge({}, *layers)
    cfg = validate(RunConfig, raw)
    cfg.method = type(cfg.method)(name=method, **_method_options(method_cls, cfg))
    _check_backbone_options(factory, backbone, cfg)
    for section in (cfg.pretrain, cfg.eval.linear):
        _check_optimization(catalog, section)
    if cfg.pretrain.views is None:
        cfg.pretrain.views = list(method_trait(method_cls, "views"))
    if not cfg.data.hflip:
        cfg.pretrain.views = [v.model_copy(update={"flip": 0.0}) for v in cfg.pretrain.views]
    if not method_trait(method_cls, "pretrains"):
        cfg.pretrain.epochs = 0  # the floor is never trained, whatever a recipe says
    return cfg


def _check_optimization(catalog: Catalog, section) -> None:
    """Build the optimizer and schedule once on a throwaway parameter, so that a bad name or a
    bad optimizer option is a usage error now (and in ``--dry-run``), not after the data loads."""
    optimizer = build_optimizer(catalog, nn.Linear(1, 1), section.optimizer, section.batch_size)
    build_schedule(catalog, section.schedule, optimizer.param_groups[0]["lr"], 1, 1)


def validate(model, raw: dict, prefix: str = ""):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(validation_message(exc, prefix)) from None


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """The first error as one line: ``invalid pretrain.epochs: ... (got -1)``."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in (prefix, *err["loc"]) if part != "")
    got = (f" (got {safe_io.truncate(err['input'])})"
           if err["type"] != "missing" and "input" in err else "")
    if err["type"] == "extra_forbidden":
        return f"unknown setting {loc!r}{got}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid {loc}: {err['msg']}{got}{more}"


def _method_options(method_cls, cfg: RunConfig) -> dict:
    options = dict(cfg.method.model_extra or {})
    config_cls = getattr(method_cls, "Config", None)
    if config_cls is None:
        if options:
            raise UsageError(f"method {cfg.method.name!r} takes no options, got {sorted(options)}")
        return {}
    return validate(config_cls, options, prefix="method").model_dump(mode="json")


def _check_backbone_options(factory, name: str, cfg: RunConfig) -> None:
    options = dict(cfg.backbone.model_extra or {})
    try:
        inspect.signature(factory).bind(32, **options)
    except TypeError as exc:
        raise UsageError(f"backbone {name!r}: {exc}") from None
    if not options:
        return
    # build it once on the meta device (no memory, no compute), so that a bad option value
    # (``--set backbone.width=-1``) is a usage error now, not a failed run after the data loads
    try:
        with torch.device("meta"):
            factory(cfg.data.image_size or 32, **options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"backbone {name!r}: {exc}") from None


def parse_sets(sets: list[str]) -> dict:
    """``["pretrain.epochs=5", "method.temperature=0.2"]`` -> nested dict, values YAML-typed."""
    merged: dict = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise UsageError(f"--set expects section.key=value, got {item!r}")
        try:
            value = safe_io.parse_yaml_value(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        merged = deep_merge(merged, dotted_to_nested(key.strip(), value))
    return merged


def load_config_file(path: Path) -> dict:
    """A TOML, YAML or JSON file whose top level is a table of config sections."""
    data = safe_io.load_document(path, "config file")  # size, depth, aliases, encoding: 1 line
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: expected a table of sections at the top level")
    return data
