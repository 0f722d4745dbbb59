"""Every registered method end to end through the CLI, and its loss going down on a fixed batch.

Parametrised over the catalog, so a new method file is tested without editing a list.
"""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from sslbench import hookimpl
from sslbench.bench.resolve import resolve_cell
from sslbench.cli import app
from sslbench.core.components import MethodTraits, Split
from sslbench.core.config import RunConfig, deep_merge
from sslbench.core.plugins import load_plugins
from sslbench.engine.augment import BatchAugment
from sslbench.engine.optim import trainable
from sslbench.engine.pretrain import pretrain
from sslbench.testing import TinyConvNet

CATALOG = load_plugins(autoload=False).catalog
METHODS = CATALOG.names("methods")
PRETRAINING = [m for m in METHODS if MethodTraits.of(CATALOG.get("methods", m)).pretrains]
NEEDS_VIT = [m for m in METHODS if MethodTraits.of(CATALOG.get("methods", m)).backbone_requires]
# one pretraining step of 16 images, in fp32 and without channels_last (both much slower on
# CPU), a small labelled subset for the probes: a run takes a few CPU seconds
FAST = ["--batch-size", "16", "--set", "data.train_subset=16", "--set", "eval.train_subset=64",
        "--set", "eval.linear.epochs=1", "--set", "runtime.precision=fp32",
        "--set", "runtime.channels_last=false"]


class TinyPlugin:
    """A throwaway plugin adding a backbone cheap enough for many steps in a test."""

    @hookimpl
    def sslbench_register_backbones(self, register):
        register("tiny", TinyConvNet)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_runs_end_to_end_on_digits(name, tiny, tmp_path):
    backbone = "vit_tiny" if name in NEEDS_VIT else "resnet18"
    result = CliRunner().invoke(app, ["run", name, backbone, "digits", *tiny, *FAST])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed" and record["method"] == name
    # one tiny epoch of a quarter-width net at 8 px is no result, but the evaluation must see
    # the data: every kNN is above chance (10 balanced classes: 10%; seen 11-38), a trained
    # backbone's clearly (a ViT after one step, MAE's, is no better than the floor yet)
    floor = 10.0 if name == "random" or name in NEEDS_VIT else 15.0
    assert floor < record["metrics"]["knn_acc1"] <= 100.0
    final_loss = record["metrics"]["final_loss"]
    if name in PRETRAINING:
        assert final_loss is not None and math.isfinite(final_loss)


@pytest.mark.parametrize("name", METHODS)
def test_every_recipe_is_a_valid_config(name):
    method_cls = CATALOG.get("methods", name)
    for key, recipe in MethodTraits.of(method_cls).recipes.items():
        dataset, _, backbone = key.partition("/")
        assert dataset == "*" or dataset in CATALOG.names("datasets"), key
        assert not backbone or backbone in CATALOG.names("backbones"), key
        raw = deep_merge({"method": {"name": name}, "backbone": {"name": backbone or "resnet18"},
                          "data": {"name": dataset}}, recipe)
        cfg = RunConfig.model_validate(raw)
        if getattr(method_cls, "Config", None) is not None:
            method_cls.Config.model_validate(cfg.method.model_extra or {})


def small_heads(name: str) -> list[str]:
    """``method.<x>_dim=64`` for every head width a method's config declares (fast steps)."""
    config_cls = getattr(CATALOG.get("methods", name), "Config", None)
    fields = config_cls.model_fields if config_cls is not None else {}
    return [f"method.{field}=64" for field in fields if field.endswith("_dim")]


def build_tiny(name: str, sets=()):
    """The method on a tiny backbone with its digits recipe, narrow heads and batch 32."""
    plugins = load_plugins(autoload=False, extra=[("tests.tiny", TinyPlugin())])
    backbone, depth = ("vit_tiny", ["backbone.depth=1"]) if name in NEEDS_VIT else ("tiny", [])
    cell = resolve_cell(plugins.catalog, name, backbone, "digits",
                        sets=["data.image_size=8", "pretrain.batch_size=32", *small_heads(name),
                              *depth, *sets])
    torch.manual_seed(0)
    return cell, cell.config, cell.build_method(8, 10)


@pytest.mark.parametrize("name", PRETRAINING)
def test_loss_is_finite_and_decreases_on_a_fixed_batch(name):
    _, cfg, method = build_tiny(name)
    images = torch.randint(0, 256, (32, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    labels = torch.arange(32) % 4
    augment = BatchAugment(cfg.pretrain.views, 8, (0.5,), (0.25,),
                           torch.Generator().manual_seed(0), channels_last=False)
    views = augment(images)  # the same views every step
    optimizer = torch.optim.SGD([p for _, p in trainable(method)], lr=0.05, momentum=0.9)
    memory = {k: v.clone() for k, v in method.named_buffers()}

    def loss_on_the_batch():
        # Queues and support sets back to their initial state first: on a fixed batch they
        # would fill with this very batch, whose keys then act as hard negatives and change
        # the task instead of measuring what the weights learnt.
        method.load_state_dict(memory, strict=False)
        torch.manual_seed(0)  # the same random mask each time (MAE)
        return method(views, labels)[0]

    method.train()
    if hasattr(method, "on_epoch_start"):
        method.on_epoch_start(0, 1)
    with torch.no_grad():
        before = loss_on_the_batch().item()
    for step in range(8):
        loss = loss_on_the_batch()
        assert math.isfinite(loss.item()), f"step {step}: {loss.item()}"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if hasattr(method, "after_step"):
            with torch.no_grad():
                method.after_step(step, 8)
    with torch.no_grad():
        after = loss_on_the_batch().item()
    assert math.isfinite(after) and after < before, (before, after)


def pretrain_tiny(name: str, epochs: int):
    """``method`` and a function running the engine's pretraining loop on 64 random images
    (2 steps an epoch, no warm-up so that the first step already moves the weights)."""
    cell, cfg, method = build_tiny(name, [f"pretrain.epochs={epochs}",
                                             "pretrain.schedule.warmup_epochs=0"])
    images = torch.randint(0, 256, (64, 1, 8, 8), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    ctx = cell.context(torch.device("cpu"), None, 8, (0.5,), (0.25,))
    return method, lambda: pretrain(method, Split(images, torch.arange(64) % 10), ctx)


def test_the_engine_runs_byol_ema_after_every_step():
    method, run = pretrain_tiny("byol", epochs=1)
    target = [p.detach().clone() for p in method.target_backbone.parameters()]
    result = run()
    assert result.steps == 2
    after = list(method.target_backbone.parameters())
    assert any(not torch.allclose(p, t) for p, t in zip(after, target, strict=True))
    online = list(method.backbone.parameters())
    # a slow copy, not the online network itself
    assert any(not torch.allclose(p, o) for p, o in zip(after, online, strict=True))


def test_the_engine_keeps_swav_prototypes_frozen_in_the_first_epoch():
    method, run = pretrain_tiny("swav", epochs=1)
    prototypes = method.prototypes.weight.detach().clone()
    backbone = [p.detach().clone() for p in method.backbone.parameters()]
    run()
    assert torch.allclose(method.prototypes.weight, prototypes, atol=1e-6)
    assert any(not torch.allclose(p, b) for p, b in zip(method.backbone.parameters(), backbone,
                                                        strict=True))

    method, run = pretrain_tiny("swav", epochs=2)
    prototypes = method.prototypes.weight.detach().clone()
    run()
    assert not torch.allclose(method.prototypes.weight, prototypes, atol=1e-6)
