"""A downstream run's resumable state, written and read here: ``OUT/checkpoint/`` holds the weights (and their
average), optimizer, LR annealing and RNG state (``state.pt``), the loop's counters (``loop.json``, a
:class:`LoopState`), the run's fingerprint, and a manifest with every file's sha256, verified on ``--resume``.
Written aside and renamed after every evaluation, so the directory with its final name is complete."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from elmokit.core.errors import CheckpointError, ConfigError
from elmokit.core.files import atomic_dir, commit_dir, read_manifest, safe_load, torch_save_bytes, write_json
from elmokit.core.run_guard import check_same_run
from elmokit.core.textfile import sha256_file

CHECKPOINT_FORMAT = "elmokit-task-checkpoint/1"


@dataclass
class LoopState:
    """Where a task run is, saved as ``checkpoint/loop.json`` after every evaluation and read back by ``--resume``."""

    epoch: int = 0
    batch_pos: int = 0  # the next batch of the epoch
    step: int = 0
    best: float | None = None  # the best dev score so far
    best_step: int = 0
    bad_evals: int = 0  # evaluations since the best one
    stopped: bool = False
    stop_reason: str | None = None  # patience | time | "" (not stopped); None: saved before elmokit recorded it
    train_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    window: list = field(default_factory=lambda: [0.0, 0])  # train-loss sum and steps since the last train record
    metrics_lines: int | None = None  # lines of metrics.jsonl this state saw (None: saved before this was kept)

    @classmethod
    def read(cls, path: Path) -> LoopState:
        """Read ``loop.json`` (a checkpoint of an older elmokit lacks the newer keys: they keep their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k in known})


def save_state(run: Path, model, optimizer, plateau, average, loop: LoopState, run_print: dict) -> None:
    """The resumable state after an evaluation: weights (and their average), optimizer, annealing, loop counters,
    RNG states, the run's fingerprint, and a manifest with every file's sha256 (verified on resume).

    Raises:
        CheckpointError: a write failed (a full disk): one line naming the file, and whether a checkpoint of this
            run is left to ``--resume`` from (the temporary directory is removed).
    """
    final = run / "checkpoint"
    tmp = atomic_dir(final)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "plateau": plateau.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    if average is not None:
        state["average"] = average.state_dict()
    name = "state.pt"
    try:
        (tmp / name).write_bytes(torch_save_bytes(state))
        for name, obj in (("loop.json", dataclasses.asdict(loop)), ("fingerprint.json", run_print)):
            write_json(tmp / name, obj)
        files = {n: sha256_file(tmp / n) for n in ("state.pt", "loop.json", "fingerprint.json")}
        name = "manifest.json"
        write_json(tmp / name, {"format": CHECKPOINT_FORMAT, "files": files})
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"{final / name}: cannot write the checkpoint ({e.strerror or e}); {checkpoint_left(run, run_print)}"
        ) from None
    commit_dir(tmp, final)


def checkpoint_left(run: Path, run_print: dict) -> str:
    """What a run stopped by a failed write can do next, with or without a checkpoint of this run in ``run``."""
    if has_checkpoint(run, run_print):
        return "the last checkpoint is intact: free space, then continue with --resume"
    return "no checkpoint of this run was saved yet: free space, then run the same command again"


def has_checkpoint(run: Path, run_print: dict) -> bool:
    """Does ``run/checkpoint`` hold a complete checkpoint of this run (the same fingerprint)?"""
    ck = run / "checkpoint"
    try:
        same = json.loads((ck / "fingerprint.json").read_text(encoding="utf-8")) == run_print
    except (OSError, ValueError):
        return False
    return same and (ck / "state.pt").is_file() and (ck / "loop.json").is_file()


def resume_state(run: Path, run_print: dict, model, optimizer, plateau, average) -> LoopState:
    """Load ``run/checkpoint`` into the model, optimizer, annealing and weight average, after checking its files
    against its manifest and the run against its fingerprint; returns the loop's state there."""
    ck = run / "checkpoint"
    if (ck / "manifest.json").is_file():  # checkpoints of elmokit 0.1 have none
        read_manifest(ck, fmt=CHECKPOINT_FORMAT, what="a task checkpoint", todo="; start over with --overwrite")
        check_same_run(ck, run_print, "or start over with --overwrite or another --out")
    st = safe_load(ck / "state.pt", "training state")
    model.load_state_dict(st["model"])
    optimizer.load_state_dict(st["optimizer"])
    plateau.load_state_dict(st["plateau"])
    torch.set_rng_state(st["torch_rng"])
    if (average is None) != ("average" not in st):  # the best model so far was selected with or without it
        raise ConfigError(
            f"{run}: the checkpoint was trained with{'out' if average else ''} averaged weights; "
            f"resume it with the same train.ema_decay"
        )
    if average is not None:
        average.load_state_dict(st["average"])
    return LoopState.read(ck / "loop.json")
