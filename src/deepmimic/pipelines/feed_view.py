"""How a FEED run reads back into a report (results.json with ``rows``, one per model).

Curves are in ``<slug>/metrics.jsonl``, one folder per trained model; the ensemble row has
none (it averages the scratch models), nor has a pretrained teacher's row (kind
``pretrained``: evaluated as it is, not trained). The paper reports test error, so the
tables show both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepmimic.errors import DataError
from deepmimic.io_utils import slugify
from deepmimic.report.blocks import Table, cell, count, delta, num, paper_pct, pct
from deepmimic.report.run_data import ModelRun, RunData, read_metrics
from deepmimic.report.views import RunView, require

UNTRAINED = ("ensemble", "pretrained")  # row kinds of models not trained by the run


def feed_table(results: dict[str, Any]) -> str:
    """Model | Kind | Params | Test error | Test accuracy (written to table.md and printed after a run)."""
    lines = ["| Model | Kind | Params | Test error | Test accuracy |", "| --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        lines.append(
            f"| {row['name']} | {row['kind']} | {row['parameters']:,} | "
            f"{100 * row['error']:.2f}% | {100 * row['accuracy']:.2f}% |"
        )
    return "\n".join(lines)


class FeedView(RunView):
    """Scratch models, their ensemble, KD, pFEED, sFEED generations, pretrained teachers and their students."""

    title = "FEED"

    def load_models(self, run_dir: Path, results: dict[str, Any], path: Path) -> list[ModelRun]:
        models = []
        for index, row in enumerate(require(results, "rows", list, path)):
            if not isinstance(row, dict) or "name" not in row:
                raise DataError(f"{path}: rows[{index}] is not an object with a 'name'")
            metrics_path = run_dir / slugify(str(row["name"])) / "metrics.jsonl"
            models.append(
                ModelRun(str(row["name"]), str(row.get("kind", "")), row, read_metrics(metrics_path), metrics_path)
            )
        return models

    def headline(self, run: RunData) -> str:
        data = (run.results.get("data") or {}).get("name", "?")
        scored = [m for m in run.models if num(m.summary.get("accuracy")) is not None]
        text = f"FEED run on `{data}` with `{run.results.get('model', '?')}`."
        best = self.best([m for m in scored if m.role not in UNTRAINED])
        if best is not None:
            text += (
                f" Best trained model: **{best.name}** at {pct(best.summary['accuracy'])} test accuracy "
                f"({pct(1 - float(best.summary['accuracy']))} error)."
            )
        for ensemble in (m for m in scored if m.role == "ensemble"):
            text += f" {ensemble.name} (the reference): {pct(ensemble.summary['accuracy'])}."
        for teacher in (m for m in scored if m.role == "pretrained"):
            text += f" {teacher.name}, a teacher used as it is: {pct(teacher.summary['accuracy'])}."
        return text

    def results_table(self, run: RunData) -> Table:
        paper_acc = run.paper.get("accuracy") or {}
        has_paper = bool(paper_acc)
        header = ["Model", "Kind", "Seed", "Params", "Test error", "Test accuracy"]
        numeric = [False, False, True, True, True, True]
        if has_paper:
            header += ["Paper accuracy", "Δ vs paper"]
            numeric += [True, True]
        rows = []
        for model in run.models:
            s = model.summary
            seed = s.get("seed")
            row = [
                cell(model.name),
                cell(str(s.get("kind", "-"))),
                "-" if seed is None else str(seed),
                count(s.get("parameters")),
                pct(s.get("error")),
                pct(s.get("accuracy")),
            ]
            if has_paper:
                row += [paper_pct(paper_acc.get(model.name)), delta(s.get("accuracy"), paper_acc.get(model.name))]
            rows.append(tuple(row))
        return Table(tuple(header), tuple(rows), tuple(numeric))

    def text_table(self, results: dict[str, Any]) -> str:
        return feed_table(results)

    def accuracies(self, results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
        """Accuracy by a name that is the same in every seed of a sweep.

        A scratch model's name carries its seed (``Scratch (seed 3)``), and each sweep seed
        moves the scratch seeds to a new block, so scratch models are keyed by position
        (``Scratch model 1`` ...) and followed by their mean (``Scratch (mean of k)``).
        """
        rows = results["rows"]
        scratch = [float(r["accuracy"]) for r in rows if r.get("kind") == "scratch"]
        accuracy: dict[str, float] = {}
        position = 0
        for row in rows:
            if row.get("kind") != "scratch":
                accuracy[row["name"]] = row["accuracy"]
                continue
            position += 1
            accuracy[f"Scratch model {position}"] = row["accuracy"]
            if position == len(scratch):  # the mean right after the last scratch model
                accuracy[f"Scratch (mean of {len(scratch)})"] = sum(scratch) / len(scratch)
        return accuracy, {}

    def data_items(self, run: RunData) -> list[str]:
        data = run.results.get("data") or {}
        items = [
            f"Data: `{data.get('name', '?')}`, {count(data.get('train'))} training images, "
            f"{count(data.get('test'))} test images.",
            self.subset_item(run),
        ]
        items += self.soft_label_items(run)
        if num(run.results.get("agreement_scratch0_vs_ensemble")) is not None:
            items.append(
                "Agreement of the first scratch model with the ensemble: "
                f"{pct(run.results['agreement_scratch0_vs_ensemble'])}."
            )
        for row in (r for r in run.results.get("rows") or [] if r.get("kind") == "ensemble"):
            if num(row.get("accuracy_logit_average")) is None:
                continue  # results from before these were recorded
            members = ", ".join(pct(a) for a in row.get("member_accuracies") or [])
            items.append(
                f"{row['name']}: {pct(row['accuracy'])} averaging probabilities, "
                f"{pct(row['accuracy_logit_average'])} averaging logits; members {members}; "
                f"two members disagree on {pct(row.get('member_disagreement', 0.0))} of the test images."
            )
        return items

    def train_settings(self, run: RunData, model: ModelRun) -> dict[str, Any]:
        if model.role in UNTRAINED:
            return {}  # not trained: averages the scratch models' outputs, or a pretrained model used as it is
        settings = dict((run.config or {}).get("train") or {})
        if model.summary.get("seed") is not None:
            settings["seed"] = model.summary["seed"]
        return settings
