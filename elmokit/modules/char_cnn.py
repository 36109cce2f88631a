"""The original ELMo's token encoder: a word's characters through a CNN, highways and a projection.

As in bilm-tf and AllenNLP's ``_ElmoCharacterEncoder`` (and ELMoForManyLangs' ``ConvTokenEmbedder``): each
character id is embedded; one 1-d convolution per filter width slides over the ``max_chars`` positions; each
filter keeps its maximum over the positions, then the activation (relu or tanh); the filters' outputs are
concatenated and pass through highway layers; an optional word embedding is concatenated in front (ELMoForManyLangs);
a linear projection gives the token vector. The highways are in AllenNLP's form::

    [n; g] = x W + b        (W: (2F, F), n the nonlinear half, g the gate)
    x <- σ(g) * x + (1 - σ(g)) * relu(n)

(bilm-tf's ``σ(x W_carry + b_carry)`` gates the *transform*; :mod:`elmokit.bilm.import_elmo` negates its carry
weights to fit this form, and :meth:`CharCNN.reset_parameters` its initial carry bias.)

Two paths compute the filters' maxima, with the same shortcut (below): without gradients (inference, or grad mode with
the character embedding and the convolutions frozen) one oneDNN product per filter and chunk
(:func:`elmokit.modules.matmul.linear`, which has no autograd); when grad mode is on and any of those parameters
requires a gradient, the same windows through ``torch.mm``, ``max`` and ``where``, so that autograd gives every
parameter its gradient. The highways, the word embedding and the projection are ``nn.Linear``/``nn.Embedding`` on
both paths.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elmokit.modules.matmul import linear

ACTIVATIONS = ("relu", "tanh")
WORDS_PER_CHUNK = 128  # words whose filter outputs are computed at once (the widest's: 128 x 44 x 1024 floats, 23 MB)


def _ends(chars: Tensor, pad_id: int | None) -> Tensor:
    """``(N,)`` each word's positions before its trailing run of ``pad_id`` (all ``max_chars`` without one)."""
    N, C = chars.shape
    if pad_id is None:
        return torch.full((N,), C, dtype=torch.long, device=chars.device)
    return C - (chars != pad_id).flip(1).cumsum(1).eq(0).sum(1)  # (N,)


class CharCNN(nn.Module):
    """Character ids of words → token vectors.

    Args:
        num_chars: rows of the character embedding (ids ``0 .. num_chars - 1``).
        char_dim: width of a character embedding.
        filters: ``(width, count)`` per convolution; their counts add up to ``F``.
        num_highway: highway layers over the ``F`` filter outputs.
        output_dim: width of the token vector (the projection's output).
        activation: of the convolutions, ``relu`` or ``tanh`` (the highways always use relu).
        word_vocab: rows of an optional word embedding concatenated before the projection (0 = none).
        word_dim: its width.
    """

    def __init__(
        self,
        num_chars: int,
        char_dim: int,
        filters: list[tuple[int, int]],
        num_highway: int,
        output_dim: int,
        activation: str = "relu",
        word_vocab: int = 0,
        word_dim: int = 0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.char_embedding = nn.Embedding(num_chars, char_dim)
        self.convolutions = nn.ModuleList(nn.Conv1d(char_dim, count, width) for width, count in filters)
        self.num_filters = sum(count for _, count in filters)
        self.highways = nn.ModuleList(nn.Linear(self.num_filters, 2 * self.num_filters) for _ in range(num_highway))
        self.word_embedding = nn.Embedding(word_vocab, word_dim) if word_vocab else None
        self.projection = nn.Linear(self.num_filters + (word_dim if word_vocab else 0), output_dim)
        self.output_dim = output_dim
        self.max_width = max((width for width, _ in filters), default=1)

    def forward(self, chars: Tensor, words: Tensor | None = None, pad_id: int | None = None) -> Tensor:
        """Token vectors.

        Args:
            chars: ``(N, max_chars)`` character ids of ``N`` words (``max_chars`` ≥ the widest filter).
            words: ``(N,)`` word ids, when the encoder has a word embedding.
            pad_id: the id that fills each word's characters after its end, if there is one. A window wholly in
                that tail gives the same output for every word, so it is computed once, and each word's own windows
                only up to its end (the words sorted by length, so that a chunk's words end near each other): the
                same maxima, ~4x fewer products for English words padded to 50.

        Returns:
            ``(N, output_dim)``; differentiable in every parameter when grad mode is on (see the module docstring).
        """
        h = self._pooled(chars, pad_id, trainable=torch.is_grad_enabled() and self._cnn_requires_grad())  # (N, F)
        for layer in self.highways:
            nonlinear, gate = self._dense(layer, h).chunk(2, -1)  # (N, 2F) -> two (N, F)
            h = torch.lerp(F.relu(nonlinear), h, torch.sigmoid(gate))  # σ(g) h + (1 - σ(g)) relu(n)
        if self.word_embedding is not None:
            if words is None:
                raise ValueError("this encoder has a word embedding: pass the word ids")
            h = torch.cat([self.word_embedding(words), h], -1)  # (N, word_dim + F)
        return self._dense(self.projection, h)  # (N, output_dim)

    @staticmethod
    def _dense(layer: nn.Linear, h: Tensor) -> Tensor:
        """``layer(h)``, ``(N, in) -> (N, out)``. Without gradients through oneDNN's product
        (:func:`~elmokit.modules.matmul.linear`), whose every row is the same whatever row of the batch it is in:
        MKL's (``nn.Linear`` on the CPU) gives the rows past its blocks last-bit different results on some CPUs
        (seen on AVX-512 AMD EPYC), and a word's vector must not depend on its place in the batch."""
        if torch.is_grad_enabled() and (layer.weight.requires_grad or h.requires_grad):
            return layer(h)
        return linear(h, layer.weight, bias=layer.bias, pad_rows=True)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """bilm-tf's initialisation, for training from scratch (the constructor keeps PyTorch's defaults, which an
        import overwrites).

        bilm-tf's ``LanguageModel._build_word_char_embeddings`` (``bilm/training.py`` of allenai/bilm-tf at commit
        ``10f42a3``, lines counted in the stored file): the character embedding ``uniform(-1, 1)`` (l. 158-162); each
        convolution's weights ``uniform(-0.05, 0.05)`` for relu ("Kim et al 2015, +/- 0.05"; its He initialisation is
        commented out) and ``normal(0, sqrt(1 / (width * char_dim)))`` for tanh, biases 0 (l. 180-204); the
        highways' ``W_carry`` and ``W_transform`` ``normal(0, sqrt(1 / F))``, ``b_carry`` -2, ``b_transform`` 0
        (l. 271-289); the projection ``normal(0, sqrt(1 / F))``, bias 0 (l. 247-258), and none at all when
        ``F == projection_dim`` (l. 238).

        In elmokit's form (module docstring): a highway's nonlinear half gets ``W_transform``'s draw and bias 0; its
        gate half ``-W_carry`` (the same normal) and bias ``-b_carry = +2``, so ``σ(g) ≈ 0.88`` of the input is carried
        at first, as bilm-tf's ``1 - σ(-2)``. The projection's std is ``sqrt(1 / its inputs)`` (``F``, plus
        ``word_dim`` with a word embedding); when it maps ``F`` to ``F`` with no word embedding it starts as the
        identity (bilm-tf's missing projection, the same as :mod:`elmokit.bilm.import_elmo` writes for such a file).
        Not from bilm-tf, whose character model has neither: every row of the character embedding is drawn, also
        the all-zero row 0 that an import puts in front of bilm-tf's 261 (a missing word's id); the optional word
        embedding (ELMoForManyLangs) is drawn as the character embedding, ``uniform(-1, 1)``.

        Args:
            generator: draws every value in a fixed order (on the parameters' device); ``None``: the global RNG.
        """
        g = generator
        F_ = self.num_filters
        with torch.no_grad():
            self.char_embedding.weight.uniform_(-1.0, 1.0, generator=g)
            for conv in self.convolutions:
                count, d, w = conv.weight.shape  # (count, d, w)
                if self.activation == "relu":
                    conv.weight.uniform_(-0.05, 0.05, generator=g)
                else:
                    conv.weight.normal_(0.0, math.sqrt(1.0 / (w * d)), generator=g)
                conv.bias.zero_()
            for layer in self.highways:
                layer.weight.normal_(0.0, math.sqrt(1.0 / F_), generator=g)  # (2F, F): [W_transform^T; -W_carry^T]
                layer.bias[:F_].zero_()  # b_transform
                layer.bias[F_:].fill_(2.0)  # -b_carry
            if self.word_embedding is not None:
                self.word_embedding.weight.uniform_(-1.0, 1.0, generator=g)
            proj = self.projection
            if self.word_embedding is None and proj.in_features == proj.out_features:
                proj.weight.copy_(torch.eye(F_, dtype=proj.weight.dtype, device=proj.weight.device))
            else:
                proj.weight.normal_(0.0, math.sqrt(1.0 / proj.in_features), generator=g)
            proj.bias.zero_()

    def _cnn_requires_grad(self) -> bool:
        """Whether the character embedding or a convolution has a parameter that requires a gradient."""
        return self.char_embedding.weight.requires_grad or any(p.requires_grad for p in self.convolutions.parameters())

    def _pooled(self, chars: Tensor, pad_id: int | None, trainable: bool = False) -> Tensor:
        """Every filter's activated maximum over positions, ``(N, max_chars)`` ids → ``(N, F)``, in chunks of
        :data:`WORDS_PER_CHUNK` words of similar length (see :meth:`forward`).

        The words sorted by length, windows only before each chunk's longest word ends and the all-padding window
        once per filter; the chunks' outputs are concatenated in length order and put back in the words' order by
        one ``index_select`` (a gather, whose gradient is one ``index_add``). ``trainable``: in autograd's
        operations, with gradients to the character embedding and the convolutions.
        """
        N, C = chars.shape
        ends = _ends(chars, pad_id)  # (N,)
        order = torch.argsort(ends, stable=True)
        pad_windows = None
        if pad_id is not None:
            pad_windows = self._pad_windows_trainable(pad_id) if trainable else self._pad_windows(pad_id)
        outs = []
        for a in range(0, N, WORDS_PER_CHUNK):
            idx = order[a : a + WORDS_PER_CHUNK]
            outs.append(self._filters(chars[idx], ends[idx], pad_windows, trainable))  # (n, F)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(N, device=order.device)
        h = torch.cat(outs) if outs else self.char_embedding.weight.new_zeros(0, self.num_filters)  # (N, F) sorted
        return h.index_select(0, inverse)  # (N, F) in the words' order

    def _pad_windows(self, pad_id: int) -> list[Tensor]:
        """Per filter, its output ``(count,)`` (before the bias) over a window of nothing but ``pad_id``."""
        pad = self.char_embedding.weight[pad_id]  # (d,)
        outs = []
        for conv in self.convolutions:
            count, d, w = conv.weight.shape
            window = pad.unsqueeze(1).expand(d, w).reshape(1, d * w)  # (1, d * w), laid out as unfold's windows
            outs.append(linear(window, conv.weight.reshape(count, d * w))[0])  # (count,)
        return outs

    def _filters(
        self, chars: Tensor, ends: Tensor, pad_windows: list[Tensor] | None, trainable: bool = False
    ) -> Tensor:
        """Every filter's activated maximum over positions, ``(n, max_chars)`` ids → ``(n, F)``.

        Each convolution is one product of the words' character windows with the filter weights, ``(n * L, d * w) x
        (d * w, count)`` for ``L`` positions, much faster than PyTorch's ``conv1d`` at the published model's filters
        (``scripts/bench_elmo.py``; figures in recipes/README.md): oneDNN's (:func:`~elmokit.modules.matmul.linear`)
        for inference, ``torch.mm`` when ``trainable`` (oneDNN's has no gradient). Windows start only
        before the chunk's longest word ends (``ends``); a word with windows in its padding beyond that gets the
        padding's output (``pad_windows``) in its maximum where it is larger (``where``: the gradient goes to
        whichever was taken). The bias is added after the maximum (it is the same at every position).
        """
        span = max(int(ends.max()), 1)  # positions any word's own windows start at
        n, C = chars.shape
        act = torch.relu if self.activation == "relu" else torch.tanh
        emb = self.char_embedding(chars[:, : span + self.max_width - 1])  # (n, <= max_chars, d): what any window reads
        outs = []
        for k, conv in enumerate(self.convolutions):
            count, d, w = conv.weight.shape  # (count, d, w)
            L = min(span, C - w + 1)  # window starts computed; C - w + 1 in all
            windows = emb[:, : L + w - 1].unfold(1, w, 1).reshape(n * L, d * w)  # (n, L, d, w) -> (n * L, d * w)
            weight = conv.weight.reshape(count, d * w)  # (count, d * w)
            y = torch.mm(windows, weight.t()) if trainable else linear(windows, weight, pad_rows=True)  # (n * L, count)
            best = y.view(n, L, count).max(1).values  # (n, L, count) -> (n, count)
            if pad_windows is not None:  # words whose padding holds a whole window, where its output is larger
                take = (ends < C - w + 1).unsqueeze(1) & (pad_windows[k] > best)  # (n, count)
                best = torch.where(take, pad_windows[k], best)
            outs.append(act(best + conv.bias))  # (n, count)
        return torch.cat(outs, -1)  # (n, F)

    def _pad_windows_trainable(self, pad_id: int) -> list[Tensor]:
        """:meth:`_pad_windows` differentiably: per filter ``(count,)``, ``Σ_j W[:, :, j] @ e_pad``.

        A window of nothing but ``pad_id`` holds its embedding ``e_pad`` at each of the ``w`` positions, so its
        product with the filter is the filter summed over its width times ``e_pad``: a ``(count, d) x (d,)`` product
        whose gradient flows to the pad character's embedding row and to the filter's weights.
        """
        pad = self.char_embedding.weight[pad_id]  # (d,)
        return [torch.mv(conv.weight.sum(2), pad) for conv in self.convolutions]  # (count, d, w) -> (count, d) each
