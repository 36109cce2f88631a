"""The HDF5 file object that survives a full disk, and the helpers around it (:mod:`elmokit.embed.layouts` uses them
for every part and merge it writes).

Every HDF5 byte goes through :class:`SafeFile`: the first write error (``ENOSPC``: a full disk) is recorded and the
remaining writes are dropped, because the HDF5 library cannot recover from a failed write (it reports the error
once per cached object and then segfaults); the caller then deletes the temporary file and raises one
:class:`DiskError`. The library's metadata cache is capped and drops each dataset's header once it is written
(:func:`open_hdf5`), so memory stays flat however many datasets a file gets.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import shutil
from pathlib import Path

import numpy as np

from elmokit.core.errors import ElmokitError

MARGIN_BYTES = 8 * 2**20  # free space kept beyond a part's estimated size (HDF5 metadata, the journal)


class DiskError(ElmokitError):
    """The output's disk is full (or failed); the finished parts are kept for ``--resume``."""


class SafeFile(io.RawIOBase):
    """A binary file for h5py's ``fileobj`` driver that never lets the HDF5 library see a failed write.

    The first ``OSError`` of a write, truncate or flush is kept in :attr:`error` and every later write is dropped
    (reported as done), so the library finishes its bookkeeping without crashing; the file is then garbage and the
    caller deletes it (:meth:`elmokit.embed.layouts.Partial.part` and
    :class:`elmokit.embed.layouts.Merge` do).
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
    return DiskError(
        f"{path}: cannot write: {what}. The chunks already done are kept in {partial}: free space (or "
        f"pick another output directory and move {partial.name} there), then run again with --resume"
    )


def check_space(directory: Path, needed: int, what: str, partial: Path) -> None:
    """Refuse, before writing, when ``directory``'s disk has less than ``needed`` (+ a margin) bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed + MARGIN_BYTES:
        mib = 2**20
        raise DiskError(
            f"{directory}: {free / mib:,.1f} MiB free, but {what} needs about "
            f"{(needed + MARGIN_BYTES) / mib:,.1f} MiB. The chunks already done are kept in {partial}: "
            f"free space, then run again with --resume"
        )


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
    fid = (
        h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl)
        if create
        else h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl)
    )
    return _capped(h5py.File(fid))


def open_part(path: Path):
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


@functools.cache
def _dataset_props(dtype: np.dtype) -> tuple:
    """The dataset creation property list (creation times not tracked) and the HDF5 type for ``dtype``."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    return dcpl, h5py.h5t.py_create(dtype)


def close_synced(f, safe: SafeFile, partial: Path) -> None:
    """Close the HDF5 file and its :class:`SafeFile`, fsynced; a write that failed on the way raises
    :class:`DiskError`. Returns None (the caller's handle is then gone)."""
    f.close()
    safe.sync()
    if safe.error is not None:
        raise disk_error(safe.path, safe.error, partial)
    safe.close()


def abandon(f, safe: SafeFile, delete: Path | None, partial: Path) -> None:
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


def refuse_links(path: str | Path, what: str = "an HDF5 file of vectors") -> None:
    """Refuse an HDF5 file that reaches outside itself, before anything in it is read: a soft link or an external
    link (dangling, or silently followed into another file), a user-defined link, a virtual dataset or a dataset
    stored in external raw files. Walks every link (hard links only are followed, so a dangling one does no harm)
    and every dataset's creation properties: about 3 s per 50,000 datasets, less than one epoch's reads.

    A file that does not open as HDF5 is left to its reader, which says what is wrong with it.

    Raises:
        ElmokitError: one line naming the file, the object's path in it and where it points.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        return
    with f:
        links = f.id.links
        name = links.visit(lambda n, info: n if info.type != h5py.h5l.TYPE_HARD else None, info=True)
        if name is not None:
            kind = {h5py.h5l.TYPE_SOFT: "soft link", h5py.h5l.TYPE_EXTERNAL: "external link"}.get(
                links.get_info(name).type, "user-defined link"
            )
            try:
                val = links.get_val(name)
                target = f"{os.fsdecode(val[0])}:{os.fsdecode(val[1])}" if isinstance(val, tuple) else os.fsdecode(val)
            except Exception:  # noqa: BLE001 - a link type h5py cannot read: its kind says enough
                target = "somewhere h5py cannot say"
            raise ElmokitError(
                f"{path}: /{os.fsdecode(name)} is an HDF5 {kind} (to {target}); {what} must hold its data itself, "
                f"not link to other objects or files: give the file `elmokit embed` wrote, or copy the data in "
                f"(e.g. h5copy)"
            )

        def stored_elsewhere(n, info):
            if info.type != h5py.h5o.TYPE_DATASET:
                return None
            plist = h5py.h5d.open(f.id, n).get_create_plist()
            if plist.get_layout() == h5py.h5d.VIRTUAL:
                return n, "a virtual dataset (its data is read from other files)"
            if plist.get_external_count():
                return n, f"stored in an external file ({os.fsdecode(plist.get_external(0)[0])})"
            return None

        hit = h5py.h5o.visit(f.id, stored_elsewhere, info=True)
        if hit is not None:
            raise ElmokitError(
                f"{path}: /{os.fsdecode(hit[0])} is {hit[1]}; {what} must hold its data itself: give the file "
                f"`elmokit embed` wrote, or copy the data in (e.g. h5copy)"
            )
