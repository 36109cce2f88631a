"""elmokit gradients: the norms per lag against an independent computation, the summary, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elmokit.analysis.gradients import gradient_norms, summarize
from elmokit.cli import main
from elmokit.core.config import ModelConfig
from elmokit.lm.model import LanguageModel


@pytest.mark.parametrize("cell,proj", [("lstm", 0), ("lstm", 6), ("gru", 0), ("rnn", 0)])
def test_norm_at_each_lag_is_the_gradient_through_the_kernels(cell, proj):
    """The top layer's hidden state, whose only paths to the loss run through later steps, so that the gradient with
    the other states held fixed (the reference: a leaf state fed to the kernels) is the whole gradient. (A lower
    layer's whole gradient also runs up through the layers above at the same step, and an LSTM cell state's
    through its own step's hidden state, which the reference holds fixed.)"""
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, num_layers=2, embed_dim=8, hidden_size=12, proj_size=proj, head="full")
    model = LanguageModel(cfg, 30).eval()
    warmup, lag = 5, 9
    tokens = np.random.default_rng(0).integers(4, 30, size=warmup + lag + 2)  # exactly one window: starts at 0
    norms = gradient_norms(model, tokens, reverse=False, max_lag=lag, sequences=2, warmup=warmup)
    assert set(norms) == ({"h1", "c1", "h2", "c2"} if cell == "lstm" else {"h1", "h2"})
    ids = torch.from_numpy(tokens).long().unsqueeze(0)  # (1, T)
    target = ids[:, warmup + lag + 1]
    for k in (1, 3, lag):
        cut = warmup + lag - k + 1  # the state after reading this many tokens is k steps before the loss's
        with torch.no_grad():
            _, state = model.encode(ids[:, :cut])
        state = [tuple(x.clone().requires_grad_(True) for x in layer) for layer in state]
        layers, _ = model.encode(ids[:, cut : warmup + lag + 1], state)  # through the training kernels
        loss = model.head.full_loss(layers[-1][-1], target, reduction="sum")
        (g,) = torch.autograd.grad(loss, [state[1][0]])
        for name in ("h2",):
            assert norms[name][0, k] == pytest.approx(float(g.norm()), rel=1e-4, abs=1e-9), (name, k)
    assert np.allclose(norms["h1"][0], norms["h1"][1])  # both sequences are the same window


def test_summary_finds_where_the_gradient_falls():
    a = np.tile(10.0 ** -np.arange(6.0), (3, 1))  # falls tenfold per lag
    s = summarize({"h1": a})["h1"]
    assert s["lag_to_1/10"] == 1 and s["lag_to_1/100"] == 2 and s["lag_to_1/1000"] == 3
    assert s["tail_decades_per_100_steps"] == pytest.approx(100.0)  # one decade a step, still falling far back
    flat = summarize({"h1": np.ones((3, 4))})["h1"]
    assert flat["lag_to_1/10"] is None and flat["tail_decades_per_100_steps"] == 0


def test_gradients_command(tiny_pair, corpus, tmp_path):
    out = tmp_path / "g" / "rnn"
    res = CliRunner().invoke(
        main,
        [
            "gradients",
            str(tiny_pair["backward"]),
            str(corpus["valid"]),
            "--out",
            str(out),
            "--max-lag",
            "20",
            "--sequences",
            "4",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["direction"] == "backward" and len(r["states"]["c2"]["median"]) == 21
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(
        main,
        [
            "gradients",
            str(tiny_pair["forward"]),
            str(corpus["valid"]),
            "--out",
            str(out),
            "--max-lag",
            "100000",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res.exit_code == 2 and "needs at least" in res.output


@pytest.mark.parametrize(
    "option,value,expect",
    [
        ("--max-lag", "-5", "--max-lag -5: must be 0 or more"),
        ("--sequences", "0", "--sequences 0: must be 1 or more"),
        ("--sequences", "-3", "--sequences -3: must be 1 or more"),
        ("--warmup", "-1", "--warmup -1: must be 0 or more"),
        ("--seed", "-1", "--seed -1: must be 0 or more"),
    ],
)
def test_counts_that_measure_nothing_are_one_line(tiny_pair, corpus, tmp_path, option, value, expect):
    """Issue 34, case 12: a traceback each before (an IndexError, np.stack of nothing, a negative seed)."""
    out = tmp_path / "g"
    res = CliRunner().invoke(
        main,
        [
            "gradients",
            str(tiny_pair["forward"]),
            str(corpus["valid"]),
            "--out",
            str(out),
            "--max-lag",
            "5",
            "--cache-dir",
            str(tmp_path / "cache"),
            option,
            value,
        ],
    )
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expect} ("), res.output
    assert not out.with_suffix(".json").exists()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_no_warmup_starts_from_the_zero_state(cell):
    """--warmup 0 is a valid count (the state training starts from): every cell measures from it (torch's RNN
    refused the empty warmup sequence of a gru or rnn)."""
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, num_layers=2, embed_dim=8, hidden_size=12, proj_size=0, head="full")
    model = LanguageModel(cfg, 30).eval()
    tokens = np.random.default_rng(0).integers(4, 30, size=40)
    norms = gradient_norms(model, tokens, reverse=False, max_lag=4, sequences=3, warmup=0)
    assert all(a.shape == (3, 5) and np.isfinite(a).all() and (a[:, 0] > 0).all() for a in norms.values())
