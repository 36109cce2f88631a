"""elmokit similarity: one word's vectors across sentences, per layer (the lectures' 연패), for a pieces biLM and a
character biLM; the piece-level layers it pools; the errors; the table, the JSON and the heatmap."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elmokit.analysis.similarity import (
    _label,
    find_word,
    plot_similarity,
    pool_pieces,
    summary_lines,
    word_similarity,
)
from elmokit.bilm.bundle import load_bilm
from elmokit.cli import main
from elmokit.core.choices import POOLINGS
from elmokit.core.errors import ElmokitError

LECTURE = ["삼성, 사상 첫 통합우승 4연패", "'18연패' 한화 이글스 무한 추락"]  # four titles / eighteen losses in a row
ENGLISH = ["These cats find some old birds .", "Some birds hear the cats .", "The cats wait ."]


@pytest.fixture(scope="module")
def bilm(tiny_pair):
    return load_bilm(tiny_pair["bundle"])


def check_cosines(cos: np.ndarray, lstm_layers: int) -> None:
    """Symmetric, 1 on the diagonal, layer 0 1 everywhere (the same tokens), every LSTM layer below 1 off it."""
    S = cos.shape[1]
    assert np.allclose(cos, cos.transpose(0, 2, 1), atol=1e-12)
    assert np.allclose(cos[:, range(S), range(S)], 1.0, atol=1e-6)
    assert np.abs(cos[0] - 1.0).max() < 1e-6
    off = ~np.eye(S, dtype=bool)
    for k in range(1, lstm_layers + 1):
        assert (cos[k][off] < 1 - 1e-5).all(), (k, cos[k])


@pytest.mark.parametrize("pooling", POOLINGS)
def test_piece_layers_pool_to_the_biLMs_word_vectors(bilm, pooling):
    words = "Some birds hear the cats 4연패 .".split()
    layers, ids, spans = bilm.piece_layers(words)
    assert layers.shape == (bilm.num_layers, sum(len(i) for i in ids), 2 * bilm.dim)
    want = bilm.encode_words([[words]], pooling)  # (layers, words, 2D)
    k = 0
    for w, word_ids in enumerate(ids):
        got = pool_pieces(layers, k, k + len(word_ids) - 1, pooling)
        assert torch.allclose(got, want[:, w], atol=1e-5), (pooling, words[w])
        k += len(word_ids)
    for word, word_spans in zip(words, spans):  # each word's pieces tile its characters, in order
        assert word_spans[0][0] == 0 and word_spans[-1][1] == len(word)
        assert all(a[1] == b[0] for a, b in zip(word_spans, word_spans[1:]))


class _OldSentencepiece:
    """A sentencepiece without offset mapping (the spans then come from the pieces' text)."""

    def __init__(self, sp) -> None:
        self._sp = sp

    def __getattr__(self, name: str):
        return getattr(self._sp, name)

    def encode(self, text, **kwargs):
        if "return_type" in kwargs:
            raise TypeError("Encode() got an unexpected keyword argument 'return_type'")
        return self._sp.encode(text, **kwargs)


def test_piece_spans_without_offset_mapping_are_the_same(bilm, monkeypatch):
    words = "Some birds hear the cats 4연패 '18연패' .".split()
    _, ids, spans = bilm.piece_layers(words)
    monkeypatch.setattr(bilm, "vocab", dataclasses.replace(bilm.vocab, sp=_OldSentencepiece(bilm.vocab.sp)))
    _, old_ids, old_spans = bilm.piece_layers(words)
    assert old_ids == ids and old_spans == spans


def test_the_lectures_example_inside_words(bilm):
    r = word_similarity(bilm, LECTURE, "연패", substring=True)
    assert r.layers == [f"layer {k}" for k in range(bilm.num_layers)] + ["average"]
    assert r.cosine.shape == (bilm.num_layers + 1, 2, 2)
    # the match's own pieces (not 4, 18 or the quotes): the same in both words, so layer 0 gives cosine 1
    assert [m.covered for m in r.matches] == ["연패", "연패"]
    assert r.matches[0].pieces and r.matches[0].pieces == r.matches[1].pieces
    assert [(m.word_index, m.word) for m in r.matches] == [(4, "4연패"), (0, "'18연패'")]
    check_cosines(r.cosine, bilm.num_layers - 1)
    assert r.encoder == "pieces" and "same pieces: cosine 1" in r.note


def test_a_whole_word_in_three_contexts(bilm):
    r = word_similarity(bilm, ENGLISH, "cats")
    check_cosines(r.cosine, bilm.num_layers - 1)
    words = [s.split() for s in ENGLISH]
    vectors = bilm.encode_words([[w] for w in words])  # the biLM's own word vectors: the same cosines
    at = [1, len(words[0]) + 4, len(words[0]) + len(words[1]) + 1]
    v = vectors[:, at].double()
    v = v / v.norm(dim=-1, keepdim=True)
    assert np.allclose(r.cosine[1], (v[1] @ v[1].T).numpy(), atol=1e-5)
    assert all(m.covered == "cats" and m.pieces for m in r.matches)


def test_a_word_twice_in_one_sentence_with_occurrence(bilm):
    same = "the cat sees the dog ."
    r = word_similarity(bilm, [same, same], "the", occurrences=["1:1", "2:2"])
    assert [(m.word_index, m.occurrence, m.occurrences) for m in r.matches] == [(0, 1, 2), (3, 2, 2)]
    check_cosines(r.cosine, bilm.num_layers - 1)  # one string, two positions: layer 0 equal, the LSTMs not
    picked = find_word([same, "a dog sees the cat ."], "the", occurrences=["2"])
    assert [m.word_index for m in picked] == [3, 3]  # N for sentences with several; the only one elsewhere


def test_character_bilm_uses_the_whole_word(elmo_bundles):
    bilm = load_bilm(elmo_bundles["tf"])
    sentences = ["The bank raised its rates .", "We sat on the bank of the river ."]
    r = word_similarity(bilm, sentences, "bank")
    assert r.encoder == "characters" and not any(m.pieces for m in r.matches)
    check_cosines(r.cosine, bilm.num_layers - 1)
    inside = word_similarity(bilm, LECTURE, "연패", substring=True)
    assert [m.covered for m in inside.matches] == ["4연패", "'18연패'"] and "the whole word's" in inside.note
    assert inside.cosine[0, 0, 1] < 1 - 1e-5  # two different words, so layer 0 differs too
    assert any("the whole word's vector" in line for line in summary_lines(inside))


def test_summary_table(bilm):
    two = summary_lines(word_similarity(bilm, LECTURE, "연패", substring=True))
    assert any(line.startswith("s1 · s2") for line in two) and not any("layer 1: cosine" in x for x in two)
    assert any("covering '연패'" in line for line in two)
    three = summary_lines(word_similarity(bilm, ENGLISH, "cats"))
    assert sum(line.startswith("s1 ·") for line in three) == 2 and any(x == "layer 1: cosine" for x in three)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--word", "cats", "The cats wait ."], "1 sentence given: the word's vectors are compared between"),
        (["--word", "cats"], "0 sentences given"),
        (
            ["--word", "연패", *LECTURE],
            "sentence 1 ('삼성, 사상 첫 통합우승 4연패'): has no '연패' as a whole word; it is",
        ),
        (["--word", "연패", *LECTURE], "add --substring"),
        (["--word", "dogs", "--substring", *ENGLISH], "sentence 1 ('These cats find some old birds .'): has no 'dogs'"),
        (["--word", "the", "the cat sees the dog .", "a dog ."], "sentence 1 ('the cat sees the dog .'): has 'the' 2"),
        (["--word", "the", "the cat sees the dog .", "the dog ."], "say which with --occurrence N"),
        (["--word", "the", "--occurrence", "3", "the cat sees the dog .", "the dog ."], "2 times, not 3"),
        (
            ["--word", "the", "--occurrence", "1", "--occurrence", "2:2", "the cat sees the dog .", "the dog ."],
            "1 time, not 2",
        ),
        (["--word", "the", "--occurrence", "x", "the cat .", "the dog ."], "--occurrence x: takes N"),
        (["--word", "the", "--occurrence", "5:1", "the cat .", "the dog ."], "there is no sentence 5"),
        (["--word", "the cat", "the cat .", "the dog ."], "give one word, without spaces"),
    ],
)
def test_errors_are_one_line(tiny_pair, args, says):
    res = CliRunner().invoke(main, ["similarity", str(tiny_pair["bundle"]), *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and says in res.output, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output


def test_errors_come_before_the_biLM_loads(tmp_path):
    with pytest.raises(ElmokitError, match="sentence 2"):
        find_word(["the cat .", "a dog ."], "the")
    res = CliRunner().invoke(main, ["similarity", str(tmp_path / "none"), "--word", "x", "the cat .", "a dog ."])
    assert res.exit_code == 2 and "sentence 1 ('the cat .'): has no 'x'" in res.output


def test_command_writes_the_json_and_the_heatmap(tiny_pair, tmp_path):
    out = tmp_path / "sim" / "yeonpae"
    args = ["similarity", str(tiny_pair["bundle"]), "--word", "연패", "--substring", *LECTURE]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "s1 · s2" in res.output and f"wrote {out}.json and {out}.png" in res.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["yeonpae.json", "yeonpae.png"]  # no temporary left
    data = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))
    assert data["layers"][0] == "layer 0" and data["layers"][-1] == "average"
    assert data["cosine"]["layer 0"][0][1] == pytest.approx(1.0, abs=1e-6)
    assert data["pairs"][0]["a"] == 0 and data["pairs"][0]["cosine"]["layer 1"] < 1
    assert data["sentences"][0]["covered"] == "연패" and data["sentences"][0]["pieces"]
    assert data["sentences"][1]["sentence"] == LECTURE[1]
    import matplotlib.image

    png = matplotlib.image.imread(f"{out}.png")
    assert png.shape[1] > png.shape[0] > 100  # the panels side by side
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0 and json.loads(res.output) == data


def test_heatmap_draws_the_korean_labels_without_missing_glyphs(bilm, tmp_path):
    r = word_similarity(bilm, LECTURE, "연패", substring=True)
    assert _label(0, r.matches[0]) == "s1  삼성, 사상 첫 통합우승 4[연패]"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_similarity(r, tmp_path / "h.png")
    assert not [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert (tmp_path / "h.png").stat().st_size > 0


def test_a_long_label_keeps_the_match_in_view():
    (m,) = find_word(["a " * 40 + "the cats wait " + "b " * 40, "cats"], "cats")[:1]
    label = _label(0, m)
    assert "[cats]" in label and len(label) <= 4 + 40 + 2 and label.startswith("s1  …")
