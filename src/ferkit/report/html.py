"""A single self-contained HTML page: inline CSS, PNGs embedded as base64, no external resources.

The page is assembled from sections; each section is a heading plus blocks (tables, figures, notes),
built with the helpers below so every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

CSS = """
:root { --ink: #1d2733; --muted: #5b6b7c; --line: #d9e0e8; --accent: #2e6da4; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: var(--ink); color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; font-weight: 600; }
header p { margin: 0; color: #c9d4df; }
main { max-width: 1120px; margin: 0 auto; padding: 20px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px;
          margin: 18px 0; }
h2 { margin: 0 0 12px 0; font-size: 19px; color: var(--accent); }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 14px; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px; text-align: left; vertical-align: top; }
th { background: #eef2f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 8px 14px 8px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figcaption { color: var(--muted); font-size: 13px; max-width: 520px; }
p.note { color: var(--muted); margin: 6px 0; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 12px; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: object, digits: int = 4) -> str:
    """A number for a table cell: floats to ``digits`` decimals, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str] | None, rows: Iterable[Sequence[object]], caption: str | None = None,
          css_class: str = "") -> str:
    """An HTML table (no header row when ``header`` is None); numeric cells are right-aligned and formatted with :func:`fmt`."""
    out = [f'<table class="{esc(css_class)}">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    if header:
        out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{esc(fmt(v))}</td>' if num else f"<td>{esc(fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def figure(png_path: str | Path, caption: str) -> str:
    """A figure with the PNG embedded as a base64 data URI."""
    data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def section(title: str, blocks: Iterable[str], anchor: str | None = None) -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{esc(title)}</h2>" + "".join(blocks) + "</section>"


def page(title: str, subtitle: str, sections: Iterable[str], footer: str = "") -> str:
    """The whole document: one inline stylesheet, no scripts, no external links."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>"
        + "".join(sections)
        + f"</main><footer>{esc(footer)}</footer></body></html>\n"
    )


def write_page(path: str | Path, title: str, subtitle: str, sections: Iterable[str], footer: str = "") -> Path:
    """Write the page atomically (temp file + rename) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page(title, subtitle, sections, footer), encoding="utf-8")
    tmp.replace(path)
    return path
