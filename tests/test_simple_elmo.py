"""elmokit.simple_elmo: simple_elmo's ElmoModel. TensorFlow's vectors by its procedure (warmup off, batches of 3 in
TensorFlow's order), the warm-up against the same steps done by hand, the layer choices, padding, the cache, a zip,
substitutes against a hand softmax, the refusals."""

import shutil

import numpy as np
import pytest

from elmokit import simple_elmo
from elmokit.allennlp import ElmoEmbedder
from elmokit.bilm.bundle import load_bilm
from elmokit.core.errors import ElmokitError
from elmokit.simple_elmo import ElmoModel
from tests.bilm.test_import_zip import WORDS, nlpl_zip
from tests.bilm.test_substitutes import char_top_states, softmax
from tests.conftest import ELMO_FIXTURE
from tests.test_allennlp import linear_order

OPTIONS, WEIGHTS = ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "elmokit" / "allennlp"


@pytest.fixture()
def nlpl_dir(tmp_path):
    """bilm-tf's fixture as an unpacked NLPL model: options.json and model.hdf5."""
    d = tmp_path / "nlpl"
    d.mkdir()
    shutil.copy(OPTIONS, d / "options.json")
    shutil.copy(WEIGHTS, d / "model.hdf5")
    return d


def model(path, **kw) -> ElmoModel:
    m = ElmoModel()
    m.load(str(path), **kw)
    return m


def by_hand(sentences, batch: int, passes: int, whole: bool) -> list[np.ndarray]:
    """simple_elmo's warm-up done with AllenNLP's stateful embedder: each batch run ``passes`` times (``whole``: all
    batches once, then all again), the last run kept; per sentence ``(3, words, 32)``."""
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS)
    chunks = [sentences[i : i + batch] for i in range(0, len(sentences), batch)]
    if whole:
        for chunk in chunks:
            embedder.embed_batch(chunk)
        return [v for chunk in chunks for v in embedder.embed_batch(chunk)]
    out = []
    for chunk in chunks:
        for _ in range(passes - 1):
            embedder.embed_batch(chunk)
        out.extend(embedder.embed_batch(chunk))
    return out


def test_tensorflow_vectors_without_warmup(cache, nlpl_dir):
    """Batches of 3 in TensorFlow's order, the state carried, no warm-up: TensorFlow's top layers within 1e-5; the
    shapes, dtype, layer choices and zero padding of simple_elmo."""
    sentences, expected = linear_order()
    m = model(nlpl_dir, max_batch_size=3)
    assert (m.batch_size, m.n_layers, m.vector_size, m.max_chars, m.vocab) == (3, 3, 32, 50, None)
    every = m.get_elmo_vectors(sentences, warmup=False, layers="all")
    longest = max(len(s) for s in sentences)
    assert every.shape == (30, 3, longest, 32) and every.dtype == np.float64
    worst = max(float(np.abs(every[i, 2, : len(s)] - e).max()) for i, (s, e) in enumerate(zip(sentences, expected)))
    assert worst < 1e-5, worst
    top = m.get_elmo_vectors(sentences, warmup=False, layers="top")
    average = m.get_elmo_vectors(sentences, warmup=False)  # the default: the average
    assert top.shape == average.shape == (30, longest, 32)
    np.testing.assert_allclose(top, every[:, 2], atol=1e-6, rtol=0)  # every call starts from zeros
    np.testing.assert_allclose(average, every.mean(1), atol=1e-6, rtol=0)
    for i, s in enumerate(sentences):
        assert (every[i, :, len(s) :] == 0).all() and (average[i, len(s) :] == 0).all()


def test_warmup_runs_each_batch_twice(cache, nlpl_dir):
    sentences, _ = linear_order()
    got = model(nlpl_dir, max_batch_size=3).get_elmo_vectors(sentences, layers="all")  # warmup=True
    want = by_hand(sentences, 3, passes=2, whole=False)
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i, :, : w.shape[1]], w, atol=1e-5, rtol=0)
    cold = model(nlpl_dir, max_batch_size=3).get_elmo_vectors(sentences, warmup=False, layers="all")
    assert np.abs(got - cold).max() > 1e-3


def test_vector_average(cache, nlpl_dir):
    """Unit-length means of each sentence's words; the warm-up runs all batches first."""
    sentences, _ = linear_order()
    m = model(nlpl_dir, max_batch_size=4)
    for layers, pick in (("average", lambda v: v.mean(0)), ("top", lambda v: v[-1]), ("all", lambda v: v)):
        got = m.get_elmo_vector_average(sentences, layers=layers)
        assert got.shape == ((30, 3, 32) if layers == "all" else (30, 32)) and got.dtype == np.float64
        for i, v in enumerate(by_hand(sentences, 4, passes=2, whole=True)):
            mean = pick(v.astype(np.float64)).mean(-2)
            np.testing.assert_allclose(got[i], mean / np.linalg.norm(mean), atol=1e-5, rtol=0)
    cold = m.get_elmo_vector_average(sentences, warmup=False)
    vectors = m.get_elmo_vectors(sentences, warmup=False)
    for i, s in enumerate(sentences):
        mean = vectors[i, : len(s)].mean(0)
        np.testing.assert_allclose(cold[i], mean / np.linalg.norm(mean), atol=1e-6, rtol=0)
    empty = m.get_elmo_vector_average([["a"], []])
    assert (empty[1] == 0).all() and abs(np.linalg.norm(empty[0]) - 1) < 1e-9


def test_stateless_is_elmokits_own_biLM(cache, nlpl_dir, elmo_bundles):
    sentences, _ = linear_order()
    sentences = sentences[:7]
    m = model(nlpl_dir, max_batch_size=3, stateful=False)
    got = m.get_elmo_vectors(sentences, layers="all")
    np.testing.assert_array_equal(got, m.get_elmo_vectors(sentences, warmup=False, layers="all"))
    want, _ = load_bilm(elmo_bundles["tf"])(sentences)  # (7, 3, longest, 32)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=0)
    first = model(nlpl_dir, top=True).get_elmo_vectors(sentences[:3], warmup=False)  # top=True: top by default
    np.testing.assert_allclose(first, got[:3, 2], atol=1e-5, rtol=0)  # one batch from zeros: the stateless vectors


def test_a_zip_a_bundle_and_the_cache(cache, nlpl_dir, elmo_bundles, tmp_path, monkeypatch):
    sentences = [["the", "cat", "sat"], ["a", "dog"]]
    want = model(nlpl_dir).get_elmo_vectors(sentences, layers="all")
    (entry,) = list(cache.iterdir())
    assert (entry / "manifest.json").is_file() and len(entry.name) == 64
    archive, _, _ = nlpl_zip(tmp_path / "zip", softmax=False)
    np.testing.assert_array_equal(model(archive).get_elmo_vectors(sentences, layers="all"), want)
    np.testing.assert_array_equal(model(elmo_bundles["tf"]).get_elmo_vectors(sentences, layers="all"), want)
    m = ElmoModel()
    m.load(options_file=str(OPTIONS), weight_file=str(WEIGHTS))
    np.testing.assert_array_equal(m.get_elmo_vectors(sentences, layers="all"), want)
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 3  # the directory, the zip, the options + weights; the bundle is loaded as is

    def refuse(*a, **k):
        raise AssertionError("imported again")

    monkeypatch.setattr(simple_elmo, "import_path", refuse)
    np.testing.assert_array_equal(model(archive).get_elmo_vectors(sentences, layers="all"), want)
    assert sorted(p.name for p in cache.iterdir()) == entries


def test_substitutes_by_a_hand_softmax(cache, tmp_path):
    """Each word: the forward LM's likeliest words from the top layer before it, the backward LM's from the one
    after it, softmax(W h + b); <S> and </S> left out; log-probabilities rounded to 4 decimals."""
    archive, W, b = nlpl_zip(tmp_path / "zip")
    m = model(archive)
    assert m.vocab == WORDS
    sentence = "the cat sat on the mat ."
    (got,) = m.get_elmo_substitutes([sentence], topn=4)
    words = sentence.split()
    assert [g["word"] for g in got] == words
    fwd, bwd = char_top_states(m.bilm, words)
    for j, g in enumerate(got):
        for key, h in (("forward", fwd[j]), ("backward", bwd[j + 2])):
            p = softmax(W @ h.numpy() + b)
            p[[WORDS.index("<S>"), WORDS.index("</S>")]] = -1
            ids = list(np.argsort(-p)[:4])
            assert g[key]["candidates"] == ids
            assert g[key]["candidate_words"] == [WORDS[i] for i in ids]
            np.testing.assert_allclose(g[key]["logp"], np.round(np.log(p[ids]), 4), atol=2e-4)
    with_delims = m.get_elmo_substitutes([words], topn=len(WORDS), nodelimiters=False)[0][0]["forward"]
    assert {"<S>", "</S>"} <= set(with_delims["candidate_words"])


def test_refusals_are_one_line(cache, nlpl_dir, tmp_path):
    loaded = model(nlpl_dir)
    cases = [
        lambda: ElmoModel().get_elmo_vectors([["a"]]),
        lambda: ElmoModel().load(),
        lambda: ElmoModel().load(str(tmp_path / "none.zip")),
        lambda: ElmoModel().load(str(tmp_path)),  # a directory that is no model
        lambda: ElmoModel().load(str(nlpl_dir), max_batch_size=0),
        lambda: loaded.get_elmo_vectors([["a"]], layers="middle"),
        lambda: loaded.get_elmo_vectors("a sentence"),
        lambda: loaded.get_elmo_vector_average(["a sentence"]),
        lambda: loaded.get_elmo_substitutes(["the cat"]),  # no softmax
    ]
    for case in cases:
        with pytest.raises(ElmokitError) as e:
            case()
        assert "\n" not in str(e.value) and str(e.value)
