"""Partial reorthogonalization (``reorth="partial"``) against full reorthogonalization and
dense eigendecompositions: the same Ritz values to about ``u‖A‖``, a semi-orthogonal basis,
fewer passes, and instruments shown able to fail."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import nets
from nets import gauss_quadrature, lanczos
from nets.engine import lanczos as lanczos_module

from .conftest import geometric_problem, random_spd_block


def _matvec(mats, seen=None):
    def f(vs):
        if seen is not None:
            seen.append([None if v is None else v.clone() for v in vs])
        return [None if v is None else v @ m.T for v, m in zip(vs, mats, strict=True)]
    return f


def _loss_of_orthogonality(seen, n_steps, op=0):
    """``max |QᵀQ − I|`` over the probes of operator ``op``'s vectors passed to ``matvec``
    (probe ``r``'s first ``n_steps[r]``: a probe that stopped early is passed zeros)."""
    q = torch.stack([vs[op] for vs in seen if vs[op] is not None], dim=1).double()
    loss = 0.0
    for r, k in enumerate(n_steps):
        gram = q[r, :k] @ q[r, :k].T
        loss = max(loss, float((gram - torch.eye(int(k), dtype=torch.float64)).abs().max()))
    return loss


def _outliers(n, rng):
    """A Hessian-like spectrum: a bulk near zero of both signs and a few large outliers (a
    Ritz value converges early, and orthogonality is lost fast without reorthogonalization)."""
    bulk = rng.standard_normal(n - 4) * 0.05
    return np.concatenate([bulk, [3.0, 7.0, 20.0, -4.0]])


@given(n=st.integers(20, 80), seed=st.integers(0, 2**31 - 1),
       kind=st.sampled_from(["outliers", "geometric", "uniform"]),
       dtype=st.sampled_from([torch.float64, torch.float32]))
@example(n=61, seed=0, kind="outliers", dtype=torch.float32)  # the two stop 3 steps apart
def test_partial_matches_full_and_stays_semi_orthogonal(n, seed, kind, dtype):
    """Three kinds of spectra (Hessian-like outliers over a bulk, six decades, uniform), in
    float32 and float64, as many steps as the dimension: the basis stays within ``10√u`` of
    orthonormal, nodes and the quadrature's first two moments match full
    reorthogonalization's to ``200·u‖A‖``, and partial never runs more passes.

    Both stop where ``β_j < tol·‖T‖`` (``tol = √eps = 2√u`` by default), and a semi-orthogonal
    basis leaves components of about ``√u‖A‖`` in ``w``, the same order: near the end of a run
    that exhausts the space, where the ``β`` fall to that level, the two may stop a few steps
    apart (n = 61, outliers, float32: 55 and 58 steps). They may differ only there: the run
    that goes on has every ``β`` from the other's stop on within ``10√u‖T‖`` of the
    threshold, and its extreme nodes and moments still match."""
    rng = np.random.default_rng(seed)
    lam = {"outliers": lambda: _outliers(n, rng),
           "geometric": lambda: np.geomspace(1e-3, 1e3, n),
           "uniform": lambda: rng.uniform(-1.0, 1.0, n)}[kind]()
    a = torch.as_tensor(random_spd_block(lam, rng), dtype=dtype)
    start = torch.as_tensor(rng.standard_normal((2, n)), dtype=dtype)
    steps = n
    (full,) = lanczos(_matvec([a]), [start], steps)
    seen: list = []
    (part,) = lanczos(_matvec([a], seen), [start], steps, reorth="partial")
    u = torch.finfo(dtype).eps / 2
    scale = np.abs(lam).max()
    # semi-orthogonal: every overlap within a modest multiple of √u
    assert _loss_of_orthogonality(seen, part.n_steps) <= 10 * np.sqrt(u)
    for r in range(2):
        kf, kp = int(full.n_steps[r]), int(part.n_steps[r])
        if kf != kp:  # a stop decided within the semi-orthogonality level only
            longer = full if kf > kp else part
            norm = max(np.abs(longer.alpha[r, :max(kf, kp)]).max(),
                       np.abs(longer.beta[r, :max(kf, kp)]).max())
            band = (np.sqrt(torch.finfo(dtype).eps) + 10 * np.sqrt(u)) * norm
            assert np.all(longer.beta[r, min(kf, kp) - 1:max(kf, kp) - 1] <= band), (kf, kp)
    nodes_f, weights_f = gauss_quadrature(full)
    nodes_p, weights_p = gauss_quadrature(part)
    tol = 200 * u * scale  # 300 seeded draws of these spectra differed by at most 20 u‖A‖
    for r in range(2):
        kf, kp = int(full.n_steps[r]), int(part.n_steps[r])
        sorted_f, sorted_p = np.sort(nodes_f[r, :kf]), np.sort(nodes_p[r, :kp])
        if kf == kp:
            np.testing.assert_allclose(sorted_p, sorted_f, rtol=0, atol=tol)
        else:  # the converged extremes: the outliers and the ends of the bulk
            np.testing.assert_allclose(sorted_p[[0, -1]], sorted_f[[0, -1]], rtol=0, atol=tol)
        # the quadrature's moments: the same measure (weights of nearby nodes may trade)
        for power in (1, 2):
            np.testing.assert_allclose((weights_p[r] * nodes_p[r] ** power).sum(),
                                       (weights_f[r] * nodes_f[r] ** power).sum(), rtol=0,
                                       atol=tol * scale ** (power - 1) * power)
    assert int(part.reorthogonalized[0]) <= int(full.reorthogonalized[0])
    # full: a pass on every step but the cap's last (a step that finds an invariant subspace
    # has its pass: it is what finds it)
    assert int(full.reorthogonalized[0]) == min(int(full.n_steps.max()), steps - 1)


def test_partial_keeps_every_eigenvalue_once_and_skips_passes(monkeypatch):
    """All 40 steps on 40 eigenvalues over 8 decades: each eigenvalue once, with fewer passes
    than steps; the same run whose estimates never ask for a pass makes
    ghosts, so the estimates are what keeps them away."""
    lam, a, start = geometric_problem()

    def run():
        (r,) = lanczos(_matvec([a]), [start], 40, tol=0.0, reorth="partial")
        assert list(r.n_steps) == [40, 40]
        nodes, _ = gauss_quadrature(r)
        return np.abs(np.sort(nodes, axis=1) - lam).max() / lam.max(), int(r.reorthogonalized[0])

    error, passes = run()
    assert error < 1e-10
    assert 0 < passes < 39
    monkeypatch.setattr(lanczos_module._Omega, "needs_pass", lambda self, *a, **k: False)
    error, passes = run()
    assert passes == 0 and error > 1e-6


def _skewed(a, rel, seed):
    """``A + rel·‖A‖·E`` with a fixed non-symmetric ``E`` (unit spectral norm): a product with
    the asymmetry of one computed in lower precision than its vectors."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(a.shape, generator=g, dtype=a.dtype)
    e = e - e.T  # purely skew: invisible to the symmetric part
    e = e / torch.linalg.matrix_norm(e, ord=2)
    return a + rel * torch.linalg.matrix_norm(a, ord=2) * e


def test_measured_asymmetry_keeps_a_noisy_product_semi_orthogonal(monkeypatch):
    """A float64 run whose products carry 1e-10 relative asymmetric noise (a product computed
    in lower precision than its vectors): with the measured asymmetry in the noise term the
    basis stays semi-orthogonal, still skipping passes; without it (``NOISE_SAFETY = 0``: the
    estimates from float64's roundoff alone) the overlaps pass √u hundreds of times over, so
    the term is what keeps the basis semi-orthogonal (the instrument can fail). At 1e-7 noise,
    over √u of float64 itself, nearly every step gets its pass: partial degrades to full."""
    rng = np.random.default_rng(11)
    n = 120
    a = torch.as_tensor(random_spd_block(_outliers(n, rng), rng))
    start = torch.as_tensor(rng.standard_normal((1, n)))
    level = np.sqrt(torch.finfo(torch.float64).eps / 2)

    def run(rel):
        seen: list = []
        (r,) = lanczos(_matvec([_skewed(a, rel, 3)], seen), [start], 60, reorth="partial")
        return _loss_of_orthogonality(seen, r.n_steps), int(r.reorthogonalized[0])

    loss, passes = run(1e-10)
    assert loss <= 10 * level and passes < 59
    loss, passes = run(1e-7)
    assert loss <= 10 * level and passes >= 55
    monkeypatch.setattr(lanczos_module, "NOISE_SAFETY", 0.0)
    loss_blind, _ = run(1e-10)
    assert loss_blind > 100 * level


def test_lockstep_operators_and_probes_match_separate_partial_runs():
    rng = np.random.default_rng(2)
    mats = [torch.as_tensor(random_spd_block(_outliers(n, rng) * s, rng))
            for n, s in ((30, 1.0), (40, 100.0), (50, 1e-3))]
    starts = [torch.as_tensor(rng.standard_normal((2, m.shape[0]))) for m in mats]
    together = lanczos(_matvec(mats), starts, 25, reorth="partial")
    for m, s, run in zip(mats, starts, together, strict=True):
        (alone,) = lanczos(_matvec([m]), [s], 25, reorth="partial")
        np.testing.assert_array_equal(run.n_steps, alone.n_steps)
        np.testing.assert_array_equal(run.reorthogonalized, alone.reorthogonalized)
        np.testing.assert_allclose(run.alpha, alone.alpha, rtol=1e-13,
                                   atol=1e-13 * np.abs(alone.alpha).max())


@pytest.mark.parametrize("bad", ["Full", "none", "", None, 1])
def test_unknown_reorth_is_refused_naming_the_choices(bad):
    a = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="reorth must be one of 'full', 'partial'"):
        lanczos(_matvec([a]), [torch.ones((1, 3), dtype=torch.float64)], 2, reorth=bad)


def test_spectrum_partial_agrees_with_full_on_a_network(attention_problem):
    """``full_spectrum`` and ``blockwise_spectrum`` with ``reorth="partial"``: nodes and the
    quadrature's first moments as under full reorthogonalization to about ``u‖H‖`` (float64
    model), fewer passes counted in ``info``; an unknown value is refused before any product."""
    model, loss_fn, data, _ = attention_problem
    infos = {}
    spectra = {}
    for reorth in nets.REORTH_MODES:
        infos[reorth] = {}
        spectra[reorth] = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=20,
                                                  probes=2, reorth=reorth, info=infos[reorth])
    assert infos["partial"]["reorth"] == "partial"
    assert infos["partial"]["reorthogonalized_steps"] < infos["full"]["reorthogonalized_steps"]
    for name, full in spectra["full"].items():
        part = spectra["partial"][name]
        scale = max(np.abs(full.nodes).max(), 1e-300)
        np.testing.assert_allclose(np.sort(part.nodes, -1), np.sort(full.nodes, -1), rtol=0,
                                   atol=1e-9 * scale)
        np.testing.assert_allclose((part.weights * part.nodes).sum(-1),
                                   (full.weights * full.nodes).sum(-1), rtol=0,
                                   atol=1e-9 * scale)
    with pytest.raises(ValueError, match="reorth must be one of"):
        nets.full_spectrum(model, loss_fn, data, reorth="selective")
