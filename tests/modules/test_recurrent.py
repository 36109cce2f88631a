"""RecurrentStack.step and .trace (the inspection paths) against forward (the training kernels)."""

import pytest
import torch

from elmokit.modules.recurrent import RecurrentStack, restart_rows


@pytest.mark.parametrize(
    "cell,proj,clip", [("lstm", 0, 0.0), ("lstm", 8, 0.0), ("lstm", 8, 0.5), ("gru", 0, 0.0), ("rnn", 0, 0.0)]
)
def test_trace_is_what_forward_computes(cell, proj, clip):
    torch.manual_seed(0)
    stack = RecurrentStack(cell, 5, 16, 2, proj, cell_clip=clip, proj_clip=clip).eval()
    x = torch.randn(30, 3, 5)  # (time, batch, input)
    with torch.no_grad():
        outs, state = stack(x)
    per_layer, state2 = stack.trace(x)
    assert torch.allclose(per_layer[0]["h"], outs[0], atol=1e-6)
    assert torch.allclose(per_layer[1]["h"], outs[1] - outs[0], atol=1e-6)  # before the residual connection
    for a, b in zip(state, state2):
        assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a, b))
    if cell == "lstm":
        assert per_layer[0]["c"].shape == (30, 3, 16) and torch.allclose(per_layer[1]["c"][-1], state[1][1], atol=1e-6)
        if clip:
            assert per_layer[0]["c"].abs().max() <= clip


def test_step_is_differentiable_like_forward():
    torch.manual_seed(0)
    stack = RecurrentStack("lstm", 4, 6, 1).eval()
    x = torch.randn(5, 2, 4)
    h0, c0 = (torch.zeros(2, 6, requires_grad=True) for _ in range(2))
    outs, _ = stack(x, [(h0, c0)])
    g_ref = torch.autograd.grad(outs[-1][-1].sum(), h0)[0]
    state = [(h0, c0)]
    for t in range(5):
        top, state = stack.step(x[t], state)
    assert torch.allclose(torch.autograd.grad(top.sum(), h0)[0], g_ref, atol=1e-6)


def test_restart_rows_zeroes_only_the_due_streams():
    state = [(torch.ones(3, 2), torch.full((3, 4), 2.0)), (torch.ones(3, 2), torch.ones(3, 4))]  # 2 layers, batch 3
    out = restart_rows(state, torch.tensor([False, True, False]))
    for layer_in, layer_out in zip(state, out, strict=True):
        for a, b in zip(layer_in, layer_out, strict=True):
            assert b[1].abs().sum() == 0 and torch.equal(b[[0, 2]], a[[0, 2]])
