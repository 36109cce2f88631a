"""The page ``elmokit cells`` writes: the text coloured by a unit's activation, one section per unit, each
character's value in its tooltip (the PNG of the same text is :func:`elmokit.core.plots.plot_text_activation`)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from elmokit.analysis.trace import Trace


def _colour(v: float) -> str:
    """``v`` in [-1, 1]: blue (negative) through white to red (positive), Karpathy's page's palette."""
    a = min(abs(v), 1.0)
    if v >= 0:
        return f"rgb(255,{int(255 * (1 - a))},{int(255 * (1 - a))})"
    return f"rgb({int(255 * (1 - a))},{int(255 * (1 - 0.6 * a))},255)"


def spread(v: np.ndarray) -> np.ndarray:
    """``v`` mapped onto [-1, 1] by its own range (low end -1, high end 1), so that what a unit does shows, whatever
    its offset (a cell state's range is not the hidden state's)."""
    lo, hi = float(v.min()), float(v.max())
    return (v - (lo + hi) / 2) / max((hi - lo) / 2, 1e-12)


def shown_range(trace: Trace, max_chars: int) -> tuple[int, int]:
    """The steps shown on the page and the PNG: from the start of the held-out half, about ``max_chars`` characters
    in whole lines (at least one)."""
    first = trace.selection()
    start = int(np.argmin(first)) if not first.all() else 0
    n, end = 0, start
    while end < trace.steps and (n < max_chars or end == start):
        n += len(trace.surfaces[end])
        end += 1
    while end < trace.steps and trace.surfaces[end - 1] != "\n":
        end += 1
    return start, end


def write_html(path: Path, trace: Trace, sections: list[dict], info: dict, max_chars: int = 3000) -> Path:
    """One page: a section per unit (``sections``: ``{"unit", "title"}``), the text coloured by its activation
    (over its range on the shown text: :func:`spread`), each character's value in its tooltip."""
    start, end = shown_range(trace, max_chars)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>elmokit cells: {html.escape(info['model'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        ".text{font-family:'DejaVu Sans Mono',monospace;font-size:14px;line-height:1.7;white-space:pre-wrap;"
        "word-break:break-all;border:1px solid #ccc;padding:1em}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
        ".legend span{display:inline-block;width:3em;text-align:center}</style></head><body>",
        f"<h1>Units of {html.escape(info['model'])}</h1>",
        f"<p>{html.escape(info['direction'])} LM, {trace.steps:,} pieces read; the text shown is from the held-out "
        f"half. Each unit's colours span its own range on the text shown: blue at its lowest, white at the middle, "
        f"red at its highest. Hover a character for its value.</p>",
        '<p class="legend">'
        + "".join(
            f'<span style="background:{_colour(v)}">{t}</span>' for v, t in ((-1, "low"), (0, "mid"), (1, "high"))
        )
        + "</p>",
    ]
    if info.get("ranking"):
        parts.append(
            "<table><tr><th>feature</th><th>best unit</th><th>selection</th><th>held out</th><th>score</th></tr>"
        )
        for feat, rec in info["ranking"].items():
            if rec["units"]:
                u = rec["units"][0]
                parts.append(
                    f"<tr><td>{html.escape(feat)}</td><td>{u['unit']}</td><td>{u['selection']:.3f}</td>"
                    f"<td>{u['heldout']:.3f}</td><td>{'AUC' if rec['kind'] == 'binary' else 'r'}</td></tr>"
                )
        parts.append("</table>")
    for sec in sections:
        v = trace.unit(sec["unit"])[start:end]
        spans = []
        for s, x, y in zip(trace.surfaces[start:end], v, spread(v)):
            if s == "\n":
                spans.append("\n")
            elif s:
                spans.append(f'<span style="background:{_colour(y)}" title="{x:.3f}">{html.escape(s)}</span>')
        parts.append(f"<h2>{html.escape(sec['title'])}</h2>")
        parts.append(f'<div class="text">{"".join(spans)}</div>')
    parts.append("</body></html>")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
