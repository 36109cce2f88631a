"""Span F1 against conlleval on hand-made cases (counts worked out by hand from conlleval.pl's rules)."""

import pytest

from elmokit.tasks.metrics import classification_scores, span_f1
from elmokit.tasks.tags import bioes_to_bio, iob1_to_bio, spans


def test_perfect_and_partial():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    s = span_f1(gold, gold)
    assert (s.correct, s.guessed, s.gold, s.f1) == (3, 3, 3, 100.0)
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-MISC", "O"]]  # PER truncated, ORG mistyped
    s = span_f1(gold, pred)
    assert (s.correct, s.guessed, s.gold) == (1, 3, 3)
    assert s.precision == pytest.approx(100 / 3) and s.f1 == pytest.approx(100 / 3)
    assert s.type_f1()["LOC"] == 100.0 and s.type_f1()["PER"] == 0.0
    assert s.accuracy == pytest.approx(100 * 4 / 6)


def test_iob1_input_as_conlleval_reads_it():
    # IOB1: "I-PER I-PER B-PER" is two chunks; conlleval counts I after O as a start and B after I as a new chunk
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    assert span_f1(gold, gold).gold == 3
    assert span_f1(gold, [iob1_to_bio(gold[0])]).f1 == 100.0  # same chunks once converted
    assert iob1_to_bio(gold[0]) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]


def test_type_change_inside_i_run_and_stray_i():
    gold = [["B-PER", "I-PER", "I-LOC", "O"]]  # I-LOC after I-PER starts a LOC chunk
    pred = [["B-PER", "I-PER", "B-LOC", "O"]]
    s = span_f1(gold, pred)
    assert (s.correct, s.guessed, s.gold) == (2, 2, 2)
    s = span_f1([["O", "O"]], [["O", "I-PER"]])  # a stray I is a guessed chunk
    assert (s.correct, s.guessed, s.gold, s.f1) == (0, 1, 0, 0.0)


def test_chunk_at_sentence_end_and_boundaries():
    gold = [["B-PER"], ["I-PER", "O"]]  # sentences do not join: two chunks
    assert span_f1(gold, gold).gold == 2


def test_bioes_round_trip_and_scoring():
    bio = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC"]
    bioes = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "I-LOC", "E-LOC"]
    assert bioes_to_bio(bioes) == bio
    assert span_f1([bioes], [bioes], scheme="bioes").gold == 3  # PER, LOC, LOC: E-X B-X is not merged
    assert spans(bio) == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 6)]


def test_classification_scores():
    r = classification_scores(["1", "0", "1", "1"], ["1", "0", "0", "1"])
    assert r["accuracy"] == 75.0
    # label 1: p=1, r=2/3 -> f1 0.8; label 0: p=0.5, r=1 -> 2/3
    assert r["macro_f1"] == pytest.approx(100 * (0.8 + 2 / 3) / 2)
