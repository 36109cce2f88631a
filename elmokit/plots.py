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
