"""Split invariants (DeepMimic section 3.1) and the unbalanced variants (section 4.3)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from deepmimic.data.splits import UnlabeledImages, add_out_of_domain, remove_unbalanced, split_labeled_unlabeled
from deepmimic.errors import DataError
from synthetic import make_blobs_dataset


def test_split_is_disjoint_complete_balanced_and_at_ratio() -> None:
    ds = make_blobs_dataset(n_per_class=50, num_classes=4)
    split = split_labeled_unlabeled(ds, labeled_fraction=0.2, seed=3)
    lab, unl = split.labeled_indices, split.unlabeled_indices
    assert set(lab.tolist()).isdisjoint(unl.tolist())
    assert sorted(lab.tolist() + unl.tolist()) == list(range(len(ds)))
    # Balanced: every class gives exactly 10 of its 50 to the mentor (1:4).
    assert torch.bincount(split.labeled.labels, minlength=4).tolist() == [10, 10, 10, 10]
    hidden = split.unlabeled.reveal_labels_for_analysis()
    assert torch.bincount(hidden, minlength=4).tolist() == [40, 40, 40, 40]
    assert torch.equal(split.unlabeled.images, ds.images[unl])
    assert torch.equal(split.labeled.images, ds.images[lab])


def test_split_is_reproducible_by_seed_and_changes_with_it() -> None:
    ds = make_blobs_dataset(n_per_class=30)
    a = split_labeled_unlabeled(ds, 0.2, seed=1)
    b = split_labeled_unlabeled(ds, 0.2, seed=1)
    c = split_labeled_unlabeled(ds, 0.2, seed=2)
    assert torch.equal(a.labeled_indices, b.labeled_indices)
    assert not torch.equal(a.labeled_indices, c.labeled_indices)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.8])
def test_split_follows_other_ratios(fraction: float) -> None:
    ds = make_blobs_dataset(n_per_class=20)
    split = split_labeled_unlabeled(ds, fraction, seed=0)
    assert len(split.labeled) == 4 * round(fraction * 20)


def test_unlabeled_side_carries_no_labels() -> None:
    split = split_labeled_unlabeled(make_blobs_dataset(), 0.2, seed=0)
    unlabeled = split.unlabeled
    public = {f.name for f in dataclasses.fields(unlabeled) if not f.name.startswith("_")}
    assert "labels" not in public and not hasattr(unlabeled, "labels")
    # Every public tensor attribute is images or bookkeeping, none equals the labels.
    hidden = unlabeled.reveal_labels_for_analysis()
    for name in public:
        value = getattr(unlabeled, name)
        if isinstance(value, torch.Tensor) and value.shape == hidden.shape:
            assert not torch.equal(value, hidden), f"{name} leaks the labels"


def test_split_record_lists_indices() -> None:
    split = split_labeled_unlabeled(make_blobs_dataset(), 0.25, seed=0)
    record = split.record()
    assert record["labeled_indices"] == split.labeled_indices.tolist()
    assert record["unlabeled_indices"] == split.unlabeled_indices.tolist()
    assert record["seed"] == 0


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(bad: float) -> None:
    with pytest.raises(DataError, match="labeled_fraction"):
        split_labeled_unlabeled(make_blobs_dataset(), bad)


def test_removal_keeps_at_least_one_minus_bound_per_class() -> None:
    split = split_labeled_unlabeled(make_blobs_dataset(n_per_class=100), 0.2, seed=0)
    before = torch.bincount(split.unlabeled.reveal_labels_for_analysis(), minlength=4)
    reduced = remove_unbalanced(split.unlabeled, ratio_bound=0.6, seed=5)
    after = torch.bincount(reduced.reveal_labels_for_analysis(), minlength=4)
    assert (after <= before).all()
    assert (after >= torch.floor(before * 0.4)).all()
    assert after.sum() < before.sum()
    assert set(reduced.origin.tolist()) <= set(split.unlabeled.origin.tolist())
    again = remove_unbalanced(split.unlabeled, ratio_bound=0.6, seed=5)
    assert torch.equal(reduced.origin, again.origin)


def test_out_of_domain_adds_marked_pool_images() -> None:
    split = split_labeled_unlabeled(make_blobs_dataset(n_per_class=50), 0.2, seed=0)
    pool = make_blobs_dataset(n_per_class=100, num_classes=2, seed=9, name="pool")
    grown = add_out_of_domain(split.unlabeled, pool, fraction=0.5, seed=1)
    added = int(grown.is_out_of_domain.sum())
    assert 0 < added <= 4 * 20  # at most 50% of each 40-image class
    assert len(grown) == len(split.unlabeled) + added
    ood_rows = grown.is_out_of_domain
    assert torch.equal(grown.images[ood_rows], pool.images[grown.origin[ood_rows]])
    assert (grown.reveal_labels_for_analysis()[ood_rows] == -1).all()
    assert len(set(grown.origin[ood_rows].tolist())) == added  # no pool image twice


def test_out_of_domain_rejects_shape_mismatch() -> None:
    split = split_labeled_unlabeled(make_blobs_dataset(), 0.2, seed=0)
    pool = make_blobs_dataset(shape=(3, 8, 8), name="rgb-pool")
    with pytest.raises(DataError, match="rgb-pool"):
        add_out_of_domain(split.unlabeled, pool, 0.2)


def test_unlabeled_without_hidden_labels_refuses_to_reveal() -> None:
    u = UnlabeledImages(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.arange(2), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(DataError):
        u.reveal_labels_for_analysis()


def test_stratified_subset_keeps_class_proportions() -> None:
    from deepmimic.data.splits import stratified_subset

    ds = make_blobs_dataset(n_per_class=50)
    sub = stratified_subset(ds, 40, seed=2)
    assert len(sub) == 40 and torch.bincount(sub.labels).tolist() == [10, 10, 10, 10]
    assert stratified_subset(ds, 1000) is ds
    with pytest.raises(DataError, match="subset size"):
        stratified_subset(ds, 0)


def test_validation_fraction_holds_out_training_images_and_never_uses_the_test_set() -> None:
    """Tuning on held-out training images (issue 15): disjoint, stratified, the test part untouched."""
    from deepmimic.config_schema import DataConfig
    from deepmimic.data.splits import evaluation_parts

    data = make_blobs_dataset(n_per_class=40, num_classes=4, seed=0)
    poisoned = dataclasses.replace(data, name="test")  # would show up if the test part were used
    train, held = evaluation_parts(data, poisoned, train_subset=120, validation_fraction=0.25, seed=1)
    assert (len(train), len(held)) == (88, 32)  # 30 a class after the subset, round(7.5) = 8 held out
    assert held.name.endswith("[validation]") and torch.bincount(held.labels).tolist() == [len(held) // 4] * 4
    rows = {tuple(r.flatten().tolist()) for r in train.images}
    assert not any(tuple(r.flatten().tolist()) in rows for r in held.images)
    train2, test2 = evaluation_parts(data, poisoned, test_subset=20, seed=1)
    assert train2 is data and len(test2) == 20 and test2.name.startswith("test")
    with pytest.raises(ValueError, match="exclude each other"):
        DataConfig(test_subset=10, validation_fraction=0.2)
