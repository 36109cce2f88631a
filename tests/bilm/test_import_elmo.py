"""``elmokit import-elmo``: ELMoForManyLangs directories (against a direct implementation of its model), what the
format refuses, and the command line."""

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.import_elmo import import_bilm_tf, import_manylangs
from elmokit.cli import main
from elmokit.core.errors import CheckpointError
from tests.conftest import ELMO_FIXTURE

FILTERS = [[1, 4], [2, 6], [3, 8]]
CHARS = ["<bos>", "<eos>", "<oov>", "<pad>", "<bow>", "<eow>", *"abcdefghijklmnopqrstuvwxyz고양이", "\u3000"]
WORDS = ["<oov>", "<pad>", "<bos>", "<eos>", "the", "cat", "고양이"]


def write_manylangs(d, seed: int = 0, legacy: bool = False, word_dim: int = 5):
    """A small ELMoForManyLangs model directory with random weights under its own key names."""
    g = torch.Generator().manual_seed(seed)
    d.mkdir(parents=True, exist_ok=True)
    model = {
        "token_embedder": {
            "name": "cnn",
            "activation": "relu",
            "filters": FILTERS,
            "n_highway": 1,
            "word_dim": word_dim,
            "char_dim": 3,
            "max_characters_per_token": 10,
        },
        "encoder": {"name": "elmo", "projection_dim": 6, "cell_clip": 3, "proj_clip": 3, "dim": 12, "n_layers": 2},
        "classifier": {"name": "sampled_softmax", "n_samples": 8},
        "dropout": 0.1,
    }
    (d / "cnn_model.json").write_text(json.dumps(model))
    (d / "config.json").write_text(json.dumps({"config_path": "cnn_model.json", "char_dim": 3}))
    (d / "char.dic").write_text("".join(f"{c}\t{i}\n" for i, c in enumerate(CHARS)), encoding="utf-8")
    (d / "word.dic").write_text("".join(f"{w}\t{i}\n" for i, w in enumerate(WORDS)), encoding="utf-8")
    F = sum(n for _, n in FILTERS)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.5

    tok = {
        "char_emb_layer.embedding.weight": r(len(CHARS), 3),
        "projection.weight": r(6, F + word_dim),
        "projection.bias": r(6),
        "highways._layers.0.weight": r(2 * F, F),
        "highways._layers.0.bias": r(2 * F),
    }
    if word_dim:
        tok["word_emb_layer.embedding.weight"] = r(len(WORDS), word_dim)
    for i, (w, n) in enumerate(FILTERS):
        tok[f"convolutions.{i}.weight"], tok[f"convolutions.{i}.bias"] = r(n, 3, w), r(n)
    enc = {}
    for direction in ("forward", "backward"):
        for k in range(2):
            p = f"{direction}_layer_{k}."
            enc[p + "input_linearity.weight"], enc[p + "state_linearity.weight"] = r(48, 6), r(48, 6)
            enc[p + "state_linearity.bias"], enc[p + "state_projection.weight"] = r(48), r(6, 12)
    kw = {"_use_new_zipfile_serialization": False} if legacy else {}  # its models were saved by torch 0.4
    torch.save(tok, d / "token_embedder.pkl", **kw)
    torch.save(enc, d / "encoder.pkl", **kw)
    return d, tok, enc


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def manylangs_reference(words, tok, enc, word_dim: int = 5) -> np.ndarray:
    """ELMoForManyLangs' model written out with numpy: (3, words, 12), each sentence from zeros."""
    t = {k: v.numpy() for k, v in tok.items()}
    e = {k: v.numpy() for k, v in enc.items()}
    cid, wid = {c: i for i, c in enumerate(CHARS)}, {w: i for i, w in enumerate(WORDS)}
    seq = ["<bos>", *[w[:8] for w in words], "<eos>"]
    chars = np.full((len(seq), 10), cid["<pad>"])
    for j, w in enumerate(seq):
        chars[j, 0] = cid["<eow>"]  # its code swaps the begin- and end-of-word ids
        if w in ("<bos>", "<eos>"):
            chars[j, 1], chars[j, 2] = cid[w], cid["<bow>"]
        else:
            chars[j, 1 : 1 + len(w)] = [cid.get(c, cid["<oov>"]) for c in w]
            chars[j, 1 + len(w)] = cid["<bow>"]
    x = t["char_emb_layer.embedding.weight"][chars]  # (T, 10, 3)
    feats = []
    for i, (width, _n) in enumerate(FILTERS):
        W, b = t[f"convolutions.{i}.weight"], t[f"convolutions.{i}.bias"]  # (n, 3, width)
        conv = np.stack([np.einsum("tkc,nck->tn", x[:, p : p + width], W) for p in range(10 - width + 1)], 1) + b
        feats.append(np.maximum(conv.max(1), 0))
    h = np.concatenate(feats, -1)
    proj = h @ t["highways._layers.0.weight"].T + t["highways._layers.0.bias"]
    F = h.shape[1]
    gate = sigmoid(proj[:, F:])
    h = gate * h + (1 - gate) * np.maximum(proj[:, :F], 0)
    if word_dim:
        h = np.concatenate([t["word_emb_layer.embedding.weight"][[wid.get(w, 0) for w in seq]], h], -1)
    token = h @ t["projection.weight"].T + t["projection.bias"]
    layers = [np.concatenate([token, token], -1)]
    per_dir = []
    for direction in ("forward", "backward"):
        inp = token if direction == "forward" else token[::-1]
        outs = []
        for k in range(2):
            p = f"{direction}_layer_{k}."
            m, c, hs = np.zeros(6), np.zeros(12), []
            for step in range(len(inp)):
                z = (
                    inp[step] @ e[p + "input_linearity.weight"].T
                    + m @ e[p + "state_linearity.weight"].T
                    + e[p + "state_linearity.bias"]
                )
                i_, f_, g_, o = np.split(z, 4)
                c = np.clip(sigmoid(i_) * np.tanh(g_) + sigmoid(f_) * c, -3, 3)
                m = np.clip((sigmoid(o) * np.tanh(c)) @ e[p + "state_projection.weight"].T, -3, 3)
                hs.append(m + inp[step] if k > 0 else m)
            inp = np.stack(hs)
            outs.append(inp if direction == "forward" else inp[::-1])
        per_dir.append(outs)
    layers += [np.concatenate([per_dir[0][k], per_dir[1][k]], -1) for k in range(2)]
    return np.stack(layers)[:, 1:-1]


@pytest.mark.parametrize("legacy, word_dim", [(False, 5), (True, 5), (False, 0)])
def test_manylangs_matches_its_equations(tmp_path, legacy, word_dim):
    d, tok, enc = write_manylangs(tmp_path / "zhs.model", legacy=legacy, word_dim=word_dim)
    bundle = import_manylangs(d, tmp_path / "bilm")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "elmoformanylangs" and len(manifest["source"]["files"]) == 5 + bool(word_dim)
    bilm = load_bilm(bundle)
    words = ["the", "cat", "고양이", "zebra", "averyveryverylongword", "?"]  # unknown words and chars, a cut word
    got = bilm.encode_rows([[words]])[0][0].numpy()
    np.testing.assert_allclose(got, manylangs_reference(words, tok, enc, word_dim), atol=1e-5, rtol=0)


def test_bundle_is_self_contained_and_checked(tmp_path, elmo_bundles):
    copy = tmp_path / "copy"
    shutil.copytree(elmo_bundles["tf"], copy)
    a = load_bilm(elmo_bundles["tf"])([["A", "test", "."]])[0]
    torch.testing.assert_close(load_bilm(copy)([["A", "test", "."]])[0], a)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["format"] == "elmokit-charbilm/1" and len(manifest["source"]["files"]) == 2
    with open(copy / "weights.pt", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(
        CheckpointError,
        match="weights.pt: sha256 differs from the manifest; the file is corrupt or truncated; import it again",
    ):
        load_bilm(copy)


def _options(tmp_path, edit) -> str:
    o = json.loads((ELMO_FIXTURE / "options.json").read_text())
    edit(o)
    p = tmp_path / "options.json"
    p.write_text(json.dumps(o))
    return str(p)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: o["lstm"].update(attention=True), "unknown lstm key"),
        (lambda o: o.update(extra_section={}), "unknown key"),
        (lambda o: o["lstm"].update(projection_dim=8), "has shape"),
        (lambda o: o["char_cnn"]["filters"].append([6, 2]), "no dataset CNN/W_cnn_5"),
        (lambda o: o["char_cnn"].update(activation="gelu"), "activation must be"),
        (lambda o: o.pop("char_cnn"), "word-embedding ELMo"),
        (lambda o: o["lstm"].pop("dim"), "missing key 'dim'"),
    ],
)
def test_refuses_what_the_format_does_not_allow(tmp_path, edit, message):
    with pytest.raises(CheckpointError, match=message):
        import_bilm_tf(_options(tmp_path, edit), ELMO_FIXTURE / "lm_weights.hdf5", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_manylangs_refusals(tmp_path):
    d, tok, _ = write_manylangs(tmp_path / "m0")
    (d / "config.json").write_text(json.dumps({"config_path": "../configs/cnn_50_100_512_4096_sample.json"}))
    with pytest.raises(CheckpointError, match="copy cnn_50_100_512_4096_sample.json"):
        import_manylangs(d, tmp_path / "out")
    d, tok, _ = write_manylangs(tmp_path / "m")
    (d / "char.dic").write_text("a\t0\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="has no <oov>"):
        import_manylangs(d, tmp_path / "out")
    d, tok, _ = write_manylangs(tmp_path / "m2")
    tok["projection.weight"] = torch.zeros(6, 3)
    torch.save(tok, d / "token_embedder.pkl")
    with pytest.raises(CheckpointError, match="token_encoder.projection.weight has shape"):
        import_manylangs(d, tmp_path / "out")


def test_cli_import_embed_and_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "elmo"
    r = runner.invoke(
        main,
        ["import-elmo", str(ELMO_FIXTURE / "options.json"), str(ELMO_FIXTURE / "lm_weights.hdf5"), "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "3 layers of 32" in r.output
    r = runner.invoke(
        main,
        ["import-elmo", str(ELMO_FIXTURE / "options.json"), str(ELMO_FIXTURE / "lm_weights.hdf5"), "--out", str(out)],
    )
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output
    r = runner.invoke(
        main,
        [
            "import-elmo",
            str(ELMO_FIXTURE / "options.json"),
            str(ELMO_FIXTURE / "options.json"),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert r.exit_code == 2 and "cannot read as HDF5" in r.output and "Traceback" not in r.output
    text = tmp_path / "s.txt"
    text.write_text("The cat sat .\nHello\n")
    for layers, shape in (("all", (3, 4, 32)), ("top", (4, 32)), ("average", (4, 32))):
        r = runner.invoke(
            main, ["embed", str(out), str(text), str(tmp_path / f"{layers}.hdf5"), "--layers", layers, "--quiet"]
        )
        assert r.exit_code == 0, r.output
        with h5py.File(tmp_path / f"{layers}.hdf5", "r") as f:
            assert f["0"].shape == shape and json.loads(f["sentence_to_index"][0])["Hello"] == "1"
    r = runner.invoke(
        main, ["embed", str(out), str(text), str(tmp_path / "st.hdf5"), "--stateful", "--batch-size", "1", "--quiet"]
    )
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "st.hdf5", "r") as f, h5py.File(tmp_path / "all.hdf5", "r") as g:
        np.testing.assert_allclose(f["0"][...], g["0"][...], atol=1e-6)  # the first batch starts from zeros
        assert np.abs(f["1"][...] - g["1"][...]).max() > 1e-4  # the second carries the first's state
        assert bool(f.attrs["stateful"]) and f.attrs["batch_size"] == 1


def test_stateful_is_refused_for_elmokits_own_bilm(tmp_path, tiny_pair):
    text = tmp_path / "s.txt"
    text.write_text("The cat sat .\n")
    r = CliRunner().invoke(main, ["embed", str(tiny_pair["bundle"]), str(text), str(tmp_path / "o.hdf5"), "--stateful"])
    assert r.exit_code == 2 and "stateful mode is for character biLMs" in r.output


def test_stateful_resume_replays_to_the_same_numbers(tmp_path, elmo_bundles):
    from elmokit.embed import Embedder
    from elmokit.embed.writer import write_hdf5

    sents = json.loads((ELMO_FIXTURE / "lm_embeddings_sentences.json").read_text())
    text = tmp_path / "s.txt"
    text.write_text("".join(s + "\n" for k in range(3) for s in sents[k]), encoding="utf-8")

    def run(out, **kw):
        return write_hdf5(
            Embedder(elmo_bundles["tf"], stateful=True, batch_size=3), text, out, chunk_lines=4, progress=False, **kw
        )

    whole = run(tmp_path / "a.hdf5")
    assert run(tmp_path / "b.hdf5", stop_after_chunks=2).name == "b.hdf5.partial"  # killed after 2 chunks
    resumed = run(tmp_path / "b.hdf5", resume=True)
    with h5py.File(whole, "r") as f, h5py.File(resumed, "r") as g:
        assert f.attrs["chunk_lines"] == 6  # rounded up to whole batches
        for i in range(30):
            np.testing.assert_array_equal(f[str(i)][...], g[str(i)][...])
