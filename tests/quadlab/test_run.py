import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import simulate as sim
from quadlab import strategies as qs
from quadlab.optimizers import make_optimizer


def reference(problem, optimizer, lr, w0, steps, *, beta1=0.0, beta2=1.0, eps=0.0,
              bias_correction=False, block_scales=None):
    """Plain-numpy transcription of the update rules (one trajectory, on w itself)."""
    w = np.array(w0, dtype=float)
    g = problem.grad(w)
    if optimizer == "blockwise-gd":
        s = (2 / (problem.lambda_max_blocks + problem.lambda_min_blocks)
             if block_scales is None else np.asarray(block_scales))[problem.block_index]
    else:
        s = np.ones(problem.d)
    m, v = (np.zeros_like(g), np.zeros_like(g)) if bias_correction else (g.copy(), g * g)
    gaps = [problem.gap(w)]
    for t in range(steps):
        if optimizer in ("gd", "blockwise-gd"):
            w = w - lr * s * g
        elif optimizer == "sign-gd":
            w = w - lr * np.sign(g)
        else:
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            mh, vh = m, v
            if bias_correction:
                mh, vh = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
            w = w - lr * mh / (np.sqrt(vh) + eps)
        g = problem.grad(w)
        gaps.append(problem.gap(w))
    return np.array(gaps)


def adam_lr(problem, w0):
    return 0.5 * quadlab.tuning.reference_step(problem, "adam", w0=w0, steps=1)


# ------------------------------------------------------------------ closed form vs simulation
@given(qs.problems_with_start(max_log10_kappa=3.0), st.sampled_from(["gd", "blockwise-gd", "adam"]),
       st.floats(0.05, 1.9))
def test_closed_form_equals_simulation(case, optimizer, frac):
    problem, w0 = case
    if optimizer == "gd":
        lr = frac / problem.all_eigenvalues[-1]
    elif optimizer == "blockwise-gd":
        lr = frac / 2  # η s_l λ_max(H_l) < 2: stable
    else:
        lr = frac * adam_lr(problem, w0) * 2  # η λ_max(D^{-1/2} H D^{-1/2}) < 2: stable
    closed = quadlab.run(problem, optimizer, lr=lr, w0=w0, steps=60, method="closed-form",
                         on_divergence="raise")
    simul = quadlab.run(problem, optimizer, lr=lr, w0=w0, steps=60, method="simulate",
                        on_divergence="raise")
    scale = closed[0]
    keep = closed > 1e-20 * scale  # below that the simulation sits on its round-off floor
    np.testing.assert_allclose(simul[keep], closed[keep], rtol=1e-7, atol=1e-13 * scale)


@given(qs.problems_with_start(max_log10_kappa=3.0))
def test_simplified_adam_is_gd_preconditioned_by_initial_gradient(case):
    """β1 = 0, β2 = 1 is w ← w − η diag(|∇L(w0)|)⁻¹ ∇L(w) (the paper's Eq. (2))."""
    problem, w0 = case
    lr = adam_lr(problem, w0)
    d_inv = 1.0 / np.abs(problem.grad(w0))
    w, want = w0.copy(), [problem.gap(w0)]
    for _ in range(30):
        w = w - lr * d_inv * problem.grad(w)
        want.append(problem.gap(w))
    got = quadlab.run(problem, "adam", lr=lr, w0=w0, steps=30, beta1=0.0, beta2=1.0)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-14 * want[0])


@pytest.mark.parametrize("case", ["hetero", "transformer"])  # fused and blocked kernels
@pytest.mark.parametrize(
    ("optimizer", "hyper"),
    [("gd", {}), ("blockwise-gd", {}), ("blockwise-gd", {"block_scales": None}),
     ("sign-gd", {}), ("adam", {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8}),
     ("adam", {"beta1": 0.0, "beta2": 0.999}),
     ("adam", {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3, "bias_correction": True})],
)
def test_simulation_matches_numpy_reference(case, optimizer, hyper):
    problem = quadlab.make_problem(case, seed=1)
    w0 = problem.initial_points(seed=2)
    lr = {"gd": 1e-4, "blockwise-gd": 0.5, "sign-gd": 1e-3, "adam": 1e-3}[optimizer]
    got = quadlab.run(problem, optimizer, lr=lr, w0=w0, steps=40, method="simulate", **hyper)
    want = reference(problem, optimizer, lr, w0, 40, **hyper)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * want[0])


def test_fused_and_blocked_kernels_agree():
    problem = quadlab.make_problem("transformer", seed=3, block_size=8)
    spec = make_optimizer("adam", beta1=0.9, beta2=0.999, eps=1e-6)
    e0 = problem.initial_points(5, seed=0) - problem.w_star
    lr = np.geomspace(1e-4, 1e-1, 5)
    a, da = sim.simulate_fused(problem, spec, lr, e0, 300)
    b, db = sim.simulate_blocked(problem, spec, lr, e0, 300)
    np.testing.assert_array_equal(da, db)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14 * a[:, 0].max())


def test_bias_corrected_adam_is_torch_adam():
    """bias_correction=True reproduces torch.optim.Adam (float64) step for step."""
    problem = quadlab.make_problem("hetero", seed=4)
    w0 = problem.initial_points(seed=5)
    hyper = {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8}
    got = quadlab.run(problem, "adam", lr=0.05, w0=w0, steps=200, bias_correction=True, **hyper)
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    hess = torch.tensor(problem.hessian())
    h = torch.tensor(problem.h)
    opt = torch.optim.Adam([w], lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    want = [problem.gap(w0)]
    for _ in range(200):
        opt.zero_grad()
        loss = 0.5 * w @ hess @ w - h @ w
        loss.backward()
        opt.step()
        want.append(problem.gap(w.detach().numpy()))
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12 * want[0])


def test_gd_closed_form_on_diagonal_problem_is_textbook():
    lam = np.array([1.0, 10.0])
    problem = quadlab.Problem.from_spectra([lam], [np.eye(2)])
    w0 = np.array([1.0, 1.0])
    t = np.arange(11)
    want = 0.5 * (lam[0] * (1 - 0.1 * lam[0]) ** (2 * t) + lam[1] * (1 - 0.1 * lam[1]) ** (2 * t))
    np.testing.assert_allclose(quadlab.run(problem, "gd", lr=0.1, w0=w0, steps=10), want,
                               rtol=1e-14)


# ------------------------------------------------------------------ broadcasting
@given(qs.problems_with_start(max_log10_kappa=2.0), st.sampled_from(["gd", "adam", "sign-gd"]),
       st.integers(1, 4))
def test_broadcasting_equals_looping(case, optimizer, n):
    problem, w0 = case
    rng = np.random.default_rng(n)
    w0s = w0 + rng.standard_normal((n, problem.d))
    base = 0.3 / problem.all_eigenvalues[-1] if optimizer == "gd" else 1e-3
    lrs = base * np.geomspace(0.5, 1.5, n)
    hyper = {"beta2": 0.99} if optimizer == "adam" else {}
    batch = quadlab.run(problem, optimizer, lr=lrs, w0=w0s, steps=25, **hyper)
    assert batch.shape == (n, 26)
    for i in range(n):
        one = quadlab.run(problem, optimizer, lr=lrs[i], w0=w0s[i], steps=25, **hyper)
        assert one.shape == (26,)
        np.testing.assert_allclose(batch[i], one, rtol=1e-12, atol=1e-14 * one[0])
    # one w0, many step sizes; many w0, one step size
    assert quadlab.run(problem, optimizer, lr=lrs, w0=w0, steps=3, **hyper).shape == (n, 4)
    assert quadlab.run(problem, optimizer, lr=base, w0=w0s, steps=3, **hyper).shape == (n, 4)


# ------------------------------------------------------------------ divergence
def test_divergence_is_reported_with_row_and_step():
    problem = quadlab.make_problem("hetero")
    w0 = problem.initial_points(seed=0)
    lrs = np.array([1e-4, 1e-3, 3e-4])  # 1e-3 > 2/λ_max: diverges
    with pytest.warns(quadlab.DivergenceWarning, match=r"row 1 at step \d+"):
        gaps = quadlab.run(problem, "gd", lr=lrs, w0=w0, steps=200)
    step = quadlab.divergence_steps(gaps)
    assert step[0] == -1 and step[2] == -1 and step[1] > 0
    assert np.isinf(gaps[1, step[1]:]).all() and np.isfinite(gaps[1, :step[1]]).all()
    assert np.isfinite(gaps[[0, 2]]).all()
    with pytest.raises(quadlab.DivergenceError) as info:
        quadlab.run(problem, "gd", lr=lrs, w0=w0, steps=200, on_divergence="raise")
    assert list(info.value.rows) == [1] and list(info.value.steps) == [step[1]]


@pytest.mark.parametrize("method", ["closed-form", "simulate"])
def test_divergence_gives_inf_never_nan(method):
    problem = quadlab.make_problem("transformer")
    gaps = quadlab.run(problem, "gd", lr=1.0, w0=problem.initial_points(seed=0), steps=5000,
                       method=method, on_divergence="ignore")
    assert not np.isnan(gaps).any()
    assert np.isinf(gaps[-1]) and quadlab.divergence_steps(gaps) > 0


def test_adam_beta2_below_one_follows_the_dip_in_extended_range():
    """On hetero, Adam (β2 < 1, ε = 0) shrinks the stiff block's coordinates super-exponentially
    (Proposition 2's dynamics). The extended range follows them: no stop, no warning, a float
    gap that is NaN only where the exact (log) gap is below float64's range, never 0.0."""
    problem = quadlab.make_problem("hetero")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = quadlab.run(problem, "adam", lr=0.1, w0=problem.initial_points(seed=0),
                          steps=20000, beta2=0.999, log_gap=True)
    assert np.isfinite(res.log10_gap).all() and not (res.gap == 0.0).any()
    below = res.log10_gap < np.log10(np.finfo(float).tiny)
    assert np.array_equal(np.isnan(res.gap), below)
    np.testing.assert_allclose(np.log10(res.gap[~below]), res.log10_gap[~below], rtol=1e-12)
    assert quadlab.divergence_steps(res.gap) == -1


def test_eps_positive_adam_follows_the_dip_and_plain_float64_reports_underflow():
    """ε > 0 runs in the extended range too: the issue's dip (ε = 1e-300, √v̂ ≫ ε throughout)
    is followed, gaps below float64's range NaN beside the exact log gap, never 0.0, no
    warning. Plain float64 (the kernels with the extended range off, as with noise) still
    stops the lane at the underflow with NaN and reports the step."""
    problem = quadlab.Problem.from_blocks([np.eye(1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = quadlab.run(problem, "adam", lr=0.9, w0=np.array([1.0]), steps=3000,
                          beta2=0.999, eps=1e-300, log_gap=True)
    assert res.log10_gap.min() < -2000 and np.isfinite(res.log10_gap).all()
    assert not (res.gap == 0.0).any() and np.isnan(res.gap[res.log10_gap < -308]).all()
    spec = make_optimizer("adam", beta2=0.999, eps=1e-300)
    gaps, stopped = sim.simulate_fused(problem, spec, np.array([0.9]), np.array([[1.0]]), 3000,
                                       extended=False)
    step = int(stopped[0])
    assert step > 0 and np.isnan(gaps[0, step:]).all() and np.isfinite(gaps[0, :step]).all()


def test_linear_contractions_are_flushed_not_flagged():
    """β2 = 1 with noise (simulated) and ε-dominated Adam are linear contractions: tiny
    coordinates are flushed as for GD, with no underflow report."""
    problem = quadlab.make_problem("hetero")
    w0 = problem.initial_points(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # effective GD step η/ε = 3e-4 < 2/λ_max: the stiff block shrinks by 0.5 per step
        gaps = quadlab.run(problem, "adam", lr=300.0, w0=w0, steps=3000, beta2=0.999, eps=1e6)
        assert np.isfinite(gaps).all() and gaps[-1] < 1e-2 * gaps[0]
        gaps = quadlab.run(problem, "adam", lr=adam_lr(problem, w0), w0=w0, steps=30000,
                           method="simulate")
        assert np.isfinite(gaps).all() and gaps[-1] < 1e-30 * gaps[0]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"lr": np.nan}, "non-finite"),
        ({"lr": np.ones((2, 2))}, "scalar or 1-D"),
        ({"w0": np.ones(8)}, "w0 must have shape"),
        ({"w0": np.full(9, np.nan)}, "non-finite"),
        ({"lr": np.ones(3) * 1e-4, "w0": np.ones((2, 9))}, "must match"),
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"optimizer": "lion"}, "unknown optimizer"),
        ({"optimizer": "gd", "beta1": 0.9}, "unknown option"),
        ({"beta1": 1.0}, "beta1"),
        ({"beta2": 1.5}, "beta2"),
        ({"beta2": -0.1}, "beta2"),
        ({"eps": -1e-8}, "eps"),
        ({"beta2": 1.0, "bias_correction": True}, "bias_correction"),
        ({"beta2": 0.9, "method": "closed-form"}, "closed-form"),
        ({"method": "magic"}, "unknown method"),
        ({"on_divergence": "explode"}, "on_divergence"),
        ({"optimizer": "blockwise-gd", "block_scales": [1.0, 2.0]}, "one entry per block"),
        ({"optimizer": "blockwise-gd", "block_scales": [1.0, -2.0, 1.0]}, "> 0"),
    ],
)
def test_run_rejects_bad_input(kwargs, match):
    problem = quadlab.make_problem("hetero")
    args = {"optimizer": "adam", "lr": 1e-3, "w0": problem.initial_points(seed=0), "steps": 10}
    args.update(kwargs)
    optimizer = args.pop("optimizer")
    with pytest.raises(ValueError, match=match):
        quadlab.run(problem, optimizer, **args)


def test_simplified_adam_refuses_zero_gradient_coordinate():
    problem = quadlab.Problem.from_blocks([np.diag([1.0, 2.0])])
    with pytest.raises(ValueError, match="zero coordinate"):
        quadlab.run(problem, "adam", lr=0.1, w0=np.array([1.0, 0.0]), steps=5)
    # with eps > 0 the preconditioner exists and the run is fine
    gaps = quadlab.run(problem, "adam", lr=0.1, w0=np.array([1.0, 0.0]), steps=5, eps=1e-3)
    assert np.isfinite(gaps).all()


def test_run_rejects_non_problem():
    with pytest.raises(TypeError, match=r"quadlab\.Problem"):
        quadlab.run(np.eye(2), "gd", lr=0.1, w0=np.ones(2), steps=1)
