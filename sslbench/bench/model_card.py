"""The model card (``README.md``) of an exported backbone, generated from its ``model.json``."""

from __future__ import annotations

from typing import Any

from sslbench.bench import torchvision_export

VARIANT = {
    "resnet": "3x3 stride-1 first convolution, no max-pool",
    "densenet": "3x3 stride-1 first convolution, no stem max-pool",
    "efficientnet": "stride 1 in the stem and the first stride-2 block",
    "vgg": "no max-pool after blocks 4 and 5",
    "alexnet": "3x3 stride-1 first convolution, max-pools padded to halve the map",
}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}%"


def _numbers(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def render(meta: dict[str, Any]) -> str:
    """Markdown: what the backbone is, how well it does, what it takes, how to load it."""
    return "\n".join([*_summary(meta), "", *_input(meta), "", *_loading(meta), "",
                      *_provenance(meta)]) + "\n"


def _summary(meta: dict) -> list[str]:
    b, m = meta["backbone"], meta["metrics"]
    options = ", ".join(f"{k}={v}" for k, v in b["options"].items()) or "defaults"
    loss = "–" if m.get("final_loss") is None else f"{m['final_loss']:.4f}"
    return [
        f"# {meta['method']} · {b['name']} · {meta['dataset']}: pretrained backbone",
        "",
        f"The backbone of sslbench run `{meta['run_id']}`, exported with its weights "
        f"(`{meta['weights']['file']}`) and a description (`model.json`).",
        "",
        "| | |",
        "|---|---|",
        f"| method | {meta['method']} |",
        f"| backbone | {b['name']} ({options}); {b['feature_dim']}-d features, "
        f"{b['parameters']:,} parameters |",
        f"| pretraining | {meta['dataset']}, {meta['epochs']} epochs, seed {meta['seed']} |",
        f"| recipe | config hash `{meta['config_hash']}` (the full config is in model.json) |",
        f"| linear probe | Acc@1 {_pct(m.get('linear_acc1'))}, Acc@5 "
        f"{_pct(m.get('linear_acc5'))} |",
        f"| kNN | Acc@1 {_pct(m.get('knn_acc1'))} |",
        f"| final pretraining loss | {loss} |",
        "",
        f"Protocol: {meta['protocol']}.",
    ]


def _input(meta: dict) -> list[str]:
    inp, tv = meta["input"], meta.get("torchvision") or {}
    lines = [
        "## Input and output",
        "",
        f"RGB images as floats in [0, 1] (grey images repeated over 3 channels), resized to "
        f"{inp['image_size']}x{inp['image_size']} ({inp['resize']}), standardised per channel "
        f"with mean {_numbers(inp['mean'])} and std {_numbers(inp['std'])}. Output: "
        f"`[batch, {meta['backbone']['feature_dim']}]` features (the pooled last stage).",
    ]
    if tv.get("model"):
        family = next((k for k in VARIANT if tv["model"].startswith(k)), None)
        stem = (f"the small-image variant ({VARIANT[family]})" if tv["small_image_variant"]
                else "torchvision's own stem (the ImageNet-size variant)")
        lines += ["", f"Stem: {stem}."]
    return lines


def _loading(meta: dict) -> list[str]:
    tv = meta.get("torchvision") or {}
    lines = [
        "## Loading",
        "",
        "With sslbench:",
        "",
        "```python",
        "import sslbench",
        "",
        'backbone = sslbench.load_backbone("path/to/this/folder")  # nn.Module, eval mode',
        "```",
        "",
    ]
    if not tv.get("model"):
        return [*lines, f"No plain torchvision equivalent: {tv.get('reason', 'not stated')}."]
    return [
        *lines,
        "With torchvision alone (the same weights and features; `sslbench.load_backbone(path, "
        "torchvision=True)` does this):",
        "",
        "```python",
        "import torchvision",
        "from safetensors.torch import load_file",
        "from torch import nn",
        "",
        f"model = torchvision.models.{tv['model']}(weights=None)",
        *torchvision_export.as_python(tv),
        f'model.load_state_dict(load_file("{meta["weights"]["file"]}"))',
        "model.eval()",
        "```",
    ]


def _provenance(meta: dict) -> list[str]:
    p = meta["provenance"]
    commit = p.get("git_commit") or "unknown"
    dirty = " (uncommitted changes)" if p.get("git_dirty") else ""
    plugins = ", ".join(f"{k} {v}" for k, v in (p.get("plugins") or {}).items()) or "none"
    return [
        "## Provenance",
        "",
        f"- run `{meta['run_id']}`, recorded {meta['created']}, on {p.get('device_name') or '–'}"
        f" ({meta['cost'].get('precision') or 'fp32'})",
        f"- sslbench {p['sslbench']} (git {commit}{dirty}), torch {p['torch']}, torchvision "
        f"{p['torchvision']}, Python {p['python']}, {p['platform']}",
        f"- third-party plugins: {plugins}",
        f"- checkpoint {meta['checkpoint']['path']} (epoch {meta['checkpoint']['epoch']}); "
        f"weights sha256 `{meta['weights'].get('sha256', '–')}`",
        f"- exported {meta['exported']['at']} by sslbench {meta['exported']['sslbench']}",
    ]
