import numpy as np
import torch

from elmokit.core.config import ModelConfig
from elmokit.lm.corpus import StreamBatcher
from elmokit.lm.model import LanguageModel, elmo_original, small, tiny


def make_lm(**kw):
    torch.manual_seed(0)
    cfg = tiny()
    for k, v in kw.items():
        setattr(cfg, k, v)
    return LanguageModel(cfg, vocab_size=60).eval()


def test_named_sizes_are_written_out():
    assert (small().num_layers, small().hidden_size, small().proj_size, small().embed_dim) == (2, 1024, 256, 256)
    assert (elmo_original().hidden_size, elmo_original().proj_size) == (4096, 512)
    assert isinstance(tiny(), ModelConfig)


def test_no_future_leak_in_forward_lm():
    lm = make_lm()
    ids = torch.randint(4, 60, (2, 12))
    layers, _ = lm.encode(ids)
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 60  # change the future
    layers2, _ = lm.encode(changed)
    for a, b in zip(layers, layers2):
        torch.testing.assert_close(a[:7], b[:7])  # (time, batch, dim): states up to 6 unchanged
        assert not torch.allclose(a[7:], b[7:])


def test_no_past_leak_in_backward_lm():
    """The backward LM reads the reversed stream: its state at original position t sees only tokens t..end."""
    lm = make_lm()
    tokens = np.random.default_rng(0).integers(4, 60, 41).astype(np.int32)
    x, _ = StreamBatcher(tokens, 1, 40, reverse=True).batch(0)  # (1, 40), tokens 40..1
    layers, _ = lm.encode(x)
    changed = tokens.copy()
    changed[:10] = (changed[:10] + 1) % 60  # change the past (original positions 0..9)
    x2, _ = StreamBatcher(changed, 1, 40, reverse=True).batch(0)
    layers2, _ = lm.encode(x2)
    # reversed index j holds original position 40 - j; positions >= 10 are j <= 30
    torch.testing.assert_close(layers[-1][:31], layers2[-1][:31])
    assert not torch.allclose(layers[-1][31:], layers2[-1][31:])


def test_loss_shapes_and_full_eval():
    lm = make_lm(head="full")
    ids, tgt = torch.randint(0, 60, (3, 5)), torch.randint(0, 60, (3, 5))
    loss, state = lm(ids, tgt)
    nll, _ = lm(ids, tgt, mode="eval")
    assert nll.shape == (3, 5)
    torch.testing.assert_close(loss, nll.mean())
    assert len(state) == 2 and state[0][0].shape == (3, 32)


def test_tied_embeddings():
    lm = make_lm(tie_embeddings=True)
    assert lm.head.weight is lm.embedding.weight
