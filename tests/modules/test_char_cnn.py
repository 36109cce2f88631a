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
