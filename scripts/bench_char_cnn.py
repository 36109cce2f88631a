"""Training speed of the character CNN: forward + backward of elmokit's differentiable fast path against plain conv1d.

    python scripts/bench_char_cnn.py            # ~2 minutes on 2 idle cores
    python scripts/bench_char_cnn.py --quick    # a smoke run: the CPU shape, 300 words, 1 round

Encodes ``--words`` (2,000) distinct English words, the first ones of ``$ELMOKIT_DATA/wikitext-2/wiki.valid.tokens``
in the text's order (a built-in list when ``ELMOKIT_DATA`` is not set), as bilm-tf's UTF-8 bytes padded to 50
(:class:`elmokit.modules.characters.ElmoBytes`, with its ``pad_id`` as :class:`elmokit.bilm.charbilm.CharBiLM` passes
it), through a :class:`elmokit.modules.char_cnn.CharCNN` initialised by ``reset_parameters`` (bilm-tf's
initialisers), at two shapes:

- ``published``: the original ELMo's encoder: 16-d characters, filters [1,32] [2,32] [3,64] [4,128] [5,256] [6,512]
  [7,1024], 2 highways, projection 512;
- ``cpu``: filters [1,32] [2,32] [3,64] [4,128] [5,256], 1 highway, projection 256.

Per shape and ``--rounds`` interleaved rounds (the best of each), the seconds of one batch's forward and backward
(a fixed random weighting of the outputs, summed), wall-clock and the process's CPU time (steadier than the wall
clock when other processes share the cores; it also counts the threads' waiting), of:

(a) ``fast``: ``CharCNN.forward`` in grad mode: its differentiable path (words sorted by length in chunks, windows
    only up to the chunk's longest word, the all-padding window once per filter, ``torch.mm`` products);
(b) ``reference``: the same equations as AllenNLP runs them: ``conv1d`` over all 50 positions, max, activation,
    highways, projection.

Both are timed for the whole encoder and for the convolution stage alone (ids to the ``(N, F)`` maxima, where the
two differ; the highways and projection are the same products on both sides). Both float32 runs' gradients are
measured against the reference's in float64 (the largest norm-relative error over the parameters). Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from elmokit.modules.char_cnn import CharCNN
from elmokit.modules.characters import ElmoBytes

SHAPES = {
    "published": {
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "num_highway": 2,
        "char_dim": 16,
        "output_dim": 512,
    },
    "cpu": {
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]],
        "num_highway": 1,
        "char_dim": 16,
        "output_dim": 256,
    },
}
MAX_CHARS = 50
NUM_CHARS = 262  # bilm-tf's 261 and the missing word's row 0, as an import lays them out
FALLBACK_TEXT = (
    "The game 's battle system , the BliTZ system , is carried over directly from Valkyira Chronicles . During "
    "missions , players select each unit using a top @-@ down perspective of the battlefield map : once a character "
    "is selected , the player moves the character around the battlefield in third @-@ person . A character can only "
    "act once per @-@ turn , but characters can be granted multiple turns at the expense of other characters ' turns "
    ". Each character has a field and distance of movement limited by their Action Gauge . Up to nine characters can "
    "be assigned to a single mission . Internationalization notwithstanding , approximately 1,200 photosynthesizing "
    "microorganisms were characterized ; their counterrevolutionary misunderstandings remained incomprehensible ."
)


def load_words(n: int) -> tuple[list[str], str]:
    """The first ``n`` distinct tokens of wikitext-2's validation text (or of the built-in text), and their source."""
    data = os.environ.get("ELMOKIT_DATA")
    path = Path(data) / "wikitext-2" / "wiki.valid.tokens" if data else None
    if path is not None and path.is_file():
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        text, source = FALLBACK_TEXT, "built-in text"
    words = list(dict.fromkeys(text.split()))[:n]
    return words, source


def reference_pooled(enc: CharCNN, chars: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` ids → ``(N, F)``: ``conv1d`` at every position, max, activation (AllenNLP's computation)."""
    emb = enc.char_embedding(chars).transpose(1, 2)  # (N, d, C)
    act = torch.relu if enc.activation == "relu" else torch.tanh
    return torch.cat([act(F.conv1d(emb, c.weight, c.bias).amax(-1)) for c in enc.convolutions], -1)


def reference(enc: CharCNN, chars: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` ids → ``(N, output_dim)``: :func:`reference_pooled`, the highways, the projection."""
    h = reference_pooled(enc, chars)  # (N, F)
    for layer in enc.highways:
        nonlinear, gate = layer(h).chunk(2, -1)  # (N, 2F) -> two (N, F)
        gate = torch.sigmoid(gate)
        h = gate * h + (1 - gate) * torch.relu(nonlinear)
    return enc.projection(h)  # (N, output_dim)


def fwd_bwd_seconds(enc: CharCNN, run, weights: torch.Tensor) -> tuple[float, float, dict[str, torch.Tensor]]:
    """Wall and process CPU seconds of ``run()``'s forward and the backward of ``(run() * weights).sum()``, and the
    gradients."""
    enc.zero_grad(set_to_none=True)
    t, c = time.perf_counter(), time.process_time()
    (run() * weights).sum().backward()
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    return seconds, cpu, {k: p.grad for k, p in enc.named_parameters() if p.grad is not None}


def bench_shape(shape: dict, chars: torch.Tensor, pad_id: int, rounds: int, seed: int) -> dict:
    enc = CharCNN(NUM_CHARS, shape["char_dim"], [tuple(f) for f in shape["filters"]], shape["num_highway"],
                  shape["output_dim"])  # fmt: skip
    enc.reset_parameters(torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    N = chars.shape[0]
    w_out = torch.randn(N, enc.output_dim, generator=g)
    w_pool = torch.randn(N, enc.num_filters, generator=g)
    runs = {
        "fast": (lambda: enc(chars, pad_id=pad_id), w_out),
        "reference": (lambda: reference(enc, chars), w_out),
        "cnn_fast": (lambda: enc._pooled(chars, pad_id, trainable=True), w_pool),
        "cnn_reference": (lambda: reference_pooled(enc, chars), w_pool),
    }
    best = {k: float("inf") for k in runs}
    best_cpu = dict(best)
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for k, (run, w) in runs.items():  # warm up (and the gradients to compare)
        grads[k] = fwd_bwd_seconds(enc, run, w)[2]
    for _ in range(rounds):
        for k, (run, w) in runs.items():
            seconds, cpu, _ = fwd_bwd_seconds(enc, run, w)
            best[k], best_cpu[k] = min(best[k], seconds), min(best_cpu[k], cpu)
    exact_enc = copy.deepcopy(enc).double()  # the gradients in float64, to measure both float32 runs against
    exact = fwd_bwd_seconds(exact_enc, lambda: reference(exact_enc, chars), w_out.double())[2]

    def error(got: dict[str, torch.Tensor]) -> float:
        return max(float((got[k].double() - exact[k]).norm() / exact[k].norm()) for k in exact)

    return {
        "filters": shape["filters"],
        "num_highway": shape["num_highway"],
        "output_dim": shape["output_dim"],
        "fast_fwd_bwd_s": round(best["fast"], 4),
        "reference_fwd_bwd_s": round(best["reference"], 4),
        "speedup": round(best["reference"] / best["fast"], 2),
        "cnn_fast_fwd_bwd_s": round(best["cnn_fast"], 4),
        "cnn_reference_fwd_bwd_s": round(best["cnn_reference"], 4),
        "cnn_speedup": round(best["cnn_reference"] / best["cnn_fast"], 2),
        "fast_fwd_bwd_cpu_s": round(best_cpu["fast"], 4),
        "reference_fwd_bwd_cpu_s": round(best_cpu["reference"], 4),
        "cpu_speedup": round(best_cpu["reference"] / best_cpu["fast"], 2),
        "cnn_fast_fwd_bwd_cpu_s": round(best_cpu["cnn_fast"], 4),
        "cnn_reference_fwd_bwd_cpu_s": round(best_cpu["cnn_reference"], 4),
        "cnn_cpu_speedup": round(best_cpu["cnn_reference"] / best_cpu["cnn_fast"], 2),
        "fast_grad_rel_err": error(grads["fast"]),
        "reference_grad_rel_err": error(grads["reference"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--words", type=int, default=2000, help="distinct words in the batch")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each")
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["published", "cpu"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the cpu shape, 300 words, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.words, args.rounds, args.shapes = 300, 1, ["cpu"]
    torch.set_num_threads(args.threads)
    words, source = load_words(args.words)
    mapper = ElmoBytes(MAX_CHARS)
    chars = torch.from_numpy(np.stack([mapper.chars(w) for w in words]))  # (N, 50)
    own = (chars != mapper.pad_id).sum(1).float()  # (N,) ids before the padding: bytes + 2
    results = {name: bench_shape(SHAPES[name], chars, mapper.pad_id, args.rounds, args.seed) for name in args.shapes}
    print(
        f"CharCNN forward + backward, {len(words)} distinct words of {source} (ids before padding: mean "
        f"{float(own.mean()):.1f}, max {int(own.max())} of {MAX_CHARS}), {args.threads} threads, best of "
        f"{args.rounds} rounds"
    )
    print(
        f"  {'shape':<10} {'stage':<14} {'fast s':>8} {'conv1d s':>9} {'speedup':>8}   "
        f"{'fast cpu s':>10} {'conv1d cpu s':>12} {'speedup':>8}"
    )
    for name, r in results.items():
        for stage, p in (("whole encoder", ""), ("convolutions", "cnn_")):
            print(
                f"  {name:<10} {stage:<14} {r[f'{p}fast_fwd_bwd_s']:>8.3f} {r[f'{p}reference_fwd_bwd_s']:>9.3f} "
                f"{r[f'{p}speedup']:>7.2f}x   {r[f'{p}fast_fwd_bwd_cpu_s']:>10.3f} "
                f"{r[f'{p}reference_fwd_bwd_cpu_s']:>12.3f} {r[f'{p}cpu_speedup']:>7.2f}x"
            )
        print(
            f"  {name:<10} gradients against float64's (norm-relative, worst parameter): fast "
            f"{r['fast_grad_rel_err']:.1e}, conv1d {r['reference_grad_rel_err']:.1e}"
        )
    print(
        json.dumps(
            {
                "bench": "char_cnn",
                "threads": args.threads,
                "words": len(words),
                "source": source,
                "rounds": args.rounds,
                "mean_chars": round(float(own.mean()), 2),
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
