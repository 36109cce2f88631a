"""Fine-tuning a character biLM (the published ELMo, imported, or a char_cnn pair bundled here): ``pretrain
--init-from BILM`` starts a direction from the biLM's encoder and LSTMs, trains a new softmax alone first
(``train.head_steps``), then everything; ``adapt`` does both directions and bundles them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from elmokit.bilm.bundle import load_bilm, write_bundle
from elmokit.bilm.char_pair import INIT_DIR, pretrain_from_bilm
from elmokit.bilm.charbilm import write_char_bundle
from elmokit.cli import main
from elmokit.core.errors import ConfigError
from elmokit.demo import write_corpus
from elmokit.lm.pretrain import pretrain
from elmokit.lm.words import train_word_vocab
from tests.lm.test_pretrain import losses, weights


def _overrides(vocab: Path, train: Path, valid: Path, cache: Path) -> list[str]:
    return [
        f"data.vocab={vocab}",
        f"data.train={train}",
        f"data.valid={valid}",
        f"data.cache_dir={cache}",
        "data.num_proc=1",
        "model.size=tiny",
        "model.encoder=char_cnn",
        "model.dropout=0.0",
        "train.batch_size=8",
        "train.bptt=10",
        "train.warmup_steps=2",
        "train.log_every=1",
        "train.eval_every=0",
        "train.checkpoint_every=0",
        "train.threads=1",
        "train.lr=0.01",
    ]


@pytest.fixture(scope="session")
def char_bilms(corpus, tmp_path_factory) -> dict[str, Path]:
    """A tiny char pair trained here, bundled (``with``: its per-direction softmax over its 60 words), the same
    biLM without a softmax (``without``: as bilm-tf's files and ``import-elmo`` leave it), and its vocabulary."""
    d = tmp_path_factory.mktemp("charbilm")
    prefix = d / "words"
    train_word_vocab([str(corpus["train"])], str(prefix), size=60, command="test")
    vocab = Path(f"{prefix}.txt")
    ov = [*_overrides(vocab, corpus["train"], corpus["valid"], d / "cache"), "train.max_steps=6"]
    pretrain(None, "forward", d / "fwd", ov, progress=False)
    pretrain(None, "backward", d / "bwd", [*ov, f"model.encoder_from={d / 'fwd'}"], progress=False)
    with_softmax = write_bundle(d / "fwd", d / "bwd", d / "with")
    bilm = load_bilm(with_softmax)
    cfg = dataclasses.replace(bilm.cfg, softmax="none", vocab_size=0)
    state = {k: v for k, v in bilm.state_dict().items() if not k.startswith("softmax_")}
    without = write_char_bundle(d / "without", cfg, state, {"kind": "test"}, "test")
    return {"with": with_softmax, "without": without, "vocab": vocab}


@pytest.fixture(scope="session")
def new_text(tmp_path_factory) -> dict[str, Path]:
    """Text the biLM has not seen, and its word vocabulary."""
    d = tmp_path_factory.mktemp("newtext")
    train, valid = write_corpus(d / "train.txt", 600, seed=31), write_corpus(d / "valid.txt", 80, seed=32)
    train_word_vocab([str(train)], str(d / "new"), size=50, command="test")
    return {"train": train, "valid": valid, "vocab": d / "new.txt"}


@pytest.fixture()
def new_overrides(new_text, tmp_path) -> list[str]:
    return _overrides(new_text["vocab"], new_text["train"], new_text["valid"], tmp_path / "cache")


def _parts(state: dict) -> dict[str, dict]:
    return {
        "encoder": {k: v for k, v in state.items() if k.startswith("token_encoder.")},
        "rnn": {k: v for k, v in state.items() if k.startswith("rnn.")},
        "head": {k: v for k, v in state.items() if k.startswith("head.")},
    }


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _changed(a: dict, b: dict) -> bool:
    return all(not torch.equal(a[k], b[k]) for k in a)


def test_starts_from_the_bilm_trains_the_head_alone_then_everything(char_bilms, new_overrides, tmp_path):
    bilm = load_bilm(char_bilms["without"])
    theirs = bilm.state_dict()
    enc = {f"token_encoder.{k}": v for k, v in bilm.token_encoder.state_dict().items()}
    rnn = {f"rnn.{k}": v for k, v in bilm.backward_rnn.state_dict().items()}
    assert enc and rnn and not any(k.startswith("softmax") for k in theirs)
    ov = [*new_overrides, "train.max_steps=6", "train.head_steps=3"]
    pretrain_from_bilm(None, "backward", tmp_path / "full", ov, str(char_bilms["without"]), progress=False)

    start = _parts(torch.load(tmp_path / "full" / INIT_DIR / "weights.pt", weights_only=True))  # step 0
    assert _equal(start["encoder"], enc) and _equal(start["rnn"], rnn)
    made = json.loads((tmp_path / "full" / INIT_DIR / "manifest.json").read_text())["summary"]["init_from_bilm"]
    assert made["softmax"] == "new" and made["bilm_sha256"] == bilm.sha256
    end = _parts(weights(tmp_path / "full"))
    for part in ("encoder", "rnn", "head"):
        assert _changed(end[part], start[part]), part  # after the head phase everything trains

    # stopped inside the head phase: only the head changed; resumed: the uninterrupted run, bit for bit
    cut = tmp_path / "cut"
    pretrain_from_bilm(None, "backward", cut, [*ov, "train.stop_at_step=2"], str(char_bilms["without"]), progress=False)
    mid = _parts(torch.load(cut / "checkpoints" / "step-00000002" / "weights.pt", weights_only=True))
    assert _equal(mid["encoder"], enc) and _equal(mid["rnn"], rnn) and _changed(mid["head"], start["head"])
    pretrain_from_bilm(None, "backward", cut, ov, str(char_bilms["without"]), resume=True, progress=False)
    assert losses(cut) == losses(tmp_path / "full")
    a, b = weights(tmp_path / "full"), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # held-out perplexity per word after the head phase and at the end, in metrics.jsonl and the manifest
    recs = [json.loads(ln) for ln in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in recs if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6] and all(r["word_ppl"] > 1 for r in valid)
    summary = json.loads((tmp_path / "full" / "model" / "manifest.json").read_text())["summary"]
    assert summary["head_valid"]["word_ppl"] == valid[0]["word_ppl"]
    assert summary["final_valid"]["word_ppl"] == valid[1]["word_ppl"]
    assert losses(cut, "valid") == losses(tmp_path / "full", "valid")


def test_the_shape_comes_from_the_bilm_and_its_softmax_is_kept_over_its_words(
    char_bilms, corpus, new_overrides, tmp_path
):
    """A biLM with a softmax over exactly data.vocab's words keeps it (no head phase needed); the model section takes
    the biLM's shape whatever model.size says."""
    bilm = load_bilm(char_bilms["with"])
    ov = [o for o in new_overrides if not o.startswith(("data.", "model.size="))]
    ov += [f"data.vocab={char_bilms['vocab']}", f"data.train={corpus['train']}", f"data.valid={corpus['valid']}"]
    ov += ["model.size=small", "train.max_steps=2"]
    pretrain_from_bilm(None, "forward", tmp_path / "run", ov, str(char_bilms["with"]), progress=False)
    start = _parts(torch.load(tmp_path / "run" / INIT_DIR / "weights.pt", weights_only=True))
    head = bilm.softmax_head("forward")
    assert torch.equal(start["head"]["head.weight"], head.weight) and torch.equal(start["head"]["head.bias"], head.bias)
    cfg = json.loads((tmp_path / "run" / "run.json").read_text())["config"]["model"]
    assert (cfg["hidden_size"], cfg["embed_dim"], cfg["filters"]) == (64, 32, [[1, 8], [2, 8], [3, 16], [4, 16]])


def test_a_resume_refuses_a_changed_bilm(char_bilms, new_overrides, tmp_path):
    src = tmp_path / "bilm"
    bilm = load_bilm(char_bilms["without"])
    state = {k: v.clone() for k, v in bilm.state_dict().items()}
    write_char_bundle(src, bilm.cfg, state, {"kind": "test"}, "test")
    ov = [*new_overrides, "train.max_steps=4", "train.head_steps=2", "train.stop_at_step=1"]
    pretrain_from_bilm(None, "forward", tmp_path / "run", ov, str(src), progress=False)
    state[next(k for k in state if k.startswith("forward_rnn."))] += 1.0
    write_char_bundle(tmp_path / "bilm2", bilm.cfg, state, {"kind": "test"}, "test")
    src.rename(tmp_path / "old")
    (tmp_path / "bilm2").rename(src)
    with pytest.raises(ConfigError, match="init_bilm_sha256"):
        pretrain_from_bilm(None, "forward", tmp_path / "run", ov, str(src), resume=True, progress=False)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["model.hidden_size=128"], r"model.hidden_size=128, but --init-from .* has 64; .*leave model.hidden_size out"),
        (["train.head_steps=0"], "has no softmax, so the run starts a new one; set train.head_steps"),
        (["train.head_steps=6"], "train.head_steps=6 leaves no step to train the rest"),
        (["train.head_steps=-1"], "train.head_steps must be >= 0"),
    ],
)
def test_bad_cases_are_refused(char_bilms, new_overrides, tmp_path, extra, match):
    ov = [*new_overrides, "train.max_steps=6", "train.head_steps=2", *extra]
    with pytest.raises(ConfigError, match=match):
        pretrain_from_bilm(None, "forward", tmp_path / "run", ov, str(char_bilms["without"]), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_pieces_vocabulary_is_refused_in_one_line(char_bilms, new_overrides, vocab_path, tmp_path):
    ov = [o for o in new_overrides if not o.startswith("data.vocab=")] + [f"data.vocab={vocab_path}"]
    args = ["pretrain", "--direction", "forward", "--out", str(tmp_path / "run"), "--quiet"]
    res = CliRunner().invoke(main, [*args, "--init-from", str(char_bilms["without"]), *ov, "train.head_steps=2"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1, res.output
    assert "a character biLM predicts whole words" in res.output and "--model-type word" in res.output
    assert not (tmp_path / "run").exists()


def test_adapt_a_character_bilm_without_softmax(char_bilms, tmp_path):
    """adapt: a word vocabulary of the text, a new softmax trained alone first, both directions with the encoder
    frozen (so the pair still holds one), bundled; held-out perplexity per word after the head and at the end."""
    from elmokit.bilm.charbilm import CharBiLM

    text = write_corpus(tmp_path / "text.txt", 600, seed=21)
    out = tmp_path / "adapted"
    args = ["adapt", str(char_bilms["without"]), str(text), "--out", str(out), "--epochs", "1"]
    res = CliRunner().invoke(main, [*args, "--cache-dir", str(tmp_path / "cache"), "--minutes", "1"])
    assert res.exit_code == 0, res.output
    r = json.loads((Path(f"{out}.work") / "adapt.json").read_text())
    assert r["ppl_per"] == "word" and r["head_steps"] >= 1 and r["vocab"].endswith("(a new softmax)")
    for d in ("forward", "backward"):
        assert r["dev_ppl_before"][d] is None
        assert r["dev_ppl_after"][d] < r["dev_ppl_after_head"][d]
        assert f"{d}: held-out perplexity per word (no softmax) -> " in res.output
    adapted, source = load_bilm(out), load_bilm(char_bilms["without"])
    assert isinstance(adapted, CharBiLM) and adapted.cfg.softmax == "per-direction"
    enc = source.token_encoder.state_dict()
    assert all(torch.equal(v, enc[k]) for k, v in adapted.token_encoder.state_dict().items())  # frozen in both
    rnn = source.forward_rnn.state_dict()
    assert not all(torch.equal(v, rnn[k]) for k, v in adapted.forward_rnn.state_dict().items())
