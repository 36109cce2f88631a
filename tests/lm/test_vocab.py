import json
from pathlib import Path

import pytest

from elmokit.core.errors import ElmokitError
from elmokit.lm.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, load_vocab, train_vocab


def test_card_and_special_ids(vocab_path):
    v = load_vocab(vocab_path)
    assert (v.sp.unk_id(), v.sp.bos_id(), v.sp.eos_id(), v.sp.pad_id()) == (UNK_ID, BOS_ID, EOS_ID, PAD_ID)
    card = json.loads(Path(str(vocab_path).replace(".model", ".card.json")).read_text())
    assert card["model_sha256"] == v.sha256 and card["vocab_size"] == 320
    assert 0.9 < card["measured_on_sample"]["character_coverage"] <= 1.0
    assert card["measured_on_sample"]["pieces_per_word"] >= 1.0


def test_any_script_without_unk(vocab_path):
    v = load_vocab(vocab_path)
    for text in ["영화가 정말 재미있었다", "Ωμέγα ∑ 🙂", "日本語のテキスト"]:
        ids = v.encode(text)
        assert UNK_ID not in ids
        assert v.decode(ids) == text


def test_committed_vocabularies_load():
    root = Path(__file__).parents[2] / "vocab"
    for name, probe in [("en-wikitext2-16k", "The game 's <unk> was released"), ("ko-nsmc-16k", "이 영화 최고")]:
        v = load_vocab(root / f"{name}.model")
        card = json.loads((root / f"{name}.card.json").read_text(encoding="utf-8"))
        assert card["model_sha256"] == v.sha256 and v.size == card["vocab_size"]
        assert UNK_ID not in v.encode(probe)
    en = load_vocab(root / "en-wikitext2-16k.model")
    assert en.sp.piece_to_id("<unk>") not in (UNK_ID,) and len(en.encode("<unk>")) <= 2


def test_size_too_small_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(ElmokitError, match="pass a larger --size"):
        train_vocab([str(corpus["train"])], str(tmp_path / "v"), size=50, num_threads=1)


def test_not_a_model(tmp_path):
    p = tmp_path / "x.model"
    p.write_bytes(b"garbage")
    with pytest.raises(ElmokitError, match="not a sentencepiece model"):
        load_vocab(p)
