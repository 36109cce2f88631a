"""The contract every embedder passes, over every kind of biLM (elmokit's own, and the original ELMo imported from
bilm-tf with and without skip connections): frozen and in eval mode, batch-order and padding invariance, and the
same output after the bundle is copied elsewhere and loaded again."""

import shutil

import numpy as np
import pytest
import torch

from elmokit.bilm.elmo import ElmoLayer
from elmokit.embed import Embedder

SENTENCES = [
    ["The", "old", "farmer", "sees", "many", "cats", "."],
    ["Birds", "sing", "."],
    ["고양이가", "책을", "본다", "."],
    ["A", "quiet", "machine", "waits", "near", "the", "distant", "river", "today", "."],
    ["Hello"],
]


class EmbedderAPI:
    name = "Embedder"

    def __init__(self, path):
        self.e = Embedder(path, batch_tokens=10_000)

    def modules(self):
        return [self.e.bilm]

    def run(self, sents):  # -> list of (layers, words, 2D)
        return self.e.embed_tokens(sents)


class SmallBatches(EmbedderAPI):
    name = "Embedder (tiny batches)"

    def __init__(self, path):
        self.e = Embedder(path, batch_tokens=8)


class Layer:
    name = "ElmoLayer"

    def __init__(self, path):
        torch.manual_seed(0)
        self.m = ElmoLayer(path, num_mixes=2, dropout=0.0)
        self.m.train()  # a downstream model in training mode must not put the biLM in training mode

    def modules(self):
        return [self.m.bilm]

    def run(self, sents):
        reps, mask = self.m(sents)
        return [reps[0][i, : len(s)].detach().numpy()[None] for i, s in enumerate(sents)]


@pytest.fixture(params=[EmbedderAPI, SmallBatches, Layer], ids=lambda c: c.name)
def make(request):
    return request.param


@pytest.fixture(params=["elmokit", "elmo-tf", "elmo-skip"])
def bundle(request, tiny_pair, elmo_bundles):
    return {"elmokit": tiny_pair["bundle"], "elmo-tf": elmo_bundles["tf"], "elmo-skip": elmo_bundles["skip"]}[
        request.param
    ]


def test_frozen_and_eval(make, bundle):
    emb = make(bundle)
    for m in emb.modules():
        assert not any(x.training for x in m.modules())
        assert all(not p.requires_grad for p in m.parameters())


def test_batch_order_and_padding_invariance(make, bundle):
    emb = make(bundle)
    together = emb.run(SENTENCES)
    alone = [emb.run([s])[0] for s in SENTENCES]
    shuffled = emb.run(SENTENCES[::-1])[::-1]
    for a, b, c, s in zip(together, alone, shuffled, SENTENCES):
        assert a.shape[-2] == len(s)
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        np.testing.assert_allclose(a, c, atol=1e-5, rtol=0)


def test_same_output_after_save_and_load(make, bundle, tmp_path):
    copy = tmp_path / "copied-bilm"
    shutil.copytree(bundle, copy)
    a, b = make(bundle).run(SENTENCES), make(copy).run(SENTENCES)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
