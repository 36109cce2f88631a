"""The learnable scalar mix of biLM layers (Peters et al. 2018, eq. 1), as AllenNLP's ``ScalarMix``:
``gamma * sum_k softmax(w)_k * h_k``, optionally with a masked layer norm of each layer first (its statistics over
the batch's unmasked words, so with it a word's mixed vector depends on its batch, as in AllenNLP)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ScalarMix(nn.Module):
    """Mix ``num_layers`` tensors of the same shape with softmax-normalised weights and a scale.

    Args:
        num_layers: how many layers are mixed.
        layer_norm: normalise each layer (over the batch's unmasked words and the feature axis, as AllenNLP's
            ``ScalarMix``) before mixing.
        l2: coefficient of :meth:`penalty` (0.001 in the ELMo paper); the trainer adds it to its loss.
        initial_weights: the raw weights ``w`` before the softmax (default zeros: every layer weighs the same).
    """

    def __init__(
        self, num_layers: int, layer_norm: bool = False, l2: float = 0.001, initial_weights: list[float] | None = None
    ) -> None:
        super().__init__()
        w = initial_weights or [0.0] * num_layers
        if len(w) != num_layers:
            raise ValueError(f"{len(w)} initial weights for {num_layers} layers")
        self.weights = nn.Parameter(torch.tensor(w, dtype=torch.float32))  # (layers,)
        self.gamma = nn.Parameter(torch.ones(()))
        self.layer_norm = layer_norm
        self.l2 = l2

    def normalized_weights(self) -> Tensor:
        """``softmax(w)`` of shape ``(layers,)``; sums to one."""
        return torch.softmax(self.weights, 0)

    def penalty(self) -> Tensor:
        """The L2 term ``l2 * sum_k w_k ** 2`` on the raw weights (zero at initialisation), to add to the loss."""
        return self.l2 * (self.weights**2).sum()

    def forward(self, layers: Tensor, mask: Tensor | None = None) -> Tensor:
        """Mix.

        Args:
            layers: ``(batch, layers, words, dim)``.
            mask: bool ``(batch, words)``; needed for ``layer_norm`` (padding is excluded from the statistics).

        Returns:
            ``(batch, words, dim)``.
        """
        if layers.size(1) != self.weights.numel():
            raise ValueError(f"got {layers.size(1)} layers, the mix was built for {self.weights.numel()}")
        if self.layer_norm:
            if mask is None:
                mask = torch.ones(layers.shape[0], layers.shape[2], dtype=torch.bool, device=layers.device)
            # each layer's statistics over every unmasked word of the batch and every feature, as AllenNLP does
            m = mask[:, None, :, None].to(layers.dtype)  # (batch, 1, words, 1)
            n = m.sum().clamp_min(1) * layers.size(-1)  # values per layer
            mean = (layers * m).sum((0, 2, 3), keepdim=True) / n  # (1, layers, 1, 1)
            var = (((layers - mean) * m) ** 2).sum((0, 2, 3), keepdim=True) / n
            layers = (layers - mean) / torch.sqrt(var + 1e-12)
        s = self.normalized_weights().to(layers.dtype)
        return self.gamma * torch.einsum("k,bkwd->bwd", s, layers)  # (batch, words, dim)
