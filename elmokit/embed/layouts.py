"""``elmokit embed``'s HDF5 files: the two layouts, writing them so that a kill or a full disk never leaves a bad
file (:mod:`elmokit.embed.writer` fills them, :mod:`elmokit.embed.hdf5_safe` holds the write-error-proof file),
and reading.

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
recorded whole (below).

Durability. ``OUTPUT.partial/`` is a directory that only this module writes:

- ``journal.jsonl``: line 1 ``{"format": "elmokit-embed-partial/1", "options": {...}}``, the options that shape the
  output (input, model and vocab hashes, layers, layout, dtype, pooling, tokenization, chunk size, window size);
  then one line per finished part ``{"part": k, "file": ..., "start": line, "lines": n, "bytes": b, "sha256": h}``
  (part ``k`` holds chunk ``k``: lines ``k * chunk_lines`` onwards). A part's line is appended (and fsynced) only
  after its file was written, fsynced, verified and renamed, so what ``--resume`` trusts was on disk before it was
  recorded as done; a torn last line (a kill while writing it) is dropped. Process ``r`` (one, or each of N)
  appends to its own ``journal-r.jsonl`` (no two processes write one file), and the main process reads them;
  ``journal.jsonl`` itself is written only when the main process prepares the directory, so every process reads
  the same parts as done.
  On resume (with any N) every journal's parts are checked against their size and sha256, gathered into
  ``journal.jsonl``, and the chunks not done (a part that fails its check among them) are embedded.
- ``part-00000000.h5`` ...: the lines of one chunk in the output's layout; part 0 also holds the file's attributes
  and ``sentence_to_index``. A part is written as ``.part-….tmp`` and renamed.
- ``ready-NONCE``, ``error-NONCE-RANK.txt``: the signals of an N-process job (:mod:`elmokit.embed.processes`).

The main process merges (:class:`Merge`) as the parts are done, between its own chunks and while it waits for
the others': a single part is marked complete and renamed to ``OUTPUT``; several are merged, in chunk order, into
``.final.tmp``, a copy of part 0 (each dataset by value, or the packed rows block by block), which is verified,
fsynced and renamed once every part is in. ``OUTPUT.partial/`` is removed last. So a file with the final name is
always whole (a kill leaves ``.final.tmp``, which ``--resume`` deletes and merges again from the parts).

Every HDF5 byte goes through :class:`SafeFile`: the first write error (``ENOSPC``: a full disk) is recorded and the
remaining writes are dropped, because the HDF5 library cannot recover from a failed write (it reports the error
once per cached object and then segfaults); the caller then deletes the temporary file and raises one
:class:`DiskError`, while the finished parts (and any older ``OUTPUT``) stay as they were. Free space is also
checked before each part and before the merge, with the bytes needed in the message.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from elmokit.core.errors import ElmokitError
from elmokit.core.files import fsync_dir
from elmokit.core.textfile import sha256_file
from elmokit.embed.hdf5_safe import (
    DiskError,
    SafeFile,
    abandon,
    check_space,
    close_synced,
    disk_error,
    new_dataset,
    open_hdf5,
    open_part,
)

PARTIAL_FORMAT = "elmokit-embed-partial/1"
PACKED_CHUNK_WORDS = 256  # rows of a chunk of the packed layout's vectors


def new_packed(f, vectors: np.ndarray | None, offsets: np.ndarray, width: tuple[int, ...], dtype, total_words: int = 0):
    """The packed layout's datasets in the open file ``f``: ``vectors`` ``(words, *width)``, resizable (the merge
    appends parts) and chunked along words, given whole or (``vectors=None``) made for ``total_words`` rows that the
    caller fills; and ``offsets`` ``(sentences + 1,)``. ``elmokit embed``'s parts and the downstream feature cache
    both write the layout through here.

    Returns:
        The ``vectors`` dataset.
    """
    rows = len(vectors) if vectors is not None else total_words
    ds = f.create_dataset(
        "vectors",
        shape=(rows, *width),
        dtype=dtype,
        data=vectors,
        maxshape=(None, *width),
        chunks=(PACKED_CHUNK_WORDS, *width),
    )
    f.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64), maxshape=(None,))
    return ds


def new_sentence(f, index: int, vectors: np.ndarray) -> None:
    """The allennlp layout: line ``index``'s vectors as dataset ``str(index)``, ``(layers, words, 2D)`` or
    ``(words, 2D)``."""
    new_dataset(f, str(index), vectors)


def new_long_sentence(f, index: int, shape: tuple[int, ...], dtype):
    """The allennlp layout: line ``index``'s dataset made empty, of ``shape`` ``(layers, words, 2D)`` or
    ``(words, 2D)``, for the caller to fill window by window (a line longer than the embedder's window).

    Returns:
        The dataset.
    """
    return f.create_dataset(str(index), shape=shape, dtype=dtype)


def new_sentence_to_index(f, nbytes: int) -> int:
    """The allennlp layout's ``sentence_to_index``: one string of ``nbytes`` UTF-8 bytes, the JSON map from sentence
    text to key, stored as one fixed-length string (``f["sentence_to_index"][0]`` is its bytes, which
    ``json.loads`` reads as AllenNLP's readers do). Its storage is made now, contiguous and unfilled, and
    :func:`write_sentence_to_index` fills it piece by piece once the file is closed, so the map (about the size of
    the input's text) is never held in memory.

    Returns:
        The byte offset of its storage in the file.
    """
    import h5py

    tid = h5py.h5t.C_S1.copy()
    tid.set_size(nbytes)
    tid.set_strpad(h5py.h5t.STR_NULLPAD)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # its bytes have their place in the file from now on
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    dsid = h5py.h5d.create(f.id, b"sentence_to_index", tid, h5py.h5s.create_simple((1,)), dcpl=dcpl)
    return dsid.get_offset()


def write_sentence_to_index(path: Path, offset: int, pieces: Iterable[bytes]) -> None:
    """Fill the storage :func:`new_sentence_to_index` made in the closed file ``path`` with ``pieces`` (exactly its
    ``nbytes``), fsynced."""
    with open(path, "r+b") as raw:
        raw.seek(offset)
        for piece in pieces:
            raw.write(piece)
        raw.flush()
        os.fsync(raw.fileno())


def sentence_to_index_sha256(f) -> str:
    """The sha256 of the allennlp layout's ``sentence_to_index`` in the file ``f`` (opened by its path), read from
    its storage piece by piece (a variable-length string, as earlier versions wrote it: read whole)."""
    import hashlib

    ds = f["sentence_to_index"]
    if ds.dtype.kind != "S":
        raw = ds[0]
        return hashlib.sha256(raw if isinstance(raw, bytes) else raw.encode("utf-8")).hexdigest()
    h, left = hashlib.sha256(), ds.dtype.itemsize
    with open(f.filename, "rb") as raw:
        raw.seek(ds.id.get_offset())
        while left:
            piece = raw.read(min(left, 1 << 20))
            if not piece:
                break
            h.update(piece)
            left -= len(piece)
    return h.hexdigest()


@contextmanager
def packed_file(path: Path, attrs: dict, offsets: np.ndarray, width: tuple[int, ...], dtype) -> Iterator:
    """A whole ``packed`` file written in one go (the downstream feature cache): yields the ``vectors`` dataset
    ``(offsets[-1], *width)`` for the caller to fill. The file is written as ``PATH.partial-PID`` through
    :class:`SafeFile`; on leaving the block it is marked complete, fsynced, read back (every sentence there) and
    renamed, so ``path`` is always whole; on an error (a full disk: one :class:`DiskError`) nothing is left."""
    partial = path.with_name(path.name + f".partial-{os.getpid()}")
    safe = SafeFile(partial, "w+b")  # a full disk surfaces as one DiskError naming the file, not an HDF5 crash
    f = None
    try:
        f = open_hdf5(safe, create=True)
        f.attrs.update({**attrs, "layout": "packed", "sentences": len(offsets) - 1, "complete": False})
        yield new_packed(f, None, offsets, width, dtype, int(offsets[-1]))  # (total_words, *width)
        f.attrs["complete"] = True
        f = close_synced(f, safe, partial)  # flushed to disk before it is checked and gets its name
        with EmbeddingsFile(partial) as check:
            if len(check) != len(offsets) - 1:
                raise ElmokitError(
                    f"{partial}: holds {len(check)} of {len(offsets) - 1} sentences after writing; "
                    f"this is a bug, please report it"
                )
        os.replace(partial, path)
        fsync_dir(path.parent)
    except BaseException:
        abandon(f, safe, partial, partial.parent)
        raise


def count_lines(f, packed: bool) -> int:
    """Lines held by an open file of either layout (raises ``ElmokitError`` when its two arrays disagree)."""
    if packed:
        offsets = f["offsets"]
        n = offsets.shape[0] - 1
        if n < 0 or int(offsets[-1]) != f["vectors"].shape[0]:
            raise ElmokitError("offsets and vectors disagree")
        return n
    return allennlp_lines(f)


def allennlp_lines(f) -> int:
    """Lines of an open file of the allennlp layout: its members but ``sentence_to_index``, counted by the HDF5
    library (listing a million names into Python took tens of MiB). A member that is not a line's (a file
    another tool wrote) is looked for by name only when the count and the last line's key disagree."""
    n = len(f) - ("sentence_to_index" in f)
    if n == 0 or str(n - 1) in f:
        return n
    return sum(1 for k in f.keys() if k.isdigit())


class Partial:
    """``OUTPUT.partial/``: the journals and the part files of an unfinished ``elmokit embed`` (module docstring).

    One process, or each of the N processes of one job (:mod:`elmokit.embed.processes`), makes one of these; the
    main process :meth:`prepare` s the directory, every process then :meth:`load` s what is done, writes its own
    chunks' parts (each into its own files) and the main process merges them (:meth:`merging`).

    Args:
        out: the final output path.
        options: what shapes the output; a resumed journal must hold the same.
        rank: this process; process ``r`` appends its parts to ``journal-r.jsonl`` (the main one too), so that
            ``journal.jsonl``, which the main one writes when it prepares, stays as every process read it.
    """

    def __init__(self, out: Path, options: dict, rank: int = 0) -> None:
        self.out = out
        self.dir = out.with_name(out.name + ".partial")
        self.journal = self.dir / "journal.jsonl"
        self.own_journal = self.dir / f"journal-{rank}.jsonl"
        self.options = options
        self.rank = rank
        self.parts: dict[int, dict] = {}  # chunk -> its journal record, for every part trusted as done
        self._safe: SafeFile | None = None

    def prepare(self, resume: bool) -> None:
        """The main process, before any other touches the directory: refuse what must not be continued, read and
        verify a resumed run's journals into one ``journal.jsonl`` (every part checked against its size and
        sha256; one that fails is embedded again), or start a new directory; remove what kills left."""
        if self.dir.is_file():
            raise ElmokitError(
                f"{self.dir}: a partial file from an older elmokit (before the partial directory); "
                f"delete it and run again without --resume"
            )
        if self.dir.exists() and not resume:
            raise ElmokitError(
                f"{self.dir}: an unfinished run of this output is here; continue it with --resume, or "
                f"pass --overwrite to start over"
            )
        if self.dir.exists() and self.journal.exists():
            self._read_journals()
        else:
            if self.dir.exists():  # killed before its journal was written: nothing in it is trusted
                shutil.rmtree(self.dir)
            tmp = self.dir.with_name(f".{self.dir.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                self._write_journal(tmp / "journal.jsonl")
            except DiskError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            os.replace(tmp, self.dir)
            fsync_dir(self.dir.parent)
        for p in self.dir.iterdir():  # a part killed while being written
            if p.name.startswith(".part-") or p.name.startswith(".final"):
                p.unlink()

    def load(self) -> None:
        """Every other process, once the main one has prepared: the parts ``journal.jsonl`` holds (verified)."""
        _, records = self._records(self.journal)
        self.parts = {r["part"]: r for r in records}

    @staticmethod
    def _records(path: Path) -> tuple[list[str], list[dict]]:
        """A journal's lines and its records up to the first torn line (a kill while writing it)."""
        lines = path.read_text(encoding="utf-8").split("\n") if path.is_file() else []
        records = []
        start = 1 if path.name == "journal.jsonl" else 0
        for line in lines[start:]:
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                break
        return lines, records

    def _trusted(self, rec: dict, where: str, hashed: bool = True) -> bool:
        p = self.dir / rec.get("file", "")
        ok = (
            isinstance(rec.get("part"), int)
            and rec.get("file") == _part_name(rec["part"])
            and p.is_file()
            and p.stat().st_size == rec.get("bytes")
            and (not hashed or sha256_file(p) == rec.get("sha256"))
        )
        if not ok:
            print(f"note: {p}: missing or its sha256 differs from {where}; embedding its lines again", flush=True)
        return ok

    def _read_journals(self) -> None:
        lines, records = self._records(self.journal)
        try:
            header = json.loads(lines[0])
        except ValueError:
            raise ElmokitError(
                f"{self.journal}:1: unreadable journal header; delete {self.dir} and run again without --resume"
            ) from None
        if header.get("format") != PARTIAL_FORMAT:
            raise ElmokitError(
                f"{self.journal}:1: format {header.get('format')!r} is not {PARTIAL_FORMAT}; delete "
                f"{self.dir} and run again without --resume"
            )
        before = header.get("options", {})
        for key, now in self.options.items():
            if before.get(key) != now:
                raise ElmokitError(
                    f"{self.dir}: was started with {key}={before.get(key)!r}, now {now!r}; resume "
                    f"with the same input, model and options ({_flag(key)}), or pass --overwrite "
                    f"to start over"
                )
        others = sorted(self.dir.glob("journal-*.jsonl"))
        for path, recs in [(self.journal, records), *((o, self._records(o)[1]) for o in others)]:
            for rec in recs:
                if rec.get("part") not in self.parts and self._trusted(rec, path.name):
                    self.parts[rec["part"]] = rec
        keep = {r["file"] for r in self.parts.values()}
        for p in self.dir.glob("part-*.h5"):
            if p.name not in keep:
                p.unlink()
        # one journal with exactly the trusted parts (torn or bad lines dropped), replaced atomically
        self._write_journal(self.dir / ".journal.tmp")
        os.replace(self.dir / ".journal.tmp", self.journal)
        for o in others:
            o.unlink()
        fsync_dir(self.dir)

    def _write_journal(self, path: Path, mode: str = "w", records: list[dict] | None = None) -> None:
        """Write (``mode="w"``: the header and the trusted parts) or append (``"a"``: ``records``) journal lines,
        fsynced before returning; a failed write is a :class:`DiskError`."""
        lines = (
            [] if mode == "a" else [json.dumps({"format": PARTIAL_FORMAT, "options": self.options}, ensure_ascii=False)]
        )
        lines += [json.dumps(rec) for rec in (sorted(self.parts.values(), key=_chunk) if records is None else records)]
        try:
            with open(path, mode, encoding="utf-8") as j:
                j.write("".join(line + "\n" for line in lines))
                j.flush()
                os.fsync(j.fileno())
        except OSError as e:
            raise disk_error(path, e, self.dir) from None

    def collect(self) -> int:
        """The main process: take in the parts the other processes of this launch have journalled since. Each was
        written, fsynced, hashed and renamed by a live process before its line was appended, so its name and size
        are checked here; its sha256 is checked when a resume reads it (:meth:`prepare`), and the merge reads every
        dataset anyway. (Hashing each part again here read every byte once more, in the one process that merges.)

        Returns:
            The lines those new parts hold.
        """
        added = 0
        for path in sorted(self.dir.glob("journal-*.jsonl")):
            for rec in self._records(path)[1]:
                if rec.get("part") not in self.parts and self._trusted(rec, path.name, hashed=False):
                    self.parts[rec["part"]] = rec
                    added += rec["lines"]
        return added

    def failed(self) -> bool:
        """Whether a write of the part being written failed (stop embedding it: it cannot be kept)."""
        return self._safe is not None and self._safe.error is not None

    @property
    def lines_done(self) -> int:
        return sum(r["lines"] for r in self.parts.values())

    @contextmanager
    def part(
        self,
        chunk: int,
        start: int,
        lines: int,
        estimate: int,
        packed: bool,
        after_close: Callable[[Path], None] | None = None,
    ) -> Iterator:
        """Write chunk ``chunk``'s part (lines ``start`` .. ``start + lines``): yields an open h5py file; on a clean
        exit the file is synced, ``after_close(path)`` writes into the closed file (raw bytes), and the file is
        verified, hashed, renamed and journalled (in this process's journal)."""
        name = _part_name(chunk)
        tmp = self.dir / f".{name}.tmp"
        check_space(self.dir, estimate, f"the next chunk ({lines:,} lines)", self.dir)
        safe = self._safe = SafeFile(tmp, "w+b")
        f = None
        try:
            f = open_hdf5(safe, create=True)
            yield f
            f = close_synced(f, safe, self.dir)
            if after_close is not None:
                try:
                    after_close(tmp)
                except OSError as e:
                    raise disk_error(tmp, e, self.dir) from None
            import h5py

            with h5py.File(tmp, "r") as g:  # verify: the part holds its lines
                held = count_lines(g, packed)
            if held != lines:
                raise ElmokitError(f"{tmp}: holds {held} lines, not {lines}; this is a bug, please report it")
            rec = {
                "part": chunk,
                "file": name,
                "start": start,
                "lines": lines,
                "bytes": tmp.stat().st_size,
                "sha256": sha256_file(tmp),
            }
            os.replace(tmp, self.dir / name)
            fsync_dir(self.dir)
            self._write_journal(self.own_journal, "a", [rec])
            self.parts[chunk] = rec
        except BaseException:
            abandon(f, safe, tmp, self.dir)
            raise

    def merging(self, packed: bool, chunks: int, verify: Callable) -> Merge:
        """The main process's merge of the parts into ``OUTPUT``, part by part as they are done (:class:`Merge`)."""
        return Merge(self, packed, chunks, verify)


class Merge:
    """The parts of :class:`Partial` ``partial`` merged, in chunk order, into ``OUTPUT``: part 0 is copied to
    ``.final.tmp`` and each next part is appended to it (each dataset by value, or the packed rows block by block)
    as soon as it is recorded, so that the main process merges while the others still embed; :meth:`finish`
    marks the file complete, syncs, verifies and renames it. A single part is marked complete in place. Used as a
    context manager: leaving it unfinished (an error, a stop) closes and deletes ``.final.tmp``; the parts stay.

    Args:
        partial: the directory whose ``parts`` are merged.
        packed: the layout.
        chunks: the chunks of the whole input.
        verify: ``verify(h5py.File)`` checks the merged file before it gets its name.
    """

    def __init__(self, partial: Partial, packed: bool, chunks: int, verify: Callable) -> None:
        self.partial, self.packed, self.chunks, self.verify = partial, packed, chunks, verify
        self.next = 0  # the next chunk to merge
        self.final = partial.dir / ".final.tmp"
        self.target: Path | None = None
        self.safe: SafeFile | None = None
        self.f = None

    def __enter__(self) -> Merge:
        return self

    def __exit__(self, *exc) -> None:
        if self.safe is not None:  # not finished: nothing with the final name was made
            self._abandon()

    def _abandon(self) -> None:
        """Close and delete the merged file (not a single part marked in place: its hash now fails, so a resume
        embeds it again); raises :class:`DiskError` when a write had failed."""
        f, safe, self.f, self.safe = self.f, self.safe, None, None
        abandon(f, safe, self.final if self.target == self.final else None, self.partial.dir)

    def advance(self) -> None:
        """Merge every part recorded from the next chunk on, until one that is not done yet."""
        parts = self.partial.parts
        while self.next < self.chunks and self.next in parts:
            rec = parts[self.next]
            if self.next == 0:
                self._start(self.partial.dir / rec["file"])
            else:
                check_space(self.partial.dir, rec["bytes"], "merging the next chunk", self.partial.dir)
                with open_part(self.partial.dir / rec["file"]) as src:
                    if self.packed:
                        _append_packed(self.f, src)
                    else:  # by value, not H5Ocopy: that held ~1 KiB per dataset copied until the file closed
                        for key in src.keys():
                            if key.isdigit():
                                new_dataset(self.f, key, src[key][()])
                if self.safe.error is not None:  # a failed write (a full disk): one DiskError, the parts kept
                    self._abandon()
            self.next += 1

    def _start(self, first: Path) -> None:
        if self.chunks > 1:
            check_space(self.partial.dir, first.stat().st_size, "merging the chunks into one file", self.partial.dir)
            try:
                shutil.copyfile(first, self.final)
            except OSError as e:
                self.final.unlink(missing_ok=True)
                raise disk_error(self.final, e, self.partial.dir) from None
            self.target = self.final
        else:
            self.target = first  # one part: marked complete in place (a kill now makes its hash fail: it is redone)
        self.safe = SafeFile(self.target, "r+b")
        self.f = open_hdf5(self.safe, create=False)

    def finish(self, total: int) -> Path:
        """Every part merged (:meth:`advance` first): mark the file complete, sync and verify it, and give it the
        final name; ``OUTPUT.partial/`` is removed last.

        Returns:
            The output path.
        """
        self.advance()
        if self.next < self.chunks or self.safe is None:
            raise ElmokitError(f"{self.partial.dir}: chunk {self.next} is not done; this is a bug, please report it")
        self.f.attrs["lines_done"] = total
        self.f.attrs["complete"] = True
        f, safe, self.f = self.f, self.safe, None
        try:
            close_synced(f, safe, self.partial.dir)
            f = None
            with open_part(self.target) as g:  # read back with the capped metadata cache (the index of every line)
                self.verify(g)
        except BaseException:
            self.f, self.safe = f, safe
            self._abandon()
            raise
        self.safe = None
        out = self.partial.out
        os.replace(self.target, out)
        fsync_dir(out.parent)
        shutil.rmtree(self.partial.dir, ignore_errors=True)
        return out


def _part_name(chunk: int) -> str:
    return f"part-{chunk:08d}.h5"


def _chunk(rec: dict) -> int:
    return rec["part"]


def _append_packed(f, src, block: int = 65536) -> None:
    """Append a packed part's rows and offsets to the packed file ``f``."""
    vec, off = f["vectors"], f["offsets"]
    base, n0 = vec.shape[0], off.shape[0]
    sv, so = src["vectors"], src["offsets"][:]
    vec.resize((base + sv.shape[0], *vec.shape[1:]))
    for a in range(0, sv.shape[0], block):
        vec[base + a : base + min(a + block, sv.shape[0])] = sv[a : a + block]
    off.resize((n0 + len(so) - 1,))
    off[n0:] = base + so[1:]


def _flag(key: str) -> str:
    """The command-line option behind a journal option."""
    return {
        "input_sha256": "INPUT",
        "model_sha256": "MODEL",
        "vocab_sha256": "MODEL",
        "max_words": "max_words",
        "chunk_lines": "--chunk-lines",
    }.get(key, "--" + key.replace("_", "-"))


class EmbeddingsFile:
    """Read an elmokit (or AllenNLP ``elmo``) HDF5 file of either layout.

    Example::

        with EmbeddingsFile("vectors.hdf5") as e:
            len(e), e[0].shape          # sentences, (layers, words, 2D) or (words, 2D)

    Args:
        path: the file.
        in_memory_bytes: a packed file's ``vectors`` up to this size are read into memory at once (the downstream
            feature cache, read many times); larger ones, and the default 0, are read sentence by sentence.

    Raises:
        ElmokitError: a file that is not complete (``.partial``, killed) or not HDF5.
    """

    def __init__(self, path: str | Path, in_memory_bytes: int = 0) -> None:
        import h5py

        self.path = Path(path)
        if self.path.is_dir():
            raise ElmokitError(
                f"{path}: an unfinished `elmokit embed` (a .partial directory), incomplete; continue "
                f"it with `elmokit embed ... --resume`"
            )
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise ElmokitError(
                f"{path}: not a readable HDF5 file ({e}); it may be truncated. Re-run "
                f"`elmokit embed` (with --resume if a .partial directory exists)"
            ) from None
        if self.f.attrs.get("complete") is not None and not bool(self.f.attrs["complete"]):
            self.f.close()
            raise ElmokitError(
                f"{path}: incomplete (the run stopped before the end); continue it with `elmokit embed ... --resume`"
            )
        self.attrs = dict(self.f.attrs)
        self.packed = "offsets" in self.f
        self.all_layers = self.attrs.get("layers", "all") == "all"
        if self.packed:
            self.offsets = self.f["offsets"][:]
            ds = self.f["vectors"]
            self.vectors = ds[:] if ds.size * ds.dtype.itemsize <= in_memory_bytes else ds  # (words, [layers,] 2D)

    def __len__(self) -> int:
        if self.packed:
            return len(self.offsets) - 1
        return allennlp_lines(self.f)

    def __getitem__(self, i: int) -> np.ndarray:
        """Sentence ``i``: ``(layers, words, 2D)`` (``--layers all``) or ``(words, 2D)``."""
        if self.packed:
            if not 0 <= i < len(self):
                raise IndexError(i)
            v = self.vectors[self.offsets[i] : self.offsets[i + 1]]  # (words, [layers,] 2D)
            return np.ascontiguousarray(np.moveaxis(v, 0, 1)) if v.ndim == 3 else v
        key = str(i)
        if key not in self.f:
            raise IndexError(i)
        return self.f[key][()]

    def sentence_to_index(self) -> dict[str, str]:
        if "sentence_to_index" not in self.f:
            return {}
        raw = self.f["sentence_to_index"][0]  # bytes (a fixed-length string), or str (earlier versions)
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> EmbeddingsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
