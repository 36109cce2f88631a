"""Where a downstream model's biLM vectors come from: the frozen biLM per batch (:class:`LiveFeatures`), or an
HDF5 cache written once per split (:class:`CachedFeatures`), which makes every later epoch much cheaper.

The cache is ``elmokit embed``'s ``packed`` layout (``vectors`` ``(total_words, layers, 2D)``, ``offsets``),
named by a hash of the biLM, the pooling, the dtype and the split's words, so a changed input or model never
reads a stale file; it is written through :func:`elmokit.embed.layouts.packed_file` (a temporary name, fsynced, read
back, renamed; a full disk is one error line naming the file, as in ``elmokit embed``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from torch import Tensor

from elmokit import __version__
from elmokit.bilm.frozen import pad_layers

IN_MEMORY_BYTES = 8 << 30  # caches up to this size are read into memory (else read per batch from disk)


class LiveFeatures:
    """The frozen biLM run on each batch's sentences (per-sentence state, so batch-independent)."""

    def __init__(self, bilm, pooling: str = "edges") -> None:
        self.bilm = bilm
        self.pooling = pooling

    def layers(self, indices: list[int], sentences: list[list[str]], width: int) -> Tensor:
        """``(batch, layers, width, 2D)`` for ``sentences`` (``indices`` are unused here)."""
        return self.bilm.padded(sentences, width, self.pooling)  # (batch, layers, width, 2D)


class _StoredFeatures:
    """Per-sentence vectors read from a file; subclasses give :meth:`get`."""

    def get(self, i: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def layers(self, indices: list[int], sentences: list[list[str]], width: int) -> Tensor:
        """``(batch, layers, width, 2D)`` float32 for the split's sentences ``indices``."""
        return pad_layers([self.get(i) for i in indices], width)


class CachedFeatures(_StoredFeatures):
    """Vectors of one split read from its HDF5 cache (see :func:`build_cache`), through the same reader as every
    ``elmokit embed`` file (:class:`~elmokit.embed.layouts.EmbeddingsFile`), held in memory up to 8 GiB."""

    def __init__(self, path: str | Path) -> None:
        from elmokit.embed.layouts import EmbeddingsFile

        self.path = Path(path)
        self.file = EmbeddingsFile(self.path, IN_MEMORY_BYTES)

    def __len__(self) -> int:
        return len(self.file)

    def get(self, i: int) -> np.ndarray:
        """Sentence ``i`` as ``(layers, words, 2D)``."""
        return self.file[i]

    def close(self) -> None:
        self.file.close()


class EmbedFileFeatures(_StoredFeatures):
    """Vectors of one split from an ``elmokit embed --layers all`` file (either layout), checked against the biLM
    and the split: the same model hash, one sentence per example, the same number of words in each.

    Raises:
        ElmokitError: a file from another biLM, with other layers, or for other sentences; a file with links
            (soft, external), virtual datasets or external storage (:func:`~elmokit.embed.hdf5_safe.refuse_links`).
    """

    def __init__(self, path: str | Path, bilm_sha: str, items: list) -> None:
        from elmokit.core.errors import ElmokitError
        from elmokit.embed.hdf5_safe import refuse_links
        from elmokit.embed.layouts import EmbeddingsFile

        refuse_links(path, "a features file (data.train_hdf5, dev_hdf5, test_hdf5)")  # before anything is read
        self.file = EmbeddingsFile(path)
        a = self.file.attrs
        if str(a.get("model_sha256", "")) != bilm_sha:
            raise ElmokitError(
                f"{path}: made with biLM {str(a.get('model_sha256'))[:12]}…, the model uses "
                f"{bilm_sha[:12]}…; embed the split again with model.bilm"
            )
        if not self.file.all_layers:
            raise ElmokitError(
                f"{path}: has --layers {a.get('layers')}; the scalar mix needs every layer "
                f"(`elmokit embed ... --layers all`)"
            )
        if len(self.file) < len(items):  # more is fine: data.max_train uses the first N
            raise ElmokitError(
                f"{path}: {len(self.file)} sentences, the split has {len(items)}; embed the same "
                f"file (for CoNLL/CoNLL-U: `elmokit embed BILM FILE OUT --tokenized`)"
            )
        self.path, self.items = path, items

    def get(self, i: int) -> np.ndarray:
        """Sentence ``i`` as ``(layers, words, 2D)``."""
        from elmokit.core.errors import ElmokitError

        v = self.file[i]
        if v.shape[1] != len(self.items[i].words):
            raise ElmokitError(
                f"{self.path}: sentence {i} has {v.shape[1]} words, the split's example at line "
                f"{self.items[i].line} has {len(self.items[i].words)}; the file is of other text"
            )
        return v

    def close(self) -> None:
        self.file.close()


def cache_key(bilm_sha: str, pooling: str, dtype: str, sentences: list[list[str]]) -> str:
    h = hashlib.sha256(f"{bilm_sha}\n{pooling}\n{dtype}\n".encode())
    for s in sentences:
        h.update(json.dumps(s, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def build_cache(
    embedder,
    sentences: list[list[str]],
    cache_dir: str | Path,
    name: str,
    dtype: str = "float16",
    progress: bool = True,
    chunk: int = 2000,
) -> Path:
    """Embed ``sentences`` once into ``cache_dir/NAME-KEY.hdf5`` (reused while biLM and words are the same).

    Returns:
        The cache file's path.
    """
    from tqdm.auto import tqdm

    from elmokit.embed.hdf5_safe import DiskError
    from elmokit.embed.layouts import packed_file

    key = cache_key(embedder.bilm.sha256, embedder.pooling, dtype, sentences)
    path = Path(os.path.expanduser(str(cache_dir))) / f"{name}-{key[:16]}.hdf5"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
    attrs = {
        "elmokit_version": __version__,
        "model_sha256": embedder.bilm.sha256,
        "vocab_sha256": embedder.bilm.vocab.sha256,
        "pooling": embedder.pooling,
        "dtype": dtype,
        "layers": "all",
        "num_layers": embedder.num_layers,
        "dim": embedder.dim,
        "key": key,
    }
    try:
        with packed_file(path, attrs, offsets, (embedder.num_layers, embedder.dim), np_dtype) as vec:
            bar = tqdm(
                total=len(sentences), unit="sent", desc=f"caching {name}", disable=not progress, dynamic_ncols=True
            )
            for start in range(0, len(sentences), chunk):
                part = sentences[start : start + chunk]
                words, _ = embedder.embed_packed(part, "words", np_dtype)  # (words, layers, 2D), back to back
                if words.shape[0]:
                    vec[offsets[start] : offsets[start + len(part)]] = words
                bar.update(len(part))
            bar.close()
    except DiskError as e:  # embed's advice (parts, --resume) does not apply to a cache: say what does
        why = str(e).split(": cannot write: ")[-1].split(".")[0]  # "the disk is full", or the OS error
        raise DiskError(
            f"{path}: cannot write the biLM feature cache ({why}); nothing was kept: free space or "
            f"set train.cache_dir to another disk, then run again (a stopped run continues with "
            f"--resume)"
        ) from None
    return path
