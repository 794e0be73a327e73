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
def test_spectrum_ends_and_bottom_vector(dtype, backend):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 12, generator=gen, dtype=torch.float64)
    m = (x.T @ x).to(dtype)
    want, vecs = torch.linalg.eigh(m)
    torch.testing.assert_close(eigenvalues(m), want)
    v = bottom_eigenvector(m)
    assert float(abs(v @ vecs[:, 0])) == pytest.approx(1.0, abs=1e-5)


def test_scipy_blas_runs_on_one_thread():
    """In a fresh process, where scipy's BLAS loads only with the probe's first call, every BLAS the process
    then holds runs on one thread inside the probe's calls, whatever torch's thread count."""
    import json
    import os
    import subprocess
    import sys

    code = """
import json, torch
from threadpoolctl import threadpool_info
from ddgraph.probing import symmetric
seen = []
for n in (1, 2):
    torch.set_num_threads(n)
    symmetric.eigenvalues(torch.eye(3, dtype=torch.float64))
    with symmetric._one_blas_thread():
        seen.append({i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
print(json.dumps(seen))
"""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "2"},
                         capture_output=True, text=True, check=True)
    for n, blas in zip((1, 2), json.loads(out.stdout)):
        assert len(blas) >= 1 and set(blas.values()) == {1}, (n, blas)


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


def _planted(n: int, evals, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A symmetric matrix with the given spectrum in a random basis, and that basis."""
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    m = (q * torch.as_tensor(evals, dtype=torch.float64)) @ q.T
    return (m + m.T) / 2, q


@pytest.mark.parametrize("case", ["wishart", "degenerate", "clustered top"])
def test_krylov_ends_agree_with_a_dense_solver(case):
    n = symmetric.KRYLOV_MIN + 16
    gen = torch.Generator().manual_seed(3)
    if case == "wishart":
        x = torch.randn(2 * n, n, generator=gen, dtype=torch.float64)
        m = x.T @ x
    else:
        evals = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
        if case == "degenerate":
            evals[7] = 1e-9  # a direction dying with t, nine decades under the bulk
        else:
            evals[:3] = torch.tensor([2.0, 2.0 - 1e-9, 2.0 - 2e-9])
        m, _ = _planted(n, evals)
    found = symmetric.ends(m)
    want, vecs = torch.linalg.eigh(m)
    assert found.bottom is not None  # the Krylov path, not the dense fallback
    assert found.lmax == pytest.approx(float(want[-1]), rel=1e-9)
    assert found.lmin == pytest.approx(float(want[0]), rel=1e-8)
    assert float(abs(found.bottom @ vecs[:, 0])) == pytest.approx(1.0, abs=1e-8)


def test_singular_matrix_takes_the_full_spectrum():
    n = symmetric.KRYLOV_MIN + 16
    x = torch.randn(n // 2, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    m = x.T @ x  # rank n/2: no Cholesky factor
    found = symmetric.ends(m)
    want = torch.linalg.eigvalsh(m)
    assert found.bottom is None
    assert found.lmax == pytest.approx(float(want[-1]), rel=1e-12)
    assert abs(found.lmin) < 1e-10 * found.lmax


def test_probe_reads_the_same_verdicts_with_dense_spectra(monkeypatch):
    """Wide factors (Krylov ends) and the same factors through dense spectra: same verdicts and overlaps."""
    import ddgraph
    from ddgraph.models.zoo import chain

    width = symmetric.KRYLOV_MIN + 16

    def read():
        torch.manual_seed(0)
        d = ddgraph.check(chain(2, "relu", width=width), torch.randn(4, width), n_samples=1200,
                          grid=[1e-2, 1e-3, 1e-4], progress=False)
        checks = {(c.node, c.factor, c.observable, c.direction): (c.verdict, c.fit.slope) for c in d.checks}
        overlaps = {(node, f, j): v for node, w in d.measurement.weights.items()
                    for f, per in w.overlap.items() for j, v in per.items()}
        return checks, overlaps

    krylov, overlap_k = read()
    monkeypatch.setattr(symmetric, "KRYLOV_MIN", 10**9)
    dense, overlap_d = read()
    assert krylov.keys() == dense.keys()
    assert any(key[2] == "lmin" for key in krylov)
    for key, (verdict, slope) in krylov.items():
        assert verdict == dense[key][0], key
        assert slope == pytest.approx(dense[key][1], abs=1e-6, nan_ok=True), key
    assert overlap_k and overlap_k == pytest.approx(overlap_d, abs=1e-6, nan_ok=True)


@pytest.mark.parametrize("native", [True, False])
def test_cholesky_leading_block_of_a_singular_matrix(native, monkeypatch):
    """Where the factorisation stops at a singular trailing part, the leading block's solves still hold."""
    if not native:
        monkeypatch.setattr(symmetric, "_native", lambda t: False)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(60, 40, generator=gen, dtype=torch.float64)
    m = x.T @ x
    m = torch.block_diag(m, torch.zeros(3, 3, dtype=torch.float64))  # three null coordinates last
    chol = symmetric.Cholesky(m)
    assert not chol.complete and chol.leading == 40
    assert chol.solver() is None and chol.solver(41) is None
    b = torch.randn(40, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(chol.solver(40)(b), torch.linalg.solve(m[:40, :40], b))
    torch.testing.assert_close(chol.solver(25)(b[:25]), torch.linalg.solve(m[:25, :25], b[:25]))
