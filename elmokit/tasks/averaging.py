"""An exponential moving average of a downstream model's weights (``train.ema_decay``), evaluated in their place.

Adam's last iterate jumps around: on NSMC the dev accuracy of consecutive epochs moved by up to 1.2 points. The
average of the recent iterates is a steadier model (Polyak averaging; TensorFlow's ``ExponentialMovingAverage``).
When it is on, dev selection, the saved model and the final scores all use the averaged weights; training goes on
with the raw ones. As in TensorFlow, the decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
first evaluations are not dominated by the initial weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """A frozen copy of ``model`` whose parameters track the moving average of ``model``'s.

    Args:
        model: the model being trained (unwrapped).
        decay: the moving average's decay per optimizer step, in (0, 1), e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimizer step)."""
        weight = 1.0 - self.current_decay()
        avg = list(self.model.parameters())
        cur = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(avg, cur, weight)  # avg += weight * (cur - avg)
        for b_avg, b_cur in zip(self.model.buffers(), model.buffers()):
            b_avg.copy_(b_cur)
        self.updates += 1

    def state_dict(self) -> dict:
        """The averaged weights and the update count (for resuming)."""
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
