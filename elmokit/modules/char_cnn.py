"""The original ELMo's token encoder: a word's characters through a CNN, highways and a projection.

As in bilm-tf and AllenNLP's ``_ElmoCharacterEncoder`` (and ELMoForManyLangs' ``ConvTokenEmbedder``): each
character id is embedded; one 1-d convolution per filter width slides over the ``max_chars`` positions; each
filter keeps its maximum over the positions, then the activation (relu or tanh); the filters' outputs are
concatenated and pass through highway layers; an optional word embedding is concatenated in front (ELMoForManyLangs);
a linear projection gives the token vector. The highways are in AllenNLP's form::

    [n; g] = x W + b        (W: (2F, F), n the nonlinear half, g the gate)
    x <- σ(g) * x + (1 - σ(g)) * relu(n)

(bilm-tf's ``σ(x W_carry + b_carry)`` gates the *transform*; :mod:`elmokit.bilm.import_elmo` negates its carry
weights to fit this form.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elmokit.modules.matmul import linear

ACTIVATIONS = ("relu", "tanh")
WORDS_PER_CHUNK = 128  # words whose filter outputs are computed at once (the widest's: 128 x 44 x 1024 floats, 23 MB)


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
            ``(N, output_dim)``.
        """
        h = self._pooled(chars, pad_id)  # (N, F)
        for layer in self.highways:
            nonlinear, gate = layer(h).chunk(2, -1)  # (N, 2F) -> two (N, F)
            h = torch.lerp(F.relu(nonlinear), h, torch.sigmoid(gate))  # σ(g) h + (1 - σ(g)) relu(n)
        if self.word_embedding is not None:
            if words is None:
                raise ValueError("this encoder has a word embedding: pass the word ids")
            h = torch.cat([self.word_embedding(words), h], -1)  # (N, word_dim + F)
        return self.projection(h)  # (N, output_dim)

    def _pooled(self, chars: Tensor, pad_id: int | None) -> Tensor:
        """Every filter's activated maximum over positions, ``(N, max_chars)`` ids → ``(N, F)``, in chunks of
        :data:`WORDS_PER_CHUNK` words of similar length (see :meth:`forward`)."""
        N, C = chars.shape
        if pad_id is None:
            ends = torch.full((N,), C, dtype=torch.long, device=chars.device)
        else:  # each word's positions before its trailing run of pad_id
            ends = C - (chars != pad_id).flip(1).cumsum(1).eq(0).sum(1)  # (N,)
        order = torch.argsort(ends, stable=True)
        pad_windows = self._pad_windows(pad_id) if pad_id is not None else None
        h = chars.new_empty(N, self.num_filters, dtype=self.char_embedding.weight.dtype)  # (N, F)
        for a in range(0, N, WORDS_PER_CHUNK):
            idx = order[a : a + WORDS_PER_CHUNK]
            h[idx] = self._filters(chars[idx], ends[idx], pad_windows)
        return h

    def _pad_windows(self, pad_id: int) -> list[Tensor]:
        """Per filter, its output ``(count,)`` (before the bias) over a window of nothing but ``pad_id``."""
        pad = self.char_embedding.weight[pad_id]  # (d,)
        outs = []
        for conv in self.convolutions:
            count, d, w = conv.weight.shape
            window = pad.unsqueeze(1).expand(d, w).reshape(1, d * w)  # (1, d * w), laid out as unfold's windows
            outs.append(linear(window, conv.weight.reshape(count, d * w))[0])  # (count,)
        return outs

    def _filters(self, chars: Tensor, ends: Tensor, pad_windows: list[Tensor] | None) -> Tensor:
        """Every filter's activated maximum over positions, ``(n, max_chars)`` ids → ``(n, F)``.

        Each convolution is one product of the words' character windows with the filter weights, ``(n * L, d * w) x
        (d * w, count)`` for ``L`` positions, much faster than PyTorch's ``conv1d`` at the published model's filters
        (``scripts/bench_elmo.py``; figures in recipes/README.md). Windows start only
        before the chunk's longest word ends (``ends``); a word with windows in its padding beyond that gets the
        padding's output (``pad_windows``) in its maximum. The bias is added after the maximum (it is the same at
        every position).
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
            y = linear(windows, conv.weight.reshape(count, d * w), pad_rows=True).view(n, L, count)  # (n, L, count)
            best = y.amax(1)  # (n, count)
            if pad_windows is not None:  # words whose padding holds a whole window
                best = torch.where((ends < C - w + 1).unsqueeze(1), torch.maximum(best, pad_windows[k]), best)
            outs.append(act(best + conv.bias))  # (n, count)
        return torch.cat(outs, -1)  # (n, F)
