"""Word vocabularies and word token arrays (elmokit.lm.words): bilm-tf's vocabulary file, the lexicon, the layout
``<S> w1 … wn </S>`` with unknown words read by their characters, the targets and what a perplexity scores."""

import json

import numpy as np
import pytest

from elmokit.core.errors import ElmokitError
from elmokit.lm.words import (
    BOS_WORD,
    EOS_WORD,
    UNK_WORD,
    char_mapper,
    encode_word_corpus,
    lexicon_path,
    load_word_vocab,
    num_chars,
    scored,
    train_word_vocab,
    word_counts,
)
from elmokit.modules.characters import ElmoBytes


@pytest.fixture()
def text(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("the cat sat\nthe dog sat on the mat\n\nthe cat\n", encoding="utf-8")
    return p


def test_vocabulary_file_card_and_lexicon(text, tmp_path):
    card = train_word_vocab([str(text)], str(tmp_path / "v"), command="test")
    words = (tmp_path / "v.txt").read_text(encoding="utf-8").split("\n")
    # specials, then by descending count, ties by the word
    assert words[:-1] == ["<S>", "</S>", "<UNK>", "the", "cat", "sat", "dog", "mat", "on"] and words[-1] == ""
    assert card["vocab_size"] == 9 and card["running_words"] == 11 and card["running_words_covered"] == 1.0
    sha = load_word_vocab(tmp_path / "v.txt").sha256
    assert json.loads((tmp_path / "v.card.json").read_text())["model_sha256"] == sha
    lex = char_mapper("lexicon", 10, tmp_path / "v.txt")
    assert lexicon_path(tmp_path / "v.txt") == tmp_path / "v.chars.dic"
    assert list(lex.char_ids)[:7] == ["<oov>", "<pad>", "<bow>", "<eow>", "<bos>", "<eos>", "t"]  # t: 8 times
    # --size counts the specials; --min-count drops rare words and the card says what is covered
    card = train_word_vocab([str(text)], str(tmp_path / "s"), size=5, min_count=2, command="test")
    assert (tmp_path / "s.txt").read_text().split() == ["<S>", "</S>", "<UNK>", "the", "cat"]
    assert card["running_words_covered"] == pytest.approx(6 / 11, abs=1e-6)


@pytest.mark.parametrize(
    "content, match",
    [
        ("<S>\n</S>\n<UNK>\nthe\nthe\n", r"v.txt:5: 'the' is already line 4"),
        ("<S>\n</S>\n<UNK>\nthe cat\n", r"v.txt:4: a vocabulary line holds one token"),
        ("<S>\n</S>\n<UNK>\n\n", r"v.txt:4: a vocabulary line holds one token"),
        ("the\n<S>\n</S>\n<UNK>\n", r"v.txt: the first three lines must be <S>, </S>, <UNK>"),
        ("", r"v.txt: the first three lines must be"),
    ],
)
def test_a_malformed_vocabulary_is_one_line(tmp_path, content, match):
    (tmp_path / "v.txt").write_text(content, encoding="utf-8")
    with pytest.raises(ElmokitError, match=match):
        load_word_vocab(tmp_path / "v.txt")


def test_missing_vocabulary_and_lexicon_say_how_to_build_them(tmp_path):
    with pytest.raises(ElmokitError, match="--model-type word"):
        load_word_vocab(tmp_path / "none.txt")
    (tmp_path / "v.txt").write_text("<S>\n</S>\n<UNK>\n", encoding="utf-8")
    with pytest.raises(ElmokitError, match=r"v.chars.dic: model.chars=lexicon"):
        char_mapper("lexicon", 50, tmp_path / "v.txt")


def test_token_array_layout_unknown_words_and_cache(text, tmp_path):
    train_word_vocab([str(text)], str(tmp_path / "v"), min_count=2, command="test")  # the, cat, sat
    vocab = load_word_vocab(tmp_path / "v.txt")
    other = tmp_path / "other.txt"
    other.write_text("the zebra sat\nzebra on\n", encoding="utf-8")
    tokens = encode_word_corpus([str(other)], vocab, tmp_path / "cache")
    V = vocab.size
    assert tokens.oov == ["zebra", "on"]
    assert tokens.ids.tolist() == [BOS_WORD, 3, V, 5, EOS_WORD, BOS_WORD, V, V + 1, EOS_WORD]
    again = encode_word_corpus([str(other)], vocab, tmp_path / "cache")  # read from the cache
    assert again.oov == tokens.oov and again.ids.tolist() == tokens.ids.tolist()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith("words-"))[0].endswith(".npy")
    mapper = ElmoBytes(50)
    table = tokens.table(vocab, mapper)
    # an unknown word is read by its own characters, and its target is <UNK>
    assert (table.chars[V] == mapper.chars("zebra")).all() and (table.chars[BOS_WORD] == mapper.bos).all()
    x = tokens.ids[None, :8]
    inputs = table.inputs(x)
    assert inputs.chars.shape[1] == 50 and inputs.index.shape == (1, 8)
    assert (inputs.chars[inputs.index[0, 2]].numpy() == mapper.chars("zebra")).all()
    y = table.targets(tokens.ids[None, 1:])
    assert y[0].tolist() == [3, UNK_WORD, 5, EOS_WORD, BOS_WORD, UNK_WORD, UNK_WORD, EOS_WORD]
    # a perplexity leaves out the token that starts a sentence in reading order
    assert scored(y, reverse=False)[0].tolist() == [True] * 4 + [False] + [True] * 3
    assert scored(y, reverse=True)[0].tolist() == [True] * 3 + [False] + [True] * 3 + [False]  # </S> starts one
    counts = word_counts(tokens.ids, V, len(table.chars))
    assert counts[UNK_WORD] == 3 and counts[3] == 1 and counts.shape == (V,)


def test_number_of_character_rows():
    assert num_chars(ElmoBytes(50)) == 262  # what AllenNLP's options say (n_characters)
    with pytest.raises(ElmokitError, match="model.chars must be one of bytes, lexicon"):
        char_mapper("codepoints", 50, "v.txt")
    assert np.array_equal(ElmoBytes(50).chars("<S>"), ElmoBytes(50).bos)
