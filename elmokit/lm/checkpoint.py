"""A pretraining checkpoint, written and read here: ``OUT/checkpoints/step-N/`` holds the model files, the
optimizer and schedule (``train_state.pt``), each process's RNGs, carried LSTM states and train-loss window
(``rank-K.pt``), the run's fingerprint, and a manifest with every file's sha256 (verified before ``--resume``
trusts it: :func:`verified_checkpoint`). Written aside and renamed, so a directory with its final
name is complete."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from elmokit.core.config import to_dict
from elmokit.core.errors import CheckpointError, ConfigError
from elmokit.core.files import (
    atomic_dir,
    commit_dir,
    read_manifest,
    removed_on_disk_error,
    safe_load,
    torch_save_bytes,
    write_json,
)
from elmokit.core.run_guard import check_same_run
from elmokit.lm.model import LanguageModel
from elmokit.lm.model_dir import MODEL_FORMAT, write_model_files


def _rng_state(model: LanguageModel, states: list, window: tuple[float, int]) -> dict:
    st = {
        "window": list(window),  # the train-loss sum and steps since the last record (continued on resume)
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "negatives": model.head.generator.get_state(),
        "carried": [None if s is None else [list(layer) for layer in s] for s in states],
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(model: LanguageModel, st: dict, device) -> list:
    """Restore the RNGs; returns the carried hidden state of every stream."""
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    model.head.generator.set_state(st["negatives"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    return [None if s is None else [tuple(t.to(device) for t in layer) for layer in s] for s in st["carried"]]


def save_checkpoint(
    accelerator,
    run_dir: Path,
    step: int,
    model,
    optimizer,
    scheduler,
    states,
    cfg,
    vocab,
    direction: str,
    keep: int,
    run_print: dict,
    window: tuple[float, int],
    metrics_lines: int,
) -> None:
    """Write ``run_dir/checkpoints/step-N`` atomically, every process contributing its RNG and carried state.

    Every file (the model files, ``train_state.pt``, each ``rank-K.pt``, ``fingerprint.json``) is listed with its
    sha256 in the manifest, which ``--resume`` verifies. A failed write (a full disk) removes the temporary
    directory and raises a :class:`CheckpointError`; the earlier checkpoints are left as they were."""
    final = run_dir / "checkpoints" / f"step-{step:08d}"
    tmp_holder = [None]
    if accelerator.is_main_process:
        tmp_holder[0] = str(atomic_dir(final))
    from accelerate.utils import broadcast_object_list

    if accelerator.num_processes > 1:
        broadcast_object_list(tmp_holder)
    tmp = Path(tmp_holder[0])
    unwrapped = accelerator.unwrap_model(model)
    with removed_on_disk_error(
        tmp, final, " the checkpoint", "the earlier checkpoints are intact: free space, then continue with --resume"
    ):
        rank_file = tmp / f"rank-{accelerator.process_index}.pt"
        rank_file.write_bytes(torch_save_bytes(_rng_state(unwrapped, states, window)))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            train_state = {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "world_size": accelerator.num_processes,
                "metrics_lines": metrics_lines,  # metrics.jsonl's records so far: what a resume keeps
            }
            (tmp / "train_state.pt").write_bytes(torch_save_bytes(train_state))
            write_json(tmp / "fingerprint.json", run_print)
            extra = ["train_state.pt", "fingerprint.json"] + [f"rank-{r}.pt" for r in range(accelerator.num_processes)]
            write_model_files(
                tmp,
                unwrapped.state_dict(),
                to_dict(cfg),
                vocab.path,
                vocab.sha256,
                direction,
                vocab.size,
                {"step": step, "checkpoint": True},
                extra_files=extra,
            )
            commit_dir(tmp, final)
            prune_checkpoints(run_dir, keep)
    accelerator.wait_for_everyone()


@dataclass
class RunState:
    """Where a pretraining run is: what its checkpoints save and ``--resume`` reads back."""

    step: int = 0
    states: list = field(default_factory=list)  # each micro-batch's carried LSTM state (None: from the start)
    window: tuple[float, int] = (0.0, 0)  # the train-loss sum and steps since the last train record
    metrics_lines: int | None = None  # records of metrics.jsonl the checkpoint saw (None: a new run, or older)


def resume_checkpoint(
    ck: Path, run_print: dict, model: LanguageModel, optimizer, scheduler, world: int, rank: int, device
) -> RunState:
    """Load checkpoint ``ck`` (its files already verified against their sha256) into the model, optimizer and
    schedule, after checking the run against its fingerprint; returns the state it saved, this process's RNGs
    restored."""
    train_state = safe_load(ck / "train_state.pt", "training state")
    if train_state["world_size"] != world:
        raise ConfigError(
            f"{ck}: was written by {train_state['world_size']} processes; resume it with the "
            f"same number (got {world}), so every stream continues where it stopped"
        )
    check_same_run(
        ck,
        run_print,
        "or start a new run with --overwrite or another --out (train.max_steps and "
        "train.epochs may change when train.schedule_steps fixes the LR schedule's length)",
    )
    model.load_state_dict(safe_load(ck / "weights.pt", "weights"))
    optimizer.load_state_dict(train_state["optimizer"])
    scheduler.load_state_dict(train_state["scheduler"])
    rank_state = safe_load(ck / f"rank-{rank}.pt", "RNG state")
    states = _set_rng_state(model, rank_state, device)
    return RunState(
        int(train_state["step"]), states, tuple(rank_state.get("window", (0.0, 0))), train_state.get("metrics_lines")
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
        read_manifest(ck, MODEL_FORMAT, "a pretraining checkpoint", todo="")
    except CheckpointError as e:
        intact = [c for c in checkpoints[::-1] if c != ck and _intact(c)]
        what = (
            f"continue from the newest intact one with --resume-from {intact[0]}"
            if intact
            else "no intact checkpoint is left: start over with --overwrite"
        )
        raise CheckpointError(f"{e}; {what}") from None
    return ck


def _intact(ck: Path) -> bool:
    try:
        read_manifest(ck, MODEL_FORMAT, "a pretraining checkpoint", todo="")
        return True
    except CheckpointError:
        return False
