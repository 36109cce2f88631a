"""The one-direction language model (embedding → recurrent stack → softmax head) and its named sizes."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from elmokit.core.config import ModelConfig
from elmokit.modules.recurrent import RecurrentStack, State
from elmokit.modules.softmax import SoftmaxHead


# --- named sizes: builder functions with the numbers written out -------------------------------------------------
# the numbers of each size on two rows, to compare at a glance
# fmt: off
def tiny() -> ModelConfig:
    """For tests and the demo: 2 LSTMP layers, 64 cells, 32 projection and embedding; trains in seconds."""
    return ModelConfig(
        size="tiny", cell="lstm", num_layers=2, embed_dim=32, hidden_size=64, proj_size=32,
        residual=True, dropout=0.0, head="sampled", num_samples=256, sampling_alpha=0.75,
    )


def small() -> ModelConfig:
    """Trainable on a CPU in an hour: 2 LSTMP layers, 1024 cells, 256 projection and embedding (~5M + 2*256*V)."""
    return ModelConfig(
        size="small", cell="lstm", num_layers=2, embed_dim=256, hidden_size=1024, proj_size=256,
        residual=True, dropout=0.1, head="sampled", num_samples=1024, sampling_alpha=0.75,
    )


def elmo_original() -> ModelConfig:
    """The shape of the original ELMo biLM (one direction): 2 LSTMP layers, 4096 cells, 512 projection; GPU."""
    return ModelConfig(
        size="elmo", cell="lstm", num_layers=2, embed_dim=512, hidden_size=4096, proj_size=512,
        residual=True, dropout=0.1, head="sampled", num_samples=8192, sampling_alpha=0.75,
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

    Args:
        cfg: the model configuration.
        vocab_size: V.
        seed: seed of the head's negative-sampling generator.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
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
            if self.rnn.output_dim != cfg.embed_dim:
                raise ValueError(
                    f"model.tie_embeddings needs the output width ({self.rnn.output_dim}) == embed_dim "
                    f"({cfg.embed_dim})"
                )
            self.head.weight = self.embedding.weight

    @property
    def output_dim(self) -> int:
        return self.rnn.output_dim

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return self.rnn.init_state(batch, device, self.embedding.weight.dtype)

    def encode(self, ids: Tensor, state: State | None = None) -> tuple[list[Tensor], State]:
        """Token embeddings and every layer's states.

        Args:
            ids: ``(batch, time)`` token ids.
            state: carried state (see :class:`RecurrentStack`); ``None`` = zeros.

        Returns:
            ``(layers, state)``: ``layers[0]`` is the embedding ``(time, batch, embed_dim)``; ``layers[k]`` the
            output of recurrent layer ``k`` ``(time, batch, out_dim)``; all time-major, before dropout.
        """
        emb = self.embedding(ids.t())  # (time, batch, embed_dim)
        outs, state = self.rnn(self.dropout(emb), state)
        return [emb, *outs], state

    def forward(
        self, ids: Tensor, targets: Tensor, state: State | None = None, mode: str = "train"
    ) -> tuple[Tensor, State]:
        """Loss of predicting ``targets`` from ``ids`` (computed here, inside ``forward``, so DDP hooks fire).

        Args:
            ids: ``(batch, time)`` inputs; targets: ``(batch, time)`` next tokens.
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
