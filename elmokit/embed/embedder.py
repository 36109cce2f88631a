"""Contextual vectors through the Python API: :class:`Embedder`, a small layer over a frozen biLM that batches
sentences by length, cuts very long ones into windows, and returns arrays (or streams them to
:func:`elmokit.embed.writer.write_hdf5`, the ``elmokit embed`` writer; :mod:`elmokit.embed.layouts` holds the HDF5
layouts and their reader, :class:`~elmokit.embed.layouts.EmbeddingsFile`, importable from :mod:`elmokit.embed`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from elmokit.core.errors import ElmokitError

if TYPE_CHECKING:
    import torch

    from elmokit.bilm.frozen import FrozenBiLM

ROW_MULTIPLE = 16  # a batch of 16 sentences or more holds a multiple of this many (Embedder._batches)


class Embedder:
    """Layer-wise contextual word vectors from a biLM bundle (or a forward and a backward model directory).

    Example::

        emb = Embedder("runs/bilm")
        vecs = emb.embed_sentences(["The cat sat .", "Hello"])   # [(layers, 4, 2D), (layers, 1, 2D)]

    Args:
        model: a bundle directory, or the forward model directory when ``backward`` is given, or a biLM already
            loaded (:func:`elmokit.bilm.bundle.load_bilm`).
        backward: the backward model directory (optional).
        device: ``cpu``, ``cuda`` or ``cuda:N``; None: the device accelerate gives this process (a GPU where there
            is one; see :func:`elmokit.core.runtime.inference_device`). A biLM already loaded is moved there only
            when ``device`` is given.
        precision: ``fp32`` (default), or ``bf16`` / ``fp16`` autocast on a GPU (faster; the vectors then differ
            from fp32's and depend slightly on the batch a sentence is in: recipes/README.md).
        pooling: ``edges`` (default) | ``first`` | ``last`` | ``mean``.
        batch_tokens: positions (pieces, or words for an imported ELMo) per batch, padded, when embedding many
            sentences; sentences are sorted by their length first, so little is padding. 0: the biLM's own
            ``batch_tokens`` (1,000 for elmokit's biLMs, 3,000 for an imported ELMo; see recipes/README.md).
        max_words: longer sentences are embedded in windows of this many words (memory stays bounded).
        stateful: bilm-tf's and AllenNLP's way, for their exact numbers (character biLMs imported by
            ``elmokit import-elmo`` only): sentences go in input order, ``batch_size`` per batch, and row ``r`` of a
            batch starts from the state row ``r`` of the previous batch left (no windows: ``max_words`` is
            ignored). Vectors then depend on the order and the batch size; :meth:`reset_state` starts over.
        batch_size: sentences per batch in stateful mode (AllenNLP's ``elmo`` command uses 64).
    """

    def __init__(
        self,
        model: str | Path | FrozenBiLM,
        backward: str | Path | None = None,
        device: str | None = None,
        pooling: str = "edges",
        batch_tokens: int = 0,
        max_words: int = 1000,
        stateful: bool = False,
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        from elmokit.bilm.bundle import load_bilm
        from elmokit.bilm.frozen import FrozenBiLM
        from elmokit.core.runtime import inference_autocast, inference_device

        if isinstance(model, FrozenBiLM):
            bilm = model.to(inference_device(device)) if device else model
        else:
            bilm = load_bilm(model, backward, str(inference_device(device)))
        inference_autocast(bilm.device, precision)  # refuses an unknown precision, or a lower one on the CPU
        if stateful and not bilm.supports_stateful:
            raise ElmokitError(
                "stateful mode is for character biLMs imported by `elmokit import-elmo` (bilm-tf's "
                "and AllenNLP's way); elmokit's own biLMs embed each sentence from a fresh state"
            )
        if batch_size < 1:
            raise ElmokitError(f"batch size must be >= 1, got {batch_size}")
        self.bilm, self.pooling, self.batch_tokens = bilm, pooling, batch_tokens or bilm.batch_tokens
        self.max_words = sys.maxsize if stateful else max_words
        self.stateful, self.batch_size = stateful, batch_size
        self.precision = precision
        self.carry = None
        self.reset_state()

    def reset_state(self) -> None:
        """Stateful mode: forget the carried state (the next batch starts from zeros, as a fresh AllenNLP model)."""
        if self.stateful:
            from elmokit.bilm.charbilm import CarriedState

            self.carry = CarriedState()

    def _autocast(self):
        from elmokit.core.runtime import inference_autocast

        return inference_autocast(self.bilm.device, self.precision)

    @property
    def device(self):
        """The torch device the biLM runs on."""
        return self.bilm.device

    @property
    def num_layers(self) -> int:
        return self.bilm.num_layers

    @property
    def dim(self) -> int:
        """Width of every layer (2D)."""
        return 2 * self.bilm.dim

    def _batches(self, lengths: list[int], budget: int = 0) -> Iterator[list[int]]:
        """Indices grouped into length-sorted batches of at most ``batch_tokens`` padded pieces.

        A batch of ``ROW_MULTIPLE`` (16) sentences or more holds a multiple of that many (the sentences over it open
        the next batch), so the batch shapes, and with them oneDNN's kernels and caches (one entry per shape), come
        from a set that does not grow with the input: ``elmokit embed``'s memory stays flat on a large corpus.

        Args:
            lengths: sequence length (pieces, with the two ``</s>``) of each sentence.
            budget: padded pieces per batch (0: ``batch_tokens``).
        """
        budget = budget or self.batch_tokens

        def kept(n: int) -> int:  # how many of a full batch's n sentences go: all, or a multiple of ROW_MULTIPLE
            return n - n % ROW_MULTIPLE if n >= ROW_MULTIPLE else n

        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batch: list[int] = []
        for i in order:  # ascending: sentence i is the longest of the batch it joins
            while batch and lengths[i] * (len(batch) + 1) > budget:
                k = kept(len(batch))
                yield batch[:k]
                batch = batch[k:]
            batch.append(i)
        while batch:
            k = kept(len(batch))
            yield batch[:k]
            batch = batch[k:]

    def embed_tokens(self, sentences: list[list[str]]) -> list[np.ndarray]:
        """Vectors for pre-tokenized sentences, in input order.

        Returns:
            One C-contiguous ``float32`` array of shape ``(layers, words, 2D)`` per sentence (views into one buffer).
        """
        buf, offsets = self.embed_packed(sentences, order="sentences")
        return sentence_blocks(buf, offsets, self.num_layers)

    def embed_packed(
        self, sentences: list[list[str]], order: str = "layers", dtype: np.dtype | type | str = np.float32
    ) -> tuple[np.ndarray, list[int]]:
        """Vectors for pre-tokenized sentences, back to back in one array.

        Every batch's vectors are scattered into that array (one copy per batch, converted to ``dtype`` on the way)
        as soon as the batch is done, so no batch's tensors outlive it and nothing is copied again to reorder it.

        Args:
            sentences: lists of words.
            order: how the array is laid out: ``layers`` ``(layers, total_words, 2D)``; ``words``
                ``(total_words, layers, 2D)`` (the packed HDF5 layout); ``sentences`` ``(layers * total_words, 2D)``
                with sentence ``i`` one contiguous ``(layers, words_i, 2D)`` block (:func:`sentence_blocks`; what
                :meth:`embed_tokens` returns; the AllenNLP HDF5 layout streams the same blocks from
                :meth:`iter_sentences`).
            dtype: of the array (``float16`` halves it; the biLM computes in ``float32``).

        Returns:
            ``(vectors, offsets)``: the array and ``sentences + 1`` word offsets (sentence ``i`` has the words
            ``offsets[i]:offsets[i + 1]``; with ``order="layers"`` it is ``vectors[:, offsets[i]:offsets[i + 1]]``).
        """
        if order not in ("layers", "words", "sentences"):
            raise ValueError(f"order must be layers, words or sentences, got {order!r}")
        windows, starts, offsets, owner = self._windows(sentences)
        cut = len(windows) > len(sentences)  # a long sentence's windows: batched ROW_MULTIPLE at a time
        win_sent = offsets[owner]  # (windows,) first word of each window's sentence
        win_sent_len = offsets[owner + 1] - win_sent  # (windows,) words of that sentence
        L, W, D2 = self.num_layers, int(starts[-1]), self.dim
        rows = np.empty((L * W, D2), dtype=dtype)  # one row of 2D per (layer, word), placed as `order` says
        layer = np.arange(L, dtype=np.int64)[:, None]  # (layers, 1)
        for idx, words in self._window_batches(windows, cut):  # words: (layers, batch words, 2D)
            idx = np.asarray(idx)
            counts = starts[idx + 1] - starts[idx]  # (batch windows,) words of each
            g = _ranges(starts[idx], counts)  # (batch words,) word index
            if order == "layers":
                dest = layer * W + g  # (layers, batch words)
            elif order == "words":
                dest = g * L + layer
            else:  # the sentence's block starts at row L * a and holds its n words per layer
                a = np.repeat(win_sent[idx], counts)  # (batch words,)
                n = np.repeat(win_sent_len[idx], counts)
                dest = L * a + layer * n + (g - a)
            rows[dest.reshape(-1)] = words.cpu().numpy().reshape(-1, D2)  # (layers * batch words, 2D)
            del words
        if order == "layers":
            return rows.reshape(L, W, D2), offsets.tolist()
        if order == "words":
            return rows.reshape(W, L, D2), offsets.tolist()
        return rows, offsets.tolist()

    def iter_sentences(
        self, sentences: list[list[str]], dtype: np.dtype | type | str = np.float32
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Vectors for pre-tokenized sentences, each yielded as soon as its batch is done (not in input order).

        All the sentences are sorted by length into batches, so the more are passed at once, the less padding;
        memory holds one batch's vectors, not all of them.

        Yields:
            ``(i, array)``: the index of a sentence in ``sentences`` and its C-contiguous ``(layers, words, 2D)``
            array in ``dtype``; every sentence exactly once.
        """
        long = [k for k, s in enumerate(sentences) if len(s) > self.max_words]
        for k in long:  # windows of max_words words (rare): embedded on their own, so each batch holds whole sentences
            block = np.empty((self.num_layers, len(sentences[k]), self.dim), dtype=dtype)  # (layers, words, 2D)
            for start, part in self.iter_windows(sentences[k], dtype):
                block[:, start : start + part.shape[1]] = part
            yield k, block
        keep = [k for k, s in enumerate(sentences) if len(s) <= self.max_words] if long else range(len(sentences))
        windows = [sentences[k] for k in keep]
        L, D2 = self.num_layers, self.dim
        layer = np.arange(L, dtype=np.int64)[:, None]  # (layers, 1)
        for idx, words in self._window_batches(windows):  # words: (layers, batch words, 2D)
            counts = np.array([len(windows[i]) for i in idx], dtype=np.int64)  # (batch sentences,)
            a = np.concatenate([[0], np.cumsum(counts)])  # first word of each sentence within the batch
            g = np.arange(a[-1])  # (batch words,)
            first = np.repeat(a[:-1], counts)  # (batch words,) first word of the word's sentence
            n = np.repeat(counts, counts)
            rows = np.empty((L * int(a[-1]), D2), dtype=dtype)
            rows[(L * first + layer * n + (g - first)).reshape(-1)] = words.cpu().numpy().reshape(-1, D2)
            del words
            for j, i in enumerate(idx):  # sentence j of the batch: rows L * a[j] .. L * a[j + 1]
                yield keep[i], rows[L * a[j] : L * a[j + 1]].reshape(L, int(counts[j]), D2)  # (layers, words, 2D)

    def iter_windows(
        self, words: list[str], dtype: np.dtype | type | str = np.float32
    ) -> Iterator[tuple[int, np.ndarray]]:
        """A sentence's vectors window by window (``max_words`` words each, each from a fresh state), so a
        line of any length is written without holding all of its vectors.

        Yields:
            ``(start, array)``: the window's first word and its ``(layers, window words, 2D)`` array in ``dtype``,
            every window once, not in order.
        """
        windows = self._cut(words)
        for idx, vecs in self._window_batches(windows, cut=True):  # vecs: (layers, batch words, 2D)
            arr = vecs.cpu().numpy().astype(dtype, copy=False)
            del vecs
            a = np.concatenate([[0], np.cumsum([len(windows[i]) for i in idx])])  # first word of each window
            for j, i in enumerate(idx):
                yield i * self.max_words, arr[:, a[j] : a[j + 1]]  # (layers, window words, 2D)

    def _cut(self, words: list[str]) -> list[list[str]]:
        """``words`` in windows of ``max_words`` (the last one shorter)."""
        return [words[j : j + self.max_words] for j in range(0, len(words), self.max_words)]

    def _windows(self, sentences: list[list[str]]) -> tuple[list[list[str]], np.ndarray, np.ndarray, np.ndarray]:
        """Sentences longer than ``max_words`` cut into windows of that many words (each from a fresh state).

        Returns:
            ``(windows, starts, offsets, owner)``: the windows (a sentence's are consecutive), the ``windows + 1``
            and ``sentences + 1`` word offsets of the windows and of the sentences, and the sentence of each window.
        """
        windows: list[list[str]] = []
        first: list[int] = []  # first window of each sentence
        owner: list[int] = []
        for k, s in enumerate(sentences):
            first.append(len(windows))
            if len(s) <= self.max_words:
                windows.append(s)
            else:
                windows.extend(self._cut(s))
            owner.extend([k] * (len(windows) - len(owner)))
        starts = np.concatenate([[0], np.cumsum([len(w) for w in windows], dtype=np.int64)])  # per window
        offsets = np.concatenate([starts[first], starts[-1:]]).astype(np.int64)  # per sentence
        return windows, starts, offsets, np.asarray(owner, dtype=np.int64)

    def _window_batches(self, windows: list[list[str]], cut: bool = False) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Length-sorted batches of the windows through the biLM: ``(indices, (layers, batch words, 2D))``, the
        words of the batch's windows back to back in the order of ``indices``.

        ``cut`` (windows of sentences longer than ``max_words``): a batch holds up to ``ROW_MULTIPLE`` windows
        whatever ``batch_tokens`` says; a window of 1,000 words is longer than the default budget, and one window
        per batch ran several times slower than sixteen (one LSTM step per piece either way)."""
        if self.carry is not None:  # stateful: in input order, batch_size at a time, the state carried
            for a in range(0, len(windows), self.batch_size):
                idx = list(range(a, min(a + self.batch_size, len(windows))))
                with self._autocast():
                    words = self.bilm.encode_words([[windows[i]] for i in idx], self.pooling, carry=self.carry)
                yield idx, words.float()
            return
        pieces = self.bilm.pieces(windows)  # one sentencepiece call for all of them
        lengths = self.bilm.sequence_lengths(pieces)
        budget = max(self.batch_tokens, ROW_MULTIPLE * max(lengths, default=0)) if cut else self.batch_tokens
        for idx in self._batches(lengths, budget):
            with self._autocast():
                words = self.bilm.encode_words([[windows[i]] for i in idx], self.pooling, [[pieces[i]] for i in idx])
            yield idx, words.float()  # (layers, batch words, 2D), float32 whatever the precision

    def embed_sentences(self, sentences: list[str] | list[list[str]]) -> list[np.ndarray]:
        """Vectors for sentences given as strings (split on whitespace) or as lists of words.

        Returns:
            One ``float32`` array of shape ``(layers, words, 2D)`` per sentence, in input order.
        """
        toks = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        return self.embed_tokens(toks)

    def embed_document(self, sentences: list[str] | list[list[str]]) -> list[np.ndarray]:
        """Document mode: the sentences in one pass, context carried across them (left to right for the forward
        LM, right to left for the backward LM). Unlike :meth:`embed_sentences`, a sentence's vectors then depend
        on its neighbours.

        Returns:
            One ``float32`` array ``(layers, words, 2D)`` per sentence.
        """
        toks = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        with self._autocast():
            vecs = self.bilm.document(toks, self.pooling)
        return [v.float().cpu().numpy() for v in vecs]

    # the options as write_hdf5 names them, several to a row
    # fmt: off
    def embed_file(
        self, input_path: str | Path, output_path: str | Path, layers: str = "all", dtype: str = "float32",
        layout: str = "allennlp", tokenized: bool = False, resume: bool = False, chunk_lines: int = 0,
        progress: bool = True, overwrite: bool = False,
    ) -> Path:
        """Embed a text file into HDF5; see :func:`elmokit.embed.writer.write_hdf5` for the options."""
        from elmokit.embed.writer import write_hdf5

        return write_hdf5(
            self, input_path, output_path, layers=layers, dtype=dtype, layout=layout, tokenized=tokenized,
            resume=resume, chunk_lines=chunk_lines, progress=progress, overwrite=overwrite,
        )
    # fmt: on


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without the Python loop."""
    ends = np.cumsum(counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - counts), counts)


def sentence_blocks(rows: np.ndarray, offsets: list[int], num_layers: int) -> list[np.ndarray]:
    """Split :meth:`Embedder.embed_packed`'s ``order="sentences"`` array into one ``(layers, words, 2D)`` view per
    sentence (each C-contiguous, no copy)."""
    L = num_layers
    return [rows[L * a : L * b].reshape(L, b - a, rows.shape[-1]) for a, b in zip(offsets[:-1], offsets[1:])]


# --- reading input --------------------------------------------------------------------------------------------------
