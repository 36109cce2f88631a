"""What every elmokit training loop (``pretrain``, ``train-tagger``/``train-classifier``) sets up the same way: the
threads, the allocator, the accelerator, and the run's log (``metrics.jsonl`` plus the configured trackers); and
where a frozen biLM runs (:func:`inference_device`, :func:`inference_autocast`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from elmokit.core.choices import INFERENCE_PRECISIONS
from elmokit.core.errors import ElmokitError
from elmokit.core.malloc import keep_freed_memory
from elmokit.core.run_guard import MetricsLog, check_launch


def inference_device(device: str | None = None) -> torch.device:
    """Where a frozen biLM runs: ``device`` when given (``cpu``, ``cuda``, ``cuda:N``), else the device accelerate
    gives this process (its own GPU under ``torchrun`` / ``accelerate launch``, the GPU when there is one, else the
    CPU).

    Raises:
        ElmokitError: a device that is not one, or a GPU this machine does not have.
    """
    if not device:
        from accelerate import PartialState

        return PartialState(cpu=not torch.cuda.is_available()).device
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        raise ElmokitError(f"--device {device}: not a device; use cpu, cuda or cuda:N") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ElmokitError(f"--device {device}: this machine has no CUDA GPU (torch sees none); use --device cpu")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise ElmokitError(f"--device {device}: there are {torch.cuda.device_count()} GPUs (cuda:0 ...)")
    if d.type not in ("cpu", "cuda"):
        raise ElmokitError(f"--device {device}: elmokit runs on cpu or cuda")
    return d


def inference_autocast(device: torch.device, precision: str):
    """The context a frozen biLM computes in: plain fp32, or autocast to bf16 / fp16 (GPUs only: on the CPU the
    vectors would depend on the batch a sentence is in, and it is not faster there).

    Raises:
        ElmokitError: an unknown precision, or a lower one on the CPU.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise ElmokitError(f"--precision {precision}: must be one of {', '.join(INFERENCE_PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise ElmokitError(f"--precision {precision} is for GPUs (this biLM runs on {device}); use fp32 on the CPU")
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


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
