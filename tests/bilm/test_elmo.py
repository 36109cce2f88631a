"""ElmoLayer: a frozen biLM and learnable scalar mixes as a torch module."""

from elmokit.bilm.elmo import ElmoLayer
from elmokit.core.plots import plot_mix_weights


def test_gradients_reach_the_mix_not_the_bilm(tiny_pair, tmp_path):
    layer = ElmoLayer(tiny_pair["bundle"], num_mixes=2, dropout=0.0)
    reps, mask = layer([["The", "cat", "."], ["Birds"]])
    loss = (reps[0] ** 2).sum() + reps[1].sum() + layer.penalty()
    loss.backward()
    for mix in layer.mixes:
        assert mix.weights.grad is not None and mix.gamma.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in layer.bilm.parameters())
    assert plot_mix_weights(list(layer.mixes), tmp_path / "mix.png").stat().st_size > 1000


def test_for_layers_mixes_precomputed_layers_and_needs_them():
    """Without a biLM (as the downstream encoder uses it) the layer mixes the layers it is given, and says so when
    given sentences instead."""
    import pytest
    import torch

    from elmokit.modules.scalar_mix import ScalarMix

    layer = ElmoLayer.for_layers(3, 4, num_mixes=1, dropout=0.0)
    layers, mask = torch.randn(2, 3, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    (mixed,), _ = layer(layers=layers, mask=mask)
    torch.testing.assert_close(mixed, ScalarMix(3)(layers, mask))
    assert layer.output_dim == 8 and layer.bilm is None
    with pytest.raises(ValueError, match="pass layers"):
        layer([["a", "b"]])
    with pytest.raises(ValueError, match="num_layers and dim"):
        ElmoLayer(None)
