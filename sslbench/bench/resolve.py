"""Resolve a cell once: recipes, a config file and overrides into one :class:`Cell`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from sslbench.bench.cell import Cell
from sslbench.core import safe_io
from sslbench.core.catalog import Catalog
from sslbench.core.components import MethodTraits
from sslbench.core.config import ComponentConfig, RunConfig, deep_merge, dotted_to_nested
from sslbench.engine.optim import Optimization
from sslbench.errors import UsageError


class IncompatibleBackbone(UsageError):
    """The method requires of its backbone something this one lacks (MAE on a CNN)."""


def resolve_cell(catalog: Catalog, method: str, backbone: str, dataset: str, *,
                 config_file: Path | None = None, sets: list[str] = (),
                 overrides: dict[str, Any] | None = None) -> Cell:
    """Defaults < method "*" recipe < dataset recipe < backbone's dataset recipe < method's
    ``"<dataset>/<backbone>"`` recipe, else its dataset recipe < file < --set < explicit flags
    (``overrides``, dotted keys)."""
    method_entry = catalog.entry("methods", method)
    backbone, model = split_backbone(backbone)
    backbone_entry = catalog.entry("backbones", backbone)
    dataset_entry = catalog.entry("datasets", dataset)
    recipes = MethodTraits.of(method_entry.component).recipes
    backbone_recipes = backbone_entry.metadata.get("recipes") or {}
    names = {"method": {"name": method}, "backbone": {"name": backbone, **model},
             "data": {"name": dataset}}
    layers = [recipes.get("*"), dataset_entry.metadata.get("recipe"),
              backbone_recipes.get(dataset),
              # a method's recipe for one backbone on a dataset (a ViT recipe beside the ResNet
              # one) replaces its recipe for the dataset: the two are different papers' settings
              recipes.get(f"{dataset}/{backbone}", recipes.get(dataset)),
              load_config_file(config_file) if config_file else None, parse_sets(sets),
              *(dotted_to_nested(k, v) for k, v in (overrides or {}).items() if v is not None),
              names]
    cfg = validate(RunConfig, deep_merge({}, *layers))
    traits = MethodTraits.of(method_entry.component)
    if cfg.pretrain.views is None:
        cfg.pretrain.views = list(traits.views)
    if not cfg.data.hflip:
        cfg.pretrain.views = [v.model_copy(update={"flip": 0.0}) for v in cfg.pretrain.views]
    if not traits.pretrains:
        cfg.pretrain.epochs = 0  # the floor is never trained, whatever a recipe says
    return cell_from_config(catalog, cfg)


def split_backbone(name: str) -> tuple[str, dict]:
    """``"timm:convnext_atto"`` -> ``("timm", {"model": "convnext_atto"})``: a backbone family
    registered once, its member named after the colon (the factory's ``model`` option)."""
    family, sep, model = name.partition(":")
    if not sep:
        return name, {}
    if not family or not model:
        raise UsageError(f"backbone {name!r}: expected <backbone>:<model>, e.g. timm:resnet18")
    return family, {"model": model}


def resolve_config(catalog: Catalog, method: str, backbone: str, dataset: str,
                   **layers: Any) -> RunConfig:
    """The resolved config alone (what ``--dry-run`` prints): :func:`resolve_cell`'s."""
    return resolve_cell(catalog, method, backbone, dataset, **layers).config


def cell_from_config(catalog: Catalog, cfg: RunConfig) -> Cell:
    """The :class:`Cell` of an already resolved config (a matrix worker, ``eval``, resume):
    components looked up, options validated once, optimizations built and checked."""
    cfg = cfg.model_copy(deep=True)
    method = catalog.entry("methods", cfg.method.name)
    backbone = catalog.entry("backbones", cfg.backbone.name)
    dataset = catalog.entry("datasets", cfg.data.name)
    traits = MethodTraits.of(method.component)
    method_options = _options(traits.config, cfg.method.model_extra or {}, "method",
                              f"method {method.name!r}")
    cfg.method = ComponentConfig(name=method.name, **(
        method_options.model_dump(mode="json") if method_options is not None else {}))
    dataset_options = _options(dataset.metadata.get("options"), cfg.data.options,
                               "data.options", f"dataset {dataset.name!r}")
    _check_backbone(backbone.component, backbone.name, cfg, traits, method.name)
    pretraining = optimization(catalog, cfg.pretrain)
    linear = optimization(catalog, cfg.eval.linear)
    sections = [cfg.pretrain, cfg.eval.linear]
    finetuning = None
    if cfg.eval.few_label.finetune and not wants_finetune(cfg):
        raise UsageError("eval.few_label.finetune uses eval.finetune's recipe: set "
                         "eval.finetune.epochs > 0 too")
    if wants_finetune(cfg):
        _check_finetune(traits, method.name)
        finetuning = optimization(catalog, cfg.eval.finetune)
        sections.append(cfg.eval.finetune)
    eval_dataset = (catalog.entry("datasets", cfg.eval.dataset)
                    if cfg.eval.dataset not in (None, dataset.name) else None)
    used = [method, backbone, dataset, *([eval_dataset] if eval_dataset else []), *(
        entry for section in sections for entry in (
            catalog.entry("optimizers", section.optimizer.name),
            catalog.entry("schedulers", section.schedule.name)))]
    plugins = {e.distribution: e.version or "" for e in used if e.distribution}
    return Cell(cfg, method, backbone, dataset, traits, method_options, dataset_options,
                pretraining, linear, dict(sorted(plugins.items())), cfg.hash(plugins=plugins),
                finetuning, eval_dataset)


def wants_finetune(cfg: RunConfig) -> bool:
    """Whether the cell fine-tunes (on the train split, or on its few-label subsets)."""
    return cfg.eval.finetune.epochs > 0


def _check_finetune(traits, name: str) -> None:
    if not traits.pretrains:
        raise UsageError(f"cannot fine-tune the {name!r} row: it is the untrained floor, and "
                         "fine-tuning it is supervised training from scratch (that row is "
                         "'supervised'); set eval.finetune.epochs=0")


def _options(model, options: dict, prefix: str, what: str):
    """``options`` validated by the component's options ``model`` (None: it takes none)."""
    if model is None:
        if options:
            raise UsageError(f"{what} takes no options, got {sorted(options)}")
        return None
    return validate(model, dict(options), prefix=prefix)


def optimization(catalog: Catalog, section) -> Optimization:
    """The :class:`Optimization` of a ``pretrain`` or ``eval.linear`` section, checked."""
    optimization = Optimization(
        catalog.get("optimizers", section.optimizer.name), section.optimizer,
        catalog.get("schedulers", section.schedule.name), section.schedule, section.batch_size)
    optimization.check()
    return optimization


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


def _check_backbone(factory, name: str, cfg: RunConfig, traits: MethodTraits,
                    method: str) -> None:
    """Options bound to the factory's signature, then the backbone built once on the meta
    device (no memory, no compute), so that a bad option value (``--set backbone.width=-1``),
    an image size a ViT's patch does not divide (the factory raises ``UsageError``), or a
    backbone the method cannot use (MAE on a CNN) is a usage error now, not a failed run after
    the data loads. A factory that fails without options is left to fail in the run."""
    options = dict(cfg.backbone.model_extra or {})
    try:
        inspect.signature(factory).bind(32, **options)
    except TypeError as exc:
        raise UsageError(f"backbone {name!r}: {exc}") from None
    try:
        with torch.device("meta"):
            model = factory(cfg.data.image_size or 32, **options)
    except UsageError as exc:
        raise UsageError(f"backbone {name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        if options:  # the user's values are wrong
            raise UsageError(f"backbone {name!r}: {exc}") from None
        return  # a broken factory, not bad input: the run fails with its own message
    missing = [attr for attr in traits.backbone_requires if not hasattr(model, attr)]
    if missing:
        raise IncompatibleBackbone(f"method {method!r} needs a backbone with {missing[0]!r} (a "
                         f"ViT: vit_tiny, vit_small); {name!r} has none")


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
