"""``elmokit gradients``: how far back a trained LM's gradient reaches. For sequences drawn from a corpus, the norm
of the gradient of the loss at step ``t`` with respect to each layer's state ``k`` steps earlier,
``||∂loss_t/∂h_{t-k}||`` (and ``||∂loss_t/∂c_{t-k}||`` for an LSTM's cell state), for ``k = 0 .. max_lag``: the
vanishing (or exploding) gradient of the lectures, measured.

The gradient is the whole gradient reaching the state, by every path: a lower layer's also runs up through the
layers above it at the same step, and an LSTM cell state's through its own step's hidden state.

Each sequence starts from a state warmed up on the text before it (``warmup`` pieces, no gradient), as in
stateful training; the loss is the full-softmax NLL of the piece after the last step. The figure per lag is the
median over sequences (the spread is in the JSON), and the ratio to lag 0 says how much of the gradient is left.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from elmokit.core.errors import ElmokitError


def gradient_norms(
    model, tokens: np.ndarray, reverse: bool, max_lag: int = 300, sequences: int = 32, warmup: int = 100, seed: int = 0
) -> dict[str, np.ndarray]:
    """``{"h1": (sequences, max_lag + 1), "c1": ..., ...}``: per sequence and lag ``k``, the norm of the gradient of
    the last step's loss with respect to the layer's state ``k`` steps before it.

    Args:
        model: a :class:`elmokit.lm.model.LanguageModel` (put in eval mode: no dropout).
        tokens: the corpus as one token stream (``elmokit.lm.corpus.encode_corpus``).
        reverse: read the stream right to left (a backward LM).
        max_lag: the longest lag measured.
        sequences: how many sequences, drawn at random positions (``seed``).
        warmup: pieces read before the measured steps, to start from a state like training's.
    """
    check_counts(max_lag, sequences, warmup, seed)
    need = warmup + max_lag + 2
    stream = tokens[::-1] if reverse else tokens
    if len(stream) < need:
        raise ElmokitError(
            f"the corpus has {len(stream):,} pieces; --max-lag {max_lag} with --warmup {warmup} needs at least {need:,}"
        )
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(stream) - need + 1, size=sequences)
    seqs = torch.from_numpy(np.stack([stream[s : s + need] for s in starts]).astype(np.int64))  # (B, need)
    # a float64 copy: a vanishing gradient is measured, not underflowed (and the caller's model is left as it was)
    model = copy.deepcopy(model).double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # no warmup: the zero state training starts from
        _, state = model.encode(seqs[:, :warmup]) if warmup else (None, model.init_state(len(seqs)))
    state = [tuple(x.detach().requires_grad_(True) for x in layer) for layer in state]
    after: list = []  # per measured step: the state after it (per layer (h, c) or (h,))
    for t in range(warmup, warmup + max_lag + 1):
        top, state = model.rnn.step(model.embedding(seqs[:, t]), state)  # top: (B, out_dim)
        for layer in state:
            for x in layer:
                x.retain_grad()
        after.append(state)
    # the loss of predicting the piece after the last step, per sequence, summed: each sequence's gradient is its
    # own loss's
    loss = model.head.full_loss(top, seqs[:, warmup + max_lag + 1], reduction="sum")
    loss.backward()
    names = ("h", "c") if model.cfg.cell == "lstm" else ("h",)
    out: dict[str, np.ndarray] = {}
    for k in range(len(after[0])):
        for j, name in enumerate(names):
            norms = [st[k][j].grad.norm(dim=1) for st in after[::-1]]  # lag 0 (the last step's state) first
            out[f"{name}{k + 1}"] = torch.stack(norms, 1).numpy()  # (B, max_lag + 1)
    return out


def check_counts(max_lag: int, sequences: int, warmup: int, seed: int = 0) -> None:
    """Refuse counts that measure nothing or cannot be used (a negative lag or warmup, no sequences, a negative
    seed), naming the option.

    Raises:
        ElmokitError: one line naming the option, its value and what it takes.
    """
    for option, value, least, what in (
        ("--max-lag", max_lag, 0, "the longest lag measured, in steps back (e.g. 300)"),
        ("--sequences", sequences, 1, "how many sequences the median is taken over (e.g. 32)"),
        ("--warmup", warmup, 0, "pieces read before the measured steps (e.g. 100)"),
        ("--seed", seed, 0, "where the sequences start"),
    ):
        if value < least:
            raise ElmokitError(f"{option} {value}: must be {least} or more ({what})")


def summarize(norms: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per state: the median norm per lag, its quartiles, the ratio to lag 0, the first lags where the median has
    fallen to 1/10, 1/100 and 1/1000 of lag 0's (None if it never does), and how many orders of magnitude it still
    falls per 100 steps over the last two thirds of the lags (an exponentially vanishing gradient keeps falling;
    one carried by gates held open levels off)."""
    out = {}
    for name, a in norms.items():
        med = np.median(a, 0)
        ratio = med / max(float(med[0]), 1e-30)
        falls = {}
        for f in (10, 100, 1000):
            below = np.flatnonzero(ratio <= 1 / f)
            falls[f"lag_to_1/{f}"] = int(below[0]) if below.size else None
        # how fast it still falls far back: orders of magnitude per 100 steps over the last two thirds of the lags
        k1, k2 = len(med) // 3, len(med) - 1
        tail = (math.log10(max(float(med[k1]), 1e-300)) - math.log10(max(float(med[k2]), 1e-300))) / max(k2 - k1, 1)
        out[name] = {
            "median": med.tolist(),
            "q25": np.quantile(a, 0.25, 0).tolist(),
            "q75": np.quantile(a, 0.75, 0).tolist(),
            "ratio_to_lag0": ratio.tolist(),
            **falls,
            "tail_decades_per_100_steps": round(100 * tail, 4),
            "tail_lags": [k1, k2],
        }
    return out


def measure_gradients(
    model_path: str,
    corpus: list[str],
    out: str,
    max_lag: int = 300,
    sequences: int = 32,
    warmup: int = 100,
    seed: int = 0,
    cache_dir: str = "~/.cache/elmokit",
    progress: bool = True,
) -> dict:
    """The ``elmokit gradients`` command: writes ``OUT.json`` and ``OUT.png`` and returns the JSON's content."""
    from elmokit.core.files import write_json
    from elmokit.core.plots import plot_gradient_norms
    from elmokit.lm.corpus import encode_corpus
    from elmokit.lm.model_dir import load_model, made_by

    check_counts(max_lag, sequences, warmup, seed)  # before the model loads and the corpus is encoded
    loaded = load_model(model_path)
    reverse = loaded.manifest["direction"] == "backward"
    tokens = encode_corpus(
        corpus, loaded.vocab, cache_dir, num_proc=1, max_line_chars=loaded.cfg.data.max_line_chars, progress=progress
    )
    norms = gradient_norms(loaded.model, tokens, reverse, max_lag, sequences, warmup, seed)
    summary = summarize(norms)
    c = loaded.cfg
    result = {
        "model": str(model_path),
        "made_by": made_by(loaded),
        "direction": loaded.manifest["direction"],
        "cell": c.model.cell,
        "hidden_size": c.model.hidden_size,
        "proj_size": c.model.proj_size,
        "num_layers": c.model.num_layers,
        "trained_with": {"bptt": c.train.bptt, "clip_norm": c.train.clip_norm},
        "corpus": [str(f) for f in corpus],
        "max_lag": max_lag,
        "sequences": sequences,
        "warmup": warmup,
        "seed": seed,
        "states": summary,
    }
    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    write_json(base.with_suffix(".json"), result)
    label = f"{c.model.cell} (bptt {c.train.bptt}, clip {c.train.clip_norm:g})"
    plot_gradient_norms({label: summary}, base.with_suffix(".png"), title=f"{model_path}: ||dloss_t / dstate_(t-k)||")
    return result


def summary_lines(result: dict) -> list[str]:
    """The table ``elmokit gradients`` prints: per state, the median norm at a few lags and where it falls."""
    lags = [k for k in (0, 1, 5, 10, 20, 50, 100, 200, 300, 500) if k <= result["max_lag"]]
    rows = [
        f"{result['cell']} {result['direction']} LM; median over {result['sequences']} sequences of "
        f"||dloss_t/dstate_(t-k)||",
        f"{'state':<6}"
        + "".join(f"{'k=' + str(k):>10}" for k in lags)
        + "   k at 1/10  1/100  1/1000   far back: decades per 100 steps",
    ]
    for name, s in result["states"].items():
        falls = "  ".join(f"{'-' if s[f'lag_to_1/{f}'] is None else s[f'lag_to_1/{f}']:>5}" for f in (10, 100, 1000))
        rows.append(
            f"{name:<6}"
            + "".join(f"{s['median'][k]:>10.3g}" for k in lags)
            + f"   {falls}   {s['tail_decades_per_100_steps']:.2f}"
        )
    return rows
