import numpy as np

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
