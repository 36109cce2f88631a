"""The character-CNN LM (model.encoder=char_cnn): the original ELMo's architecture pretrained by `elmokit pretrain`,
with everything the pieces LM has (validation, evaluate, generate, exact resume, 2 processes, grad accumulation),
and the backward LM taking the forward's token encoder (model.encoder_from)."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from elmokit.bilm.bundle import load_bilm, write_bundle
from elmokit.bilm.charbilm import CharBiLM
from elmokit.core.errors import CheckpointError, ConfigError
from elmokit.lm.evaluate import evaluate_model
from elmokit.lm.generate import sample
from elmokit.lm.model_dir import load_model
from elmokit.lm.pretrain import pretrain
from elmokit.lm.words import CharInputs, train_word_vocab, word_chars
from tests.lm.test_pretrain import accelerate_launch, losses, weights


@pytest.fixture(scope="session")
def word_vocab(corpus, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("words") / "tiny"
    train_word_vocab([str(corpus["train"])], str(prefix), size=60, command="test")  # some words stay unknown
    return Path(f"{prefix}.txt")


@pytest.fixture()
def char_overrides(tiny_overrides, word_vocab) -> list[str]:
    ov = [o for o in tiny_overrides if not o.startswith(("data.vocab=", "train.eval_max_tokens="))]
    return [*ov, f"data.vocab={word_vocab}", "model.encoder=char_cnn", "train.lr=0.01"]


def test_trains_validates_evaluates_and_generates(char_overrides, corpus, tmp_path):
    model_dir = pretrain(None, "forward", tmp_path / "run", [*char_overrides, "train.max_steps=12"], progress=False)
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.yaml", "manifest.json", "vocab.txt", "weights.pt"]
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in recs if r["split"] == "train"]
    valid = [r for r in recs if r["split"] == "valid"]
    assert train[-1] < train[0]
    # one position per word: the perplexity per token is the perplexity per word
    assert valid[-1]["word_ppl"] == pytest.approx(valid[-1]["ppl"], rel=1e-9)
    loaded = load_model(model_dir)
    assert loaded.mapper.kind == "elmo-bytes" and loaded.model.token_encoder.char_embedding.weight.shape[0] == 262
    res = evaluate_model(str(model_dir), [str(corpus["valid"])], batch=10, bptt=10, cache_dir=str(tmp_path / "c"))
    assert res["word_ppl"] == pytest.approx(res["subword_ppl"], rel=1e-9)
    assert res["word_ppl"] == pytest.approx(valid[-1]["word_ppl"], rel=1e-5)  # the run's last validation
    lines = corpus["valid"].read_text().splitlines()
    assert res["tokens"] == sum(len(ln.split()) + 1 for ln in lines)  # the words and each line's </S>
    sent = evaluate_model(str(model_dir), [str(corpus["valid"])], mode="sentence", cache_dir=str(tmp_path / "c"))
    assert sent["tokens"] == res["tokens"] and sent["word_ppl"] < 2 * res["word_ppl"]
    text = sample(loaded.model, loaded.vocab, "the", 12, seed=1, mapper=loaded.mapper)
    assert text.startswith("the") and all(w in loaded.vocab.index for w in text.split()[1:])


def test_the_encoder_learns_and_unknown_words_are_read_by_their_characters(char_overrides, tmp_path):
    pretrain(None, "backward", tmp_path / "run", [*char_overrides, "train.max_steps=4"], progress=False)
    loaded = load_model(tmp_path / "run")
    fresh = load_model(tmp_path / "run")
    fresh.model.token_encoder.reset_parameters(torch.Generator().manual_seed(1234))
    for name, p in weights(tmp_path / "run").items():
        if name.startswith("token_encoder.convolutions"):
            assert not torch.equal(p, fresh.model.state_dict()[name])  # it trained (gradients reach the CNN)
    # two unknown words: the same target (<UNK>), different characters, so different predictions after them
    a = tmp_path / "a.txt"
    a.write_text("the zyzzyva cat\n", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("the quokka cat\n", encoding="utf-8")
    ra = evaluate_model(str(tmp_path / "run"), [str(a)], mode="sentence")
    rb = evaluate_model(str(tmp_path / "run"), [str(b)], mode="sentence")
    assert ra["tokens"] == rb["tokens"] == 4 and ra["nll"] != rb["nll"]
    assert loaded.vocab.index.get("zyzzyva") is None


def test_resume_is_exact(char_overrides, tmp_path):
    ov = [*char_overrides, "model.dropout=0.2", "train.checkpoint_every=3"]
    pretrain(None, "forward", tmp_path / "full", ov, progress=False)
    pretrain(None, "forward", tmp_path / "cut", [*ov, "train.stop_at_step=5"], progress=False)
    pretrain(None, "forward", tmp_path / "cut", ov, resume=True, progress=False)
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_grad_accumulation_equals_the_full_batch(char_overrides, tmp_path):
    ov = [*char_overrides, "model.head=full", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "a", ov, progress=False)
    pretrain(None, "forward", tmp_path / "b", [*ov, "train.grad_accum=2"], progress=False)
    for x, y in zip(losses(tmp_path / "a"), losses(tmp_path / "b")):
        assert abs(x - y) < 1e-5


def test_the_backward_lm_takes_the_forward_encoder(char_overrides, tmp_path):
    ov = [*char_overrides, "train.max_steps=4", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "fwd", ov, progress=False)
    pretrain(
        None,
        "backward",
        tmp_path / "bwd",
        [*ov, f"model.encoder_from={tmp_path / 'fwd'}"],
        progress=False,
    )
    f, b = weights(tmp_path / "fwd"), weights(tmp_path / "bwd")
    enc = [k for k in f if k.startswith("token_encoder.")]
    assert enc and all(torch.equal(f[k], b[k]) for k in enc)  # frozen: one encoder for the pair
    assert not torch.equal(f["head.weight"], b["head.weight"])
    further = [*ov, f"model.encoder_from={tmp_path / 'fwd'}", "model.train_encoder=true"]
    pretrain(None, "backward", tmp_path / "bwd2", further, progress=False)
    b2 = weights(tmp_path / "bwd2")
    assert not all(torch.equal(f[k], b2[k]) for k in enc)  # trained further
    with pytest.raises(ConfigError, match=r"its model.filters is .*, this run's"):
        pretrain(
            None,
            "backward",
            tmp_path / "x",
            [*ov, f"model.encoder_from={tmp_path / 'fwd'}", "model.filters=[[1,4]]"],
            progress=False,
        )


@pytest.mark.parametrize(
    "extra, match",
    [
        (["data.vocab=v.model"], "data.vocab must be a word vocabulary"),
        (["model.encoder=pieces"], "is a word vocabulary: it is for model.encoder=char_cnn"),
        (["model.encoder=chars"], "model.encoder must be one of pieces, char_cnn"),
        (["model.filters=[[60,4]]"], r"model.filters: \[\[60, 4\]\] is not \[width, count\]"),
        (["model.filters=[]"], "model.filters must list"),
        (["model.chars=codepoints"], "model.chars must be one of bytes, lexicon"),
        (["model.char_activation=gelu"], "model.char_activation must be relu or tanh"),
        (["model.tie_embeddings=true"], "model.tie_embeddings needs a pieces encoder"),
        (["model.filters=[[1,16],[2,16]]"], "model.filters add up to 32 features, model.embed_dim's width"),
    ],
)
def test_bad_encoder_settings_fail_at_load(char_overrides, tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        pretrain(None, "forward", tmp_path / "run", [*char_overrides, *extra], progress=False)
    assert not (tmp_path / "run").exists()


def test_lexicon_characters(char_overrides, tmp_path):
    pretrain(
        None, "forward", tmp_path / "run", [*char_overrides, "model.chars=lexicon", "train.max_steps=2"], progress=False
    )
    loaded = load_model(tmp_path / "run")
    assert (loaded.path / "vocab.chars.dic").is_file() and loaded.mapper.kind == "lexicon"
    assert loaded.model.token_encoder.char_embedding.weight.shape[0] == len(loaded.mapper.char_ids)


@pytest.mark.slow
def test_two_gloo_processes_equal_one(char_overrides, tmp_path):
    ov = [*char_overrides, "train.checkpoint_every=0"]
    pretrain(None, "backward", tmp_path / "one", ov, progress=False)
    cmd = [*accelerate_launch(2), "-m", "elmokit.cli", "pretrain", "--direction", "backward"]
    cmd += ["--out", str(tmp_path / "two"), "--quiet", *ov]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parents[2])
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8 and max(abs(a - b) for a, b in zip(one, two)) < 1e-5
    for a, b in zip(losses(tmp_path / "one", "valid"), losses(tmp_path / "two", "valid")):
        assert abs(a - b) < 1e-5


def _lm_layers(lm, words: list[str]) -> list[torch.Tensor]:
    """One LM's layers over ``words`` (read by their characters), each ``(time, D)``."""
    chars = torch.from_numpy(np.stack([word_chars(lm.mapper, w) for w in words]))  # (time, max_chars)
    layers, _ = lm.model.encode(CharInputs(chars, torch.arange(len(words)).unsqueeze(0)))
    return [x[:, 0] for x in layers]


def test_the_pair_is_a_character_bilm_in_bilm_tf_layout(char_overrides, tiny_pair, tmp_path):
    ov = [*char_overrides, "train.max_steps=3", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "fwd", ov, progress=False)
    pretrain(None, "backward", tmp_path / "bwd", [*ov, f"model.encoder_from={tmp_path / 'fwd'}"], progress=False)
    out = write_bundle(tmp_path / "fwd", tmp_path / "bwd", tmp_path / "bilm")
    bilm = load_bilm(out)
    assert isinstance(bilm, CharBiLM) and bilm.has_softmax and bilm.cfg.softmax == "per-direction"
    f, b = load_model(tmp_path / "fwd"), load_model(tmp_path / "bwd")
    assert bilm.words == f.vocab.words
    # the vectors the LMs give, word by word: layer 0 the token vector, layer k each direction's layer k
    sent = "the cat sees a zyzzyva".split()
    vectors = bilm([sent])[0][0]  # (layers, words, 2D)
    fl, bl = _lm_layers(f, ["<S>", *sent]), _lm_layers(b, ["</S>", *sent[::-1]])
    D = bilm.dim
    for k in range(bilm.num_layers):
        assert torch.allclose(vectors[k, :, :D], fl[k][1:], atol=1e-5)
        assert torch.allclose(vectors[k, :, D:], bl[k][1:].flip(0), atol=1e-5)
    assert torch.allclose(load_bilm(tmp_path / "fwd", tmp_path / "bwd")([sent])[0][0], vectors)
    # a backward LM with its own encoder: refused, with the fix; --encoder backward takes its encoder for both
    pretrain(None, "backward", tmp_path / "own", ov, progress=False)
    with pytest.raises(CheckpointError, match="different token encoders.*model.encoder_from="):
        write_bundle(tmp_path / "fwd", tmp_path / "own", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    both = load_bilm(write_bundle(tmp_path / "fwd", tmp_path / "own", tmp_path / "y", encoder="backward"))
    own = load_model(tmp_path / "own").model.token_encoder.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in both.token_encoder.state_dict().items())
    with pytest.raises(CheckpointError, match="different vocabularies"):  # a pieces LM with a char_cnn one
        write_bundle(tmp_path / "fwd", tiny_pair["backward"], tmp_path / "z")


def test_fit_and_evaluate_read_the_character_bilm(char_overrides, corpus, tmp_path):
    from click.testing import CliRunner

    from elmokit.bilm.domain_fit import measure_fit
    from elmokit.cli import main

    ov = [*char_overrides, "train.max_steps=3", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "fwd", ov, progress=False)
    pretrain(None, "backward", tmp_path / "bwd", [*ov, f"model.encoder_from={tmp_path / 'fwd'}"], progress=False)
    bilm = write_bundle(tmp_path / "fwd", tmp_path / "bwd", tmp_path / "bilm")
    res = CliRunner().invoke(main, ["evaluate", str(bilm), "--corpus", str(corpus["valid"]), "--json"])
    assert res.exit_code == 0, res.output
    both = [json.loads(ln) for ln in res.output.splitlines() if ln.startswith("{")]
    alone = evaluate_model(str(tmp_path / "fwd"), [str(corpus["valid"])], cache_dir=str(tmp_path / "c"))
    assert [r["direction"] for r in both] == ["forward", "backward"]
    assert both[0]["word_ppl"] == pytest.approx(alone["word_ppl"], rel=1e-5)
    lines = corpus["valid"].read_text().splitlines()
    fit = measure_fit(bilm, lines, 100)
    for d in ("forward", "backward"):
        own = load_model(tmp_path / ("fwd" if d == "forward" else "bwd")).manifest["summary"]["final_valid"]["ppl"]
        assert fit["directions"][d]["own_valid_ppl"] == pytest.approx(own)
        assert 0.5 < fit["directions"][d]["ratio"] < 2.0  # its own kind of text
    assert fit["fits"] is True and fit["word_coverage"] < 1.0  # the 60-word vocabulary leaves words out


def test_a_pair_trained_here_exports_to_bilm_tf_files(char_overrides, tmp_path):
    """The issue's point: a character-CNN biLM pretrained in elmokit, written in the files every ELMo tool reads,
    and read back (by the importer and by the AllenNLP drop-in) to the same vectors."""
    from elmokit.allennlp import Elmo, batch_to_ids
    from elmokit.bilm.export_elmo import export_elmo
    from elmokit.bilm.import_elmo import import_bilm_tf

    ov = [*char_overrides, "train.max_steps=3", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "fwd", ov, progress=False)
    pretrain(None, "backward", tmp_path / "bwd", [*ov, f"model.encoder_from={tmp_path / 'fwd'}"], progress=False)
    bilm = load_bilm(write_bundle(tmp_path / "fwd", tmp_path / "bwd", tmp_path / "bilm"))
    export_elmo(tmp_path / "bilm", tmp_path / "tf")
    options = json.loads((tmp_path / "tf" / "options.json").read_text())
    assert options["char_cnn"]["n_characters"] == 262 and options["lstm"]["use_skip_connections"] is True
    assert (tmp_path / "tf" / "vocab.txt").read_text().split("\n")[:3] == ["<S>", "</S>", "<UNK>"]
    tf = tmp_path / "tf"
    back = load_bilm(import_bilm_tf(tf / "options.json", tf / "weights.hdf5", tmp_path / "re"))
    sents = [["the", "cat", "sees", "a", "zyzzyva"], ["a", "dog"]]
    assert torch.allclose(back(sents)[0], bilm(sents)[0], atol=1e-6)
    elmo = Elmo(str(tmp_path / "tf" / "options.json"), str(tmp_path / "tf" / "weights.hdf5"), 1, dropout=0.0)
    reps = elmo(batch_to_ids(sents))["elmo_representations"][0]  # (batch, words, 2D): AllenNLP's mix of layers
    mine = bilm(sents)[0].mean(1)  # the same equal weights over the layers
    assert torch.allclose(reps, mine, atol=1e-5)
