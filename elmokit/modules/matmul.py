"""Matrix products for the fused CPU kernels: oneDNN's GEMM where PyTorch ships it, ``torch.mm`` otherwise.

For fp32 on the CPU, ``torch.mm`` calls MKL. On CPUs that MKL does not tune for (AMD's) it runs an AVX2 path, slower
than oneDNN's AVX-512 ``brg_matmul`` at the LSTM's step shapes (``scripts/bench_pretrain.py`` measures both peaks in
every run; figures in recipes/README.md). PyTorch exposes oneDNN's fp32 linear layer to Python only through a
private op made for its compiler, ``torch.ops.mkldnn._linear_pointwise``. So it is probed once (present, runs,
agrees with ``torch.mm``), and every product falls back to ``torch.mm`` when it is not there, for other dtypes and
devices, or when ``ELMOKIT_ONEDNN=0``.

Both functions take the weight in ``nn.Linear``'s layout ``(out, in)`` and, for the fallback, its row-major
transpose when the caller has one (MKL is faster with no transposed operand at these shapes).
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

# oneDNN builds and caches a kernel per product shape, and keeps them: a process that multiplies many different row
# counts (the biLM's input projection over time x batch rows when embedding sentences of every length) grows by
# every new one. `linear(..., pad_rows=True)` therefore pads such an input of more than ROW_PAD rows with zero rows
# up to the next of 8 sizes per doubling (72, 80, ..., 128, 144, ..., 1024, 1152, ...): its shapes come from a
# bounded set, and padding is under 1/8 of the rows (under 64 rows for the biLM's batches of up to 1,023).
ROW_PAD = 64


def _padded_rows(n: int) -> int:
    """``n`` rounded up to a multiple of ``2 ** (bit_length(n) - 4)`` (8 sizes per doubling), for ``n > ROW_PAD``."""
    step = 1 << (n.bit_length() - 4)
    return -(-n // step) * step


@functools.cache
def onednn_available() -> bool:
    """Whether oneDNN's fp32 linear is usable here (probed once per process; ``ELMOKIT_ONEDNN=0`` says no)."""
    if os.environ.get("ELMOKIT_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return False
    try:
        op = torch.ops.mkldnn._linear_pointwise
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g) for s in [(5, 7), (3, 7), (5, 3)])
        ok = torch.allclose(op(x, w, None, "none", [], ""), x @ w.t(), atol=1e-5)
        ok = ok and torch.allclose(op.binary(x, b, w, None, "add"), b + x @ w.t(), atol=1e-5)
        return bool(ok)
    except (AttributeError, RuntimeError, TypeError):  # not built with oneDNN, or the private op changed
        return False


def _use_onednn(*ts: Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in ts) and onednn_available()


# A one-row product (one sentence's LSTM step) goes through MKL with the row-major transposed weight, faster than
# through oneDNN at every LSTM shape measured, up to the published ELMo's recurrent product; from two rows on, the
# two trade places shape by shape (recipes/README.md).
MKL_MAX_ROWS = 1


def linear(
    x: Tensor, w: Tensor, w_t: Tensor | None = None, bias: Tensor | None = None, pad_rows: bool = False
) -> Tensor:
    """``x @ w.T + bias`` as a new tensor.

    Args:
        x: ``(N, K)``, rows may be strided.
        w: ``(M, K)``; w_t: the same weight as a row-major ``(K, M)``, if at hand (used by the fallback).
        bias: ``(M,)`` or None.
        pad_rows: for a row count that varies from call to call: above ``ROW_PAD`` rows, oneDNN multiplies ``x``
            padded with zero rows to one of a bounded set of sizes (under 1/8 more rows; see ``ROW_PAD``).

    Returns:
        ``(N, M)``.
    """
    if _use_onednn(x, w) and not (w_t is not None and x.shape[0] <= MKL_MAX_ROWS):
        n = x.shape[0]
        padded = _padded_rows(n) if pad_rows and n > ROW_PAD else n
        if padded > n:
            x = torch.cat([x, x.new_zeros(padded - n, x.shape[1])])  # (padded N, K)
        return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")[:n]  # (N, M), contiguous
    wt = w.t() if w_t is None else w_t
    return torch.mm(x, wt) if bias is None else torch.addmm(bias, x, wt)


def linear_add(x: Tensor, w: Tensor, other: Tensor, w_t: Tensor | None = None) -> Tensor:
    """``other + x @ w.T`` as a new tensor (oneDNN adds ``other`` as it writes the product).

    Args:
        x: ``(N, K)``; w: ``(M, K)``; other: ``(N, M)``; w_t: as in :func:`linear`.

    Returns:
        ``(N, M)``.
    """
    if _use_onednn(x, w, other) and not (w_t is not None and x.shape[0] <= MKL_MAX_ROWS):
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, w, None, "add")
    return torch.addmm(other, x, w.t() if w_t is None else w_t)
