"""The probe's symmetric kernels agree with the plain torch computations they replace."""
import pytest
import torch

from ddgraph.probing.symmetric import add_gram, bottom_eigenvector, eigenvalues, mirror


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gram_sums_by_halves_equal_the_full_product(dtype):
    gen = torch.Generator().manual_seed(0)
    chunks = [torch.randn(n, 9, generator=gen, dtype=dtype) for n in (40, 1, 17)]
    total = None
    for rows in chunks:
        before = total
        total = add_gram(total, rows)
        assert before is None or total is before  # accumulated in place
    mirror(total)
    want = sum(x.T @ x for x in chunks)
    assert torch.equal(total, total.T)
    torch.testing.assert_close(total, want)


def test_gram_of_strided_rows():
    x = torch.randn(30, 8, dtype=torch.float64)[:, ::2]  # not contiguous
    torch.testing.assert_close(mirror(add_gram(None, x)), x.T @ x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spectrum_ends_and_bottom_vector(dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 12, generator=gen, dtype=torch.float64)
    m = (x.T @ x).to(dtype)
    want, vecs = torch.linalg.eigh(m)
    torch.testing.assert_close(eigenvalues(m), want)
    v = bottom_eigenvector(m)
    assert float(abs(v @ vecs[:, 0])) == pytest.approx(1.0, abs=1e-5)
