"""elmokit.allennlp: AllenNLP's ELMo API. Its own test procedures (bilm-tf's fixture, TensorFlow's vectors) with
only the import changed, batch_to_ids against AllenNLP's documented character rules, the cache, the modes."""

import json

import h5py
import numpy as np
import pytest
import torch

from elmokit import allennlp
from elmokit.allennlp import Elmo, ElmoEmbedder, batch_to_ids
from elmokit.bilm.bundle import load_bilm
from elmokit.core.errors import ElmokitError
from tests.conftest import ELMO_FIXTURE

OPTIONS, WEIGHTS = ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5"
TOP_ONLY = [-1e4, -1e4, 1e4]  # a fixed mix that is the top layer exactly (softmax: 0, 0, 1)


def load_sentences_embeddings():
    """AllenNLP's ElmoTestCase._load_sentences_embeddings: 3 lists of 10 sentences, TensorFlow's top layers."""
    sentences = json.loads((ELMO_FIXTURE / "lm_embeddings_sentences.json").read_text())
    expected = []
    for k in range(len(sentences)):
        expected.append([])
        with h5py.File(ELMO_FIXTURE / f"lm_embeddings_{k}.hdf5", "r") as fin:
            for i in range(10):
                v = fin[str(i)][...]
                expected[-1].append(np.concatenate((v[0], v[1]), axis=-1))
    return sentences, expected


def linear_order():
    """AllenNLP's TestElmoEmbedder: the sentences reorganised linearly, TensorFlow's batch i = sentence i of each
    list, so that batches of 3 are TensorFlow's batches."""
    loaded, embeddings = load_sentences_embeddings()
    sentences, expected = [], []
    for batch_number in range(len(loaded[0])):
        for index in range(len(loaded)):
            sentences.append(loaded[index][batch_number].split())
            expected.append(embeddings[index][batch_number])
    return sentences, expected


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "elmokit" / "allennlp"


# --- batch_to_ids: ELMoCharacterMapper's rules, written out ------------------------------------------------------
def expected_ids(word: str) -> list[int]:
    """ELMoCharacterMapper.convert_word_to_char_ids, from its documentation: 258, the UTF-8 bytes (at most 48), 259,
    then 260 to 50 ids, every id + 1."""
    data = list(word.encode("utf-8"))[:48]
    ids = [258, *data, 259] + [260] * (50 - len(data) - 2)
    return [i + 1 for i in ids]


def test_batch_to_ids_multibyte_long_and_empty():
    long = "x" * 47 + "é" + "abc"  # 47 + 2 + 3 bytes: the cut falls inside "é" (its first byte kept)
    batch = [["naïve", "고양이", long], [], ["a"]]
    ids = batch_to_ids(batch)
    assert ids.dtype == torch.int64 and ids.shape == (3, 3, 50)
    # n a ï(0xC3 0xAF) v e, each + 1
    assert ids[0, 0].tolist() == [259, 111, 98, 196, 176, 119, 102, 260] + [261] * 42
    assert ids[0, 1].tolist() == expected_ids("고양이") and len("고양이".encode()) == 9
    assert ids[0, 2].tolist() == expected_ids(long)
    assert ids[0, 2, 48] == 0xC3 + 1 and ids[0, 2, 49] == 260  # 48 bytes then end of word, no padding left
    assert (ids[1] == 0).all()  # an empty sentence: all zeros
    assert ids[2, 0].tolist() == [259, 98, 260] + [261] * 47 and (ids[2, 1:] == 0).all()


def test_batch_to_ids_only_empty_sentences():
    ids = batch_to_ids([[], []])
    assert ids.shape == (2, 0, 50) and ids.dtype == torch.int64


# --- TensorFlow parity ------------------------------------------------------------------------------------------
def test_elmo_embedder_allennlp_procedure(cache):
    """AllenNLP's TestElmoEmbedder.test_embeddings_are_as_expected, the import changed."""
    sentences, expected = linear_order()
    embedder = ElmoEmbedder(options_file=OPTIONS, weight_file=WEIGHTS)
    embeddings = list(embedder.embed_sentences(sentences, 3))
    assert len(embeddings) == len(sentences) == 30
    worst = max(float(np.abs(t[2] - e).max()) for t, e in zip(embeddings, expected))
    assert worst < 1e-5, worst
    for t, s in zip(embeddings, sentences):
        assert t.shape == (3, len(s), 32) and t.dtype == np.float32


def test_batch_to_embeddings_layers(cache):
    """Every layer from batch_to_embeddings: the top one TensorFlow's, layer 0 the token vector twice, the mask
    the sentences' lengths."""
    sentences, expected = linear_order()
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS)
    for b in range(0, 30, 3):
        acts, mask = embedder.batch_to_embeddings(sentences[b : b + 3])
        lengths = [len(s) for s in sentences[b : b + 3]]
        assert acts.shape == (3, 3, max(lengths), 32) and mask.tolist() == [
            [j < n for j in range(max(lengths))] for n in lengths
        ]
        for k, n in enumerate(lengths):
            np.testing.assert_allclose(acts[k, 2, :n].numpy(), expected[b + k], atol=1e-5, rtol=0)
            torch.testing.assert_close(acts[k, 0, :n, :16], acts[k, 0, :n, 16:])
            assert (acts[k, :, n:] == 0).all()


def test_elmo_representations_match_tensorflow(cache):
    """AllenNLP's _ElmoBiLm test procedure through Elmo: batches of TensorFlow's order, dropout 0, a mix that is the
    top layer; both representations, their mask the sentences' lengths."""
    loaded, expected = load_sentences_embeddings()
    elmo = Elmo(OPTIONS, WEIGHTS, 2, dropout=0.0, scalar_mix_parameters=TOP_ONLY)
    assert elmo.get_output_dim() == 32
    worst = 0.0
    for i in range(10):
        batch = [loaded[k][i].split() for k in range(3)]
        out = elmo(batch_to_ids(batch))
        lengths = out["mask"].sum(1).tolist()
        assert out["mask"].dtype == torch.bool and lengths == [len(s) for s in batch]
        assert len(out["elmo_representations"]) == 2
        for rep in out["elmo_representations"]:
            assert rep.shape == (3, max(lengths), 32)
            for k in range(3):
                worst = max(worst, float((rep[k, : lengths[k]] - torch.from_numpy(expected[k][i])).abs().max()))
    assert worst < 1e-5, worst


def test_elmo_default_mix_boundaries_and_layer_norm(cache):
    """The learned mix starts as the mean of the layers; keep_sentence_boundaries adds <S>/</S> around the same
    words; do_layer_norm normalises each layer over the batch's words."""
    sentences, _ = linear_order()
    batch = sentences[:3]
    acts, mask = ElmoEmbedder(OPTIONS, WEIGHTS).batch_to_embeddings(batch)
    ids = batch_to_ids(batch)
    rep = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0)(ids)["elmo_representations"][0]
    torch.testing.assert_close(rep, acts.mean(1) * mask[..., None], atol=1e-6, rtol=0)
    kept = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, keep_sentence_boundaries=True)(ids)
    lengths = [len(s) for s in batch]
    assert kept["mask"].sum(1).tolist() == [n + 2 for n in lengths]
    for k, n in enumerate(lengths):
        torch.testing.assert_close(kept["elmo_representations"][0][k, 1 : n + 1], rep[k, :n])
    normed = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, do_layer_norm=True, keep_sentence_boundaries=True)(ids)
    assert not torch.allclose(normed["elmo_representations"][0], kept["elmo_representations"][0], atol=1e-3)


def test_stateful_by_default_and_stateless_on_request(cache, elmo_bundles):
    """AllenNLP's numbers need the carried state (a repeated batch gets other vectors); stateful=False gives every
    sentence the same vectors in any batch, those of elmokit's own (stateless) biLM."""
    sentences, _ = linear_order()
    stateful = ElmoEmbedder(OPTIONS, WEIGHTS)
    first, again = stateful.embed_batch(sentences[:3]), stateful.embed_batch(sentences[:3])
    assert np.abs(first[0] - again[0]).max() > 1e-3
    stateless = ElmoEmbedder(OPTIONS, WEIGHTS, stateful=False)
    a, b = stateless.embed_batch(sentences[:3]), stateless.embed_batch(sentences[3:6] + [sentences[0]])
    np.testing.assert_allclose(a[0], b[3], atol=1e-6, rtol=0)
    np.testing.assert_allclose(a[0], first[0], atol=1e-6, rtol=0)  # the first batch starts from zeros in both
    vectors, _ = load_bilm(elmo_bundles["tf"])([sentences[4]])
    np.testing.assert_allclose(b[1], vectors[0, :, : len(sentences[4])].numpy(), atol=1e-5, rtol=0)
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, scalar_mix_parameters=TOP_ONLY, stateful=False)
    rep = elmo(batch_to_ids(sentences[3:6]))["elmo_representations"][0]
    np.testing.assert_allclose(rep[1, : len(sentences[4])].numpy(), b[1][2], atol=1e-5, rtol=0)


# --- the cache and the other model kinds ------------------------------------------------------------------------
def test_imported_once_then_cached(cache, monkeypatch):
    ElmoEmbedder(OPTIONS, WEIGHTS)
    (entry,) = list(cache.iterdir())
    assert (entry / "manifest.json").is_file() and len(entry.name) == 64

    def refuse(*a, **k):
        raise AssertionError("imported again")

    monkeypatch.setattr(allennlp, "import_bilm_tf", refuse)
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS)  # loaded from the cache
    assert embedder.embed_sentence(["a", "b"]).shape == (3, 2, 32)
    assert [p.name for p in cache.iterdir()] == [entry.name]


def test_other_options_are_another_entry(cache, tmp_path):
    options = json.loads(OPTIONS.read_text())
    options["lstm"]["use_skip_connections"] = True
    other = tmp_path / "skip.json"
    other.write_text(json.dumps(options))
    ElmoEmbedder(OPTIONS, WEIGHTS)
    ElmoEmbedder(other, WEIGHTS)
    assert len(list(cache.iterdir())) == 2


def test_a_bundle_or_manylangs_directory_as_weight_file(cache, elmo_bundles, tmp_path):
    from tests.bilm.test_import_elmo import write_manylangs

    words = ["the", "cat", "sat"]
    got = ElmoEmbedder(None, elmo_bundles["tf"], stateful=False).embed_sentence(words)
    want = ElmoEmbedder(OPTIONS, WEIGHTS, stateful=False).embed_sentence(words)
    np.testing.assert_array_equal(got, want)
    assert not cache.exists() or len(list(cache.iterdir())) == 1  # the bundle itself was not copied
    d, _, _ = write_manylangs(tmp_path / "zhs.model")
    words = ["ab", "ba", "q"]
    ref, _ = allennlp.cached_bilm(None, d)([words])
    got = ElmoEmbedder(None, d, stateful=False).embed_sentence(words)
    np.testing.assert_allclose(got, ref[0].numpy(), atol=1e-5, rtol=0)
    elmo = Elmo(None, d, 1, dropout=0.0, scalar_mix_parameters=[-1e4] * (got.shape[0] - 1) + [1e4], stateful=False)
    rep = elmo(batch_to_ids([words]))["elmo_representations"][0]
    np.testing.assert_allclose(rep[0].detach().numpy(), got[-1], atol=1e-5, rtol=0)


def test_refusals_are_one_line(cache, tmp_path):
    cases = [
        lambda: ElmoEmbedder(tmp_path / "none.json", WEIGHTS),
        lambda: ElmoEmbedder(OPTIONS, tmp_path / "none.hdf5"),
        lambda: ElmoEmbedder(OPTIONS, tmp_path),  # a directory that is no model
        lambda: Elmo(OPTIONS, WEIGHTS, 1, scalar_mix_parameters=[0.0, 1.0]),
        lambda: ElmoEmbedder(OPTIONS, WEIGHTS).elmo_bilm(torch.ones(1, 2, 20, dtype=torch.long)),
    ]
    for case in cases:
        with pytest.raises(ElmokitError) as e:
            case()
        assert "\n" not in str(e.value) and str(e.value)


# --- training, cached vocabulary, empty sentences, embed_file ---------------------------------------------------
def test_requires_grad_fine_tunes_the_bilm(cache):
    frozen = Elmo(OPTIONS, WEIGHTS, 1)
    assert not any(p.requires_grad for p in frozen._elmo_lstm.parameters())
    assert all(p.requires_grad for p in frozen._scalar_mixes.parameters())
    fixed = Elmo(OPTIONS, WEIGHTS, 1, scalar_mix_parameters=[0.0, 0.0, 0.0])
    assert not any(p.requires_grad for p in fixed.parameters())
    elmo = Elmo(OPTIONS, WEIGHTS, 1, requires_grad=True, dropout=0.0)
    out = elmo(batch_to_ids([["a", "cat"], ["dogs"]]))
    out["elmo_representations"][0].sum().backward()
    lstm = elmo._elmo_lstm.bilm
    for p in (lstm.token_encoder.char_embedding.weight, lstm.forward_rnn.layers[1].weight_hh_l0):
        assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0
    with torch.no_grad():  # the differentiable path gives the fast path's numbers
        fast = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, stateful=False)(batch_to_ids([["a", "cat"], ["dogs"]]))
    slow = Elmo(OPTIONS, WEIGHTS, 1, requires_grad=True, dropout=0.0, stateful=False)(
        batch_to_ids([["a", "cat"], ["dogs"]])
    )
    assert slow["elmo_representations"][0].requires_grad
    torch.testing.assert_close(slow["elmo_representations"][0], fast["elmo_representations"][0], atol=1e-5, rtol=0)


def test_vocab_to_cache_gives_the_character_numbers(cache):
    vocab = ["@@PADDING@@", "the", "cat", "sat"]
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, vocab_to_cache=vocab, stateful=False)
    batch = [["the", "cat", "sat"], ["cat"]]
    word_ids = torch.tensor([[1, 2, 3], [2, 0, 0]])
    with_words = elmo(batch_to_ids(batch), word_ids)
    chars_only = elmo(batch_to_ids(batch))
    assert with_words["mask"].tolist() == chars_only["mask"].tolist()
    torch.testing.assert_close(with_words["elmo_representations"][0], chars_only["elmo_representations"][0])


def test_empty_sentences(cache):
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS)
    assert embedder.embed_sentence([]).shape == (3, 0, 32)
    out = embedder.embed_batch([["a", "b"], [], ["c"]])
    assert [o.shape for o in out] == [(3, 2, 32), (3, 0, 32), (3, 1, 32)]
    res = Elmo(OPTIONS, WEIGHTS, 1)(batch_to_ids([[], []]))
    assert res["elmo_representations"][0].shape == (2, 0, 32) and res["mask"].shape == (2, 0)


def test_elmo_4d_inputs(cache):
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, stateful=False)
    ids = batch_to_ids([["a", "b"], ["c", "d"]])
    flat = elmo(ids)
    out = elmo(ids.view(1, 2, 2, 50))
    assert out["mask"].shape == (1, 2, 2)
    torch.testing.assert_close(out["elmo_representations"][0].view(2, 2, 32), flat["elmo_representations"][0])


@pytest.mark.parametrize("fmt", ["all", "top", "average"])
def test_embed_file_writes_allennlp_hdf5(cache, tmp_path, fmt):
    sentences, _ = linear_order()
    lines = [" ".join(s) for s in sentences[:5]]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.hdf5"
    ElmoEmbedder(OPTIONS, WEIGHTS).embed_file(open(src), out, fmt, batch_size=3)
    want = list(ElmoEmbedder(OPTIONS, WEIGHTS).embed_sentences(sentences[:5], 3))
    with h5py.File(out, "r") as f:
        assert sorted(f.keys()) == sorted([str(i) for i in range(5)] + ["sentence_to_index"])
        assert json.loads(f["sentence_to_index"][0]) == {s: str(i) for i, s in enumerate(lines)}
        for i, w in enumerate(want):
            w = {"all": w, "top": w[-1], "average": w.mean(0)}[fmt]
            np.testing.assert_allclose(f[str(i)][...], w, atol=1e-6, rtol=0)


def test_embed_file_sentence_keys_and_refusals(cache, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a b\nc d e\n")
    out = tmp_path / "out.hdf5"
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS)
    embedder.embed_file(src, out, use_sentence_keys=True)
    with h5py.File(out, "r") as f:
        assert sorted(f.keys()) == ["a b", "c d e"] and f["c d e"].shape == (3, 3, 32)
    embedder.embed_file(src, out, forget_sentences=True)
    with h5py.File(out, "r") as f:
        assert sorted(f.keys()) == ["0", "1"]
    for text, kw in (("a\n\nb\n", {}), ("a\na\n", {"use_sentence_keys": True})):
        src.write_text(text)
        with pytest.raises(ElmokitError) as e:
            embedder.embed_file(src, out, **kw)
        assert "\n" not in str(e.value) and "in.txt" in str(e.value)
