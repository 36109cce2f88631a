"""Contextual vectors: the :class:`Embedder` API, the streaming HDF5 writer (two layouts) and the reader.

HDF5 layouts (both carry provenance attributes: ``elmokit_version``, ``model_sha256``, ``vocab_sha256``,
``layers`` (all|top|average), ``pooling``, ``dtype``, ``layout``, ``input``, ``input_sha256``, ``sentences``,
``complete``):

- ``allennlp`` (default; what AllenNLP's removed ``elmo`` command wrote): one dataset per input line, keyed by the
  line's 0-based index as a string (``"0"``, ``"1"``, ...), of shape ``(layers, words, 2D)`` with ``--layers all``
  or ``(words, 2D)`` with ``top``/``average``; plus ``sentence_to_index``, a JSON map from sentence text to its key
  (the first line with that text, so duplicates do not overwrite each other).
- ``packed`` (for large corpora): ``vectors`` of shape ``(total_words, layers, 2D)`` (or ``(total_words, 2D)``),
  chunked along words, and ``offsets`` ``(sentences + 1,)``: sentence ``i`` is ``vectors[offsets[i]:offsets[i+1]]``
  (word-major; transpose to ``(layers, words, 2D)``).

An empty input line is a sentence of zero words: its dataset has shape ``(layers, 0, 2D)`` (or ``(0, 2D)``).
The file is written as ``OUTPUT.partial`` and renamed when complete, so a file with the final name is always whole;
after a kill, ``--resume`` continues from the last completed chunk of lines.
"""

from __future__ import annotations

import functools
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from elmokit import __version__
from elmokit.errors import ElmokitError
from elmokit.textfile import check_file, sha256_file

if TYPE_CHECKING:
    import torch

LAYOUTS = ("allennlp", "packed")
LAYER_MODES = ("all", "top", "average")
ROW_MULTIPLE = 16  # a batch of 16 sentences or more holds a multiple of this many (Embedder._batches)


class Embedder:
    """Layer-wise contextual word vectors from a biLM bundle (or a forward and a backward model directory).

    Example::

        emb = Embedder("runs/bilm")
        vecs = emb.embed_sentences(["The cat sat .", "Hello"])   # [(layers, 4, 2D), (layers, 1, 2D)]

    Args:
        model: a bundle directory, or the forward model directory when ``backward`` is given.
        backward: the backward model directory (optional).
        device: torch device.
        pooling: ``edges`` (default) | ``first`` | ``last`` | ``mean``.
        batch_tokens: pieces per batch (padded size) when embedding many sentences; sentences are sorted by their
            number of pieces first, so little is padding.
        max_words: longer sentences are embedded in windows of this many words (memory stays bounded).
    """

    def __init__(self, model: str | Path, backward: str | Path | None = None, device: str = "cpu",
                 pooling: str = "edges", batch_tokens: int = 1000, max_words: int = 1000) -> None:
        from elmokit.bilm import load_bilm

        self.bilm = load_bilm(model, backward, device)
        self.pooling = pooling
        self.batch_tokens = batch_tokens
        self.max_words = max_words

    @classmethod
    def from_bilm(cls, bilm, pooling: str = "edges", batch_tokens: int = 1000, max_words: int = 1000) -> Embedder:
        """An embedder around an already loaded :class:`~elmokit.bilm.BiLM`."""
        self = cls.__new__(cls)
        self.bilm, self.pooling, self.batch_tokens, self.max_words = bilm, pooling, batch_tokens, max_words
        return self

    @property
    def num_layers(self) -> int:
        return self.bilm.num_layers

    @property
    def dim(self) -> int:
        """Width of every layer (2D)."""
        return 2 * self.bilm.dim

    def _batches(self, lengths: list[int]) -> Iterator[list[int]]:
        """Indices grouped into length-sorted batches of at most ``batch_tokens`` padded pieces.

        A batch of ``ROW_MULTIPLE`` (16) sentences or more holds a multiple of that many (the sentences over it open
        the next batch), so the batch shapes, and with them oneDNN's kernels and caches (one entry per shape), come
        from a set that does not grow with the input: ``elmokit embed``'s memory stays flat on a large corpus.

        Args:
            lengths: sequence length (pieces, with the two ``</s>``) of each sentence.
        """
        def kept(n: int) -> int:  # how many of a full batch's n sentences go: all, or a multiple of ROW_MULTIPLE
            return n - n % ROW_MULTIPLE if n >= ROW_MULTIPLE else n

        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batch: list[int] = []
        for i in order:  # ascending: sentence i is the longest of the batch it joins
            while batch and lengths[i] * (len(batch) + 1) > self.batch_tokens:
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
        win_sent = offsets[owner]  # (windows,) first word of each window's sentence
        win_sent_len = offsets[owner + 1] - win_sent  # (windows,) words of that sentence
        L, W, D2 = self.num_layers, int(starts[-1]), self.dim
        rows = np.empty((L * W, D2), dtype=dtype)  # one row of 2D per (layer, word), placed as `order` says
        layer = np.arange(L, dtype=np.int64)[:, None]  # (layers, 1)
        for idx, words in self._window_batches(windows):  # words: (layers, batch words, 2D)
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
            buf, offsets = self.embed_packed([sentences[k]], "sentences", dtype)
            yield k, sentence_blocks(buf, offsets, self.num_layers)[0]
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
                windows.extend(s[j : j + self.max_words] for j in range(0, len(s), self.max_words))
            owner.extend([k] * (len(windows) - len(owner)))
        starts = np.concatenate([[0], np.cumsum([len(w) for w in windows], dtype=np.int64)])  # per window
        offsets = np.concatenate([starts[first], starts[-1:]]).astype(np.int64)  # per sentence
        return windows, starts, offsets, np.asarray(owner, dtype=np.int64)

    def _window_batches(self, windows: list[list[str]]) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Length-sorted batches of the windows through the biLM: ``(indices, (layers, batch words, 2D))``, the
        words of the batch's windows back to back in the order of ``indices``."""
        pieces = self.bilm.pieces(windows)  # one sentencepiece call for all of them
        lengths = [sum(len(w) for w in p) + 2 for p in pieces]
        for idx in self._batches(lengths):
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

    def embed_file(self, input_path: str | Path, output_path: str | Path, **kwargs) -> Path:
        """Embed a text file into HDF5; see :func:`write_hdf5` for the options."""
        return write_hdf5(self, input_path, output_path, **kwargs)


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


def _new_dataset(f, name: str, data: np.ndarray) -> None:
    """``f.create_dataset(name, data=data)`` for a C-contiguous array, through h5py's low-level API: the same
    contiguous dataset (no creation times, as h5py's default), at under half the cost per dataset (the creation
    property list and the HDF5 type are made once per dtype, :func:`_dataset_props`), which matters for the
    one-dataset-per-sentence layout."""
    import h5py

    data = np.ascontiguousarray(data)
    dcpl, h5type = _dataset_props(data.dtype)
    dset = h5py.h5d.create(f.id, name.encode(), h5type, h5py.h5s.create_simple(data.shape), dcpl=dcpl)
    if data.size:
        dset.write(h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=h5type)


@functools.lru_cache(maxsize=None)
def _dataset_props(dtype: np.dtype) -> tuple:
    """The dataset creation property list (creation times not tracked) and the HDF5 type for ``dtype``."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    return dcpl, h5py.h5t.py_create(dtype)


def _open_output(path: Path, mode: str):
    """Open (``"a"``) or create (``"w"``) ``elmokit embed``'s HDF5 file, set up to keep memory flat.

    - Each dataset's metadata (its object header) leaves the HDF5 library's metadata cache when the dataset is
      closed (``H5Pset_evict_on_close``), so the cache holds the root group's index only (~1 MiB per 100k
      sentences). Otherwise it fills with the headers of every dataset written.
    - The cache is capped at 4 MiB (by default it may grow to 32 MiB).

    Where h5py's HDF5 does not export ``H5Pset_evict_on_close`` (not reachable through ctypes, e.g. on Windows),
    only the cap applies.
    """
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # as h5py.File's own: closing the file closes its objects
    evict_on_close = _evict_on_close()
    if evict_on_close is not None:
        evict_on_close(fapl.id, True)
    name = os.fsencode(path)
    if mode == "w":
        fid = h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl)
    else:
        fid = h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl)
    f = h5py.File(fid)
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.max_size = config.initial_size = 4 * 2**20
    config.min_size = min(config.min_size, config.max_size)
    f.id.set_mdc_config(config)
    return f


@functools.lru_cache(maxsize=1)
def _evict_on_close():
    """HDF5's ``H5Pset_evict_on_close(fapl, flag)`` through ctypes (h5py does not wrap it), or None.

    Looked up through h5py's own extension module, so the symbol resolves in the HDF5 library that h5py loaded
    (``dlsym`` searches a library's dependencies)."""
    import ctypes

    import h5py

    try:
        fn = ctypes.CDLL(h5py.h5p.__file__).H5Pset_evict_on_close
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int64, ctypes.c_bool]  # hid_t (64-bit since HDF5 1.10), hbool_t
    fn.restype = ctypes.c_int  # herr_t: negative on failure (e.g. parallel HDF5), when the cap alone applies
    return fn


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
    chunk_lines: int = 0, progress: bool = True, stop_after_chunks: int = 0,
) -> Path:
    """Stream ``input_path`` through the embedder into an HDF5 file (see the module docstring for the layouts).

    Lines are read, embedded and written ``chunk_lines`` at a time (0: 10,000 in the AllenNLP
    layout, whose memory holds one batch's vectors and the chunk's text; 1,000 in the packed layout, which holds the
    chunk's vectors). A chunk's sentences are sorted by length into batches, and ``--resume`` continues after the
    last whole chunk. ``stop_after_chunks`` stops early as if killed (tests, time-sliced jobs); ``resume``
    continues a ``.partial`` file. Peak memory is nearly flat in the input's size (recipes/README.md, Benchmarks):
    ``sentence_to_index`` is written first, before the biLM runs; batch shapes come from a bounded set
    (:meth:`Embedder._batches`, :data:`elmokit.modules.matmul.ROW_PAD`), so the kernels' shape-keyed caches stop
    growing; and the HDF5 library's metadata cache drops each dataset's header once it is written
    (:func:`_open_output`).

    Returns:
        The output path.
    """
    import h5py
    from tqdm.auto import tqdm

    if layers not in LAYER_MODES:
        raise ElmokitError(f"--layers must be one of {LAYER_MODES}, got {layers!r}")
    if layout not in LAYOUTS:
        raise ElmokitError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    if dtype not in ("float32", "float16"):
        raise ElmokitError(f"--dtype must be float32 or float16, got {dtype!r}")
    inp = check_file(input_path)
    out = Path(output_path)
    partial = out.with_name(out.name + ".partial")
    in_sha = sha256_file(inp)
    # both validate every line before anything is written; sentence_to_index is made first, while memory is low
    if layout == "allennlp":
        s2i, total = _sentence_to_index(inp, tokenized)
    else:
        s2i, total = None, sum(1 for _ in read_sentences(inp, tokenized))
    attrs = {
        "elmokit_version": __version__, "model_sha256": embedder.bilm.sha256,
        "vocab_sha256": embedder.bilm.vocab.sha256, "layers": layers, "pooling": embedder.pooling, "dtype": dtype,
        "layout": layout, "input": str(input_path), "input_sha256": in_sha, "tokenized": tokenized,
        "num_layers": embedder.num_layers, "dim": embedder.dim, "sentences": total,
    }
    done = 0
    if resume and partial.exists():
        try:
            f = _open_output(partial, "a")
        except OSError as e:
            raise ElmokitError(f"{partial}: cannot be opened ({e}); it was damaged by the kill. Delete it and run "
                               f"again without --resume") from None
        for k in ("input_sha256", "model_sha256", "layers", "layout", "dtype", "pooling"):
            before = f.attrs.get(k)
            if str(before) != str(attrs[k]):
                f.close()
                raise ElmokitError(f"{partial}: was started with {k}={before!r}, now {attrs[k]!r}; resume "
                                   f"with the same input and options, or delete it")
        done = int(f.attrs["lines_done"])
    else:  # a fresh .partial (an existing OUTPUT is replaced only when the new one is complete)
        f = _open_output(partial, "w")
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["complete"] = False
        f.attrs["lines_done"] = 0
    if s2i is not None and "sentence_to_index" not in f:
        f.create_dataset("sentence_to_index", data=np.array([s2i], dtype=object), dtype=h5py.string_dtype("utf-8"))
    del s2i
    np_dtype = np.float16 if dtype == "float16" else np.float32
    width = (embedder.num_layers, embedder.dim) if layers == "all" else (embedder.dim,)
    if layout == "packed":
        if "vectors" not in f:
            f.create_dataset("vectors", shape=(0, *width), maxshape=(None, *width), dtype=np_dtype,
                             chunks=(256, *width))
            f.create_dataset("offsets", shape=(1,), maxshape=(None,), dtype=np.int64, data=[0])
        vec_ds, off_ds = f["vectors"], f["offsets"]
        # drop anything past the last completed chunk
        off_ds.resize((done + 1,))
        vec_ds.resize((int(off_ds[done]), *width))
    else:
        stale = [k for k in f.keys() if k.isdigit() and int(k) >= done]
        for k in stale:
            del f[k]
    buf_dtype = np.float32 if layers == "average" else np_dtype  # the average is taken in float32

    def write_packed(words: list[list[str]], index: int) -> None:
        """Lines ``index ..`` as one block: the chunk's vectors in the packed layout's word-major order
        (:meth:`Embedder.embed_packed`), already in the output dtype, so the chunk is written as it is."""
        vecs, offsets = embedder.embed_packed(words, "words", buf_dtype)  # (words, layers, 2D)
        start = vec_ds.shape[0]
        vec_ds.resize((start + vecs.shape[0], *width))
        if vecs.shape[0]:
            vec_ds[start:] = _select_layers(vecs, layers, axis=1).astype(np_dtype, copy=False)  # (words, [layers,] 2D)
        off_ds.resize((index + len(words) + 1,))
        off_ds[index + 1 :] = start + np.asarray(offsets[1:], dtype=np.int64)
        bar.update(len(words))

    def write_sentences(words: list[list[str]], index: int) -> None:
        """Lines ``index ..``, one dataset each, written as each batch is done (a killed chunk's datasets are
        deleted on resume)."""
        pending = 0
        for j, block in embedder.iter_sentences(words, buf_dtype):  # (layers, words, 2D)
            _new_dataset(f, str(index + j), _select_layers(block, layers).astype(np_dtype, copy=False))
            pending += 1
            if pending == 256:
                bar.update(pending)
                pending = 0
        bar.update(pending)

    # the packed layout buffers a chunk's vectors (its rows must be in line order); the AllenNLP layout holds one
    # batch, so its chunks can be larger: they are the window sentences are sorted in, and larger means less padding
    if chunk_lines <= 0:
        chunk_lines = 1000 if layout == "packed" else 10_000
    bar = tqdm(total=total, initial=done, unit="sent", desc="embedding", disable=not progress, dynamic_ncols=True)
    sentences = read_sentences(inp, tokenized)
    chunks_written = 0
    index = 0
    try:
        for chunk in _chunks(sentences, chunk_lines):
            if index + len(chunk) <= done:  # already written before the kill
                index += len(chunk)
                continue
            (write_packed if layout == "packed" else write_sentences)([w for _, w, _ in chunk], index)
            index += len(chunk)
            f.attrs["lines_done"] = index  # the chunk is whole
            f.flush()
            chunks_written += 1
            if stop_after_chunks and chunks_written >= stop_after_chunks and index < total:
                bar.close()
                f.close()
                return partial
        bar.close()
        f.attrs["complete"] = True
        f.close()
    except BaseException:
        try:
            f.close()
        except Exception:  # noqa: BLE001
            pass
        raise
    os.replace(partial, out)
    return out


class EmbeddingsFile:
    """Read an elmokit (or AllenNLP ``elmo``) HDF5 file of either layout.

    Example::

        with EmbeddingsFile("vectors.hdf5") as e:
            len(e), e[0].shape          # sentences, (layers, words, 2D) or (words, 2D)

    Raises:
        ElmokitError: a file that is not complete (``.partial``, killed) or not HDF5.
    """

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = Path(path)
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise ElmokitError(f"{path}: not a readable HDF5 file ({e}); it may be truncated. Re-run "
                               f"`elmokit embed` (with --resume if a .partial file exists)") from None
        if self.f.attrs.get("complete") is not None and not bool(self.f.attrs["complete"]):
            self.f.close()
            raise ElmokitError(f"{path}: incomplete (the run stopped before the end); continue it with "
                               f"`elmokit embed ... --resume`")
        self.attrs = dict(self.f.attrs)
        self.packed = "offsets" in self.f
        self.all_layers = self.attrs.get("layers", "all") == "all"
        if self.packed:
            self.offsets = self.f["offsets"][:]

    def __len__(self) -> int:
        if self.packed:
            return len(self.offsets) - 1
        return sum(1 for k in self.f.keys() if k.isdigit())

    def __getitem__(self, i: int) -> np.ndarray:
        """Sentence ``i``: ``(layers, words, 2D)`` (``--layers all``) or ``(words, 2D)``."""
        if self.packed:
            if not 0 <= i < len(self):
                raise IndexError(i)
            v = self.f["vectors"][self.offsets[i] : self.offsets[i + 1]]  # (words, [layers,] 2D)
            return np.ascontiguousarray(np.moveaxis(v, 0, 1)) if v.ndim == 3 else v
        key = str(i)
        if key not in self.f:
            raise IndexError(i)
        return self.f[key][()]

    def sentence_to_index(self) -> dict[str, str]:
        if "sentence_to_index" not in self.f:
            return {}
        raw = self.f["sentence_to_index"][0]
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> EmbeddingsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

