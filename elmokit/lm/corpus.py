"""Corpus → cached, memory-mapped token array → contiguous streams per process for stateful truncated BPTT.

Encoding runs on HF ``datasets`` (``Dataset.from_generator`` over validated lines, then a parallel ``map``), and
the result is flattened into one ``int32`` ``.npy`` file opened with ``mmap``: a corpus larger than RAM works, and a
second run with the same files and vocabulary reuses the cache. Layout of the token array::

    </s> pieces(line 1) </s> pieces(line 2) </s> ... pieces(line n) </s>

so every line (empty ones too) ends with ``</s>``, as in the word-level LM literature, and every token after the
first is a prediction target. The backward LM reads the same array reversed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from elmokit.core.errors import CorpusError, ElmokitError
from elmokit.core.textfile import check_file, iter_lines
from elmokit.lm.vocab import EOS_ID, PAD_ID, Vocab
from elmokit.lm.words import WordTable, scored

CACHE_FORMAT = 1
_SP = {}  # per-process sentencepiece processors for datasets.map workers


def _gen_lines(files: list[str], max_line_chars: int, cache_key: str = "") -> Iterator[dict]:
    # cache_key is unused here: it is in the arguments so that datasets' fingerprint changes with the files' contents
    for f in files:
        for _, line in iter_lines(f, max_line_chars):
            yield {"text": line}


def _encode_batch(batch: dict, model_path: str) -> dict:
    sp = _SP.get(model_path)
    if sp is None:
        import sentencepiece as spm

        sp = _SP[model_path] = spm.SentencePieceProcessor(model_file=model_path)
    ids = sp.encode(batch["text"], out_type=int)
    return {"ids": [x + [EOS_ID] for x in ids]}


def _cache_key(sources: list[str], vocab: Vocab, max_line_chars: int) -> str:
    h = hashlib.sha256()
    h.update(f"format={CACHE_FORMAT};vocab={vocab.sha256};max_line_chars={max_line_chars}".encode())
    for s in sources:
        if s.startswith("hf:"):
            h.update(s.encode())
        else:
            st = check_file(s).stat()  # a missing file is a CorpusError naming it, not a FileNotFoundError
            h.update(f"{Path(s).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _load_dataset(sources: list[str], max_line_chars: int, cache_dir: Path, cache_key: str):
    import datasets

    hub = [s for s in sources if s.startswith("hf:")]
    local = [s for s in sources if not s.startswith("hf:")]
    parts = []
    if local:
        for f in local:
            check_file(f)
        parts.append(
            datasets.Dataset.from_generator(
                _gen_lines,
                gen_kwargs={"files": local, "max_line_chars": max_line_chars, "cache_key": cache_key},
                cache_dir=str(cache_dir / "hf"),
            )
        )
    for s in hub:  # hf:NAME[:SPLIT[:COLUMN]] -- needs network access to the hub
        name, split, column = (s[3:].split(":") + ["train", "text"])[:3]
        ds = datasets.load_dataset(name, split=split, cache_dir=str(cache_dir / "hf"))
        if column not in ds.column_names:
            raise CorpusError(f"{s}: dataset has no column {column!r} (columns: {ds.column_names})")
        parts.append(ds.select_columns([column]).rename_column(column, "text"))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def encode_corpus(
    sources: list[str],
    vocab: Vocab,
    cache_dir: str | Path = "~/.cache/elmokit",
    num_proc: int = 1,
    max_line_chars: int = 20000,
    progress: bool = True,
) -> np.ndarray:
    """Encode text files into a cached, memory-mapped ``int32`` token array (see the module docstring).

    Args:
        sources: text files, one sentence per line (or ``hf:NAME[:SPLIT[:COLUMN]]`` for hub datasets).
        vocab: the sentencepiece vocabulary.
        cache_dir: where the token arrays (and the ``datasets`` cache) live.
        num_proc: encoding processes.
        max_line_chars: longer lines are split at whitespace first.

    Returns:
        A read-only ``np.memmap`` of shape ``(n_tokens,)``.

    Raises:
        CorpusError: a missing, empty or malformed file (names the file and line).
    """
    if not sources:
        raise CorpusError("no corpus files given; set data.train (and data.valid) in the config")
    cache = Path(os.path.expanduser(str(cache_dir)))
    cache.mkdir(parents=True, exist_ok=True)
    key = _cache_key(sources, vocab, max_line_chars)
    out = cache / f"tokens-{key}.npy"
    if out.exists():
        return np.load(out, mmap_mode="r")

    import datasets

    if not progress:
        datasets.disable_progress_bars()
    # validate first: datasets would hide the file and line of a bad byte behind a long traceback
    for s in sources:
        if not s.startswith("hf:"):
            for _ in iter_lines(s, max_line_chars):
                pass
    ds = _load_dataset(sources, max_line_chars, cache, key)
    if len(ds) == 0:
        raise CorpusError(f"{sources[0]}: no lines to encode")
    ds = ds.map(
        _encode_batch,
        batched=True,
        batch_size=2000,
        num_proc=num_proc if num_proc > 1 and len(ds) > 4 * 2000 else None,
        remove_columns=["text"],
        fn_kwargs={"model_path": str(vocab.path.resolve())},
        desc="encoding",
    )
    # two passes over Arrow batches (memory-mapped), never the whole column in Python: size, then copy
    total = 1 + sum(sum(len(x) for x in batch["ids"]) for batch in ds.iter(batch_size=10000))
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(total,))
    arr[0] = EOS_ID
    pos = 1
    for batch in ds.iter(batch_size=10000):
        flat = np.fromiter((i for ids in batch["ids"] for i in ids), dtype=np.int32)
        arr[pos : pos + len(flat)] = flat
        pos += len(flat)
    assert pos == total, (pos, total)
    arr.flush()
    del arr
    os.replace(tmp, out)
    meta = {"sources": sources, "vocab_sha256": vocab.sha256, "lines": len(ds), "tokens": total}
    (cache / f"tokens-{key}.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return np.load(out, mmap_mode="r")


def unigram_counts(tokens: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> np.ndarray:
    """Token counts over the array (chunked, so a memory-mapped corpus is not loaded whole)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for i in range(0, len(tokens), chunk):
        counts += np.bincount(np.asarray(tokens[i : i + chunk]), minlength=vocab_size)[:vocab_size]
    return counts


class StreamBatcher:
    """``B`` contiguous streams over a token array, sharded per process, for stateful truncated BPTT.

    The array is cut into ``global_batch`` equal streams; process ``rank`` of ``world`` owns the contiguous block
    of rows ``[rank * B_local, (rank + 1) * B_local)``, so each stream stays contiguous on one process (its carried
    state stays valid) and every process has the same number of steps. Step ``s`` of an epoch returns tokens
    ``[s * bptt, (s + 1) * bptt)`` of every local stream as inputs and the next tokens as targets. With
    ``reverse=True`` the array is read back to front (the backward LM). With ``words`` (a word token array's
    :class:`~elmokit.lm.words.WordTable`) the inputs are the words' characters and the targets the softmax's.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        global_batch: int,
        bptt: int,
        rank: int = 0,
        world: int = 1,
        reverse: bool = False,
        words: WordTable | None = None,
    ) -> None:
        if global_batch % world:
            raise ElmokitError(
                f"train.batch_size={global_batch} streams cannot be split over {world} processes; "
                f"use a multiple of {world}"
            )
        self.tokens = tokens[::-1] if reverse else tokens
        self.reverse = reverse
        self.words = words
        self.bptt = bptt
        self.global_batch = global_batch
        self.local_batch = global_batch // world
        self.rank = rank
        self.stream_len = (len(tokens) - 1) // global_batch
        self.steps_per_epoch = self.stream_len // bptt
        if self.steps_per_epoch < 1:
            raise CorpusError(
                f"corpus of {len(tokens)} tokens is too small for {global_batch} streams x bptt {bptt}; "
                f"lower train.batch_size or train.bptt, or give more text"
            )
        self._rows = [(rank * self.local_batch + j) * self.stream_len for j in range(self.local_batch)]

    def restarts(self, step: int, every: int, part: int = 0, parts: int = 1) -> np.ndarray:
        """Which streams of micro-batch ``part`` of ``parts`` restart from a zero state at (global) ``step``, when
        each restarts once every ``every`` steps: ``(local_batch / parts,)`` bool. Stream ``g`` (its global index,
        the same whatever the process count) restarts at the steps ``≡ g * every // global_batch (mod every)``, so
        the restarts are spread evenly over the steps rather than all at once."""
        n = self.local_batch // parts
        g = np.arange(n) + self.rank * self.local_batch + part * n  # (n,) global stream indices
        return (step - g * every // self.global_batch) % every == 0

    def batch(self, step: int, part: int = 0, parts: int = 1):
        """Inputs and targets of ``step`` (within the epoch): micro-batch ``part`` of ``parts`` (equal shares of
        the local streams).

        Returns:
            ``(x, y)``: ``torch.long`` tensors of shape ``(local_batch / parts, bptt)`` (with ``words``: ``x`` a
            :class:`~elmokit.lm.words.CharInputs`, ``y`` the softmax's targets).
        """
        import torch

        t0 = step * self.bptt
        n = self.local_batch // parts
        rows = self._rows[part * n : (part + 1) * n]
        block = np.stack([np.asarray(self.tokens[r + t0 : r + t0 + self.bptt + 1]) for r in rows])  # (n, bptt + 1)
        if self.words is not None:
            return self.words.inputs(block[:, :-1]), self.words.targets(block[:, 1:])
        block = torch.from_numpy(block.astype(np.int64))  # (n, bptt + 1)
        return block[:, :-1], block[:, 1:]


def eval_batches(
    tokens: np.ndarray,
    batch: int,
    bptt: int,
    reverse: bool = False,
    max_tokens: int = 0,
    words: WordTable | None = None,
):
    """Yield ``(x, y, mask)`` chunks that predict every token after the first exactly once (stateful evaluation).

    The targets (positions ``1 .. n-1``) are cut into ``batch`` contiguous streams; the tail is padded and masked.
    With ``words`` (see :class:`StreamBatcher`), ``x`` is a :class:`~elmokit.lm.words.CharInputs` and the mask
    leaves out the unscored sentence starts.

    Yields:
        ``x``, ``y``: ``torch.long`` of shape ``(batch, t)`` with ``t <= bptt``; ``mask``: bool, same shape.
    """
    import torch

    arr = tokens[::-1] if reverse else tokens
    n = len(arr)
    if max_tokens and n - 1 > max_tokens:
        n = max_tokens + 1
    n_targets = n - 1
    L = math.ceil(n_targets / batch)
    padded = np.full(batch * L + 1, PAD_ID, dtype=np.int64)
    padded[:n] = np.asarray(arr[:n])
    valid = np.zeros(batch * L + 1, dtype=bool)
    valid[1:n] = True
    x_all = np.stack([padded[j * L : j * L + L] for j in range(batch)])  # (batch, L)
    y_all = np.stack([padded[j * L + 1 : j * L + L + 1] for j in range(batch)])
    m_all = torch.from_numpy(np.stack([valid[j * L + 1 : j * L + L + 1] for j in range(batch)]))
    for t0 in range(0, L, bptt):
        x, y, m = x_all[:, t0 : t0 + bptt], y_all[:, t0 : t0 + bptt], m_all[:, t0 : t0 + bptt]
        if words is None:
            yield torch.from_numpy(x), torch.from_numpy(y), m
        else:
            y = words.targets(y)  # (batch, t)
            yield words.inputs(x), y, m & scored(y, reverse)
