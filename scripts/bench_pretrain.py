"""Pretraining speed, measured in one run (this machine is noisy, so every figure is a ratio within the run).

    python scripts/bench_pretrain.py            # ~4 minutes on 2 cores
    python scripts/bench_pretrain.py --quick    # a smoke run

Measures:
1. the fp32 matmul peak of this machine: the best of several square GEMMs through each library PyTorch has here
   (MKL, and oneDNN where available; on this AVX-512 AMD CPU oneDNN's is ~20% higher), the larger being the peak;
2. tokens/s and model-FLOP utilisation (MFU) of the `small` training step (embedding, 2 LSTMP layers 1024/256,
   sampled softmax with 1024 shared negatives, backward, clipping, Adam) at V=16k;
3. the sampled vs full softmax head speedup (forward + backward of the head alone) at V=16k and 32k;
4. tokens/s of a plain PyTorch baseline of the same size and vocab (the word_language_model setup: `nn.Embedding`,
   `nn.LSTM(proj_size=256)`, `nn.Linear` + full softmax cross-entropy, SGD), and the ratio. The baseline runs in a
   child process with glibc's allocator as shipped (as a user runs it); it is also measured in this process, under
   the allocator tuning that elmokit applies to itself (elmokit/core/malloc.py), and that ratio is reported too.

Model FLOPs count only the matmuls the model needs, 6 per multiply-accumulate per token (forward 2, backward 4):
per LSTMP layer ``I*4H + P*4H + H*P`` MACs, the sampled head ``D*(K+1)``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from elmokit.core.malloc import keep_freed_memory
from elmokit.lm.model import LanguageModel, small
from elmokit.modules.matmul import linear, onednn_available
from elmokit.modules.recurrent import detach_state
from elmokit.modules.softmax import SoftmaxHead


def matmul_peak(sizes=(1024, 2048, 3072, 4096), reps: int = 4) -> dict[str, float]:
    """Best fp32 FLOP/s of square products through each GEMM library PyTorch has here: MKL (``torch.mm``) and,
    where available, oneDNN (the kernels' :mod:`elmokit.modules.matmul`). The machine's peak is the larger."""
    libs = {"mkl": lambda a, b: a @ b}
    if onednn_available():
        libs["onednn"] = linear  # a @ b.T through oneDNN: the same FLOPs as a @ b for square products
    best = dict.fromkeys(libs, 0.0)
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for name, mm in libs.items():
            mm(a, b)
            for _ in range(reps):
                t = time.perf_counter()
                mm(a, b)
                best[name] = max(best[name], 2 * n**3 / (time.perf_counter() - t))
    return best


def timed(step, warmup: int, iters: int) -> float:
    """Seconds per call (median of ``iters`` after ``warmup``)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def lm_flops_per_token(cfg, num_samples: int) -> float:
    macs = 0
    for k in range(cfg.num_layers):
        i = cfg.embed_dim if k == 0 else cfg.proj_size
        macs += i * 4 * cfg.hidden_size + cfg.proj_size * 4 * cfg.hidden_size + cfg.hidden_size * cfg.proj_size
    macs += cfg.proj_size * (num_samples + 1)
    return 6.0 * macs


def bench_small(V: int, B: int, T: int, warmup: int, iters: int) -> float:
    torch.manual_seed(0)
    cfg = small()
    lm = LanguageModel(cfg, V)
    lm.head.set_counts(torch.randint(1, 10_000, (V,)))
    opt = torch.optim.Adam(lm.parameters(), lr=1e-3, fused=True)
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    state = [None]

    def step():
        loss, st = lm(x, y, state[0])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state[0] = detach_state(st)

    return B * T / timed(step, warmup, iters)


class PlainLM(nn.Module):
    """The word_language_model shape: embedding → nn.LSTM → dropout → linear decoder, full softmax."""

    def __init__(self, V: int, emb: int = 256, hidden: int = 1024, proj: int = 256, layers: int = 2):
        super().__init__()
        self.encoder = nn.Embedding(V, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, proj_size=proj, dropout=0.1)
        self.drop = nn.Dropout(0.1)
        self.decoder = nn.Linear(proj, V)

    def forward(self, x, hidden=None):  # x: (time, batch)
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)  # (time, batch, proj)
        return self.decoder(self.drop(out)), hidden  # (time, batch, V)


def bench_baseline(V: int, B: int, T: int, warmup: int, iters: int) -> float:
    torch.manual_seed(0)
    model = PlainLM(V)
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    x, y = torch.randint(0, V, (T, B)), torch.randint(0, V, (T, B))
    hidden = [None]

    def step():
        logits, h = model(x, hidden[0])
        loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        opt.zero_grad(set_to_none=True)
        hidden[0] = tuple(t.detach() for t in h)

    return B * T / timed(step, warmup, iters)


def bench_heads(V: int, N: int, D: int, K: int, warmup: int, iters: int) -> tuple[float, float]:
    torch.manual_seed(0)
    head = SoftmaxHead(V, D, num_samples=K)
    head.set_counts(torch.randint(1, 10_000, (V,)))
    h = torch.randn(N, D, requires_grad=True)
    y = torch.randint(0, V, (N,))

    def full():
        head.full_loss(h, y).backward()

    def sampled():
        head.sampled_loss(h, y).backward()

    return timed(full, warmup, iters), timed(sampled, warmup, iters)


def baseline_as_shipped(B: int, T: int, iters: int) -> float:
    """The baseline's tokens/s in a fresh process with glibc's allocator untouched, as a user would run it."""
    cmd = [sys.executable, __file__, "--baseline-only", "--batch", str(B), "--bptt", str(T), "--iters", str(iters)]
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    return float(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=20)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each figure is kept")
    ap.add_argument("--quick", action="store_true", help="few iterations (a smoke run, not a measurement)")
    ap.add_argument(
        "--no-mallopt",
        action="store_true",
        help="leave glibc's allocator as it is (elmokit pretrain "
        "tunes it; see elmokit/core/malloc.py), to measure what that is worth",
    )
    ap.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)  # the child of baseline_as_shipped
    args = ap.parse_args()
    warmup, iters = (1, 2) if args.quick else (3, args.iters)
    B, T, V = args.batch, args.bptt, 16000
    if args.baseline_only:
        print(bench_baseline(V, B, T, warmup, max(2, iters // 2)))
        return
    mallopt = False if args.no_mallopt else keep_freed_memory()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B} x bptt {T}, mallopt {mallopt}, "
        f"oneDNN GEMM {onednn_available()}",
        flush=True,
    )

    # interleaved rounds, best of each: the machine is noisy, and a ratio of two bests compares like with like
    cfg = small()
    fpt = lm_flops_per_token(cfg, cfg.num_samples)
    peaks: dict[str, float] = {}
    small_tps = base_tps = shipped_tps = 0.0
    heads = {16000: [0.0, 0.0], 32000: [0.0, 0.0]}
    for r in range(1 if args.quick else args.rounds):
        for lib, f in matmul_peak(reps=2 if args.quick else 4).items():
            peaks[lib] = max(peaks.get(lib, 0.0), f)
        small_tps = max(small_tps, bench_small(V, B, T, warmup, iters))
        base_tps = max(base_tps, bench_baseline(V, B, T, warmup, max(2, iters // 2)))
        shipped_tps = max(shipped_tps, baseline_as_shipped(B, T, 2 if args.quick else iters))
        for v in heads:
            f, s_ = bench_heads(v, B * T, cfg.proj_size, cfg.num_samples, warmup, iters)
            heads[v] = [min(heads[v][0] or f, f), min(heads[v][1] or s_, s_)]
        print(
            f"round {r + 1}: peak {max(peaks.values()) / 1e9:.0f} GFLOP/s, small {small_tps:,.0f} tok/s, baseline "
            f"{shipped_tps:,.0f} tok/s (same allocator as elmokit: {base_tps:,.0f})",
            flush=True,
        )
    heads = {v: (f, s_, f / s_) for v, (f, s_) in heads.items()}
    peak = max(peaks.values())
    mfu = small_tps * fpt / peak

    rows = [(f"fp32 matmul peak, {lib}", f"{f / 1e9:.1f} GFLOP/s") for lib, f in peaks.items()]
    rows += [
        ("small step (sampled, V=16k)", f"{small_tps:,.0f} tokens/s"),
        ("  model FLOPs per token", f"{fpt / 1e6:.1f} MFLOP"),
        ("  model-FLOP utilisation", f"{mfu:.1%} of the higher peak ({small_tps * fpt / peaks['mkl']:.1%} of MKL's)"),
        ("plain baseline (nn.LSTM, full softmax)", f"{shipped_tps:,.0f} tokens/s"),
        ("  speedup over the baseline", f"{small_tps / shipped_tps:.2f}x"),
        ("  baseline with elmokit's allocator tuning", f"{base_tps:,.0f} tokens/s ({small_tps / base_tps:.2f}x)"),
    ]
    for v, (f, s, r) in heads.items():
        rows.append((f"head V={v // 1000}k: full / sampled (1024)", f"{f * 1e3:.1f} ms / {s * 1e3:.1f} ms = {r:.1f}x"))
    width = max(len(r[0]) for r in rows)
    print("-" * (width + 30))
    for name, val in rows:
        print(f"{name:<{width}}  {val}")
    print("-" * (width + 30))
    print(
        json.dumps(
            {
                "peak_gflops": round(peak / 1e9, 1),
                **{f"peak_{lib}_gflops": round(f / 1e9, 1) for lib, f in peaks.items()},
                "small_tokens_per_s": round(small_tps),
                "mfu": round(mfu, 3),
                "mfu_vs_mkl_peak": round(small_tps * fpt / peaks["mkl"], 3),
                "baseline_tokens_per_s": round(shipped_tps),
                "speedup_vs_baseline": round(small_tps / shipped_tps, 2),
                "speedup_vs_baseline_same_allocator": round(small_tps / base_tps, 2),
                "sampled_speedup_v16k": round(heads[16000][2], 1),
                "sampled_speedup_v32k": round(heads[32000][2], 1),
                "batch": B,
                "bptt": T,
                "rounds": args.rounds,
                "threads": torch.get_num_threads(),
                "mallopt": mallopt,
                "onednn": onednn_available(),
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
