"""Shared fixtures: a tiny corpus written by the demo grammar, a vocabulary trained on it, a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest

from elmokit.demo import write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    return {"train": write_corpus(d / "train.txt", 1500, seed=11), "valid": write_corpus(d / "valid.txt", 150, seed=12)}


@pytest.fixture(scope="session")
def vocab_path(corpus, tmp_path_factory) -> Path:
    from elmokit.lm.vocab import train_vocab

    prefix = tmp_path_factory.mktemp("vocab") / "tiny"
    train_vocab([str(corpus["train"])], str(prefix), size=320, num_threads=1, command="test")
    return Path(str(prefix) + ".model")


@pytest.fixture()
def tiny_overrides(corpus, vocab_path, tmp_path) -> list[str]:
    """Overrides for a fast, deterministic tiny run (no dropout, so process counts compare exactly)."""
    return [
        f"data.vocab={vocab_path}",
        f"data.train={corpus['train']}",
        f"data.valid={corpus['valid']}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_proc=1",
        "model.size=tiny",
        "model.dropout=0.0",
        "train.batch_size=8",
        "train.bptt=10",
        "train.max_steps=8",
        "train.warmup_steps=2",
        "train.log_every=1",
        "train.eval_every=4",
        "train.eval_max_tokens=400",
        "train.checkpoint_every=4",
        "train.threads=1",
    ]


@pytest.fixture(scope="session")
def tiny_pair(corpus, vocab_path, tmp_path_factory) -> dict[str, Path]:
    """A forward and a backward tiny LM trained for a few steps, and their bundle."""
    from elmokit.bilm.bundle import write_bundle
    from elmokit.lm.pretrain import pretrain

    d = tmp_path_factory.mktemp("pair")
    ov = [
        f"data.vocab={vocab_path}",
        f"data.train={corpus['train']}",
        f"data.cache_dir={d / 'cache'}",
        "data.num_proc=1",
        "model.size=tiny",
        "train.batch_size=8",
        "train.max_steps=30",
        "train.lr=0.01",
        "train.checkpoint_every=0",
        "train.threads=1",
    ]
    fwd = pretrain(None, "forward", d / "fwd", ov, progress=False)
    bwd = pretrain(None, "backward", d / "bwd", ov, progress=False)
    return {"forward": fwd, "backward": bwd, "bundle": write_bundle(fwd, bwd, d / "bilm"), "dir": d}


ELMO_FIXTURE = Path(__file__).parent / "fixtures" / "elmo-bilm-tf"


@pytest.fixture(scope="session")
def elmo_bundles(tmp_path_factory) -> dict[str, Path]:
    """bilm-tf's test model imported as is ("tf"), and with skip connections switched on ("skip": the same weights,
    each upper layer adding its input, as the published English model does)."""
    import json

    from elmokit.bilm.import_elmo import import_bilm_tf

    d = tmp_path_factory.mktemp("elmo")
    options = json.loads((ELMO_FIXTURE / "options.json").read_text())
    options["lstm"]["use_skip_connections"] = True
    (d / "skip-options.json").write_text(json.dumps(options))
    return {
        "tf": import_bilm_tf(ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5", d / "tf"),
        "skip": import_bilm_tf(d / "skip-options.json", ELMO_FIXTURE / "lm_weights.hdf5", d / "skip"),
    }
