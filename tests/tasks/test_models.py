import numpy as np
import pytest
import torch

from elmokit.embed import Embedder, EmbeddingsFile
from elmokit.embed.writer import write_hdf5
from elmokit.modules.crf import allowed_transitions
from elmokit.tasks.models import Batch, Classifier, Encoder, Tagger, WordCharCNN

SENTS = [["The", "old", "farmer", "sees", "cats", "."], ["Birds", "sing", "."], ["A", "dog", "waits", "today", "."]]


def batch_from_arrays(arrays):
    """(batch, layers, words, 2D) and mask from per-sentence (layers, words, 2D) arrays."""
    W = max(a.shape[1] for a in arrays)
    out = torch.zeros(len(arrays), arrays[0].shape[0], W, arrays[0].shape[2])
    mask = torch.zeros(len(arrays), W, dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[1]] = torch.from_numpy(np.asarray(a, dtype=np.float32))
        mask[i, : a.shape[1]] = True
    return out, mask


@pytest.mark.parametrize("crf", [True, False])
def test_tagger_fits_a_toy_task(crf):
    torch.manual_seed(0)
    tags = ["O", "B-X", "I-X"]
    layers = torch.randn(4, 3, 6, 8)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    gold = torch.tensor([[0, 1, 2, 0, 1, 2]] * 4)
    model = Tagger(
        3, Encoder(3, 8, hidden=16, dropout=0.0), crf=crf, constraints=allowed_transitions(tags, "bio") if crf else None
    )
    batch = Batch(mask, layers, targets=gold)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = float(model(batch))
    for _ in range(60):
        opt.zero_grad()
        model(batch).backward()
        opt.step()
    assert float(model(batch)) < first / 5
    paths = model.decode(batch)
    assert paths[0] == gold[0].tolist() and len(paths[1]) == 4


@pytest.mark.parametrize("pooling", ["max", "mean", "attention", "max_mean"])
def test_classifier_shapes_and_empty_sentence(pooling):
    model = Classifier(2, Encoder(3, 8, hidden=4, dropout=0.0), pooling=pooling)
    layers = torch.randn(3, 3, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
    logits = model.scores(Batch(mask, layers))
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    model(Batch(mask, layers, targets=torch.tensor([0, 1, 1]))).backward()
    assert model.encoder.mixes()["input"].weights.grad is not None


def test_max_mean_pooling_is_max_and_mean_side_by_side():
    torch.manual_seed(0)
    enc = Encoder(3, 8, hidden=4, dropout=0.0)
    both, mx, mn = (Classifier(2, enc, pooling=p) for p in ("max_mean", "max", "mean"))
    with torch.no_grad():  # the max_mean head's two halves copied into the max and mean heads
        mx.output.weight.copy_(both.output.weight[:, :8])
        mn.output.weight.copy_(both.output.weight[:, 8:])
        mx.output.bias.copy_(both.output.bias)
        mn.output.bias.zero_()
    layers = torch.randn(2, 3, 4, 8)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    b = Batch(mask, layers)
    torch.testing.assert_close(both.scores(b), mx.scores(b) + mn.scores(b))


def test_elmo_at_the_output_too():
    """elmo_output: a second mix of its own joined to the BiLSTM's output; both learn, both are penalised."""
    torch.manual_seed(0)
    enc = Encoder(3, 8, hidden=4, dropout=0.0, elmo_output=True)
    assert enc.output_dim == 2 * 4 + 8 and list(enc.mixes()) == ["input", "output"]
    layers, mask = torch.randn(2, 3, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    out = enc(Batch(mask, layers))
    assert out.shape == (2, 5, 16)
    mix_in, mix_out = enc.mixes()["input"], enc.mixes()["output"]
    torch.testing.assert_close(out[..., 8:], mix_out(layers, mask))  # the output mix, untouched by the LSTM
    with torch.no_grad():
        mix_in.weights.copy_(torch.tensor([1.0, 0.0, 0.0]))
        mix_out.weights.copy_(torch.tensor([0.0, 2.0, 0.0]))
    assert float(enc.penalty()) == pytest.approx(0.001 * (1.0 + 4.0))
    model = Tagger(3, enc, crf=True)
    model(Batch(mask, layers, targets=torch.zeros(2, 5, dtype=torch.long))).backward()
    assert mix_in.weights.grad.abs().sum() > 0 and mix_out.weights.grad.abs().sum() > 0
    assert Encoder(3, 8, hidden=4, use_elmo=False, vocab_size=5, word_dim=2, elmo_output=True).mixes() == {}


def test_without_elmo_uses_word_embeddings():
    model = Tagger(3, Encoder(3, 8, hidden=4, use_elmo=False, vocab_size=10, word_dim=5), crf=False)
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert model.scores(Batch(mask, word_ids=torch.randint(1, 10, (2, 4)))).shape == (2, 4, 3)
    assert model.encoder.elmo is None and float(model.encoder.penalty()) == 0.0


def test_char_cnn_ignores_padding():
    torch.manual_seed(0)
    cnn = WordCharCNN(10, dim=4, filters=6, width=3)
    chars = torch.tensor([[[2, 3, 4, 0, 0], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]]])  # (1, 3 words, 5 chars)
    out = cnn(chars)
    assert out.shape == (1, 3, 6)
    wider = torch.cat([chars, torch.zeros(1, 3, 4, dtype=torch.long)], -1)  # more padding changes nothing
    torch.testing.assert_close(cnn(wider), out)
    assert torch.equal(out[0, 2], torch.zeros(6))  # a padding word is zeros, not -inf


def test_cached_features_equal_on_the_fly(tiny_pair, tmp_path):
    """Features read back from an HDF5 dump give the tagger exactly what the frozen biLM gives on the fly."""
    emb = Embedder(tiny_pair["bundle"])
    p = tmp_path / "s.txt"
    p.write_text("\n".join(" ".join(s) for s in SENTS) + "\n", encoding="utf-8")
    out = write_hdf5(emb, p, tmp_path / "s.hdf5", progress=False)
    with EmbeddingsFile(out) as f:
        cached, mask_c = batch_from_arrays([f[i] for i in range(len(SENTS))])
    live, mask_l = emb.bilm(SENTS)
    assert torch.equal(mask_c, mask_l)
    torch.manual_seed(0)
    model = Tagger(5, Encoder(emb.num_layers, emb.dim, hidden=8, dropout=0.0))
    gold = torch.zeros(3, 6, dtype=torch.long)
    a, b = Batch(mask_c, cached, targets=gold), Batch(mask_l, live, targets=gold)
    torch.testing.assert_close(model(a), model(b), atol=1e-6, rtol=0)
    assert model.decode(a) == model.decode(b)


def test_task_models_of_earlier_elmokit_load_their_mixes():
    """Before the encoder used ElmoLayer its mixes were saved as ``mix.*`` and ``mix_out.*``; such weights load
    into ``elmo.mixes.0`` and ``elmo.mixes.1`` with strict key checking."""
    torch.manual_seed(0)
    enc = Encoder(3, 8, hidden=4, dropout=0.0, elmo_output=True)
    model = Tagger(3, enc, crf=True)
    old = {
        k.replace("encoder.elmo.mixes.0.", "encoder.mix.").replace("encoder.elmo.mixes.1.", "encoder.mix_out."): v
        for k, v in model.state_dict().items()
    }
    assert "encoder.mix.weights" in old and "encoder.mix_out.gamma" in old
    old["encoder.mix_out.weights"] = torch.tensor([0.5, -1.0, 2.0])
    fresh = Tagger(3, Encoder(3, 8, hidden=4, dropout=0.0, elmo_output=True), crf=True)
    fresh.load_state_dict(old, strict=True)
    torch.testing.assert_close(fresh.encoder.mixes()["output"].weights.detach(), torch.tensor([0.5, -1.0, 2.0]))
