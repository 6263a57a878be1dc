"""Export trained models (ONNX, TorchScript) with normalisation inside, verified on export.

    from deepmimic.models.bundle import load_trained
    from deepmimic.export import export_onnx
    report = export_onnx(load_trained("runs/demo/students/student-a"), "student-a.onnx")
    print(report.summary())

``load_trained`` rebuilds the model from the stage's self-describing ``weights.safetensors``
alone (:mod:`deepmimic.models.description`); a standalone bundle is the same file format.

The exported graph takes float32 (B, C, H, W) pixels scaled to 0-1 (uint8 / 255) and returns
``(logits, probs)``; see :mod:`deepmimic.export.exporters` and docs/serving-and-export.md.
"""

from deepmimic.export.exporters import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    INPUT_CONVENTION,
    INPUT_NAME,
    OUTPUT_NAMES,
    ExportError,
    ExportReport,
    InferenceModule,
    export_onnx,
    export_torchscript,
)

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_OPSET",
    "INPUT_CONVENTION",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "ExportError",
    "ExportReport",
    "InferenceModule",
    "export_onnx",
    "export_torchscript",
]
