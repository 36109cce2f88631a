import pytest
import torch

from elmokit.modules.char_cnn import CharCNN


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
