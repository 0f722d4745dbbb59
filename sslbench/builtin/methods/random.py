"""The floor of every table: the backbone at its random initialisation, never trained."""

from __future__ import annotations

from torch import nn

from sslbench import StrictModel, hookimpl


class RandomConfig(StrictModel):
    pass


class RandomInit(nn.Module):
    """Untrained backbone (no pretraining): what the evaluation gets for free."""

    Config = RandomConfig
    pretrains = False
    recipes = {"*": {"pretrain": {"epochs": 0}}}

    def __init__(self, backbone: nn.Module, cfg: RandomConfig) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, views, labels=None):
        raise RuntimeError("the random floor is never pretrained")


@hookimpl
def sslbench_register_methods(register):
    register("random", RandomInit, display="Random init")
