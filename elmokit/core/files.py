"""Durable files: atomic writes of files and directories, manifests (every file's sha256) and their checks, safe
loading of tensors (``weights_only=True``), the versions every output records, and the files every model directory
has (:func:`write_model_dir`, :class:`ModelDir`). An LM's directory is :mod:`elmokit.lm.model_dir`, a pretraining
checkpoint :mod:`elmokit.lm.checkpoint`, a task model's :mod:`elmokit.tasks.model_dir`.

Every directory is written under a temporary name and renamed when complete, so a directory with the final name is
always whole; its manifest's sha256 sums catch later truncation. The hidden names beside ``NAME`` carry the writer's
PID: ``.NAME.tmp-PID-*`` (being written) and ``.NAME.old-PID`` (the directory being replaced, for the moment between
:func:`commit_dir`'s two renames). Whatever a killed writer left there is put right by the next writer or reader of
``NAME`` (:func:`recover_dir`): the old directory comes back when ``NAME`` is missing, goes when ``NAME`` is there,
and a temporary goes; a live writer's are left alone.
"""

from __future__ import annotations

import errno
import io
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from elmokit import __version__
from elmokit.core.errors import CheckpointError
from elmokit.core.textfile import sha256_file


def versions() -> dict[str, str]:
    """Versions of what made a file."""
    import accelerate
    import sentencepiece

    return {
        "elmokit": __version__,
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "sentencepiece": sentencepiece.__version__,
        "python": platform.python_version(),
    }


def torch_save_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def safe_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` with a clear error for a missing, truncated or foreign file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file is missing; the directory is incomplete, re-run or re-copy it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(
            f"{path}: cannot read {what} ({type(e).__name__}: {str(e).splitlines()[0][:160]}); the file is corrupt "
            f"or truncated (or not an elmokit file); use an earlier checkpoint or re-run"
        ) from None


def save_tensors(obj: Any, path: Path) -> None:
    """``torch.save`` straight into ``path`` (no second copy in memory), flushed to the disk. torch reports a failed
    write (a full disk) as a ``RuntimeError`` ("unexpected pos ...", "file write failed"): it becomes an
    ``OSError`` naming the file, which :func:`removed_on_disk_error` turns into one line."""
    try:
        with open(path, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
        raise OSError(errno.EIO, f"torch could not write {path.name}: {reason}; is the disk full?", str(path)) from None


_HIDDEN = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>[0-9]{1,10})(?:-.*)?\Z", re.S)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (this one, or one that ``kill -0`` finds; when unsure, yes)."""
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # another user's process (EPERM), or a number no PID can be
        return True
    return True


def _remove(p: Path) -> None:
    """Remove a directory tree, or a file or link (never what a link points to)."""
    try:
        if p.is_symlink() or not p.is_dir():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)
    except OSError:
        pass


def recover_dir(final: Path) -> None:
    """Put right what killed writers of ``final`` left beside it (see the module docstring): ``.NAME.old-PID`` of a
    process that is gone is renamed back to ``final`` when ``final`` is missing (the kill fell between
    :func:`commit_dir`'s renames) and removed when ``final`` is there; ``.NAME.tmp-PID-*`` of a process that is gone
    is removed. A live process's directories are not touched, so a concurrent writer is not disturbed. Called by
    :func:`atomic_dir` and :func:`read_manifest`; failures (a read-only parent) are ignored."""
    final = Path(final)
    parent, name = final.parent, final.name
    if not name or name in (".", ".."):
        return
    try:
        entries = [e.name for e in os.scandir(parent)]
    except OSError:
        return
    olds: list[Path] = []
    for entry in entries:
        m = _HIDDEN.match(entry)
        if not m or m["name"] != name or _alive(int(m["pid"])):
            continue
        if m["kind"] == "tmp":
            _remove(parent / entry)
        elif entry == f".{name}.old-{m['pid']}":
            olds.append(parent / entry)
    if not olds:
        return
    if not (final.exists() or final.is_symlink()):  # killed between the renames: the old one is the last whole one
        try:
            newest = max(olds, key=lambda p: p.lstat().st_ctime)
            os.replace(newest, final)
            olds.remove(newest)
        except (OSError, ValueError):
            return
    for p in olds:
        _remove(p)


def check_out_dir(out: Path, sources: list[Path], overwrite: bool, verb: str, is_ours, ours: str) -> None:
    """Refuse an ``--out`` directory that a command writing from ``sources`` must not write: a dangling or any
    symbolic link, a path equal to, inside or holding a source (``--overwrite`` would delete it), an existing path
    without ``overwrite``, and, even with it, anything ``is_ours(out)`` does not recognise as an earlier output. What a
    killed run left beside ``out`` is put right first (:func:`recover_dir`).

    Args:
        verb: what the command does, for the messages (``import``, ``export``).
        is_ours: whether an existing directory is one this command wrote (so ``--overwrite`` may replace it).
        ours: what such a directory is, for the message (``a biLM bundle``).

    Raises:
        CheckpointError: naming ``out`` and what to do.
    """
    if out.is_symlink() and not out.exists():
        raise CheckpointError(
            f"{out}: a symbolic link to {os.readlink(out)}, which does not exist; remove the link or choose "
            f"another --out"
        )
    real = out.resolve()
    for src in sources:
        s = src.resolve()
        how = "is" if real == s else "is inside" if s in real.parents else "holds" if real in s.parents else ""
        if how:
            raise CheckpointError(
                f"{out}: {how} the source {src}; the {verb} would write over what it reads: choose an --out "
                f"apart from the source"
            )
    if out.is_symlink():
        raise CheckpointError(
            f"{out}: a symbolic link (to {os.readlink(out)}); pass the directory itself, or choose another --out"
        )
    recover_dir(out)
    if not out.exists():
        return
    if not overwrite:
        raise CheckpointError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    if not out.is_dir() or not is_ours(out):
        raise CheckpointError(
            f"{out}: exists and is not {ours}; --overwrite replaces only {ours}: move it away yourself, or choose "
            f"another --out"
        )


def atomic_dir(final: Path) -> Path:
    """A fresh temporary directory beside ``final`` (same filesystem, so :func:`commit_dir` can rename it), named
    ``.NAME.tmp-PID-*``, after putting right what killed writers of ``final`` left (:func:`recover_dir`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the committed directory should read like any other
    return tmp


def commit_dir(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` (a directory with the final name is complete at every moment but one rename).

    The old ``final`` waits as ``.NAME.old-PID`` between the two renames: a failed second rename puts it back (and
    removes ``tmp``); a kill there is put right by the next run (:func:`recover_dir`)."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.exists() or old.is_symlink():  # left by an earlier process with this PID
            _remove(old)
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            try:
                os.replace(old, final)
            except OSError:
                pass  # left as .NAME.old-PID: the next run restores it
        _remove(tmp)
        raise
    if old is not None:
        _remove(old)


@contextmanager
def removed_on_disk_error(tmp: Path, final: Path, what: str, todo: str) -> Iterator[Path]:
    """The writes into the temporary directory ``tmp`` (of ``final``): a failed one (a full disk) removes ``tmp``
    and raises one :class:`CheckpointError` (``FINAL: cannot write WHAT (reason); TODO``) instead of a traceback."""
    try:
        yield tmp
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: cannot write{what} ({e.strerror or e}); {todo}") from None


def fsync_dir(d: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk, where the platform can."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # not every platform opens directories
        return
    try:
        os.fsync(fd)
    except OSError:  # nor syncs them (EINVAL)
        pass
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_model_dir(
    d: Path, fmt: str, weights: dict[str, torch.Tensor], config: dict, fields: dict, files: tuple[str, ...] = ()
) -> dict:
    """The files every elmokit model directory has (an LM's, a task model's), written into ``d`` (which the caller
    commits): ``weights.pt`` (tensors only), ``config.yaml``, and ``manifest.json`` with the format, ``fields``, the
    sha256 of ``weights.pt``, ``config.yaml`` and ``files`` (already written into ``d``), and the versions.

    Returns:
        The manifest.
    """
    import yaml

    (d / "weights.pt").write_bytes(torch_save_bytes({k: v.detach().cpu() for k, v in weights.items()}))
    (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    manifest = {
        "format": fmt,
        **fields,
        "files": {n: sha256_file(d / n) for n in ("weights.pt", "config.yaml", *files)},
        "versions": versions(),
    }
    write_json(d / "manifest.json", manifest)
    return manifest


def read_manifest(
    d: Path,
    fmt: str,
    what: str,
    verify: bool = True,
    todo: str = " (re-copy it or re-run)",
    required: tuple[str, ...] = (),
) -> dict:
    """Read and check a manifest: format ``fmt``, and (``verify``) every listed file (:func:`verify_files`, which
    ``required`` names must be among); ``todo`` ends the message of a file that does not match. What killed writers
    of ``d`` left beside it is put right first (:func:`recover_dir`)."""
    recover_dir(d)
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{d / 'manifest.json'}: unreadable manifest ({e}); the directory is corrupt") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{d / 'manifest.json'}: not a JSON object; the directory is corrupt{todo}")
    if manifest.get("format") != fmt:
        raise CheckpointError(f"{d}: format {manifest.get('format')!r} is not {fmt}; not {what}")
    if verify:
        verify_files(d, manifest, todo, required)
    return manifest


SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def manifest_files(d: Path, manifest: dict, required: tuple[str, ...] = ()) -> dict[str, Path]:
    """The files a manifest lists (``files``: name → sha256), each checked to be a plain relative path that stays
    inside ``d`` (no ``..``, no absolute path, no link pointing out), and ``required`` among them; nothing outside
    ``d`` is opened.

    Returns:
        name → path inside ``d``.

    Raises:
        CheckpointError: naming ``manifest.json`` and the entry.
    """
    where = d / "manifest.json"
    files = manifest.get("files")
    if not files:
        raise CheckpointError(f"{where}: lists no files with their sha256 ('files'); the directory is corrupt")
    if not isinstance(files, dict):
        raise CheckpointError(
            f"{where}: 'files' must map each file name to its sha256, got a {type(files).__name__}; the directory "
            f"is corrupt"
        )
    missing = [n for n in required if n not in files]
    if missing:
        raise CheckpointError(f"{where}: does not list {', '.join(missing)} in 'files'; the directory is corrupt")
    try:
        base = d.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"{d}: cannot open the directory ({e})") from None
    out: dict[str, Path] = {}
    for name, sha in files.items():
        if not (isinstance(sha, str) and SHA256.match(sha)):
            raise CheckpointError(
                f"{where}: files[{name!r}] must be a sha256 (64 hex digits), got {sha!r:.80}; the directory is corrupt"
            )
        plain = PurePosixPath(name) if isinstance(name, str) and "\0" not in name and "\\" not in name else None
        if plain is None or not plain.parts or plain.is_absolute() or ".." in plain.parts or str(plain) != name:
            raise CheckpointError(
                f"{where}: files lists {name!r}, not a plain path inside {d}; the manifest is corrupt or hostile, "
                f"nothing outside the directory is read"
            )
        f = d / name
        try:
            real = f.resolve()
        except (OSError, RuntimeError):  # a loop of links
            real = None
        if real is None or not real.is_relative_to(base) or real == base:
            raise CheckpointError(
                f"{where}: files lists {name!r}, a link that points out of {d}; the manifest is corrupt or hostile, "
                f"nothing outside the directory is read"
            )
        out[name] = f
    return out


def verify_files(
    d: Path, manifest: dict, todo: str = " (re-copy it or re-run)", required: tuple[str, ...] = ()
) -> None:
    """Every file the manifest lists (``files``: name → sha256) is in ``d`` with that hash (every path first checked
    to stay inside ``d``: :func:`manifest_files`); ``required`` names must be listed; ``todo`` ends the message of a
    file that does not match.

    Raises:
        CheckpointError: naming the manifest's bad entry, or the missing or changed file.
    """
    for name, f in manifest_files(d, manifest, required).items():
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; the model directory is incomplete")
        if sha256_file(f) != manifest["files"][name]:
            raise CheckpointError(f"{f}: sha256 differs from the manifest; the file is corrupt or truncated{todo}")


@dataclass
class ModelDir:
    """A loaded elmokit model directory (written by :func:`write_model_dir`): the model in eval mode, its typed
    config, its manifest (every file's sha256 checked) and where it is. An LM's is
    :class:`elmokit.lm.model_dir.LoadedLM`, a task model's :class:`elmokit.tasks.model_dir.TaskModel`."""

    model: Any
    cfg: Any
    manifest: dict
    path: Path
