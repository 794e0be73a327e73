"""The probe's symmetric kernels agree with the plain torch computations they replace."""
import pytest
import torch

from ddgraph.probing import symmetric
from ddgraph.probing.symmetric import add_gram, bottom_eigenvector, eigenvalues, mirror


@pytest.fixture(params=["scipy", "torch"])
def backend(request, monkeypatch):
    """Both paths: scipy's BLAS/LAPACK (CPU fp64), and torch (what runs on other devices and dtypes)."""
    if request.param == "torch":
        monkeypatch.setattr(symmetric, "_native", lambda t: False)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gram_sums_by_halves_equal_the_full_product(dtype, backend):
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


def test_gram_of_strided_rows(backend):
    x = torch.randn(30, 8, dtype=torch.float64)[:, ::2]  # not contiguous
    torch.testing.assert_close(mirror(add_gram(None, x)), x.T @ x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spectrum_ends_and_bottom_vector(dtype, backend):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 12, generator=gen, dtype=torch.float64)
    m = (x.T @ x).to(dtype)
    want, vecs = torch.linalg.eigh(m)
    torch.testing.assert_close(eigenvalues(m), want)
    v = bottom_eigenvector(m)
    assert float(abs(v @ vecs[:, 0])) == pytest.approx(1.0, abs=1e-5)


def test_scipy_blas_runs_on_torch_thread_count():
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with symmetric._torch_threads():
                blas = [i["num_threads"] for i in symmetric._threadpools().info() if i["user_api"] == "blas"]
            assert blas and set(blas) == {n}
    finally:
        torch.set_num_threads(before)


def test_probe_reads_the_same_rates_on_either_path(monkeypatch):
    import ddgraph
    from ddgraph.models.zoo import chain

    def rates():
        torch.manual_seed(0)
        d = ddgraph.check(chain(3, "relu", width=8), torch.randn(4, 8), n_samples=500, grid=[1e-2, 1e-3, 1e-4],
                          progress=False)
        return [(c.node, c.factor, c.observable, c.verdict, c.fit.slope) for c in d.checks if c.observable == "dd"]

    with_scipy = rates()
    monkeypatch.setattr(symmetric, "_native", lambda t: False)
    without = rates()
    assert [r[:4] for r in with_scipy] == [r[:4] for r in without]
    assert [r[4] for r in with_scipy] == pytest.approx([r[4] for r in without], abs=1e-6)
