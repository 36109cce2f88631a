"""Golden numbers: a tiny frozen biLM and a tagger on it, committed under ``tests/fixtures/golden/`` (made by
``scripts/make_golden.py``), whose vectors, perplexities and predictions are pinned in ``expected.json``. A change
that moves any of them fails here; rebuild the fixture with the script only when the change is meant, and say why in
the commit. (The imported ELMo's golden numbers are TensorFlow's own, in ``tests/bilm/test_charbilm.py``.)"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"


@pytest.fixture(scope="module")
def numbers():
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)
    return make_golden.expected_numbers(GOLDEN), json.loads((GOLDEN / "expected.json").read_text(encoding="utf-8"))


def test_vectors_are_pinned(numbers):
    got, want = numbers
    assert (
        [np.shape(v) for v in got["vectors"]]
        == [np.shape(v) for v in want["vectors"]]
        == [(2, 7, 16), (2, 8, 16), (2, 4, 16)]
    )
    for g, w in zip(got["vectors"], want["vectors"]):
        # pinned to 6 decimals; 1e-5 allows the float32 rounding of another thread count or kernel schedule
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


def test_perplexities_are_pinned(numbers):
    got, want = numbers
    for direction in ("forward", "backward"):
        assert got["word_ppl"][direction] == pytest.approx(want["word_ppl"][direction], rel=1e-5)


def test_tagger_predictions_are_pinned(numbers):
    got, want = numbers
    assert got["tags"] == want["tags"] and len(want["tags"]) == 6
