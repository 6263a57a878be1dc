"""Every registered method honours the Method contract in the real engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.engine import TrainSettings, fit
from deepmimic.methods import METHODS, create_method
from deepmimic.teachers import EnsembleTeacher, ModuleTeacher
from synthetic import make_blobs_dataset

CONFIGS = {
    "supervised": {},
    "soft_label": {},
    "kd": {"temperature": 4.0},
    "imitation": {"rec_weight": 1.0, "der_weight": 0.5, "adv_weight": 0.1},
    "factor_transfer": {"beta": 50.0, "paraphraser_epochs": 1},
    "pfeed": {"beta": 50.0},
}


def tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 4)
    )


def test_every_registered_method_has_a_contract_config() -> None:
    assert set(CONFIGS) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_one_epoch(name: str) -> None:
    ds = make_blobs_dataset(n_per_class=8)
    teacher_module = tiny(1)
    teacher = EnsembleTeacher([ModuleTeacher(teacher_module, 4, feature_layers=["2"])])  # "2": the ReLU after conv+BN
    teacher_before = {k: v.clone() for k, v in teacher_module.state_dict().items()}
    student = tiny(0)
    student_before = [p.clone() for p in student.parameters()]
    method = create_method(name, student, teacher, **CONFIGS[name])
    targets = {"labels": ds.labels} if method.labels_required() else {}
    result = fit(
        method,
        TrainingSet(ds.images, targets),
        Normalizer.fit(ds.images),
        TrainSettings(epochs=1, batch_size=8, lr=0.05, device="cpu"),
        progress=False,
    )
    record = result.final
    assert all(torch.isfinite(torch.tensor(v)) for k, v in record.items() if k.startswith("train_"))
    assert any(not torch.equal(a, b) for a, b in zip(student_before, student.parameters()))
    for k, v in teacher_module.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f"{name} changed teacher tensor {k}"
