"""The conformance kit catches the bugs it promises to catch, and passes correct components.

Each broken toy below differs from a correct one by the one bug named in its docstring.
"""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslbench.core.components import DatasetSplits, Split
from sslbench.testing import (
    TinyConvNet,
    check_backbone,
    check_dataset,
    check_method,
    check_optimizer,
)


class Siamese(nn.Module):
    """SimSiam in miniature: projector, predictor, stop-gradient on the target branch."""

    stop_gradient_at = "predictor"

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projector = nn.Linear(backbone.feature_dim, 8)
        self.predictor = nn.Linear(8, 8)

    def target(self, z):
        return z.detach()

    def forward(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = -(F.cosine_similarity(p1, self.target(z2)).mean()
                 + F.cosine_similarity(p2, self.target(z1)).mean()) / 2
        return loss, {"cos": -loss.detach()}


class NoStopGradient(Siamese):
    """The stop-gradient is missing: z flows back through both branches."""

    def target(self, z):
        return z


class Standardised(Siamese):
    """Standardises embeddings by their batch std without an epsilon: NaN on a constant batch."""

    def target(self, z):
        return ((z - z.mean(0)) / z.std(0)).detach()


class MeanTeacher(nn.Module):
    """BYOL in miniature: an online network, and a target that follows it by EMA."""

    freeze_target = True

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, 8)
        self.predictor = nn.Linear(8, 8)
        self.target = copy.deepcopy(nn.Sequential(backbone, self.head))
        if self.freeze_target:
            self.target.requires_grad_(False)

    def forward(self, views, labels=None):
        p = self.predictor(self.head(self.backbone(views[0])))
        with torch.no_grad():
            t = self.target(views[1])
        return (p - t).square().mean(), {}

    def after_step(self, step, total_steps):
        online = nn.Sequential(self.backbone, self.head).parameters()
        for tp, op in zip(self.target.parameters(), online, strict=True):
            tp.mul_(0.9).add_(op.detach(), alpha=0.1)


class TrainableTarget(MeanTeacher):
    """Forgets requires_grad_(False) on the target: the optimizer would update it too."""

    freeze_target = False


def test_correct_toys_pass():
    check_method(Siamese)
    check_method(MeanTeacher)


def test_catches_a_missing_stop_gradient():
    with pytest.raises(AssertionError, match=r"check_method\('NoStopGradient'\) stop-gradient: "
                                             r"backbone parameter .* bypasses 'predictor'"):
        check_method(NoStopGradient)


def test_catches_nan_on_a_constant_batch():
    with pytest.raises(AssertionError, match=r"constant batch: the loss is not finite \(nan\)"):
        check_method(Standardised)


def test_catches_a_target_network_updated_by_the_optimizer():
    with pytest.raises(AssertionError, match=r"targets: momentum target 'target\.\S+' is "
                                             r"trainable \(requires_grad=True\)"):
        check_method(TrainableTarget)


def test_catches_a_backbone_without_gradient():
    class FrozenFeatures(Siamese):
        """Runs the backbone under no_grad: only the heads would ever learn."""

        def forward(self, views, labels=None):
            with torch.no_grad():
                h = [self.backbone(v) for v in views]
            z1, z2 = (self.projector(x) for x in h)
            return -F.cosine_similarity(self.predictor(z1), z2.detach()).mean(), {}

    with pytest.raises(AssertionError, match="no gradient reaches backbone parameter 'body.0"):
        check_method(FrozenFeatures)


def test_catches_a_non_scalar_loss_and_non_determinism():
    class PerSample(Siamese):
        def forward(self, views, labels=None):
            z = self.projector(self.backbone(views[0]))
            return z.square().mean(1), {}

    class Noisy(Siamese):
        def forward(self, views, labels=None):
            loss, logs = super().forward(views, labels)
            return loss + int.from_bytes(os.urandom(4), "little") / 2**32, logs

    with pytest.raises(AssertionError, match=r"loss must be a scalar tensor, got torch.Size\(\[8"):
        check_method(PerSample)
    with pytest.raises(AssertionError, match="determinism: the same seed gave two losses"):
        check_method(Noisy)


def test_catches_state_outside_the_state_dict():
    class Forgetful(Siamese):
        """Keeps a running scale as a plain attribute: a checkpoint would lose it."""

        def __init__(self, backbone):
            super().__init__(backbone)
            self.scale = torch.ones(())

        def forward(self, views, labels=None):
            loss, logs = super().forward(views, labels)
            return loss * self.scale, logs

        def after_step(self, step, total_steps):
            self.scale = self.scale * 2

    with pytest.raises(AssertionError, match="state_dict round-trip: the reloaded method gives"):
        check_method(Forgetful)


def test_backbone_with_a_wrong_feature_dim():
    def liar(image_size):
        model = TinyConvNet(image_size)
        model.feature_dim = 32
        return model

    check_backbone(TinyConvNet)
    with pytest.raises(AssertionError, match=r"forward: expected features of shape \(2, 32\), "
                                             r"got \(2, 16\)"):
        check_backbone(liar)


def test_optimizer_that_ignores_the_schedule():
    class FixedLR(torch.optim.SGD):
        def step(self, closure=None):
            for group in self.param_groups:
                group["lr"] = 0.01  # overrides what the schedule set
            return super().step(closure)

    def fixed(named_params, cfg):
        return FixedLR([p for _, p in named_params], lr=cfg.lr)

    with pytest.raises(AssertionError, match="lr: a step with the lr set to 0 changed"):
        check_optimizer(fixed)


def test_dataset_with_labels_out_of_range(tmp_path):
    def make(split_labels):
        def factory(data_dir, download):
            images = torch.zeros(4, 1, 6, 6, dtype=torch.uint8)
            images[1] = 255
            split = Split(images, torch.tensor(split_labels))
            return DatasetSplits(split, split, num_classes=2, mean=(0.5,), std=(0.5,))
        return factory

    check_dataset(make([0, 1, 0, 1]), tmp_path)
    with pytest.raises(AssertionError, match=r"train: labels must lie in \[0, 2\), got \[0, 2\]"):
        check_dataset(make([0, 1, 2, 1]), tmp_path)
