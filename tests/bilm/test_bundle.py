import shutil

import numpy as np
import pytest
import torch

from elmokit.bilm.bundle import load_bilm, write_bundle
from elmokit.core.errors import CheckpointError


def full_row(bilm, words):
    """Word pieces and both LMs' layers over the whole row ``</s> pieces </s>`` (the reference computation)."""
    pieces = bilm.pieces([words])[0]
    seq = [2, *[i for w in pieces for i in w], 2]
    f_layers, _ = bilm.forward_lm.encode(torch.tensor([seq]))
    b_layers, _ = bilm.backward_lm.encode(torch.tensor([seq[::-1]]))
    return pieces, len(seq), f_layers, b_layers


@pytest.fixture(params=["lockstep", "one-after-the-other"])
def lm_schedule(request, monkeypatch):
    """Run a test with the two LMs in lockstep (2 threads, small batch) and one after the other."""
    threads = torch.get_num_threads()
    if request.param == "lockstep":
        torch.set_num_threads(2)
    else:
        monkeypatch.setattr("elmokit.bilm.frozen.LOCKSTEP_MAX_BATCH", 0)
    yield request.param
    torch.set_num_threads(threads)


def test_layer_layout_and_edges_pooling(tiny_pair, lm_schedule):
    """Layer k of word j = [forward layer k at the word's last piece; backward layer k at its first piece]."""
    bilm = load_bilm(tiny_pair["bundle"])
    words = ["Unbelievably", "distant", "cats", "."]
    vecs, mask = bilm([words])  # (1, layers, words, 2D)
    assert vecs.shape == (1, 3, 4, 64) and mask.all()
    pieces, n, f_layers, b_layers = full_row(bilm, words)
    pos = 1
    for j, w in enumerate(pieces):
        first, last = pos, pos + len(w) - 1
        for k in range(3):
            torch.testing.assert_close(vecs[0, k, j, :32], f_layers[k][last, 0])
            torch.testing.assert_close(vecs[0, k, j, 32:], b_layers[k][n - 1 - first, 0])
        pos = last + 1


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_other_poolings(tiny_pair, pooling, lm_schedule):
    bilm = load_bilm(tiny_pair["bundle"])
    words = ["Unbelievably", "distant", "cats"]
    vecs, _ = bilm([words], pooling)
    assert vecs.shape == (1, 3, 3, 64)
    pieces, n, f_layers, b_layers = full_row(bilm, words)
    pos = 1
    for j, w in enumerate(pieces):
        first, last = pos, pos + len(w) - 1
        span = {"first": [first], "last": [last], "mean": list(range(first, last + 1))}[pooling]
        for k in range(3):
            torch.testing.assert_close(vecs[0, k, j, :32], f_layers[k][span, 0].mean(0))
            torch.testing.assert_close(vecs[0, k, j, 32:], b_layers[k][[n - 1 - p for p in span], 0].mean(0))
        pos = last + 1


def test_empty_sentences_in_a_batch(tiny_pair):
    bilm = load_bilm(tiny_pair["bundle"])
    vecs, mask = bilm([[], ["a", "cat"], []])
    assert vecs.shape == (3, 3, 2, 64) and mask.tolist() == [[False, False], [True, True], [False, False]]
    assert vecs[0].abs().sum() == 0


def test_refuses_mismatched_pairs(tiny_pair, tmp_path, corpus):
    with pytest.raises(CheckpointError, match="is a backward LM; pass the forward LM first"):
        load_bilm(tiny_pair["backward"], tiny_pair["forward"])
    with pytest.raises(CheckpointError, match="pass the backward LM second"):
        load_bilm(tiny_pair["forward"], tiny_pair["forward"])
    # a backward LM trained with another vocabulary
    from elmokit.lm.pretrain import pretrain
    from elmokit.lm.vocab import train_vocab

    train_vocab([str(corpus["train"])], str(tmp_path / "v2"), size=330, num_threads=1)
    other = pretrain(
        None,
        "backward",
        tmp_path / "b2",
        [
            f"data.vocab={tmp_path / 'v2.model'}",
            f"data.train={corpus['train']}",
            f"data.cache_dir={tmp_path / 'c'}",
            "data.num_proc=1",
            "train.batch_size=4",
            "train.max_steps=1",
            "train.checkpoint_every=0",
        ],
        progress=False,
    )
    with pytest.raises(CheckpointError, match="different vocabularies"):
        write_bundle(tiny_pair["forward"], other, tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_corrupt_bundle(tiny_pair, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_pair["bundle"], bad)
    (bad / "backward" / "manifest.json").write_text("{}")
    with pytest.raises(CheckpointError, match="does not match the bundle manifest"):
        load_bilm(bad)
    with pytest.raises(CheckpointError, match="not a biLM bundle"):
        load_bilm(tiny_pair["forward"])


def test_document_mode_carries_context(tiny_pair):
    from elmokit.embed import Embedder

    e = Embedder(tiny_pair["bundle"])
    doc = ["The old farmer sees many cats .", "Birds sing .", "A dog waits ."]
    together = e.embed_document(doc)
    alone = e.embed_sentences(doc)
    assert [v.shape for v in together] == [v.shape for v in alone]
    # the middle sentence has context on both sides: both halves differ from the sentence alone
    assert not np.allclose(together[1][:, :, :32], alone[1][:, :, :32])
    assert not np.allclose(together[1][:, :, 32:], alone[1][:, :, 32:])
    # a one-sentence document is the sentence alone
    np.testing.assert_allclose(e.embed_document(doc[:1])[0], alone[0], atol=1e-5)


def test_a_bundle_whose_swap_was_killed_loads_again(tiny_pair, tmp_path):
    """`commit_dir` killed between its renames leaves the old bundle at .NAME.old-PID and nothing at NAME: the next
    reader puts it back (a dead writer's only), and a manifest that is not an object is one line."""
    import subprocess

    b = tmp_path / "bilm"
    shutil.copytree(tiny_pair["bundle"], b)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that is no longer alive
    b.rename(tmp_path / f".bilm.old-{gone.pid}")
    assert load_bilm(b).num_layers == 3 and b.is_dir()
    (b / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_bilm(b)
