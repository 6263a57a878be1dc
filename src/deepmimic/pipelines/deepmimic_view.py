"""How a DeepMimic run reads back into a report (results.json with ``mentor`` and ``students``).

Curves are in ``mentor/metrics.jsonl`` and ``students/<slug>/metrics.jsonl``. The tables
are shaped like the DeepMimic paper's Tables 1 and 2, with the paper's numbers beside ours
when the run recorded them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepmimic.errors import DataError
from deepmimic.io_utils import slugify
from deepmimic.report.blocks import Table, cell, count, delta, num, paper_pct, pct
from deepmimic.report.run_data import ModelRun, RunData, read_metrics
from deepmimic.report.views import RunView, require


class DeepMimicView(RunView):
    """A mentor and its students; relative accuracy and agreement against the mentor."""

    title = "DeepMimic"

    def load_models(self, run_dir: Path, results: dict[str, Any], path: Path) -> list[ModelRun]:
        mentor = require(results, "mentor", dict, path)
        students = require(results, "students", list, path)
        models = [
            ModelRun(
                str(mentor.get("name", "Mentor")),
                "mentor",
                mentor,
                read_metrics(run_dir / "mentor" / "metrics.jsonl"),
                run_dir / "mentor" / "metrics.jsonl",
            )
        ]
        for index, student in enumerate(students):
            if not isinstance(student, dict) or "name" not in student:
                raise DataError(f"{path}: students[{index}] is not an object with a 'name'")
            metrics_path = run_dir / "students" / slugify(str(student["name"])) / "metrics.jsonl"
            models.append(ModelRun(str(student["name"]), "student", student, read_metrics(metrics_path), metrics_path))
        return models

    def headline(self, run: RunData) -> str:
        data = (run.results.get("data") or {}).get("name", "?")
        mentor = run.models[0]
        text = f"The mentor reached **{pct(mentor.summary.get('accuracy'))}** test accuracy on `{data}`."
        scored = [m for m in run.models[1:] if num(m.summary.get("accuracy")) is not None]
        students = [m for m in scored if not m.summary.get("uses_true_labels")]
        baselines = [m for m in scored if m.summary.get("uses_true_labels")]
        best = self.best(students)
        if best is not None:
            text += (
                f" Best student: **{best.name}** at {pct(best.summary['accuracy'])} "
                f"({pct(best.summary.get('relative_accuracy'))} of the mentor), agreeing with the mentor "
                f"on {pct(best.summary.get('agreement'))} of test images, trained on soft labels only."
            )
        if baselines:
            text += (
                " For comparison, "
                + ", ".join(f"{m.name} reached {pct(m.summary['accuracy'])}" for m in baselines)
                + " trained on the same student images with their true one-hot labels "
                "(the paper's section 4.2 comparison)."
            )
        return text

    def results_table(self, run: RunData) -> Table:
        paper = run.paper
        paper_acc, paper_rel = paper.get("accuracy") or {}, paper.get("relative_accuracy") or {}
        has_paper = bool(paper_acc or paper_rel)
        header = ["Model", "Architecture", "Method", "Params", "MACs", "Accuracy"]
        numeric = [False, False, False, True, True, True]
        if has_paper:
            header += ["Paper accuracy", "Δ vs paper"]
            numeric += [True, True]
        header += ["Relative accuracy"]
        numeric += [True]
        if has_paper:
            header += ["Paper relative"]
            numeric += [True]
        header += ["Agreement w/ mentor"]
        numeric += [True]
        rows = []
        for model in run.models:
            s = model.summary
            method = str(s.get("method", "-")) + (" (true labels)" if s.get("uses_true_labels") else "")
            row = [
                cell(model.name),
                f"`{cell(str(s.get('architecture', s.get('model', '-'))))}`",
                cell(method),
                count(s.get("parameters")),
                count(s.get("macs")),
                pct(s.get("accuracy")),
            ]
            if has_paper:
                row += [paper_pct(paper_acc.get(model.name)), delta(s.get("accuracy"), paper_acc.get(model.name))]
            row += [pct(s.get("relative_accuracy"))]
            if has_paper:
                row += [paper_pct(paper_rel.get(model.name))]
            row += [pct(s.get("agreement"))]
            rows.append(tuple(row))
        return Table(tuple(header), tuple(rows), tuple(numeric))

    def text_table(self, results: dict[str, Any]) -> str:
        """Model | Architecture | Params | Accuracy | Relative accuracy | Agreement [| paper columns]."""
        paper = results.get("paper") or {}
        paper_acc = paper.get("accuracy", {})
        paper_rel = paper.get("relative_accuracy", {})
        has_paper = bool(paper_acc or paper_rel)
        header = ["Model", "Architecture", "Params", "Accuracy", "Relative accuracy", "Agreement w/ mentor"]
        if has_paper:
            header += ["Paper accuracy", "Paper relative"]
        rows = [header, ["---"] * len(header)]
        mentor = results["mentor"]
        models = [(mentor, None, None)] + [
            (s, s.get("relative_accuracy"), s.get("agreement")) for s in results["students"]
        ]
        for model, rel, agree in models:
            params = model.get("parameters")  # unknown for a black-box teacher
            row = [
                model["name"],
                f"`{model['architecture']}`",
                "-" if params is None else f"{params:,}",
                pct(model.get("accuracy")),
                pct(rel),
                pct(agree),
            ]
            if has_paper:
                pa, pr = paper_acc.get(model["name"]), paper_rel.get(model["name"])
                row += [f"{pa:.2f}%" if pa is not None else "-", f"{pr:.2f}%" if pr is not None else "-"]
            rows.append(row)
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)

    def accuracies(self, results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
        accuracy = {results["mentor"]["name"]: results["mentor"]["accuracy"]}
        accuracy.update({s["name"]: s["accuracy"] for s in results["students"]})
        return accuracy, {s["name"]: s["relative_accuracy"] for s in results["students"]}

    def data_items(self, run: RunData) -> list[str]:
        data = run.results.get("data") or {}
        items = [
            f"Data: `{data.get('name', '?')}`, {count(data.get('labeled'))} labelled images (mentor), "
            f"{count(data.get('unlabeled'))} unlabelled images (students, soft labels only), "
            f"{count(data.get('test'))} test images.",
            self.subset_item(run),
        ]
        split = (run.config or {}).get("split") or {}
        if split:
            fraction = num(split.get("labeled_fraction"))
            share = "?" if fraction is None else f"{100 * fraction:g}%"
            text = (
                f"Split: {share} of the training images labelled (mentor), "
                f"the rest unlabelled (students), seed {split.get('seed', '-')}"
            )
            if num(split.get("removal_ratio_bound")):
                text += f", unbalanced (removal ratio bound {split['removal_ratio_bound']})"
            if split.get("out_of_domain"):
                text += f", out-of-domain images added ({pct((split['out_of_domain'] or {}).get('fraction'))})"
            items.append(text + ".")
        return items + self.soft_label_items(run)

    def train_settings(self, run: RunData, model: ModelRun) -> dict[str, Any]:
        config = run.config or {}
        if model.role == "mentor":
            return dict((config.get("mentor") or {}).get("train") or {})
        for stage in config.get("students") or []:
            if isinstance(stage, dict) and stage.get("name") == model.name:
                return dict(stage.get("train") or {})
        return {}
