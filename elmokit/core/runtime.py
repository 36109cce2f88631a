"""What every elmokit training loop (``pretrain``, ``train-tagger``/``train-classifier``) sets up the same way: the
threads, the allocator, the accelerator, and the run's log (``metrics.jsonl`` plus the configured trackers)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from elmokit.core.malloc import keep_freed_memory
from elmokit.core.run_guard import MetricsLog, check_launch


def start_accelerator(run_dir: Path, threads: int, mixed_precision: str, trackers: list[str]):
    """Threads (0: torch's default), the allocator setting on CPU (each step's buffers reused instead of re-faulted:
    :mod:`elmokit.core.malloc`), and the :class:`accelerate.Accelerator`: without a GPU, processes started by
    ``accelerate launch --multi_gpu`` or torchrun train over gloo on the CPU. A launch the loop cannot run is
    refused (:func:`elmokit.core.run_guard.check_launch`)."""
    from accelerate import Accelerator

    if threads:
        torch.set_num_threads(threads)
    if not torch.cuda.is_available():
        keep_freed_memory()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=mixed_precision,
        log_with=trackers or None,
        project_dir=str(run_dir),
    )
    check_launch(accelerator.num_processes)
    return accelerator


class RunLog:
    """A run's records: ``metrics.jsonl`` on the main process (:class:`~elmokit.core.run_guard.MetricsLog`, cut back on
    resume to what the checkpoint saw) and the configured trackers (TensorBoard, W&B, ...) on every process.

    Args:
        accelerator: the run's accelerator.
        path: ``metrics.jsonl``.
        keep, keep_step: see :class:`~elmokit.core.run_guard.MetricsLog` (both ``None``: a new file).
        project: the trackers' project name; config: the run's config (for the trackers).
    """

    def __init__(
        self,
        accelerator,
        path: Path,
        keep: int | None,
        keep_step: int | None,
        project: str,
        config: dict,
        trackers: bool,
    ) -> None:
        self.accelerator = accelerator
        self.metrics = MetricsLog(path, keep, keep_step) if accelerator.is_main_process else None
        if trackers:
            accelerator.init_trackers(project, config=json.loads(json.dumps(config)))

    @property
    def lines(self) -> int:
        """Records in ``metrics.jsonl`` (what a checkpoint stores; 0 off the main process)."""
        return self.metrics.lines if self.metrics is not None else 0

    def write(self, rec: dict, tracked: dict[str, float]) -> None:
        """Append ``rec`` to ``metrics.jsonl`` and send ``tracked`` to the trackers at ``rec["step"]``."""
        if self.metrics is not None:
            self.metrics.write(rec)
        self.accelerator.log(tracked, step=rec["step"])

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
