"""Published ImageNet-100 and ImageNet recipes, written once as sslbench config layers.

ImageNet-100: solo-learn (da Costa et al. 2022, "solo-learn: A Library of Self-supervised
Methods for Visual Representation Learning", JMLR 23(56); https://github.com/vturrisi/solo-learn
at commit 9187ea39c2c3f43c455ab06664d2b019a9802954) trains a ResNet-18 for 400 epochs with
``scripts/pretrain/imagenet-100/<method>.yaml``. What every one of those files shares, and how
it reads in sslbench's terms:

* ``batch_size: 128`` on ``devices: [0, 1]``: a global batch of 256 (sslbench's batch is global);
* solo-learn multiplies the yaml lr by ``batch_size * devices * num_nodes / 256``
  (``solo/args/pretrain.py``), so the yaml lr is the lr at batch 256; here it is ``lr`` with
  ``scale_lr_with_batch``, which gives the same lr at batch 256 and solo-learn's linear scaling
  if ``--batch-size`` changes;
* ``warmup_cosine`` with solo-learn's defaults (``solo/methods/base.py``): 10 warm-up epochs from
  ``warmup_start_lr`` 3e-5 (an absolute lr, not scaled with the batch), then cosine to
  ``min_lr`` 0, per step;
* LARS with ``eta: 0.02, clip_lr: True, exclude_bias_n_norm: True``: sslbench's ``lars`` with
  ``eta`` 0.02, ``clip_lr`` and biases and 1-d parameters excluded (no decay, no trust ratio);
  SGD's momentum is solo-learn's default 0.9;
* the view pipelines of ``scripts/pretrain/imagenet-100/augmentations/*.yaml`` (the same files
  as ``scripts/pretrain/imagenet/augmentations/``): below, as :class:`ViewSpec` dumps. Blur
  sigma (0.1, 2) and the flip p 0.5 are sslbench's defaults too.

Not expressed: DALI decoding, 16-bit mixed precision (sslbench picks its precision from the
hardware), the online classifier's own lr, and anything listed where a method uses its recipe.

ImageNet (ResNet-50): solo-learn's ``scripts/pretrain/imagenet/*.yaml`` where it has one
(BYOL, Barlow Twins, MoCo v2+, MAE), else the method's paper or its authors' published command:
each method's recipe cites its source.
"""

from __future__ import annotations

from typing import Any

from sslbench import ViewSpec

SOLO_LEARN_COMMIT = "9187ea39c2c3f43c455ab06664d2b019a9802954"
SOLO_WARMUP_START_LR = 3e-5  # solo/methods/base.py: scheduler.warmup_start_lr
SOLO_LARS = {"eta": 0.02, "clip_lr": True, "exclude_bias_and_norm": True}


def _view(count: int = 1, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), blur_p: float = 0.0,
          solarize_p: float = 0.0, jitter_p: float = 0.8, grayscale_p: float = 0.2) -> dict:
    return ViewSpec(count=count, scale=scale, jitter=jitter, jitter_p=jitter_p,
                    grayscale_p=grayscale_p, blur_p=blur_p, solarize_p=solarize_p).model_dump()


# augmentations/asymmetric.yaml (BYOL's): one view always blurred, one rarely, sometimes solarized
ASYMMETRIC = [_view(blur_p=1.0), _view(blur_p=0.1, solarize_p=0.2)]
# augmentations/symmetric.yaml (SimCLR's strength-1 colour distortion)
SYMMETRIC = [_view(count=2, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)]
# augmentations/symmetric_weak.yaml (MoCo v2's)
SYMMETRIC_WEAK = [_view(count=2, jitter=(0.4, 0.4, 0.4, 0.1), blur_p=0.5)]
# augmentations/vicreg.yaml (also inline in imagenet-100/vicreg.yaml)
VICREG = [_view(count=2, scale=(0.2, 1.0), blur_p=0.5, solarize_p=0.1)]
# augmentations/reconstruction.yaml (MAE's): crop and flip only
RECONSTRUCTION = [_view(jitter_p=0.0, grayscale_p=0.0)]


def solo_optimizer(name: str, lr: float, weight_decay: float, **options: Any) -> dict:
    """solo-learn's ``optimizer`` block: ``lr`` is its yaml lr, the lr at batch 256."""
    if name == "lars":
        options = {**SOLO_LARS, **options}
    return {"name": name, "lr": lr, "scale_lr_with_batch": True, "weight_decay": weight_decay,
            "momentum": 0.9, "options": options}


def solo_pretrain(optimizer: dict, views: list[dict], *, epochs: int = 400, batch_size: int = 256,
                  warmup_lr: float = SOLO_WARMUP_START_LR) -> dict:
    """solo-learn's pretraining section: ``warmup_cosine`` with its defaults."""
    return {"epochs": epochs, "batch_size": batch_size, "views": views, "optimizer": optimizer,
            "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": warmup_lr,
                         "final_lr": 0.0}}


def solo_imagenet100(optimizer: dict, views: list[dict], method: dict | None = None,
                     linear_lr: float | None = None, **pretrain: Any) -> dict:
    """A method's ``imagenet100`` recipe: scripts/pretrain/imagenet-100/<method>.yaml (ResNet-18,
    400 epochs, batch 256), and ``linear_lr`` from scripts/linear/imagenet-100/<method>.yaml
    (the rest of that protocol is the dataset's recipe)."""
    recipe: dict = {"method": dict(method or {}),
                    "pretrain": solo_pretrain(optimizer, views, **pretrain)}
    if linear_lr is not None:
        recipe["eval"] = {"linear": {"optimizer": {"name": "sgd", "lr": linear_lr,
                                                   "weight_decay": 0.0, "momentum": 0.9}}}
    return recipe


def paper_pretrain(optimizer: dict, *, epochs: int, batch_size: int, warmup_epochs: float = 10,
                   warmup_lr: float = 0.0, final_lr: float = 0.0,
                   views: list[dict] | None = None) -> dict:
    """A pretraining section from a paper: linear warm-up, then cosine decay (per step)."""
    section = {"epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
               "schedule": {"name": "cosine", "warmup_epochs": warmup_epochs,
                            "warmup_lr": warmup_lr, "final_lr": final_lr}}
    if views is not None:
        section["views"] = views
    return section
