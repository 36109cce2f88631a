"""Training curves as PNG (matplotlib, headless)."""

from __future__ import annotations

import os
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
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path
