import numpy as np
import pytest
import torch

from elmokit.core.errors import CorpusError
from elmokit.lm.corpus import StreamBatcher, encode_corpus, eval_batches
from elmokit.lm.vocab import EOS_ID, load_vocab


def test_encode_layout_and_cache(corpus, vocab_path, tmp_path):
    v = load_vocab(vocab_path)
    toks = encode_corpus([str(corpus["valid"])], v, tmp_path, progress=False)
    lines = corpus["valid"].read_text(encoding="utf-8").splitlines()
    expected = [EOS_ID] + [i for line in lines for i in v.encode(line) + [EOS_ID]]
    assert toks.dtype == np.int32 and toks.tolist() == expected
    assert isinstance(toks, np.memmap)
    again = encode_corpus([str(corpus["valid"])], v, tmp_path, progress=False)
    assert again.filename == toks.filename  # served from the cache


def test_encode_reports_bad_line(vocab_path, tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"good line\n" * 3 + b"bad \xc3\x28\n")
    with pytest.raises(CorpusError, match=r"bad.txt:4: invalid UTF-8"):
        encode_corpus([str(p)], load_vocab(vocab_path), tmp_path, progress=False)


def test_streams_are_contiguous_and_sharded():
    tokens = np.arange(1001, dtype=np.int32)
    one = StreamBatcher(tokens, global_batch=4, bptt=5)
    assert one.stream_len == 250 and one.steps_per_epoch == 50
    x, y = one.batch(0)
    assert x[:, 0].tolist() == [0, 250, 500, 750] and torch.equal(y[:, :-1], x[:, 1:])
    x1, _ = one.batch(1)
    assert torch.equal(x1[:, 0], x[:, -1] + 1)  # the next window continues every stream
    shards = [StreamBatcher(tokens, 4, 5, rank=r, world=2) for r in range(2)]
    assert {s.steps_per_epoch for s in shards} == {one.steps_per_epoch}
    for step in (0, 7, 49):
        glued = torch.cat([s.batch(step)[0] for s in shards])
        assert torch.equal(glued, one.batch(step)[0])


def test_backward_streams_read_reversed():
    tokens = np.arange(101, dtype=np.int32)
    x, y = StreamBatcher(tokens, 2, 5, reverse=True).batch(0)
    assert x[0].tolist() == [100, 99, 98, 97, 96] and y[0].tolist() == [99, 98, 97, 96, 95]


def test_uneven_split_and_too_small():
    with pytest.raises(Exception, match="multiple of 2"):
        StreamBatcher(np.arange(100), 3, 5, world=2)
    with pytest.raises(CorpusError, match="too small"):
        StreamBatcher(np.arange(10), 4, 5)


@pytest.mark.parametrize("reverse", [False, True])
def test_eval_batches_predict_every_token_once(reverse):
    tokens = np.arange(97, dtype=np.int64)
    seen = []
    for x, y, m in eval_batches(tokens, batch=4, bptt=6, reverse=reverse):
        assert x.shape == y.shape == m.shape
        seen += y[m].tolist()
        assert torch.equal(x[m] + (-1 if reverse else 1), y[m])  # inputs are the previous tokens
    arr = tokens[::-1] if reverse else tokens
    assert sorted(seen) == sorted(arr[1:].tolist())


def test_edited_file_is_encoded_again(vocab_path, tmp_path):
    import os

    v = load_vocab(vocab_path)
    p = tmp_path / "c.txt"
    p.write_text("The cat sees a dog .\n", encoding="utf-8")
    first = encode_corpus([str(p)], v, tmp_path / "cache", progress=False)
    p.write_text("Birds sing .\nA dog waits .\n", encoding="utf-8")
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    second = encode_corpus([str(p)], v, tmp_path / "cache", progress=False)
    assert second.tolist() == [EOS_ID] + v.encode("Birds sing .") + [EOS_ID] + v.encode("A dog waits .") + [EOS_ID]
    assert first.tolist() != second.tolist()


@pytest.mark.parametrize("world,parts", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_restarts_spread_each_stream_once_per_period(world, parts):
    """Every stream restarts exactly once in any `every` consecutive steps, a near-equal number at each step, and
    which ones depends on the global stream index only (not on processes or micro-batches)."""
    batchers = [StreamBatcher(np.arange(1000, dtype=np.int32), 8, 5, rank=r, world=world) for r in range(world)]
    every = 3
    for step in range(10):
        due = np.concatenate([b.restarts(step, every, m, parts) for b in batchers for m in range(parts)])  # (8,)
        one = StreamBatcher(np.arange(1000, dtype=np.int32), 8, 5).restarts(step, every)
        assert due.tolist() == one.tolist() and due.sum() in (2, 3)
    window = np.stack([batchers[0].restarts(s, every, 0, parts) for s in range(4, 4 + every)])  # (every, n)
    assert (window.sum(0) == 1).all()
