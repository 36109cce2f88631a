"""The plain PyTorch baseline for the WikiText-2 recipe: pytorch/examples' word_language_model setup (word vocab
from the training file plus <eos>, `nn.Embedding` → `nn.LSTM` → `nn.Linear`, full softmax, SGD lr 20 annealed /4 on
a validation plateau, clip 0.25, bptt 35, batch 20), at the `small` size (256 embedding, 2 x 1024 LSTM with
projection 256), trained for a wall-clock budget, then word-level perplexity on valid and test.

    python scripts/baseline_wordlm.py --data "$ELMOKIT_DATA/wikitext-2" --minutes 55 --threads 1

Prints progress and ends with one JSON line (valid_ppl, test_ppl, tokens, minutes). Validation time is not
counted in the training budget (as `elmokit pretrain`'s periodic validation is on a 60k-token prefix only).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def tokenize(path: Path, vocab: dict[str, int], grow: bool) -> torch.Tensor:
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for w in line.split() + ["<eos>"]:
                if w not in vocab:
                    if not grow:
                        raise SystemExit(f"{path}: word {w!r} not in the training vocabulary")
                    vocab[w] = len(vocab)
                ids.append(vocab[w])
    return torch.tensor(ids, dtype=torch.long)


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    n = data.size(0) // bsz
    return data[: n * bsz].view(bsz, n).t().contiguous()  # (n, bsz)


class PlainLM(nn.Module):
    def __init__(self, V: int, emb: int, hidden: int, proj: int, layers: int, dropout: float):
        super().__init__()
        self.encoder = nn.Embedding(V, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, proj_size=proj, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(proj, V)

    def forward(self, x, hidden=None):  # x: (time, batch)
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)  # (time, batch, proj)
        return self.decoder(self.drop(out)), hidden  # (time, batch, V)


@torch.no_grad()
def evaluate(model, data: torch.Tensor, bptt: int) -> float:
    model.eval()
    total, n, hidden = 0.0, 0, None
    for i in range(0, data.size(0) - 1, bptt):
        x, y = data[i : i + bptt], data[i + 1 : i + 1 + bptt]
        x = x[: y.size(0)]
        logits, hidden = model(x, hidden)
        total += float(F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), reduction="sum"))
        n += y.numel()
    model.train()
    return math.exp(total / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with wiki.{train,valid,test}.tokens")
    ap.add_argument("--minutes", type=float, default=55)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument(
        "--eval-every-minutes",
        type=float,
        default=14,
        help="validation (for LR annealing); its time is not counted in --minutes",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1111)
    d = Path(args.data)
    vocab: dict[str, int] = {}
    train = batchify(tokenize(d / "wiki.train.tokens", vocab, True), args.batch)
    valid = batchify(tokenize(d / "wiki.valid.tokens", vocab, False), 10)
    test = batchify(tokenize(d / "wiki.test.tokens", vocab, False), 10)
    V = len(vocab)
    model = PlainLM(V, 256, 1024, 256, 2, args.dropout)
    lr = args.lr
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    start = time.time()
    paused = 0.0  # validation time does not count against the training budget
    next_eval = args.eval_every_minutes * 60
    best = float("inf")
    tokens = 0
    hidden = None
    i = 0
    while time.time() - start - paused < args.minutes * 60:
        if i >= train.size(0) - 1:
            i, hidden = 0, None
        x, y = train[i : i + args.bptt], train[i + 1 : i + 1 + args.bptt]
        x = x[: y.size(0)]
        logits, hidden = model(x, hidden)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        opt.zero_grad(set_to_none=True)
        hidden = tuple(h.detach() for h in hidden)
        tokens += y.numel()
        i += args.bptt
        elapsed = time.time() - start - paused
        if elapsed > next_eval:
            next_eval += args.eval_every_minutes * 60
            t0 = time.time()
            v = evaluate(model, valid, args.bptt)
            paused += time.time() - t0
            if v > best:  # anneal on a plateau, as the example does per epoch
                lr /= 4
                for g in opt.param_groups:
                    g["lr"] = lr
            best = min(best, v)
            print(
                f"{elapsed / 60:.1f} min, {tokens:,} tokens ({tokens / elapsed:.0f}/s), loss {loss.item():.3f}, "
                f"valid ppl {v:.1f}, lr {lr}",
                flush=True,
            )
    minutes = (time.time() - start - paused) / 60
    result = {
        "valid_ppl": evaluate(model, valid, args.bptt),
        "test_ppl": evaluate(model, test, args.bptt),
        "tokens": tokens,
        "epochs": tokens / train.numel(),
        "minutes": round(minutes, 1),
        "threads": args.threads,
        "vocab": V,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
