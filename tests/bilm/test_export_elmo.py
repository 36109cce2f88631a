"""``elmokit export-elmo``: bilm-tf's fixture imported and exported again (dataset by dataset), a biLM made here read
back through bilm-tf's equations (written below from bilm-tf's ``model.py``, not elmokit's code) and through
``elmokit.allennlp.Elmo``, the softmax in bilm-tf's names, what the format cannot hold, and ``--out``."""

import errno
import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elmokit.allennlp import Elmo, batch_to_ids
from elmokit.bilm import export_elmo as export_module
from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.charbilm import CharBiLM, CharBiLMConfig, write_char_bundle
from elmokit.bilm.export_elmo import EXPORT_FORMAT, FILES, export_elmo, refusal
from elmokit.bilm.import_elmo import import_bilm_tf, import_manylangs
from elmokit.cli import main
from elmokit.core.errors import CheckpointError
from elmokit.modules.characters import ElmoBytes
from elmokit.modules.recurrent import RecurrentStack
from tests.bilm.test_import_elmo import _hidden, _one_line, _snapshot, write_manylangs
from tests.conftest import ELMO_FIXTURE

SENTENCES = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    ["고양이", "naïve", "x" * 60],  # multi-byte characters; a word cut to 48 bytes
    ["Hello"],
]
WORDS = ["<S>", "</S>", "<UNK>", "the", "cat", "sat", "고양이", "."]
FILTERS = [[1, 4], [2, 8], [3, 8]]  # 20 features


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, node: out.update({name: node[()]}) if isinstance(node, h5py.Dataset) else None)
    return out


def _cli(*args):
    return CliRunner().invoke(main, ["export-elmo", *map(str, args)])


# --- a biLM made here: random weights in elmokit's layout ------------------------------------------------------
def made_here(
    d,
    *,
    filters=FILTERS,
    P: int = 8,
    softmax: str = "per-direction",
    skip: bool = True,
    identity: bool = False,
    num_chars: int = 262,
    seed: int = 0,
):
    """A character biLM bundle as elmokit trains one (elmo-bytes, both biases, a softmax), random weights."""
    cfg = CharBiLMConfig(
        characters="elmo-bytes",
        max_chars=50,
        num_chars=num_chars,
        char_dim=4,
        filters=filters,
        num_highway=2,
        activation="tanh",
        projection_dim=P,
        cells=16,
        num_layers=3,
        cell_clip=3.0,
        proj_clip=0.0,  # off: written as null
        skip_connections=skip,
        vocab_size=len(WORDS) if softmax != "none" else 0,
        softmax=softmax,
    )
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CharBiLM(cfg, ElmoBytes(50), words=WORDS).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) * 0.5 for k, s in shapes.items()}
    if identity:
        state["token_encoder.projection.weight"] = torch.eye(P)
        state["token_encoder.projection.bias"] = torch.zeros(P)
    vocab = WORDS if softmax != "none" else None
    return write_char_bundle(d, cfg, state, {"kind": "test", "files": {}}, "test", vocab=vocab)


# --- bilm-tf's equations, from its model.py (BidirectionalLanguageModelGraph) and data.py (Batcher) -------------
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def bilm_tf_char_ids(word: str, max_chars: int) -> np.ndarray:
    """UnicodeCharsVocabulary's ids of a word, + 1 as Batcher adds."""
    ids = np.full(max_chars, 260)
    if word in ("<S>", "</S>"):
        ids[:3] = (258, 256 if word == "<S>" else 257, 259)
    else:
        b = list(word.encode("utf-8", "ignore"))[: max_chars - 2]
        ids[0], ids[1 : 1 + len(b)], ids[1 + len(b)] = 258, b, 259
    return ids + 1


def bilm_tf_layers(directory, words: list[str]) -> np.ndarray:
    """``(n_layers + 1, words, 2P)`` for one sentence from a zero state, computed from bilm-tf's files."""
    o = json.loads((directory / "options.json").read_text())
    w = _datasets(directory / "weights.hdf5")
    cnn, lstm = o["char_cnn"], o["lstm"]
    table = np.vstack([np.zeros((1, cnn["embedding"]["dim"]), np.float32), w["char_embed"]])  # the padding row
    assert table.shape[0] == cnn["n_characters"]  # bilm-tf's get_variable("char_embed", [n_chars, dim]) must fit
    C = cnn["max_characters_per_token"]
    emb = table[np.stack([bilm_tf_char_ids(t, C) for t in ["<S>", *words, "</S>"]])].astype(np.float64)
    act = np.tanh if cnn["activation"] == "tanh" else (lambda x: np.maximum(x, 0))
    feats = []
    for i, (width, _n) in enumerate(cnn["filters"]):
        W, b = w[f"CNN/W_cnn_{i}"][0], w[f"CNN/b_cnn_{i}"]  # (width, dim, n)
        conv = np.stack([sum(emb[:, p + q] @ W[q] for q in range(width)) for p in range(C - width + 1)], 1) + b
        feats.append(act(conv.max(1)))  # max over positions, then the activation
    h = np.concatenate(feats, -1)
    for k in range(cnn.get("n_highway") or 0):
        g = f"CNN_high_{k}/"
        carry = sigmoid(h @ w[g + "W_carry"] + w[g + "b_carry"])
        h = carry * np.maximum(h @ w[g + "W_transform"] + w[g + "b_transform"], 0) + (1 - carry) * h
    P, H = lstm["projection_dim"], lstm["dim"]
    if h.shape[1] != P:  # use_proj = n_filters != projection_dim
        h = h @ w["CNN_proj/W_proj"] + w["CNN_proj/b_proj"]
    out, dirs = [np.concatenate([h, h], -1)], []
    for d in (0, 1):
        x, per_layer = (h if d == 0 else h[::-1]), []
        for layer in range(lstm["n_layers"]):
            g = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell/"
            hs, m, c = [], np.zeros(P), np.zeros(H)
            for t in range(len(x)):
                i_, j, f_, o_ = np.split(np.concatenate([x[t], m]) @ w[g + "W_0"] + w[g + "B"], 4)
                c = sigmoid(f_ + 1.0) * c + sigmoid(i_) * np.tanh(j)  # LSTMCell's forget_bias=1
                if lstm["cell_clip"] is not None:
                    c = np.clip(c, -lstm["cell_clip"], lstm["cell_clip"])
                m = (sigmoid(o_) * np.tanh(c)) @ w[g + "W_P_0"]
                if lstm["proj_clip"] is not None:
                    m = np.clip(m, -lstm["proj_clip"], lstm["proj_clip"])
                hs.append(m + x[t] if lstm["use_skip_connections"] and layer > 0 else m)  # ResidualWrapper
            x = np.stack(hs)
            per_layer.append(x if d == 0 else x[::-1])
        dirs.append(per_layer)
    out += [np.concatenate([dirs[0][k], dirs[1][k]], -1) for k in range(lstm["n_layers"])]
    return np.stack(out)[:, 1:-1]  # <S> and </S> dropped


def _vectors(bilm_dir) -> list[np.ndarray]:
    vectors, _ = load_bilm(bilm_dir)(SENTENCES)  # (batch, layers, words, 2D)
    return [vectors[i, :, : len(s)].numpy() for i, s in enumerate(SENTENCES)]


# --- bilm-tf's fixture: import, export, import ------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_export(elmo_bundles, tmp_path_factory):
    return export_elmo(elmo_bundles["tf"], tmp_path_factory.mktemp("export") / "elmo").path


def test_fixture_round_trip_dataset_by_dataset(fixture_export):
    options = json.loads((fixture_export / "options.json").read_text())
    assert options == json.loads((ELMO_FIXTURE / "options.json").read_text())
    assert options["char_cnn"]["n_characters"] == 262
    theirs, ours = _datasets(ELMO_FIXTURE / "lm_weights.hdf5"), _datasets(fixture_export / "weights.hdf5")
    assert sorted(ours) == sorted(theirs)
    for name, value in theirs.items():
        assert ours[name].dtype == np.float32 and ours[name].shape == value.shape, name
        # transposes, gate order, negation, the forget bias (kept apart in bias_hh by the importer): exact
        assert ours[name].tobytes() == value.tobytes(), name
    assert (fixture_export / "vocab.txt").read_text() == "<S>\n</S>\n<UNK>\n"
    made = json.loads((fixture_export / "elmokit.json").read_text())
    assert made["format"] == EXPORT_FORMAT and made["source"]["sha256"] == load_bilm(made["source"]["path"]).sha256
    assert made["versions"]["elmokit"] and set(made["files"]) == {"options.json", "weights.hdf5", "vocab.txt"}
    assert any("AllenNLP's Elmo refuses" in n for n in made["notes"])  # the fixture has no skip connections


def test_fixture_export_import_gives_the_same_vectors(fixture_export, elmo_bundles, tmp_path):
    again = import_bilm_tf(fixture_export / "options.json", fixture_export / "weights.hdf5", tmp_path / "again")
    for a, b in zip(_vectors(elmo_bundles["tf"]), _vectors(again)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    for a, b in zip(_vectors(elmo_bundles["tf"]), SENTENCES):  # and bilm-tf's equations on the exported files
        np.testing.assert_allclose(bilm_tf_layers(fixture_export, b), a, rtol=0, atol=1e-5)


# --- a biLM made here --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("made")
    bundle = made_here(d / "bilm")
    return {"bundle": bundle, "export": export_elmo(bundle, d / "elmo")}


def test_made_here_reads_the_same_through_bilm_tf_equations(made):
    out = made["export"].path
    for vectors, words in zip(_vectors(made["bundle"]), SENTENCES):
        np.testing.assert_allclose(bilm_tf_layers(out, words), vectors, rtol=0, atol=1e-5)  # every layer
    lstm = json.loads((out / "options.json").read_text())["lstm"]
    assert lstm["cell_clip"] == 3 and lstm["proj_clip"] is None and lstm["use_skip_connections"] is True


def test_made_here_in_allennlp_elmo_and_back(made, tmp_path):
    out = made["export"].path
    elmo = Elmo(str(out / "options.json"), str(out / "weights.hdf5"), 1, dropout=0.0, cache_dir=tmp_path / "cache")
    got = elmo(batch_to_ids(SENTENCES))
    want, mask = load_bilm(made["bundle"])(SENTENCES)
    assert torch.equal(got["mask"], mask)
    torch.testing.assert_close(got["elmo_representations"][0], want.mean(1) * mask[..., None], rtol=0, atol=1e-5)
    again = import_bilm_tf(out / "options.json", out / "weights.hdf5", tmp_path / "again")
    for a, b in zip(_vectors(made["bundle"]), _vectors(again)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


def test_softmax_in_bilm_tf_names(made, tmp_path):
    bilm, out = load_bilm(made["bundle"]), made["export"].path
    w = _datasets(out / "weights.hdf5")
    for name, direction in (("softmax", "forward"), ("softmax_backward", "backward")):
        head = bilm.softmax_head(direction)
        assert w[f"{name}/W"].shape == (len(WORDS), 8) and w[f"{name}/b"].shape == (len(WORDS),)
        assert np.array_equal(w[f"{name}/W"], head.weight.numpy()) and np.array_equal(w[f"{name}/b"], head.bias.numpy())
    assert (out / "vocab.txt").read_text(encoding="utf-8") == "".join(f"{t}\n" for t in WORDS)
    assert json.loads((out / "options.json").read_text())["n_tokens_vocab"] == len(WORDS)
    assert made["export"].softmax == "per-direction" and any("softmax_backward" in n for n in made["export"].notes)
    shared = export_elmo(made_here(tmp_path / "shared", softmax="shared"), tmp_path / "shared-elmo")
    names = set(_datasets(shared.path / "weights.hdf5"))
    assert {"softmax/W", "softmax/b"} <= names and not any(n.startswith("softmax_backward") for n in names)
    options, weights, vocab = (shared.path / n for n in FILES)
    back = load_bilm(import_bilm_tf(options, weights, tmp_path / "back", vocab=vocab))
    assert back.cfg.softmax == "shared" and back.words == WORDS
    head = load_bilm(tmp_path / "shared").softmax_head("forward")
    assert torch.equal(back.softmax_head("forward").weight, head.weight)
    assert torch.equal(back.softmax_head("backward").bias, head.bias)
    bare = export_elmo(made_here(tmp_path / "bare", softmax="none"), tmp_path / "bare-elmo")
    assert not any(n.startswith("softmax") for n in _datasets(bare.path / "weights.hdf5"))
    assert "n_tokens_vocab" not in json.loads((bare.path / "options.json").read_text())


def test_filters_as_wide_as_the_projection(tmp_path):
    """bilm-tf has no projection when the filters are projection_dim wide: an identity one is exported (AllenNLP
    reads it), anything else is refused."""
    filters = [[1, 4], [2, 4]]
    done = export_elmo(made_here(tmp_path / "id", filters=filters, identity=True), tmp_path / "id-elmo")
    for vectors, words in zip(_vectors(tmp_path / "id"), SENTENCES):
        np.testing.assert_allclose(bilm_tf_layers(done.path, words), vectors, rtol=0, atol=1e-5)
    r = _cli(made_here(tmp_path / "not", filters=filters), "--out", tmp_path / "not-elmo")
    _one_line(r, "as many as the projection's", "not the identity")
    assert not (tmp_path / "not-elmo").exists() and _hidden(tmp_path, "not-elmo") == []


# --- what the format cannot hold ---------------------------------------------------------------------------------
def _pieces(tmp_path, tiny_pair):
    return tiny_pair["bundle"]


def _lexicon(tmp_path, tiny_pair):
    return import_manylangs(write_manylangs(tmp_path / "zhs.model", word_dim=0)[0], tmp_path / "lexicon")


def _word_embedding(tmp_path, tiny_pair):
    return import_manylangs(write_manylangs(tmp_path / "zhs.model", word_dim=5)[0], tmp_path / "words")


def _narrow_filters(tmp_path, tiny_pair):
    return made_here(tmp_path / "narrow", filters=[[1, 2], [2, 2]])


def _other_table(tmp_path, tiny_pair):
    return made_here(tmp_path / "table", num_chars=300)


@pytest.mark.parametrize(
    "make, says",
    [
        (_pieces, "a pieces biLM"),
        (_lexicon, "code points from an ELMoForManyLangs lexicon"),
        (_word_embedding, "word embedding beside the characters"),
        (_narrow_filters, "fewer than the projection's 8"),
        (_other_table, "character table has 300 rows"),
    ],
)
def test_refusals_are_one_line(tmp_path, tiny_pair, make, says):
    source = make(tmp_path, tiny_pair)
    before = _snapshot(source)
    _one_line(_cli(source, "--out", tmp_path / "elmo"), source, says)
    assert not (tmp_path / "elmo").exists() and _hidden(tmp_path, "elmo") == []
    assert _snapshot(source) == before


def test_a_gru_is_refused(tmp_path):
    bilm = load_bilm(made_here(tmp_path / "bilm", softmax="none"))
    bilm.backward_rnn = RecurrentStack("gru", 8, 16, 3, residual=True)
    assert "backward stack is a GRU" in refusal(bilm)
    with pytest.raises(CheckpointError, match="LSTM cells with a projection"):
        export_module.write_export(bilm, tmp_path / "elmo", {"path": "bilm"})
    assert not (tmp_path / "elmo").exists()


# --- --out ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_out_never_overlaps_the_source(tmp_path, where):
    bundle = made_here(tmp_path / "src" / "bilm", softmax="none")
    before = _snapshot(tmp_path / "src")
    out = {"same": bundle, "inside": bundle / "elmo", "parent": tmp_path / "src"}[where]
    _one_line(_cli(bundle, "--out", out, "--overwrite"), out, "the source")
    assert _snapshot(tmp_path / "src") == before and _hidden(out.parent, out.name) == []


def test_out_rules(tmp_path, made):
    bundle, out = made["bundle"], tmp_path / "elmo"
    r = _cli(bundle, "--out", out)
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "(both softmaxes)" in r.output and f"({len(WORDS)} words)" in r.output
    first = (out / "elmokit.json").read_bytes()
    _one_line(_cli(bundle, "--out", out), "exists; pass --overwrite")
    assert _cli(bundle, "--out", out, "--overwrite").exit_code == 0  # an earlier export is replaced
    assert json.loads((out / "elmokit.json").read_bytes())["files"] == json.loads(first)["files"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    _one_line(_cli(bundle, "--out", mine, "--overwrite"), "not an earlier export-elmo output")
    assert (mine / "notes.txt").read_text() == "keep me"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    _one_line(_cli(bundle, "--out", link), "a symbolic link", "does not exist")
    assert _hidden(tmp_path, "elmo") == [] and _hidden(tmp_path, "mine") == []


def test_a_failed_write_leaves_nothing(tmp_path, made, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export_module, "_write_text", full)
    _one_line(_cli(made["bundle"], "--out", tmp_path / "elmo"), "cannot write", "No space left on device")
    assert not (tmp_path / "elmo").exists() and _hidden(tmp_path, "elmo") == []
    monkeypatch.undo()
    old = tmp_path / "old"
    shutil.copytree(made["export"].path, old)
    before = _snapshot(old)

    def corrupt(tmp, bilm, words, where):  # the written files read back wrong: the old export stays
        raise CheckpointError(f"{where}: the written files do not read back as the biLM (test)")

    monkeypatch.setattr(export_module, "_verify", corrupt)
    _one_line(_cli(made["bundle"], "--out", old, "--overwrite"), "do not read back")
    assert _snapshot(old) == before and _hidden(tmp_path, "old") == []
