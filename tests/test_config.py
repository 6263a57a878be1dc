"""Strict YAML configs: unknown keys and wrong types fail with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmimic.config import apply_override, load_config, parse_config
from deepmimic.errors import ConfigError

MINIMAL = {
    "mentor": {"name": "Mentor", "model": "mnist-mentor", "method": "supervised"},
    "students": [{"name": "Student-A", "model": "mnist-student-a"}],
}


def test_minimal_config_gets_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.split.labeled_fraction == 0.2
    assert cfg.students[0].method == "soft_label"
    assert cfg.mentor.train.optimizer == "sgd"


def test_top_level_train_block_is_a_default_that_models_override() -> None:
    cfg = parse_config(
        {
            **MINIMAL,
            "train": {"epochs": 3, "lr": 0.2},
            "students": [{"name": "S", "model": "m", "train": {"epochs": 9}}],
        }
    )
    assert cfg.mentor.train.epochs == 3 and cfg.mentor.train.lr == 0.2
    assert cfg.students[0].train.epochs == 9 and cfg.students[0].train.lr == 0.2


@pytest.mark.parametrize(
    "raw,needle",
    [
        ({**MINIMAL, "bogus": 1}, "unknown key 'bogus'"),
        ({**MINIMAL, "split": {"labeled_fracton": 0.2}}, "unknown key 'split.labeled_fracton'"),
        ({**MINIMAL, "train": {"epochs": "many"}}, "epochs"),
        ({**MINIMAL, "train": {"optimizer": "rmsprop"}}, "optimizer"),
        ({**MINIMAL, "train": {"precision": "fp16"}}, "mentor.train.precision"),
        ({**MINIMAL, "train": {"channels_last": "sometimes"}}, "mentor.train.channels_last"),
        ({**MINIMAL, "train": {"compile": "yes please"}}, "mentor.train.compile"),
        ({**MINIMAL, "split": {"labeled_fraction": 1.5}}, "split.labeled_fraction"),
        ({"students": MINIMAL["students"]}, "missing required key 'mentor'"),
        ({**MINIMAL, "mentor": {**MINIMAL["mentor"], "method": "soft_label"}}, "mentor.method must be 'supervised'"),
        ({**MINIMAL, "students": MINIMAL["students"] * 2}, "student names must be unique"),
        ([1, 2], "top level must be a mapping"),
    ],
)
def test_invalid_configs_name_the_problem(raw: object, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_overrides_set_nested_keys_and_list_items() -> None:
    raw = {"students": [{"train": {}}], "split": {}}
    apply_override(raw, "students.0.train.epochs=3")
    apply_override(raw, "split.labeled_fraction=0.25")
    apply_override(raw, "name=run-x")
    assert raw["students"][0]["train"]["epochs"] == 3
    assert raw["split"]["labeled_fraction"] == 0.25
    assert raw["name"] == "run-x"
    with pytest.raises(ConfigError, match="not a valid list index"):
        apply_override(raw, "students.5.train.epochs=3")
    with pytest.raises(ConfigError, match="key=value"):
        apply_override(raw, "epochs")


def test_override_with_unknown_key_fails_validation() -> None:
    with pytest.raises(ConfigError, match="unknown key 'mentor.train.epoch'"):
        parse_config(MINIMAL, overrides=["mentor.train.epoch=3"])


def test_yaml_never_executes_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("mentor: !!python/object/apply:os.system ['echo pwned > %s']\n" % (tmp_path / "pwned"))
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mentor: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(bad)


def test_committed_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    paths = sorted(root.glob("*.yaml"))
    assert paths, "configs/ should hold the committed experiments"
    for path in paths:
        load_config(path)


# Issue 12, item 8: values in a file are strict; --set values are YAML, so they arrive typed.
@pytest.mark.parametrize(
    ("train", "key"),
    [
        ({"epochs": "2"}, "mentor.train.epochs"),
        ({"epochs": 2.0}, "mentor.train.epochs"),
        ({"seed": True}, "mentor.train.seed"),
        ({"nesterov": "yes"}, "mentor.train.nesterov"),
        ({"batch_size": "64"}, "mentor.train.batch_size"),
    ],
)
def test_values_are_not_coerced(train: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config({**MINIMAL, "train": train})


def test_set_values_and_exponent_floats_arrive_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "mentor: {name: M, model: mnist-mentor, method: supervised}\n"
        "students: [{name: S, model: mnist-student-a}]\ntrain: {lr: 1e-3, weight_decay: 5E-4}\n"
    )
    cfg = load_config(path, overrides=["train.epochs=2", "train.seed=3", "students.0.train.lr=2e-2"])
    assert cfg.mentor.train.lr == 0.001 and cfg.mentor.train.weight_decay == 0.0005
    assert cfg.mentor.train.epochs == 2 and cfg.mentor.train.seed == 3 and cfg.students[0].train.lr == 0.02


# Issue 12, item 4: a stage or a list replaced by a number is a one-line error, not a TypeError.
@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("mentor.train=5", "'mentor.train'"),
        ("students=5", "'students'"),
        ("mentor=5", "'mentor'"),
        ("students.0.train=[1]", "'students.0.train'"),
        ("train=5", "train: must be a mapping"),
    ],
)
def test_overrides_of_the_wrong_shape_are_config_errors(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_config({**MINIMAL, "train": {"epochs": 1}}, overrides=[override])


@pytest.mark.parametrize(
    "raw",
    [
        {  # DeepMimic: a stage's own train: block loses to the flag too
            **MINIMAL,
            "train": {"eval_every": 7},
            "students": [{"name": "S", "model": "m", "train": {"eval_every": 2, "epochs": 9}}],
        },
        {"pipeline": "feed", "data": {"name": "mnist"}, "model": "resnet8", "train": {"eval_every": 5}},
        {"pipeline": "mimic", "teacher": "t.onnx", "data": "mnist", "student": "fc-s", "train": {"eval_every": 3}},
    ],
    ids=["deepmimic", "feed", "mimic"],
)
def test_train_overrides_reach_every_model_of_every_pipeline(raw: dict) -> None:
    """``--eval-every`` (``train_overrides``) is set on every TrainSettings, beating per-stage values."""
    from deepmimic.config import _train_settings

    cfg = parse_config(raw, train_overrides={"eval_every": "auto"})
    found = _train_settings(cfg)
    assert found and all(s.eval_every == "auto" for s in found)
    assert {s.eval_every for s in _train_settings(parse_config(raw, train_overrides={"eval_every": 4}))} == {4}
    assert all(s.eval_every != "auto" for s in _train_settings(parse_config(raw)))  # without it: the config's own
    with pytest.raises(ConfigError, match="eval_every"):
        parse_config(raw, train_overrides={"eval_every": 0})
