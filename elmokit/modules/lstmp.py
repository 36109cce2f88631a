"""A fused LSTM-with-projection (LSTMP, as in ELMo) kernel for the CPU, with a hand-written backward.

``nn.LSTM(proj_size=...)`` is not supported by oneDNN and falls back to a slow path on CPU (well under the matmul
peak: scripts/bench_pretrain.py, recipes/README.md). This kernel keeps exactly ``nn.LSTM``'s parameters and maths
(gate order i, f, g, o; ``h = W_hr (o * tanh(c))``) but:

- hoists the input GEMM out of the time loop (one ``(T*B, I) x (I, 4H)`` matmul when training; without gradients
  one per few steps, see ``GATE_CHUNK_BYTES``),
- runs only the recurrent and projection matmuls inside the time loop, with the gate maths in place, and every
  ``tanh`` as ``2 sigmoid(2z) - 1`` (PyTorch's CPU ``tanh`` is several times slower than its ``sigmoid``,
  the four-op form included; the two agree within 2e-7),
- computes every gate's local derivative for all steps at once before the backward time loop (fused
  ``sigmoid_backward``/``tanh_backward`` kernels), so the loop itself is two matmuls and four in-place products,
- computes every weight gradient after the backward time loop as batched GEMMs over ``T*B`` rows,
- sends its products through :mod:`elmokit.modules.matmul` (oneDNN where PyTorch ships it, else ``torch.mm``),
- optionally clips the cell state and the projected output at every step, as bilm-tf does (``cell_clip``,
  ``proj_clip``; 0 = off), which ``nn.LSTM`` cannot.

It is checked against ``nn.LSTM`` (values and gradients) in ``tests/modules/test_lstmp.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from elmokit.modules.matmul import linear, linear_add

# Without gradients, the input product runs over a few steps at a time (this many bytes of gates): no slower than one
# product over all steps at the published ELMo's shape, and the gates of all steps are never held at once
# (measured in recipes/README.md, "The original ELMo, faster").
GATE_CHUNK_BYTES = 16 << 20


class LSTMPFunction(torch.autograd.Function):
    """Autograd function for one LSTMP layer over a whole ``(T, B, I)`` sequence."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        bias: Tensor,
        w_hr: Tensor,
        w_ih_t: Tensor,
        w_hh_t: Tensor,
        w_hr_t: Tensor,
        cell_clip: float = 0.0,
        proj_clip: float = 0.0,
    ):
        """Run the layer.

        Args:
            x: ``(T, B, I)`` inputs, time-major.
            h0: ``(B, P)`` initial projected state; c0: ``(B, H)`` initial cell.
            w_ih: ``(4H, I)``; w_hh: ``(4H, P)``; bias: ``(4H,)`` (= b_ih + b_hh); w_hr: ``(P, H)``.
            w_ih_t, w_hh_t, w_hr_t: the three weights transposed into row-major copies ``(I, 4H)``, ``(P, 4H)``,
                ``(H, P)`` (see :func:`transposed_weights`); not differentiated.
            cell_clip, proj_clip: clip each step's cell state / projected output to ``[-clip, clip]`` (0 = off), as
                bilm-tf does; the gradient does not flow through clipped entries.

        Returns:
            ``out (T, B, P)``, ``h_T (B, P)``, ``c_T (B, H)``.
        """
        T, B, I = x.shape
        H = w_hr.shape[1]
        P = w_hr.shape[0]
        # what backward needs of every step; without gradients (the frozen biLM) one step's worth, reused
        keep = any(ctx.needs_input_grad)
        steps = T if keep else 1
        # the input pre-activations of `chunk` steps in one GEMM (each step then overwrites its slice with its
        # gates): all steps when backward needs them, else ~GATE_CHUNK_BYTES' worth at a time
        chunk = T if keep else max(1, GATE_CHUNK_BYTES // (B * 4 * H * x.element_size()))
        cells = x.new_empty(steps, B, H)  # c_t
        tanh_c = x.new_empty(steps, B, H)
        hfull = x.new_empty(steps, B, H)  # o_t * tanh(c_t)
        out = x.new_empty(T, B, P)
        h, c = h0, c0
        for t in range(T):
            if t % chunk == 0:
                xs = x[t : t + chunk]  # (chunk, B, I)
                gates = linear(xs.reshape(-1, I), w_ih, w_ih_t, bias, pad_rows=True).view(len(xs), B, 4 * H)
            g = gates[t % chunk]  # (B, 4H)
            pre = linear_add(h, w_hh, g, w_hh_t)  # (B, 4H) pre-activations: x_t W_ih + b + h W_hh
            # every tanh as 2 sigmoid(2z) - 1 (see the module docstring): one sigmoid over all four gates
            pre[:, 2 * H : 3 * H].mul_(2.0)
            torch.sigmoid(pre, out=g)
            g[:, 2 * H : 3 * H].mul_(2.0).sub_(1.0)  # g's block to tanh: g now holds the activated i, f, g, o
            k = t if keep else 0
            c = torch.mul(g[:, H : 2 * H], c, out=cells[k]).addcmul_(g[:, :H], g[:, 2 * H : 3 * H])  # f c + i g
            if cell_clip:
                c.clamp_(-cell_clip, cell_clip)
            torch.mul(c, 2.0, out=tanh_c[k]).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(c)
            torch.mul(g[:, 3 * H :], tanh_c[k], out=hfull[k])  # o tanh(c)
            h = out[t].copy_(linear(hfull[k], w_hr, w_hr_t))  # (B, P)
            if proj_clip:
                h.clamp_(-proj_clip, proj_clip)
        if keep:
            ctx.save_for_backward(x, h0, c0, w_ih, w_hh, w_hr, w_ih_t, w_hh_t, w_hr_t, gates, cells, tanh_c, hfull, out)
        ctx.clips = (cell_clip, proj_clip)
        return out, h.clone(), c.clone()

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor):
        x, h0, c0, w_ih, w_hh, w_hr, w_ih_t, w_hh_t, w_hr_t, gates, cells, tanh_c, hfull, out = ctx.saved_tensors
        T, B, I = x.shape
        H = w_hr.shape[1]
        P = w_hr.shape[0]
        d_out = d_out.contiguous() if d_out is not None else torch.zeros_like(out)
        dh = d_hT if d_hT is not None else h0.new_zeros(B, P)
        dc = d_cT.clone() if d_cT is not None else c0.new_zeros(B, H)
        i, f, g, o = (gates[..., k * H : (k + 1) * H] for k in range(4))  # each (T, B, H), activated
        # Every gate's local derivative, for all steps at once in five fused kernels, so that the time loop below
        # only multiplies them by the recurrent gradients. d_gates holds, per gate's pre-activation:
        #   i: dc * g i(1-i);  f: dc * c_prev f(1-f);  g: dc * i (1-g^2);  o: dhf * tanh(c) o(1-o)
        # and dc gains dhf * o (1 - tanh(c)^2) (a_c) at every step.
        sig_b, tanh_b = torch.ops.aten.sigmoid_backward.grad_input, torch.ops.aten.tanh_backward.grad_input
        d_gates = torch.empty_like(gates)  # (T, B, 4H)
        sig_b(g, i, grad_input=d_gates[..., :H])
        sig_b(c0, f[0], grad_input=d_gates[0, :, H : 2 * H])
        sig_b(cells[:-1], f[1:], grad_input=d_gates[1:, :, H : 2 * H])
        tanh_b(i, g, grad_input=d_gates[..., 2 * H : 3 * H])
        sig_b(tanh_c, o, grad_input=d_gates[..., 3 * H :])
        a_c = torch.ops.aten.tanh_backward(o, tanh_c)  # (T, B, H)
        cell_clip, proj_clip = ctx.clips
        # where a step clipped, the clipped value's gradient stops there (an entry exactly at the bound counts as
        # clipped; an unclipped value lands there with probability zero)
        c_pass = cells.abs() < cell_clip if cell_clip else None  # (T, B, H)
        h_pass = out.abs() < proj_clip if proj_clip else None  # (T, B, P)
        d_h_all = torch.empty_like(out)  # (T, B, P): gradient reaching each projected output (before its clip)
        for t in range(T - 1, -1, -1):
            dh_t = torch.add(d_out[t], dh, out=d_h_all[t])  # (B, P)
            if h_pass is not None:
                dh_t.mul_(h_pass[t])
            dhf = linear(dh_t, w_hr_t, w_hr)  # (B, H): dh_t @ w_hr
            dg = d_gates[t]  # (B, 4H)
            dc.addcmul_(dhf, a_c[t])
            if c_pass is not None:
                dc.mul_(c_pass[t])
            dg[:, 3 * H :].mul_(dhf)
            dg[:, : 3 * H].view(B, 3, H).mul_(dc.unsqueeze(1))  # i, f, g rows each times dc
            dc.mul_(f[t])
            dh = linear(dg, w_hh_t, w_hh)  # (B, P): dg @ w_hh
        dg2 = d_gates.view(T * B, 4 * H)  # (T*B, 4H)
        d_x = linear(dg2, w_ih_t, w_ih).view(T, B, I) if ctx.needs_input_grad[0] else None  # dg2 @ w_ih
        # both input weights' gradients in one GEMM, (4H, T*B) x (T*B, I+P): faster than two
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]], 0).view(T * B, P)  # (T*B, P)
        d_w = dg2.t() @ torch.cat([x.reshape(T * B, I), h_prev], 1)  # (4H, I+P)
        d_bias = dg2.sum(0)
        d_w_hr = d_h_all.view(T * B, P).t() @ hfull.view(T * B, H)
        return d_x, dh, dc, d_w[:, :I], d_w[:, I:], d_bias, d_w_hr, None, None, None, None, None


def transposed_weights(w_ih: Tensor, w_hh: Tensor, w_hr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row-major copies of the transposed weights, ``(I, 4H)``, ``(P, 4H)``, ``(H, P)``.

    MKL's GEMM with no transposed operand is faster at the kernel's shapes on the CPUs measured (most for a
    batch-1 step's ``(1, P) x (P, 4H)`` product; recipes/README.md); a frozen model keeps the copies (see
    :class:`~elmokit.modules.recurrent.RecurrentStack`), a training step makes them once per window.
    """
    return w_ih.t().contiguous(), w_hh.t().contiguous(), w_hr.t().contiguous()


def frozen_weights_key(weights) -> tuple:
    """Identifies tensors' current values by storage and version, so copies made from them can be reused until
    they change. Only for frozen weights: fused optimizers update weights in place without bumping the version."""
    return tuple((w.data_ptr(), w._version, w.dtype) for w in weights)


def lstmp_forward(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    w_hr: Tensor,
    transposed: tuple[Tensor, Tensor, Tensor] | None = None,
    cell_clip: float = 0.0,
    proj_clip: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTMP layer with ``nn.LSTM``'s parameter names and shapes.

    Args:
        x: ``(T, B, I)``; h0: ``(B, P)``; c0: ``(B, H)``.
        transposed: :func:`transposed_weights` of these weights if already at hand.
        cell_clip, proj_clip: see :meth:`LSTMPFunction.forward` (0 = off).

    Returns:
        ``(out (T, B, P), h_T (B, P), c_T (B, H))``.
    """
    wt = transposed if transposed is not None else transposed_weights(w_ih.detach(), w_hh.detach(), w_hr.detach())
    return LSTMPFunction.apply(
        x.contiguous(),
        h0.contiguous(),
        c0.contiguous(),
        w_ih,
        w_hh,
        b_ih + b_hh,
        w_hr,
        *wt,
        float(cell_clip),
        float(proj_clip),
    )
