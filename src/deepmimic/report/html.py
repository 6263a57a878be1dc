"""A self-contained HTML rendering of the report's blocks.

The page needs nothing but itself: figures are embedded as base64 ``data:`` URIs,
the style sheet is inline, and no script, font or image is fetched from anywhere.
All text is escaped with :func:`html.escape`; links are only kept when they point
to a file beside the report (no URL scheme).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence

from deepmimic.report.blocks import Block, Bullets, Code, Heading, Image, Paragraph, Table

STYLE = """
body { margin: 0; background: #f6f7f9; color: #1d232b;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e3e6ea; }
p.lead { font-size: 17px; }
code { font: 13px/1.4 SFMono-Regular, Menlo, Consolas, monospace; background: #f0f2f5; \
padding: 1px 4px; border-radius: 3px; }
pre { background: #f0f2f5; padding: 10px 14px; border-radius: 6px; overflow-x: auto; }
pre code { padding: 0; background: none; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6ea; text-align: left; white-space: nowrap; }
th { background: #f0f2f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; border-radius: 4px; }
figcaption { color: #5a6470; font-size: 13px; margin-top: 4px; }
.wide { overflow-x: auto; }
"""

_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
PIPE_ESCAPE = "\\|"  # how Markdown table cells escape a "|"


def _plain(text: str) -> str:
    """Escape ``text`` and turn ``**bold**`` and relative ``[links](file)`` into HTML."""
    escaped = html.escape(text, quote=True)

    def link(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        return label if ":" in target else f'<a href="{target}">{label}</a>'

    return _BOLD.sub(r"<strong>\1</strong>", _LINK.sub(link, escaped))


def inline(text: str) -> str:
    """Render the report's inline markup (``code``, ``**bold**``, ``[link](file)``) as escaped HTML."""
    parts, last = [], 0
    for match in _CODE.finditer(text):
        parts.append(_plain(text[last : match.start()]))
        parts.append(f"<code>{html.escape(match.group(1), quote=True)}</code>")
        last = match.end()
    parts.append(_plain(text[last:]))
    return "".join(parts)


def _table(table: Table) -> str:
    def cells(values: Sequence[str], tag: str) -> str:
        out = []
        for value, right in zip(values, table.numeric):
            css = ' class="num"' if right else ""
            out.append(f"<{tag}{css}>{inline(value.replace(PIPE_ESCAPE, '|'))}</{tag}>")
        return "".join(out)

    head = f"<tr>{cells(table.header, 'th')}</tr>"
    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in table.rows)
    return f'<div class="wide"><table><thead>{head}</thead><tbody>{body}</tbody></table></div>'


def _figure(image: Image, png: bytes | None) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(image.alt, quote=True)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{inline(image.caption)}</figcaption></figure>"
    )


def render_html(blocks: Sequence[Block], images: Mapping[str, bytes]) -> str:
    """One HTML page for ``blocks``; ``images`` maps each figure's file name to its PNG bytes."""
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "Report")
    body: list[str] = []
    lead_done = False
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f"<h{level}>{inline(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            css = "" if lead_done else ' class="lead"'
            lead_done = True
            body.append(f"<p{css}>{inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Code):
            body.append(f"<pre><code>{html.escape(block.text, quote=True)}</code></pre>")
        elif isinstance(block, Table):
            body.append(_table(block))
        elif isinstance(block, Image):
            body.append(_figure(block, images.get(block.file)))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title, quote=True)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )
