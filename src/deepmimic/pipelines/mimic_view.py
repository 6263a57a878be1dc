"""How a mimic run reads back into a report: the queried teacher in the mentor's place.

results.json has the DeepMimic shape (``mentor`` is the teacher, ``students``) plus
``queries``: how many images the teacher was asked about.
"""

from __future__ import annotations

from typing import Any

from deepmimic.pipelines.deepmimic_view import DeepMimicView
from deepmimic.report.blocks import count
from deepmimic.report.run_data import ModelRun, RunData


class MimicView(DeepMimicView):
    """A black-box teacher, one student (or two: soft and top-1 answers), accuracy and agreement."""

    title = "Mimic"

    def data_items(self, run: RunData) -> list[str]:
        data = run.results.get("data") or {}
        queries = run.results.get("queries") or {}
        kind = "top-1 labels only" if run.results.get("label_only") else "soft labels"
        return [
            f"Data: `{data.get('name', '?')}`, {count(data.get('unlabeled'))} unlabelled images "
            "labelled by the teacher "
            f"({kind}), {count(data.get('test'))} test images.",
            f"Queries sent to the teacher in this session: {count(queries.get('total_sent'))} "
            f"(unlabelled images answered: {count((queries.get('unlabelled') or {}).get('labeled'))}"
            + (f", test images: {count(queries['test'].get('labeled'))}" if queries.get("test") else "")
            + ").",
            self.subset_item(run),
            *self.soft_label_items(run),
        ]

    def train_settings(self, run: RunData, model: ModelRun) -> dict[str, Any]:
        return {} if model.role == "mentor" else dict((run.config or {}).get("train") or {})
