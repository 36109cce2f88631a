import numpy as np
import pytest

from elmokit.embed import Embedder
from elmokit.tasks.features import CachedFeatures, LiveFeatures, build_cache

SENTS = [["The", "old", "farmer", "sees", "cats", "."], [], ["Birds", "sing", "."]]


def test_cache_equals_the_embedder_and_is_reused(tiny_pair, tmp_path):
    emb = Embedder(tiny_pair["bundle"])
    path = build_cache(emb, SENTS, tmp_path, "s", "float32", progress=False)
    assert not list(tmp_path.glob("*.partial*"))
    feats = CachedFeatures(path)
    for i, ref in enumerate(emb.embed_tokens(SENTS)):
        np.testing.assert_array_equal(feats.get(i), ref)
    padded = feats.layers([0, 1, 2], SENTS, 6)  # (batch, layers, words, 2D)
    live = LiveFeatures(emb.bilm).layers([0, 1, 2], SENTS, 6)
    np.testing.assert_allclose(padded.numpy(), live.numpy(), atol=1e-5)
    feats.close()
    mtime = path.stat().st_mtime_ns
    assert build_cache(emb, SENTS, tmp_path, "s", "float32", progress=False) == path
    assert path.stat().st_mtime_ns == mtime  # the same words and biLM: not rebuilt
    other = build_cache(emb, SENTS[:2], tmp_path, "s", "float32", progress=False)
    assert other != path  # other words: another file, never a stale one


def test_a_full_disk_while_caching_is_one_error_and_leaves_nothing(tiny_pair, tmp_path, monkeypatch):
    """The disk fills up while the cache is written: one DiskError naming the file, no file under the final name
    and no partial left; with space again the same call writes a cache equal to the embedder."""
    import pytest

    import elmokit.embed.hdf5_safe as H
    from elmokit.embed.hdf5_safe import DiskError

    emb = Embedder(tiny_pair["bundle"])
    real_init = H.SafeFile.__init__

    def init(self, path, mode):
        real_init(self, path, mode)
        real = self.f

        class Full:
            def __getattr__(self, name):
                return getattr(real, name)

            def write(self, b):
                raise OSError(28, "No space left on device")

        self.f = Full()

    monkeypatch.setattr(H.SafeFile, "__init__", init)
    with pytest.raises(DiskError, match="cannot write the biLM feature cache \\(the disk is full\\); nothing was kept"):
        build_cache(emb, SENTS, tmp_path, "s", "float32", progress=False)
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    path = build_cache(emb, SENTS, tmp_path, "s", "float32", progress=False)
    feats = CachedFeatures(path)
    for i, ref in enumerate(emb.embed_tokens(SENTS)):
        np.testing.assert_array_equal(feats.get(i), ref)
    feats.close()


# --- issue 34, case 17: features files (data.*_hdf5) with HDF5 links are refused before anything is read -------------
LINK_TEXT = ["The old farmer sees cats .", "Birds sing .", "Some machines wait today ."]


@pytest.fixture(scope="module")
def embed_files(tiny_pair, tmp_path_factory):
    """``elmokit embed --layers all`` files of LINK_TEXT in both layouts, and the biLM's sha256."""
    from elmokit.embed.writer import write_hdf5

    d = tmp_path_factory.mktemp("linked")
    text = d / "in.txt"
    text.write_text("\n".join(LINK_TEXT) + "\n", encoding="utf-8")
    emb = Embedder(tiny_pair["bundle"])
    files = {
        layout: write_hdf5(emb, text, d / f"{layout}.hdf5", layout=layout, progress=False)
        for layout in ("allennlp", "packed")
    }
    return files, emb.bilm.sha256


def _items():
    from elmokit.tasks.items import Item

    return [Item(s.split(), [], n + 1) for n, s in enumerate(LINK_TEXT)]


def _link(f, layout, how, other):
    """Put a link (or data stored elsewhere) into the open file ``f``; returns the object path the error names."""
    import h5py

    name = "1" if layout == "allennlp" else "vectors"  # a sentence, or the packed layout's one array
    if how == "soft_dangling":
        f["extra"] = h5py.SoftLink("/nowhere")
        return "/extra"
    if how == "soft_in_a_group":
        f.create_group("g")["again"] = h5py.SoftLink(f"/{name}")
        return "/g/again"
    if how == "external_dangling":
        del f[name]
        f[name] = h5py.ExternalLink(str(other.with_name("missing.hdf5")), f"/{name}")
        return f"/{name}"
    if how == "external_valid":  # the same vectors, read silently from another file
        del f[name]
        f[name] = h5py.ExternalLink(str(other), f"/{name}")
        return f"/{name}"
    if how == "virtual":
        with h5py.File(other, "r") as o:
            shape, dtype = o[name].shape, o[name].dtype
        del f[name]
        layout_ = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout_[...] = h5py.VirtualSource(str(other), name, shape=shape)
        f.create_virtual_dataset(name, layout_)
        return f"/{name}"
    if how == "external_storage":
        f.create_dataset("raw", (4,), "f4", external=[(str(other.with_name("raw.bin")), 0, 16)])
        return "/raw"
    raise AssertionError(how)


HOWS = ["soft_dangling", "soft_in_a_group", "external_dangling", "external_valid", "virtual", "external_storage"]


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
@pytest.mark.parametrize("how", HOWS)
def test_a_features_file_with_a_link_is_refused_before_reading(embed_files, tmp_path, layout, how):
    """Valid links were followed silently into another file, dangling ones crashed on the first read."""
    import shutil

    import h5py

    from elmokit.core.errors import ElmokitError
    from elmokit.tasks.features import EmbedFileFeatures

    files, sha = embed_files
    other = tmp_path / "other.hdf5"
    shutil.copy(files[layout], other)
    path = tmp_path / "linked.hdf5"
    shutil.copy(files[layout], path)
    with h5py.File(path, "a") as f:
        where = _link(f, layout, how, other)
    with pytest.raises(ElmokitError) as e:
        EmbedFileFeatures(path, sha, _items())
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: {where} is ") and "must hold its data itself" in msg


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
def test_a_features_file_without_links_is_read(embed_files, layout):
    from elmokit.tasks.features import EmbedFileFeatures

    files, sha = embed_files
    feats = EmbedFileFeatures(files[layout], sha, _items())
    assert [feats.get(i).shape[1] for i in range(3)] == [6, 3, 5]
    feats.close()


def test_train_tagger_refuses_a_linked_features_file_in_one_line(embed_files, tiny_pair, tmp_path):
    import shutil

    import h5py
    from click.testing import CliRunner

    from elmokit.cli import main
    from elmokit.demo import write_tagged

    files, _ = embed_files
    path = tmp_path / "train.hdf5"
    shutil.copy(files["allennlp"], path)
    with h5py.File(path, "a") as f:
        del f["0"]
        f["0"] = h5py.ExternalLink(str(tmp_path / "gone.hdf5"), "/0")
    train, dev = (write_tagged(tmp_path / f"{s}.conllu", 8, seed, "conllu") for s, seed in (("t", 1), ("d", 2)))
    (tmp_path / "c.yaml").write_text("task: tagger\n", encoding="utf-8")
    res = CliRunner().invoke(
        main,
        [
            "train-tagger",
            str(tmp_path / "c.yaml"),
            "data.format=conllu",
            f"data.train={train}",
            f"data.dev={dev}",
            f"data.train_hdf5={path}",
            f"model.bilm={tiny_pair['bundle']}",
            "train.fit_lines=0",
            "train.threads=1",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: /0 is an HDF5 external link (to "), res.output
