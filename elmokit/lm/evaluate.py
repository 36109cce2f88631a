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
from elmokit.lm.words import BOS_WORD, EOS_WORD, UNK_WORD, WordTable


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
    words: WordTable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-softmax NLL over a token array read as ``batch`` carried-state streams, summed per stream (``words``:
    a word token array's :class:`~elmokit.lm.words.WordTable`, for a char_cnn LM).

    Returns:
        ``(nll, predicted)``: two ``(batch,)`` arrays, the summed NLL (nats) and the predicted pieces of each stream.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    state = None
    total = torch.zeros(batch, dtype=torch.float64)
    count = torch.zeros(batch, dtype=torch.int64)
    chunks = list(eval_batches(tokens, batch, bptt, reverse, max_tokens, words))
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


def runaway_warning(nll: np.ndarray, count: np.ndarray, bad: list[int], where: str, clipped: bool = False) -> str:
    """A one-paragraph warning naming the runaway streams ``bad`` (from :func:`runaway_streams` on the same
    ``nll``/``count``), or ``""`` when there are none. ``clipped``: the model already clips its cells and
    projections, so the advice is not to add the clips but what helped when a clipped LM ran away (recipes/README.md,
    session 21: the state falls from its zero start into a saturated attractor; in training that shows at each
    epoch's start, where every stream starts from zero)."""
    if not bad:
        return ""
    per_piece = nll / np.maximum(count, 1)
    ok = count > 0
    clean = float(nll[ok].sum() - nll[bad].sum()) / max(int(count[ok].sum() - count[bad].sum()), 1)
    worst = ", ".join(f"stream {i}: {per_piece[i]:.2f}" for i in bad)
    return (
        f"warning: {where}: {len(bad)} of {int(ok.sum())} streams read at more than twice the median NLL per "
        f"piece ({worst}; median {float(np.median(per_piece[ok])):.2f}; the other streams together "
        f"{clean:.3f}). The carried state runs away there: the model is unstable in stream mode. "
        + (
            "It already clips its cells and projections: the state falls from its zero start into a saturated "
            "attractor. Train with a lower train.lr (a spike in the training loss at an epoch's start shows the "
            "same), or compare with --mode sentence."
            if clipped
            else "Train with model.cell_clip=3 model.proj_clip=3 (bilm-tf's bound), or compare with --mode sentence."
        )
    )


def clips_state(model) -> bool:
    """Whether an LM (:class:`~elmokit.lm.model.LanguageModel`) clips both its cells and its projections."""
    return model.cfg.cell_clip > 0 and model.cfg.proj_clip > 0


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
    mapper=None,
) -> tuple[float, int, int, int]:
    """Each line scored alone from a zero state: ``</s> pieces </s>``, predicting the pieces and the final ``</s>``
    (a char_cnn LM, given its ``mapper``: ``<S> words </S>``, predicting the words and ``</S>``).

    Returns:
        ``(nll, n_predicted, n_words, n_chars)`` (words and characters as :func:`count_text` counts them).
    """
    from tqdm.auto import tqdm

    model.eval()
    lines = [line for f in files for _, line in iter_lines(f, max_line_chars)]
    total, count = 0.0, 0
    for i in tqdm(range(0, len(lines), batch), desc="evaluating", disable=not progress, leave=False):
        chunk = lines[i : i + batch]
        if mapper is None:
            seqs = [[EOS_ID, *ids, EOS_ID] for ids in vocab.encode_batch(chunk)]
        else:
            seqs = [
                [BOS_WORD, *(vocab.index.get(w, -1 - k) for k, w in enumerate(ln.split())), EOS_WORD] for ln in chunk
            ]
        if reverse:
            seqs = [s[::-1] for s in seqs]
        n = max(len(s) for s in seqs)
        arr = torch.full((len(seqs), n), PAD_ID, dtype=torch.long)
        for j, s in enumerate(seqs):
            arr[j, : len(s)] = torch.tensor(s)
        x, y = arr[:, :-1], arr[:, 1:]
        lengths = torch.tensor([len(s) - 1 for s in seqs])
        mask = torch.arange(n - 1).unsqueeze(0) < lengths.unsqueeze(1)  # (batch, n-1)
        if mapper is not None:  # unknown words were -1 - k (their position k): read by their characters
            x = _word_inputs(x, [ln.split() for ln in chunk], vocab, mapper, reverse)
            y = torch.where(y < 0, UNK_WORD, y)
        nll, _ = model(x.to(device), y.to(device), None, mode="eval")
        total += float(nll[mask.to(device)].double().sum())
        count += int(mask.sum())
    return (total, count, *count_words_chars(lines))


def _word_inputs(x: torch.Tensor, sentences: list[list[str]], vocab, mapper, reverse: bool):
    """Word ids ``(batch, t)`` as the char_cnn LM reads them, where an unknown word ``k`` of row ``r`` is ``-1 -
    k``: every distinct word once, by its characters."""
    from elmokit.lm.words import CharInputs, word_chars

    strings = []
    for r, row in enumerate(x.tolist()):
        sent = sentences[r]
        strings.append([vocab.words[i] if i >= 0 else sent[-1 - i] for i in row])
    table: dict[str, int] = {}
    index = torch.tensor([[table.setdefault(w, len(table)) for w in row] for row in strings])  # (batch, t)
    chars = torch.from_numpy(np.stack([word_chars(mapper, w) for w in table]))  # (U, max_chars)
    return CharInputs(chars, index)


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
    from elmokit.lm.model_dir import load_model

    loaded = load_model(model_path)
    return evaluate_lm(
        loaded.model,
        loaded.vocab,
        loaded.manifest["direction"],
        corpus,
        mode,
        batch,
        bptt,
        cache_dir,
        max_tokens,
        progress,
        mapper=loaded.mapper,
        max_line_chars=loaded.cfg.data.max_line_chars,
        name=str(model_path),
    )


def evaluate_lm(
    model,
    vocab,
    direction: str,
    corpus: list[str],
    mode: str = "stream",
    batch: int = 10,
    bptt: int = 35,
    cache_dir: str = "~/.cache/elmokit",
    max_tokens: int = 0,
    progress: bool = True,
    mapper=None,
    max_line_chars: int = 20000,
    name: str = "",
) -> dict:
    """The perplexities of one loaded LM on ``corpus`` (a character-CNN LM: given its ``mapper``; a biLM's
    direction: :func:`elmokit.bilm.char_pair.direction_lm` or the pieces biLM's ``forward_lm``/``backward_lm``)."""
    from elmokit.lm.corpus import encode_corpus

    reverse = direction == "backward"
    if mode == "stream":
        if mapper is None:
            tokens = encode_corpus(
                corpus, vocab, cache_dir, num_proc=1, max_line_chars=max_line_chars, progress=progress
            )
            words = None
        else:
            from elmokit.lm.words import encode_word_corpus

            encoded = encode_word_corpus(corpus, vocab, cache_dir, max_line_chars)
            tokens, words = encoded.ids, encoded.table(vocab, mapper)
        per_nll, per_n = stream_nll_by_stream(
            model, tokens, reverse, batch, bptt, max_tokens, progress=progress, words=words
        )
        nll, n = float(per_nll.sum()), int(per_n.sum())
        words_n, chars = count_text(corpus, max_line_chars) if not max_tokens else (0, 0)
        runaway = runaway_streams(per_nll, per_n)
        warning = runaway_warning(per_nll, per_n, runaway, name, clips_state(model))
    elif mode == "sentence":
        runaway, warning = [], ""
        nll, n, words_n, chars = sentence_nll(
            model,
            vocab,
            corpus,
            reverse,
            batch=max(batch, 32),
            max_line_chars=max_line_chars,
            progress=progress,
            mapper=mapper,
        )
    else:
        raise ValueError(f"mode must be stream or sentence, got {mode!r}")
    result = Perplexity(nll, n, words_n, chars).as_dict()
    result.update(
        {
            "model": name,
            "direction": direction,
            "mode": mode,
            "corpus": [str(c) for c in corpus],
            "runaway_streams": runaway,
        }
    )
    if warning:
        result["warning"] = warning
    return result
