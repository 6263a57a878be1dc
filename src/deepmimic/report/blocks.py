"""The building blocks of a report (headings, paragraphs, tables, images) and the formatting of numbers in them.

:mod:`deepmimic.report.markdown` and :mod:`deepmimic.report.html` lay blocks out; each
pipeline's :class:`deepmimic.report.views.RunView` fills them with its run's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True)
class Image:
    file: str  # PNG file name beside the report
    alt: str  # a few words naming the figure
    caption: str


Block = Heading | Paragraph | Bullets | Code | Table | Image

# ----------------------------------------------------------------------------- formatting


def num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def pct(fraction: Any) -> str:
    """``0.949`` -> ``"94.90%"``; ``"-"`` when absent."""
    value = num(fraction)
    return "-" if value is None else f"{100 * value:.2f}%"


def count(value: Any) -> str:
    """``438154`` -> ``"438,154"``; ``"-"`` when absent."""
    number = num(value)
    return "-" if number is None else f"{int(number):,}"


def duration(seconds: Any) -> str:
    """``55.2`` -> ``"55.2 s"``, ``725`` -> ``"12 min 05 s"``, ``3720`` -> ``"1 h 02 min"``."""
    value = num(seconds)
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def delta(ours: Any, paper: Any) -> str:
    """Ours (a fraction) minus the paper's (percent), in percentage points."""
    a, b = num(ours), num(paper)
    return "-" if a is None or b is None else f"{100 * a - b:+.2f} pp"


def paper_pct(value: Any) -> str:
    number = num(value)
    return "-" if number is None else f"{number:.2f}%"
