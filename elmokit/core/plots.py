"""Every PNG elmokit draws (matplotlib, headless): training curves, scalar-mix weights, text coloured by a unit,
gradient norms per lag.

Text is drawn in DejaVu Sans (matplotlib's own) with NanumGothic as the fallback for every glyph it lacks, so Korean
labels and text show as Hangul rather than empty boxes on any machine: the font files come with the
``koreanize-matplotlib`` package (a dependency), registered here by path without importing that package (importing
it would change matplotlib's global settings for the caller too). The settings hold only while a figure of ours is
drawn (:func:`figure_style`).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KOREAN_FONT = "NanumGothic"
KOREAN_FONT_FILE = "NanumGothic.ttf"  # in koreanize_matplotlib/fonts/


@functools.cache
def korean_font_path() -> Path | None:
    """The NanumGothic file shipped with ``koreanize-matplotlib``, registered with matplotlib (None when the package
    is missing, e.g. an install without dependencies: Hangul is then drawn as boxes, with no error)."""
    import importlib.util

    from matplotlib import font_manager

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / KOREAN_FONT_FILE
    if not path.is_file():
        return None
    font_manager.fontManager.addfont(str(path))
    return path


def font_families(monospace: bool = False) -> list[str]:
    """The font list every figure draws text with: DejaVu (Sans, or Sans Mono) first, then NanumGothic for Hangul."""
    first = "DejaVu Sans Mono" if monospace else "DejaVu Sans"
    return [first, KOREAN_FONT] if korean_font_path() else [first]


@contextmanager
def figure_style() -> Iterator:
    """matplotlib on the Agg backend, with :func:`font_families` while the block draws (yields ``pyplot``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.family": font_families()}):
        yield plt


def _line(ax, x: list, y: list, fmt: str = "-", **kwargs) -> None:
    """``ax.plot`` that keeps a curve of one point visible (a line through one point draws nothing)."""
    if len(x) == 1 and "o" not in fmt:
        kwargs.setdefault("marker", "o")
    ax.plot(x, y, fmt, **kwargs)


def plot_curves(records: list[dict], path: str | Path, title: str = "") -> Path:
    """Plot train loss (and validation loss, if any) against step; also tokens/s. Written atomically.

    Args:
        records: ``metrics.jsonl`` records (``step``, ``split``, ``loss``, optionally ``tokens_per_s``).
        path: the PNG to write.
    """
    with figure_style() as plt:
        train = [r for r in records if r.get("split") == "train"]
        valid = [r for r in records if r.get("split") == "valid"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        if train:
            _line(ax1, [r["step"] for r in train], [r["loss"] for r in train], label="train (sampled softmax)", lw=1)
        if valid:
            ax1.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="valid (full softmax)")
        ax1.set_xlabel("step")
        ax1.set_ylabel("loss per subword (nats)")
        ax1.legend()
        ax1.grid(alpha=0.3)
        tps = [r for r in train if "tokens_per_s" in r]
        if tps:
            _line(ax2, [r["step"] for r in tps], [r["tokens_per_s"] for r in tps], lw=1)
        ax2.set_xlabel("step")
        ax2.set_ylabel("tokens/s")
        ax2.grid(alpha=0.3)
        fig.suptitle(title)
        return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically (temp file, then rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_mix_weights(mixes: list, path: str | Path, labels: list[str] | None = None) -> Path:
    """Bar chart of each :class:`~elmokit.modules.scalar_mix.ScalarMix`'s softmax layer weights (and gamma)."""
    with figure_style() as plt:
        k = len(mixes[0].weights)
        width = 0.8 / len(mixes)
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * k * len(mixes), 3.5))
        for j, mix in enumerate(mixes):
            s = mix.normalized_weights().detach().cpu().tolist()
            name = labels[j] if labels else f"mix {j}"
            ax.bar([i + j * width for i in range(k)], s, width, label=f"{name} (γ={float(mix.gamma.detach()):.2f})")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(k)], [f"layer {i}" for i in range(k)])
        ax.set_ylabel("softmax weight")
        ax.legend()
        return save_figure(fig, path)


def plot_task_curves(records: list[dict], path: str | Path, metric: str, title: str = "") -> Path:
    """Downstream training: train loss against step, and the dev metric (and LR) at each evaluation."""
    with figure_style() as plt:
        train = [r for r in records if r.get("split") == "train"]
        dev = [r for r in records if r.get("split") == "dev"]
        key = "f1" if metric == "span_f1" else "accuracy"
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        _line(ax1, [r["step"] for r in train], [r["loss"] for r in train], lw=1)
        ax1.set_xlabel("step")
        ax1.set_ylabel("train loss")
        ax1.grid(alpha=0.3)
        ax2.plot([r["step"] for r in dev], [r[key] for r in dev], "o-", label=f"dev {key}")
        ax2.set_xlabel("step")
        ax2.set_ylabel(f"dev {key} (%)")
        ax2.grid(alpha=0.3)
        if dev:
            lr = ax2.twinx()
            _line(lr, [r["step"] for r in dev], [r["lr"] for r in dev], "--", color="grey", label="lr")
            lr.set_ylabel("learning rate")
        fig.suptitle(title)
        return save_figure(fig, path)


def plot_text_activation(surfaces: list[str], values, path: str | Path, title: str = "", columns: int = 100) -> Path:
    """Text coloured by one unit's activation, Karpathy-style: a monospace grid, ``columns`` characters a row, a
    new row at each ``"\\n"``; red positive, blue negative, scaled by the largest magnitude shown. Written
    atomically.

    Args:
        surfaces: per step, the text of the piece (``"\\n"`` ends a line; ``""`` shows nothing).
        values: ``(steps,)`` the unit's value at each step.
    """
    import numpy as np

    with figure_style() as plt:
        cells: list[tuple[int, int, str, float]] = []  # (row, column, character, value)
        row = col = 0
        for s, v in zip(surfaces, values):
            if s == "\n":
                row, col = row + 1, 0
                continue
            for ch in s:
                if col >= columns:
                    row, col = row + 1, 0
                cells.append((row, col, ch, float(v)))
                col += 1
        rows = max(row + (col > 0), 1)
        scale = max((abs(c[3]) for c in cells), default=1.0) or 1.0
        rgb = np.ones((rows, columns, 3))
        for r, c, _, v in cells:
            a = min(abs(v) / scale, 1.0)
            rgb[r, c] = (1.0, 1 - a, 1 - a) if v >= 0 else (1 - a, 1 - 0.6 * a, 1.0)
        fig, ax = plt.subplots(figsize=(columns * 0.11 + 0.4, rows * 0.22 + 0.8))
        ax.imshow(rgb, aspect="auto", interpolation="nearest", extent=(0, columns, rows, 0))
        fonts = font_families(monospace=True)  # one character a cell; Hangul from NanumGothic
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9, loc="left")
        with warnings.catch_warnings():  # a glyph neither font has (rare scripts) is drawn as a box; the page shows it
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            for r, c, ch, _ in cells:
                if not ch.isspace():
                    ax.text(c + 0.5, r + 0.55, ch, ha="center", va="center", fontsize=8, family=fonts)
            fig.tight_layout()
            return save_figure(fig, path)


def plot_gradient_norms(runs: dict[str, dict], path: str | Path, title: str = "", state: str = "h1") -> Path:
    """``||dloss_t/dstate_(t-k)||`` against ``k`` on a log scale, one line per run (its median, with the quartiles
    shaded), normalised to lag 0. Written atomically.

    Args:
        runs: label -> a state summary (``elmokit.analysis.gradients.summarize``:
            ``{state: {"median", "q25", "q75", ...}}``).
        state: which state to draw (``h1``: the first layer's hidden state).
    """
    import numpy as np

    with figure_style() as plt:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for label, summary in runs.items():
            s = summary[state]
            base = max(s["median"][0], 1e-30)
            k = np.arange(len(s["median"]))
            _line(ax, list(k), list(np.asarray(s["median"]) / base), lw=1.5, label=label)
            ax.fill_between(k, np.asarray(s["q25"]) / base, np.asarray(s["q75"]) / base, alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("k (steps back)")
        ax.set_ylabel(f"||dloss_t / d{state}_(t-k)||, relative to k = 0")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        return save_figure(fig, path)
