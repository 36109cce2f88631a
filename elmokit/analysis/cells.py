"""``elmokit cells``: look inside one LM. Every unit of every layer (the hidden state and, for an LSTM, the cell
state) is recorded over a text; the units most correlated with a feature of the text are ranked, and a chosen
unit's activation colours the text (an HTML page and a PNG), after Karpathy, Johnson and Fei-Fei (2015),
"Visualizing and Understanding Recurrent Networks".

The text is read as the LM reads it in training: one stream, ``</s>`` between lines, the state carried through.
A unit's value at a piece is its value after reading that piece (for a backward LM: after reading it from the
right). Features are per piece, from the text as the model reads it (see :data:`FEATURES`); a piece's value is
its last character's, in reading order. Units are chosen on the first half of the text (by lines) and scored on
the second half, so the figures are held out: AUC for yes/no features (oriented by the selection half: a unit that
is low inside quotes counts as much as one that is high), Pearson correlation for counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from elmokit.analysis.page import shown_range, spread, write_html
from elmokit.analysis.trace import Trace, read_lines, trace_text
from elmokit.core.choices import CELL_FEATURES
from elmokit.core.errors import ElmokitError

# name -> (kind, what it is); binary features are scored by AUC, counts by correlation
FEATURES = {
    "quotes": ("binary", 'inside a quotation: an odd number of " (or an open \u201c) read so far in the line'),
    "brackets": ("binary", "inside brackets: more ( [ { than ) ] } read so far in the line"),
    "line_position": ("count", "characters read so far in the line"),
    "word_position": ("count", "characters read so far in the word (0 at a space)"),
    "digits": ("binary", "the piece ends in a digit"),
}
assert tuple(FEATURES) == CELL_FEATURES
OPENING, CLOSING = "([{", ")]}"


def text_features(trace: Trace, regex: str | None = None) -> dict[str, np.ndarray]:
    """``(steps,)`` float arrays, one per feature of :data:`FEATURES` (and ``regex``: the piece's last character is
    inside a match, matched on the line as the model reads it); NaN where a step has no character (``</s>``, the
    first bytes of a character spelled in bytes)."""
    n = trace.steps
    feats = {name: np.full(n, np.nan) for name in FEATURES}
    order = range(n) if trace.direction == "forward" else range(n - 1, -1, -1)
    opening, closing = (OPENING, CLOSING) if trace.direction == "forward" else (CLOSING, OPENING)
    quote_open, quote_close = ("\u201c", "\u201d") if trace.direction == "forward" else ("\u201d", "\u201c")
    quotes = depth = line_pos = word_pos = 0
    for t in order:
        s = trace.surfaces[t]
        if s == "\n":  # a line ends: every feature starts again
            quotes = depth = line_pos = word_pos = 0
            continue
        if not s:
            continue
        for ch in s if trace.direction == "forward" else s[::-1]:
            if ch == '"':
                quotes ^= 1
            elif ch == quote_open:
                quotes = 1
            elif ch == quote_close:
                quotes = 0
            if ch in opening:
                depth += 1
            elif ch in closing:
                depth = max(depth - 1, 0)
            line_pos += 1
            word_pos = 0 if ch.isspace() else word_pos + 1
        last = s[-1] if trace.direction == "forward" else s[0]
        feats["quotes"][t] = quotes
        feats["brackets"][t] = depth > 0
        feats["line_position"][t] = line_pos
        feats["word_position"][t] = word_pos
        feats["digits"][t] = last.isdigit()
    if regex:
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise ElmokitError(f"--regex {regex!r}: not a regular expression ({e})") from None
        feats["regex"] = _regex_feature(trace, pattern)
    return feats


def _regex_feature(trace: Trace, pattern: re.Pattern) -> np.ndarray:
    out = np.full(trace.steps, np.nan)
    start = 0
    while start < trace.steps:  # one line at a time: its steps up to and including its "\n"
        end = start
        while trace.surfaces[end] != "\n":
            end += 1
        text = "".join(trace.surfaces[start:end])
        inside = np.zeros(len(text) + 1, dtype=bool)
        for m in pattern.finditer(text):
            inside[m.start() : m.end()] = True
        pos = 0
        for t in range(start, end):
            s = trace.surfaces[t]
            if s:
                pos += len(s)
                last = pos - 1 if trace.direction == "forward" else pos - len(s)
                out[t] = inside[last]
        start = end + 1
    return out


def _auc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per column of ``x`` ``(n, units)``, the AUC of its values separating ``y`` (bool, ``(n,)``)."""
    pos, neg = int(y.sum()), int((~y).sum())
    out = np.empty(x.shape[1])
    for j in range(0, x.shape[1], 256):  # ranks in blocks of units: bounded memory
        ranks = x[:, j : j + 256].argsort(0, kind="stable").argsort(0, kind="stable") + 1.0  # (n, block)
        out[j : j + 256] = (ranks[y].sum(0) - pos * (pos + 1) / 2) / (pos * neg)
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    yc = y - y.mean()
    den = np.sqrt((xc * xc).sum(0) * (yc * yc).sum()) + 1e-12
    return (xc * yc[:, None]).sum(0) / den


def rank_units(trace: Trace, feats: dict[str, np.ndarray], top: int = 10) -> dict[str, dict]:
    """For each feature, the ``top`` units most related to it on the first half of the text (by lines), with the
    same units' scores on the second half (held out).

    Returns:
        ``{feature: {"kind", "positive_share", "selection_steps", "heldout_steps", "units": [{"unit",
        "selection", "heldout"}, ...]}}``; scores are AUC (oriented: ≥ 0.5 on the selection half) or correlation.
    """
    names, blocks = [], []
    for k, v in trace.units.items():
        names += [f"{k}:{i}" for i in range(v.shape[1])]
        blocks.append(v)
    allx = np.concatenate(blocks, 1)  # (steps, all units)
    first = trace.selection()
    out: dict[str, dict] = {}
    for name, f in feats.items():
        kind = FEATURES.get(name, ("binary", ""))[0]
        ok = ~np.isnan(f)
        sel, held = ok & first, ok & ~first
        rec: dict = {"kind": kind, "selection_steps": int(sel.sum()), "heldout_steps": int(held.sum())}
        if kind == "binary":
            rec["positive_share"] = float(np.nanmean(f)) if ok.any() else 0.0
            usable = all(0 < f[m].sum() < m.sum() for m in (sel, held))
        else:
            usable = all(np.nanstd(f[m]) > 0 for m in (sel, held) if m.any()) and sel.any() and held.any()
        if not usable:
            rec["units"] = []
            rec["note"] = "the feature does not vary in both halves of the text: nothing to rank"
            out[name] = rec
            continue
        score = _auc if kind == "binary" else _corr
        s_sel = score(allx[sel], f[sel].astype(bool) if kind == "binary" else f[sel])
        strength = np.abs(s_sel - 0.5) if kind == "binary" else np.abs(s_sel)
        best = np.argsort(-strength, kind="stable")[:top]
        s_held = score(allx[held][:, best], f[held].astype(bool) if kind == "binary" else f[held])
        units = []
        for j, h in zip(best, s_held):
            flip = s_sel[j] < (0.5 if kind == "binary" else 0.0)
            units.append(
                {
                    "unit": names[j],
                    "selection": float(1 - s_sel[j] if flip and kind == "binary" else -s_sel[j] if flip else s_sel[j]),
                    "heldout": float(1 - h if flip and kind == "binary" else -h if flip else h),
                    "sign": -1 if flip else 1,
                }
            )
        rec["units"] = units
        out[name] = rec
    return out


def _sections(ranking: dict, control: dict, chosen: list[str]) -> list[dict]:
    """The page's sections (``{"unit", "title"}``): the ``chosen`` units, or by default the best unit of each
    feature, first the quote or bracket unit further above chance (held out, over the control's when there is one,
    else over 0.5); each titled with the features it is best for."""

    def margin(f: str) -> float:
        rec, ctrl = ranking[f], control.get(f)
        if not rec["units"]:
            return 0.0
        return rec["units"][0]["heldout"] - (ctrl["units"][0]["heldout"] if ctrl and ctrl["units"] else 0.5)

    if not chosen:
        order = sorted(
            ranking, key=lambda f: (f not in ("quotes", "brackets"), -margin(f) if f in ("quotes", "brackets") else 0)
        )
        chosen = list(dict.fromkeys(ranking[f]["units"][0]["unit"] for f in order if ranking[f]["units"]))
    best_for: dict[str, list[str]] = {}  # unit -> "quotes (held-out AUC 0.883)", ...
    for f, rec in ranking.items():
        if rec["units"]:
            metric = "AUC" if rec["kind"] == "binary" else "r"
            best_for.setdefault(rec["units"][0]["unit"], []).append(
                f"{f} (held-out {metric} {rec['units'][0]['heldout']:.3f})"
            )
    return [
        {"unit": u, "title": f"unit {u}" + (f": best for {', '.join(best_for[u])}" if u in best_for else "")}
        for u in chosen
    ]


def inspect_cells(
    model_path: str,
    files: list[str],
    out: str,
    features: list[str] | None = None,
    regex: str | None = None,
    units: list[str] | None = None,
    max_pieces: int = 40000,
    top: int = 10,
    control: bool = False,
    seed: int = 0,
    max_chars: int = 3000,
) -> dict:
    """The ``elmokit cells`` command: trace, rank, write ``OUT/cells.json``, ``cells.html`` and ``cells.png``.

    Args:
        model_path: an LM model directory (a ``pretrain --out``, or one direction of a biLM bundle).
        files: text files (one line per sentence or paragraph).
        out: the directory to write.
        features: the built-in features to rank units by (default: all of :data:`FEATURES`).
        regex: a regular expression: one more feature (inside a match).
        units: the units to show (default: the best unit of each feature, first the quote or bracket unit whose
            held-out score is further above the control's, or above 0.5); the PNG shows the first.
        max_pieces: read at most this many pieces of the text.
        top: units listed per feature.
        control: also rank the units of an untrained model of the same shape (``seed``): the chance level.
        max_chars: characters shown on the page and the PNG.

    Returns:
        What ``cells.json`` holds.
    """
    from elmokit.core.plots import plot_text_activation
    from elmokit.lm.model import LanguageModel
    from elmokit.lm.model_dir import load_model, made_by

    for f in features or []:
        if f not in FEATURES:
            raise ElmokitError(f"--feature {f}: unknown; the features are {', '.join(FEATURES)} (and --regex)")
    loaded = load_model(model_path)
    direction = loaded.manifest["direction"]
    lines = read_lines(files, loaded.vocab, max_pieces, loaded.cfg.data.max_line_chars)
    trace = trace_text(loaded.model, loaded.vocab, lines, direction)
    feats = text_features(trace, regex)
    feats = {k: v for k, v in feats.items() if not features or k in features or k == "regex"}
    ranking = rank_units(trace, feats, top)
    result: dict = {
        "model": str(model_path),
        "made_by": made_by(loaded),
        "direction": direction,
        "cell": loaded.cfg.model.cell,
        "files": [str(f) for f in files],
        "pieces": trace.steps,
        "lines": len(lines),
        "regex": regex,
        "max_pieces": max_pieces,
        "units": {k: v.shape[1] for k, v in trace.units.items()},
        "ranking": ranking,
        "features": {k: FEATURES.get(k, ("binary", f"inside a match of {regex!r}"))[1] for k in feats},
    }
    if control:
        torch.manual_seed(seed)
        fresh = LanguageModel(loaded.cfg.model, loaded.vocab.size).eval()
        c_rank = rank_units(trace_text(fresh, loaded.vocab, lines, direction), feats, top)
        result["control"] = {"what": f"an untrained model of the same shape (torch seed {seed})", "ranking": c_rank}
    chosen = list(units or [])
    for u in chosen:
        trace.unit(u)  # an unknown name fails before anything is written
    sections = _sections(ranking, (result.get("control") or {}).get("ranking", {}), chosen)
    chosen = [s["unit"] for s in sections]
    result["shown_units"] = chosen
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if sections:
        write_html(out_dir / "cells.html", trace, sections, result, max_chars)
        start, end = shown_range(trace, min(max_chars, 1500))
        plot_text_activation(
            trace.surfaces[start:end],
            spread(trace.unit(sections[0]["unit"])[start:end]),
            out_dir / "cells.png",
            f"{result['model']} ({direction}): {sections[0]['title']}",
        )
    from elmokit.core.files import write_json

    write_json(out_dir / "cells.json", result)
    return result


def summary_lines(result: dict) -> list[str]:
    """The table ``elmokit cells`` prints."""
    rows = [
        f"{result['direction']} {result['cell']} LM, {result['pieces']:,} pieces; units chosen on the first "
        f"half of the text, scored on the second (held out)",
        f"{'feature':<14} {'best unit':<10} {'selection':>9} {'held out':>9}  score"
        + ("  control (untrained, held out)" if "control" in result else ""),
    ]
    for feat, rec in result["ranking"].items():
        if not rec["units"]:
            rows.append(f"{feat:<14} {rec['note']}")
            continue
        u = rec["units"][0]
        line = (
            f"{feat:<14} {u['unit']:<10} {u['selection']:>9.3f} {u['heldout']:>9.3f}  "
            f"{'AUC' if rec['kind'] == 'binary' else 'r'}"
        )
        if "control" in result and result["control"]["ranking"][feat]["units"]:
            c = result["control"]["ranking"][feat]["units"][0]
            line += f"  {c['heldout']:.3f} ({c['unit']})"
        rows.append(line)
    return rows
