"""What every frozen biLM gives its users, whatever its token encoder: layer-wise word vectors of rows, batches and
documents (``FrozenBiLM``), and the one way its two recurrent stacks are run.

A biLM subclass sets ``num_layers``, ``dim`` (``D``; every output layer is ``2D`` wide), ``sha256``, ``vocab`` (with
a ``sha256``) and implements ``pieces`` (the per-word units it reads, computed once for many sentences),
``sequence_lengths`` (positions a sentence takes, for batching) and ``encode_words``. The two kinds are
:class:`elmokit.bilm.bundle.BiLM` (sentencepiece pieces pooled to words) and
:class:`elmokit.bilm.charbilm.CharBiLM` (one position per word, from its characters: the original ELMo).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor, nn

from elmokit.modules.lockstep import LockstepLSTMP, lockstep_key, supports_lockstep
from elmokit.modules.recurrent import RecurrentStack, State

LOCKSTEP_MAX_BATCH = 8  # rows up to which the two directions run in lockstep (see FrozenBiLM.run_stacks)
# Lockstep pays where a step's small products are overhead-bound; where the step reads large weights from memory
# (the published ELMo's (512, 16384) recurrent weight), both directions' products in one batched call move fewer
# bytes per second than one direction's through MKL at a time (scripts/bench_elmo.py; recipes/README.md). Stacks
# whose recurrent weights are larger than this never run in lockstep.
LOCKSTEP_MAX_BYTES = 8 << 20
# Such stacks run side by side instead, each in its own thread with half the intra-op threads (one core each on 2),
# faster for one sentence than one stack after the other and the same for large batches (recipes/README.md, "The
# original ELMo, faster").
_side_by_side_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the process it was made in, the pool)


def _side_by_side(calls: list) -> list:
    """Run no-argument calls (two) at once, each in a worker thread with ``1/len(calls)`` of this thread's intra-op
    threads (PyTorch keeps the count per thread), without gradients; their results in order."""
    global _side_by_side_pool
    if _side_by_side_pool is None or _side_by_side_pool[0] != os.getpid():  # a forked child has none of its threads
        _side_by_side_pool = (os.getpid(), ThreadPoolExecutor(2, thread_name_prefix="elmokit-bilm"))
    pool = _side_by_side_pool[1]
    n = torch.get_num_threads()

    def run(call):
        torch.set_num_threads(max(1, n // len(calls)))
        with torch.no_grad():
            return call()

    try:
        futures = [pool.submit(run, call) for call in calls]
        return [f.result() for f in futures]
    finally:
        torch.set_num_threads(n)  # also the count that threads started later begin with, which the workers changed


def _recurrent_bytes(stack: RecurrentStack) -> int:
    """Bytes of a stack's largest recurrent weight (what each time step reads)."""
    return max(layer.weight_hh_l0.numel() * layer.weight_hh_l0.element_size() for layer in stack.layers)


def padded_rows(seqs: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ids padded to one length, as each direction reads them.

    Returns:
        ``(fwd, bwd, n)``: ``fwd`` ``(B, L)`` each row left to right, ``bwd`` ``(B, L)`` each row reversed (the
        padding stays at the end of both), ``n`` ``(B,)`` each row's length.
    """
    n = np.array([len(q) for q in seqs], dtype=np.int64)
    B, L = len(seqs), int(n.max()) if len(seqs) else 0
    real = np.arange(L) < n[:, None]  # (B, L)
    fwd = np.full((B, L), pad, dtype=np.int64)
    fwd[real] = np.fromiter((i for q in seqs for i in q), dtype=np.int64, count=int(n.sum()))  # row after row
    back = np.clip(n[:, None] - 1 - np.arange(L), 0, None)  # (B, L) position read at each backward step
    bwd = np.where(real, np.take_along_axis(fwd, back, 1), pad)
    return fwd, bwd, n


def pad_layers(arrays: list, width: int, device: torch.device | str = "cpu") -> Tensor:
    """Stack per-sentence ``(layers, words, 2D)`` arrays or tensors into ``(batch, layers, width, 2D)`` float32,
    zero past each sentence's end, on ``device``."""
    L, D = arrays[0].shape[0], arrays[0].shape[-1]
    out = torch.zeros(len(arrays), L, width, D, device=device)
    for b, a in enumerate(arrays):
        t = torch.as_tensor(a)
        out[b, :, : t.shape[1]] = t.float()
    return out


def word_mask(sentences: list[list[str]], device: torch.device | str = "cpu") -> Tensor:
    """``(batch, words)`` bool: True at each sentence's words."""
    lengths = torch.tensor([len(s) for s in sentences], device=device)
    return torch.arange(int(lengths.max()) if len(sentences) else 0, device=device) < lengths[:, None]


class FrozenBiLM(nn.Module):
    """Base of the frozen, eval-mode biLMs (no parameter requires grad; no dropout whatever the parent does)."""

    supports_stateful = False  # whether encode_words can carry the state across calls (a CarriedState)
    # whether each direction keeps its softmax, so its most likely words (`elmokit substitutes`) and its perplexity
    # can be computed: elmokit's own BiLM always; a CharBiLM when its model came with one (model.softmax)
    has_softmax = False
    batch_tokens = 1000  # padded positions per batch that embed fastest (scripts/bench_embed.py, the small biLM)
    num_layers: int
    dim: int

    def __init__(self) -> None:
        super().__init__()
        self._lockstep: LockstepLSTMP | None = None  # stacked weights of the two directions, made on first use

    def freeze(self) -> None:
        """Called by a subclass once its modules exist."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenBiLM:  # the biLM stays in eval mode (no dropout)
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def pieces(self, sentences: list[list[str]]) -> list:
        raise NotImplementedError

    def sequence_lengths(self, pieces: list) -> list[int]:
        raise NotImplementedError

    def encode_words(self, rows: list[list[list[str]]], pooling: str = "edges", pieces: list | None = None) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def rows_of(state: list, batch: int) -> list:
        """A one-row start state (per layer ``(h, c)``, each ``(1, dim)``) repeated for ``batch`` rows."""
        return [tuple(t.expand(batch, -1).contiguous() for t in layer) for layer in state]

    def run_stacks(
        self,
        forward: RecurrentStack,
        backward: RecurrentStack,
        x_f: Tensor,
        x_b: Tensor,
        f_state: State | None,
        b_state: State | None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """The two recurrent stacks over their inputs.

        On a CPU with 2+ threads, a small batch runs both LSTMP stacks as one (:mod:`elmokit.modules.lockstep`): one
        sentence takes less time. From ~10 rows on, each stack's own products split well over the threads and one
        after the other is faster (``scripts/bench_embed.py`` measures both). Stacks with large recurrent
        weights (over ``LOCKSTEP_MAX_BYTES``, the published ELMo) run side by side in two threads at any batch.

        Args:
            x_f, x_b: ``(L, B, I)`` each direction's inputs, time-major.
            f_state, b_state: their start states (``None``: zeros).

        Returns:
            Per direction, per recurrent layer, ``(L, B, D)``.
        """
        B = x_f.shape[1]
        cpu_threads = x_f.device.type == "cpu" and torch.get_num_threads() >= 2
        if cpu_threads and _recurrent_bytes(forward) > LOCKSTEP_MAX_BYTES:
            f_out, b_out = _side_by_side([lambda: forward(x_f, f_state)[0], lambda: backward(x_b, b_state)[0]])
            return f_out, b_out
        if not (cpu_threads and B <= LOCKSTEP_MAX_BATCH and supports_lockstep(forward, backward)):
            return forward(x_f, f_state)[0], backward(x_b, b_state)[0]
        key = lockstep_key(forward, backward)
        if self._lockstep is None or self._lockstep.key != key:
            self._lockstep = LockstepLSTMP(forward, backward)
        f_state = f_state or forward.init_state(B, x_f.device, x_f.dtype)
        b_state = b_state or backward.init_state(B, x_b.device, x_b.dtype)
        state = [(torch.stack([fs[0], bs[0]]), torch.stack([fs[1], bs[1]])) for fs, bs in zip(f_state, b_state)]
        outs = self._lockstep.run(torch.stack([x_f, x_b]), state)  # per layer (2, L, B, D)
        return [t[0] for t in outs], [t[1] for t in outs]

    @torch.no_grad()
    def encode_rows(
        self, rows: list[list[list[str]]], pooling: str = "edges", pieces: list | None = None
    ) -> list[list[Tensor]]:
        """Run both directions over rows of sentences, word vectors per sentence.

        A row is one sequence of sentences: with one sentence per row every sentence starts from a fresh state; a
        row holding a whole document carries the context across its sentences (the forward LM from the left, the
        backward LM from the right).

        Args:
            rows: ``batch`` rows, each a list of sentences, each a list of words.
            pooling: ``edges`` | ``first`` | ``last`` | ``mean`` (how a word's pieces give its vector).
            pieces: the rows already encoded by :meth:`pieces` (per row, per sentence), if at hand.

        Returns:
            Per row, per sentence, a tensor ``(layers, words, 2D)``.
        """
        words = self.encode_words(rows, pooling, pieces)  # (layers, N, 2D)
        out, k = [], 0
        for row in rows:
            row_out = []
            for sent in row:
                row_out.append(words[:, k : k + len(sent)])  # (layers, words, 2D)
                k += len(sent)
            out.append(row_out)
        return out

    def forward(self, sentences: list[list[str]], pooling: str = "edges") -> tuple[Tensor, Tensor]:
        """Layer-wise word vectors for a batch of tokenized sentences, each from a fresh state.

        Args:
            sentences: ``batch`` lists of words (empty lists allowed).
            pooling: ``edges`` | ``first`` | ``last`` | ``mean``.

        Returns:
            ``(vectors, mask)``: ``vectors`` of shape ``(batch, layers, words, 2D)`` (zeros past each sentence's
            end), ``mask`` bool ``(batch, words)``.
        """
        vectors = self.padded(sentences, max((len(s) for s in sentences), default=0), pooling)
        return vectors, word_mask(sentences, self.device)

    def padded(self, sentences: list[list[str]], width: int, pooling: str = "edges") -> Tensor:
        """:meth:`forward`'s vectors padded to ``width`` words: ``(batch, layers, width, 2D)``."""
        if not sentences:
            return torch.zeros(0, self.num_layers, width, 2 * self.dim, device=self.device)
        return pad_layers([v for (v,) in self.encode_rows([[s] for s in sentences], pooling)], width, self.device)

    def document(self, sentences: list[list[str]], pooling: str = "edges") -> list[Tensor]:
        """Document mode: the sentences of one document in one pass, context carried across them.

        Returns:
            One ``(layers, words, 2D)`` tensor per sentence.
        """
        return self.encode_rows([sentences], pooling)[0]
