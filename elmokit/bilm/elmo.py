"""``ElmoLayer``: a frozen biLM plus N learnable scalar mixes, as a torch module for any downstream model (it loads
a biLM, so it lives beside the pipeline stages, not among the building blocks in ``modules/``). elmokit's own
taggers and classifiers use it without the biLM (:meth:`ElmoLayer.for_layers`): their biLM layers come from a
feature cache or an ``elmokit embed`` file, or are computed by the training loop."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from elmokit.modules.scalar_mix import ScalarMix


class ElmoLayer(nn.Module):
    """Frozen biLM → ``num_mixes`` scalar mixes (e.g. one for a tagger's input, one for its output layer).

    Args:
        bilm: a loaded biLM (:func:`elmokit.bilm.bundle.load_bilm`: elmokit's own or an imported ELMo), or a path to a
            bundle; None for layers computed elsewhere (then give ``num_layers`` and ``dim``; see :meth:`for_layers`).
        num_mixes: how many independent mixes.
        dropout: dropout on each mixed output (0.5 in the ELMo paper; 0: none).
        layer_norm, l2: see :class:`ScalarMix`.
        pooling: word pooling (see :mod:`elmokit.bilm.bundle`).
        device: where a biLM given by its path is loaded (None: the GPU when there is one, else the CPU); the
            layer moves with ``.to()`` like any module.
        num_layers, dim: without a biLM, its layer count and width per direction (layers are ``2 * dim`` wide).
    """

    def __init__(
        self,
        bilm=None,
        num_mixes: int = 1,
        dropout: float = 0.5,
        layer_norm: bool = False,
        l2: float = 0.001,
        pooling: str = "edges",
        *,
        num_layers: int = 0,
        dim: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(bilm, (str, Path)):
            from elmokit.bilm.bundle import load_bilm
            from elmokit.core.runtime import inference_device

            bilm = load_bilm(bilm, device=str(inference_device(device)))
        self.bilm = bilm  # frozen: no parameter of it requires grad, and it stays in eval mode (None: for_layers)
        if bilm is not None:
            num_layers, dim = bilm.num_layers, bilm.dim
        elif num_layers <= 0 or dim <= 0:
            raise ValueError("give a biLM, or num_layers and dim for layers computed elsewhere")
        self.mixes = nn.ModuleList(ScalarMix(num_layers, layer_norm, l2) for _ in range(num_mixes))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()  # 0: no dropout module drawing masks
        self.pooling = pooling
        self.output_dim = 2 * dim

    @classmethod
    def for_layers(
        cls,
        num_layers: int,
        dim: int,
        num_mixes: int = 1,
        dropout: float = 0.5,
        layer_norm: bool = False,
        l2: float = 0.001,
    ) -> ElmoLayer:
        """The mixes without a biLM, for layers computed elsewhere (``forward(layers=..., mask=...)``).

        Args:
            num_layers: the biLM's layer count; dim: its width per direction (layers are ``2 * dim`` wide).
            num_mixes, dropout, layer_norm, l2: as for the constructor.
        """
        return cls(None, num_mixes, dropout, layer_norm, l2, num_layers=num_layers, dim=dim)

    def penalty(self) -> Tensor:
        """Sum of the mixes' L2 terms, to add to the training loss."""
        return sum(m.penalty() for m in self.mixes)

    def forward(
        self, sentences: list[list[str]] | None = None, layers: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """Mixed representations of tokenized sentences, or of precomputed layers (e.g. read from HDF5).

        Args:
            sentences: ``batch`` lists of words (run through the frozen biLM), or
            layers: ``(batch, layers, words, 2D)`` precomputed vectors with ``mask`` ``(batch, words)``.

        Returns:
            ``(representations, mask)``: ``num_mixes`` tensors of shape ``(batch, words, 2D)`` and the bool mask
            ``(batch, words)``.
        """
        if layers is None:
            if sentences is None or self.bilm is None:
                raise ValueError("pass layers" if self.bilm is None else "pass sentences or layers")
            layers, mask = self.bilm(sentences, self.pooling)  # (batch, layers, words, 2D), (batch, words)
        elif mask is None:
            mask = torch.ones(layers.shape[0], layers.shape[2], dtype=torch.bool, device=layers.device)
        reps = [self.dropout(mix(layers, mask)) for mix in self.mixes]  # each (batch, words, 2D)
        return reps, mask
