"""Perplexity with the full softmax: per subword and per whitespace word, stateful (streams) or per sentence.

Per-word perplexity = exp(total negative log-likelihood of all pieces / number of words), where the pieces of a
word are summed (a word's probability is the product of its pieces'), and each line's ``</s>`` counts as one word,
as in the word-level LM literature (WikiText-2 test has 245,569 such words). So the figure compares with word-level
models on the same text, whatever the vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from elmokit.corpus import eval_batches
from elmokit.textfile import iter_lines
from elmokit.vocab import EOS_ID, PAD_ID


@dataclass
class Perplexity:
    nll: float  # summed negative log-likelihood (nats)
    tokens: int  # predicted pieces
    words: int  # whitespace words + one </s> per line (0 if unknown)

    @property
    def subword_ppl(self) -> float:
        return math.exp(self.nll / max(self.tokens, 1))

    @property
    def word_ppl(self) -> float:
        return math.exp(self.nll / self.words) if self.words else float("nan")

    def as_dict(self) -> dict:
        return {
            "nll": self.nll, "tokens": self.tokens, "words": self.words,
            "subword_ppl": self.subword_ppl, "word_ppl": self.word_ppl,
        }


def count_words(files: list[str], max_line_chars: int = 20000) -> int:
    """Whitespace words plus one ``</s>`` per line, over files (split long lines count once each piece)."""
    return sum(len(line.split()) + 1 for f in files for _, line in iter_lines(f, max_line_chars))


@torch.no_grad()
def stream_nll(
    model, tokens: np.ndarray, reverse: bool, batch: int = 10, bptt: int = 35, max_tokens: int = 0,
    device: str | torch.device = "cpu", progress: bool = False,
) -> tuple[float, int]:
    """Summed full-softmax NLL over a token array read as ``batch`` carried-state streams.

    Returns:
        ``(nll, n_predicted)``.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    state = None
    total = 0.0
    count = 0
    chunks = list(eval_batches(tokens, batch, bptt, reverse, max_tokens))
    for x, y, m in tqdm(chunks, desc="evaluating", unit="chunk", disable=not progress, leave=False):
        nll, state = model(x.to(device), y.to(device), state, mode="eval")  # nll: (batch, t)
        m = m.to(device)
        total += float(nll[m].double().sum())
        count += int(m.sum())
    model.train(was_training)
    return total, count


@torch.no_grad()
def sentence_nll(
    model, vocab, files: list[str], reverse: bool, batch: int = 32, max_line_chars: int = 20000,
    device: str | torch.device = "cpu", progress: bool = False,
) -> tuple[float, int, int]:
    """Each line scored alone from a zero state: ``</s> pieces </s>``, predicting the pieces and the final ``</s>``.

    Returns:
        ``(nll, n_predicted, n_words)``.
    """
    from tqdm.auto import tqdm

    model.eval()
    lines = [line for f in files for _, line in iter_lines(f, max_line_chars)]
    total, count, words = 0.0, 0, 0
    for i in tqdm(range(0, len(lines), batch), desc="evaluating", disable=not progress, leave=False):
        chunk = lines[i : i + batch]
        seqs = [[EOS_ID, *ids, EOS_ID] for ids in vocab.encode_batch(chunk)]
        if reverse:
            seqs = [s[::-1] for s in seqs]
        words += sum(len(line.split()) + 1 for line in chunk)
        n = max(len(s) for s in seqs)
        arr = torch.full((len(seqs), n), PAD_ID, dtype=torch.long)
        for j, s in enumerate(seqs):
            arr[j, : len(s)] = torch.tensor(s)
        x, y = arr[:, :-1], arr[:, 1:]
        lengths = torch.tensor([len(s) - 1 for s in seqs])
        mask = torch.arange(n - 1).unsqueeze(0) < lengths.unsqueeze(1)  # (batch, n-1)
        nll, _ = model(x.to(device), y.to(device), None, mode="eval")
        total += float(nll[mask.to(device)].double().sum())
        count += int(mask.sum())
    return total, count, words


def evaluate_model(
    model_path: str, corpus: list[str], mode: str = "stream", batch: int = 10, bptt: int = 35,
    cache_dir: str = "~/.cache/elmokit", max_tokens: int = 0, progress: bool = True,
) -> dict:
    """Load a model directory and compute its perplexities on ``corpus`` (the ``elmokit evaluate`` command)."""
    from elmokit.checkpoint import load_model
    from elmokit.corpus import encode_corpus

    model, cfg, vocab, manifest = load_model(model_path)
    reverse = manifest["direction"] == "backward"
    if mode == "stream":
        tokens = encode_corpus(corpus, vocab, cache_dir, num_proc=1, max_line_chars=cfg.data.max_line_chars,
                               progress=progress)
        nll, n = stream_nll(model, tokens, reverse, batch, bptt, max_tokens, progress=progress)
        words = count_words(corpus, cfg.data.max_line_chars) if not max_tokens else 0
    elif mode == "sentence":
        nll, n, words = sentence_nll(model, vocab, corpus, reverse, batch=max(batch, 32),
                                     max_line_chars=cfg.data.max_line_chars, progress=progress)
    else:
        raise ValueError(f"mode must be stream or sentence, got {mode!r}")
    result = Perplexity(nll, n, words).as_dict()
    result.update({"model": str(model_path), "direction": manifest["direction"], "mode": mode,
                   "corpus": [str(c) for c in corpus]})
    return result
