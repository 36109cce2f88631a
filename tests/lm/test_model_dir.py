import json
import shutil

import pytest

from elmokit.core.errors import CheckpointError
from elmokit.lm.model_dir import load_model
from elmokit.lm.pretrain import pretrain


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus, vocab_path):
    out = tmp_path_factory.mktemp("run")
    ov = [
        f"data.vocab={vocab_path}",
        f"data.train={corpus['train']}",
        f"data.cache_dir={out / 'cache'}",
        "data.num_proc=1",
        "train.batch_size=4",
        "train.max_steps=3",
        "train.checkpoint_every=0",
        "train.threads=1",
    ]
    return pretrain(None, "forward", out / "run", ov, progress=False)


def test_model_dir_is_self_contained(model_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(model_dir, moved)
    loaded = load_model(moved)
    model, cfg, vocab, manifest = loaded.model, loaded.cfg, loaded.vocab, loaded.manifest
    assert manifest["direction"] == "forward" and manifest["vocab_sha256"] == vocab.sha256
    assert set(manifest["versions"]) >= {"elmokit", "torch"} and cfg.model.size == "tiny"
    assert not model.training


def test_truncated_weights(model_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    data = (bad / "weights.pt").read_bytes()
    (bad / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="weights.pt: sha256 differs"):
        load_model(bad)


def test_corrupt_weights_even_with_matching_manifest(model_dir, tmp_path):
    import hashlib

    bad = tmp_path / "bad2"
    shutil.copytree(model_dir, bad)
    (bad / "weights.pt").write_bytes(b"not a torch file")
    m = json.loads((bad / "manifest.json").read_text())
    m["files"]["weights.pt"] = hashlib.sha256(b"not a torch file").hexdigest()
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_model(bad)


def test_not_a_model(tmp_path):
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_model(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="not an elmokit model"):
        load_model(tmp_path)
