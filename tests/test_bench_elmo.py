"""The original ELMo's benchmark at its quick shape: it runs, its AllenNLP-style reference (``conv1d`` over all 50
character positions, a step-by-step LSTM) gives elmokit's vectors, and its two FLOP counts are consistent
(scripts/bench_elmo.py; the full-shape figures are in recipes/README.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_shape_runs_and_agrees_with_the_reference():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_elmo.py"), "--quick", "--rounds", "1", "--reps", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["shape"] == "quick" and result["sentences_per_s"] > 0
    assert result["max_abs_diff_vs_reference"] < 1e-5  # the padding's windows computed once: the same vectors
    # the words' own windows are fewer than all 50 (3-10 letter words), so that count's utilisation is lower
    assert 0 < result["mfu"] < result["mfu_all_windows"]
