"""The imported original ELMo: TensorFlow's own vectors (stateful), a direct implementation of bilm-tf's equations
(every layer, with and without skip connections), and what stateless mode promises."""

import json

import h5py
import numpy as np
import pytest
import torch

from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.charbilm import CarriedState, CharBiLM
from elmokit.embed import Embedder
from tests.conftest import ELMO_FIXTURE

SENTENCES = json.loads((ELMO_FIXTURE / "lm_embeddings_sentences.json").read_text())  # 3 lists of 10


def tf_vectors(k: int, i: int) -> np.ndarray:
    """TensorFlow's top layer of sentence i of list k: (tokens, 32) = [forward; backward]."""
    with h5py.File(ELMO_FIXTURE / f"lm_embeddings_{k}.hdf5", "r") as f:
        v = f[str(i)][...]  # (2, tokens, 16)
    return np.concatenate([v[0], v[1]], -1)


def test_tensorflow_parity_stateful(elmo_bundles):
    """bilm-tf's test: batch i = sentence i of each list, the state carried from batch to batch row by row."""
    bilm = load_bilm(elmo_bundles["tf"])
    assert isinstance(bilm, CharBiLM) and bilm.num_layers == 3 and bilm.dim == 16
    carry, worst = CarriedState(), 0.0
    for i in range(10):
        batch = [SENTENCES[k][i].split() for k in range(3)]
        for k, v in enumerate(_rows(bilm, batch, carry)):
            want = tf_vectors(k, i)
            assert v.shape == (3, len(batch[k]), 32) and want.shape == (len(batch[k]), 32)
            worst = max(worst, float(np.abs(v[2].numpy() - want).max()))
    assert worst < 1e-5, worst


def _rows(bilm, batch, carry):
    """Per sentence of the batch, its (layers, words, 2D), one row each, the state carried."""
    words = bilm.encode_words([[s] for s in batch], carry=carry)  # (layers, N, 2D)
    out, a = [], 0
    for s in batch:
        out.append(words[:, a : a + len(s)])
        a += len(s)
    return out


def test_tensorflow_parity_through_embedder(elmo_bundles):
    """The same numbers from the public API: sentences in bilm-tf's batch order, stateful, 3 per batch."""
    emb = Embedder(elmo_bundles["tf"], stateful=True, batch_size=3)
    order = [(k, i) for i in range(10) for k in range(3)]
    vecs = emb.embed_sentences([SENTENCES[k][i] for k, i in order])
    worst = max(float(np.abs(v[2] - tf_vectors(k, i)).max()) for v, (k, i) in zip(vecs, order))
    assert worst < 1e-5, worst
    emb.reset_state()  # starting over gives the same numbers again
    again = emb.embed_sentences([SENTENCES[k][i] for k, i in order])
    np.testing.assert_array_equal(again[-1], vecs[-1])


def test_stateless_is_not_stateful_but_batch_invariant(elmo_bundles, stacks_schedule):
    emb = Embedder(elmo_bundles["tf"], batch_tokens=64)
    sents = [SENTENCES[k][i] for i in range(10) for k in range(3)]
    together = emb.embed_sentences(sents)
    alone = [emb.embed_sentences([s])[0] for s in sents[:6]]
    shuffled = emb.embed_sentences(sents[::-1])[::-1]
    for a, b, c in zip(together, alone, shuffled):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        np.testing.assert_allclose(a, c, atol=1e-5, rtol=0)
    # the first batch of the stateful run starts from zeros too; later batches carry state and differ
    assert np.abs(together[3][2] - tf_vectors(0, 1)).max() > 1e-3


# --- a direct implementation of bilm-tf's equations, from the raw weights file ------------------------------------
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def elmo_char_ids(word: str) -> np.ndarray:
    ids = np.full(50, 260)
    if word in ("<S>", "</S>"):
        ids[:3] = (258, 256 if word == "<S>" else 257, 259)
    else:
        b = list(word.encode("utf-8"))[:48]
        ids[0], ids[1 : 1 + len(b)], ids[1 + len(b)] = 258, b, 259
    return ids + 1


def reference_layers(words: list[str], skip: bool) -> np.ndarray:
    """(3, words, 32) from a zero state: bilm-tf's model written out with numpy, step by step."""
    with h5py.File(ELMO_FIXTURE / "lm_weights.hdf5", "r") as f:
        w = {k: f[k][...] for k in _datasets(f)}
    opts = json.loads((ELMO_FIXTURE / "options.json").read_text())
    table = np.vstack([np.zeros((1, 4), np.float32), w["char_embed"]])
    tokens = ["<S>", *words, "</S>"]
    emb = table[np.stack([elmo_char_ids(t) for t in tokens])]  # (T, 50, 4)
    feats = []
    for i, (width, _n) in enumerate(opts["char_cnn"]["filters"]):
        W, b = w[f"CNN/W_cnn_{i}"][0], w[f"CNN/b_cnn_{i}"]  # (width, 4, n)
        conv = np.stack([sum(emb[:, p + q] @ W[q] for q in range(width)) for p in range(50 - width + 1)], 1) + b
        feats.append(np.maximum(conv.max(1), 0))  # max over positions, then relu
    h = np.concatenate(feats, -1)  # (T, 124)
    for k in range(2):
        g = f"CNN_high_{k}/"
        carry = sigmoid(h @ w[g + "W_carry"] + w[g + "b_carry"])
        h = carry * np.maximum(h @ w[g + "W_transform"] + w[g + "b_transform"], 0) + (1 - carry) * h
    tok = h @ w["CNN_proj/W_proj"] + w["CNN_proj/b_proj"]  # (T, 16)
    out = [np.concatenate([tok, tok], -1)]
    dirs = []
    for d in (0, 1):
        x = tok if d == 0 else tok[::-1]
        per_layer = []
        for layer in range(2):
            g = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell/"
            W0, B, WP = w[g + "W_0"], w[g + "B"], w[g + "W_P_0"]
            hs, m, c = [], np.zeros(16), np.zeros(64)
            for t in range(len(x)):
                i_, j, f_, o = np.split(np.concatenate([x[t], m]) @ W0 + B, 4)
                c = np.clip(sigmoid(f_ + 1.0) * c + sigmoid(i_) * np.tanh(j), -3, 3)
                m = np.clip((sigmoid(o) * np.tanh(c)) @ WP, -3, 3)
                hs.append(m + x[t] if skip and layer > 0 else m)
            x = np.stack(hs)
            per_layer.append(x if d == 0 else x[::-1])
        dirs.append(per_layer)
    out += [np.concatenate([dirs[0][k], dirs[1][k]], -1) for k in range(2)]
    return np.stack(out)[:, 1:-1]  # the <S>/</S> positions dropped


def _datasets(f) -> list[str]:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


@pytest.fixture(params=["default", "side-by-side"])
def stacks_schedule(request, monkeypatch):
    """Run a test as this small model runs by default, and with its two stacks side by side in two threads (what
    stacks with large recurrent weights, the published English ELMo's, do)."""
    threads = torch.get_num_threads()
    if request.param == "side-by-side":
        torch.set_num_threads(2)
        monkeypatch.setattr("elmokit.bilm.frozen.LOCKSTEP_MAX_BYTES", 0)
    yield request.param
    assert torch.get_num_threads() == (2 if request.param == "side-by-side" else threads)  # the caller's count kept
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["tf", "skip"])
def test_every_layer_matches_the_equations(elmo_bundles, kind, stacks_schedule):
    emb = Embedder(elmo_bundles[kind])
    words = SENTENCES[2][3].split()[:12] + ["naïve", "고양이", "<S>"]  # multi-byte words; "<S>" as bilm-tf maps it
    got = emb.embed_tokens([words])[0]
    want = reference_layers(words, skip=kind == "skip")
    assert got.shape == want.shape == (3, len(words), 32)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    batch = emb.embed_tokens([SENTENCES[0][1].split(), words, SENTENCES[1][4].split()])[1]  # three rows
    np.testing.assert_allclose(batch, got, atol=1e-5, rtol=0)


def test_pooling_is_moot_and_document_mode_wraps_each_sentence(elmo_bundles):
    bilm = load_bilm(elmo_bundles["tf"])
    s1, s2 = SENTENCES[0][0].split()[:8], SENTENCES[1][0].split()[:5]
    a, _ = bilm([s1], "edges")
    b, _ = bilm([s1], "mean")
    torch.testing.assert_close(a, b)
    doc = bilm.document([s1, s2])
    # the forward direction of the first sentence sees nothing of the second
    torch.testing.assert_close(doc[0][1:, :, :16], a[0, 1:, :, :16], atol=1e-6, rtol=0)
    assert not torch.allclose(doc[0][1:, :, 16:], a[0, 1:, :, 16:], atol=1e-4)
    # empty sentences: no vectors, and the others' are unchanged
    v, mask = bilm([[], s2])
    assert v.shape == (2, 3, 5, 32) and mask.sum() == 5


def _edit_manifest(m, key, value):
    if value is _DROP:
        del m[key]
    elif key.startswith("model."):
        m["model"][key[6:]] = value
    elif key.startswith("files."):
        m["files"][key[6:]] = value
    else:
        m[key] = value


_DROP = object()


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("sha256", _DROP, "'sha256'"),
        ("sha256", 12, "'sha256'"),
        ("files", _DROP, "lists no files"),
        ("files", ["weights.pt"], "'files' must map"),
        ("files", {"char.dic": "0" * 64}, "weights.pt"),
        ("files.weights.pt", "not a hash", "'weights.pt'"),
        ("files.../outside.txt", "0" * 64, "'../outside.txt'"),
        ("files./etc/hostname", "0" * 64, "'/etc/hostname'"),
        ("model", [1], "model"),
        ("model.num_layers", 0, "num_layers"),
        ("model.cell_clip", "abc", "cell_clip"),
        ("model.filters", [[1]], "filters"),
    ],
)
def test_a_tampered_manifest_is_one_line(elmo_bundles, tmp_path, key, value, says):
    """Issue 34 cases 13 and 16 through the loader: a missing sha256 was a KeyError, a list of files an
    AttributeError; paths outside the bundle were read and hashed."""
    import shutil

    from elmokit.core.errors import CheckpointError

    d = tmp_path / "b"
    shutil.copytree(elmo_bundles["tf"], d)
    (tmp_path / "outside.txt").write_text("not the bundle's")
    m = json.loads((d / "manifest.json").read_text())
    _edit_manifest(m, key, value)
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError) as e:
        load_bilm(d)
    assert says in str(e.value) and "\n" not in str(e.value)
