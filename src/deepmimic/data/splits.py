"""Labelled/unlabelled splits (DeepMimic paper, section 3.1) and the unbalanced
student sets of section 4.3.

The unlabelled part is an :class:`UnlabeledImages`: it carries images and no labels,
so no code path can hand labels to student training by accident. The hidden labels
(for analysis only: class histograms, the one-hot comparison of section 4.2) are
reachable through the explicit :meth:`UnlabeledImages.reveal_labels_for_analysis`.
Every split records which source indices went where, so a run can be audited and
regenerated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from deepmimic.data.dataset import ImageDataset
from deepmimic.data.rows import Images, cat_rows, take_rows
from deepmimic.data.sources._common import stratified_split
from deepmimic.errors import DataError


class PoolTooSmallError(DataError):
    """The out-of-domain pool has fewer images than a fraction asks for (DeepMimic Table 4 at full scale)."""

    def __init__(self, message: str, *, largest_fraction: float) -> None:
        super().__init__(message)
        self.largest_fraction = largest_fraction


@dataclass(frozen=True, eq=False)
class UnlabeledImages:
    """Images without labels: what a student is allowed to see.

    Attributes:
        images: uint8 (N, C, H, W): a tensor, or a :class:`~deepmimic.data.rows.RowTable`
            (a streamed store: selections compose index arrays, no rows are copied).
        source: per-row origin tag, e.g. ``"mnist/train"`` or ``"ood"``; a tuple of
            (tag, index-in-that-source) pairs would be large, so we keep ``origin``.
        origin: int64 (N,) index of each row in its source dataset.
        is_out_of_domain: bool (N,) True for rows added from another dataset.
    """

    images: Images
    origin: torch.Tensor
    is_out_of_domain: torch.Tensor
    name: str = "unlabeled"
    _hidden_labels: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.origin.shape != (n,) or self.is_out_of_domain.shape != (n,):
            raise DataError(f"{self.name}: origin/out-of-domain markers must have {n} rows")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def in_shape(self) -> tuple[int, int, int]:
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def reveal_labels_for_analysis(self) -> torch.Tensor:
        """The true labels, for analysis only (never for training a student).

        Out-of-domain rows have label -1 (they belong to no class of the task).
        """
        if self._hidden_labels is None:
            raise DataError(f"{self.name}: no hidden labels were kept for this set")
        return self._hidden_labels

    def select(self, keep: torch.Tensor) -> UnlabeledImages:
        """Rows ``keep`` (int64 indices) as a new set."""
        hidden = None if self._hidden_labels is None else self._hidden_labels[keep]
        images = take_rows(self.images, keep)
        return UnlabeledImages(images, self.origin[keep], self.is_out_of_domain[keep], self.name, hidden)


@dataclass(frozen=True)
class MentorStudentSplit:
    """The result of :func:`split_labeled_unlabeled`.

    ``labeled_indices`` and ``unlabeled_indices`` index the source training set; they are
    disjoint and together cover it.
    """

    labeled: ImageDataset
    unlabeled: UnlabeledImages
    labeled_indices: torch.Tensor
    unlabeled_indices: torch.Tensor
    seed: int
    labeled_fraction: float

    def record(self) -> dict[str, object]:
        """JSON-serialisable description of exactly which rows went where."""
        return {
            "seed": self.seed,
            "labeled_fraction": self.labeled_fraction,
            "labeled_indices": self.labeled_indices.tolist(),
            "unlabeled_indices": self.unlabeled.origin[~self.unlabeled.is_out_of_domain].tolist(),
            "out_of_domain_indices": self.unlabeled.origin[self.unlabeled.is_out_of_domain].tolist(),
        }


def _check_fraction(name: str, value: float, *, allow_zero: bool = False, allow_one: bool = False) -> None:
    low_ok = value > 0 or (allow_zero and value == 0)
    high_ok = value < 1 or (allow_one and value == 1)
    if not (low_ok and high_ok):
        raise DataError(f"{name} must lie in {'[' if allow_zero else '('}0, 1{']' if allow_one else ')'}, got {value}")


def split_labeled_unlabeled(train: ImageDataset, labeled_fraction: float = 0.2, seed: int = 0) -> MentorStudentSplit:
    """Split ``train`` into a labelled mentor part and an unlabelled student part.

    Balanced per class (section 3.1: "for each image of a certain label in the mentor
    dataset, there are four images of the same label in the student training set" at the
    default 1:4 ratio): in every class, ``round(fraction * class_count)`` random rows go to
    the mentor. Reproducible by ``seed``; the two parts are disjoint.
    """
    _check_fraction("labeled_fraction", labeled_fraction)
    gen = torch.Generator().manual_seed(seed)
    labeled_parts: list[torch.Tensor] = []
    unlabeled_parts: list[torch.Tensor] = []
    for cls in range(train.num_classes):
        members = torch.nonzero(train.labels == cls).flatten()
        if members.numel() == 0:
            continue
        shuffled = members[torch.randperm(members.numel(), generator=gen)]
        n_labeled = int(round(labeled_fraction * members.numel()))
        labeled_parts.append(shuffled[:n_labeled])
        unlabeled_parts.append(shuffled[n_labeled:])
    labeled_idx = torch.sort(torch.cat(labeled_parts)).values
    unlabeled_idx = torch.sort(torch.cat(unlabeled_parts)).values
    if labeled_idx.numel() == 0 or unlabeled_idx.numel() == 0:
        raise DataError(
            f"{train.name}: labeled_fraction={labeled_fraction} leaves an empty part "
            f"({labeled_idx.numel()} labeled, {unlabeled_idx.numel()} unlabeled)"
        )
    unlabeled = UnlabeledImages(
        images=take_rows(train.images, unlabeled_idx),
        origin=unlabeled_idx.clone(),
        is_out_of_domain=torch.zeros(unlabeled_idx.numel(), dtype=torch.bool),
        name=f"{train.name}/unlabeled",
        _hidden_labels=train.labels[unlabeled_idx],
    )
    return MentorStudentSplit(
        labeled=train.subset(labeled_idx, name=f"{train.name}/labeled"),
        unlabeled=unlabeled,
        labeled_indices=labeled_idx,
        unlabeled_indices=unlabeled_idx,
        seed=seed,
        labeled_fraction=labeled_fraction,
    )


def remove_unbalanced(unlabeled: UnlabeledImages, ratio_bound: float, seed: int = 0) -> UnlabeledImages:
    """Make the student set unbalanced by removal (section 4.3, Table 3).

    For each (hidden) class, a removal fraction is drawn uniformly from [0, ratio_bound]
    and that share of the class's rows is dropped at random. The hidden labels are used
    only to group rows by class, as the paper's experiment does; the result still carries
    no labels for training. Out-of-domain rows are kept.
    """
    _check_fraction("ratio_bound", ratio_bound, allow_zero=True)
    labels = unlabeled.reveal_labels_for_analysis()
    gen = torch.Generator().manual_seed(seed)
    keep_mask = torch.ones(len(unlabeled), dtype=torch.bool)
    for cls in torch.unique(labels[labels >= 0]).tolist():
        members = torch.nonzero(labels == cls).flatten()
        fraction = float(torch.rand((), generator=gen)) * ratio_bound
        n_remove = int(round(fraction * members.numel()))
        removed = members[torch.randperm(members.numel(), generator=gen)[:n_remove]]
        keep_mask[removed] = False
    return unlabeled.select(torch.nonzero(keep_mask).flatten())


def add_out_of_domain(
    unlabeled: UnlabeledImages, pool: ImageDataset, fraction: float, seed: int = 0
) -> UnlabeledImages:
    """Add out-of-domain images to the student set (section 4.3, Table 4).

    For each in-domain class of the student set, a number of pool images up to
    ``fraction`` of that class's size is drawn uniformly (the paper's "fraction limit per
    each class") and added; pool images are drawn without replacement across classes.
    Pool images must have the student images' (C, H, W).
    """
    _check_fraction("out-of-domain fraction", fraction, allow_zero=True, allow_one=True)
    if pool.in_shape != unlabeled.in_shape:
        raise DataError(
            f"out-of-domain pool {pool.name} has images {pool.in_shape}, student images are {unlabeled.in_shape}"
        )
    labels = unlabeled.reveal_labels_for_analysis()
    gen = torch.Generator().manual_seed(seed)
    n_add = 0
    for cls in torch.unique(labels[labels >= 0]).tolist():
        limit = fraction * int((labels == cls).sum())
        n_add += int(round(float(torch.rand((), generator=gen)) * limit))
    if n_add > len(pool):
        # The draws scale with the fraction (same seed, same per-class draws): this is the largest that fits.
        fits = fraction * len(pool) / n_add
        raise PoolTooSmallError(
            f"out-of-domain fraction {fraction:g} needs {n_add:,} pool images, {pool.name} has {len(pool):,}; "
            f"with this seed the pool covers fractions up to {fits:.3f}",
            largest_fraction=fits,
        )
    chosen = torch.sort(torch.randperm(len(pool), generator=gen)[:n_add]).values
    return UnlabeledImages(
        images=cat_rows([unlabeled.images, take_rows(pool.images, chosen)]),
        origin=torch.cat([unlabeled.origin, chosen]),
        is_out_of_domain=torch.cat([unlabeled.is_out_of_domain, torch.ones(n_add, dtype=torch.bool)]),
        name=unlabeled.name,
        _hidden_labels=torch.cat([labels, torch.full((n_add,), -1, dtype=torch.int64)]),
    )


def stratified_subset(data: ImageDataset, count: int, seed: int = 0) -> ImageDataset:
    """``count`` rows of ``data`` with class proportions kept (for CPU-sized experiments)."""
    if count <= 0:
        raise DataError(f"subset size must be positive, got {count}")
    if count >= len(data):
        return data
    gen = torch.Generator().manual_seed(seed)
    fraction = count / len(data)
    chosen = []
    for cls in range(data.num_classes):
        members = torch.nonzero(data.labels == cls).flatten()
        members = members[torch.randperm(members.numel(), generator=gen)]
        chosen.append(members[: int(round(fraction * members.numel()))])
    return data.subset(torch.sort(torch.cat(chosen)).values, name=f"{data.name}[{count}]")


def evaluation_parts(
    train: ImageDataset,
    test: ImageDataset,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    validation_fraction: float | None = None,
    seed: int = 0,
) -> tuple[ImageDataset, ImageDataset]:
    """(training part, evaluation part) after the data config's subsets and validation hold-out.

    With ``validation_fraction`` a stratified share of the (subset) training images becomes
    the evaluation set and ``test`` is not used: hyperparameters can be tuned without ever
    looking at the test set. Otherwise the evaluation set is ``test`` (or its stratified
    ``test_subset``).
    """
    if train_subset:
        train = stratified_subset(train, train_subset, seed)
    if validation_fraction is not None:
        kept, held = stratified_split(train.labels, validation_fraction, seed)
        return train.subset(kept, name=train.name), train.subset(held, name=f"{train.name}[validation]")
    if test_subset:
        test = stratified_subset(test, test_subset, seed)
    return train, test
