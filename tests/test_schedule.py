"""The cosine schedule with warm-up at known steps (seed flags: warmup_lr, base_lr, final_lr)."""

import pytest

from sslbench.core.config import ScheduleConfig


def test_cosine_with_warmup_at_known_steps(plugins):
    cosine = plugins.catalog.get("schedulers", "cosine")
    cfg = ScheduleConfig(warmup_epochs=2, warmup_lr=0.0, final_lr=0.001)
    lr = cosine(cfg, base_lr=0.1, total_steps=100, steps_per_epoch=10)
    assert lr(0) == pytest.approx(0.0)
    assert lr(10) == pytest.approx(0.05)  # half-way through the 20 warm-up steps
    assert lr(20) == pytest.approx(0.1)  # peak at the end of warm-up
    assert lr(60) == pytest.approx(0.001 + (0.1 - 0.001) * 0.5)  # half-way through the decay
    assert lr(100) == pytest.approx(0.001)
    assert lr(500) == pytest.approx(0.001)  # clamped after the end


def test_cosine_without_warmup_starts_at_base(plugins):
    cosine = plugins.catalog.get("schedulers", "cosine")
    lr = cosine(ScheduleConfig(), base_lr=0.3, total_steps=10, steps_per_epoch=5)
    assert lr(0) == pytest.approx(0.3)
    assert lr(5) == pytest.approx(0.15)
