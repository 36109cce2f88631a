"""Training curves as PNG (matplotlib, headless)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path


def plot_curves(records: list[dict], path: str | Path, title: str = "") -> Path:
    """Plot train loss (and validation loss, if any) against step; also tokens/s. Written atomically.

    Args:
        records: ``metrics.jsonl`` records (``step``, ``split``, ``loss``, optionally ``tokens_per_s``).
        path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("split") == "train"]
    valid = [r for r in records if r.get("split") == "valid"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax1.plot([r["step"] for r in train], [r["loss"] for r in train], label="train (sampled softmax)", lw=1)
    if valid:
        ax1.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="valid (full softmax)")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss per subword (nats)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    tps = [r for r in train if "tokens_per_s" in r]
    if tps:
        ax2.plot([r["step"] for r in tps], [r["tokens_per_s"] for r in tps], lw=1)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("split") == "train"]
    dev = [r for r in records if r.get("split") == "dev"]
    key = "f1" if metric == "span_f1" else "accuracy"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax1.set_xlabel("step")
    ax1.set_ylabel("train loss")
    ax1.grid(alpha=0.3)
    ax2.plot([r["step"] for r in dev], [r[key] for r in dev], "o-", label=f"dev {key}")
    ax2.set_xlabel("step")
    ax2.set_ylabel(f"dev {key} (%)")
    ax2.grid(alpha=0.3)
    if dev:
        lr = ax2.twinx()
        lr.plot([r["step"] for r in dev], [r["lr"] for r in dev], "--", color="grey", label="lr")
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    # a monospace font first, then fonts for other scripts (Korean) where the machine has them (a font it lacks is
    # left out: matplotlib logs a "findfont" line for each text drawn with it)
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    fonts = [f for f in ("DejaVu Sans Mono", "Noto Sans Mono CJK KR", "Noto Sans CJK KR") if f in installed]
    fonts.append("monospace")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9, loc="left")
    with warnings.catch_warnings():  # a glyph no installed font has is drawn as a box; the HTML page shows it
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        warnings.filterwarnings("ignore", message="findfont")
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, summary in runs.items():
        s = summary[state]
        base = max(s["median"][0], 1e-30)
        k = np.arange(len(s["median"]))
        ax.plot(k, np.asarray(s["median"]) / base, lw=1.5, label=label)
        ax.fill_between(k, np.asarray(s["q25"]) / base, np.asarray(s["q75"]) / base, alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("k (steps back)")
    ax.set_ylabel(f"||dloss_t / d{state}_(t-k)||, relative to k = 0")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
