"""ElmoLayer: a frozen biLM and learnable scalar mixes as a torch module."""

from elmokit.elmo import ElmoLayer
from elmokit.plots import plot_mix_weights


def test_gradients_reach_the_mix_not_the_bilm(tiny_pair, tmp_path):
    layer = ElmoLayer(tiny_pair["bundle"], num_mixes=2, dropout=0.0)
    reps, mask = layer([["The", "cat", "."], ["Birds"]])
    loss = (reps[0] ** 2).sum() + reps[1].sum() + layer.penalty()
    loss.backward()
    for mix in layer.mixes:
        assert mix.weights.grad is not None and mix.gamma.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in layer.bilm.parameters())
    assert plot_mix_weights(list(layer.mixes), tmp_path / "mix.png").stat().st_size > 1000
