"""``elmokit import-elmo``: ELMoForManyLangs directories (against a direct implementation of its model), what the
format refuses, and the command line."""

import errno
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


# --- issue 34: one line per bad input, nothing of the user's lost, nothing left behind ---------------------------
def _cli(*args):
    return CliRunner().invoke(main, ["import-elmo", *map(str, args)])


def _one_line(r, *parts) -> str:
    """The result is exit code 2 with one ``error:`` line holding every part (and no traceback)."""
    assert r.exit_code == 2, (r.output, r.exception)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    for p in parts:
        assert str(p) in lines[0], (p, lines[0])
    return lines[0]


def _hidden(parent, name) -> list[str]:
    """What a write of ``parent/name`` may leave beside it: ``.NAME.tmp-*``, ``.NAME.old-*``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _snapshot(d) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _tf_sources(d):
    d.mkdir(parents=True, exist_ok=True)
    for n in ("options.json", "lm_weights.hdf5"):
        shutil.copy(ELMO_FIXTURE / n, d / n)
    return d / "options.json", d / "lm_weights.hdf5"


@pytest.mark.parametrize("where", ["same", "inside", "parent", "link"])
def test_out_never_overlaps_a_manylangs_source(tmp_path, where):
    """Case 3: `import-elmo DIR --out DIR --overwrite` deleted DIR; --out equal to, inside or containing the source
    (or a link to it) is refused, and the source is left as it was."""
    d, _, _ = write_manylangs(tmp_path / "src" / "zhs.model")
    before = _snapshot(tmp_path / "src")
    out = {"same": d, "inside": d / "bilm", "parent": tmp_path / "src", "link": tmp_path / "link"}[where]
    if where == "link":
        out.symlink_to(d, target_is_directory=True)
    _one_line(_cli(d, "--out", out, "--overwrite"), out, "source")
    assert _snapshot(tmp_path / "src") == before and not (d / "bilm").exists()
    assert _hidden(out.parent, out.name) == []


@pytest.mark.parametrize("where", ["options", "weights", "folder"])
def test_out_never_overlaps_a_bilm_tf_source(tmp_path, where):
    options, weights = _tf_sources(tmp_path / "src")
    before = _snapshot(tmp_path / "src")
    out = {"options": options, "weights": weights, "folder": tmp_path / "src"}[where]
    _one_line(_cli(options, weights, "--out", out, "--overwrite"), out, "source")
    assert _snapshot(tmp_path / "src") == before
    assert _hidden(out.parent, out.name) == []


def test_overwrite_replaces_only_a_bundle(tmp_path, elmo_bundles):
    """--overwrite replaces a bundle; a folder of other files (or a file) is refused, not deleted."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    options, weights = ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5"
    _one_line(_cli(options, weights, "--out", mine, "--overwrite"), mine, "not a biLM bundle")
    assert (mine / "notes.txt").read_text() == "keep me" and _hidden(tmp_path, "mine") == []
    bundle = tmp_path / "bundle"
    shutil.copytree(elmo_bundles["tf"], bundle)
    r = _cli(options, weights, "--out", bundle, "--overwrite")
    assert r.exit_code == 0, r.output
    assert _hidden(tmp_path, "bundle") == []


def _edit_options(tmp_path, edit):
    o = json.loads((ELMO_FIXTURE / "options.json").read_text())
    edit(o)
    p = tmp_path / "options.json"
    p.write_text(json.dumps(o))
    return p


def _set(section, key, value):
    def edit(o):
        (o if section is None else o[section] if "." not in section else o["char_cnn"]["embedding"])[key] = value

    return edit


@pytest.mark.parametrize(
    "edit, key",
    [
        (_set("lstm", "cell_clip", "abc"), "cell_clip"),
        (_set("lstm", "cell_clip", -3), "cell_clip"),
        (_set("lstm", "proj_clip", -1.5), "proj_clip"),
        (_set("lstm", "proj_clip", [3]), "proj_clip"),
        (_set("lstm", "proj_clip", float("nan")), "proj_clip"),
        (_set("lstm", "n_layers", 0), "n_layers"),
        (_set("lstm", "n_layers", -1), "n_layers"),
        (_set("lstm", "n_layers", "2"), "n_layers"),
        (_set("lstm", "dim", -64), "dim"),
        (_set("lstm", "projection_dim", -16), "projection_dim"),
        (_set("lstm", "projection_dim", 16.0), "projection_dim"),
        (_set("lstm", "use_skip_connections", "yes"), "use_skip_connections"),
        (_set("char_cnn", "n_highway", "2"), "n_highway"),
        (_set("char_cnn", "n_highway", -1), "n_highway"),
        (_set("char_cnn", "max_characters_per_token", -50), "max_characters_per_token"),
        (_set("char_cnn.embedding", "dim", -4), "dim"),
        (_set("char_cnn.embedding", "dim", None), "dim"),
        (_set("char_cnn", "filters", [[1, 4], [2]]), "filters"),
        (_set("char_cnn", "filters", [[1, "4"]]), "filters"),
        (_set("char_cnn", "filters", [[True, 4]]), "filters"),
        (_set("char_cnn", "filters", {"1": 4}), "filters"),
        (_set("char_cnn", "filters", [[1, -4]]), "filters"),
        (_set("char_cnn", "embedding", 4), "embedding"),
        (_set(None, "char_cnn", [1, 2]), "char_cnn"),
        (_set(None, "lstm", "big"), "lstm"),
    ],
)
def test_options_of_the_wrong_type_or_sign_are_one_line(tmp_path, edit, key):
    """Case 8: each is one line naming options.json and the key (was: a traceback, or a bundle of 0 layers)."""
    options = _edit_options(tmp_path, edit)
    out = tmp_path / "out"
    _one_line(_cli(options, ELMO_FIXTURE / "lm_weights.hdf5", "--out", out), "options.json", repr(key))
    assert not out.exists() and _hidden(tmp_path, "out") == []


W0 = "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"


def _strings(f, name):
    shape = f[name].shape
    del f[name]
    f.create_dataset(name, data=np.full(shape, b"0.5", dtype="S3"))


def _group(f, name):
    del f[name]
    f.create_group(name)


def _external(f, name):
    with h5py.File(f.filename + ".other.hdf5", "w") as g:
        g[name] = f[name][...]
    del f[name]
    f[name] = h5py.ExternalLink(f.filename + ".other.hdf5", name)


def _soft(f, name):
    f["copy_of_it"] = f[name][...]
    del f[name]
    f[name] = h5py.SoftLink("/copy_of_it")


def _nan(f, name):
    f[name][0, 0] = np.nan


def _dataset_as_parent(f, name):
    del f["CNN"]
    f["CNN"] = np.zeros(3, dtype=np.float32)


@pytest.mark.parametrize(
    "change, name, says",
    [
        (_strings, "char_embed", "not numbers"),
        (_strings, W0, "not numbers"),
        (_group, "CNN/b_cnn_0", "a group"),
        (_group, W0, "a group"),
        (_group, "char_embed", "a group"),
        (_external, "char_embed", "link"),
        (_soft, "CNN/W_cnn_0", "link"),
        (_dataset_as_parent, "CNN", "not a group"),
        (_nan, "char_embed", "NaN"),
        (_nan, W0, "NaN"),
    ],
)
def test_misshapen_weights_are_one_line(tmp_path, change, name, says):
    """Case 9: a dataset of strings, a group where a dataset should be, a link (possibly into another file)."""
    weights = tmp_path / "weights.hdf5"
    shutil.copy(ELMO_FIXTURE / "lm_weights.hdf5", weights)
    with h5py.File(weights, "r+") as f:
        change(f, name)
    out = tmp_path / "out"
    _one_line(_cli(ELMO_FIXTURE / "options.json", weights, "--out", out), weights, name, says)
    assert not out.exists() and _hidden(tmp_path, "out") == []


def _model_json(edit):
    def change(d):
        m = json.loads((d / "cnn_model.json").read_text())
        edit(m)
        (d / "cnn_model.json").write_text(json.dumps(m))

    return change


def _latin1_dic(d):
    (d / "char.dic").write_bytes((d / "char.dic").read_bytes() + "é\t40\n".encode("latin-1"))


def _negative_id(d):
    (d / "char.dic").write_text((d / "char.dic").read_text(encoding="utf-8").replace("a\t6\n", "a\t-3\n"), "utf-8")


def _odd_digits(d):
    (d / "word.dic").write_text((d / "word.dic").read_text(encoding="utf-8").replace("cat\t5", "cat\t²"), "utf-8")


def _ints_state(d):
    tok = torch.load(d / "token_embedder.pkl", weights_only=True)
    torch.save({k: 1 for k in tok}, d / "token_embedder.pkl")


def _inf_weight(d):
    enc = torch.load(d / "encoder.pkl", weights_only=True)
    enc["backward_layer_1.state_projection.weight"][2, 3] = float("inf")
    torch.save(enc, d / "encoder.pkl")


def _scalar_rows(d):
    tok = torch.load(d / "token_embedder.pkl", weights_only=True)
    tok["char_emb_layer.embedding.weight"] = torch.tensor(1.0)
    torch.save(tok, d / "token_embedder.pkl")


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: (d / "char.dic").unlink(), "char.dic"),
        (lambda d: (d / "word.dic").unlink(), "word.dic"),
        (_latin1_dic, "char.dic:37: not UTF-8"),
        (_negative_id, "char.dic:7"),
        (_odd_digits, "word.dic:6"),
        (_ints_state, "token_embedder.pkl"),
        (_scalar_rows, "char_emb_layer.embedding.weight"),
        (_inf_weight, "encoder.pkl: 'backward_layer_1.state_projection.weight' holds NaN or infinite"),
        (_model_json(lambda m: m["encoder"].update(cell_clip="abc")), "'cell_clip'"),
        (_model_json(lambda m: m["encoder"].update(proj_clip=-3)), "'proj_clip'"),
        (_model_json(lambda m: m["encoder"].update(n_layers=-1)), "'n_layers'"),
        (_model_json(lambda m: m["encoder"].update(n_layers=0)), "'n_layers'"),
        (_model_json(lambda m: m["encoder"].update(n_layers=10**9)), "no weights for forward_rnn.layers.2"),
        (_model_json(lambda m: m["encoder"].update(dim=-12)), "'dim'"),
        (_model_json(lambda m: m["token_embedder"].update(n_highway="1")), "'n_highway'"),
        (_model_json(lambda m: m["token_embedder"].update(word_dim="5")), "'word_dim'"),
        (_model_json(lambda m: m["token_embedder"].update(max_characters_per_token=2)), "max_characters_per_token"),
        (_model_json(lambda m: m["token_embedder"].update(name=3)), "name"),
        (_model_json(lambda m: m.update(encoder=[])), "'encoder'"),
    ],
)
def test_bad_manylangs_directories_are_one_line_at_import(tmp_path, change, says):
    """Case 10: refused at import time, one line (before: tracebacks, or an import whose embed crashed)."""
    d, _, _ = write_manylangs(tmp_path / "zhs.model")
    change(d)
    out = tmp_path / "out"
    _one_line(_cli(d, "--out", out), says)
    assert not out.exists() and _hidden(tmp_path, "out") == []


def test_out_a_dangling_link_is_refused(tmp_path):
    """Case 14: the import wrote a `.link.tmp-*` and then failed to rename over the link (a traceback)."""
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    for flags in ((), ("--overwrite",)):
        _one_line(_cli(ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5", "--out", link, *flags), link)
        assert link.is_symlink() and _hidden(tmp_path, "link") == [] and not (tmp_path / "nowhere").exists()


def _save_into_a_full_disk(real):
    def save(obj, f, *a, **kw):
        budget = [1000]
        write = f.write

        class Full:
            def write(self, b):
                n = len(memoryview(b).cast("B"))
                if budget[0] < n:
                    raise OSError(errno.ENOSPC, "No space left on device")
                budget[0] -= n
                return write(b)

            def __getattr__(self, name):
                return getattr(f, name)

        return real(obj, Full(), *a, **kw)

    return save


@pytest.mark.parametrize("how", ["unexpected pos", "file write failed", "ENOSPC", "real torch.save, full file"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, how):
    """Case 15: torch.save's RuntimeError (42 lines, a `.out.tmp-*` left) or an OSError: one line naming the output,
    asking for space; no temporary directory left."""
    real = torch.save

    def fail(*a, **kw):
        if how == "ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError(
            f"[enforce fail at inline_container.cc:783] . {how} 4352 vs 4288"
            if how == "unexpected pos"
            else "PytorchStreamWriter failed writing file data/3: file write failed"
        )

    monkeypatch.setattr(torch, "save", _save_into_a_full_disk(real) if how.startswith("real") else fail)
    out = tmp_path / "out"
    line = _one_line(_cli(ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5", "--out", out), out)
    assert "space" in line
    assert not out.exists() and _hidden(tmp_path, "out") == []


def test_a_kill_between_the_two_renames_is_recovered(tmp_path):
    """Case 18: `import-elmo --overwrite` killed after moving the old bundle aside and before moving the new one in
    left no bundle at --out; the next run puts the old one back (then refuses without --overwrite, as for any
    bundle), and a run with --overwrite finishes the swap. Nothing hidden is left."""
    import subprocess
    import sys

    options, weights = ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5"
    out = tmp_path / "elmo"
    import_bilm_tf(options, weights, out)
    before = _snapshot(out)
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from elmokit.bilm.import_elmo import import_bilm_tf\n"
        f"out = Path({str(out)!r})\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        "    real(src, dst)\n"
        "    if Path(src) == out:  # the old bundle is aside, the new one not yet in: killed\n"
        "        os._exit(9)\n"
        "os.replace = replace\n"
        f"import_bilm_tf({str(options)!r}, {str(weights)!r}, out, overwrite=True)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr
    assert not out.exists() and [n.split("-")[0] for n in _hidden(tmp_path, "elmo")] == [".elmo.old", ".elmo.tmp"]
    _one_line(_cli(options, weights, "--out", out), out, "exists; pass --overwrite")  # the old one is back
    assert _snapshot(out) == before and _hidden(tmp_path, "elmo") == []
    load_bilm(out)
    # killed after the second rename: the new bundle is in, the old one still aside
    r = subprocess.run([sys.executable, "-c", code.replace("Path(src) == out", "Path(dst) == out")], timeout=300)
    assert r.returncode == 9 and out.is_dir()
    assert sorted(n.split("-")[0] for n in _hidden(tmp_path, "elmo")) == [".elmo.old"]
    (tmp_path / f".elmo.tmp-{_dead_pid()}-abc").mkdir()  # a killed run's temporary
    r = _cli(options, weights, "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert _hidden(tmp_path, "elmo") == []


def _dead_pid() -> int:
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid
