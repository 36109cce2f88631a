import pytest
import torch

from elmokit.modules import matmul
from elmokit.modules.matmul import linear, linear_add, onednn_available


@pytest.fixture(params=["onednn", "mm"])
def path(request, monkeypatch):
    """Run a test through oneDNN (where this PyTorch has it) and through the torch.mm fallback."""
    if request.param == "onednn" and not onednn_available():
        pytest.skip("this PyTorch has no oneDNN fp32 linear")
    if request.param == "mm":
        monkeypatch.setattr(matmul, "_use_onednn", lambda *ts: False)
    return request.param


def test_linear_and_linear_add_equal_torch_mm(path):
    g = torch.Generator().manual_seed(0)
    x, w, b, other = (torch.randn(s, generator=g) for s in [(9, 12), (5, 12), (5,), (9, 5)])
    want = x.double() @ w.double().t()
    torch.testing.assert_close(linear(x, w).double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear(x, w, w.t().contiguous()).double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear(x, w, bias=b).double(), want + b.double(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear_add(x, w, other).double(), want + other.double(), atol=1e-5, rtol=1e-5)
    # a strided view of rows (the kernels pass slices of a (T, B, 4H) buffer) and a transposed one
    big = torch.randn(9, 30, generator=g)
    torch.testing.assert_close(linear(big[:, 3:15], w), big[:, 3:15] @ w.t(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear(big.t()[:12].t(), w), big[:, :12] @ w.t(), atol=1e-5, rtol=1e-5)


def test_padded_rows_are_a_bounded_set_within_an_eighth():
    sizes = {matmul._padded_rows(n) for n in range(65, 1024)}
    assert len(sizes) == 8 * 4  # 8 per doubling: 65-127, 128-255, 256-511, 512-1023
    assert all(n <= matmul._padded_rows(n) < n * 9 / 8 for n in range(65, 5000))
    assert matmul._padded_rows(1000) == 1024 and matmul._padded_rows(65) == 72


@pytest.mark.parametrize("rows", [1, 63, 64, 65, 130, 192])
def test_linear_pads_long_inputs_and_returns_exactly_their_rows(path, rows):
    # above ROW_PAD rows oneDNN gets the input padded to a multiple of it (a bounded set of shapes); the caller gets
    # its own rows, in a contiguous tensor
    g = torch.Generator().manual_seed(rows)
    x, w, b = torch.randn(rows, 12, generator=g), torch.randn(7, 12, generator=g), torch.randn(7, generator=g)
    y = linear(x, w, bias=b, pad_rows=True)
    assert y.shape == (rows, 7) and y.is_contiguous()
    torch.testing.assert_close(y, torch.addmm(b, x, w.t()), atol=1e-5, rtol=1e-5)


def test_other_dtypes_fall_back_to_torch_mm():
    x, w = torch.randn(4, 3, dtype=torch.double), torch.randn(2, 3, dtype=torch.double)
    assert not matmul._use_onednn(x, w)
    torch.testing.assert_close(linear(x, w), x @ w.t())


def test_onednn_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("ELMOKIT_ONEDNN", "0")
    onednn_available.cache_clear()
    try:
        assert not onednn_available()
    finally:
        monkeypatch.delenv("ELMOKIT_ONEDNN")
        onednn_available.cache_clear()
