"""elmokit.manylangs: ELMoForManyLangs' Embedder. Its model's equations (numpy, tests/bilm/test_import_elmo.py) for
every sentence from zeros; its procedure (longest first, batches drawn by random.shuffle, the state carried row by
row) against AllenNLP's stateful embedder run batch by batch in that order; output layers, a zip, the cache, the
refusals."""

import random

import numpy as np
import pytest

from elmokit.allennlp import ElmoEmbedder
from elmokit.bilm.bundle import load_bilm
from elmokit.core.errors import ElmokitError
from elmokit.manylangs import Embedder
from tests.bilm.test_import_elmo import manylangs_reference, write_manylangs
from tests.bilm.test_import_zip import manylangs_zip

SENTS = [["the", "cat"], ["고양이", "the", "cat", "sat", "q"], ["abc"], ["cat", "the", "x"], ["a", "b", "c", "d"]]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "elmokit" / "allennlp"


@pytest.fixture()
def model_dir(tmp_path):
    return write_manylangs(tmp_path / "zhs.model")


def test_every_sentence_from_zeros_is_its_equations(cache, model_dir):
    d, tok, enc = model_dir
    out = Embedder(d, batch_size=2, stateful=False).sents2elmo(SENTS, output_layer=-2)
    assert isinstance(out, list) and len(out) == len(SENTS)
    for s, got in zip(SENTS, out):
        assert got.shape == (3, len(s), 12) and got.dtype == np.float32
        np.testing.assert_allclose(got, manylangs_reference(s, tok, enc), atol=1e-5, rtol=0)


def test_output_layers(cache, model_dir):
    d, _, _ = model_dir
    e = Embedder(d, stateful=False)
    every = e.sents2elmo(SENTS, -2)
    for layer, pick in ((-1, lambda v: v.mean(0)), (0, lambda v: v[0]), (2, lambda v: v[2]), (-3, lambda v: v[0])):
        got = e.sents2elmo(SENTS, layer)
        for s, g, v in zip(SENTS, got, every):
            assert g.shape == (len(s), 12) and g.dtype == np.float32
            np.testing.assert_allclose(g, pick(v), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(e.sents2elmo(SENTS)[1], e.sents2elmo(SENTS, -1)[1])  # -1 is the default
    assert e.sents2elmo([]) == []
    assert [v.shape for v in e.sents2elmo([["a"], []], -2)] == [(3, 1, 12), (3, 0, 12)]
    long, cut = e.sents2elmo([["abcdefghijk"], ["abcdefgh"]])  # cut to max_characters_per_token - 2 = 8
    np.testing.assert_array_equal(long, cut)


def test_stateful_procedure(cache, model_dir):
    """Longest first, batches of 2 run in random.shuffle's order, row r going on from row r of the batch before:
    AllenNLP's stateful embedder fed the same batches in the same order gives the same vectors."""
    d, _, _ = model_dir
    e = Embedder(d, batch_size=2)
    random.seed(3)
    got = e.sents2elmo(SENTS, -2)
    order = sorted(range(len(SENTS)), key=lambda i: -len(SENTS[i]))  # [1, 4, 3, 0, 2]
    batches = [order[i : i + 2] for i in range(0, len(order), 2)]
    random.seed(3)
    perm = list(range(len(batches)))
    random.shuffle(perm)
    assert perm != [0, 1, 2]  # the seed gives a drawn order, not the sorted one
    by_hand = ElmoEmbedder(None, d)  # stateful
    for k in perm:
        for i, v in zip(batches[k], by_hand.embed_batch([SENTS[i] for i in batches[k]])):
            np.testing.assert_allclose(got[i], v, atol=1e-5, rtol=0)
    again = Embedder(d, batch_size=2)
    random.seed(3)
    for a, b in zip(got, again.sents2elmo(SENTS, -2)):  # the same seed, the same numbers
        np.testing.assert_array_equal(a, b)
    stateless = Embedder(d, batch_size=2, stateful=False).sents2elmo(SENTS, -2)
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, stateless)) > 1e-3
    first = Embedder(d, batch_size=8)  # one batch on a fresh embedder: every sentence from zeros
    for a, b in zip(first.sents2elmo(SENTS, -2), stateless):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    second = first.sents2elmo(SENTS, -2)  # the state goes on across calls
    assert max(float(np.abs(a - b).max()) for a, b in zip(second, stateless)) > 1e-3
    first.reset_states()
    for a, b in zip(first.sents2elmo(SENTS, -2), stateless):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_a_zip_an_nlpl_model_and_the_cache(cache, tmp_path, elmo_bundles):
    archive, src = manylangs_zip(tmp_path / "zip")
    want = Embedder(src, stateful=False).sents2elmo(SENTS, -2)
    assert len(list(cache.iterdir())) == 1
    ElmoEmbedder(None, src)  # elmokit.allennlp finds the same entry
    assert len(list(cache.iterdir())) == 1
    for a, b in zip(Embedder(archive, stateful=False).sents2elmo(SENTS, -2), want):
        np.testing.assert_array_equal(a, b)
    assert len(list(cache.iterdir())) == 2
    words = [["The", "cat", "sat", "."], ["A", "dog"]]
    got = Embedder(elmo_bundles["tf"], stateful=False).sents2elmo(words, -2)
    vectors, _ = load_bilm(elmo_bundles["tf"])(words)
    for k, (s, g) in enumerate(zip(words, got)):
        np.testing.assert_allclose(g, vectors[k, :, : len(s)].numpy(), atol=1e-5, rtol=0)


def test_refusals_are_one_line(cache, model_dir, tmp_path):
    d, _, _ = model_dir
    e = Embedder(d)
    cases = [
        lambda: Embedder(tmp_path / "none"),
        lambda: Embedder(tmp_path / "empty-dir-that-is-no-model"),
        lambda: Embedder(d, batch_size=0),
        lambda: e.sents2elmo(SENTS, output_layer=3),
        lambda: e.sents2elmo(SENTS, output_layer="top"),
        lambda: e.sents2elmo("the cat"),
        lambda: e.sents2elmo(["the cat"]),
    ]
    (tmp_path / "empty-dir-that-is-no-model").mkdir()
    for case in cases:
        with pytest.raises(ElmokitError) as err:
            case()
        assert "\n" not in str(err.value) and str(err.value)
