import pytest
import torch

from elmokit.core.errors import CorpusError
from elmokit.tasks.batching import collate, make_batches
from elmokit.tasks.items import Item
from elmokit.tasks.lexicon import PAD, UNK, Lexicon

ITEMS = [
    Item(["the", "cat", "sleeps"], ["DET", "NOUN", "VERB"], 1),
    Item([], [], 5),
    Item(["a", "dog"], ["DET", "NOUN"], 7),
    Item(["the", "dog", "sees", "the", "cat"], ["DET"] * 5, 10),
]


def test_batches_cover_every_index_once_and_are_reproducible():
    lengths = [i % 7 for i in range(103)]
    for shuffle in (False, True):
        b = make_batches(lengths, 8, shuffle, seed=3)
        assert sorted(i for batch in b for i in batch) == list(range(103))
        assert all(len(batch) <= 8 for batch in b)
    assert make_batches(lengths, 8, True, seed=3) == make_batches(lengths, 8, True, seed=3)
    assert make_batches(lengths, 8, True, seed=3) != make_batches(lengths, 8, True, seed=4)
    flat = [lengths[i] for batch in make_batches(lengths, 8, False) for i in batch]
    assert flat == sorted(flat)


def test_lexicon_min_count_unknowns_and_round_trip():
    lex = Lexicon.build(ITEMS, min_count=2)
    assert lex.words[:2] == ["<pad>", "<unk>"] and "the" in lex.words and "sleeps" not in lex.words
    assert lex.word_id("sleeps") == UNK and lex.char_ids("zq") == [UNK, UNK]
    assert lex.labels == ["DET", "NOUN", "VERB"]
    again = Lexicon.from_dict(lex.to_dict())
    assert again.word_id("the") == lex.word_id("the") and again.labels == lex.labels
    with pytest.raises(CorpusError, match=r"dev.conllu:9: label 'ADV' was not seen"):
        lex.label_ids(Item(["x"], ["ADV"], 9), "dev.conllu")


def test_collate_pads_and_handles_empty_sentences():
    lex = Lexicon.build(ITEMS, min_count=1)
    b = collate([0, 1, 3], ITEMS, lex, use_words=True, use_chars=True)
    assert b.mask.tolist() == [[True] * 3 + [False] * 2, [False] * 5, [True] * 5]
    assert b.word_ids.shape == (3, 5) and b.word_ids[1].tolist() == [PAD] * 5
    assert b.char_ids.shape == (3, 5, 6) and b.targets.shape == (3, 5)
    only_empty = collate([1], ITEMS, lex)
    assert only_empty.mask.shape == (1, 1) and not only_empty.mask.any()  # one padding slot, so the LSTM runs
    cls = [Item(["good"], "pos"), Item(["bad", "film"], "neg")]
    assert torch.equal(collate([0, 1], cls, Lexicon.build(cls, 1)).targets, torch.tensor([0, 1]))
