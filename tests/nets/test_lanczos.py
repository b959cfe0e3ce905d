"""Lanczos with full reorthogonalization against dense eigendecompositions."""

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nets import gauss_quadrature, lanczos
from nets.engine import lanczos as lanczos_module

from .conftest import geometric_problem, random_spd_block


def _matvec(mats):
    def f(vs):
        return [None if v is None else v @ m.T for v, m in zip(vs, mats, strict=True)]
    return f


def test_ritz_values_exact_when_steps_reach_dimension():
    rng = np.random.default_rng(0)
    lam = np.linspace(-3.0, 7.0, 25)
    a = torch.as_tensor(random_spd_block(lam, rng))
    start = torch.as_tensor(rng.standard_normal((3, 25)))
    (run,) = lanczos(_matvec([a]), [start], 25)
    nodes, weights = gauss_quadrature(run)
    for r in range(3):
        np.testing.assert_allclose(nodes[r], lam, rtol=0, atol=1e-12 * 7)
        np.testing.assert_allclose(weights[r].sum(), 1.0, rtol=1e-12)


def test_steps_beyond_dimension_stop_cleanly_and_pad():
    rng = np.random.default_rng(1)
    lam = np.array([1.0, 2.0, 5.0, 5.0, 9.0])  # 4 distinct eigenvalues: Krylov dim 4
    a = torch.as_tensor(random_spd_block(lam, rng))
    start = torch.as_tensor(rng.standard_normal((2, 5)))
    (run,) = lanczos(_matvec([a]), [start], 40)
    assert run.alpha.shape == (2, 40)
    assert list(run.n_steps) == [4, 4]
    nodes, weights = gauss_quadrature(run)
    assert np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))
    np.testing.assert_allclose(nodes[:, :4], np.tile([1, 2, 5, 9], (2, 1)), atol=1e-12 * 9)
    assert np.all(weights[:, 4:] == 0)
    # quadrature reproduces vᵀ f(A) v for f = identity and f = square
    v = start.numpy() / np.linalg.norm(start.numpy(), axis=1, keepdims=True)
    am = a.numpy()
    np.testing.assert_allclose((weights * nodes).sum(1), np.einsum("pi,ij,pj->p", v, am, v),
                               rtol=1e-12)
    np.testing.assert_allclose((weights * nodes**2).sum(1),
                               np.einsum("pi,ij,pj->p", v, am @ am, v), rtol=1e-12)


def test_lockstep_blocks_match_separate_runs():
    rng = np.random.default_rng(2)
    mats = [torch.as_tensor(random_spd_block(rng.uniform(0, s, n), rng))
            for n, s in ((30, 1.0), (7, 100.0), (50, 1e-3))]
    starts = [torch.as_tensor(rng.standard_normal((2, m.shape[0]))) for m in mats]
    together = lanczos(_matvec(mats), starts, 12)
    for m, s, run in zip(mats, starts, together, strict=True):
        (alone,) = lanczos(_matvec([m]), [s], 12)
        np.testing.assert_array_equal(run.n_steps, alone.n_steps)
        np.testing.assert_allclose(run.alpha, alone.alpha, rtol=1e-13,
                                   atol=1e-13 * np.abs(alone.alpha).max())


def test_identity_stops_after_one_step():
    start = torch.ones((1, 6), dtype=torch.float64)
    (run,) = lanczos(_matvec([torch.eye(6, dtype=torch.float64) * 3]), [start], 10)
    assert run.n_steps[0] == 1
    nodes, weights = gauss_quadrature(run)
    np.testing.assert_allclose(nodes, 3.0, rtol=1e-14)
    assert weights[0, 0] == 1.0


def test_bad_arguments():
    a = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="steps"):
        lanczos(_matvec([a]), [torch.ones((1, 3), dtype=torch.float64)], 0)
    with pytest.raises(ValueError, match="nonzero"):
        lanczos(_matvec([a]), [torch.zeros((1, 3), dtype=torch.float64)], 2)
    for bad in (0, -8, 2.5, True):
        with pytest.raises(ValueError, match="chunk_bytes must be a positive number of bytes"):
            lanczos(_matvec([a]), [torch.ones((1, 3), dtype=torch.float64)], 2, chunk_bytes=bad)


@given(n=st.integers(2, 40), steps=st.integers(1, 60), seed=st.integers(0, 2**31 - 1),
       log_scale=st.floats(-6, 6))
def test_extremes_converge_and_quadrature_is_a_probability(n, steps, seed, log_scale):
    rng = np.random.default_rng(seed)
    lam = rng.standard_normal(n) * 10.0**log_scale
    a = torch.as_tensor(random_spd_block(lam, rng))
    (run,) = lanczos(_matvec([a]), [torch.as_tensor(rng.standard_normal((2, n)))], steps)
    nodes, weights = gauss_quadrature(run)
    scale = np.abs(lam).max()
    assert np.all(run.n_steps <= min(n, steps))
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-10)
    assert np.all(weights >= 0)
    # Ritz values interlace: they lie inside [λ_min, λ_max]
    assert nodes.min() >= lam.min() - 1e-10 * scale
    assert nodes.max() <= lam.max() + 1e-10 * scale
    if steps >= n:
        # the Krylov space is exhausted: extreme eigenvalues are exact
        np.testing.assert_allclose(nodes.max(), lam.max(), rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(nodes.min(), lam.min(), rtol=0, atol=1e-9 * scale)


def test_reorthogonalization_keeps_every_eigenvalue_once(monkeypatch):
    """With ``steps = n`` the Ritz values are the eigenvalues, each once, to working precision;
    the same run without reorthogonalization fails this check (the instrument can fail)."""
    lam, a, start = geometric_problem()

    def ritz_error():
        (run,) = lanczos(_matvec([a]), [start], 40, tol=0.0)  # no early stop: all 40 steps
        assert list(run.n_steps) == [40, 40]
        nodes, _ = gauss_quadrature(run)
        return np.abs(np.sort(nodes, axis=1) - lam).max() / lam.max()

    assert ritz_error() < 1e-12
    monkeypatch.setattr(lanczos_module, "_project_out",
                        lambda basis, n, w, scratch, **_: torch.linalg.vector_norm(w, dim=-1))
    assert ritz_error() > 1e-6


def test_second_reorthogonalization_pass_only_when_one_cancels(monkeypatch):
    """One Gram–Schmidt pass per step on a well-conditioned run (none on the last step, which
    stores no vector); a second one where the pass cancels most of ``w`` (the Krylov space
    exhausted: ``w`` is round-off)."""
    calls = []
    project = lanczos_module._project_out
    monkeypatch.setattr(lanczos_module, "_project_out",
                        lambda basis, n, w, scratch, **options: calls.append(n) or project(
                            basis, n, w, scratch, **options))
    rng = np.random.default_rng(3)
    a = torch.as_tensor(random_spd_block(np.linspace(1.0, 2.0, 30), rng))
    (run,) = lanczos(_matvec([a]), [torch.as_tensor(rng.standard_normal((2, 30)))], 10)
    assert list(run.n_steps) == [10, 10]
    assert calls == list(range(1, 10))
    assert list(run.reorthogonalized) == [9, 9]
    # a non-symmetric part along the start vector: the recurrence leaves ``w`` a large
    # component on q_1, the first pass cancels it, and a second pass follows
    start = torch.as_tensor(rng.standard_normal((1, 30)))
    u = start[0] / torch.linalg.vector_norm(start[0])
    skew = a + 100.0 * torch.outer(u, torch.as_tensor(rng.standard_normal(30)))
    calls.clear()
    lanczos(_matvec([skew]), [start], 10)
    assert len(calls) > 9
    assert max(calls.count(j) for j in range(1, 10)) == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_product_is_named(bad):
    a = torch.eye(4, dtype=torch.float64) * 2

    def matvec(vs):
        (v,) = vs
        out = v @ a
        out[0, 2] = bad
        return [out]

    with pytest.raises(ValueError, match="non-finite products for operator 0 at step 1"):
        lanczos(matvec, [torch.ones((2, 4), dtype=torch.float64)], 3)


def test_overflowing_coefficients_are_named():
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)) * 1e200
    with pytest.raises(ValueError, match="overflowed float64 at step 1"):
        lanczos(_matvec([a]), [torch.ones((1, 4), dtype=torch.float64)], 3)


def test_matvec_input_is_not_the_basis():
    """A matvec that scribbles on its input cannot corrupt the recurrence."""
    rng = np.random.default_rng(4)
    lam = np.linspace(-1.0, 3.0, 12)
    a = torch.as_tensor(random_spd_block(lam, rng))
    start = torch.as_tensor(rng.standard_normal((2, 12)))

    def scribbling(vs):
        out = _matvec([a])(vs)
        vs[0].zero_()
        return out

    (clean,) = lanczos(_matvec([a]), [start], 12)
    (scribbled,) = lanczos(scribbling, [start], 12)
    np.testing.assert_array_equal(clean.alpha, scribbled.alpha)


def _record_basis(monkeypatch):
    """Record every basis :func:`lanczos` allocates."""
    bases = []
    run_init = lanczos_module._Run.__init__

    def init(self, start, steps, **options):
        run_init(self, start, steps, **options)
        bases.append(self.basis)

    monkeypatch.setattr(lanczos_module._Run, "__init__", init)
    return bases


def _record_widened(monkeypatch):
    """Record how many rows per probe each read of the basis into float64 takes."""
    widened = []
    wide_rows = lanczos_module._wide

    def recording(rows, scratch):
        widened.append(rows.shape[-2] if rows.ndim == 3 else 1)
        return wide_rows(rows, scratch)

    monkeypatch.setattr(lanczos_module, "_wide", recording)
    return widened


@pytest.mark.parametrize("wide", [False, True])
def test_basis_holds_exactly_the_vectors_passed_to_matvec(monkeypatch, wide):
    """A float32 start keeps a float32 basis (half a float64 copy's bytes) that holds exactly the
    vectors ``matvec`` received, so nothing is lost by not storing it wider; a basis whose
    float64 copy fits ``chunk_bytes`` is stored in float64, holding the same vectors widened."""
    bases = _record_basis(monkeypatch)
    rng = np.random.default_rng(6)
    a = torch.as_tensor(random_spd_block(np.linspace(0.5, 4.0, 20), rng), dtype=torch.float32)
    seen = []

    def matvec(vs):
        seen.append(vs[0].clone())
        return [vs[0] @ a.T]

    float64_bytes = 8 * 3 * 8 * 20
    lanczos(matvec, [torch.as_tensor(rng.standard_normal((3, 20)), dtype=torch.float32)], 8,
            chunk_bytes=float64_bytes if wide else float64_bytes - 1)
    (basis,) = bases
    assert basis.dtype == (torch.float64 if wide else torch.float32)
    assert basis.shape == (3, 8, 20)
    for j, v in enumerate(seen):
        assert v.dtype == torch.float32 and torch.equal(basis[:, j], v.to(basis.dtype))


@pytest.mark.parametrize("reorth", ["full", "partial"])
def test_narrow_bases_project_in_their_dtype_as_accurately_as_float64(monkeypatch, reorth):
    """A float32 basis too large to be stored in float64 (:func:`lanczos_module.wide_bases`)
    is projected out in float32, read as stored: no pass copies more than one row per probe
    to float64 (the rows of the three-term recurrence). Its Ritz values are as close to a
    float64 run's on the same float32 numbers as those of the float64 bases (float64
    arithmetic) are: both within float32 round-off of ``‖A‖``, the narrow no farther than
    twice the wide's distance, over several problems."""
    widened = _record_widened(monkeypatch)
    bases = _record_basis(monkeypatch)
    eps = np.finfo(np.float32).eps
    assert lanczos_module.narrow_passes(torch.float32, torch.device("cpu"))
    for seed in range(6):
        rng = np.random.default_rng(40 + seed)
        d = int(rng.integers(25, 60))
        lam = rng.standard_normal(d) * np.exp(rng.uniform(0, 3))
        a = torch.as_tensor(random_spd_block(lam, rng), dtype=torch.float32)
        start = torch.as_tensor(rng.standard_normal((3, d)), dtype=torch.float32)
        steps = d // 2
        whole = 8 * 3 * steps * d
        (exact,) = lanczos(_matvec([a.double()]), [start.double()], steps, reorth=reorth)
        del widened[:]
        (narrow,) = lanczos(_matvec([a]), [start], steps, reorth=reorth, chunk_bytes=whole - 1)
        assert bases[-1].dtype == torch.float32
        assert widened and max(widened) == 1
        (wide,) = lanczos(_matvec([a]), [start], steps, reorth=reorth, chunk_bytes=whole)
        assert bases[-1].dtype == torch.float64
        ref = np.sort(gauss_quadrature(exact)[0], axis=1)
        scale = np.abs(lam).max()
        err = {name: np.abs(np.sort(gauss_quadrature(run)[0], axis=1) - ref).max() / scale
               for name, run in (("narrow", narrow), ("wide", wide))}
        assert err["narrow"] < 1e3 * eps and err["wide"] < 1e3 * eps, err
        assert err["narrow"] <= 2 * err["wide"] + 10 * eps, err


@pytest.mark.parametrize("precision", ["ieee", "tf32", "bf16"])
def test_narrow_passes_only_where_float32_products_are_ieee(monkeypatch, precision):
    """:func:`lanczos_module.narrow_passes`: float32 bases where the device's float32 products
    are IEEE (the default), not bfloat16, float16 or float64 ones, not where TF32 or bfloat16
    products were allowed (the run then reads the basis into float64, pass by pass, as wide
    as before), and not on a device with no setting to read."""
    cpu = torch.device("cpu")
    exact = precision == "ieee"
    widened = _record_widened(monkeypatch)
    rng = np.random.default_rng(12)
    a = torch.as_tensor(random_spd_block(np.linspace(1.0, 3.0, 30), rng), dtype=torch.float32)
    start = torch.as_tensor(rng.standard_normal((2, 30)), dtype=torch.float32)
    with _cpu_float32_products(precision):
        assert lanczos_module.narrow_passes(torch.float32, cpu) == exact
        for dtype in (torch.float64, torch.bfloat16, torch.float16):
            assert not lanczos_module.narrow_passes(dtype, cpu)
        assert not lanczos_module.narrow_passes(torch.float32, torch.device("meta"))
        lanczos(_matvec([a]), [start], 10, chunk_bytes=8 * 2 * 10 * 30 - 1)  # stored in float32
    assert max(widened) == (1 if exact else 9)  # a pass over the 9 rows before the last step


@contextlib.contextmanager
def _cpu_float32_products(precision):
    """The CPU's float32 matrix products at ``precision`` inside the block (a torch setting
    that monkeypatch cannot undo), restored after it."""
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = precision
    try:
        yield
    finally:
        matmul.fp32_precision = before


def test_wide_bases_rule():
    """:func:`lanczos_module.wide_bases`: float64 vectors never (their basis is float64 anyway),
    narrower ones exactly while the float64 bases of ``min(steps, d)`` rows fit the bytes."""
    shapes = [(2, 10), (1, 3)]
    size = 8 * (2 * 5 * 10 + 1 * 3 * 3)  # five steps: three rows for the second operator
    assert lanczos_module.wide_bases(shapes, 5, torch.float32, size)
    assert not lanczos_module.wide_bases(shapes, 5, torch.float32, size - 1)
    assert lanczos_module.wide_bases(shapes, 5, torch.bfloat16, size)
    assert not lanczos_module.wide_bases(shapes, 5, torch.float64, 10 * size)


def _chunk_problem(dtype):
    rng = np.random.default_rng(8)
    lam = np.geomspace(1e-3, 1e3, 60)
    a = torch.as_tensor(random_spd_block(lam, rng), dtype=dtype)
    return lam, a, torch.as_tensor(rng.standard_normal((3, 60)), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk_rows", [1, 7])
@pytest.mark.parametrize("given", [False, True])
def test_chunked_reorthogonalization_matches_one_batched_pass(monkeypatch, dtype, chunk_rows,
                                                              given):
    """Once a step's float64 basis outgrows the chunk (:data:`REORTH_CHUNK_BYTES`, or
    ``chunk_bytes`` when ``given``), each probe's rows are projected out chunk by chunk (block
    Gram–Schmidt; a float32 basis, projected in float32, one probe at a time once the probes'
    float64 rows of ``w`` outgrow it): the same tridiagonals as the batched pass to round-off
    and, in float64 over six decades, every eigenvalue once."""
    lam, a, start = _chunk_problem(dtype)
    (batched,) = lanczos(_matvec([a]), [start], 60, tol=0.0)
    calls = []
    project = lanczos_module._project_out

    def counting(basis, n, w, scratch, **options):
        calls.append(n)
        return project(basis, n, w, scratch, **options)

    monkeypatch.setattr(lanczos_module, "_project_out", counting)
    size = 8 * 60 * chunk_rows
    if not given:
        monkeypatch.setattr(lanczos_module, "REORTH_CHUNK_BYTES", size)
    mv = []
    real_mv = torch.mv
    monkeypatch.setattr(torch, "mv", lambda *a, **k: mv.append(1) or real_mv(*a, **k))
    (chunked,) = lanczos(_matvec([a]), [start], 60, tol=0.0,
                         chunk_bytes=size if given else None)
    # the chunked path ran wherever the 3 probes' n rows outgrew the chunk (n = 1 for α, on
    # every step; no pass on the last): one product per probe and chunk of rows
    def chunks(n):
        return 3 * -(-n // chunk_rows) if 3 * n > chunk_rows else 0

    # a float32 basis (not stored wide: 60 rows of 3 probes outgrow the chunk in float64) is
    # projected out in float32, each pass two products per probe where the 3 probes' float64
    # rows of w outgrow the chunk, else one batched pair
    def passes(n):
        if dtype == torch.float64:
            return chunks(n)
        return 2 * 3 if 3 * 60 * 8 > size else 0

    assert not lanczos_module.wide_bases([(3, 60)], 60, dtype, size)
    assert len(mv) == sum(chunks(1) for _ in range(60)) + sum(passes(n) for n in calls)
    assert len(mv) > 0 or (dtype == torch.float32 and chunk_rows == 7)
    assert calls == list(range(1, 60))
    eps = torch.finfo(dtype).eps
    scale = lam.max()
    np.testing.assert_allclose(chunked.alpha, batched.alpha, rtol=0, atol=1e3 * eps * scale)
    np.testing.assert_allclose(chunked.beta, batched.beta, rtol=0, atol=1e3 * eps * scale)
    if dtype == torch.float64:
        nodes, _ = gauss_quadrature(chunked)
        assert np.abs(np.sort(nodes, axis=1) - lam).max() / scale < 1e-12


def test_one_scratch_serves_every_operator(monkeypatch):
    """The float64 work stack and chunk buffer are shared by the operators of a run: blocks in
    lockstep hold their bases and one set of buffers, not one per block."""
    allocated = []
    get = lanczos_module._Scratch.get

    def recording(self, name, shape, device):
        before = dict(self._buffers)
        out = get(self, name, shape, device)
        if self._buffers[name] is not before.get(name):
            allocated.append((name, self._buffers[name].numel()))
        return out

    monkeypatch.setattr(lanczos_module._Scratch, "get", recording)
    rng = np.random.default_rng(9)
    mats = [torch.as_tensor(random_spd_block(np.linspace(1.0, 2.0, d), rng), dtype=torch.float32)
            for d in (12, 30, 20)]
    starts = [torch.as_tensor(rng.standard_normal((2, m.shape[0])), dtype=torch.float32)
              for m in mats]
    # the chunk holds the largest float64 basis, not all three (those would be stored wide)
    lanczos(_matvec(mats), starts, 6, chunk_bytes=8 * 2 * 6 * 30)
    assert lanczos_module.chunk_bytes_for(torch.device("cpu")) == (
        lanczos_module.REORTH_CHUNK_BYTES)
    assert lanczos_module.chunk_bytes_for(torch.device("cuda")) == (
        lanczos_module.REORTH_CHUNK_BYTES_ACCELERATOR)
    # one allocation per buffer, not one per operator or step: the work stack as large as the
    # largest operator's; the chunk buffer as its rows of the recurrence, one per probe (the
    # float32 bases are projected in float32, as stored)
    assert sorted(allocated) == [("chunk", 2 * 30), ("work", 2 * 30)]
    # where float32 products may be TF32, the passes read the bases in float64: the chunk
    # buffer as the largest whole basis (these are under a chunk)
    allocated.clear()
    with _cpu_float32_products("tf32"):
        lanczos(_matvec(mats), starts, 6, chunk_bytes=8 * 2 * 6 * 30)
    assert sorted(allocated) == [("chunk", 2 * 6 * 30), ("work", 2 * 30)]
    # with the default chunk, the float64 bases fit it together: read with no chunk buffer
    allocated.clear()
    lanczos(_matvec(mats), starts, 6)
    assert allocated == [("work", 2 * 30)]


@pytest.mark.parametrize("reorth", ["full", "partial"])
def test_asymmetry_is_the_products_roundoff_and_sees_a_skewed_product(reorth):
    """``LanczosRun.asymmetry``: within a few tens of roundoffs for a symmetric float64
    operator, and at the level of a 1e-7 relative skew-symmetric perturbation (a product
    computed in lower precision than its vectors) when one is added."""
    rng = np.random.default_rng(4)
    a = torch.as_tensor(random_spd_block(rng.standard_normal(50), rng))
    g = torch.Generator().manual_seed(1)
    e = torch.randn((50, 50), generator=g, dtype=torch.float64)
    e = (e - e.T) / torch.linalg.matrix_norm(e - e.T, ord=2)
    start = torch.as_tensor(rng.standard_normal((2, 50)))
    u = torch.finfo(torch.float64).eps / 2
    (clean,) = lanczos(_matvec([a]), [start], 20, reorth=reorth)
    skew = a + 1e-7 * torch.linalg.matrix_norm(a, ord=2) * e
    (noisy,) = lanczos(_matvec([skew]), [start], 20, reorth=reorth)
    norm = float(torch.linalg.matrix_norm(a, ord=2))  # the measure is in A's units
    assert clean.asymmetry.shape == (2,) and np.all(clean.asymmetry < 50 * u * norm)
    assert np.all(noisy.asymmetry > 1e-9 * norm) and np.all(noisy.asymmetry < 1e-6 * norm)
    (one,) = lanczos(_matvec([a]), [start], 1)
    assert np.all(one.asymmetry == 0)
