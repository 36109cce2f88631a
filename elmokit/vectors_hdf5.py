"""``elmokit embed``'s HDF5 files: writing them so that a kill or a full disk never leaves a bad file, and reading.

The two layouts (``allennlp``: one dataset per line plus ``sentence_to_index``; ``packed``: ``vectors`` and
``offsets``) are described in :mod:`elmokit.embed`; this module holds how they reach the disk.

Durability. ``OUTPUT.partial/`` is a directory that only this module writes:

- ``journal.jsonl``: line 1 ``{"format": "elmokit-embed-partial/1", "options": {...}}``, the options that shape the
  output (input, model and vocab hashes, layers, layout, dtype, pooling, tokenization, chunk size, window size);
  then one line per finished part ``{"part": k, "file": ..., "start": line, "lines": n, "bytes": b, "sha256": h}``.
  A part's line is appended (and fsynced) only after its file was written, fsynced, verified and renamed, so what
  ``--resume`` trusts was on disk before it was recorded as done; a torn last line (a kill while writing it) is
  dropped. On resume every listed part is checked against its size and sha256; the first that fails and all after
  it are embedded again.
- ``part-00000000.h5`` ...: the lines of one chunk in the output's layout; part 0 also holds the file's attributes
  and ``sentence_to_index``. A part is written as ``.part-….tmp`` and renamed.

When every chunk is done: a single part is marked complete and renamed to ``OUTPUT``; several are merged into a
copy of part 0 (``h5o.copy`` of each dataset, or the packed rows block by block) that is verified, fsynced and
renamed. ``OUTPUT.partial/`` is removed last. So a file with the final name is always whole.

Every HDF5 byte goes through :class:`SafeFile`: the first write error (``ENOSPC``: a full disk) is recorded and the
remaining writes are dropped, because the HDF5 library cannot recover from a failed write (it reports the error
once per cached object and then segfaults); the caller then deletes the temporary file and raises one
:class:`DiskError`, while the finished parts (and any older ``OUTPUT``) stay as they were. Free space is also
checked before each part and before the merge, with the bytes needed in the message.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from elmokit.errors import ElmokitError
from elmokit.textfile import sha256_file

PARTIAL_FORMAT = "elmokit-embed-partial/1"
MARGIN_BYTES = 8 * 2**20  # free space kept beyond a part's estimated size (HDF5 metadata, the journal)


class DiskError(ElmokitError):
    """The output's disk is full (or failed); the finished parts are kept for ``--resume``."""


class SafeFile(io.RawIOBase):
    """A binary file for h5py's ``fileobj`` driver that never lets the HDF5 library see a failed write.

    The first ``OSError`` of a write, truncate or flush is kept in :attr:`error` and every later write is dropped
    (reported as done), so the library finishes its bookkeeping without crashing; the file is then garbage and the
    caller deletes it (:func:`part_file` and :func:`finish` do).
    """

    def __init__(self, path: Path, mode: str) -> None:
        super().__init__()
        self.path = path
        self.f = open(path, mode, buffering=0)  # unbuffered: a seek never flushes (and so never fails)
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def readinto(self, b) -> int:
        return self.f.readinto(b)

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        n = len(view)
        if self.error is None:
            try:
                while view:  # a raw write may write less than asked (the disk filling up)
                    view = view[self.f.write(view) :]
            except OSError as e:
                self.error = e
                self.f.seek(len(view), os.SEEK_CUR)  # past what was not written: where the library believes it ends
        else:
            self.f.seek(n, os.SEEK_CUR)
        return n

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.f.truncate(size)
            except OSError as e:
                self.error = e
        return size if size is not None else self.tell()

    def flush(self) -> None:
        if self.error is None and not self.f.closed:
            try:
                self.f.flush()
            except OSError as e:
                self.error = e

    def sync(self) -> None:
        """Flush Python's buffer and the kernel's (``fsync``) unless a write already failed."""
        self.flush()
        if self.error is None:
            try:
                os.fsync(self.f.fileno())
            except OSError as e:
                self.error = e

    def close(self) -> None:
        if not self.f.closed:
            try:
                self.f.close()
            except OSError as e:
                self.error = self.error or e
        super().close()


def disk_error(path: Path, e: OSError, partial: Path) -> DiskError:
    """The one-line error for a failed write of ``path``."""
    what = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else f"it failed ({e.strerror or e})"
    return DiskError(f"{path}: cannot write: {what}. The chunks already done are kept in {partial}: free space (or "
                     f"pick another output directory and move {partial.name} there), then run again with --resume")


def check_space(directory: Path, needed: int, what: str, partial: Path) -> None:
    """Refuse, before writing, when ``directory``'s disk has less than ``needed`` (+ a margin) bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed + MARGIN_BYTES:
        mib = 2**20
        raise DiskError(f"{directory}: {free / mib:,.1f} MiB free, but {what} needs about "
                        f"{(needed + MARGIN_BYTES) / mib:,.1f} MiB. The chunks already done are kept in {partial}: "
                        f"free space, then run again with --resume")


def open_hdf5(safe: SafeFile, create: bool):
    """An ``h5py.File`` over ``safe`` set up to keep memory flat on a file of many datasets.

    - Each dataset's metadata (its object header) leaves the HDF5 library's metadata cache when the dataset is
      closed (``H5Pset_evict_on_close``), so the cache holds the root group's index only (~1 MiB per 100k
      sentences). Otherwise it fills with the headers of every dataset written.
    - The cache is capped at 4 MiB (by default it may grow to 32 MiB).

    Where h5py's HDF5 does not export ``H5Pset_evict_on_close`` (not reachable through ctypes, e.g. on Windows),
    only the cap applies.
    """
    import h5py

    fapl = _file_access()
    fapl.set_fileobj_driver(h5py.h5fd.fileobj_driver, safe)
    name = os.fsencode(safe.path)
    fid = (h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl) if create
           else h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl))
    return _capped(h5py.File(fid))


def _open_part(path: Path):
    """A finished part, read-only, with the writer's memory settings (:func:`open_hdf5`): without them the merge
    keeps every part's dataset headers cached (merging 90k datasets by value: 89 MiB peak RSS, 65 with them)."""
    import h5py

    return _capped(h5py.File(h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY, fapl=_file_access())))


def _file_access():
    """The file access property list: objects closed with the file, datasets evicted from the cache on close."""
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # as h5py.File's own: closing the file closes its objects
    evict_on_close = _evict_on_close()
    if evict_on_close is not None:
        evict_on_close(fapl.id, True)
    return fapl


def _capped(f):
    """``f`` with its metadata cache capped at 4 MiB."""
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


def new_dataset(f, name: str, data: np.ndarray) -> None:
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


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # not every platform opens directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def count_lines(f, packed: bool) -> int:
    """Lines held by an open file of either layout (raises ``ElmokitError`` when its two arrays disagree)."""
    if packed:
        offsets = f["offsets"]
        n = offsets.shape[0] - 1
        if n < 0 or int(offsets[-1]) != f["vectors"].shape[0]:
            raise ElmokitError("offsets and vectors disagree")
        return n
    return sum(1 for k in f.keys() if k.isdigit())


class Partial:
    """``OUTPUT.partial/``: the journal and the part files of an unfinished ``elmokit embed`` (module docstring).

    Args:
        out: the final output path.
        options: what shapes the output; a resumed journal must hold the same.
        resume: continue an existing ``OUTPUT.partial`` (else one must not exist).
    """

    def __init__(self, out: Path, options: dict, resume: bool) -> None:
        self.out = out
        self.dir = out.with_name(out.name + ".partial")
        self.journal = self.dir / "journal.jsonl"
        self.options = options
        self.parts: list[dict] = []
        self._safe: SafeFile | None = None
        if self.dir.is_file():
            raise ElmokitError(f"{self.dir}: a partial file from an older elmokit (before the partial directory); "
                               f"delete it and run again without --resume")
        if self.dir.exists() and not resume:
            raise ElmokitError(f"{self.dir}: an unfinished run of this output is here; continue it with --resume, or "
                               f"pass --overwrite to start over")
        if self.dir.exists() and self.journal.exists():
            self._read_journal()
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
            _fsync_dir(self.dir.parent)
        for p in self.dir.iterdir():  # a part killed while being written
            if p.name.startswith(".part-") or p.name.startswith(".final"):
                p.unlink()

    def _read_journal(self) -> None:
        lines = self.journal.read_text(encoding="utf-8").split("\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            raise ElmokitError(f"{self.journal}:1: unreadable journal header; delete {self.dir} and run again "
                               f"without --resume") from None
        if header.get("format") != PARTIAL_FORMAT:
            raise ElmokitError(f"{self.journal}:1: format {header.get('format')!r} is not {PARTIAL_FORMAT}; delete "
                               f"{self.dir} and run again without --resume")
        before = header.get("options", {})
        for key, now in self.options.items():
            if before.get(key) != now:
                raise ElmokitError(f"{self.dir}: was started with {key}={before.get(key)!r}, now {now!r}; resume "
                                   f"with the same input, model and options ({_flag(key)}), or pass --overwrite "
                                   f"to start over")
        good: list[dict] = []
        for n, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # the kill tore the last line: its part is not trusted
                break
            p = self.dir / rec["file"]
            ok = (rec["part"] == len(good) and p.is_file() and p.stat().st_size == rec["bytes"]
                  and sha256_file(p) == rec["sha256"])
            if not ok:
                print(f"note: {p}: missing or its sha256 differs from {self.journal.name}:{n}; embedding its lines "
                      f"again", flush=True)
                break
            good.append(rec)
        self.parts = good
        keep = {r["file"] for r in good}
        for p in self.dir.glob("part-*.h5"):
            if p.name not in keep:
                p.unlink()
        # the journal with exactly the trusted parts (a torn or bad line dropped), replaced atomically
        self._write_journal(self.dir / ".journal.tmp")
        os.replace(self.dir / ".journal.tmp", self.journal)

    def _write_journal(self, path: Path, mode: str = "w", records: list[dict] | None = None) -> None:
        """Write (``mode="w"``: the header and the trusted parts) or append (``"a"``: ``records``) journal lines,
        fsynced before returning; a failed write is a :class:`DiskError`."""
        lines = [] if mode == "a" else [json.dumps({"format": PARTIAL_FORMAT, "options": self.options},
                                                   ensure_ascii=False)]
        lines += [json.dumps(rec) for rec in (self.parts if records is None else records)]
        try:
            with open(path, mode, encoding="utf-8") as j:
                j.write("".join(line + "\n" for line in lines))
                j.flush()
                os.fsync(j.fileno())
        except OSError as e:
            raise disk_error(path, e, self.dir) from None

    def failed(self) -> bool:
        """Whether a write of the part being written failed (stop embedding it: it cannot be kept)."""
        return self._safe is not None and self._safe.error is not None

    @property
    def lines_done(self) -> int:
        return sum(r["lines"] for r in self.parts)

    @contextmanager
    def part(self, start: int, lines: int, estimate: int, packed: bool) -> Iterator:
        """Write the next part (lines ``start`` .. ``start + lines``): yields an open h5py file; on a clean exit
        the file is synced, verified, hashed, renamed and journalled."""
        k = len(self.parts)
        name = f"part-{k:08d}.h5"
        tmp = self.dir / f".{name}.tmp"
        check_space(self.dir, estimate, f"the next chunk ({lines:,} lines)", self.dir)
        safe = self._safe = SafeFile(tmp, "w+b")
        f = None
        try:
            f = open_hdf5(safe, create=True)
            yield f
            f = _close_synced(f, safe, self.dir)
            import h5py

            with h5py.File(tmp, "r") as g:  # verify: the part holds its lines
                held = count_lines(g, packed)
            if held != lines:
                raise ElmokitError(f"{tmp}: holds {held} lines, not {lines}; this is a bug, please report it")
            rec = {"part": k, "file": name, "start": start, "lines": lines, "bytes": tmp.stat().st_size,
                   "sha256": sha256_file(tmp)}
            os.replace(tmp, self.dir / name)
            _fsync_dir(self.dir)
            self._write_journal(self.journal, "a", [rec])
            self.parts.append(rec)
        except BaseException:
            _abandon(f, safe, tmp, self.dir)
            raise

    def finish(self, packed: bool, total: int, verify) -> Path:
        """Merge the parts into ``OUTPUT`` (see the module docstring); ``verify(h5py.File)`` checks the result.

        Returns:
            The output path.
        """
        import h5py

        first = self.dir / self.parts[0]["file"]
        final = self.dir / ".final.tmp"
        if len(self.parts) > 1:
            check_space(self.dir, sum(r["bytes"] for r in self.parts), "merging the chunks into one file", self.dir)
            try:
                shutil.copyfile(first, final)
            except OSError as e:
                final.unlink(missing_ok=True)
                raise disk_error(final, e, self.dir) from None
            target = final
        else:
            target = first  # one part: marked complete in place (a kill now makes its hash fail: it is redone)
        safe = SafeFile(target, "r+b")
        f = None
        try:
            f = open_hdf5(safe, create=False)
            for rec in self.parts[1:]:
                with _open_part(self.dir / rec["file"]) as src:
                    if packed:
                        _append_packed(f, src)
                    else:  # by value, not H5Ocopy: that held ~1 KiB per dataset copied until the file closed
                        for key in src.keys():
                            if key.isdigit():
                                new_dataset(f, key, src[key][()])
                if safe.error is not None:
                    break
            f.attrs["lines_done"] = total
            f.attrs["complete"] = True
            f = _close_synced(f, safe, self.dir)
            with h5py.File(target, "r") as g:
                verify(g)
        except BaseException:
            _abandon(f, safe, final if target == final else None, self.dir)
            raise
        os.replace(target, self.out)
        _fsync_dir(self.out.parent)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.out


def _close_synced(f, safe: SafeFile, partial: Path) -> None:
    """Close the HDF5 file and its :class:`SafeFile`, fsynced; a write that failed on the way raises
    :class:`DiskError`. Returns None (the caller's handle is then gone)."""
    f.close()
    safe.sync()
    if safe.error is not None:
        raise disk_error(safe.path, safe.error, partial)
    safe.close()


def _abandon(f, safe: SafeFile, delete: Path | None, partial: Path) -> None:
    """After an error: close what is open, delete ``delete`` (a temporary file), and raise :class:`DiskError`
    when a write had failed (whatever the HDF5 library raised then came from that)."""
    if f is not None:
        try:
            f.close()
        except Exception:  # noqa: BLE001 - the file is abandoned anyway
            pass
    safe.close()
    if delete is not None:
        delete.unlink(missing_ok=True)
    if safe.error is not None:
        raise disk_error(safe.path, safe.error, partial) from None


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
    return {"input_sha256": "INPUT", "model_sha256": "MODEL", "vocab_sha256": "MODEL", "max_words": "max_words",
            "chunk_lines": "--chunk-lines"}.get(key, "--" + key.replace("_", "-"))


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
            raise ElmokitError(f"{path}: an unfinished `elmokit embed` (a .partial directory), incomplete; continue "
                               f"it with `elmokit embed ... --resume`")
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise ElmokitError(f"{path}: not a readable HDF5 file ({e}); it may be truncated. Re-run "
                               f"`elmokit embed` (with --resume if a .partial directory exists)") from None
        if self.f.attrs.get("complete") is not None and not bool(self.f.attrs["complete"]):
            self.f.close()
            raise ElmokitError(f"{path}: incomplete (the run stopped before the end); continue it with "
                               f"`elmokit embed ... --resume`")
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
        return sum(1 for k in self.f.keys() if k.isdigit())

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
        raw = self.f["sentence_to_index"][0]
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> EmbeddingsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
