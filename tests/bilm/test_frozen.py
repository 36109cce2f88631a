"""How a frozen biLM's two stacks are run: side by side in two threads (stacks with large weights). The results
themselves are checked through every embedder (tests/embed/test_embedder_contract.py, tests/bilm/test_charbilm.py)."""

import multiprocessing
import os
import sys

import pytest
import torch

from elmokit.bilm.frozen import _side_by_side


def test_side_by_side_runs_both_calls_at_once_and_keeps_the_callers_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = _side_by_side(
            [
                lambda: (torch.get_num_threads(), torch.is_grad_enabled()),
                lambda: (torch.get_num_threads(), torch.is_grad_enabled()),
            ]
        )
        assert seen == [(1, False), (1, False)]  # half the threads each, no gradients
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="boom"):  # an error in a call reaches the caller
            _side_by_side([lambda: 1, lambda: (_ for _ in ()).throw(ValueError("boom"))])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def _in_child(_):
    return _side_by_side([os.getpid, os.getpid])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_forked_child_makes_its_own_threads():
    """A process forked after the pool existed (a data loader's worker) has none of its threads: it makes a pool of
    its own instead of waiting for them forever."""
    _side_by_side([os.getpid, os.getpid])  # the parent's pool now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pids = pool.apply_async(_in_child, (0,)).get(timeout=60)
    assert len(set(pids)) == 1 and pids[0] != os.getpid()
