"""Downstream models fed by the biLM's scalar mix: a BiLSTM(-CRF) tagger and a BiLSTM sentence classifier.

Both read a :class:`Batch`: the biLM's layers either computed on the fly (a batch of word lists through a frozen
:class:`~elmokit.bilm.bundle.BiLM`) or read from an HDF5 dump (``(batch, layers, words, 2D)`` plus a mask), the same
numbers either way, so cached features train exactly like on-the-fly ones; plus word and character ids for the
optional trainable word embedding and character CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from elmokit.bilm.elmo import ElmoLayer
from elmokit.core.choices import SENTENCE_POOLINGS
from elmokit.modules.crf import CRF
from elmokit.modules.scalar_mix import ScalarMix


@dataclass
class Batch:
    """One batch of sentences, padded to the longest.

    Attributes:
        mask: bool ``(batch, words)``.
        layers: biLM vectors ``(batch, layers, words, 2D)`` (None without ELMo).
        word_ids: ``(batch, words)`` word-embedding ids (0 = padding, 1 = unknown), or None.
        char_ids: ``(batch, words, chars)`` character ids (0 = padding, 1 = unknown), or None.
        targets: ``(batch, words)`` tag ids or ``(batch,)`` label ids, or None when predicting.
    """

    mask: Tensor
    layers: Tensor | None = None
    word_ids: Tensor | None = None
    char_ids: Tensor | None = None
    targets: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: t.to(device) if t is not None else None  # noqa: E731
        return Batch(move(self.mask), move(self.layers), move(self.word_ids), move(self.char_ids), move(self.targets))


class WordCharCNN(nn.Module):
    """Character embedding → 1-D convolution → max over the word's characters (Ma & Hovy 2016).

    Args:
        num_chars: character vocabulary size (id 0 is padding); dim: character embedding width;
        filters: output channels (the word vector's width); width: convolution window.
    """

    def __init__(self, num_chars: int, dim: int = 30, filters: int = 50, width: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, width, padding=width // 2)
        self.output_dim = filters

    def forward(self, chars: Tensor) -> Tensor:
        """Args: chars ``(batch, words, chars)`` ids (0 = padding). Returns ``(batch, words, filters)``."""
        B, W, C = chars.shape
        x = self.embedding(chars.reshape(B * W, C)).transpose(1, 2)  # (batch * words, dim, chars)
        h = self.conv(x)  # (batch * words, filters, chars)
        pad = (chars.reshape(B * W, 1, C) == 0)[..., : h.shape[-1]]  # (batch * words, 1, chars)
        h = h.masked_fill(pad, float("-inf")).max(-1).values  # (batch * words, filters)
        h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))  # padding words
        return h.reshape(B, W, -1)  # (batch, words, filters)


class Encoder(nn.Module):
    """Word representations → dropout → BiLSTM, shared by the tagger and the classifier.

    A word is the concatenation of (each optional): the scalar mix of the biLM layers (an
    :class:`~elmokit.bilm.elmo.ElmoLayer` over the batch's precomputed layers), a trainable word embedding, a character
    CNN.

    Args:
        num_layers, elmo_dim: the biLM's layer count and width (2D); ``use_elmo=False`` drops the mix.
        hidden, lstm_layers, dropout: the BiLSTM (hidden size per direction) and dropout on its input and output.
        vocab_size, word_dim: the word embedding (0 = none).
        num_chars, char_dim, char_filters, char_width: the character CNN (``char_dim`` 0 = none).
        mix_l2, layer_norm: see :class:`~elmokit.modules.scalar_mix.ScalarMix`.
        elmo_output: a second scalar mix (its own weights) joined to the BiLSTM's output, so the layer above reads
            the biLM directly too ("ELMo at the output", ELMo paper section 3.3).
    """

    def __init__(
        self,
        num_layers: int,
        elmo_dim: int,
        hidden: int = 200,
        lstm_layers: int = 1,
        dropout: float = 0.5,
        use_elmo: bool = True,
        vocab_size: int = 0,
        word_dim: int = 0,
        num_chars: int = 0,
        char_dim: int = 0,
        char_filters: int = 50,
        char_width: int = 3,
        mix_l2: float = 0.001,
        layer_norm: bool = False,
        elmo_output: bool = False,
    ) -> None:
        super().__init__()
        self.use_elmo = use_elmo
        # the mixes' dropout is the encoder's own, on the joined word representation (and on the output)
        self.elmo = (
            ElmoLayer.for_layers(num_layers, elmo_dim // 2, 2 if elmo_output else 1, 0.0, layer_norm, mix_l2)
            if use_elmo
            else None
        )
        self.elmo_output = use_elmo and elmo_output
        self.register_load_state_dict_pre_hook(_rename_old_mix_keys)
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0) if vocab_size and word_dim else None
        self.chars = WordCharCNN(num_chars, char_dim, char_filters, char_width) if num_chars and char_dim else None
        d_in = (
            (elmo_dim if use_elmo else 0)
            + (word_dim if self.words is not None else 0)
            + (char_filters if self.chars is not None else 0)
        )
        if d_in == 0:
            raise ValueError("the model needs ELMo features, a word embedding or a character CNN")
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            d_in, hidden, lstm_layers, batch_first=True, bidirectional=True, dropout=dropout if lstm_layers > 1 else 0.0
        )
        self.output_dim = 2 * hidden + (elmo_dim if self.elmo_output else 0)

    def forward(self, batch: Batch) -> Tensor:
        """Args: batch with ``layers`` ``(batch, layers, words, 2D)`` (with ELMo), ``word_ids`` ``(batch, words)``
        and ``char_ids`` ``(batch, words, chars)`` as the model needs them.

        Returns:
            ``(batch, words, output_dim)``: ``2 * hidden``, plus ``2D`` with ``elmo_output``.
        """
        mask = batch.mask
        feats, mixed = [], []
        if self.elmo is not None:
            mixed, _ = self.elmo(layers=batch.layers, mask=mask)  # input (and output) mix, each (batch, words, 2D)
            feats.append(mixed[0])
        if self.words is not None:
            feats.append(self.words(batch.word_ids))  # (batch, words, word_dim)
        if self.chars is not None:
            feats.append(self.chars(batch.char_ids))  # (batch, words, char_filters)
        x = self.dropout(torch.cat(feats, -1))  # (batch, words, d_in)
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        if self.elmo_output:
            out = torch.cat([out, mixed[1]], -1)  # (batch, words, 2 * hidden + 2D)
        return self.dropout(out)  # (batch, words, output_dim)

    def mixes(self) -> dict[str, ScalarMix]:
        """The scalar mixes by name: ``input`` (with ELMo) and ``output`` (with ``elmo_output``)."""
        if self.elmo is None:
            return {}
        return dict(zip(("input", "output"), self.elmo.mixes))

    def penalty(self) -> Tensor:
        """The scalar mixes' L2 terms (zero without ELMo)."""
        return sum((m.penalty() for m in self.mixes().values()), torch.zeros(()))


def _rename_old_mix_keys(module: nn.Module, state: dict, prefix: str, *args) -> None:
    """Task models written before the encoder used :class:`~elmokit.bilm.elmo.ElmoLayer` (before 2026-12-04)
    kept the mixes as ``mix.*`` and ``mix_out.*``: read them as ``elmo.mixes.0.*`` and ``elmo.mixes.1.*``."""
    for old, new in (("mix.", "elmo.mixes.0."), ("mix_out.", "elmo.mixes.1.")):
        for key in [k for k in state if k.startswith(prefix + old)]:
            state[prefix + new + key[len(prefix + old) :]] = state.pop(key)


class Tagger(nn.Module):
    """Encoder (BiLSTM over the word representations), then a CRF (or a per-word softmax).

    Args:
        num_tags: size of the tag set; encoder: an :class:`Encoder`; crf: CRF or softmax output;
        constraints: optional CRF transition masks (see :func:`~elmokit.modules.crf.allowed_transitions`).
    """

    def __init__(self, num_tags: int, encoder: Encoder, crf: bool = True, constraints=None) -> None:
        super().__init__()
        self.encoder = encoder
        self.emissions = nn.Linear(encoder.output_dim, num_tags)
        self.crf = CRF(num_tags, constraints) if crf else None

    def scores(self, batch: Batch) -> Tensor:
        """Per-word tag scores ``(batch, words, tags)``."""
        return self.emissions(self.encoder(batch))

    def forward(self, batch: Batch) -> Tensor:
        """The training loss (a scalar): mean negative log-likelihood (CRF) or cross-entropy per word, plus the
        scalar mix's L2 term. Needs ``batch.targets`` ``(batch, words)``."""
        em = self.scores(batch)  # (batch, words, tags)
        if self.crf is not None:
            nll = self.crf(em, batch.targets, batch.mask)
        else:
            nll = nn.functional.cross_entropy(em[batch.mask], batch.targets[batch.mask])
        return nll + self.encoder.penalty()

    @torch.no_grad()
    def decode(self, batch: Batch) -> list[list[int]]:
        """Best tag ids per sentence (Viterbi with the CRF, argmax without)."""
        em = self.scores(batch)  # (batch, words, tags)
        if self.crf is not None:
            return self.crf.viterbi(em, batch.mask)
        return [row[: int(m.sum())].tolist() for row, m in zip(em.argmax(-1), batch.mask)]


class Classifier(nn.Module):
    """Encoder (BiLSTM over the word representations), pooled over words, then linear.

    Pooling: ``max``, ``mean``, ``attention`` (a learned softmax over words), or ``max_mean`` (the max and the mean
    side by side, ULMFiT's concat pooling without the last state).
    """

    def __init__(self, num_labels: int, encoder: Encoder, pooling: str = "max") -> None:
        super().__init__()
        if pooling not in SENTENCE_POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(SENTENCE_POOLINGS)}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.attention = nn.Linear(encoder.output_dim, 1) if pooling == "attention" else None
        self.output = nn.Linear(encoder.output_dim * (2 if pooling == "max_mean" else 1), num_labels)

    def scores(self, batch: Batch) -> Tensor:
        """Label logits ``(batch, labels)``."""
        h = self.encoder(batch)  # (batch, words, output_dim)
        m = batch.mask.unsqueeze(-1)  # (batch, words, 1)
        pooled = []
        if self.pooling in ("max", "max_mean"):
            p = h.masked_fill(~m, float("-inf")).max(1).values if h.size(1) else h.new_zeros(h.size(0), h.size(2))
            pooled.append(torch.where(torch.isfinite(p), p, torch.zeros_like(p)))  # (batch, output_dim); 0 if empty
        if self.pooling in ("mean", "max_mean"):
            pooled.append((h * m).sum(1) / m.sum(1).clamp_min(1))  # (batch, output_dim)
        if self.pooling == "attention":
            a = self.attention(h).masked_fill(~m, float("-inf"))  # (batch, words, 1)
            a = torch.softmax(a, 1).nan_to_num(0.0)
            pooled.append((a * h).sum(1))  # (batch, output_dim)
        return self.output(torch.cat(pooled, -1))  # (batch, labels)

    def forward(self, batch: Batch) -> Tensor:
        """The training loss (a scalar): mean cross-entropy plus the scalar mix's L2 term. Needs ``batch.targets``
        ``(batch,)``."""
        return nn.functional.cross_entropy(self.scores(batch), batch.targets) + self.encoder.penalty()

    @torch.no_grad()
    def decode(self, batch: Batch) -> list[int]:
        """The best label id per sentence."""
        return self.scores(batch).argmax(-1).tolist()
