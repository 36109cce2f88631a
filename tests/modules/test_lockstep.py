import dataclasses

import pytest
import torch

from elmokit.lm.model import LanguageModel, tiny
from elmokit.modules.lockstep import LockstepLSTMP, supports_lockstep
from elmokit.modules.recurrent import RecurrentStack


def _pair(seed: int = 0, **clips):
    torch.manual_seed(seed)
    cfg = dataclasses.replace(tiny(), **clips)
    return LanguageModel(cfg, 50).eval(), LanguageModel(cfg, 50).eval()


@pytest.mark.parametrize("clips", [{}, {"cell_clip": 0.3, "proj_clip": 0.05}])  # small bounds: many entries clip
def test_lockstep_equals_each_lm_alone(clips):
    fwd, bwd = _pair(**clips)
    assert supports_lockstep(fwd.rnn, bwd.rnn)
    T, B = 7, 3
    ids_f, ids_b = torch.randint(0, 50, (B, T)), torch.randint(0, 50, (B, T))
    st_f = [(torch.randn(B, 32), torch.randn(B, 64)) for _ in range(2)]
    st_b = [(torch.randn(B, 32), torch.randn(B, 64)) for _ in range(2)]
    with torch.no_grad():
        want_f, _ = fwd.encode(ids_f, st_f)
        want_b, _ = bwd.encode(ids_b, st_b)
        x = torch.stack([fwd.embedding(ids_f.t()), bwd.embedding(ids_b.t())])  # (2, T, B, D)
        state = [(torch.stack([f[0], b[0]]), torch.stack([f[1], b[1]])) for f, b in zip(st_f, st_b)]
        got = LockstepLSTMP(fwd.rnn, bwd.rnn).run(x, state)
    assert len(got) == 2
    for k, out in enumerate(got):
        assert out.shape == (2, T, B, 32)
        torch.testing.assert_close(out[0], want_f[k + 1], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out[1], want_b[k + 1], atol=1e-6, rtol=1e-5)


def test_lockstep_only_for_the_same_clipping():
    fwd, _ = _pair(cell_clip=3.0)
    _, bwd = _pair()
    assert not supports_lockstep(fwd.rnn, bwd.rnn)


@pytest.mark.parametrize("cell, proj", [("gru", 0), ("lstm", 0)])
def test_lockstep_only_for_lstmp(cell, proj):
    fwd, bwd = _pair()
    fwd.rnn = RecurrentStack(cell, 32, 64, 2, proj)
    assert not supports_lockstep(fwd.rnn, bwd.rnn)


@pytest.mark.parametrize("frozen", [False, True])
def test_stack_sees_weight_updates_through_its_transposed_copies(frozen):
    """A fused optimizer step (which does not bump the weights' versions) and an in-place change of a frozen
    model's weights both show in the next forward."""
    torch.manual_seed(3)
    stack = RecurrentStack("lstm", 5, 8, num_layers=2, proj_size=4)
    x = torch.randn(4, 2, 5)
    if frozen:
        stack.requires_grad_(False)
        before = stack(x)[0][-1]
        with torch.no_grad():
            for p in stack.parameters():
                p.add_(0.1)
    else:
        opt = torch.optim.Adam(stack.parameters(), lr=0.1, fused=True)
        with torch.no_grad():
            before = stack(x)[0][-1]
        stack(x)[0][-1].pow(2).sum().backward()
        opt.step()
    with torch.no_grad():
        after = stack(x)[0][-1]
        stack.impl = "torch"  # nn.LSTM reads the weights directly
        torch.testing.assert_close(after, stack(x)[0][-1])
    assert not torch.allclose(before, after)
