"""Pretraining's optimizer and learning-rate schedule (a new optimizer or schedule goes here; ``train.optimizer``
and ``train.schedule`` name them)."""

from __future__ import annotations

import math

import torch

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}
SCHEDULES = ("cosine", "linear", "constant")  # after the linear warmup


def schedule_length(t, total_steps: int) -> int:
    """Steps the LR schedule spans: ``train.schedule_steps`` when set, else the run's ``total_steps``."""
    return t.schedule_steps or total_steps


def lr_lambda(cfg, total_steps: int):
    """Linear warmup, then cosine or linear decay to ``min_lr_ratio`` (or constant), over
    :func:`schedule_length` steps."""
    t = cfg.train
    total_steps = schedule_length(t, total_steps)

    def f(step: int) -> float:
        if t.warmup_steps and step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if t.schedule == "constant":
            return 1.0
        frac = min(1.0, (step - t.warmup_steps) / max(1, total_steps - t.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * frac)) if t.schedule == "cosine" else 1 - frac
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * decay

    return f


def schedule_budget_warning(
    step: int, first_step: int, total_steps: int, elapsed_s: float, max_minutes: float, schedule: str
) -> str:
    """A warning when, at the speed measured so far in this run, ``max_minutes`` ends the run before the LR
    schedule does (a cut schedule leaves the LR high and the model short of what the budget could give); empty
    when the budget fits."""
    per_step = elapsed_s / max(step - first_step, 1)
    reach = step + int((60 * max_minutes - elapsed_s) / per_step)
    if reach >= total_steps:
        return ""
    return (
        f"warning: at {per_step:.2f} s/step the {max_minutes:g}-minute budget (train.max_minutes) ends near "
        f"step {reach} of {total_steps}, before the {schedule} LR schedule has decayed; set "
        f"train.max_steps={int(reach * 0.97)} (or a larger budget) so that it completes"
    )


def make_optimizer(t, params) -> torch.optim.Optimizer:
    """Adam, SGD or Adagrad; the fused kernels (one pass over all parameters, much faster than the per-tensor
    loop on CPU) where this torch has them for the device."""
    cls = OPTIMIZERS[t.optimizer]
    params = list(params)
    try:
        return cls(params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=t.lr, weight_decay=t.weight_decay)
