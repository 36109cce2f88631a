"""``elmokit embed``: a text file streamed through an :class:`~elmokit.embed.embedder.Embedder` into an HDF5
file of either layout (:mod:`elmokit.embed.layouts` describes them and holds the parts, journal and merge that
make a kill or a full disk harmless).
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from elmokit import __version__
from elmokit.core.choices import DTYPES, LAYER_MODES, LAYOUTS
from elmokit.core.errors import ElmokitError
from elmokit.core.textfile import check_file, sha256_file
from elmokit.embed.layouts import Partial


class VectorSource(Protocol):
    """What the writer asks of an :class:`~elmokit.embed.embedder.Embedder` (the only implementation; named here
    so that the writer does not import the class that calls it)."""

    bilm: Any  # the frozen biLM: its sha256 and vocabulary's are recorded
    pooling: str
    max_words: int
    stateful: bool
    batch_size: int
    num_layers: int
    dim: int

    def embed_packed(
        self, sentences: list[list[str]], order: str = "layers", dtype: np.dtype | type | str = np.float32
    ) -> tuple[np.ndarray, list[int]]: ...


def read_sentences(path: str | Path, tokenized: bool = False) -> Iterator[tuple[int, list[str], str]]:
    """Yield ``(line_number, words, text)`` per sentence.

    Plain input: one sentence per line, words split on whitespace (an empty line is a sentence of no words).
    ``tokenized``: one token per line (first tab-separated column, as in CoNLL files; in a CoNLL-U line of 10
    columns the FORM column, with multiword-token ranges ``1-2`` and empty nodes ``1.1`` skipped), a blank line
    between sentences; lines starting with ``#`` are comments.

    Raises:
        CorpusError: missing/empty file, invalid UTF-8, NUL byte (with file and line).
    """
    from elmokit.core.textfile import conllu_form, iter_lines

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
                form = conllu_form(cols)
                if form is not None:
                    words.append(form)
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


@dataclass
class _Index:
    """The AllenNLP layout's ``sentence_to_index``, never held whole: which lines are the first with their text,
    and the JSON's size and sha256. The JSON itself (each first line's text to its key, as ``json.dumps`` of the
    dict writes it) is made again from the input, piece by piece, wherever it is needed (:meth:`pieces`)."""

    inp: Path
    tokenized: bool
    first: np.ndarray  # (lines,) bool: the line is the first with its text
    nbytes: int = 0
    sha256: str = ""

    def pieces(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The JSON in pieces of about ``size`` bytes."""
        buf = [b"{"]
        held = 1
        sep = ""
        for k, (_, _, text) in enumerate(read_sentences(self.inp, self.tokenized)):
            if self.first[k]:
                entry = f'{sep}{json.dumps(text, ensure_ascii=False)}: "{k}"'.encode()
                buf.append(entry)
                held += len(entry)
                sep = ", "
                if held >= size:
                    yield b"".join(buf)
                    buf, held = [], 0
        buf.append(b"}")
        yield b"".join(buf)


def _scan(inp: Path, tokenized: bool, with_index: bool) -> tuple[_Index | None, int]:
    """One pass over ``inp`` (which validates every line before anything is written): the number of lines and
    (``with_index``) the AllenNLP layout's ``sentence_to_index``.

    Duplicates are found by 16-byte digests of each line's text, kept in one array (16 bytes a line) and ordered
    once by an index sort (8 bytes a line more), so memory holds neither the lines' text nor the JSON.

    Returns:
        ``(index, lines)``; ``index`` is None without ``with_index``.
    """
    import hashlib

    digests = bytearray()
    lines = 0
    for _, _, text in read_sentences(inp, tokenized):
        lines += 1
        if with_index:
            digests += hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    if not with_index:
        return None, lines
    halves = np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)  # (lines, 2): a view, no copy
    order = np.lexsort((halves[:, 1], halves[:, 0]))  # (lines,) stable: equal digests stay in line order
    new = np.ones(len(order), dtype=bool)  # in sorted order: the first line with its digest
    if len(order) > 1:
        same = np.ones(len(order) - 1, dtype=bool)  # equal to the previous one in both halves
        for col in (0, 1):
            sorted_col = halves[order, col]  # (lines,)
            same &= sorted_col[1:] == sorted_col[:-1]
            del sorted_col
        new[1:] = ~same
    first = np.zeros(len(order), dtype=bool)
    first[order[new]] = True
    del halves, order, new
    index = _Index(inp, tokenized, first)
    h = hashlib.sha256()
    for piece in index.pieces():
        h.update(piece)
        index.nbytes += len(piece)
    index.sha256 = h.hexdigest()
    return index, lines


@dataclass
class _Plan:
    """What every chunk of one :func:`write_hdf5` call is written with."""

    embedder: VectorSource
    layers: str  # all | top | average
    np_dtype: type  # the output's dtype
    buf_dtype: type  # what the embedder is asked for: float32 for the average (taken in float32), else np_dtype
    width: tuple[int, ...]  # a row of the packed layout: (layers, 2D) for all, (2D,) for top and average
    bar: Any  # the progress bar
    partial: Partial


def _write_packed(plan: _Plan, f, words: list[list[str]]) -> None:
    """A chunk's lines: its vectors in the packed layout's word-major order (``Embedder.embed_packed``), already
    in the output dtype, and its offsets from 0."""
    from elmokit.embed.layouts import new_packed

    vecs, offsets = plan.embedder.embed_packed(words, "words", plan.buf_dtype)  # (words, layers, 2D)
    new_packed(
        f,
        _select_layers(vecs, plan.layers, axis=1).astype(plan.np_dtype, copy=False),
        offsets,
        plan.width,
        plan.np_dtype,
    )  # (words, [layers,] 2D)
    plan.bar.update(len(words))


def _write_sentences(plan: _Plan, f, words: list[list[str]], index: int) -> None:
    """A chunk's lines ``index ..``, one dataset each, written as each batch is done (a line longer than
    ``max_words``: window by window into its dataset). Returns early when the disk is full."""
    from elmokit.embed.layouts import new_long_sentence, new_sentence

    emb, layers, np_dtype = plan.embedder, plan.layers, plan.np_dtype
    short = [j for j, w in enumerate(words) if len(w) <= emb.max_words]
    for j in (j for j, w in enumerate(words) if len(w) > emb.max_words):
        shape = (len(words[j]), emb.dim)  # (words, 2D) for top and average
        if layers == "all":
            shape = (emb.num_layers, *shape)  # (layers, words, 2D)
        dset = new_long_sentence(f, index + j, shape, np_dtype)
        for start, part in emb.iter_windows(words[j], plan.buf_dtype):  # (layers, window words, 2D)
            dset[..., start : start + part.shape[1], :] = _select_layers(part, layers).astype(np_dtype, copy=False)
        plan.bar.update(1)
        if plan.partial.failed():
            return
    pending = 0
    for j, block in emb.iter_sentences([words[j] for j in short], plan.buf_dtype):  # (layers, words, 2D)
        new_sentence(f, index + short[j], _select_layers(block, layers).astype(np_dtype, copy=False))
        pending += 1
        if pending == 256:
            plan.bar.update(pending)
            pending = 0
            if plan.partial.failed():  # the disk is full: this part cannot be kept
                return
    plan.bar.update(pending)


def _fill_index(index: _Index, at: dict[str, int], path: Path) -> None:
    """Part 0's ``sentence_to_index`` bytes, written into the closed part at ``at["offset"]``."""
    from elmokit.embed.layouts import write_sentence_to_index

    write_sentence_to_index(path, at["offset"], index.pieces())


def _start_file(f, attrs: dict, index: _Index | None) -> int:
    """Part 0 holds the file's attributes (``complete`` false until the merge) and ``sentence_to_index``.

    Returns:
        Where ``sentence_to_index``'s bytes go in the file (0 without it), written once the file is closed.
    """
    from elmokit.embed.layouts import new_sentence_to_index

    for k, v in attrs.items():
        f.attrs[k] = v
    f.attrs["complete"] = False
    f.attrs["lines_done"] = 0
    return new_sentence_to_index(f, index.nbytes) if index is not None else 0


def _verifier(out: Path, packed: bool, total: int, s2i_sha: str, parts_dir: Path):
    """The check the merged file must pass before it gets its final name: every line, and (AllenNLP layout) the
    ``sentence_to_index`` that was made."""
    from elmokit.embed.layouts import count_lines, sentence_to_index_sha256

    def verify(f) -> None:
        held = count_lines(f, packed)
        ok = held == total and bool(f.attrs["complete"])
        if not packed:
            ok = ok and sentence_to_index_sha256(f) == s2i_sha
        if not ok:
            raise ElmokitError(
                f"{out}: the merged file does not verify ({held} of {total} lines); this is a bug, "
                f"please report it (the parts are kept in {parts_dir})"
            )

    return verify


def _check_choices(layers: str, layout: str, dtype: str) -> None:
    if layers not in LAYER_MODES:
        raise ElmokitError(f"--layers must be one of {LAYER_MODES}, got {layers!r}")
    if layout not in LAYOUTS:
        raise ElmokitError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    if dtype not in DTYPES:
        raise ElmokitError(f"--dtype must be one of {DTYPES}, got {dtype!r}")


def _chunk_size(embedder: VectorSource, layout: str, chunk_lines: int) -> int:
    """Lines per part file: the packed layout buffers a chunk's vectors (its rows must be in line order), the
    AllenNLP layout holds one batch, so its chunks can be larger: they are the window sentences are sorted in, and
    larger means less padding. Stateful: whole batches, so the batches are the same however the file is cut."""
    if chunk_lines <= 0:
        chunk_lines = 1000 if layout == "packed" else 10_000
    if embedder.stateful:
        chunk_lines = -(-chunk_lines // embedder.batch_size) * embedder.batch_size
    return chunk_lines


def _options(
    embedder: VectorSource, inp: Path, layers: str, layout: str, dtype: str, tokenized: bool, chunk_lines: int
) -> dict:
    """What shapes the output: recorded in the file and in ``OUTPUT.partial/``, where ``--resume`` compares it."""
    return {
        "input_sha256": sha256_file(inp),
        "model_sha256": embedder.bilm.sha256,
        "vocab_sha256": embedder.bilm.vocab.sha256,
        "layers": layers,
        "layout": layout,
        "dtype": dtype,
        "pooling": embedder.pooling,
        "tokenized": tokenized,
        "chunk_lines": chunk_lines,
        "max_words": embedder.max_words,
        "stateful": embedder.stateful,
        "batch_size": embedder.batch_size if embedder.stateful else 0,
    }


def write_hdf5(
    embedder: VectorSource,
    input_path: str | Path,
    output_path: str | Path,
    layers: str = "all",
    dtype: str = "float32",
    layout: str = "allennlp",
    tokenized: bool = False,
    resume: bool = False,
    chunk_lines: int = 0,
    progress: bool = True,
    stop_after_chunks: int = 0,
    overwrite: bool = False,
) -> Path:
    """Stream ``input_path`` through the embedder into an HDF5 file (see the module docstring for the layouts).

    Lines are read, embedded and written ``chunk_lines`` at a time (0: 10,000 in the AllenNLP
    layout, whose memory holds one batch's vectors and the chunk's text; 1,000 in the packed layout, which holds the
    chunk's vectors). A chunk's sentences are sorted by length into batches; each chunk becomes one part file of
    ``OUTPUT.partial/``, and ``--resume`` embeds the chunks that were not recorded whole
    (:mod:`elmokit.embed.layouts` says how a kill or a full disk is survived). ``stop_after_chunks`` stops early as
    if killed (tests, time-sliced jobs). An existing ``OUTPUT`` is refused unless ``overwrite`` (it is then replaced
    only once the new file is complete). Peak memory is nearly flat in the input's size (recipes/README.md,
    Benchmarks): ``sentence_to_index`` is made first, before the biLM runs; batch shapes come from a bounded set
    (``Embedder._batches``, :data:`elmokit.modules.matmul.ROW_PAD`), so the kernels' shape-keyed caches stop
    growing; and the HDF5 library's metadata cache drops each dataset's header once it is written
    (:func:`elmokit.embed.hdf5_safe.open_hdf5`).

    Started as N processes (``torchrun`` or ``accelerate launch``), each claims the next chunk still to do when it
    is free (:mod:`elmokit.embed.processes`) and writes it into its own part file; the main process merges the parts
    in chunk order as they are done, between its own chunks and while it waits, and finishes the file once every
    part is merged: the same file one process writes. ``--stateful`` is one process only.

    Returns:
        The output path; ``OUTPUT.partial`` when ``stop_after_chunks`` stopped it, and on every process but the
        main one (which merges).
    """
    from tqdm.auto import tqdm

    from elmokit.embed.processes import Signals, this_job

    _check_choices(layers, layout, dtype)
    inp = check_file(input_path)
    out = Path(output_path)
    if out.exists() and not overwrite:
        raise ElmokitError(
            f"{out}: exists; pass --overwrite to replace it (the old file stays until the new one is "
            f"complete), or choose another output"
        )
    partial_dir = out.with_name(out.name + ".partial")
    if partial_dir.exists() and not resume and not overwrite:  # every process refuses it alike, before any starts
        Partial(out, {}).prepare(resume)
    procs = this_job()  # (N processes: all have passed the checks above when this returns)
    if procs.world > 1 and embedder.stateful:
        raise ElmokitError(
            "--stateful carries each row's LSTM state from one batch to the next in input order, so its lines "
            f"cannot be shared among {procs.world} processes; run it as one process (without torchrun or "
            "accelerate launch)"
        )
    chunk_lines = _chunk_size(embedder, layout, chunk_lines)
    options = _options(embedder, inp, layers, layout, dtype, tokenized, chunk_lines)
    partial = Partial(out, options, procs.rank)
    signals = Signals(partial.dir, procs)
    # every line is validated before anything is written; sentence_to_index is made first, while memory is low
    packed = layout == "packed"
    index, total = _scan(inp, tokenized, with_index=procs.main and not packed)
    n_chunks = -(-total // chunk_lines)  # the last one may be shorter
    try:
        if procs.main:
            if overwrite and not resume:
                shutil.rmtree(partial.dir, ignore_errors=True)
            partial.prepare(resume)
            signals.clear_stale()
            if 0 not in partial.parts:
                signals.claim(0)  # part 0 holds the attributes and sentence_to_index, which the main process makes
            signals.ready()
        else:
            signals.wait_ready()
            partial.load()
        np_dtype = np.float16 if dtype == "float16" else np.float32
        plan = _Plan(
            embedder,
            layers,
            np_dtype,
            np.float32 if layers == "average" else np_dtype,
            (embedder.num_layers, embedder.dim) if layers == "all" else (embedder.dim,),
            tqdm(
                total=total,
                initial=partial.lines_done,
                unit="sent",
                desc="embedding" if procs.world == 1 else f"embedding ({procs.world} processes)",
                disable=not (progress and procs.main),
                dynamic_ncols=True,
            ),
            partial,
        )
        attrs = {
            "elmokit_version": __version__,
            **options,
            "input": str(input_path),
            "num_layers": embedder.num_layers,
            "dim": embedder.dim,
            "sentences": total,
        }
        row_bytes = int(np.prod(plan.width)) * np.dtype(np_dtype).itemsize
        chunks_written = 0
        s2i_sha = index.sha256 if index is not None else ""
        verify = _verifier(out, packed, total, s2i_sha, partial.dir)
        with partial.merging(packed, n_chunks, verify) if procs.main else contextlib.nullcontext() as merge:
            for c, chunk in enumerate(_chunks(read_sentences(inp, tokenized), chunk_lines)):
                words = [w for _, w, _ in chunk]
                if merge is not None:  # the main process merges what is done before it takes another chunk
                    plan.bar.update(partial.collect())
                    merge.advance()
                if c in partial.parts or not signals.claim(c):  # done before a kill, or another process's
                    if embedder.stateful and c in partial.parts:  # replayed (not written) to rebuild the state
                        embedder.embed_packed(words)
                    continue
                signals.check()
                index_bytes = index.nbytes if c == 0 and index is not None else 0
                estimate = sum(len(w) for w in words) * row_bytes + 1024 * len(words) + index_bytes
                at = {"offset": 0}  # where part 0's sentence_to_index goes, filled once the part is closed
                fill = functools.partial(_fill_index, index, at) if index_bytes else None
                with partial.part(c, c * chunk_lines, len(words), estimate, packed, after_close=fill) as f:
                    if c == 0:
                        at["offset"] = _start_file(f, attrs, index)
                    if packed:
                        _write_packed(plan, f, words)
                    else:
                        _write_sentences(plan, f, words, c * chunk_lines)
                chunks_written += 1
                if stop_after_chunks and chunks_written >= stop_after_chunks and len(partial.parts) < n_chunks:
                    plan.bar.close()
                    return partial.dir
            if merge is None:
                signals.finished()
                return partial.dir

            def all_recorded() -> bool:  # the other processes' parts, merged as they are journalled
                finished = signals.all_finished()  # before the journals are read: what they then hold is all there is
                plan.bar.update(partial.collect())
                merge.advance()
                if len(partial.parts) == n_chunks:
                    return True
                if finished:
                    missing = sorted(set(range(n_chunks)) - set(partial.parts))
                    raise ElmokitError(
                        f"{partial.dir}: every process finished, but chunks {missing[:10]} were written by none; "
                        f"this is a bug, please report it (run again with --resume to embed them)"
                    )
                return False

            signals.wait_until(all_recorded)
            plan.bar.close()
            return merge.finish(total)
    except ElmokitError as e:  # a full disk too (DiskError): the other processes stop with the same line
        signals.report(str(e))
        raise
