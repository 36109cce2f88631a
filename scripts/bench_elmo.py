"""The original ELMo's speed in elmokit, measured in one run, at the published English model's shape.

    python scripts/bench_elmo.py            # ~1.5 minutes on 2 cores (writes a 374 MB weights file to a temp dir)
    python scripts/bench_elmo.py --quick    # a smoke run at a small shape

Writes bilm-tf's ``options.json`` and a ``weights.hdf5`` of random weights in its layout (16-d characters, filters
[1,32] [2,32] [3,64] [4,128] [5,256] [6,512] [7,1024], 2 highways, 2 layers of 4,096 cells projected to 512, clips 3,
skip connections; speed does not depend on the weights), then measures at ``--threads`` (2):

1. ``elmokit import-elmo`` in a fresh process: seconds and peak RSS (VmHWM), beside the weights' size and the peak
   of a process that only imports what the command imports (the interpreter, torch, h5py);
2. batches (``Embedder.embed_sentences``, ``--sentences`` sentences of 20 distinct random words, so the CNN runs
   on every token as in the model's FLOP count): sentences/s, and model-FLOP utilisation: the model's FLOPs per
   word (convolutions, highways, projection, both LSTM stacks) times the words, over the seconds, against the same
   run's best square-matmul FLOP/s (``--rounds`` interleaved rounds, the best of each). Not counted, since their
   results are the same for every sentence or word and elmokit computes them once: the ``<S>``/``</S>`` positions
   (their outputs are dropped and the state each leaves from zero is the same for every sentence) and the
   convolution windows wholly in a word's padding (``mfu_all_windows`` counts them, as bilm-tf runs them: all 50);
3. one 20-word sentence's latency through the API (median of ``--reps``), and the reference's (below) for it;
4. a step-by-step reference: the same weights run as AllenNLP runs them (``conv1d`` character CNN at every
   position; ``LstmCellWithProjection``'s time loop: per step the input, state and projection products, each gate
   from its slices, the state cloned), at the batch AllenNLP's ``ElmoEmbedder`` uses (64, ``--reference-batch``),
   as a ratio of the best times of the same rounds (the outputs are checked to agree).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pretrain import matmul_peak  # noqa: E402 - the same peak as the pretraining bench

ENGLISH = {
    "lstm": {
        "use_skip_connections": True,
        "projection_dim": 512,
        "cell_clip": 3,
        "proj_clip": 3,
        "dim": 4096,
        "n_layers": 2,
    },
    "char_cnn": {
        "activation": "relu",
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "n_highway": 2,
        "embedding": {"dim": 16},
        "n_characters": 262,
        "max_characters_per_token": 50,
    },
}
QUICK = {
    "lstm": {**ENGLISH["lstm"], "projection_dim": 64, "dim": 256},
    "char_cnn": {**ENGLISH["char_cnn"], "filters": [[1, 8], [2, 8], [3, 16]], "embedding": {"dim": 4}},
}


def write_weights(options: dict, path: Path, seed: int = 0) -> int:
    """bilm-tf's weights.hdf5 layout with random values; returns its size in bytes."""
    import h5py

    rng = np.random.default_rng(seed)
    cnn, lstm = options["char_cnn"], options["lstm"]
    d, P, H = cnn["embedding"]["dim"], lstm["projection_dim"], lstm["dim"]
    F = sum(n for _, n in cnn["filters"])

    def r(*shape, scale=0.05):
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    with h5py.File(path, "w") as f:
        f["char_embed"] = r(261, d, scale=1.0)
        for i, (w, n) in enumerate(cnn["filters"]):
            f[f"CNN/W_cnn_{i}"], f[f"CNN/b_cnn_{i}"] = r(1, w, d, n), r(n)
        for k in range(cnn["n_highway"]):
            for name, shape in (("W_carry", (F, F)), ("W_transform", (F, F)), ("b_carry", (F,)), ("b_transform", (F,))):
                f[f"CNN_high_{k}/{name}"] = r(*shape, scale=0.02)
        f["CNN_proj/W_proj"], f["CNN_proj/b_proj"] = r(F, P, scale=0.02), r(P)
        for direction in (0, 1):
            for layer in range(lstm["n_layers"]):
                g = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
                f[f"{g}/W_0"], f[f"{g}/B"], f[f"{g}/W_P_0"] = r(2 * P, 4 * H, scale=0.02), r(4 * H), r(H, P, scale=0.02)
    return path.stat().st_size


def flops_per_position(options: dict, chars: int | None = None) -> float:
    """Model FLOPs (2 per multiply-add) to embed one position, both directions.

    Args:
        chars: the word's character ids before its padding (its bytes + 2): its convolutions are counted over the
            windows that hold at least one of them, not those wholly in the padding (their output is the same for
            every word, and elmokit computes it once per batch). ``None``: every window of ``max_characters_per_token``
            (the convolutions as bilm-tf and AllenNLP run them).
    """
    cnn, lstm = options["char_cnn"], options["lstm"]
    d, C, P, H = cnn["embedding"]["dim"], cnn["max_characters_per_token"], lstm["projection_dim"], lstm["dim"]
    F = sum(n for _, n in cnn["filters"])
    macs = sum(w * d * n * min(C - w + 1, C if chars is None else chars) for w, n in cnn["filters"])  # convolutions
    macs += cnn["n_highway"] * F * 2 * F + F * P  # highways, projection
    macs += 2 * lstm["n_layers"] * (4 * H * 2 * P + H * P)  # two directions: input, recurrent, projection products
    return 2.0 * macs


PEAK_CODE = """
import sys
{imports}
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")))  # KiB
"""


def child_peak_mib(imports: str) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of a fresh Python process running ``imports``."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PEAK_CODE.format(imports=imports)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    return time.perf_counter() - t, int(res.stdout.split()[-1]) / 1024


def random_sentences(n: int, words: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [["".join(rng.choice(letters, rng.integers(3, 11))) for _ in range(words)] for _ in range(n)]


def allennlp_token_vectors(enc, chars: torch.Tensor) -> torch.Tensor:
    """Token vectors as AllenNLP's ``_ElmoCharacterEncoder`` computes them: ``conv1d`` per filter over every
    position's characters (no sharing between repeated words), max, activation, highways, projection."""
    emb = enc.char_embedding(chars).transpose(1, 2)  # (N, d, 50)
    h = torch.cat([torch.relu(conv(emb).amax(-1)) for conv in enc.convolutions], -1)  # (N, F)
    for layer in enc.highways:
        nonlinear, gate = layer(h).chunk(2, -1)
        gate = torch.sigmoid(gate)
        h = gate * h + (1 - gate) * torch.relu(nonlinear)
    return enc.projection(h)


def allennlp_lstm_layer(layer, inputs: torch.Tensor, cfg, go_forward: bool) -> torch.Tensor:
    """One layer as AllenNLP's ``LstmCellWithProjection.forward`` runs it at inference: batch-first inputs; at
    every step the input and the state products, each gate from its slices, the state copied (``clone``) and
    written back, the output accumulated. (Every row has the same length here, so no row drops out.)

    Args:
        inputs: ``(B, T, I)``. Returns: ``(B, T, P)``.
    """
    from torch.nn.functional import linear

    B, T, _ = inputs.shape
    H, P = cfg.cells, cfg.projection_dim
    out = inputs.new_zeros(B, T, P)
    memory, state = inputs.new_zeros(B, H), inputs.new_zeros(B, P)
    w_in, w_state, b_state, w_proj = (
        layer.weight_ih_l0,
        layer.weight_hh_l0,
        layer.bias_hh_l0 + layer.bias_ih_l0,
        layer.weight_hr_l0,
    )
    for step in range(T):
        index = step if go_forward else T - step - 1
        previous_memory, previous_state = memory.clone(), state.clone()
        projected_input = linear(inputs[:, index], w_in)  # (B, 4H)
        projected_state = linear(previous_state, w_state, b_state)
        input_gate = torch.sigmoid(projected_input[:, 0 * H : 1 * H] + projected_state[:, 0 * H : 1 * H])
        forget_gate = torch.sigmoid(projected_input[:, 1 * H : 2 * H] + projected_state[:, 1 * H : 2 * H])
        memory_init = torch.tanh(projected_input[:, 2 * H : 3 * H] + projected_state[:, 2 * H : 3 * H])
        output_gate = torch.sigmoid(projected_input[:, 3 * H : 4 * H] + projected_state[:, 3 * H : 4 * H])
        memory = input_gate * memory_init + forget_gate * previous_memory
        memory = torch.clamp(memory, -cfg.cell_clip, cfg.cell_clip)
        timestep_output = linear(output_gate * torch.tanh(memory), w_proj)
        timestep_output = torch.clamp(timestep_output, -cfg.proj_clip, cfg.proj_clip)
        state = timestep_output
        out[:, index] = timestep_output
    return out


def reference_seconds(bilm, sentences: list[list[str]], batch: int) -> tuple[float, list[np.ndarray]]:
    """The same biLM run as AllenNLP runs it: token vectors by :func:`allennlp_token_vectors` for every position,
    ``<S>`` and ``</S>`` included, then each direction's layers by :func:`allennlp_lstm_layer` (``ElmoLstm``: the
    backward layers read right to left, upper layers add their input); seconds and the top layer of each sentence
    (all sentences have the same length here)."""
    cfg, tops = bilm.cfg, []
    t0 = time.perf_counter()
    with torch.no_grad():
        for a in range(0, len(sentences), batch):
            rows = [[bilm.vocab.bos_token, *s, bilm.vocab.eos_token] for s in sentences[a : a + batch]]
            B, T = len(rows), len(rows[0])
            chars = torch.from_numpy(np.stack([bilm.vocab.chars(w) for r in rows for w in r]))  # (B * T, 50)
            x = allennlp_token_vectors(bilm.token_encoder, chars).view(B, T, -1)  # (B, T, P)
            outs = []
            for rnn, go_forward in ((bilm.forward_rnn, True), (bilm.backward_rnn, False)):
                inp = x
                for k, layer in enumerate(rnn.layers):
                    out = allennlp_lstm_layer(layer, inp, cfg, go_forward)
                    inp = out + inp if (cfg.skip_connections and k > 0) else out
                outs.append(inp)
            top = torch.cat(outs, -1)  # (B, T, 2P)
            tops.extend(top[b, 1:-1].numpy() for b in range(B))
    return time.perf_counter() - t0, tops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=128, help="sentences of 20 words in the batch measurement")
    ap.add_argument(
        "--batch-tokens", type=int, default=0, help="Embedder's padded positions per batch (0: the biLM's default)"
    )
    ap.add_argument("--reps", type=int, default=15, help="repetitions of the one-sentence latency")
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds of (matmul peak, batches, reference); the best of each"
    )
    ap.add_argument(
        "--reference-batch",
        type=int,
        default=64,
        help="sentences per batch of the step-by-step reference (AllenNLP's ElmoEmbedder default)",
    )
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = QUICK if args.quick else ENGLISH
    from elmokit.embed import Embedder

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "options.json").write_text(json.dumps(options))
        weights_mib = write_weights(options, tmp / "weights.hdf5") / 2**20
        base_s, base_mib = child_peak_mib("import torch, h5py\nimport elmokit.bilm.import_elmo")
        imp_s, imp_mib = child_peak_mib(
            "from elmokit.bilm.import_elmo import import_bilm_tf\n"
            f"import_bilm_tf({str(tmp / 'options.json')!r}, {str(tmp / 'weights.hdf5')!r}, {str(tmp / 'bilm')!r})"
        )
        import_s = imp_s - base_s  # the interpreter's and the imports' start-up counted once, in the baseline
        emb = Embedder(tmp / "bilm", batch_tokens=args.batch_tokens)
        sents = random_sentences(args.sentences, 20, 1)
        emb.embed_sentences(sents[:16])  # warm up
        # this machine's speed drifts by up to 40% over seconds: rounds of (peak, batches), the best of each
        batch_s, ref_s, peak = float("inf"), float("inf"), 0.0
        for _ in range(args.rounds):
            peak = max(peak, *matmul_peak(sizes=(1024, 2048)).values())
            t = time.perf_counter()
            vecs = emb.embed_sentences(sents)
            batch_s = min(batch_s, time.perf_counter() - t)
            seconds, ref_top = reference_seconds(emb.bilm, sents, args.reference_batch)
            ref_s = min(ref_s, seconds)
        peak = max(peak, *matmul_peak(sizes=(1024, 2048)).values())
        positions = sum(len(s) for s in sents)  # words: <S>/</S> are not counted (see the module docstring)
        # the FLOPs the words need (convolutions over each word's own windows), and bilm-tf's (over all 50)
        flops = sum(flops_per_position(options, len(w.encode()) + 2) for s in sents for w in s)
        flops_all = flops_per_position(options) * positions
        mfu, mfu_all = flops / batch_s / peak, flops_all / batch_s / peak
        one = random_sentences(1, 20, 2)[0]
        emb.embed_sentences([one])
        lat = []
        for _ in range(args.reps):
            t = time.perf_counter()
            emb.embed_sentences([one])
            lat.append(time.perf_counter() - t)
        latency_ms = 1000 * sorted(lat)[len(lat) // 2]
        n_ref = max(3, args.reps // 3)  # the reference is slower: fewer repetitions
        ref_lat = sorted(reference_seconds(emb.bilm, [one], 1)[0] for _ in range(n_ref))
        ref_lat_ms = 1000 * ref_lat[n_ref // 2]
        batch_rows = len(next(emb._batches([22] * len(sents))))  # the Embedder's rows per batch
        diff = max(float(np.abs(v[2] - r).max()) for v, r in zip(vecs, ref_top))
    table = [
        ("weights.hdf5", f"{weights_mib:.0f} MiB"),
        (
            "import-elmo",
            f"{import_s:.1f} s; peak RSS {imp_mib:.0f} MiB = {imp_mib / weights_mib:.2f}x the weights "
            f"(a process importing torch + h5py alone: {base_mib:.0f} MiB)",
        ),
        (
            f"batches ({args.sentences} x 20 words)",
            f"{args.sentences / batch_s:.1f} sentences/s, {positions / batch_s:.0f} words/s, {batch_rows} per batch",
        ),
        (
            "model FLOPs / matmul peak",
            f"{flops / batch_s / 1e9:.1f} / {peak / 1e9:.1f} GFLOP/s = {mfu:.1%} (counting "
            f"every convolution window of the 50: {mfu_all:.1%})",
        ),
        (
            "one 20-word sentence",
            f"{latency_ms:.1f} ms (median of {args.reps}); the reference: {ref_lat_ms:.1f} ms "
            f"({ref_lat_ms / latency_ms:.2f}x)",
        ),
        (
            f"step-by-step reference (batch {args.reference_batch})",
            f"{args.sentences / ref_s:.1f} sentences/s; elmokit {ref_s / batch_s:.2f}x faster (top layers agree within "
            f"{diff:.1e})",
        ),
    ]
    w = max(len(k) for k, _ in table)
    print(f"ELMo {'(quick shape)' if args.quick else 'English shape'}, {args.threads} threads")
    for k, v in table:
        print(f"  {k:<{w}}  {v}")
    print(
        json.dumps(
            {
                "bench": "elmo",
                "shape": "quick" if args.quick else "english",
                "threads": args.threads,
                "weights_mib": round(weights_mib, 1),
                "import_s": round(import_s, 2),
                "import_peak_rss_mib": round(imp_mib),
                "import_peak_over_weights": round(imp_mib / weights_mib, 3),
                "baseline_rss_mib": round(base_mib),
                "sentences_per_s": round(args.sentences / batch_s, 2),
                "mfu": round(mfu, 5),  # 5 digits: the quick shape on a busy machine runs at ~0.007
                "mfu_all_windows": round(mfu_all, 5),
                "matmul_peak_gflops": round(peak / 1e9, 1),
                "latency_20_words_ms": round(latency_ms, 1),
                "reference_latency_20_words_ms": round(ref_lat_ms, 1),
                "reference_sentences_per_s": round(args.sentences / ref_s, 2),
                "speedup_vs_reference": round(ref_s / batch_s, 2),
                "reference_batch": args.reference_batch,
                "batch_rows": batch_rows,
                "max_abs_diff_vs_reference": diff,
            }
        )
    )


if __name__ == "__main__":
    main()
