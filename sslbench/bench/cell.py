"""A cell of a benchmark, resolved once: what ``run``, ``eval``, ``matrix``, the executors and
the conformance kit all consume.

A :class:`Cell` holds the fully resolved config, the registered components it names (with the
plugin distribution each came from), the method's traits and its validated options, the two
resolved optimizations (pretraining and linear probe), and its identity (run id, config hash,
the third-party plugins it uses). Nothing downstream looks a name up in the catalog again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sslbench.core.catalog import Entry
from sslbench.core.components import DatasetSplits, MethodTraits
from sslbench.core.config import RunConfig
from sslbench.engine.optim import Optimization
from sslbench.engine.pretrain import Context
from sslbench.errors import DataError, SSLBenchError


@dataclass(frozen=True)
class Cell:
    """One resolved method × backbone × dataset × seed (× recipe). Treat it as immutable."""

    config: RunConfig
    method: Entry
    backbone: Entry
    dataset: Entry
    traits: MethodTraits
    method_options: BaseModel | None
    dataset_options: BaseModel | None
    pretraining: Optimization
    linear: Optimization
    plugins: dict[str, str]  # third-party distributions of the components used -> version
    config_hash: str  # the recipe's identity (seeds excluded, plugin versions included)
    finetuning: Optimization | None = None  # eval.finetune's, where a fine-tune is asked for
    eval_dataset: Entry | None = None  # transfer: the dataset evaluated on (eval.dataset)

    @property
    def run_id(self) -> str:
        """``<method>-<backbone>-<dataset>-s<seed>-<hash>``: the same recipe and seed always
        name the same run folder and record."""
        c = self.config
        return (f"{c.method.name}-{c.backbone.name}-{c.data.name}-s{c.seed}-"
                f"{self.config_hash[:8]}")

    @property
    def pretrains(self) -> bool:
        """Whether this cell trains the backbone before evaluating it (never for ``random``)."""
        return self.traits.pretrains and self.config.pretrain.epochs > 0

    @property
    def precision(self) -> str:
        """The precision asked for (``auto`` is decided per device when the run starts)."""
        return self.config.runtime.precision

    @property
    def displays(self) -> dict[str, str]:
        """Display names the table prints, stored in the record (``<kind>_display``)."""
        model = (self.config.backbone.model_extra or {}).get("model")
        backbone = f"{self.backbone.display}:{model}" if isinstance(model, str) else None
        return {"method_display": self.method.display,
                "backbone_display": backbone or self.backbone.display,
                "dataset_display": self.dataset.display}

    def build_backbone(self, image_size: int) -> Any:
        return self.backbone.component(image_size, **(self.config.backbone.model_extra or {}))

    def build_method(self, image_size: int, num_classes: int) -> Any:
        """The backbone from its factory, wrapped by the method with its validated options."""
        return self.traits.build(self.method.component, self.build_backbone(image_size),
                                 self.method_options, num_classes)

    def context(self, device, dtype, image_size: int, mean, std, **extra: Any) -> Context:
        """The pretraining loop's :class:`~sslbench.engine.pretrain.Context` for this cell:
        built objects only (``extra``: reporter, metrics, checkpoint_path, checkpoint_every)."""
        return Context(self.config, self.pretraining, device, dtype, self.traits.needs_labels,
                       self.config.pretrain.views, image_size, mean, std, **extra)

    def load_data(self, data_dir: Path, download: bool) -> DatasetSplits:
        """The dataset's splits; any failure of its factory is one line naming the dataset."""
        return _load(self.dataset, self.dataset_options, data_dir, download)

    def load_eval_data(self, data_dir: Path, download: bool) -> DatasetSplits | None:
        """Transfer: the splits of ``eval.dataset`` (its default options); None without one."""
        if self.eval_dataset is None:
            return None
        model = self.eval_dataset.metadata.get("options")
        return _load(self.eval_dataset, model() if model is not None else None, data_dir,
                     download)


def _load(dataset: Entry, options: BaseModel | None, data_dir: Path,
          download: bool) -> DatasetSplits:
    """A dataset's splits; any failure of its factory is one line naming the dataset."""
    name, factory = dataset.name, dataset.component
    args = (Path(data_dir).expanduser(), download)
    if options is not None:
        args += (options,)
    try:
        data = factory(*args)
    except SSLBenchError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"dataset {name!r} could not be loaded: {exc}") from None
    except Exception as exc:  # a dataset plugin's own bug: still one line, naming it
        raise DataError(f"dataset {name!r} could not be loaded: "
                        f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(data, DatasetSplits):
        raise DataError(f"dataset {name!r} returned {type(data).__name__}, not "
                        "DatasetSplits")
    return data
