"""Downstream models fed by the biLM's scalar mix: a BiLSTM(-CRF) tagger and a BiLSTM sentence classifier.

Both take the biLM's layers either computed on the fly (a batch of word lists through a frozen
:class:`~elmokit.bilm.BiLM`) or read from an HDF5 dump (``(batch, layers, words, 2D)`` plus a mask): the same
numbers either way, so cached features train exactly like on-the-fly ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elmokit.modules.crf import CRF
from elmokit.modules.scalar_mix import ScalarMix


class _Encoder(nn.Module):
    """Scalar mix of the biLM layers (+ optional trainable word embedding) → dropout → BiLSTM."""

    def __init__(self, num_layers: int, elmo_dim: int, hidden: int, lstm_layers: int, dropout: float,
                 vocab_size: int = 0, word_dim: int = 0, use_elmo: bool = True) -> None:
        super().__init__()
        self.use_elmo = use_elmo
        self.mix = ScalarMix(num_layers) if use_elmo else None
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0) if vocab_size and word_dim else None
        d_in = (elmo_dim if use_elmo else 0) + (word_dim if self.words is not None else 0)
        if d_in == 0:
            raise ValueError("the model needs ELMo features or a word embedding (or both)")
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(d_in, hidden, lstm_layers, batch_first=True, bidirectional=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.output_dim = 2 * hidden

    def forward(self, layers: Tensor | None, mask: Tensor, word_ids: Tensor | None = None) -> Tensor:
        """Args: layers ``(batch, layers, words, 2D)``; mask bool ``(batch, words)``; word_ids ``(batch, words)``.

        Returns:
            ``(batch, words, 2 * hidden)``.
        """
        feats = []
        if self.use_elmo:
            feats.append(self.mix(layers, mask))  # (batch, words, 2D)
        if self.words is not None:
            feats.append(self.words(word_ids))  # (batch, words, word_dim)
        x = self.dropout(torch.cat(feats, -1))  # (batch, words, d_in)
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return self.dropout(out)  # (batch, words, 2 * hidden)

    def penalty(self) -> Tensor:
        return self.mix.penalty() if self.mix is not None else torch.zeros(())


class Tagger(nn.Module):
    """BiLSTM over the scalar mix, then a CRF (or a per-word softmax).

    Args:
        num_tags: size of the tag set; constraints: optional CRF transition masks (see
            :func:`~elmokit.modules.crf.allowed_transitions`); crf: CRF or softmax output.
    """

    def __init__(self, num_tags: int, num_layers: int, elmo_dim: int, hidden: int = 200, lstm_layers: int = 1,
                 dropout: float = 0.5, crf: bool = True, constraints=None, vocab_size: int = 0, word_dim: int = 0,
                 use_elmo: bool = True) -> None:
        super().__init__()
        self.encoder = _Encoder(num_layers, elmo_dim, hidden, lstm_layers, dropout, vocab_size, word_dim, use_elmo)
        self.emissions = nn.Linear(self.encoder.output_dim, num_tags)
        self.crf = CRF(num_tags, constraints) if crf else None

    def scores(self, layers: Tensor | None, mask: Tensor, word_ids: Tensor | None = None) -> Tensor:
        """Per-word tag scores ``(batch, words, tags)``."""
        return self.emissions(self.encoder(layers, mask, word_ids))

    def loss(self, layers: Tensor | None, mask: Tensor, tags: Tensor, word_ids: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood (CRF) or cross-entropy per word, plus the scalar mix's L2 term."""
        em = self.scores(layers, mask, word_ids)
        if self.crf is not None:
            nll = self.crf(em, tags, mask)
        else:
            nll = nn.functional.cross_entropy(em[mask], tags[mask])
        return nll + self.encoder.penalty()

    @torch.no_grad()
    def decode(self, layers: Tensor | None, mask: Tensor, word_ids: Tensor | None = None) -> list[list[int]]:
        """Best tag ids per sentence (Viterbi with the CRF, argmax without)."""
        em = self.scores(layers, mask, word_ids)
        if self.crf is not None:
            return self.crf.viterbi(em, mask)
        return [row[: int(m.sum())].tolist() for row, m in zip(em.argmax(-1), mask)]


class Classifier(nn.Module):
    """BiLSTM over the scalar mix, pooled over words (max, mean or attention), then a linear layer."""

    def __init__(self, num_labels: int, num_layers: int, elmo_dim: int, hidden: int = 200, lstm_layers: int = 1,
                 dropout: float = 0.5, pooling: str = "max", vocab_size: int = 0, word_dim: int = 0,
                 use_elmo: bool = True) -> None:
        super().__init__()
        if pooling not in ("max", "mean", "attention"):
            raise ValueError(f"pooling must be max, mean or attention, got {pooling!r}")
        self.encoder = _Encoder(num_layers, elmo_dim, hidden, lstm_layers, dropout, vocab_size, word_dim, use_elmo)
        self.pooling = pooling
        self.attention = nn.Linear(self.encoder.output_dim, 1) if pooling == "attention" else None
        self.output = nn.Linear(self.encoder.output_dim, num_labels)

    def forward(self, layers: Tensor | None, mask: Tensor, word_ids: Tensor | None = None) -> Tensor:
        """Label logits ``(batch, labels)``."""
        h = self.encoder(layers, mask, word_ids)  # (batch, words, 2 * hidden)
        m = mask.unsqueeze(-1)  # (batch, words, 1)
        if self.pooling == "max":
            pooled = h.masked_fill(~m, float("-inf")).max(1).values
            pooled = torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))  # empty sentences
        elif self.pooling == "mean":
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1)
        else:
            a = self.attention(h).masked_fill(~m, float("-inf"))  # (batch, words, 1)
            a = torch.softmax(a, 1).nan_to_num(0.0)
            pooled = (a * h).sum(1)  # (batch, 2 * hidden)
        return self.output(pooled)

    def loss(self, layers: Tensor | None, mask: Tensor, labels: Tensor, word_ids: Tensor | None = None) -> Tensor:
        return nn.functional.cross_entropy(self(layers, mask, word_ids), labels) + self.encoder.penalty()
