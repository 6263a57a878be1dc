"""``deepmimic serve`` and ``deepmimic export``: registered on the main parser by :func:`register`."""

from __future__ import annotations

import argparse

from deepmimic.cli.options import int_between, port_number, positive_int
from deepmimic.errors import DeepMimicError


class CliUsageError(DeepMimicError):
    """A command-line value that cannot be used."""


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliUsageError(f"{flag} expects comma-separated numbers, got '{text}'") from None


def answer_spec(text: str) -> str:
    """An argparse type for ``--answer``: a defence spec (``none``, ``top1``, ``topk:K``, ``round:D``), normalised."""
    from deepmimic.teachers.defences import parse_defence  # noqa: PLC0415 (torch only when used)

    try:
        return parse_defence(text).name
    except DeepMimicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from deepmimic.serving.server import serve  # noqa: PLC0415 (fastapi/uvicorn only when serving)

    onnx_options = {
        "onnx_layout": args.onnx_layout,
        "onnx_scale": args.onnx_scale,
        "onnx_mean": _floats(args.onnx_mean, "--onnx-mean") if args.onnx_mean else None,
        "onnx_std": _floats(args.onnx_std, "--onnx-std") if args.onnx_std else None,
        "onnx_output": args.onnx_output,
    }
    serve(
        args.model,
        host=args.host,
        port=args.port,
        token_env=args.token_env,
        max_batch=args.max_batch,
        answer=args.answer,
        **onnx_options,
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    from deepmimic.export import export_onnx, export_torchscript  # noqa: PLC0415
    from deepmimic.models.bundle import load_trained, save_bundle  # noqa: PLC0415

    trained = load_trained(args.checkpoint)
    if args.onnx:
        report = export_onnx(trained, args.onnx, batch_size=args.batch_size, opset=args.opset)
    elif args.torchscript:
        report = export_torchscript(trained, args.torchscript, batch_size=args.batch_size)
    else:
        path = save_bundle(trained, args.bundle)
        reloaded = load_trained(path)
        images = torch.randint(0, 256, (args.batch_size, *trained.in_shape), dtype=torch.uint8)
        diff = float((reloaded.probs(images) - trained.probs(images)).abs().max())
        print(
            f"wrote {path} (bundle); reloaded and verified on a batch of {args.batch_size}: "
            f"max abs diff probs {diff:.3g}"
        )
        return 0
    print(report.summary())
    print("input 'images': float32 (B, C, H, W) pixels / 255 (0-1; mean/std inside); outputs: logits, probs (B, K)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` and ``export`` subcommands to the main parser's subparsers."""
    serve = sub.add_parser(
        "serve",
        help="serve a trained model over HTTP (POST /v1/predict)",
        description=(
            "Serve a trained stage folder (e.g. runs/demo/students/student-a), a bundle or an .onnx file "
            "over HTTP: POST /v1/predict, GET /v1/info (wire format in docs/wire-format.md). Listens on "
            "127.0.0.1 unless --host says otherwise; the bearer token comes from an environment variable."
        ),
    )
    serve.add_argument("model", metavar="MODEL", help="trained stage folder, bundle .safetensors, or .onnx file")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--token-env",
        metavar="NAME",
        default=None,
        help="environment variable holding the bearer token clients must send (default: DEEPMIMIC_SERVE_TOKEN if set)",
    )
    serve.add_argument(
        "--max-batch", type=positive_int, default=1024, metavar="N", help="most images per request (default 1024)"
    )
    serve.add_argument(
        "--answer",
        type=answer_spec,
        default="none",
        metavar="SPEC",
        help="what clients get back: none (the full probabilities, default), top1 (one-hot top class), "
        "topk:K (the K largest, renormalised) or round:D (rounded to D decimals, renormalised); "
        "deepmimic audit measures how much each one slows a copy",
    )
    onnx = serve.add_argument_group("ONNX files not written by deepmimic export")
    onnx.add_argument("--onnx-layout", choices=("NCHW", "NHWC"), default="NCHW", help="input layout (default NCHW)")
    onnx.add_argument(
        "--onnx-scale", type=float, default=None, metavar="S", help="multiply pixels by S (default: divide by 255)"
    )
    onnx.add_argument("--onnx-mean", metavar="M[,M,M]", help="per-channel mean subtracted after scaling (default 0)")
    onnx.add_argument("--onnx-std", metavar="S[,S,S]", help="per-channel std divided by after the mean (default 1)")
    onnx.add_argument(
        "--onnx-output",
        choices=("auto", "logits", "probs"),
        default="auto",
        help="what the first output holds (default auto: by its name)",
    )
    serve.set_defaults(func=_cmd_serve)

    export = sub.add_parser(
        "export",
        help="export a trained model to ONNX or TorchScript (verified)",
        description=(
            "Export a trained stage folder (e.g. runs/demo/students/student-a) with its normalisation inside: "
            "the graph takes float32 (B, C, H, W) pixels divided by 255 (0-1) and returns logits and probs. "
            "The file is checked against PyTorch before it is written; the max abs difference is printed."
        ),
    )
    export.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="trained stage folder (holding weights.safetensors) or bundle"
    )
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model")
    target.add_argument("--torchscript", metavar="OUT.pt", help="write a TorchScript module (torch.jit.load)")
    target.add_argument(
        "--bundle", metavar="OUT.safetensors", help="write a standalone deepmimic bundle (weights + architecture)"
    )
    export.add_argument(
        "--batch-size",
        type=int_between(1, 4096),
        default=8,
        metavar="N",
        help="batch traced and verified, 1..4096 (default 8)",
    )
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.set_defaults(func=_cmd_export)
