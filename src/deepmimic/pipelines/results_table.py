"""Markdown tables shaped like the DeepMimic paper's Tables 1 and 2."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def results_table(results: dict[str, Any]) -> str:
    """Model | Architecture | Params | Accuracy | Relative accuracy | Agreement [| paper columns].

    ``results`` is the dict written to results.json. When it carries a ``paper`` block,
    the paper's accuracy and relative accuracy are printed beside ours.
    """
    paper = results.get("paper") or {}
    paper_acc = paper.get("accuracy", {})
    paper_rel = paper.get("relative_accuracy", {})
    has_paper = bool(paper_acc or paper_rel)
    header = ["Model", "Architecture", "Params", "Accuracy", "Relative accuracy", "Agreement w/ mentor"]
    if has_paper:
        header += ["Paper accuracy", "Paper relative"]
    rows = [header, ["---"] * len(header)]
    mentor = results["mentor"]
    models = [(mentor, None, None)] + [(s, s.get("relative_accuracy"), s.get("agreement")) for s in results["students"]]
    for model, rel, agree in models:
        params = model.get("parameters")  # unknown for a black-box teacher
        row = [
            model["name"],
            f"`{model['architecture']}`",
            "-" if params is None else f"{params:,}",
            _pct(model.get("accuracy")),
            _pct(rel),
            _pct(agree),
        ]
        if has_paper:
            pa = paper_acc.get(model["name"])
            pr = paper_rel.get(model["name"])
            row += [f"{pa:.2f}%" if pa is not None else "-", f"{pr:.2f}%" if pr is not None else "-"]
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
