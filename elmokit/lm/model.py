"""The one-direction language model (embedding → recurrent stack → softmax head) and its named sizes."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from elmokit.core.config import ModelConfig
from elmokit.lm.words import CharInputs
from elmokit.modules.char_cnn import CharCNN
from elmokit.modules.recurrent import RecurrentStack, State
from elmokit.modules.softmax import SoftmaxHead

ENCODERS = ("pieces", "char_cnn")
# the model keys that shape a char_cnn token encoder (what model.encoder_from and a pair must agree on)
ENCODER_KEYS = ("chars", "max_chars", "char_dim", "filters", "num_highway", "char_activation", "embed_dim")


# --- named sizes: builder functions with the numbers written out -------------------------------------------------
# the numbers of each size on two rows, to compare at a glance
# fmt: off
def tiny() -> ModelConfig:
    """For tests and the demo: 2 LSTMP layers, 64 cells, 32 projection and embedding; trains in seconds. As a
    character CNN (``model.encoder=char_cnn``): 8-wide characters, 48 filters of widths 1-4, one highway."""
    return ModelConfig(
        size="tiny", cell="lstm", num_layers=2, embed_dim=32, hidden_size=64, proj_size=32,
        residual=True, dropout=0.0, head="sampled", num_samples=256, sampling_alpha=0.75,
        char_dim=8, filters=[[1, 8], [2, 8], [3, 16], [4, 16]], num_highway=1, max_chars=50,
    )


def small() -> ModelConfig:
    """Trainable on a CPU in an hour: 2 LSTMP layers, 1024 cells, 256 projection and embedding (~5M + 2*256*V). As a
    character CNN: 16-wide characters, 512 filters of widths 1-5 (the published ELMo's first five), one highway."""
    return ModelConfig(
        size="small", cell="lstm", num_layers=2, embed_dim=256, hidden_size=1024, proj_size=256,
        residual=True, dropout=0.1, head="sampled", num_samples=1024, sampling_alpha=0.75,
        char_dim=16, filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]], num_highway=1, max_chars=50,
    )


def elmo_original() -> ModelConfig:
    """The shape of the original ELMo biLM (one direction): 2 LSTMP layers, 4096 cells, 512 projection, 8,192
    negatives; as a character CNN, the published one: 16-wide characters, 2,048 filters of widths 1-7, 2 highways.
    For GPUs."""
    return ModelConfig(
        size="elmo", cell="lstm", num_layers=2, embed_dim=512, hidden_size=4096, proj_size=512,
        residual=True, dropout=0.1, head="sampled", num_samples=8192, sampling_alpha=0.75,
        char_dim=16, filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]], num_highway=2,
        max_chars=50,
    )
# fmt: on


SIZES = {"tiny": tiny, "small": small, "elmo": elmo_original}


def resolve_model_config(cfg: ModelConfig, explicit: set[str]) -> ModelConfig:
    """Start from the builder named by ``cfg.size`` and keep the keys the user set explicitly (``explicit``)."""
    if cfg.size not in SIZES:
        from elmokit.core.errors import ConfigError

        raise ConfigError(f"model.size must be one of {', '.join(SIZES)}, got {cfg.size!r}")
    base = SIZES[cfg.size]()
    return dataclasses.replace(base, **{k: getattr(cfg, k) for k in explicit if k != "size"})


class LanguageModel(nn.Module):
    """One direction of the biLM. It reads token ids left to right; the backward LM is the same module fed the
    reversed stream.

    The token encoder is an embedding per piece (``model.encoder=pieces``), or the original ELMo's character CNN
    over whole words (``char_cnn``: :class:`~elmokit.modules.char_cnn.CharCNN`, its output ``embed_dim`` wide),
    which reads :class:`~elmokit.lm.words.CharInputs` instead of ids; the head is a softmax over the vocabulary
    either way (pieces, or the words of a word vocabulary).

    Args:
        cfg: the model configuration.
        vocab_size: V.
        seed: seed of the head's negative-sampling generator.
        num_chars: ``char_cnn``: rows of the character embedding (262 for UTF-8 bytes, the lexicon's size).
        char_pad_id: ``char_cnn``: the id that fills a word's characters after its end.
    """

    def __init__(
        self, cfg: ModelConfig, vocab_size: int, seed: int = 0, num_chars: int = 0, char_pad_id: int | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.char_pad_id = char_pad_id
        if cfg.encoder == "char_cnn":
            if num_chars < 1:
                raise ValueError("a char_cnn encoder needs num_chars")
            self.embedding = None
            self.token_encoder = CharCNN(
                num_chars,
                cfg.char_dim,
                [(int(w), int(n)) for w, n in cfg.filters],
                cfg.num_highway,
                cfg.embed_dim,
                cfg.char_activation,
            )
            self.token_encoder.reset_parameters()
        else:
            self.embedding = nn.Embedding(vocab_size, cfg.embed_dim)
            nn.init.normal_(self.embedding.weight, std=0.1)
        self.rnn = RecurrentStack(
            cfg.cell,
            cfg.embed_dim,
            cfg.hidden_size,
            cfg.num_layers,
            cfg.proj_size,
            cfg.residual,
            cfg.dropout,
            cfg.impl,
            cfg.cell_clip,
            cfg.proj_clip,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = SoftmaxHead(vocab_size, self.rnn.output_dim, cfg.num_samples, cfg.sampling_alpha, seed)
        if cfg.tie_embeddings:
            if self.embedding is None or self.rnn.output_dim != cfg.embed_dim:
                raise ValueError(
                    f"model.tie_embeddings needs a pieces encoder and the output width ({self.rnn.output_dim}) == "
                    f"embed_dim ({cfg.embed_dim})"
                )
            self.head.weight = self.embedding.weight

    @property
    def output_dim(self) -> int:
        return self.rnn.output_dim

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return self.rnn.init_state(batch, device, self.head.weight.dtype)

    def embed(self, ids: Tensor | CharInputs) -> Tensor:
        """Token vectors, time-major.

        Args:
            ids: ``(batch, time)`` token ids, or for ``char_cnn`` :class:`~elmokit.lm.words.CharInputs`: the batch's
                distinct words ``(U, max_chars)`` and ``(batch, time)`` indices into them.

        Returns:
            ``(time, batch, embed_dim)``.
        """
        if self.embedding is not None:
            return self.embedding(ids.t())  # (time, batch, embed_dim)
        tokens = self.token_encoder(ids.chars, None, self.char_pad_id)  # (U, embed_dim), each distinct word once
        return tokens[ids.index.t()]  # (time, batch, embed_dim)

    def encode(self, ids: Tensor | CharInputs, state: State | None = None) -> tuple[list[Tensor], State]:
        """Token embeddings and every layer's states.

        Args:
            ids: ``(batch, time)`` token ids (or :class:`~elmokit.lm.words.CharInputs`, see :meth:`embed`).
            state: carried state (see :class:`RecurrentStack`); ``None`` = zeros.

        Returns:
            ``(layers, state)``: ``layers[0]`` is the embedding ``(time, batch, embed_dim)``; ``layers[k]`` the
            output of recurrent layer ``k`` ``(time, batch, out_dim)``; all time-major, before dropout.
        """
        emb = self.embed(ids)  # (time, batch, embed_dim)
        outs, state = self.rnn(self.dropout(emb), state)
        return [emb, *outs], state

    def forward(
        self, ids: Tensor | CharInputs, targets: Tensor, state: State | None = None, mode: str = "train"
    ) -> tuple[Tensor, State]:
        """Loss of predicting ``targets`` from ``ids`` (computed here, inside ``forward``, so DDP hooks fire).

        Args:
            ids: ``(batch, time)`` inputs (or :class:`~elmokit.lm.words.CharInputs`); targets: ``(batch, time)``
                next tokens.
            state: carried state; ``None`` = zeros.
            mode: ``"train"`` uses the configured head (sampled or full) and returns the mean loss;
                ``"eval"`` uses the full softmax and returns per-token losses ``(batch, time)``.

        Returns:
            ``(loss, new_state)``.
        """
        layers, state = self.encode(ids, state)
        top = self.dropout(layers[-1])  # (time, batch, out_dim)
        T, B, D = top.shape
        hidden = top.reshape(T * B, D)  # (time*batch, out_dim)
        tgt = targets.t().reshape(T * B)  # (time*batch,)
        if mode == "eval":
            nll = self.head.full_loss(hidden, tgt, reduction="none")  # (time*batch,)
            return nll.view(T, B).t(), state  # (batch, time)
        if self.cfg.head == "full":
            return self.head.full_loss(hidden, tgt), state
        return self.head.sampled_loss(hidden, tgt), state


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
