"""One self-contained HTML report: tables and the PNG plots embedded as base64 (no external files)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 6px}th{background:#eee}figure{display:inline-block;margin:1em}"""


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="", escape=True, border=0) if not df.empty else "<p>None.</p>"


def _figure(stem: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    return (f'<figure id="{html.escape(stem)}"><img alt="{html.escape(stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name}</figcaption></figure>")


def render_html(title: str, context: list[str], sections: list[tuple[str, pd.DataFrame]],
                plots: dict[str, Path], markdown: str) -> str:
    """``context`` lines (device, batch, seq_len, ...), ``sections`` of (heading, table), plots by stem."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in context]
    parts.append("</ul><h2>Plots</h2>")
    parts += [_figure(stem, path) for stem, path in plots.items()]
    for heading, df in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", _table(df)]
    parts += ["<h2>SDPA vs Performer vs Reformer vs TF-IDF+LR (Markdown)</h2>",
              f"<pre>{html.escape(markdown)}</pre></body></html>"]
    return "\n".join(parts)
