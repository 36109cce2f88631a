import pytest
import torch

from elmokit.modules.lstmp import lstmp_forward
from elmokit.modules.recurrent import RecurrentStack


def test_fused_lstmp_equals_nn_lstm_values_and_gradients():
    torch.manual_seed(0)
    T, B, I, H, P = 6, 3, 5, 7, 4
    ref = torch.nn.LSTM(I, H, proj_size=P).double()
    x = torch.randn(T, B, I, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, B, P, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=torch.double, requires_grad=True)
    leaves = [x, h0, c0, *ref.parameters()]

    out, (h, c) = ref(x, (h0, c0))
    ((out**2).sum() + (1.3 * h).sum() + (0.7 * c).sum()).backward()
    want = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    out2, h2, c2 = lstmp_forward(
        x, h0[0], c0[0], ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0, ref.weight_hr_l0
    )
    ((out2**2).sum() + (1.3 * h2).sum() + (0.7 * c2).sum()).backward()
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(h2, h[0])
    torch.testing.assert_close(c2, c[0])
    for w, g in zip(want, [t.grad for t in leaves]):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("T", [1, 3])  # T=1: the only step's previous cell is c0
def test_gradcheck(T):
    torch.manual_seed(1)
    B, I, H, P = 2, 3, 4, 2
    args = [
        torch.randn(s, dtype=torch.double, requires_grad=True)
        for s in [(T, B, I), (B, P), (B, H), (4 * H, I), (4 * H, P), (4 * H,), (4 * H,), (P, H)]
    ]
    assert torch.autograd.gradcheck(lambda *a: lstmp_forward(*a), args)


@pytest.mark.parametrize("cell, proj", [("lstm", 0), ("lstm", 6), ("gru", 0), ("rnn", 0)])
def test_stack_kernels_agree_and_shapes(cell, proj):
    torch.manual_seed(2)
    stack = RecurrentStack(cell, 5, 8, num_layers=2, proj_size=proj, residual=True)
    x = torch.randn(4, 3, 5)
    outs, state = stack(x)
    assert len(outs) == 2 and outs[0].shape == (4, 3, proj or 8)
    if proj:
        stack.impl = "torch"
        outs_t, state_t = stack(x)
        for a, b in zip(outs, outs_t):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # carrying the state over two halves equals one pass
    first, st = stack(x[:2])
    second, _ = stack(x[2:], st)
    torch.testing.assert_close(
        torch.cat([first[-1], second[-1]]), outs[-1] if not proj else outs_t[-1], atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("use_onednn", [True, False])
def test_float32_products_agree_with_nn_lstm(use_onednn, monkeypatch):
    """fp32 runs the products through oneDNN where PyTorch has it (elmokit/modules/matmul.py), else torch.mm."""
    from elmokit.modules import matmul

    if use_onednn and not matmul.onednn_available():
        pytest.skip("this PyTorch has no oneDNN fp32 linear")
    if not use_onednn:
        monkeypatch.setattr(matmul, "_use_onednn", lambda *ts: False)
    torch.manual_seed(3)
    T, B, I, H, P = 5, 4, 6, 16, 8
    ref = torch.nn.LSTM(I, H, proj_size=P)
    x = torch.randn(T, B, I, requires_grad=True)
    out, (h, c) = ref(x)
    (out.square().sum() + h.sum() + c.sum()).backward()
    want = [x.grad.clone()] + [p.grad.clone() for p in ref.parameters()]
    x.grad = None
    ref.zero_grad()
    out2, h2, c2 = lstmp_forward(
        x,
        torch.zeros(B, P),
        torch.zeros(B, H),
        ref.weight_ih_l0,
        ref.weight_hh_l0,
        ref.bias_ih_l0,
        ref.bias_hh_l0,
        ref.weight_hr_l0,
    )
    (out2.square().sum() + h2.sum() + c2.sum()).backward()
    torch.testing.assert_close(out2, out, atol=1e-5, rtol=1e-4)
    for g, w in zip([x.grad] + [p.grad for p in ref.parameters()], want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


def _reference_lstmp(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr, cell_clip, proj_clip):
    """The LSTMP step written plainly with autograd ops, clipping as bilm-tf's LSTMCell does."""
    outs = []
    for t in range(x.shape[0]):
        i, f, g, o = (x[t] @ w_ih.t() + b_ih + h @ w_hh.t() + b_hh).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if cell_clip:
            c = c.clamp(-cell_clip, cell_clip)
        h = (torch.sigmoid(o) * torch.tanh(c)) @ w_hr.t()
        if proj_clip:
            h = h.clamp(-proj_clip, proj_clip)
        outs.append(h)
    return torch.stack(outs), h, c


@pytest.mark.parametrize("cell_clip, proj_clip", [(0.4, 0.0), (0.0, 0.15), (0.4, 0.15)])
def test_clipping_equals_the_plain_reference_values_and_gradients(cell_clip, proj_clip):
    torch.manual_seed(4)
    T, B, I, H, P = 6, 3, 5, 7, 4
    leaves = [
        torch.randn(s, dtype=torch.double, requires_grad=True)
        for s in [(T, B, I), (B, P), (B, H), (4 * H, I), (4 * H, P), (4 * H,), (4 * H,), (P, H)]
    ]
    got = lstmp_forward(*leaves, cell_clip=cell_clip, proj_clip=proj_clip)
    # the bounds are small, so a good share of the entries is clipped (else the test would not test clipping)
    if cell_clip:
        assert (got[2].abs() == cell_clip).float().mean() > 0.1
    if proj_clip:
        assert (got[0].abs() == proj_clip).float().mean() > 0.1
    want = _reference_lstmp(*leaves, cell_clip, proj_clip)
    weights = [torch.randn_like(t) for t in want]
    grads_got = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, got)), leaves)
    grads_want = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, want)), leaves)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b)


def test_clipping_stack_refuses_nn_lstm():
    with pytest.raises(ValueError, match="cannot clip"):
        RecurrentStack("lstm", 5, 8, 1, proj_size=4, impl="torch", cell_clip=3.0)
    with pytest.raises(ValueError, match="cannot clip"):
        RecurrentStack("gru", 5, 8, 1, proj_clip=3.0)
    stack = RecurrentStack("lstm", 5, 8, 1, proj_size=4, cell_clip=3.0)
    stack.impl = "torch"
    with pytest.raises(ValueError, match="cannot clip"):
        stack(torch.randn(2, 1, 5))
