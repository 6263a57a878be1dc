"""Reports of finished runs: report.md, a self-contained report.html and PNG figures.

Built from a run directory's saved files only (results.json, config.yaml,
metrics.jsonl); the training engine is never imported::

    from deepmimic.report.build import build_report
    build_report("runs/mnist-table1")  # {"accuracy.png": ..., "report.md": ..., ...}

The package's ``__init__`` imports nothing, so a pipeline's report view can use
:mod:`deepmimic.report.blocks` without loading the whole report machinery.
"""
