"""On-disk formats: the model directory (one direction), the resumable checkpoint, atomic writes, manifests.

Model directory (self-contained; nothing else is needed to load it)::

    config.yaml      the resolved PretrainConfig (model, data, train)
    weights.pt       the model's state dict (tensors only; loaded with ``torch.load(weights_only=True)``)
    vocab.model      a copy of the sentencepiece model
    manifest.json    format, direction, vocab size and sha256, sha256 of every file, versions, training summary

Checkpoint directory ``RUN/checkpoints/step-00001234/``: a model directory plus ``train_state.pt`` (optimizer,
scheduler, step) and ``rank-K.pt`` per process (torch and CUDA RNG states, the negative-sampling generator, the
carried hidden state of every stream). Every directory is written under a temporary name and renamed when complete,
so a directory with the final name is always whole; its manifest's sha256 sums catch later truncation.
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
from elmokit.errors import CheckpointError
from elmokit.textfile import sha256_file

MODEL_FORMAT = "elmokit-lm/1"


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


def write_model_dir(d: Path, fmt: str, weights: dict[str, torch.Tensor], config: dict, fields: dict,
                    files: tuple[str, ...] = ()) -> dict:
    """The files every elmokit model directory has (an LM's, a task model's), written into ``d`` (which the caller
    commits): ``weights.pt`` (tensors only), ``config.yaml``, and ``manifest.json`` with the format, ``fields``, the
    sha256 of ``weights.pt``, ``config.yaml`` and ``files`` (already written into ``d``), and the versions.

    Returns:
        The manifest.
    """
    import yaml

    (d / "weights.pt").write_bytes(torch_save_bytes({k: v.detach().cpu() for k, v in weights.items()}))
    (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    manifest = {"format": fmt, **fields,
                "files": {n: sha256_file(d / n) for n in ("weights.pt", "config.yaml", *files)}, "versions": versions()}
    write_json(d / "manifest.json", manifest)
    return manifest


def write_model_files(
    d: Path, state_dict: dict[str, torch.Tensor], config: dict, vocab_path: Path, vocab_sha: str, direction: str,
    vocab_size: int, summary: dict | None = None, extra_files: list[str] = (),
) -> None:
    """Write an LM's model directory into ``d`` (:func:`write_model_dir` plus a copy of its vocabulary);
    ``extra_files`` (already in ``d``, e.g. a checkpoint's training state) are listed in the manifest too."""
    shutil.copyfile(vocab_path, d / "vocab.model")
    write_model_dir(d, MODEL_FORMAT, state_dict, config, {
        "direction": direction, "vocab_size": vocab_size, "vocab_sha256": vocab_sha, "summary": summary or {},
    }, ("vocab.model", *extra_files))


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model directory, or a run directory (``elmokit pretrain --out``) holding ``model/``."""
    p = Path(path)
    if (p / "manifest.json").is_file():
        return p
    if (p / "model" / "manifest.json").is_file():
        return p / "model"
    if not p.exists():
        raise CheckpointError(f"{path}: no such model directory; pass the --out directory of `elmokit pretrain`")
    raise CheckpointError(
        f"{path}: not an elmokit model (no manifest.json here or in {p / 'model'}); training may not have "
        f"finished: resume it with `elmokit pretrain ... --resume`"
    )


def read_manifest(d: Path, verify: bool = True, fmt: str = MODEL_FORMAT, what: str = "an elmokit LM",
                  todo: str = " (re-copy it or re-run)") -> dict:
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
    config, its manifest (every file's sha256 checked) and where it is."""

    model: Any
    cfg: Any
    manifest: dict
    path: Path


@dataclass
class LoadedLM(ModelDir):
    """An LM's model directory (``model``: an ``elmokit.lm.LanguageModel``, ``cfg``: its ``PretrainConfig``), with its
    vocabulary. A task model's is :class:`elmokit.tasks.model_dir.TaskModel`."""

    vocab: Any = None  # its elmokit.vocab.Vocab


def made_by(loaded: LoadedLM) -> dict:
    """What an output made from an LM records about it: its directory, weights and vocabulary hashes, and the
    versions that read it."""
    return {"model": str(loaded.path), "weights_sha256": loaded.manifest["files"]["weights.pt"],
            "vocab_sha256": loaded.manifest["vocab_sha256"], "versions": versions()}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedLM:
    """Load an LM model directory (or the run directory holding it).

    Raises:
        CheckpointError: missing/corrupt/truncated files, vocab/weights mismatch.
    """
    import yaml

    from elmokit.config import PretrainConfig, build_config
    from elmokit.lm import LanguageModel
    from elmokit.vocab import load_vocab

    d = resolve_model_dir(path)
    manifest = read_manifest(d)
    cfg = build_config(PretrainConfig, yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")), str(d))
    vocab = load_vocab(d / "vocab.model")
    if vocab.sha256 != manifest["vocab_sha256"] or vocab.size != manifest["vocab_size"]:
        raise CheckpointError(f"{d}: vocab.model does not match the manifest's vocab hash/size; the model is corrupt")
    state = safe_load(d / "weights.pt", "weights")
    model = LanguageModel(cfg.model, vocab.size)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{d / 'weights.pt'}: weights do not fit config.yaml ({str(e)[:200]})") from None
    model.to(device).eval()
    return LoadedLM(model, cfg, manifest, d, vocab)


def check_vocab_fits(manifest: dict, vocab_sha: str, vocab_path: str, model_path: str) -> None:
    """Refuse a model trained with another vocabulary."""
    if manifest["vocab_sha256"] != vocab_sha:
        raise CheckpointError(
            f"{model_path}: was trained with vocab sha256 {manifest['vocab_sha256'][:12]}…, but {vocab_path} has "
            f"{vocab_sha[:12]}…; use the vocabulary the model was trained with (its copy is in the model directory)"
        )


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for p in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def verified_checkpoint(run_dir: Path, resume_from: str | None) -> Path | None:
    """The checkpoint to resume: ``resume_from`` (a checkpoint directory or a step number), else the newest;
    its files are checked against the manifest's sha256 first.

    Raises:
        CheckpointError: the checkpoint is damaged (naming the file, and the newest intact one to pass as
            ``--resume-from``), or ``resume_from`` is not a checkpoint of this run.
    """
    checkpoints = list_checkpoints(run_dir)
    if resume_from:
        ck = Path(resume_from)
        if resume_from.isdigit():
            ck = run_dir / "checkpoints" / f"step-{int(resume_from):08d}"
        if ck.resolve() not in [c.resolve() for c in checkpoints]:
            names = ", ".join(c.name for c in checkpoints) or "none"
            raise CheckpointError(f"--resume-from {resume_from}: not a checkpoint of {run_dir} (it has: {names})")
    elif not checkpoints:
        return None
    else:
        ck = checkpoints[-1]
    try:
        read_manifest(ck, verify=True, todo="")
    except CheckpointError as e:
        intact = [c for c in checkpoints[::-1] if c != ck and _intact(c)]
        what = (f"continue from the newest intact one with --resume-from {intact[0]}" if intact
                else "no intact checkpoint is left: start over with --overwrite")
        raise CheckpointError(f"{e}; {what}") from None
    return ck


def _intact(ck: Path) -> bool:
    try:
        read_manifest(ck, verify=True, todo="")
        return True
    except CheckpointError:
        return False
