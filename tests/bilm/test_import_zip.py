"""``elmokit import-elmo MODEL.zip``: the NLPL repository's archives (bilm-tf's files, the vocabulary and, where the
weights hold one, the softmax) and ELMoForManyLangs', read straight from the archive; what a wrong archive is told;
the vocabulary and softmax through a bundle's write and load."""

import gzip
import json
import shutil
import stat
import zipfile

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.charbilm import CharBiLM, CharBiLMConfig, write_char_bundle
from elmokit.bilm.import_elmo import import_archive, import_bilm_tf, import_manylangs, options_config
from elmokit.cli import main
from elmokit.core.errors import CheckpointError
from tests.bilm.test_import_elmo import write_manylangs
from tests.conftest import ELMO_FIXTURE

WORDS = ["<S>", "</S>", "<UNK>", "the", "cat", "sat", "on", "mat", "dog", "."]  # bilm-tf's layout: specials first
SENTENCES = [["the", "cat", "sat", "on", "the", "mat", "."], ["A", "dog", "?"], ["고양이"]]


def softmax_hdf5(path, rows: int = len(WORDS), seed: int = 0, bias: bool = True):
    """A copy of bilm-tf's test weights with a softmax added as bilm-tf's variables would be dumped:
    softmax/W (V, 16), softmax/b (V,)."""
    shutil.copy(ELMO_FIXTURE / "lm_weights.hdf5", path)
    g = np.random.default_rng(seed)
    W, b = g.normal(size=(rows, 16)).astype(np.float32), g.normal(size=(rows,)).astype(np.float32)
    with h5py.File(path, "a") as f:
        f["softmax/W"] = W
        if bias:
            f["softmax/b"] = b
    return W, b


def nlpl_zip(d, top: str = "", vocab: str = "vocab.txt.gz", softmax: bool = True, words=WORDS, **members):
    """An archive in the NLPL repository's layout: model.hdf5, options.json, vocab.txt(.gz), meta.json (``top``: all
    of them inside one folder); ``members`` adds or replaces (None: leaves out) members."""
    d.mkdir(parents=True, exist_ok=True)
    W = b = None
    if softmax:
        W, b = softmax_hdf5(d / "model.hdf5")
    else:
        shutil.copy(ELMO_FIXTURE / "lm_weights.hdf5", d / "model.hdf5")
    text = "".join(f"{w}\n" for w in words).encode()
    files = {
        "model.hdf5": (d / "model.hdf5").read_bytes(),
        "options.json": (ELMO_FIXTURE / "options.json").read_bytes(),
        vocab: gzip.compress(text) if vocab.endswith(".gz") else text,
        "meta.json": json.dumps({"id": 999, "corpus": [{"description": "a test"}]}).encode(),
    }
    files.update(members)
    path = d / "model.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            if data is not None:
                z.writestr(top + name, data)
    return path, W, b


def manylangs_zip(d, top: str = "zhs.model/", **members):
    """An ELMoForManyLangs model directory (tests/bilm/test_import_elmo.py's) and its archive."""
    src, tok, enc = write_manylangs(d / "src")
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    files.update(members)
    path = d / "manylangs.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            if data is not None:
                z.writestr(top + name, data)
    return path, src


def vectors(bilm):
    return [bilm.encode_rows([[s]])[0][0] for s in SENTENCES]


def assert_same_vectors(a, b):
    for x, y in zip(vectors(a), vectors(b)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("top, vocab", [("", "vocab.txt.gz"), ("193/", "vocab.txt")])
def test_an_nlpl_archive_keeps_its_vocabulary_and_softmax(tmp_path, elmo_bundles, top, vocab):
    archive, W, b = nlpl_zip(tmp_path / "src", top=top, vocab=vocab)
    bundle = import_archive(archive, tmp_path / "bilm")
    bilm = load_bilm(bundle)
    assert isinstance(bilm, CharBiLM) and bilm.has_softmax and bilm.cfg.softmax == "shared"
    assert bilm.words == WORDS and bilm.cfg.vocab_size == len(WORDS)
    assert bilm.word_to_id("cat") == 4 and bilm.word_to_id("zebra") == 2  # <UNK>
    head = bilm.softmax_head("forward")
    assert bilm.softmax_head("backward") is head  # one softmax for both directions, as bilm-tf trains
    np.testing.assert_array_equal(head.weight.numpy(), W)
    np.testing.assert_array_equal(head.bias.numpy(), b)
    assert_same_vectors(bilm, load_bilm(elmo_bundles["tf"]))  # the directory import's vectors
    manifest = json.loads((bundle / "manifest.json").read_text())
    src = manifest["source"]
    assert src["kind"] == "bilm-tf" and src["archive"]["layout"] == "nlpl" and src["meta"]["id"] == 999
    assert sorted(src["files"]) == sorted(f"{archive}/{top}{n}" for n in ("model.hdf5", "options.json", vocab))
    assert manifest["files"]["vocab.txt"] and (bundle / "vocab.txt").read_text() == "".join(f"{w}\n" for w in WORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bilm", "src"]  # nothing unpacked left behind


def test_without_softmax_the_vocabulary_is_kept(tmp_path, elmo_bundles):
    """What NLPL publishes: bilm-tf's dump_weights leaves the softmax out of model.hdf5."""
    archive, _, _ = nlpl_zip(tmp_path / "src", softmax=False)
    bilm = load_bilm(import_archive(archive, tmp_path / "bilm"))
    assert bilm.words == WORDS and not bilm.has_softmax and bilm.cfg.vocab_size == 0
    manifest = json.loads((tmp_path / "bilm" / "manifest.json").read_text())
    assert "softmax" not in manifest["model"]  # written as before: older versions read it
    assert_same_vectors(bilm, load_bilm(elmo_bundles["tf"]))


def test_a_softmax_without_a_vocabulary_is_left_out_and_said(tmp_path):
    archive, _, _ = nlpl_zip(tmp_path / "src", **{"vocab.txt.gz": None})
    r = CliRunner().invoke(main, ["import-elmo", str(archive), "--out", str(tmp_path / "bilm")])
    assert r.exit_code == 0, r.output
    assert "note:" in r.output and "softmax of 10 rows but no vocabulary" in r.output
    bilm = load_bilm(tmp_path / "bilm")
    assert not bilm.has_softmax and bilm.words == []


def test_the_directory_forms_and_the_cli(tmp_path):
    d = tmp_path / "src"
    archive, W, _ = nlpl_zip(d)
    (d / "vocab.txt").write_text("".join(f"{w}\n" for w in WORDS))
    runner = CliRunner()
    r = runner.invoke(main, ["import-elmo", str(archive), "--out", str(tmp_path / "a")])
    assert r.exit_code == 0 and "a vocabulary of 10 words, its softmax" in r.output, r.output
    r = runner.invoke(
        main,
        ["import-elmo", str(ELMO_FIXTURE / "options.json"), str(d / "model.hdf5"), "--vocab", str(d / "vocab.txt")]
        + ["--out", str(tmp_path / "b")],
    )
    assert r.exit_code == 0, r.output
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with zipfile.ZipFile(archive) as z:
        z.extractall(unpacked)
    r = runner.invoke(main, ["import-elmo", str(unpacked), "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    heads = [load_bilm(tmp_path / n).softmax_head("forward").weight for n in "abc"]
    for h in heads:
        np.testing.assert_array_equal(h.numpy(), W)
    args = ["import-elmo", str(archive), "--vocab", str(d / "vocab.txt"), "--out", str(tmp_path / "x")]
    r = runner.invoke(main, args)
    assert r.exit_code == 2 and "--vocab" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("top", ["zhs.model/", ""])
def test_an_elmoformanylangs_archive_equals_its_directory(tmp_path, top):
    archive, src = manylangs_zip(tmp_path, top=top)
    a = load_bilm(import_archive(archive, tmp_path / "from-zip"))
    b = load_bilm(import_manylangs(src, tmp_path / "from-dir"))
    assert_same_vectors(a, b)
    assert not a.has_softmax and a.words == []
    src_record = json.loads((tmp_path / "from-zip" / "manifest.json").read_text())["source"]
    assert src_record["kind"] == "elmoformanylangs" and len(src_record["files"]) == 6


def _corrupt_options(archive):
    """Flip a byte inside the stored options.json (its CRC-32 then fails)."""
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("options.json")
    data = bytearray(archive.read_bytes())
    with open(archive, "rb") as f:
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    data[info.header_offset + 30 + n + m + 5] ^= 0xFF
    archive.write_bytes(bytes(data))


def _rewrite(archive, change):
    """Rewrite an archive member by member through ``change(zip_out, name, data)`` (stored, not deflated)."""
    with zipfile.ZipFile(archive) as z:
        items = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for name, data in items:
            change(z, name, data)


def _as_link(z, name, data):
    if name == "model.hdf5":
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, b"/etc/passwd")
    else:
        z.writestr(name, data)


def _twice(z, name, data):
    z.writestr(name, data)
    if name == "meta.json":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
            z.writestr(name, data)


_OPTIONS = json.loads((ELMO_FIXTURE / "options.json").read_text())


def _tf(tmp, **kw):
    return nlpl_zip(tmp, **kw)[0]


def _bomb(tmp):
    return _tf(tmp, **{"model.hdf5": bytes(40 << 20)})  # 40 MiB of zeros pack into ~40 KB


def _not_a_zip(tmp):
    tmp.mkdir()
    (tmp / "m.zip").write_text("hello")
    return tmp / "m.zip"


def _empty(tmp):
    tmp.mkdir()
    zipfile.ZipFile(tmp / "m.zip", "w").close()
    return tmp / "m.zip"


def _damaged(tmp):
    archive = _tf(tmp)
    _rewrite(archive, lambda z, name, data: z.writestr(name, data))  # stored: the bytes lie in the file as they are
    _corrupt_options(archive)
    return archive


CASES = {
    "not a zip": (_not_a_zip, "neither a zip"),
    "empty": (_empty, "it holds nothing"),
    "no weights": (lambda t: _tf(t, **{"model.hdf5": None}), "no model.hdf5 beside options.json"),
    "no options": (lambda t: _tf(t, **{"options.json": None}), "no options.json beside model.hdf5"),
    "a checkpoint": (
        lambda t: _tf(t, **{"model.hdf5": None, "model.ckpt-10.index": b"x", "checkpoint": b"x"}),
        "holds a TensorFlow checkpoint",
    ),
    "two weights": (
        lambda t: _tf(t, **{"model.hdf5": None, "a.hdf5": b"x", "b.hdf5": b"x"}),
        "which one is the model's",
    ),
    "bad options": (
        lambda t: _tf(t, **{"options.json": json.dumps({**_OPTIONS, "attention": 1}).encode()}),
        "model.zip/options.json: unknown key(s) attention",
    ),
    "weights not HDF5": (lambda t: _tf(t, **{"model.hdf5": b"not hdf5"}), "model.zip/model.hdf5: cannot read as HDF5"),
    "vocabulary too short": (lambda t: _tf(t, words=WORDS[:-1]), "model.zip/vocab.txt.gz: 9 words, but softmax/W"),
    "vocabulary without <UNK>": (lambda t: _tf(t, words=[w if w != "<UNK>" else "unk" for w in WORDS]), "no <UNK>"),
    "vocabulary not gzip": (lambda t: _tf(t, **{"vocab.txt.gz": b"plain"}), "vocab.txt.gz: cannot unpack"),
    "vocabulary not UTF-8": (lambda t: _tf(t, vocab="vocab.txt", **{"vocab.txt": b"<S>\n\xff\n"}), "vocab.txt:2"),
    "a zip bomb": (_bomb, "a zip bomb"),
    "a member out of the archive": (lambda t: _tf(t, **{"../evil.json": b"{}"}), "leaves the archive"),
    "a link": (lambda t: (p := _tf(t), _rewrite(p, _as_link))[0], "model.zip/model.hdf5: a symbolic link"),
    "a member twice": (lambda t: (p := _tf(t), _rewrite(p, _twice))[0], "holds meta.json twice"),
    "a damaged member": (_damaged, "model.zip/options.json: cannot read"),
    "manylangs without encoder": (
        lambda t: manylangs_zip(t, **{"encoder.pkl": None})[0],
        "an ELMoForManyLangs archive without encoder.pkl",
    ),
    "manylangs without word.dic": (lambda t: manylangs_zip(t, **{"word.dic": None})[0], "no word.dic"),
    "manylangs config elsewhere": (
        lambda t: manylangs_zip(t, **{"config.json": b'{"config_path": "../configs/other.json"}'})[0],
        "does not hold",
    ),
    "manylangs sample config": (  # the archives name ELMoForManyLangs' own configs/ file, built in here
        lambda t: manylangs_zip(
            t, **{"config.json": b'{"config_path": "/Users/x/cnn_50_100_512_4096_sample.json"}', "cnn_model.json": None}
        )[0],
        "no weights for token_encoder.convolutions.3.weight",  # the sample's 7 filters, not the model's 3
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_archive_is_one_line(tmp_path, case):
    make, says = CASES[case]
    archive = make(tmp_path / "src")
    r = CliRunner().invoke(main, ["import-elmo", str(archive), "--out", str(tmp_path / "bilm")])
    assert r.exit_code == 2, (r.output, r.exception)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    assert str(archive) in lines[0] and says in lines[0], lines[0]
    assert ".tmp-" not in lines[0]  # the archive's members are named, not the unpacked copies
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no bundle, nothing unpacked left


def test_nothing_is_unpickled(tmp_path, monkeypatch):
    """ELMoForManyLangs' .pkl files are read with torch.load(weights_only=True) only."""
    archive, _ = manylangs_zip(tmp_path)
    calls = []
    real = torch.load

    def spy(*a, **kw):
        calls.append(kw.get("weights_only"))
        return real(*a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    import_archive(archive, tmp_path / "bilm")
    assert calls and all(w is True for w in calls)


# --- the vocabulary and the softmax through a bundle's write and load ----------------------------------------------
def _tiny_state(cfg):
    """Random weights of ``cfg``'s shape."""
    from elmokit.modules.characters import ElmoBytes

    torch.manual_seed(0)
    model = CharBiLM(cfg, ElmoBytes(cfg.max_chars))
    return {k: torch.randn_like(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("softmax", ["shared", "per-direction"])
def test_vocabulary_and_softmax_round_trip(tmp_path, softmax):
    cfg = options_config(ELMO_FIXTURE / "options.json")
    cfg.vocab_size, cfg.softmax = len(WORDS), softmax
    state = _tiny_state(cfg)
    assert ("softmax_backward.weight" in state) == (softmax == "per-direction")
    write_char_bundle(tmp_path / "b", cfg, state, {"kind": "test"}, "test", vocab=WORDS)
    bilm = load_bilm(tmp_path / "b")
    assert bilm.words == WORDS and bilm.cfg == cfg and bilm.has_softmax
    for k, v in bilm.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    back = bilm.softmax_head("backward")
    assert (back is bilm.softmax_head("forward")) == (softmax == "shared")


def test_an_older_manifest_loads_as_no_softmax(elmo_bundles):
    manifest = json.loads((elmo_bundles["tf"] / "manifest.json").read_text())
    assert "vocab_size" not in manifest["model"] and "vocab.txt" not in manifest["files"]
    bilm = load_bilm(elmo_bundles["tf"])
    assert not bilm.has_softmax and bilm.cfg.softmax == "none" and bilm.words == []


def _edit_manifest(bundle, edit):
    m = json.loads((bundle / "manifest.json").read_text())
    edit(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda m: m["model"].update(softmax="both"), "model.softmax must be one of none, shared, per-direction"),
        (lambda m: m["model"].update(vocab_size=0), "model.vocab_size must be 0 with softmax 'none'"),
        (lambda m: m["model"].update(vocab_size=-1), "model.vocab_size must be an integer >= 0"),
        (lambda m: m["model"].update(softmax="none", vocab_size=0), "softmax_forward.weight"),
        (lambda m: m["files"].pop("vocab.txt"), "vocab.txt"),
        (lambda m: m["model"].update(vocab_size=11), "the vocabulary has 10 words, model.vocab_size"),
    ],
)
def test_a_bad_softmax_in_the_manifest_is_one_line(tmp_path, edit, says):
    archive, _, _ = nlpl_zip(tmp_path / "src")
    bundle = import_archive(archive, tmp_path / "bilm")
    _edit_manifest(bundle, edit)
    with pytest.raises(CheckpointError) as e:
        load_bilm(bundle)
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_vocabulary_must_fit_the_softmax_when_written(tmp_path):
    cfg = options_config(ELMO_FIXTURE / "options.json")
    cfg.vocab_size, cfg.softmax = len(WORDS), "shared"
    state = _tiny_state(cfg)
    with pytest.raises(CheckpointError, match="without the vocabulary"):
        write_char_bundle(tmp_path / "b", cfg, state, {}, "w")
    with pytest.raises(CheckpointError, match="has 9 words"):
        write_char_bundle(tmp_path / "b", cfg, state, {}, "w", vocab=WORDS[:-1])
    with pytest.raises(CheckpointError, match="holds a line end"):
        write_char_bundle(tmp_path / "b", cfg, state, {}, "w", vocab=[*WORDS[:-1], "a\nb"])
    assert not (tmp_path / "b").exists()
    plain = CharBiLMConfig(**{**cfg.__dict__, "vocab_size": 0, "softmax": "none"})
    write_char_bundle(tmp_path / "p", plain, {k: v for k, v in state.items() if "softmax" not in k}, {}, "w")
    assert not load_bilm(tmp_path / "p").has_softmax


def test_import_bilm_tf_with_a_vocabulary(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    W, b = softmax_hdf5(d / "w.hdf5")
    (d / "vocab.txt").write_text("".join(f"{w}\n" for w in WORDS) + "!!!MAXTERMID\n")  # skipped, as bilm-tf does
    bilm = load_bilm(import_bilm_tf(ELMO_FIXTURE / "options.json", d / "w.hdf5", tmp_path / "b", vocab=d / "vocab.txt"))
    assert bilm.words == WORDS
    np.testing.assert_array_equal(bilm.softmax_head("backward").bias.numpy(), b)
    softmax_hdf5(d / "w2.hdf5", bias=False)
    with pytest.raises(CheckpointError, match="no dataset softmax/b"):
        import_bilm_tf(ELMO_FIXTURE / "options.json", d / "w2.hdf5", tmp_path / "c", vocab=d / "vocab.txt")
