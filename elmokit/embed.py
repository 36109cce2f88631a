"""Contextual vectors: the :class:`Embedder` API, the streaming HDF5 writer (two layouts) and the reader.

HDF5 layouts (both carry provenance attributes: ``elmokit_version``, ``model_sha256``, ``vocab_sha256``,
``layers`` (all|top|average), ``pooling``, ``dtype``, ``layout``, ``input``, ``input_sha256``, ``tokenized``,
``chunk_lines``, ``max_words``, ``stateful``, ``batch_size``, ``num_layers``, ``dim``, ``sentences``, ``lines_done``,
``complete``):

- ``allennlp`` (default; what AllenNLP's removed ``elmo`` command wrote): one dataset per input line, keyed by the
  line's 0-based index as a string (``"0"``, ``"1"``, ...), of shape ``(layers, words, 2D)`` with ``--layers all``
  or ``(words, 2D)`` with ``top``/``average``; plus ``sentence_to_index``, a JSON map from sentence text to its key
  (the first line with that text, so duplicates do not overwrite each other).
- ``packed`` (for large corpora): ``vectors`` of shape ``(total_words, layers, 2D)`` (or ``(total_words, 2D)``),
  chunked along words, and ``offsets`` ``(sentences + 1,)``: sentence ``i`` is ``vectors[offsets[i]:offsets[i+1]]``
  (word-major; transpose to ``(layers, words, 2D)``).

An empty input line is a sentence of zero words: its dataset has shape ``(layers, 0, 2D)`` (or ``(0, 2D)``).
The file is written in parts under ``OUTPUT.partial/`` and becomes ``OUTPUT`` only when complete and verified, so a
file with the final name is always whole; after a kill or a full disk, ``--resume`` continues from the last part
recorded whole (:mod:`elmokit.vectors_hdf5`).
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from elmokit import __version__
from elmokit.choices import DTYPES, LAYER_MODES, LAYOUTS
from elmokit.errors import ElmokitError
from elmokit.textfile import check_file, sha256_file
from elmokit.vectors_hdf5 import EmbeddingsFile  # noqa: F401 - the reader, importable from here as before

if TYPE_CHECKING:
    import torch

    from elmokit.wordvectors import FrozenBiLM

ROW_MULTIPLE = 16  # a batch of 16 sentences or more holds a multiple of this many (Embedder._batches)


class Embedder:
    """Layer-wise contextual word vectors from a biLM bundle (or a forward and a backward model directory).

    Example::

        emb = Embedder("runs/bilm")
        vecs = emb.embed_sentences(["The cat sat .", "Hello"])   # [(layers, 4, 2D), (layers, 1, 2D)]

    Args:
        model: a bundle directory, or the forward model directory when ``backward`` is given, or a biLM already
            loaded (:func:`elmokit.bilm.load_bilm`).
        backward: the backward model directory (optional).
        device: torch device.
        pooling: ``edges`` (default) | ``first`` | ``last`` | ``mean``.
        batch_tokens: positions (pieces, or words for an imported ELMo) per batch, padded, when embedding many
            sentences; sentences are sorted by their length first, so little is padding. 0: the biLM's own
            ``batch_tokens`` (1,000 for elmokit's biLMs, 3,000 for an imported ELMo: what ran fastest here).
        max_words: longer sentences are embedded in windows of this many words (memory stays bounded).
        stateful: bilm-tf's and AllenNLP's way, for their exact numbers (character biLMs imported by
            ``elmokit import-elmo`` only): sentences go in input order, ``batch_size`` per batch, and row ``r`` of a
            batch starts from the state row ``r`` of the previous batch left (no windows: ``max_words`` is
            ignored). Vectors then depend on the order and the batch size; :meth:`reset_state` starts over.
        batch_size: sentences per batch in stateful mode (AllenNLP's ``elmo`` command uses 64).
    """

    def __init__(self, model: str | Path | FrozenBiLM, backward: str | Path | None = None, device: str = "cpu",
                 pooling: str = "edges", batch_tokens: int = 0, max_words: int = 1000, stateful: bool = False,
                 batch_size: int = 64) -> None:
        from elmokit.bilm import load_bilm
        from elmokit.wordvectors import FrozenBiLM

        bilm = model if isinstance(model, FrozenBiLM) else load_bilm(model, backward, device)
        if stateful and not bilm.supports_stateful:
            raise ElmokitError("stateful mode is for character biLMs imported by `elmokit import-elmo` (bilm-tf's "
                               "and AllenNLP's way); elmokit's own biLMs embed each sentence from a fresh state")
        if batch_size < 1:
            raise ElmokitError(f"batch size must be >= 1, got {batch_size}")
        self.bilm, self.pooling, self.batch_tokens = bilm, pooling, batch_tokens or bilm.batch_tokens
        self.max_words = sys.maxsize if stateful else max_words
        self.stateful, self.batch_size = stateful, batch_size
        self.carry = None
        self.reset_state()

    def reset_state(self) -> None:
        """Stateful mode: forget the carried state (the next batch starts from zeros, as a fresh AllenNLP model)."""
        if self.stateful:
            from elmokit.charbilm import CarriedState

            self.carry = CarriedState()

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

    def embed_packed(self, sentences: list[list[str]], order: str = "layers",
                     dtype: np.dtype | type | str = np.float32) -> tuple[np.ndarray, list[int]]:
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

    def iter_sentences(self, sentences: list[list[str]],
                       dtype: np.dtype | type | str = np.float32) -> Iterator[tuple[int, np.ndarray]]:
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

    def iter_windows(self, words: list[str], dtype: np.dtype | type | str = np.float32
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

    def _window_batches(self, windows: list[list[str]], cut: bool = False
                        ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Length-sorted batches of the windows through the biLM: ``(indices, (layers, batch words, 2D))``, the
        words of the batch's windows back to back in the order of ``indices``.

        ``cut`` (windows of sentences longer than ``max_words``): a batch holds up to ``ROW_MULTIPLE`` windows
        whatever ``batch_tokens`` says; a window of 1,000 words is longer than the default budget, and one window
        per batch ran ~10x slower than sixteen (one LSTM step per piece either way)."""
        if self.carry is not None:  # stateful: in input order, batch_size at a time, the state carried
            for a in range(0, len(windows), self.batch_size):
                idx = list(range(a, min(a + self.batch_size, len(windows))))
                yield idx, self.bilm.encode_words([[windows[i]] for i in idx], self.pooling, carry=self.carry)
            return
        pieces = self.bilm.pieces(windows)  # one sentencepiece call for all of them
        lengths = self.bilm.sequence_lengths(pieces)
        budget = max(self.batch_tokens, ROW_MULTIPLE * max(lengths, default=0)) if cut else self.batch_tokens
        for idx in self._batches(lengths, budget):
            yield idx, self.bilm.encode_words([[windows[i]] for i in idx], self.pooling, [[pieces[i]] for i in idx])

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
        return [v.cpu().numpy() for v in self.bilm.document(toks, self.pooling)]

    def embed_file(self, input_path: str | Path, output_path: str | Path, layers: str = "all",
                   dtype: str = "float32", layout: str = "allennlp", tokenized: bool = False, resume: bool = False,
                   chunk_lines: int = 0, progress: bool = True, overwrite: bool = False) -> Path:
        """Embed a text file into HDF5; see :func:`write_hdf5` for the options."""
        return write_hdf5(self, input_path, output_path, layers=layers, dtype=dtype, layout=layout,
                          tokenized=tokenized, resume=resume, chunk_lines=chunk_lines, progress=progress,
                          overwrite=overwrite)


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
def read_sentences(path: str | Path, tokenized: bool = False) -> Iterator[tuple[int, list[str], str]]:
    """Yield ``(line_number, words, text)`` per sentence.

    Plain input: one sentence per line, words split on whitespace (an empty line is a sentence of no words).
    ``tokenized``: one token per line (first tab-separated column, as in CoNLL files; in a CoNLL-U line of 10
    columns the FORM column, with multiword-token ranges ``1-2`` and empty nodes ``1.1`` skipped), a blank line
    between sentences; lines starting with ``#`` are comments.

    Raises:
        CorpusError: missing/empty file, invalid UTF-8, NUL byte (with file and line).
    """
    from elmokit.textfile import iter_lines

    if not tokenized:
        for lineno, text in iter_lines(path, max_line_chars=1 << 62):
            yield lineno, text.split(), text
        return
    words: list[str] = []
    start = 1
    for lineno, text in iter_lines(path, max_line_chars=1 << 62):
        if not text.strip():
            if words:
                yield start, words, " ".join(words)
            words, start = [], lineno + 1
        elif not (text.startswith("#") and not words):
            cols = text.split("\t")
            if len(cols) == 10 and cols[0].replace("-", "").replace(".", "").isdigit():  # CoNLL-U
                if cols[0].isdigit():
                    words.append(cols[1])
                continue
            words.append(cols[0].strip())
    if words:
        yield start, words, " ".join(words)


def _chunks(items: Iterable, n: int) -> Iterator[list]:
    chunk = []
    for it in items:
        chunk.append(it)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _select_layers(v: np.ndarray, layers: str, axis: int = 0) -> np.ndarray:
    """``v`` with its layer axis ``axis`` kept (``all``), reduced to the top layer, or averaged (in float32)."""
    if layers == "all":
        return v
    if layers == "top":
        return v.take(-1, axis)
    return v.astype(np.float32, copy=False).mean(axis)


def _sentence_to_index(inp: Path, tokenized: bool) -> tuple[bytes, int]:
    """The AllenNLP layout's ``sentence_to_index`` and the number of lines, in one pass over ``inp``.

    Returns:
        ``(json, lines)``: a JSON object (UTF-8) from each line's text to the key of its first line, built as bytes
        line by line (duplicates are found by 16-byte digests of the text, so memory holds the JSON, about the size
        of the input, and not a dict of every line's text).
    """
    import hashlib

    seen: set[bytes] = set()
    out = io.BytesIO()
    out.write(b"{")
    sep = ""
    k = -1
    for k, (_, _, text) in enumerate(read_sentences(inp, tokenized)):
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            out.write(f'{sep}{json.dumps(text, ensure_ascii=False)}: "{k}"'.encode("utf-8"))  # as json.dumps(dict)
            sep = ", "
    out.write(b"}")
    return out.getvalue(), k + 1


def write_hdf5(
    embedder: Embedder, input_path: str | Path, output_path: str | Path, layers: str = "all",
    dtype: str = "float32", layout: str = "allennlp", tokenized: bool = False, resume: bool = False,
    chunk_lines: int = 0, progress: bool = True, stop_after_chunks: int = 0, overwrite: bool = False,
) -> Path:
    """Stream ``input_path`` through the embedder into an HDF5 file (see the module docstring for the layouts).

    Lines are read, embedded and written ``chunk_lines`` at a time (0: 10,000 in the AllenNLP
    layout, whose memory holds one batch's vectors and the chunk's text; 1,000 in the packed layout, which holds the
    chunk's vectors). A chunk's sentences are sorted by length into batches; each chunk becomes one part file of
    ``OUTPUT.partial/``, and ``--resume`` continues after the last part that was recorded whole
    (:mod:`elmokit.vectors_hdf5` says how a kill or a full disk is survived). ``stop_after_chunks`` stops early as
    if killed (tests, time-sliced jobs). An existing ``OUTPUT`` is refused unless ``overwrite`` (it is then replaced
    only once the new file is complete). Peak memory is nearly flat in the input's size (recipes/README.md,
    Benchmarks): ``sentence_to_index`` is made first, before the biLM runs; batch shapes come from a bounded set
    (:meth:`Embedder._batches`, :data:`elmokit.modules.matmul.ROW_PAD`), so the kernels' shape-keyed caches stop
    growing; and the HDF5 library's metadata cache drops each dataset's header once it is written
    (:func:`elmokit.vectors_hdf5.open_hdf5`).

    Returns:
        The output path (``OUTPUT.partial`` when ``stop_after_chunks`` stopped it).
    """
    import hashlib

    import h5py
    from tqdm.auto import tqdm

    from elmokit.vectors_hdf5 import Partial, count_lines, new_dataset

    if layers not in LAYER_MODES:
        raise ElmokitError(f"--layers must be one of {LAYER_MODES}, got {layers!r}")
    if layout not in LAYOUTS:
        raise ElmokitError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    if dtype not in DTYPES:
        raise ElmokitError(f"--dtype must be float32 or float16, got {dtype!r}")
    inp = check_file(input_path)
    out = Path(output_path)
    if out.exists() and not overwrite:
        raise ElmokitError(f"{out}: exists; pass --overwrite to replace it (the old file stays until the new one is "
                           f"complete), or choose another output")
    # the packed layout buffers a chunk's vectors (its rows must be in line order); the AllenNLP layout holds one
    # batch, so its chunks can be larger: they are the window sentences are sorted in, and larger means less padding
    if chunk_lines <= 0:
        chunk_lines = 1000 if layout == "packed" else 10_000
    if embedder.stateful:  # a chunk is whole batches, so the batches are the same however the file is cut
        chunk_lines = -(-chunk_lines // embedder.batch_size) * embedder.batch_size
    packed = layout == "packed"
    options = {
        "input_sha256": sha256_file(inp), "model_sha256": embedder.bilm.sha256,
        "vocab_sha256": embedder.bilm.vocab.sha256, "layers": layers, "layout": layout, "dtype": dtype,
        "pooling": embedder.pooling, "tokenized": tokenized, "chunk_lines": chunk_lines,
        "max_words": embedder.max_words, "stateful": embedder.stateful,
        "batch_size": embedder.batch_size if embedder.stateful else 0,
    }
    if overwrite and not resume:
        shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
    # every line is validated before anything is written; sentence_to_index is made first, while memory is low
    if packed:
        s2i, total = None, sum(1 for _ in read_sentences(inp, tokenized))
    else:
        s2i, total = _sentence_to_index(inp, tokenized)
    s2i_sha = hashlib.sha256(s2i).hexdigest() if s2i is not None else ""
    attrs = {"elmokit_version": __version__, **options, "input": str(input_path), "num_layers": embedder.num_layers,
             "dim": embedder.dim, "sentences": total}
    partial = Partial(out, options, resume)
    done = partial.lines_done
    np_dtype = np.float16 if dtype == "float16" else np.float32
    buf_dtype = np.float32 if layers == "average" else np_dtype  # the average is taken in float32
    width = (embedder.num_layers, embedder.dim) if layers == "all" else (embedder.dim,)
    row_bytes = int(np.prod(width)) * np.dtype(np_dtype).itemsize

    def write_packed(f, words: list[list[str]]) -> None:
        """A chunk's lines: its vectors in the packed layout's word-major order (:meth:`Embedder.embed_packed`),
        already in the output dtype, and its offsets from 0."""
        vecs, offsets = embedder.embed_packed(words, "words", buf_dtype)  # (words, layers, 2D)
        f.create_dataset("vectors", data=_select_layers(vecs, layers, axis=1).astype(np_dtype, copy=False),
                         maxshape=(None, *width), chunks=(256, *width))  # (words, [layers,] 2D)
        f.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64), maxshape=(None,))
        bar.update(len(words))

    def write_sentences(f, words: list[list[str]], index: int) -> None:
        """A chunk's lines ``index ..``, one dataset each, written as each batch is done (a line longer than
        ``max_words``: window by window into its dataset)."""
        short = [j for j, w in enumerate(words) if len(w) <= embedder.max_words]
        for j in (j for j, w in enumerate(words) if len(w) > embedder.max_words):
            shape = (len(words[j]), embedder.dim)  # (words, 2D) for top and average
            if layers == "all":
                shape = (embedder.num_layers, *shape)  # (layers, words, 2D)
            dset = f.create_dataset(str(index + j), shape=shape, dtype=np_dtype)
            for start, part in embedder.iter_windows(words[j], buf_dtype):  # (layers, window words, 2D)
                dset[..., start : start + part.shape[1], :] = _select_layers(part, layers).astype(np_dtype, copy=False)
            bar.update(1)
            if partial.failed():
                return
        pending = 0
        for j, block in embedder.iter_sentences([words[j] for j in short], buf_dtype):  # (layers, words, 2D)
            new_dataset(f, str(index + short[j]), _select_layers(block, layers).astype(np_dtype, copy=False))
            pending += 1
            if pending == 256:
                bar.update(pending)
                pending = 0
                if partial.failed():  # the disk is full: this part cannot be kept
                    return
        bar.update(pending)

    def verify(f) -> None:
        """The merged file holds every line, and (AllenNLP layout) the sentence_to_index that was made."""
        held = count_lines(f, packed)
        ok = held == total and bool(f.attrs["complete"])
        if not packed:
            raw = f["sentence_to_index"][0]
            ok = ok and hashlib.sha256(raw if isinstance(raw, bytes) else raw.encode("utf-8")).hexdigest() == s2i_sha
        if not ok:
            raise ElmokitError(f"{out}: the merged file does not verify ({held} of {total} lines); this is a bug, "
                               f"please report it (the parts are kept in {partial.dir})")

    bar = tqdm(total=total, initial=done, unit="sent", desc="embedding", disable=not progress, dynamic_ncols=True)
    chunks_written = 0
    index = 0
    for chunk in _chunks(read_sentences(inp, tokenized), chunk_lines):
        words = [w for _, w, _ in chunk]
        if index + len(chunk) <= done:  # already written before the kill
            if embedder.stateful:  # replayed (not written) to rebuild the state the next chunk starts from
                embedder.embed_packed(words)
            index += len(chunk)
            continue
        first = index == 0
        estimate = (sum(len(w) for w in words) * row_bytes + 1024 * len(words)
                    + (len(s2i) if first and s2i is not None else 0))
        with partial.part(index, len(words), estimate, packed) as f:
            if first:  # part 0 holds the file's attributes and sentence_to_index
                for k, v in attrs.items():
                    f.attrs[k] = v
                f.attrs["complete"] = False
                f.attrs["lines_done"] = 0
                if s2i is not None:
                    f.create_dataset("sentence_to_index", data=np.array([s2i], dtype=object),
                                     dtype=h5py.string_dtype("utf-8"))
            if packed:
                write_packed(f, words)
            else:
                write_sentences(f, words, index)
        index += len(chunk)
        chunks_written += 1
        if stop_after_chunks and chunks_written >= stop_after_chunks and index < total:
            bar.close()
            return partial.dir
    bar.close()
    del s2i
    return partial.finish(packed, total, verify)
