"""Durable files: atomic writes of files and directories, manifests (every file's sha256) and their checks, safe
loading of tensors (``weights_only=True``), the versions every output records, and the files every model directory
has (:func:`write_model_dir`, :class:`ModelDir`). An LM's directory is :mod:`elmokit.lm.model_dir`, a pretraining
checkpoint :mod:`elmokit.lm.checkpoint`, a task model's :mod:`elmokit.tasks.model_dir`.

Every directory is written under a temporary name and renamed when complete, so a directory with the final name is
always whole; its manifest's sha256 sums catch later truncation.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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


def atomic_dir(final: Path) -> Path:
    """A fresh temporary directory beside ``final`` (same filesystem, so :func:`commit_dir` can rename it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the committed directory should read like any other
    return tmp


def commit_dir(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` (a directory with the final name is complete at every moment but one rename)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def removed_on_disk_error(tmp: Path, final: Path, what: str, todo: str) -> Iterator[Path]:
    """The writes into the temporary directory ``tmp`` (of ``final``): a failed one (a full disk) removes ``tmp``
    and raises one :class:`CheckpointError` (``FINAL: cannot write WHAT (reason); TODO``) instead of a traceback."""
    try:
        yield tmp
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: cannot write{what} ({e.strerror or e}); {todo}") from None


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


def read_manifest(d: Path, fmt: str, what: str, verify: bool = True, todo: str = " (re-copy it or re-run)") -> dict:
    """Read and check a manifest: format ``fmt``, and (``verify``) the sha256 of every listed file; ``todo`` ends
    the message of a file that does not match."""
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{d / 'manifest.json'}: unreadable manifest ({e}); the directory is corrupt") from None
    if manifest.get("format") != fmt:
        raise CheckpointError(f"{d}: format {manifest.get('format')!r} is not {fmt}; not {what}")
    if verify:
        verify_files(d, manifest, todo)
    return manifest


def verify_files(d: Path, manifest: dict, todo: str = " (re-copy it or re-run)") -> None:
    """Every file the manifest lists (``files``: name → sha256) is in ``d`` with that hash; ``todo`` ends the message
    of a file that does not match.

    Raises:
        CheckpointError: naming the missing or changed file.
    """
    for name, sha in manifest.get("files", {}).items():
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; the model directory is incomplete")
        if sha256_file(f) != sha:
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
