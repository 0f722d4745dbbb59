"""Few-label subsets: fixed, class-balanced fractions of a labelled train split.

SimCLR (Chen et al. 2020, §B.5) and BYOL (Grill et al. 2020, §4) report 1% and 10% label
semi-supervised results on ImageNet with the fixed lists of Chen et al.; for the other datasets
sslbench draws its own subsets: the same number of images of every class, chosen by a fixed
seed (``SUBSET_SEED``), so every method and every run seed sees exactly the same images.
"""

from __future__ import annotations

import torch

from sslbench.core.components import Split
from sslbench.errors import UsageError

SUBSET_SEED = 0  # one seed for every run: the subsets are part of the protocol, not the run


def per_class(labels: torch.Tensor, percent: float, num_classes: int) -> int:
    """Images per class in a ``percent`` subset: ``round(percent / 100 * N / C)``, at least 1;
    a subset needing more images of a class than the split holds is a usage error."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes)
    k = max(1, round(percent / 100 * len(labels) / num_classes))
    smallest = int(counts.min())
    if k > smallest:
        cls = int(counts.argmin())
        raise UsageError(f"a {percent:g}% label subset needs {k} images of every class, but "
                         f"class {cls} has only {smallest} in the {len(labels)} train images; "
                         "ask for a smaller percentage")
    return k


def balanced_indices(labels: torch.Tensor, percent: float, num_classes: int,
                     seed: int = SUBSET_SEED) -> torch.Tensor:
    """Sorted indices of the ``percent`` subset: the first ``k`` images of each class in one
    seeded shuffle of the whole split (so a 1% subset is inside the 10% one)."""
    k = per_class(labels, percent, num_classes)
    labels = labels.cpu()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    chosen = [order[shuffled == c][:k] for c in range(num_classes)]
    return torch.cat(chosen).sort().values


def balanced_subset(split: Split, percent: float, num_classes: int) -> Split:
    """The fixed class-balanced ``percent`` subset of ``split`` (see :func:`balanced_indices`)."""
    return split.take(balanced_indices(split.labels, percent, num_classes))
