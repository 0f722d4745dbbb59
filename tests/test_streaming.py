"""Streamed datasets: image folders and tar shards decoded in DataLoader workers while training.

What a user relies on: the engine trains and evaluates on a split it never holds in memory; a
run stopped mid-epoch resumes to the same weights and loss as one never stopped; the crops do
not depend on how many workers decode them; bad input is one line naming the file.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslbench import StreamSplit
from sslbench.bench.resolve import optimization
from sslbench.builtin.data._sources import FileSource
from sslbench.builtin.data.imagefolder import FolderOptions, stream_imagefolder
from sslbench.builtin.data.imagenet import imagenet100_classes, load_imagenet100, load_shards
from sslbench.cli import app
from sslbench.core.components import MethodTraits
from sslbench.core.config import RunConfig
from sslbench.engine import pretrain as engine
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.engine.pretrain import Context
from sslbench.engine.stream import DecodedViews, EpochBatches, make_loader
from sslbench.errors import DataError, Preempted
from sslbench.testing import TinyConvNet
from tests.streamdata import image_folder, shards

SIZE = 8


@pytest.fixture(autouse=True)
def _no_workers(monkeypatch):
    monkeypatch.setenv("SSLBENCH_WORKERS", "0")  # a test that wants workers sets its own


def tiny_simclr(plugins):
    torch.manual_seed(0)
    cls = plugins.catalog.get("methods", "simclr")
    traits = MethodTraits.of(cls)
    cfg = traits.config(proj_dim=16, proj_hidden_dim=16) if traits.config else None
    return traits.build(cls, TinyConvNet(SIZE), cfg, 2), traits


def context(plugins, traits, out: Path, epochs: int = 2, every: int | None = None) -> Context:
    cfg = RunConfig(method={"name": "simclr"}, backbone={"name": "tiny"},
                    data={"name": "imagefolder"},
                    pretrain={"epochs": epochs, "batch_size": 8, "log_every": 1},
                    runtime={"precision": "fp32", "channels_last": False})
    return Context(cfg, optimization(plugins.catalog, cfg.pretrain), torch.device("cpu"), None,
                   traits.needs_labels, list(traits.views), SIZE, (0.5,) * 3, (0.25,) * 3,
                   checkpoint_path=out / "checkpoint.pt", checkpoint_every=every)


def folder_split(tmp_path) -> StreamSplit:
    data = stream_imagefolder(tmp_path, False, FolderOptions(root=str(image_folder(
        tmp_path / "f")), image_size=SIZE))
    return data.train


def test_imagefolder_streams_file_names_not_pixels(tmp_path):
    data = stream_imagefolder(tmp_path, False, FolderOptions(root=str(image_folder(
        tmp_path / "f", classes=3, train=5, val=2)), image_size=SIZE))
    assert isinstance(data.train, StreamSplit) and isinstance(data.train.source, FileSource)
    assert (len(data.train), len(data.test), data.num_classes, data.image_size) == (15, 6, 3, 8)
    assert data.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.train.source.name(5).endswith("train/c1/00000.jpg")


def test_streamed_pretraining_resumes_exactly_after_a_stop_mid_epoch(plugins, tmp_path):
    split = folder_split(tmp_path)  # 32 images: 4 steps of 8 per epoch
    method, traits = tiny_simclr(plugins)
    straight = engine.pretrain(method, split, context(plugins, traits, tmp_path / "a"))

    stopped, _ = tiny_simclr(plugins)
    stopped.after_step = lambda step, total: step == 5 and os.kill(os.getpid(), signal.SIGTERM)
    ctx = context(plugins, traits, tmp_path / "b")
    with pytest.raises(Preempted, match="terminated by SIGTERM at step 6 of 8"):
        engine.pretrain(stopped, split, ctx)
    state = load_checkpoint(ctx.checkpoint_path)
    assert state["step"] == 6  # mid-way through the second epoch
    resumed, _ = tiny_simclr(plugins)
    result = engine.pretrain(resumed, split, ctx, resume=state)
    assert result.final_loss == straight.final_loss
    for key, value in method.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_crops_do_not_depend_on_the_number_of_workers(tmp_path, monkeypatch):
    split = folder_split(tmp_path)
    views = [(spec, SIZE) for spec in MethodTraits().views for _ in range(spec.count)]
    batches = []
    for workers in ("0", "2"):
        monkeypatch.setenv("SSLBENCH_WORKERS", workers)
        sampler = EpochBatches(len(split), 8, 3, 4)
        sampler.epoch, sampler.first = 1, 2
        loader = make_loader(DecodedViews(split, views, SIZE, 3), sampler, torch.device("cpu"))
        batches.append([(torch.stack(c), y) for c, y, _ in loader])
    assert len(batches[0]) == 2  # steps 2 and 3 of the epoch: the first two skipped
    for (a, ya), (b, yb) in zip(*batches, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)
        assert a.shape == (2, 8, 3, SIZE, SIZE) and a.dtype == torch.uint8
        assert not torch.equal(a[0], a[1])  # two different random views


def test_a_corrupt_jpeg_mid_epoch_stops_with_one_line_naming_it(plugins, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_WORKERS", "2")  # the error crosses from a worker
    split = folder_split(tmp_path)
    bad = Path(split.source.name(11))
    bad.write_bytes(bad.read_bytes()[:40])  # truncated: a header and no image
    method, traits = tiny_simclr(plugins)
    with pytest.raises(DataError) as e:
        engine.pretrain(method, split, context(plugins, traits, tmp_path / "c"))
    assert str(e.value).startswith(f"unreadable or corrupt image {bad}: ")
    assert "\n" not in str(e.value)


def test_shards_written_by_webdataset_stream_with_their_labels(plugins, tmp_path):
    data = load_shards(tmp_path, False, FolderOptions(root=str(shards(tmp_path / "s")),
                                                      image_size=SIZE))
    assert (len(data.train), len(data.test), data.num_classes) == (32, 8, 2)
    assert data.train.labels.tolist() == [i % 2 for i in range(32)]
    assert data.train.source.name(12).endswith("train-000001.tar:s000012")
    method, traits = tiny_simclr(plugins)
    result = engine.pretrain(method, data.train, context(plugins, traits, tmp_path / "d", 1))
    assert result.steps == 4 and result.final_loss > 0


def test_a_shard_without_labels_is_one_line(tmp_path):
    root = shards(tmp_path / "s", labels=False)
    with pytest.raises(DataError, match=r"shard .*train-000000.tar: sample 's000000' has no "
                                        r"\.cls label"):
        load_shards(tmp_path, False, FolderOptions(root=str(root)))


def test_no_shards_says_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match=r"no shards in .*/nothing/train: put train-000000.tar"):
        load_shards(tmp_path, False, FolderOptions(root=str(tmp_path / "nothing")))


def test_imagenet100_is_cmc_s_list_and_names_a_class_missing_from_val(tmp_path):
    classes = imagenet100_classes()
    assert len(classes) == len(set(classes)) == 100
    assert classes[:3] == ["n02869837", "n01749939", "n02488291"] and classes[-1] == "n02090622"
    root = image_folder(tmp_path / "in", train=1, val=1, names=classes)
    data = load_imagenet100(tmp_path, False, FolderOptions(root=str(root)))
    assert (data.num_classes, len(data.train), data.image_size) == (100, 100, 224)
    (root / "val" / classes[7] / "00000.jpg").unlink()
    (root / "val" / classes[7]).rmdir()
    with pytest.raises(DataError, match=f"val/ lacks 1 of the 100 classes, e.g. {classes[7]}"):
        load_imagenet100(tmp_path, False, FolderOptions(root=str(root)))


def cli(*args):
    return CliRunner().invoke(app, ["run", "random", "resnet18", *args, "--quiet", "--device",
                                    "cpu", "--set", "runtime.precision=fp32"])


def test_cli_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    result = cli("imagefolder", "--set", f"data.options.root={tmp_path / 'empty'}")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: image folder {tmp_path / 'empty'} has no images")
    assert result.output.count("\n") == 1


def test_cli_evaluates_a_streamed_folder_and_a_corrupt_image_is_one_line(tmp_path):
    root = image_folder(tmp_path / "f", classes=2, train=8, val=4)
    args = ("imagefolder", "--set", f"data.options.root={root}", "--set",
            f"data.options.image_size={SIZE}", "--set", "eval.linear.epochs=2", "--set",
            "eval.linear.cached=false")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "kNN Acc@1" in result.output
    (root / "val" / "c1" / "00002.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    result = cli(*args)
    assert result.exit_code == 1
    assert result.output.startswith(
        f"error: unreadable or corrupt image {root / 'val' / 'c1' / '00002.jpg'}: ")
    assert result.output.count("\n") == 1


@pytest.mark.slow
def test_a_failed_run_with_workers_exits_at_once(tmp_path):
    """Workers outlive SIGTERM (so a pre-empted run can checkpoint), yet never hold up the exit
    of a process that failed while they were running."""
    import subprocess
    import sys

    root = image_folder(tmp_path / "f", classes=2, train=8, val=4)
    (root / "train" / "c1" / "00003.jpg").write_bytes(b"\xff\xd8\xff broken")
    env = {**os.environ, "SSLBENCH_WORKERS": "2", "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "sslbench", "run", "simclr", "resnet18",
                           "imagefolder", "--set", f"data.options.root={root}", "--set",
                           f"data.options.image_size={SIZE}", "--epochs", "1", "--batch-size",
                           "8", "--quiet", "--device", "cpu", "--set", "runtime.precision=fp32"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=50)
    assert done.returncode == 1
    assert done.stderr.startswith("error: unreadable or corrupt image ") and \
        done.stderr.count("\n") == 1, done.stderr
