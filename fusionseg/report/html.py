"""Small HTML helpers: escaped tables, inlined images, video players, and the page frame with its stylesheet."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable

import pandas as pd

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #1f3b57; color: white; padding: 18px 32px; }
header h1 { margin: 0; font-size: 24px; } header p { margin: 4px 0 0; opacity: .8; }
nav { padding: 8px 32px; background: #e8ecf1; font-size: 14px; } nav a { margin-right: 16px; color: #1f3b57; }
main { padding: 8px 32px 40px; max-width: 1500px; }
section { background: white; border-radius: 6px; padding: 12px 20px 18px; margin: 18px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { color: #1f3b57; border-bottom: 2px solid #e8ecf1; padding-bottom: 4px; } h3 { margin-bottom: 6px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #d9dee4; padding: 4px 8px; text-align: right; }
th { background: #eef2f6; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
td.best { font-weight: bold; color: #0b6e2f; }
.note { color: #666; font-size: 13px; }
.strip td { padding: 2px; border: none; background: none !important; text-align: center; }
.strip th { border: none; background: none; text-align: center; }
.strip img { display: block; width: 190px; }
img.chart { max-width: 100%; }
.videos { display: flex; flex-wrap: wrap; gap: 14px; margin: 8px 0; }
.videos figure { margin: 0; } .videos figcaption { font-size: 13px; color: #444; margin-top: 2px; }
video { display: block; width: 640px; max-width: 100%; background: #000; }
.contact td { padding: 2px; border: none; background: none !important; text-align: center; vertical-align: top; }
.contact th { border: none; background: none; text-align: center; }
.contact img { display: block; width: 640px; max-width: 100%; }
.warn { color: #a4461b; }
"""


def escape(value: object) -> str:
    return html.escape(str(value))


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_tag(data: bytes, mime: str, alt: str, css_class: str = "") -> str:
    class_attr = f' class="{css_class}"' if css_class else ""
    return f'<img{class_attr} alt="{escape(alt)}" src="{data_uri(data, mime)}">'


def video_tag(src: str, mime: str, title: str) -> str:
    """An HTML5 player of `src` (a data URI or a link), looping, muted, started by the reader."""
    return (
        f'<video controls loop muted playsinline preload="metadata" title="{escape(title)}">'
        f'<source src="{escape(src)}" type="{escape(mime)}">{escape(title)}: this browser cannot play {escape(mime)}</video>'
    )


def table(frame: pd.DataFrame, float_format: str = "{:.3f}", best_columns: Iterable[str] = ()) -> str:
    """An HTML table; numbers formatted with `float_format`; the maximum of each best column in bold."""
    best = {c: frame[c].max() for c in best_columns if c in frame and frame[c].notna().any()}
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = []
    for _, record in frame.iterrows():
        cells = []
        for column, value in record.items():
            css = ' class="best"' if column in best and value == best[column] else ""
            cells.append(f"<td{css}>{escape(_format(value, float_format))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: header, a navigation bar over the sections, then the sections."""
    nav = "".join(f'<a href="#{escape(anchor)}">{escape(name)}</a>' for anchor, name, _ in sections)
    body = "".join(section(anchor, name, content) for anchor, name, content in sections)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>"
    )


def _format(value: object, float_format: str) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else float_format.format(value)
    return str(value)
