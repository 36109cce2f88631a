"""The two LSTMP stacks of a frozen biLM run in lockstep: one batched matrix product per step for both directions.

The forward and the backward LM read sequences of the same length (the backward one reads the pieces reversed), so
their time loops can be one loop over a leading direction axis of size 2. Each step's products become
``baddbmm``/``bmm`` over that axis, which the CPU's BLAS splits one direction per thread: at batch 1 a step costs
about what one direction alone costs, where running the LMs one after the other (or in two Python threads, which
then queue on the interpreter lock between the small per-step operations) costs twice that. It also halves the
per-step Python overhead. The numbers are those of running each LM alone (the same maths; the products may round
differently in the last bits).

Inference only (no autograd), for LSTMP stacks (``cell=lstm`` with a projection) of the same shape; the weights are
copied once, stacked and transposed into the layout the products want.
"""

from __future__ import annotations

import torch
from torch import Tensor

from elmokit.modules.lstmp import frozen_weights_key
from elmokit.modules.recurrent import RecurrentStack


def supports_lockstep(forward: RecurrentStack, backward: RecurrentStack) -> bool:
    """Whether both recurrent stacks are LSTMP stacks that :class:`LockstepLSTMP` can run (the biLM has checked the
    shapes): the same clipping and residual connections too, which the lockstep loop applies to both."""
    kinds = {(s.cell_clip, s.proj_clip, s.residual) for s in (forward, backward)}
    return len(kinds) == 1 and all(s.cell == "lstm" and s.proj_size and s.impl != "torch" for s in (forward, backward))


class LockstepLSTMP:
    """Stacked, transposed copies of two LSTMP stacks' weights, and the loop that runs both.

    Args:
        forward, backward: the two directions' :class:`~elmokit.modules.recurrent.RecurrentStack` (same shape).
    """

    def __init__(self, forward: RecurrentStack, backward: RecurrentStack) -> None:
        self.residual = forward.residual
        self.cell_clip, self.proj_clip = forward.cell_clip, forward.proj_clip
        self.key = lockstep_key(forward, backward)
        self.layers: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        with torch.no_grad():
            for lf, lb in zip(forward.layers, backward.layers):
                pair = (lf, lb)
                self.layers.append(
                    (
                        torch.stack([m.weight_ih_l0.t() for m in pair]).contiguous(),  # (2, I, 4H)
                        torch.stack([m.weight_hh_l0.t() for m in pair]).contiguous(),  # (2, P, 4H)
                        torch.stack([(m.bias_ih_l0 + m.bias_hh_l0).unsqueeze(0) for m in pair]),  # (2, 1, 4H)
                        torch.stack([m.weight_hr_l0.t() for m in pair]).contiguous(),  # (2, H, P)
                    )
                )

    @torch.no_grad()
    def run(self, x: Tensor, state: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """Both recurrent stacks over their inputs.

        Args:
            x: ``(2, T, B, I)`` the two LMs' embedded inputs (direction 0 forward, 1 backward), time-major.
            state: per layer ``(h (2, B, P), c (2, B, H))``.

        Returns:
            Per recurrent layer, ``(2, T, B, P)``: each direction's layer output after the residual connection.
        """
        _, T, B, I = x.shape
        outputs = []
        inp = x
        for k, (w_ih_t, w_hh_t, bias, w_hr_t) in enumerate(self.layers):
            H = w_hr_t.shape[1]
            gates = torch.baddbmm(bias, inp.reshape(2, T * B, -1), w_ih_t)  # (2, T*B, 4H)
            # time-major, so each step's (2, B, 4H) block is contiguous (a strided one makes baddbmm_ loop over the
            # two directions instead of handing both to one batched BLAS call)
            gates = gates.view(2, T, B, 4 * H).transpose(0, 1).contiguous()  # (T, 2, B, 4H)
            h, c = state[k]
            hs = []
            for t in range(T):
                g = gates[t]  # (2, B, 4H)
                g.baddbmm_(h, w_hh_t)
                g[..., : 2 * H].sigmoid_()
                g[..., 2 * H : 3 * H].tanh_()
                g[..., 3 * H :].sigmoid_()
                i, f, gg, o = g[..., :H], g[..., H : 2 * H], g[..., 2 * H : 3 * H], g[..., 3 * H :]
                c = torch.addcmul(f * c, i, gg)  # (2, B, H)
                if self.cell_clip:
                    c.clamp_(-self.cell_clip, self.cell_clip)
                h = torch.bmm(o * torch.tanh(c), w_hr_t)  # (2, B, P)
                if self.proj_clip:
                    h.clamp_(-self.proj_clip, self.proj_clip)
                hs.append(h)
            out = torch.stack(hs, 1)  # (2, T, B, P)
            if self.residual and k > 0:
                out = out + inp
            outputs.append(out)
            inp = out
        return outputs


def lockstep_key(forward: RecurrentStack, backward: RecurrentStack) -> tuple:
    """Identifies the two stacks' current weights (see :func:`~elmokit.modules.lstmp.frozen_weights_key`)."""
    return frozen_weights_key([p for s in (forward, backward) for p in s.parameters()])
