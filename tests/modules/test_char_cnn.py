import copy

import pytest
import torch
from torch.nn import functional as F

from elmokit.modules.char_cnn import WORDS_PER_CHUNK, CharCNN


def test_shapes_word_embedding_and_max_over_positions():
    torch.manual_seed(0)
    enc = CharCNN(20, 3, [(1, 4), (3, 5)], num_highway=2, output_dim=6, word_vocab=7, word_dim=2)
    chars = torch.randint(0, 20, (5, 10))
    out = enc(chars, torch.randint(0, 7, (5,)))
    assert out.shape == (5, 6) and enc.num_filters == 9
    with pytest.raises(ValueError, match="pass the word ids"):
        enc(chars)
    # a filter's output is its maximum over positions: permuting whole width-1 columns changes nothing for it
    plain = CharCNN(20, 3, [(1, 4)], num_highway=0, output_dim=4)
    torch.testing.assert_close(plain(chars), plain(chars[:, torch.randperm(10)]))


def test_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        CharCNN(5, 2, [(1, 2)], 0, 2, activation="gelu")


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_filters_equal_pytorch_conv1d(activation, monkeypatch):
    """The products over character windows are the convolutions (chunked: a chunk boundary inside the batch)."""
    monkeypatch.setattr("elmokit.modules.char_cnn.WORDS_PER_CHUNK", 3)
    torch.manual_seed(1)
    enc = CharCNN(30, 4, [(1, 3), (2, 5), (4, 6)], num_highway=0, output_dim=5, activation=activation)
    chars = torch.randint(0, 30, (7, 12))
    emb = enc.char_embedding(chars).transpose(1, 2)  # (7, 4, 12)
    act = torch.relu if activation == "relu" else torch.tanh
    want = torch.cat([act(conv(emb).amax(-1)) for conv in enc.convolutions], -1)
    torch.testing.assert_close(enc(chars), enc.projection(want), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_padding_windows_computed_once_give_the_same_vectors(activation, monkeypatch):
    """With ``pad_id``, windows wholly in a word's padding are one product, each word's own windows end at its end,
    and the words are sorted by length into chunks: the same vectors as every window of every word (``conv1d``),
    for words from no padding to padding shorter and longer than each filter, in any batch."""
    monkeypatch.setattr("elmokit.modules.char_cnn.WORDS_PER_CHUNK", 3)
    torch.manual_seed(2)
    pad, C = 29, 12
    enc = CharCNN(30, 4, [(1, 3), (2, 5), (4, 6)], num_highway=1, output_dim=5, activation=activation)
    lengths = [12, 1, 7, 9, 11, 3, 10, 2, 8, 12, 5]  # 12: no padding; 9-11: padding narrower than the 4-wide filter
    chars = torch.randint(0, pad, (len(lengths), C))
    for i, n in enumerate(lengths):
        chars[i, n:] = pad
    emb = enc.char_embedding(chars).transpose(1, 2)  # (N, 4, C)
    act = torch.relu if activation == "relu" else torch.tanh
    pooled = torch.cat([act(conv(emb).amax(-1)) for conv in enc.convolutions], -1)  # (N, F)
    nonlinear, gate = enc.highways[0](pooled).chunk(2, -1)
    gate = torch.sigmoid(gate)
    want = enc.projection(gate * pooled + (1 - gate) * torch.relu(nonlinear))
    got = enc(chars, pad_id=pad)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc(chars), want, atol=1e-5, rtol=1e-5)
    perm = torch.randperm(len(lengths))
    torch.testing.assert_close(enc(chars[perm], pad_id=pad), got[perm], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(enc(chars[:2], pad_id=pad), got[:2], atol=1e-6, rtol=1e-6)


# --- training: the fast path's gradients, the inference path kept, bilm-tf's initialisation ---------------------
def reference(enc: CharCNN, chars: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder's equations in plain PyTorch: ``conv1d`` at every position, max, activation, highways (elmokit's
    form), the word embedding in front, the projection. ``(N, C)`` ids → ``(N, output_dim)``."""
    emb = enc.char_embedding(chars).transpose(1, 2)  # (N, d, C)
    act = torch.relu if enc.activation == "relu" else torch.tanh
    h = torch.cat([act(F.conv1d(emb, c.weight, c.bias).amax(-1)) for c in enc.convolutions], -1)  # (N, F)
    for layer in enc.highways:
        nonlinear, gate = layer(h).chunk(2, -1)  # (N, 2F) -> two (N, F)
        gate = torch.sigmoid(gate)
        h = gate * h + (1 - gate) * torch.relu(nonlinear)
    if enc.word_embedding is not None:
        h = torch.cat([enc.word_embedding(words), h], -1)  # (N, word_dim + F)
    return enc.projection(h)


def batch_of_lengths(N: int, C: int, pad: int, seed: int) -> torch.Tensor:
    """``(N, C)`` random ids below ``pad``, word ``i`` padded with ``pad`` after ``i % (C + 1)`` characters (every
    length from 0 to ``C``), rows shuffled."""
    g = torch.Generator().manual_seed(seed)
    chars = torch.randint(0, pad, (N, C), generator=g)
    lengths = torch.arange(N) % (C + 1)
    chars[torch.arange(C) >= lengths[:, None]] = pad
    return chars[torch.randperm(N, generator=g)]


def grads(enc: CharCNN, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    named = list(enc.named_parameters())
    got = torch.autograd.grad((out * weights).sum(), [p for _, p in named], allow_unused=True)
    return {k: g for (k, _), g in zip(named, got)}


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("with_pad", [True, False])
@pytest.mark.parametrize("word_vocab", [0, 9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_gradients_equal_the_conv1d_reference(activation, with_pad, word_vocab, dtype):
    """Grad mode: every parameter's gradient through the chunked, length-sorted windows and the once-computed
    padding window equals ``conv1d``'s over every position in float64 (within 1e-5 relative), for words of 0 to
    ``C`` characters in one batch of more than two chunks. float32 (where inference multiplies through oneDNN,
    which has no autograd) is held to the same 1e-5 of the float64 gradients, as a norm over each parameter."""
    N, C, pad = 2 * WORDS_PER_CHUNK + 37, 13, 30
    torch.manual_seed(3)
    enc = CharCNN(31, 4, [(1, 3), (2, 5), (4, 6), (6, 2)], 2, 7, activation, word_vocab, 3 if word_vocab else 0)
    enc = enc.to(dtype)
    exact = copy.deepcopy(enc).double()
    chars = batch_of_lengths(N, C, pad, seed=5)
    words = torch.randint(0, word_vocab, (N,)) if word_vocab else None
    weights = torch.randn(N, 7, dtype=torch.float64)
    out = enc(chars, words, pad if with_pad else None)
    want = reference(exact, chars, words)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    got, ref = grads(enc, out, weights.to(dtype)), grads(exact, want, weights)
    assert set(got) == set(ref) and (word_vocab > 0) == ("word_embedding.weight" in got)
    for k in ref:
        assert ref[k].abs().sum() > 0, k  # the batch reaches every parameter
        assert got[k] is not None and (got[k].double() - ref[k]).norm() <= 1e-5 * ref[k].norm(), k
        if dtype == torch.float64:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-5 * float(ref[k].abs().max()), msg=k)
    if with_pad:  # the pad character's row gets its gradient through the windows in the padding
        assert got["char_embedding.weight"][pad].abs().sum() > 0


def test_gradients_in_float32_and_through_backward(monkeypatch):
    """float32 through ``.backward()`` into ``.grad``, chunks of 5 words: the same gradients as the reference."""
    monkeypatch.setattr("elmokit.modules.char_cnn.WORDS_PER_CHUNK", 5)
    torch.manual_seed(6)
    enc = CharCNN(31, 4, [(1, 3), (3, 8), (5, 4)], 1, 6)
    chars = batch_of_lengths(23, 11, 30, seed=7)
    weights = torch.randn(23, 6)
    (enc(chars, pad_id=30) * weights).sum().backward()
    got = {k: p.grad.clone() for k, p in enc.named_parameters()}
    enc.zero_grad()
    (reference(enc, chars) * weights).sum().backward()
    for k, p in enc.named_parameters():
        assert (got[k] - p.grad).norm() <= 1e-5 * p.grad.norm(), k


def test_inference_keeps_the_onednn_path(monkeypatch):
    """No grad mode, or a frozen character CNN: the filters' products go through ``matmul.linear`` (oneDNN where
    present), and with no gradient at all the highways' and projection's too; grad mode with the CNN trainable goes
    through ``torch.mm`` and ``nn.Linear`` instead, to within float32 rounding of them."""
    import elmokit.modules.char_cnn as char_cnn

    calls = []
    real = char_cnn.linear
    monkeypatch.setattr(char_cnn, "linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(8)
    enc = CharCNN(31, 4, [(1, 3), (3, 8), (5, 4)], 1, 6)
    chars = batch_of_lengths(40, 11, 30, seed=9)
    with torch.no_grad():
        inference = enc(chars, pad_id=30)
    assert len(calls) == 3 + 3 + 1 + 1  # a product per filter (one chunk), the padding window per filter, the
    #                                     highway, the projection
    trained = enc(chars, pad_id=30)
    assert len(calls) == 8 and trained.requires_grad
    torch.testing.assert_close(trained, inference, atol=1e-5, rtol=1e-5)
    for p in [enc.char_embedding.weight, *enc.convolutions.parameters()]:
        p.requires_grad_(False)
    frozen = enc(chars, pad_id=30)  # grad mode, but only the highways and projection learn
    assert len(calls) == 14 and frozen.requires_grad
    torch.testing.assert_close(frozen.detach(), inference, atol=1e-6, rtol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("n", [2, 5, 9, 33, 70])
def test_a_word_gets_the_same_vector_in_every_row(n):
    """Inference gives a word the same vector, to the bit, whatever its row and the size of its batch (of two
    words or more: a one-row product takes another kernel): MKL's products differ in the last bit by row on some
    CPUs (AVX-512 AMD EPYC); the encoder's are oneDNN's."""
    torch.manual_seed(3)
    enc = CharCNN(31, 4, [(1, 3), (3, 8), (5, 4)], 2, 6)
    word = torch.randint(0, 30, (1, 11), generator=torch.Generator().manual_seed(4))  # (1, 11)
    word[0, 7:] = 30  # 7 characters, then padding
    pair = enc(word.repeat(2, 1), pad_id=30)  # (2, 6)
    many = enc(word.repeat(n, 1), pad_id=30)  # (n, 6): the word in every row
    mixed = enc(torch.cat([batch_of_lengths(n - 1, 11, 30, seed=5), word]), pad_id=30)  # (n, 6): the word last
    assert torch.equal(many, pair[:1].expand(n, -1))
    assert torch.equal(mixed[-1], pair[0])


@torch.no_grad()
def test_reset_parameters_follows_bilm_tf():
    """bilm-tf's initialisers in elmokit's layout: uniform(-1, 1) characters; relu filters uniform(-0.05, 0.05),
    tanh filters normal(0, sqrt(1 / (w d))); highway weights normal(0, sqrt(1 / F)), nonlinear bias 0 and gate bias
    +2 (bilm-tf's carry bias -2); projection normal(0, sqrt(1 / inputs)) or the identity, biases 0; the same
    generator seed gives the same parameters."""
    filters = [(1, 64), (2, 128), (3, 256), (4, 576)]  # F = 1024
    for activation in ("relu", "tanh"):
        enc = CharCNN(262, 16, filters, 2, 256, activation)
        enc.reset_parameters(torch.Generator().manual_seed(0))
        e = enc.char_embedding.weight
        assert e.abs().max() <= 1.0 and abs(float(e.mean())) < 0.05 and abs(float(e.std()) - 3**-0.5) < 0.02
        for conv in enc.convolutions:
            count, d, w = conv.weight.shape
            if activation == "relu":
                assert conv.weight.abs().max() <= 0.05 and conv.weight.abs().max() > 0.049
                assert abs(float(conv.weight.std()) - 0.05 / 3**0.5) < 0.003
            else:
                assert abs(float(conv.weight.std()) / (1 / (w * d)) ** 0.5 - 1) < 0.05
            assert abs(float(conv.weight.mean())) < 0.01 and not conv.bias.any()
        for layer in enc.highways:
            assert abs(float(layer.weight.std()) * 1024**0.5 - 1) < 0.01 and abs(float(layer.weight.mean())) < 0.001
            assert not layer.bias[:1024].any() and (layer.bias[1024:] == 2.0).all()
        p = enc.projection.weight
        assert abs(float(p.std()) * 1024**0.5 - 1) < 0.02 and not enc.projection.bias.any()
    again = CharCNN(262, 16, filters, 2, 256, "tanh")
    again.reset_parameters(torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(enc.parameters(), again.parameters()))
    again.reset_parameters(torch.Generator().manual_seed(1))
    assert not torch.equal(enc.char_embedding.weight, again.char_embedding.weight)
    # F == projection width and no word embedding: bilm-tf has no projection, so it starts as the identity
    square = CharCNN(10, 4, [(1, 3), (2, 5)], 1, 8)
    square.reset_parameters()
    assert torch.equal(square.projection.weight, torch.eye(8)) and not square.projection.bias.any()
    words = CharCNN(10, 4, [(1, 300), (2, 500)], 0, 800, word_vocab=50, word_dim=200)
    words.reset_parameters(torch.Generator().manual_seed(2))
    assert words.word_embedding.weight.abs().max() <= 1.0
    assert abs(float(words.projection.weight.std()) * 1000**0.5 - 1) < 0.02  # sqrt(1 / (F + word_dim))
