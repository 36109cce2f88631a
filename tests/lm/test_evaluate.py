import json
import math

import numpy as np
import pytest
import torch

from elmokit.lm.evaluate import (
    Perplexity,
    count_text,
    runaway_streams,
    runaway_warning,
    sentence_nll,
    stream_nll_by_stream,
)
from elmokit.lm.model import LanguageModel, tiny
from elmokit.lm.vocab import EOS_ID, load_vocab


def stream_nll(model, tokens, reverse, batch, bptt):
    """The per-stream NLL summed: (nll, predicted tokens)."""
    nll, count = stream_nll_by_stream(model, tokens, reverse, batch, bptt)
    return float(nll.sum()), int(count.sum())


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return LanguageModel(tiny(), 320).eval()


@pytest.mark.parametrize("reverse", [False, True])
def test_stream_nll_is_exact_whatever_the_window(lm, reverse):
    tokens = np.random.default_rng(0).integers(0, 320, 200).astype(np.int32)
    whole, n = stream_nll(lm, tokens, reverse, batch=1, bptt=1000)
    windows, n2 = stream_nll(lm, tokens, reverse, batch=1, bptt=7)
    assert n == n2 == 199 and whole == pytest.approx(windows, rel=1e-5)
    # by hand: one pass, full softmax, sum of -log p(next)
    arr = torch.tensor(tokens[::-1].copy() if reverse else tokens, dtype=torch.long)
    nll, _ = lm(arr[None, :-1], arr[None, 1:], mode="eval")
    assert whole == pytest.approx(float(nll.sum()), rel=1e-5)
    # more streams: every token still predicted exactly once
    _, n3 = stream_nll(lm, tokens, reverse, batch=6, bptt=5)
    assert n3 == 199


def test_per_stream_nll_adds_up_to_the_total(lm):
    tokens = np.random.default_rng(1).integers(0, 320, 300).astype(np.int32)
    per_nll, per_n = stream_nll_by_stream(lm, tokens, False, batch=6, bptt=5)
    total, n = stream_nll(lm, tokens, False, batch=6, bptt=5)
    assert per_nll.shape == per_n.shape == (6,) and int(per_n.sum()) == n == 299
    assert float(per_nll.sum()) == pytest.approx(total, rel=1e-9)
    # stream 0 is the first sixth of the text, scored from a zero state: the same as scoring that part alone
    first = tokens[: int(per_n[0]) + 1]
    alone, _ = stream_nll(lm, first, False, batch=1, bptt=1000)
    assert per_nll[0] == pytest.approx(alone, rel=1e-5)


def test_runaway_streams_are_named():
    count = np.array([1000, 1000, 1000, 1000, 50])
    nll = np.array([6.1, 5.9, 30.0, 6.4, 90.0]) * count  # stream 2 ran away; stream 4 is too short to judge
    assert runaway_streams(nll, count) == [2]
    msg = runaway_warning(nll, count, runaway_streams(nll, count), "validation at step 1000")
    assert "stream 2: 30.00" in msg and "1 of 5 streams" in msg and "cell_clip" in msg
    assert "together 7.508" in msg  # all but stream 2: ((6.1 + 5.9 + 6.4) * 1000 + 90 * 50) / 3050
    clipped = runaway_warning(nll, count, [2], "x", clipped=True)  # the clips are on: other advice
    assert "already clips" in clipped and "train.lr" in clipped and "cell_clip=3" not in clipped
    steady = np.array([6.1, 5.9, 7.0, 6.4]) * 1000
    assert runaway_streams(steady, np.full(4, 1000)) == [] and runaway_warning(steady, np.full(4, 1000), [], "x") == ""
    assert runaway_streams(np.array([1.0, 100.0]), np.array([200, 200])) == []  # too few streams to compare


def test_sentence_mode_scores_lines_alone(lm, vocab_path, tmp_path):
    vocab = load_vocab(vocab_path)
    p = tmp_path / "s.txt"
    p.write_text("The cat sees a dog .\nSome birds sing .\n", encoding="utf-8")
    total, count, words, chars = sentence_nll(lm, vocab, [str(p)], reverse=False, batch=2)
    by_hand = 0.0
    for line in ["The cat sees a dog .", "Some birds sing ."]:
        seq = torch.tensor([[EOS_ID, *vocab.encode(line), EOS_ID]])
        nll, _ = lm(seq[:, :-1], seq[:, 1:], mode="eval")
        by_hand += float(nll.sum())
    assert total == pytest.approx(by_hand, rel=1e-5)
    assert (words, chars) == count_text([str(p)]) == (6 + 1 + 4 + 1, 21 + 18)
    assert count == len(vocab.encode("The cat sees a dog .")) + len(vocab.encode("Some birds sing .")) + 2


def test_per_word_perplexity():
    p = Perplexity(nll=100.0, tokens=50, words=20)
    assert p.subword_ppl == pytest.approx(math.exp(2.0)) and p.word_ppl == pytest.approx(math.exp(5.0))
    unknown = Perplexity(nll=100.0, tokens=50, words=0).as_dict()  # --max-tokens: words not counted
    assert unknown["word_ppl"] is None and "NaN" not in json.dumps(unknown)
