"""A fused LSTM-with-projection (LSTMP, as in ELMo) kernel for the CPU, with a hand-written backward.

``nn.LSTM(proj_size=...)`` is not supported by oneDNN and falls back to a slow path on CPU (56–63% of the matmul
peak here). This kernel keeps exactly ``nn.LSTM``'s parameters and maths (gate order i, f, g, o; ``h = W_hr (o *
tanh(c))``) but:

- hoists the input GEMM over all time steps (one ``(T*B, I) x (I, 4H)`` matmul),
- runs only the recurrent and projection matmuls inside the time loop, with the gate maths in place,
- computes every weight gradient after the backward time loop as one batched GEMM over ``T*B`` rows.

It is checked against ``nn.LSTM`` (values and gradients) in ``tests/modules/test_lstmp.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor


class LSTMPFunction(torch.autograd.Function):
    """Autograd function for one LSTMP layer over a whole ``(T, B, I)`` sequence."""

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, w_hr: Tensor,
                w_ih_t: Tensor, w_hh_t: Tensor, w_hr_t: Tensor):
        """Run the layer.

        Args:
            x: ``(T, B, I)`` inputs, time-major.
            h0: ``(B, P)`` initial projected state; c0: ``(B, H)`` initial cell.
            w_ih: ``(4H, I)``; w_hh: ``(4H, P)``; bias: ``(4H,)`` (= b_ih + b_hh); w_hr: ``(P, H)``.
            w_ih_t, w_hh_t, w_hr_t: the three weights transposed into row-major copies ``(I, 4H)``, ``(P, 4H)``,
                ``(H, P)`` (see :func:`transposed_weights`); not differentiated.

        Returns:
            ``out (T, B, P)``, ``h_T (B, P)``, ``c_T (B, H)``.
        """
        T, B, I = x.shape
        H = w_hr.shape[1]
        P = w_hr.shape[0]
        gates = torch.addmm(bias, x.reshape(T * B, I), w_ih_t).view(T, B, 4 * H)  # (T, B, 4H), then activated
        cells = x.new_empty(T, B, H)  # c_t
        tanh_c = x.new_empty(T, B, H)
        hfull = x.new_empty(T, B, H)  # o_t * tanh(c_t)
        out = x.new_empty(T, B, P)
        h, c = h0, c0
        for t in range(T):
            g = gates[t]
            g.addmm_(h, w_hh_t)  # (B, 4H)
            g[:, : 2 * H].sigmoid_()
            g[:, 2 * H : 3 * H].tanh_()
            g[:, 3 * H :].sigmoid_()
            i, f, gg, o = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
            c = torch.addcmul(f * c, i, gg, out=cells[t])
            torch.tanh(c, out=tanh_c[t])
            torch.mul(o, tanh_c[t], out=hfull[t])
            h = torch.mm(hfull[t], w_hr_t, out=out[t])  # (B, P)
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, w_hr, gates, cells, tanh_c, hfull, out)
        return out, h.clone(), c.clone()

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor):
        x, h0, c0, w_ih, w_hh, w_hr, gates, cells, tanh_c, hfull, out = ctx.saved_tensors
        T, B, I = x.shape
        H = w_hr.shape[1]
        P = w_hr.shape[0]
        d_out = d_out.contiguous() if d_out is not None else torch.zeros_like(out)
        dh = d_hT if d_hT is not None else h0.new_zeros(B, P)
        dc = d_cT.clone() if d_cT is not None else c0.new_zeros(B, H)
        d_gates = torch.empty_like(gates)  # (T, B, 4H)
        d_h_all = torch.empty_like(out)  # (T, B, P): gradient reaching each projected output
        for t in range(T - 1, -1, -1):
            dh_t = torch.add(d_out[t], dh, out=d_h_all[t])  # (B, P)
            dhf = dh_t @ w_hr  # (B, H)
            g = gates[t]
            i, f, gg, o = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
            tc = tanh_c[t]
            c_prev = cells[t - 1] if t > 0 else c0
            dg = d_gates[t]
            # d o (pre-activation) = dhf * tanh(c) * o * (1 - o)
            torch.mul(dhf, tc, out=dg[:, 3 * H :])
            dg[:, 3 * H :].mul_(o * (1 - o))
            # dc += dhf * o * (1 - tanh(c)^2)
            dc.addcmul_(dhf * o, 1 - tc * tc)
            # d i = dc * g * i (1 - i); d f = dc * c_prev * f (1 - f); d g = dc * i * (1 - g^2)
            torch.mul(dc, gg, out=dg[:, :H]).mul_(i * (1 - i))
            torch.mul(dc, c_prev, out=dg[:, H : 2 * H]).mul_(f * (1 - f))
            torch.mul(dc, i, out=dg[:, 2 * H : 3 * H]).mul_(1 - gg * gg)
            dc = dc * f
            dh = dg @ w_hh  # (B, P)
        dg2 = d_gates.view(T * B, 4 * H)  # (T*B, 4H)
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]], 0).view(T * B, P)  # (T*B, P)
        d_x = (dg2 @ w_ih).view(T, B, I) if ctx.needs_input_grad[0] else None
        d_w_ih = dg2.t() @ x.reshape(T * B, I)
        d_w_hh = dg2.t() @ h_prev
        d_bias = dg2.sum(0)
        d_w_hr = d_h_all.view(T * B, P).t() @ hfull.view(T * B, H)
        return d_x, dh, dc, d_w_ih, d_w_hh, d_bias, d_w_hr, None, None, None


def transposed_weights(w_ih: Tensor, w_hh: Tensor, w_hr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row-major copies of the transposed weights, ``(I, 4H)``, ``(P, 4H)``, ``(H, P)``.

    MKL's GEMM with no transposed operand is faster at the kernel's shapes on this kind of CPU (a batch-1 step's
    ``(1, P) x (P, 4H)`` product 1.5x, batch 64-128 10-30%); a frozen model keeps the copies (see
    :class:`~elmokit.modules.recurrent.RecurrentStack`), a training step makes them once per window.
    """
    return w_ih.t().contiguous(), w_hh.t().contiguous(), w_hr.t().contiguous()


def frozen_weights_key(weights) -> tuple:
    """Identifies tensors' current values by storage and version, so copies made from them can be reused until
    they change. Only for frozen weights: fused optimizers update weights in place without bumping the version."""
    return tuple((w.data_ptr(), w._version, w.dtype) for w in weights)


def lstmp_forward(
    x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, w_hr: Tensor,
    transposed: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTMP layer with ``nn.LSTM``'s parameter names and shapes.

    Args:
        x: ``(T, B, I)``; h0: ``(B, P)``; c0: ``(B, H)``.
        transposed: :func:`transposed_weights` of these weights if already at hand.

    Returns:
        ``(out (T, B, P), h_T (B, P), c_T (B, H))``.
    """
    wt = transposed if transposed is not None else transposed_weights(w_ih.detach(), w_hh.detach(), w_hr.detach())
    return LSTMPFunction.apply(x.contiguous(), h0.contiguous(), c0.contiguous(), w_ih, w_hh, b_ih + b_hh, w_hr, *wt)
