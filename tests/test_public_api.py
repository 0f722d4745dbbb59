"""The plugin contract's stable surface: what ``sslbench`` exports, who may import what, and the
fp32 loss guard every built-in loss runs under."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sslbench
from sslbench.core.plugins import load_plugins

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sslbench"

PROMISED = {"hookimpl", "StrictModel", "ViewSpec", "Split", "DatasetSplits", "mlp", "gather",
            "frozen_copy", "ema_update", "cosine_momentum", "RingBuffer", "fp32_loss",
            "full_precision", "OptimizerConfig", "ScheduleConfig", "SSLBenchError",
            "UsageError", "DataError", "TrainingError", "rank", "world_size"}


def test_every_promised_name_is_importable_from_sslbench():
    assert PROMISED <= set(sslbench.__all__)
    for name in sslbench.__all__:
        assert getattr(sslbench, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        sslbench.nope  # noqa: B018


def test_import_sslbench_stays_torch_free():
    code = "import sys, sslbench; sslbench.hookimpl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def _imports(path: Path) -> list[tuple[str, int, int]]:
    """(module, level, line) of every import in ``path``, relative ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, node.lineno))
    return found


def _plugin_sources() -> list[Path]:
    builtin = sorted((PACKAGE / "builtin").rglob("*.py"))
    plugins = [p for p in sorted((ROOT / "plugins").rglob("*.py")) if "tests" not in p.parts]
    return builtin + plugins


@pytest.mark.parametrize("path", _plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_builtins_and_example_plugins_import_only_the_public_api(path):
    """A built-in is a plugin that ships with us: it may import ``sslbench`` itself and its own
    sibling modules (relative imports inside sslbench/builtin), nothing deeper."""
    for module, level, line in _imports(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if level:
            assert PACKAGE / "builtin" in path.parents, f"{where}: relative import"
            continue
        assert module == "sslbench" or not module.startswith("sslbench."), (
            f"{where}: imports {module}; import it from the public `sslbench` API")


LAYERS = {"core": {"engine", "bench", "cli", "builtin"}, "engine": {"bench", "cli", "builtin"},
          "bench": {"cli", "builtin"}}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_downwards(layer):
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module, level, line in _imports(path):
            if level:  # relative: resolve against the file's package
                base = path.relative_to(ROOT).parent.parts[:len(path.relative_to(ROOT).parent.parts)
                                                           - level + 1]
                module = ".".join([*base, module] if module else base)
            parts = module.split(".")
            if parts[0] == "sslbench" and len(parts) > 1:
                assert parts[1] not in LAYERS[layer], (
                    f"{path.relative_to(ROOT)}:{line}: {layer} imports {module}")


def test_fp32_loss_computes_in_float32_under_bf16_autocast():
    @sslbench.fp32_loss
    def logits(a, b):
        return a @ b.T

    a, b = torch.randn(4, 8), torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b.T).dtype == torch.bfloat16  # what .float() alone would have given
        guarded = logits(a.bfloat16(), [b][0])
        assert guarded.dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")  # switched back on after the loss
    assert torch.allclose(guarded, a.bfloat16().float() @ b.T)


def test_every_builtin_loss_returns_float32_under_autocast():
    """The loss every pretraining method returns is float32 even when its backbone, heads and
    embeddings ran in bf16 (checked on the tiny backbone of the conformance kit, or a one-block
    ViT for a method that requires one: MAE)."""
    from sslbench.core.components import MethodTraits
    from sslbench.testing import TinyConvNet

    catalog = load_plugins(autoload=False).catalog
    for entry in catalog.entries("methods"):
        traits = MethodTraits.of(entry.component)
        if not traits.pretrains:
            continue
        options = traits.recipes.get("digits", {}).get("method", {})
        config = traits.config(**options) if traits.config else None
        torch.manual_seed(0)
        backbone = (catalog.get("backbones", "vit_tiny")(8, patch_size=2, depth=1)
                    if traits.backbone_requires else TinyConvNet(8))
        method = traits.build(entry.component, backbone, config, 4)
        method.train()
        if hasattr(method, "on_epoch_start"):
            method.on_epoch_start(0, 2)
        views = [torch.randn(8, 3, max(4, round(8 * v.size)), max(4, round(8 * v.size)))
                 for v in traits.views for _ in range(v.count)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = method(views, torch.arange(8) % 4)
        assert loss.dtype == torch.float32, entry.name
