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
