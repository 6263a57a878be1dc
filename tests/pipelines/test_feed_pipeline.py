"""The FEED harness end to end on tiny generated data: scratch, ensemble, KD, pFEED, sFEED."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepmimic.config import parse_config
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.methods import FactorTransfer, KnowledgeDistillation, Method, ParallelFeed, Supervised
from deepmimic.models import create_model
from deepmimic.pipelines import feed
from deepmimic.pipelines.feed import run_feed
from deepmimic.pipelines.feed_config import FeedConfig
from deepmimic.yaml_safe import load_yaml
from pipeline_configs import write_blobs_npz

KD = {"name": "KD from ensemble", "method": "kd", "method_options": {"temperature": 4.0, "alpha": 1.0}}
PFEED = {"name": "pFEED (k={k})", "method": "pfeed", "method_options": {"beta": 10.0}}


def sfeed(stacks: int, beta: float = 10.0) -> dict:
    return {"stacks": stacks, "method": "factor_transfer", "method_options": {"beta": beta, "paraphraser_epochs": 1}}


def feed_config(tmp_path: Path) -> dict:
    return {
        "pipeline": "feed",
        "output_dir": str(tmp_path / "feed"),
        "data": {"name": "npz", "root": str(write_blobs_npz(tmp_path / "blobs.npz"))},
        "model": "c-bn-mp-c-s",
        "model_options": {"conv_channels": 6},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "scratch_seeds": [0, 1],
        "ensemble_students": [KD, PFEED],
        "sequential": [sfeed(3)],
    }


def test_feed_harness_trains_every_row(tmp_path: Path) -> None:
    config = parse_config(feed_config(tmp_path))
    results = run_feed(config, progress=False)
    names = [row["name"] for row in results["rows"]]
    assert names == [
        "Scratch (seed 0)",
        "Scratch (seed 1)",
        "Ensemble of 2",
        "KD from ensemble",
        "pFEED (k=2)",
        "sFEED stack 2",
        "sFEED stack 3",
    ]
    # kind: scratch, the ensemble, the ensemble student's method, sfeed (as in results from before issue 14)
    assert [row["kind"] for row in results["rows"]] == [
        "scratch",
        "scratch",
        "ensemble",
        "kd",
        "pfeed",
        "sfeed",
        "sfeed",
    ]
    assert all(0.0 <= row["error"] <= 1.0 for row in results["rows"])
    saved = json.loads((tmp_path / "feed" / "results.json").read_text())
    assert saved["rows"][0]["accuracy"] == results["rows"][0]["accuracy"]
    table = (tmp_path / "feed" / "table.md").read_text()
    assert "| sFEED stack 3 | sfeed |" in table
    # Students' weights files hold the student only (translators/paraphrasers live in the checkpoint).
    assert (tmp_path / "feed" / "sfeed-stack-2" / "weights.safetensors").exists()


def test_feed_config_rejects_unknown_keys(tmp_path: Path) -> None:
    raw = feed_config(tmp_path)
    raw["sequential"][0]["stack"] = 2
    with pytest.raises(ConfigError, match="unknown key 'sequential.0.stack'"):
        parse_config(raw)
    with pytest.raises(ConfigError, match="unknown key 'sfeed'"):  # the typed blocks before issue 14
        parse_config({**feed_config(tmp_path), "sfeed": {"stacks": 3}})
    with pytest.raises(ConfigError, match=r"sequential.0.name.*must contain \{stack\}"):
        parse_config({**feed_config(tmp_path), "sequential": [{**sfeed(3), "name": "sFEED"}]})
    with pytest.raises(ConfigError, match="'sequential': Input should be a valid list"):  # one shape only: a list
        parse_config({**feed_config(tmp_path), "sequential": sfeed(3)})
    with pytest.raises(ConfigError, match="'ensemble_students.0.members': Input should be greater than or equal to 1"):
        parse_config({**feed_config(tmp_path), "ensemble_students": [{**PFEED, "members": 0}]})
    with pytest.raises(ConfigError, match="unknown pipeline 'fed'"):
        parse_config({**raw, "pipeline": "fed"})


def test_feed_resume_refuses_changed_inputs_and_restarts_dependents(tmp_path: Path) -> None:
    """Issue 12, item 1 for FEED: a changed stage is refused; restarting it retrains the stages it teaches."""
    from deepmimic.errors import ConfigError  # noqa: PLC0415

    raw = {
        **feed_config(tmp_path),
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "ensemble_students": [],
        "sequential": [sfeed(2)],
    }
    run_feed(parse_config(raw), progress=False)
    stack2 = (tmp_path / "feed" / "sfeed-stack-2" / "weights.safetensors").read_bytes()
    scratch1 = (tmp_path / "feed" / "scratch-seed-1" / "weights.safetensors").read_bytes()
    changed = {**raw, "sequential": [sfeed(2, beta=20.0)]}
    with pytest.raises(ConfigError, match=r"stage 'sFEED stack 2'.*method_options\.beta 10\.0 -> 20\.0"):
        run_feed(parse_config(changed), resume=True, progress=False)
    moved = {**raw, "scratch_seeds": [0, 2]}  # scratch 0 unchanged, a new scratch model
    run_feed(parse_config(moved), resume=True, restart=["Scratch (seed 0)"], progress=False)
    # Restarting scratch 0 retrained sFEED stack 2 (it learns from scratch 0) from the same seeds: same bytes.
    assert (tmp_path / "feed" / "sfeed-stack-2" / "weights.safetensors").read_bytes() == stack2
    assert (tmp_path / "feed" / "scratch-seed-1" / "weights.safetensors").read_bytes() == scratch1  # untouched leftover


def test_one_scratch_model_teaches_kd_as_an_ensemble_and_sfeed_as_itself(tmp_path: Path) -> None:
    """KD's ensemble of one and sFEED's single teacher are different teachers of the same model."""
    raw = {
        **feed_config(tmp_path),
        "scratch_seeds": [0],
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "ensemble_students": [KD],
        "sequential": [sfeed(2)],
    }
    results = run_feed(parse_config(raw), progress=False)
    assert [row["name"] for row in results["rows"]] == [
        "Scratch (seed 0)",
        "Ensemble of 1",
        "KD from ensemble",
        "sFEED stack 2",
    ]


class _Stop(Exception):
    """Raised in place of the resume check: the stages were built, nothing was written."""


def _built_methods(raw: dict, monkeypatch: pytest.MonkeyPatch) -> dict[str, Method]:
    """The method run_feed builds for each stage in its pre-flight check (no training, no write)."""
    built: dict[str, Method] = {}
    real = feed.create_method

    def recording(name: str, student: torch.nn.Module, teacher: object = None, **options: object) -> Method:
        method = real(name, student, teacher, **options)
        built[f"{len(built)}"] = method
        return method

    def stop(*args: object, **kwargs: object) -> None:
        raise _Stop

    monkeypatch.setattr(feed, "create_method", recording)
    monkeypatch.setattr(feed, "_stage_plan", stop)
    config = parse_config(raw)
    with pytest.raises(_Stop):
        run_feed(config, progress=False)
    assert not Path(config.output_dir).exists()
    return dict(zip([s.name for s in feed._feed_stages(config)], built.values()))


def test_stage_options_reach_the_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KD, pFEED and sFEED options in the config are the methods' hyperparameters; the rest are the
    constructors' defaults."""
    raw = {
        **feed_config(tmp_path),
        "ensemble_students": [
            {"name": "KD", "method": "kd", "method_options": {"temperature": 3.0, "alpha": 0.5}},
            {"name": "KD soft only", "method": "kd"},
            {"name": "pFEED (k={k})", "method": "pfeed", "method_options": {"beta": 7.0}},
        ],
        "sequential": [
            {"stacks": 3, "method": "factor_transfer", "method_options": {"beta": 7.0, "paraphraser": False}},
            {
                "name": "sFEED+P stack {stack}",
                "stacks": 2,
                "method": "factor_transfer",
                "method_options": {"beta": 7.0, "rate": 1.0, "paraphraser_optimizer": "sgd", "paraphraser_lr": 0.1},
            },
        ],
    }
    methods = _built_methods(raw, monkeypatch)
    assert list(methods) == [
        "Scratch (seed 0)",
        "Scratch (seed 1)",
        "KD",
        "KD soft only",
        "pFEED (k=2)",
        "sFEED stack 2",
        "sFEED stack 3",
        "sFEED+P stack 2",
    ]
    kd = methods["KD"]
    assert isinstance(kd, KnowledgeDistillation) and (kd.temperature, kd.alpha) == (3.0, 0.5)
    default = methods["KD soft only"]
    assert isinstance(default, KnowledgeDistillation) and (default.temperature, default.alpha) == (
        4.0,
        0.0,
    )  # KD's own defaults
    pfeed = methods["pFEED (k=2)"]
    assert isinstance(pfeed, ParallelFeed) and pfeed.beta == 7.0 and not pfeed.use_paraphraser
    for name in ("sFEED stack 2", "sFEED stack 3"):
        ft = methods[name]
        assert type(ft) is FactorTransfer and ft.beta == 7.0 and not ft.use_paraphraser
        assert ft.paraphraser_epochs == 10  # not in the config: the constructor's default
    with_p = methods["sFEED+P stack 2"]
    assert type(with_p) is FactorTransfer and with_p.use_paraphraser and with_p.rate == 1.0
    assert (with_p.paraphraser_optimizer, with_p.paraphraser_lr, with_p.paraphraser_epochs) == ("sgd", 0.1, 10)
    assert isinstance(methods["Scratch (seed 0)"], Supervised)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"ensemble_students": [KD, {**PFEED, "method_options": {"beta": 10.0, "gamma": 1.0}}]},
            r"^FEED stage 'pFEED \(k=2\)': method 'pfeed' has no option\(s\) gamma; it accepts: ",
        ),
        (
            {"sequential": [{**sfeed(2), "method_options": {"beta": 10.0, "paraphraser_epoch": 1}}]},
            r"^FEED stage 'sFEED stack 2': method 'factor_transfer' has no option\(s\) paraphraser_epoch; ",
        ),
        (
            {"sequential": [sfeed(2), {**sfeed(2), "method_options": {"paraphraser_optimizer": "rmsprop"}}]},
            r"^FEED stage 'sFEED stack 2': its folder 'sfeed-stack-2' would also be that of 'sFEED stack 2'; ",
        ),  # two sequences need their own names
        (
            {"sequential": [{**sfeed(2), "method_options": {"paraphraser_optimizer": "rmsprop"}}]},
            r"^FEED stage 'sFEED stack 2': factor transfer: paraphraser_optimizer must be one of adam, sgd, ",
        ),
        (
            {"ensemble_students": [{**PFEED, "members": 3}]},
            r"^FEED stage 'pFEED \(k=3\)': members 3 is more than the 2 scratch model\(s\) of scratch_seeds$",
        ),
        (
            {"ensemble_students": [{**KD, "method": "kd2"}]},
            r"^FEED stage 'KD from ensemble': unknown method 'kd2'; known methods: ",
        ),
        (
            {"ensemble_students": [{**KD, "method_options": {"alpha": -1.0}}]},
            r"^FEED stage 'KD from ensemble': kd: alpha must be >= 0, got -1$",
        ),  # a value: checked by the constructor
        (
            {"ensemble_students": [KD, {**PFEED, "name": "KD from ensemble"}]},
            r"^FEED stage 'KD from ensemble': its folder 'kd-from-ensemble' would also be that of 'KD from ensemble'; ",
        ),
        (
            {"ensemble_students": [{**KD, "name": "Ensemble of {k}"}]},
            r"^FEED stage 'Ensemble of 2': its folder 'ensemble-of-2' ",
        ),
    ],
)
def test_a_bad_stage_fails_before_any_write_naming_the_stage(tmp_path: Path, change: dict, message: str) -> None:
    config = parse_config({**feed_config(tmp_path), **change})
    with pytest.raises(ConfigError, match=message) as failure:
        run_feed(config, progress=False)
    assert "\n" not in str(failure.value)
    assert not (tmp_path / "feed").exists()


def test_members_and_sequences_give_their_own_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pFEED taught by 2 and by 3 of 3 scratch models; sFEED with and without the paraphraser, two row sets."""
    raw = {
        **feed_config(tmp_path),
        "scratch_seeds": [0, 1, 2],
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "ensemble_students": [{**PFEED, "members": 2}, {**PFEED, "members": 3}],
        "sequential": [
            {**sfeed(2), "method_options": {"beta": 10.0, "paraphraser": False}},
            {**sfeed(2), "name": "sFEED+P stack {stack}"},
        ],
    }
    methods = _built_methods(raw, monkeypatch)  # each pFEED's ensemble holds its own members
    assert [len(methods[f"pFEED (k={k})"].teacher.members) for k in (2, 3)] == [2, 3]  # type: ignore[attr-defined]
    monkeypatch.undo()
    results = run_feed(parse_config(raw), progress=False)
    assert [(row["name"], row["kind"]) for row in results["rows"]] == [
        ("Scratch (seed 0)", "scratch"),
        ("Scratch (seed 1)", "scratch"),
        ("Scratch (seed 2)", "scratch"),
        ("Ensemble of 3", "ensemble"),  # the reference row: every scratch model
        ("pFEED (k=2)", "pfeed"),
        ("pFEED (k=3)", "pfeed"),
        ("sFEED stack 2", "sfeed"),
        ("sFEED+P stack 2", "sfeed"),
    ]
    ensemble = results["rows"][3]  # why an ensemble does (not) win: logit averaging, members, their disagreement
    assert len(ensemble["member_accuracies"]) == 3 and 0 <= ensemble["member_disagreement"] <= 1
    assert 0 <= ensemble["accuracy_logit_average"] <= 1
    scratch_accuracies = [row["accuracy"] for row in results["rows"][:3]]
    assert ensemble["member_accuracies"] == pytest.approx(scratch_accuracies)
    from deepmimic.report.build import build_report

    assert "averaging logits; members" in build_report(tmp_path / "feed")["report.md"].read_text()
    inputs = {
        k: json.loads((tmp_path / "feed" / f"pfeed-k-{k}" / "inputs.json").read_text())["teachers"] for k in (2, 3)
    }
    assert list(inputs[2]) == ["Scratch (seed 0)", "Scratch (seed 1)"]
    assert list(inputs[3]) == ["Scratch (seed 0)", "Scratch (seed 1)", "Scratch (seed 2)"]
    with_p = json.loads((tmp_path / "feed" / "sfeed-p-stack-2" / "inputs.json").read_text())
    assert with_p["method_options"] == {"beta": 10.0, "paraphraser_epochs": 1}


def _tiny_teacher(path: Path, data: Path, num_classes: int = 4, seed: int = 0) -> Path:
    """A small CNN trained a few steps on the blobs with its own input statistics (mean 0.2, std 0.3), saved."""
    torch.manual_seed(seed)
    model = create_model("c-bn-mp-c-s", (1, 8, 8), num_classes)
    arrays = np.load(data)
    x = (torch.from_numpy(arrays["images"]).float() / 255 - 0.2) / 0.3
    y = torch.from_numpy(arrays["labels"]).long() % num_classes
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    torch.save(model.eval().state_dict(), path)
    return path


PRETRAINED_OPTIONS = {"in_shape": "1,8,8", "mean": "0.2", "std": "0.3"}


def test_a_pretrained_teacher_teaches_a_student_and_has_its_own_row(tmp_path: Path) -> None:
    """KD from a pretrained checkpoint: the teacher's row is its test accuracy on its own statistics;
    --resume refuses a checkpoint file whose bytes changed."""
    raw = {
        **feed_config(tmp_path),
        "scratch_seeds": [0],
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "ensemble_students": [],
        "sequential": [],
    }
    checkpoint = _tiny_teacher(tmp_path / "teacher.pt", Path(raw["data"]["root"]))
    raw["pretrained_students"] = [
        {
            "name": "KD from teacher",
            "pretrained": f"c-bn-mp-c-s:{checkpoint}",
            "pretrained_options": PRETRAINED_OPTIONS,
            **{k: KD[k] for k in ("method", "method_options")},
        }
    ]
    results = run_feed(parse_config(raw), progress=False)
    assert [(row["name"], row["kind"]) for row in results["rows"]] == [
        ("Scratch (seed 0)", "scratch"),
        ("Ensemble of 1", "ensemble"),
        ("Pretrained c-bn-mp-c-s (teacher.pt)", "pretrained"),
        ("KD from teacher", "kd-pretrained"),
    ]
    # The teacher's row: the checkpoint on the test images normalised with ITS statistics (not the pipeline's).
    teacher = create_model("c-bn-mp-c-s", (1, 8, 8), 4)
    teacher.load_state_dict(torch.load(checkpoint, weights_only=True))
    arrays = np.load(raw["data"]["root"])
    with torch.no_grad():
        logits = teacher.eval()((torch.from_numpy(arrays["test_images"]).float() / 255 - 0.2) / 0.3)
    expected = (logits.argmax(1) == torch.from_numpy(arrays["test_labels"])).float().mean().item()
    row = results["rows"][2]
    assert row["accuracy"] == pytest.approx(expected, abs=1e-6) and expected > 0.5  # a teacher that learned
    assert row["seed"] is None and row["parameters"] == sum(p.numel() for p in teacher.parameters())
    assert not (tmp_path / "feed" / "pretrained-c-bn-mp-c-s-teacher-pt").exists()  # not trained: no folder
    assert (tmp_path / "feed" / "kd-from-teacher" / "weights.safetensors").exists()
    recorded = json.loads((tmp_path / "feed" / "kd-from-teacher" / "inputs.json").read_text())["pretrained_teacher"]
    assert recorded == {
        "pretrained": f"c-bn-mp-c-s:{checkpoint}",
        "pretrained_options": PRETRAINED_OPTIONS,
        "file": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    }
    assert "| Pretrained c-bn-mp-c-s (teacher.pt) | pretrained |" in (tmp_path / "feed" / "table.md").read_text()

    _tiny_teacher(checkpoint, Path(raw["data"]["root"]), seed=1)  # same path, other bytes
    with pytest.raises(
        ConfigError, match=r"stage 'KD from teacher' was trained with other inputs \(pretrained_teacher\.file"
    ):
        run_feed(parse_config(raw), resume=True, progress=False)


def test_a_pretrained_teacher_for_other_classes_or_missing_fails_before_any_write(tmp_path: Path) -> None:
    raw = feed_config(tmp_path)
    checkpoint = _tiny_teacher(tmp_path / "teacher3.pt", Path(raw["data"]["root"]), num_classes=3)
    spec = f"c-bn-mp-c-s:{checkpoint}"
    raw["pretrained_students"] = [
        {"name": "KD from teacher", "pretrained": spec, "pretrained_options": PRETRAINED_OPTIONS, "method": "kd"}
    ]
    with pytest.raises(
        ConfigError, match=r"^FEED stage 'KD from teacher': pretrained '.*' answers for 3 classes, the data has 4$"
    ):
        run_feed(parse_config(raw), progress=False)
    raw["pretrained_students"][0]["pretrained"] = f"c-bn-mp-c-s:{tmp_path / 'missing.pt'}"
    with pytest.raises(TeacherError, match=r"^FEED stage 'KD from teacher': .*missing\.pt: no such checkpoint file$"):
        run_feed(parse_config(raw), progress=False)
    assert not (tmp_path / "feed").exists()


def test_shipped_feed_configs_parse() -> None:
    """Every shipped FEED config (and the recorded config of the measured run) parses, with every
    stage's method and option names known; KD's hard-label weight is written out (FEED's recipe)."""
    root = Path(__file__).resolve().parents[2]
    paths = sorted(
        {p.resolve() for folder in ("configs", "src/deepmimic/builtin_configs") for p in (root / folder).glob("*.yaml")}
    )
    paths += sorted((root / "docs" / "results").glob("*/config.yaml"))
    feed_configs = []
    for path in paths:
        raw = load_yaml(path.read_text(encoding="utf-8"))
        if raw.get("pipeline") != "feed":
            continue
        config = parse_config(raw, source=str(path))
        assert isinstance(config, FeedConfig)
        stages = feed._feed_stages(config)
        kd = [s for s in stages if s.method == "kd"]
        assert kd and all(s.options.get("alpha") == 1.0 and s.options.get("temperature") == 4.0 for s in kd), path
        feed_configs.append(path)
    assert (
        len(feed_configs) >= 2
    )  # the shipped feed-cifar10.yaml and the measured run's docs/results/feed-cifar10/config.yaml


def test_shipped_feed_config_follows_the_papers_recipe() -> None:
    """Issue 15: pFEED k = 2 and 3, sFEED without and with the paraphraser, KD from a pretrained ResNet-32,
    the paper's SGD and multistep schedule, 10,000 training images and the full test set."""
    root = Path(__file__).resolve().parents[2]
    config = parse_config(load_yaml((root / "configs" / "feed-cifar10.yaml").read_text(encoding="utf-8")))
    assert isinstance(config, FeedConfig)
    stages = feed._feed_stages(config)
    assert [(s.name, s.kind) for s in stages] == [
        ("Scratch (seed 0)", "scratch"),
        ("Scratch (seed 1)", "scratch"),
        ("Scratch (seed 2)", "scratch"),
        ("KD from ensemble", "kd"),
        ("pFEED (k=2)", "pfeed"),
        ("pFEED (k=3)", "pfeed"),
        ("sFEED stack 2", "sfeed"),
        ("sFEED stack 3", "sfeed"),
        ("sFEED+P stack 2", "sfeed"),
        ("sFEED+P stack 3", "sfeed"),
        ("KD from pretrained ResNet-32", "kd-pretrained"),
    ]
    by_name = {s.name: s for s in stages}
    assert (
        by_name["sFEED stack 2"].options["paraphraser"] is False and by_name["sFEED+P stack 2"].options["paraphraser"]
    )
    teacher = by_name["KD from pretrained ResNet-32"].pretrained
    assert teacher is not None and teacher.spec.endswith("akamaster-resnet-cifar10/resnet32-d509ac18.th")
    assert teacher.options == {"mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"}
    train = config.train
    assert (train.optimizer, train.lr, train.momentum, train.weight_decay) == ("sgd", 0.1, 0.9, 0.0005)
    assert (train.schedule, train.milestones, train.gamma, train.epochs) == ("multistep", [0.5, 0.75], 0.1, 20)
    assert config.data.train_subset == 10000 and config.data.test_subset is None
    assert config.paper is not None and not config.paper.accuracy and "CIFAR-100" in config.paper.source
