"""Answer defences: what a served model returns instead of its full probabilities."""

from __future__ import annotations

import pytest
import torch

from deepmimic.errors import ConfigError
from deepmimic.teachers.defences import Defence, parse_defence, parse_defences


def _rows_sum_to_one(answers: torch.Tensor) -> bool:
    return bool(torch.allclose(answers.sum(dim=1), torch.ones(answers.shape[0]), atol=1e-6))


def test_none_is_the_identity() -> None:
    probs = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=1)
    out = parse_defence("none").apply(probs)
    assert out.dtype == torch.float32 and torch.equal(out, probs.to(torch.float32))


def test_top1_is_one_hot_with_ties_to_the_lowest_class() -> None:
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.45, 0.45]])
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = parse_defence("top1").apply(probs)
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert parse_defence("top1").apply(torch.empty(0, 3)).shape == (0, 3)


def test_topk_keeps_the_k_largest_renormalised() -> None:
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1], [0.4, 0.05, 0.05, 0.5]])
    out = parse_defence("topk:2").apply(probs)
    expected = torch.tensor([[0.0, 0.5 / 0.8, 0.3 / 0.8, 0.0], [0.4 / 0.9, 0.0, 0.0, 0.5 / 0.9]])
    assert torch.allclose(out, expected, atol=1e-6) and _rows_sum_to_one(out)
    assert torch.equal(parse_defence("topk:1").apply(probs), parse_defence("top1").apply(probs))
    # K at least the number of classes: the probabilities themselves (renormalised).
    assert torch.allclose(parse_defence("topk:9").apply(probs), probs, atol=1e-6)


def test_round_rounds_and_renormalises() -> None:
    probs = torch.tensor([[0.26, 0.26, 0.48], [0.123, 0.456, 0.421]])
    out = parse_defence("round:1").apply(probs)
    expected = torch.tensor([[0.3, 0.3, 0.5], [0.1, 0.5, 0.4]])
    expected = expected / expected.sum(dim=1, keepdim=True)  # the first row rounds to 1.1 in all
    assert torch.allclose(out, expected, atol=1e-6) and _rows_sum_to_one(out)
    assert torch.equal(parse_defence("round:0").apply(torch.tensor([[0.6, 0.4]])), torch.tensor([[1.0, 0.0]]))


def test_a_row_that_rounds_to_zero_keeps_its_top_class() -> None:
    flat = torch.full((30,), 1 / 30)
    flat[7] += 0.01
    flat[3] -= 0.01  # still 30 classes of about 0.033: every one rounds to 0.0 at one decimal
    probs = torch.stack([flat, torch.tensor([0.9, 0.1] + [0.0] * 28)])
    out = parse_defence("round:1").apply(probs)
    assert torch.equal(out[0], torch.nn.functional.one_hot(torch.tensor(7), 30).to(torch.float32))
    assert torch.allclose(out[1], probs[1], atol=1e-6)  # the other row is rounded as usual
    assert _rows_sum_to_one(out) and bool(torch.isfinite(out).all())
    assert parse_defence("round:1").apply(torch.empty(0, 30)).shape == (0, 30)


def test_apply_does_not_change_its_input() -> None:
    flat = torch.full((2, 30), 1 / 30)
    before = flat.clone()
    for spec in ("top1", "topk:3", "round:1"):
        parse_defence(spec).apply(flat)
    assert torch.equal(flat, before)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("topk:0", "defence 'topk:0': topk takes an integer 1..10,000 after the colon"),
        ("topk", "unknown defence 'topk'"),
        ("round:x", "defence 'round:x': round takes an integer 0..8 after the colon"),
        ("round:9", "round takes an integer 0..8"),
        ("round:-1", "round takes an integer 0..8"),
        ("top1:3", "unknown defence 'top1:3'; known: none, top1, topk:K or round:D"),
        ("bogus", "unknown defence 'bogus'; known: none, top1, topk:K or round:D"),
        ("", "unknown defence ''"),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_defence(spec)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_parse_defences_keeps_the_order_and_refuses_repeats() -> None:
    assert [d.name for d in parse_defences("round:2, top1,none,topk:3")] == ["round:2", "top1", "none", "topk:3"]
    with pytest.raises(ConfigError, match="defence top1 given more than once"):
        parse_defences("top1,TOP1")
    with pytest.raises(ConfigError, match="defence topk:3 given more than once"):
        parse_defences("topk:3,none,topk:03")
    with pytest.raises(ConfigError, match="no defence given"):
        parse_defences(" , ")
    with pytest.raises(ConfigError, match="unknown defence 'bogus'"):
        parse_defences("top1,bogus")


@pytest.mark.parametrize(
    ("spec", "name"),
    [("none", "none"), ("top1", "top1"), ("topk:3", "topk:3"), (" TopK:05 ", "topk:5"), ("round:0", "round:0")],
)
def test_name_round_trips_through_parse_defence(spec: str, name: str) -> None:
    defence = parse_defence(spec)
    assert defence.name == name
    assert parse_defence(defence.name) == defence
    assert isinstance(defence, Defence)
