"""The test split, the CV folds and the nested training fractions (paper §3.2: 90 % / 10 %, 9 folds).

Index functions (:func:`split_indices`, :func:`kfold_indices`, :func:`train_subset`)
are what :func:`leanecd.train.fit` draws; :class:`Split` and :func:`split_for_ids`
say the same in compound ids, for the baselines. No torch here: the baselines and the
tables use this module without the training stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import LeanECDError
from .settings import SETTINGS

__all__ = ["TEST_FRACTION", "split_indices", "kfold_indices", "check_train_fraction", "train_subset", "Split",
           "split_for_ids"]

#: Share of the compounds held out as the test set (paper §3.2: 10 %).
TEST_FRACTION = 0.1


def split_indices(n: int, seed: int = SETTINGS.seed,
                  test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train+CV, test) index arrays, sorted, by a fixed seed.

    The test set holds ``round(test_fraction * n)`` samples (10 % by default).
    """
    if n < 2:
        raise LeanECDError(f"need at least 2 samples to split, got {n}")
    n_test = int(round(test_fraction * n))
    n_test = min(max(n_test, 1 if test_fraction > 0 else 0), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def kfold_indices(indices: Sequence[int] | int, folds: int,
                  seed: int = SETTINGS.seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold partition of ``indices`` (or ``range(indices)``): list of (train, val) pairs.

    Validation sets are disjoint, cover ``indices`` exactly once, and differ in size by
    at most one; the assignment is shuffled by ``seed``.
    """
    idx = np.arange(indices) if isinstance(indices, int | np.integer) else np.asarray(indices, dtype=np.int64)
    if folds < 2 or folds > len(idx):
        raise LeanECDError(f"folds must be between 2 and the number of samples ({len(idx)}), not {folds}")
    perm = np.random.default_rng(seed + 7919).permutation(len(idx))
    chunks = np.array_split(perm, folds)
    out = []
    for k in range(folds):
        val = np.sort(idx[chunks[k]])
        train = np.sort(idx[np.concatenate([chunks[j] for j in range(folds) if j != k])])
        out.append((train, val))
    return out


def check_train_fraction(fraction) -> float:
    """``fraction`` as a float if 0 < fraction ≤ 1, else :class:`LeanECDError`."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.floating) or not 0 < fraction <= 1:
        raise LeanECDError(f"train_fraction must be a number with 0 < train_fraction <= 1, not {fraction!r}")
    return float(fraction)


def train_subset(trainval: Sequence[int], fraction: float, seed: int = SETTINGS.seed) -> np.ndarray:
    """The first ``round(fraction * len(trainval))`` of a seeded permutation of ``trainval``, sorted.

    The permutation depends on ``seed`` and ``trainval`` only, so the subsets are
    nested: a smaller fraction's subset lies inside a larger one's. ``fraction = 1``
    returns ``trainval`` itself. At least 2 samples must remain.
    """
    idx = np.asarray(trainval, dtype=np.int64)
    if check_train_fraction(fraction) == 1:
        return idx
    n_keep = int(round(fraction * len(idx)))
    if n_keep < 2:
        raise LeanECDError(f"train_fraction {fraction} of {len(idx)} train+CV samples leaves {n_keep}; "
                           "need at least 2 training samples")
    perm = np.random.default_rng(seed + 1_299_709).permutation(len(idx))
    return np.sort(idx[perm[:n_keep]])


@dataclass
class Split:
    """Which compounds are train+CV and test, and the CV folds (lists of ids).

    ``order``: the ids in the order :func:`split_indices` saw them (needed to
    reproduce the split with :func:`leanecd.train.fit`), ``None`` if unknown.
    ``source``: a human-readable line saying where the split came from.
    """

    trainval: list[str]
    test: list[str]
    folds: list[list[str]] = field(default_factory=list)
    seed: int = SETTINGS.seed
    test_fraction: float = TEST_FRACTION
    order: list[str] | None = None
    source: str = ""
    reference: str | None = None

    def __post_init__(self):
        overlap = set(self.trainval) & set(self.test)
        if overlap:
            raise LeanECDError(f"split: ids both in train and test: {sorted(overlap)[:5]}")
        if self.folds:
            flat = [i for f in self.folds for i in f]
            if sorted(flat) != sorted(self.trainval):
                raise LeanECDError("split: the CV folds do not partition the train+CV ids")

    @property
    def ids(self) -> list[str]:
        return list(self.order) if self.order is not None else list(self.trainval) + list(self.test)


def split_for_ids(ids: Sequence[str], seed: int = SETTINGS.seed, test_fraction: float = TEST_FRACTION,
                  folds: int = 0) -> Split:
    """The split :func:`leanecd.train.fit` makes for ``ids`` in this order (no sample subset)."""
    ids = [str(i) for i in ids]
    trainval, test = split_indices(len(ids), seed, test_fraction)
    fold_ids = [[ids[i] for i in va] for _, va in kfold_indices(trainval, folds, seed)] if folds else []
    return Split(trainval=[ids[i] for i in trainval], test=[ids[i] for i in test], folds=fold_ids, seed=seed,
                 test_fraction=test_fraction, order=ids,
                 source=f"leanecd.splits.split_indices(seed={seed}, test_fraction={test_fraction}) on {len(ids)} ids")
