import pytest
import torch

from elmokit.modules.scalar_mix import ScalarMix


def test_weights_sum_to_one_and_mix():
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.gamma.fill_(2.0)
    s = mix.normalized_weights()
    assert float(s.detach().sum()) == pytest.approx(1.0)
    layers = torch.randn(2, 3, 4, 5)  # (batch, layers, words, dim)
    out = mix(layers)
    torch.testing.assert_close(out, 2.0 * (s[None, :, None, None] * layers).sum(1))


def test_initialised_equal_and_l2_as_documented():
    mix = ScalarMix(4, l2=0.001)
    torch.testing.assert_close(mix.normalized_weights(), torch.full((4,), 0.25))
    assert float(mix.penalty()) == 0.0
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([1.0, 2.0, 0.0, -1.0]))
    assert float(mix.penalty()) == pytest.approx(0.001 * (1 + 4 + 0 + 1))


def test_layer_norm_ignores_padding():
    mix = ScalarMix(2, layer_norm=True)
    layers = torch.randn(1, 2, 3, 4)
    mask = torch.tensor([[True, True, False]])
    padded = layers.clone()
    padded[:, :, 2] = 1000.0  # garbage in the padding
    torch.testing.assert_close(mix(layers, mask)[:, :2], mix(padded, mask)[:, :2])


def test_layer_norm_statistics_are_the_batchs_unmasked_words():
    """AllenNLP's masked layer norm: per layer, one mean and variance over every unmasked word of the batch."""
    torch.manual_seed(0)
    mix = ScalarMix(3, layer_norm=True)
    layers = torch.randn(2, 3, 4, 5) * 3 + 1
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    got = mix(layers, mask)
    want = 0
    for k in range(3):
        kept = layers[:, k][mask]  # (unmasked words, 5)
        want = want + (layers[:, k] - kept.mean()) / torch.sqrt(kept.var(unbiased=False) + 1e-12) / 3
    torch.testing.assert_close(got[mask], want[mask])
