"""Any timm model as a backbone: ``timm:<model>`` (e.g. ``timm:convnext_atto``).

timm (Wightman, pytorch-image-models) is an optional extra: ``pip install 'sslbench[timm]'``.
The backbone is registered once, as ``timm``, taking the model's name as its ``model`` option;
the resolver reads ``timm:<model>`` as ``timm`` with ``--set backbone.model=<model>`` (any
``<backbone>:<value>`` does the same for a backbone whose factory takes ``model``), so the
record's config names the model and the cell's identity includes it.

The model is built with random weights (``pretrained=False``: no network) and without its
classifier (``num_classes=0``), timm's own convention for a feature extractor: its forward
returns the pooled ``[B, num_features]`` features. Models that take an input size (ViTs,
Swin) are built for the dataset's image size.
"""

from __future__ import annotations

import difflib
import importlib

from torch import nn

from sslbench import UsageError, hookimpl

EXTRA = "pip install 'sslbench[timm]'"


def import_timm():
    """The ``timm`` module, or a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module("timm")
    except ImportError:
        raise UsageError(f"backbone 'timm' needs the timm package: {EXTRA}") from None


def check_model_name(timm, model: str | None) -> str:
    """``model`` if timm knows it; otherwise a one-line error with did-you-mean."""
    if not model:
        raise UsageError("backbone 'timm' needs a model name: timm:<model>, "
                         "e.g. timm:resnet18 (names: python -c 'import timm; "
                         "print(timm.list_models())')")
    known = timm.list_models()
    if model not in known:
        close = difflib.get_close_matches(model, known, n=3, cutoff=0.6)
        hint = ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
        raise UsageError(f"unknown timm model {model!r}{hint}")
    return model


def timm_backbone(image_size: int, model: str | None = None) -> nn.Module:
    """A timm model without its classifier (random init); ``feature_dim`` = its features."""
    timm = import_timm()
    name = check_model_name(timm, model)
    try:
        net = timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size)
    except TypeError:  # a model without an input-size argument (CNNs)
        net = timm.create_model(name, pretrained=False, num_classes=0)
    net.feature_dim = int(net.num_features)
    return net


@hookimpl
def sslbench_register_backbones(register):
    register("timm", timm_backbone, display="timm", example_options={"model": "resnet10t"},
             summary="any timm model, as timm:<model> (pip install 'sslbench[timm]')")
