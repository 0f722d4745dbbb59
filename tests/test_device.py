"""Precision: ``auto`` must not pick bf16 where the CPU only emulates it (many times slower)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from sslbench.cli import app
from sslbench.engine import device as dev

CPU = torch.device("cpu")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_on_cpu_follows_bf16_hardware(monkeypatch, native, expected):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    assert dev.autocast_dtype(CPU, "auto") is expected


@pytest.mark.parametrize("native", [True, False])
def test_explicit_precisions_are_kept(monkeypatch, native):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    assert dev.autocast_dtype(CPU, "bf16") is torch.bfloat16
    assert dev.autocast_dtype(CPU, "fp16") is torch.float16
    assert dev.autocast_dtype(CPU, "fp32") is None


def test_precision_names():
    assert [dev.precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == [
        "fp32", "bf16", "fp16"]


def test_cpu_probe_answers_a_bool():
    assert isinstance(dev.cpu_has_native_bf16(), bool)


def _run(tmp_path, *extra):
    from tests.conftest import TINY

    result = CliRunner().invoke(app, ["run", "supervised", "resnet18", "digits", *TINY, *extra])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    return result.output, json.loads(path.read_text())


@pytest.mark.slow
def test_record_and_summary_name_the_precision_auto_chose(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    output, record = _run(tmp_path)
    assert record["cost"]["precision"] == "fp32"
    assert "fp32)" in output and "no bf16 hardware" not in output
    # the record says which CPU: model and vector unit, the bf16 flag absent here
    device_name = record["provenance"]["device_name"]
    assert device_name.endswith(f"({torch.backends.cpu.get_cpu_capability()})")


@pytest.mark.parametrize("native, device, dtype, warns", [
    (False, "cpu", torch.bfloat16, True), (True, "cpu", torch.bfloat16, False),
    (False, "cpu", None, False), (False, "cuda", torch.bfloat16, False)])
def test_bf16_asked_of_an_emulating_cpu_is_named(monkeypatch, native, device, dtype, warns):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    line = dev.emulated_bf16_warning(torch.device(device), dtype)
    assert (line is not None) == warns
    if warns:
        assert "no bf16 hardware" in line and "fp32" in line
