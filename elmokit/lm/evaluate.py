"""Perplexity with the full softmax: per subword and per whitespace word, stateful (streams) or per sentence.

Bits per character = the same total / (characters + one line end per line) / ln 2, the figure of the character-level
LM literature; with ``elmokit vocab --model-type char`` each piece is a character, so it is the per-piece figure too.

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

from elmokit.core.textfile import iter_lines
from elmokit.lm.corpus import eval_batches
from elmokit.lm.vocab import EOS_ID, PAD_ID


@dataclass
class Perplexity:
    nll: float  # summed negative log-likelihood (nats)
    tokens: int  # predicted pieces
    words: int  # whitespace words + one </s> per line (0 if unknown)
    chars: int = 0  # characters read + one line end per line (0 if unknown); see count_text

    @property
    def subword_ppl(self) -> float:
        return math.exp(self.nll / max(self.tokens, 1))

    @property
    def word_ppl(self) -> float | None:
        """None when the words are not known (``--max-tokens`` cuts the text mid-line)."""
        return math.exp(self.nll / self.words) if self.words else None

    @property
    def bits_per_char(self) -> float | None:
        """Bits per character (the character-level LM literature's figure); None when the characters are unknown."""
        return self.nll / self.chars / math.log(2) if self.chars else None

    def as_dict(self) -> dict:
        return {  # strict JSON: an unknown per-word figure is null, not NaN
            "nll": self.nll,
            "tokens": self.tokens,
            "words": self.words,
            "chars": self.chars,
            "subword_ppl": self.subword_ppl,
            "word_ppl": self.word_ppl,
            "bits_per_char": self.bits_per_char,
        }


def count_text(files: list[str], max_line_chars: int = 20000) -> tuple[int, int]:
    """``(words, chars)`` over files: whitespace words plus one ``</s>`` per line, and characters plus one line end
    per line, where a line's characters are counted as the vocabulary reads them (runs of whitespace are one space,
    none at the ends). Split long lines count once each piece."""
    return count_words_chars(line for f in files for _, line in iter_lines(f, max_line_chars))


def count_words_chars(lines) -> tuple[int, int]:
    """``(words, chars)`` of lines already read, as :func:`count_text` counts them."""
    words = chars = 0
    for line in lines:
        ws = line.split()
        words += len(ws) + 1
        chars += sum(len(w) for w in ws) + max(len(ws) - 1, 0) + 1
    return words, chars


@torch.no_grad()
def stream_nll_by_stream(
    model,
    tokens: np.ndarray,
    reverse: bool,
    batch: int = 10,
    bptt: int = 35,
    max_tokens: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-softmax NLL over a token array read as ``batch`` carried-state streams, summed per stream.

    Returns:
        ``(nll, predicted)``: two ``(batch,)`` arrays, the summed NLL (nats) and the predicted pieces of each stream.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    state = None
    total = torch.zeros(batch, dtype=torch.float64)
    count = torch.zeros(batch, dtype=torch.int64)
    chunks = list(eval_batches(tokens, batch, bptt, reverse, max_tokens))
    for x, y, m in tqdm(chunks, desc="evaluating", unit="chunk", disable=not progress, leave=False):
        nll, state = model(x.to(device), y.to(device), state, mode="eval")  # nll: (streams, t)
        m = m.to(device)
        total += torch.where(m, nll.double(), 0.0).sum(1).cpu()  # (streams,); padding counts nothing
        count += m.sum(1).cpu()
    model.train(was_training)
    return total.numpy(), count.numpy()


def runaway_streams(nll: np.ndarray, count: np.ndarray, factor: float = 2.0, min_pieces: int = 100) -> list[int]:
    """Streams whose NLL per piece is more than ``factor`` times the median stream's.

    In stream mode every stream carries its state through thousands of pieces; when one reads far worse than the
    others, the model's recurrent state has run away there (a large, self-sustaining activation) rather than the
    text being hard. One such stream can dominate the average, so the figure then says more about the model's
    stability than about its fit (bilm-tf's ``cell_clip``/``proj_clip``, here ``model.cell_clip``/``proj_clip``,
    bound that state).

    Args:
        nll, count: per stream, from :func:`stream_nll_by_stream`.
        factor: how many times the median NLL per piece counts as runaway.
        min_pieces: streams with fewer predicted pieces are not judged.

    Returns:
        The indices of the runaway streams (empty when there are fewer than 3 streams to compare).
    """
    ok = count >= min_pieces
    if ok.sum() < 3:
        return []
    per_piece = nll / np.maximum(count, 1)
    median = float(np.median(per_piece[ok]))
    return [int(i) for i in np.flatnonzero(ok & (per_piece > factor * median))]


def runaway_warning(nll: np.ndarray, count: np.ndarray, bad: list[int], where: str) -> str:
    """A one-paragraph warning naming the runaway streams ``bad`` (from :func:`runaway_streams` on the same
    ``nll``/``count``), or ``""`` when there are none."""
    if not bad:
        return ""
    per_piece = nll / np.maximum(count, 1)
    ok = count > 0
    clean = float(nll[ok].sum() - nll[bad].sum()) / max(int(count[ok].sum() - count[bad].sum()), 1)
    worst = ", ".join(f"stream {i}: {per_piece[i]:.2f}" for i in bad)
    return (
        f"warning: {where}: {len(bad)} of {int(ok.sum())} streams read at more than twice the median NLL per "
        f"piece ({worst}; median {float(np.median(per_piece[ok])):.2f}; the other streams together "
        f"{clean:.3f}). The carried state runs away there: the model is unstable in stream mode. Train with "
        f"model.cell_clip=3 model.proj_clip=3 (bilm-tf's bound), or compare with --mode sentence."
    )


@torch.no_grad()
def sentence_nll(
    model,
    vocab,
    files: list[str],
    reverse: bool,
    batch: int = 32,
    max_line_chars: int = 20000,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[float, int, int, int]:
    """Each line scored alone from a zero state: ``</s> pieces </s>``, predicting the pieces and the final ``</s>``.

    Returns:
        ``(nll, n_predicted, n_words, n_chars)`` (words and characters as :func:`count_text` counts them).
    """
    from tqdm.auto import tqdm

    model.eval()
    lines = [line for f in files for _, line in iter_lines(f, max_line_chars)]
    total, count = 0.0, 0
    for i in tqdm(range(0, len(lines), batch), desc="evaluating", disable=not progress, leave=False):
        chunk = lines[i : i + batch]
        seqs = [[EOS_ID, *ids, EOS_ID] for ids in vocab.encode_batch(chunk)]
        if reverse:
            seqs = [s[::-1] for s in seqs]
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
    return (total, count, *count_words_chars(lines))


def evaluate_model(
    model_path: str,
    corpus: list[str],
    mode: str = "stream",
    batch: int = 10,
    bptt: int = 35,
    cache_dir: str = "~/.cache/elmokit",
    max_tokens: int = 0,
    progress: bool = True,
) -> dict:
    """Load a model directory and compute its perplexities on ``corpus`` (the ``elmokit evaluate`` command)."""
    from elmokit.lm.corpus import encode_corpus
    from elmokit.lm.model_dir import load_model

    loaded = load_model(model_path)
    model, cfg, vocab, manifest = loaded.model, loaded.cfg, loaded.vocab, loaded.manifest
    reverse = manifest["direction"] == "backward"
    if mode == "stream":
        tokens = encode_corpus(
            corpus, vocab, cache_dir, num_proc=1, max_line_chars=cfg.data.max_line_chars, progress=progress
        )
        per_nll, per_n = stream_nll_by_stream(model, tokens, reverse, batch, bptt, max_tokens, progress=progress)
        nll, n = float(per_nll.sum()), int(per_n.sum())
        words, chars = count_text(corpus, cfg.data.max_line_chars) if not max_tokens else (0, 0)
        runaway = runaway_streams(per_nll, per_n)
        warning = runaway_warning(per_nll, per_n, runaway, str(model_path))
    elif mode == "sentence":
        runaway, warning = [], ""
        nll, n, words, chars = sentence_nll(
            model,
            vocab,
            corpus,
            reverse,
            batch=max(batch, 32),
            max_line_chars=cfg.data.max_line_chars,
            progress=progress,
        )
    else:
        raise ValueError(f"mode must be stream or sentence, got {mode!r}")
    result = Perplexity(nll, n, words, chars).as_dict()
    result.update(
        {
            "model": str(model_path),
            "direction": manifest["direction"],
            "mode": mode,
            "corpus": [str(c) for c in corpus],
            "runaway_streams": runaway,
        }
    )
    if warning:
        result["warning"] = warning
    return result
