"""The ``deepmimic`` command line (``deepmimic = deepmimic.cli:main``; ``python -m deepmimic``)."""

from deepmimic.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
