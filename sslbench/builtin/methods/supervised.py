"""The ceiling of every table: the same backbone trained with labels and cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, hookimpl


@fp32_loss
def classification_loss(logits, labels, label_smoothing: float = 0.0):
    """Cross-entropy of ``logits`` ``[N, C]`` against ``labels`` ``[N]``, in float32."""
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


class SupervisedConfig(StrictModel):
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class Supervised(nn.Module):
    """Supervised cross-entropy on one lightly augmented view (crop + flip)."""

    Config = SupervisedConfig
    needs_labels = True
    needs_num_classes = True  # its classifier's width
    views = [ViewSpec(count=1, scale=(0.35, 1.0), jitter_p=0.0, grayscale_p=0.0)]
    recipes = {
        # He et al. 2016, §3.4 (SGD, batch 256, lr 0.1 divided by 10 as the error plateaus, wd
        # 1e-4, momentum 0.9), on the epoch schedule of torchvision's reference script
        # (references/classification/train.py defaults: 90 epochs, x 0.1 every 30, 8 GPUs x 32)
        # with its RandomResizedCrop(224) + flip; the paper's colour (PCA) noise is not used.
        # ImageNet-100 has no published supervised recipe in solo-learn: none here
        "imagenet": {"pretrain": {
            "epochs": 90, "batch_size": 256,
            "views": [{"count": 1, "scale": (0.08, 1.0), "jitter_p": 0.0, "grayscale_p": 0.0}],
            "optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 1e-4, "momentum": 0.9},
            "schedule": {"name": "step", "warmup_epochs": 0.0,
                         "options": {"milestones": [30, 60], "gamma": 0.1}}}},
    }

    def __init__(self, backbone: nn.Module, cfg: SupervisedConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, views, labels=None):
        logits = self.classifier(self.backbone(views[0]))
        loss = classification_loss(logits, labels, self.cfg.label_smoothing)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"train_acc": acc}


@hookimpl
def sslbench_register_methods(register):
    register("supervised", Supervised, display="Supervised")
