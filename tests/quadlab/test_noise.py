"""Noise models: the covariance they claim, zero noise = deterministic, seeds, bad input."""

import numba
import numpy as np
import pytest

import quadlab
from quadlab import GaussianNoise, LeastSquaresNoise
from quadlab.rng import lane_states, standard_normals

N_DRAWS = 20_000
#: statistical tolerance: every checked entry within Z standard errors (two-sided p ≈ 2e-9 each)
Z = 6.0


def check_mean_and_covariance(samples, mean, cov):
    """Sample mean and covariance of draws vs the claimed ones, within Z standard errors.

    The standard error of each covariance entry is estimated from the draws themselves
    (std of the products of centred coordinates / √n), so the test holds for non-Gaussian
    noise too (least squares) without assuming fourth moments.
    """
    n = samples.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= Z * se_mean + 1e-12)
    c = samples - mean  # centred at the true mean
    prods = c[:, :, None] * c[:, None, :]
    emp = prods.mean(axis=0)
    se = prods.std(axis=0) / np.sqrt(n)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(emp - cov) <= Z * se + 1e-9 * scale), np.max(np.abs(emp - cov) / se)


def test_generator_draws_standard_normals_and_lanes_do_not_depend_on_n():
    z = standard_normals(7, (4, 50_000)).ravel()
    assert abs(z.mean()) < Z / np.sqrt(z.size)
    assert abs(z.var() - 1) < Z * np.sqrt(2 / z.size)
    assert abs(np.mean(z**4) - 3) < Z * np.sqrt(96 / z.size)  # Var(z⁴) = 105 − 9
    np.testing.assert_array_equal(lane_states(3, 5)[:3], lane_states(3, 3))
    assert len(set(lane_states(3, 1000).tolist())) == 1000
    np.testing.assert_array_equal(lane_states([4, 9], 2),
                                  [lane_states([4], 1)[0], lane_states([9], 1)[0]])


@pytest.mark.parametrize("cov", ["isotropic", "hessian", "dense", "diagonal"])
def test_gaussian_noise_has_the_claimed_covariance(cov):
    problem = quadlab.make_problem("transformer", seed=0, n_blocks=2, block_size=3)
    rng = np.random.default_rng(0)
    if cov == "dense":
        a = rng.standard_normal((problem.d, problem.d))
        cov = a @ a.T
    elif cov == "diagonal":
        cov = rng.uniform(0.5, 2.0, problem.d)
    noise = GaussianNoise(cov, scale=0.7)
    w = problem.initial_points(seed=1)
    draws = quadlab.sample_gradients(problem, noise, w, batch_size=4, n_samples=N_DRAWS, seed=2)
    check_mean_and_covariance(draws, problem.grad(w), noise.covariance(problem, batch_size=4))
    if isinstance(cov, str) and cov == "hessian":
        np.testing.assert_allclose(noise.covariance(problem, batch_size=4),
                                   0.49 * problem.hessian() / 4, rtol=1e-12)


@pytest.mark.parametrize("replace", [True, False])
def test_least_squares_noise_has_the_claimed_covariance(replace):
    problem = quadlab.make_problem("hetero", seed=0)
    noise = LeastSquaresNoise(n_samples=40, sigma=0.5, replace=replace, data_seed=1)
    data = noise.data(problem)
    # the data define the problem exactly: XᵀX/N = H, Xᵀr = 0, ‖r‖²/N = σ²
    scale = problem.all_eigenvalues[-1]
    np.testing.assert_allclose(data.x.T @ data.x / 40, problem.hessian(), atol=1e-12 * scale)
    assert np.max(np.abs(data.x.T @ data.r)) < 1e-10 * np.sqrt(scale) * 40
    assert np.mean(data.r**2) == pytest.approx(0.25, rel=1e-12)
    for w in (problem.w_star, problem.initial_points(seed=3)):
        draws = quadlab.sample_gradients(problem, noise, w, batch_size=8, n_samples=N_DRAWS,
                                         seed=4)
        cov = noise.covariance(problem, w - problem.w_star, batch_size=8)
        check_mean_and_covariance(draws, problem.grad(w), cov)


def test_least_squares_noise_near_the_optimum_is_gauss_newton_shaped():
    """(1/N) Σ r_i² x_i x_iᵀ ≈ σ² H (seed 002's g gᵀ ≈ σ² H): close for N ≫ d, not exact."""
    problem = quadlab.make_problem("hetero", seed=0)
    cov = LeastSquaresNoise(n_samples=4096, sigma=1.0).covariance(problem)
    h = problem.hessian()
    assert np.linalg.norm(cov - h) / np.linalg.norm(h) < 0.1  # measured: ~0.03


@pytest.mark.parametrize("case", ["hetero", "transformer"])  # fused and blocked kernels
@pytest.mark.parametrize(("optimizer", "hyper"), [
    ("gd", {}), ("sign-gd", {}), ("adam", {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8}),
    ("adam", {}), ("adabelief", {})])
def test_zero_gaussian_noise_is_the_deterministic_run_bitwise(case, optimizer, hyper):
    problem = quadlab.make_problem(case, seed=1)
    w0 = problem.initial_points(3, seed=2)
    lr = {"gd": 1e-4, "sign-gd": 1e-3, "adam": 1e-3, "adabelief": 1e-2}[optimizer]
    want = quadlab.run(problem, optimizer, lr=lr, w0=w0, steps=50, method="simulate", **hyper)
    got = quadlab.run(problem, optimizer, lr=lr, w0=w0, steps=50, batch_size=16, seed=5,
                      noise=GaussianNoise("hessian", scale=0.0), **hyper)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", ["hetero", "transformer"])
def test_full_batch_without_replacement_is_the_deterministic_run_to_round_off(case):
    problem = quadlab.make_problem(case, seed=1)
    w0 = problem.initial_points(2, seed=2)
    noise = LeastSquaresNoise(n_samples=problem.d + 20, sigma=1.0, replace=False)
    hyper = {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8}
    want = quadlab.run(problem, "adam", lr=1e-3, w0=w0, steps=50, method="simulate", **hyper)
    got = quadlab.run(problem, "adam", lr=1e-3, w0=w0, steps=50, noise=noise,
                      batch_size=noise.n_samples, **hyper)
    # summing the N per-row gradients instead of one matmul: round-off only
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * want[:, 0].max())


@pytest.mark.parametrize("noise", [GaussianNoise("hessian", scale=2.0),
                                   LeastSquaresNoise(n_samples=128, sigma=2.0, replace=False)])
@pytest.mark.parametrize("case", ["hetero", "transformer"])
def test_broadcasting_equals_looping_with_noise(noise, case):
    """Same random draws per row; the arithmetic may differ by SIMD contraction (FMA) between a
    vector body and its remainder loop, so rows agree to 1e-12 relative (as without noise)."""
    problem = quadlab.make_problem(case, seed=0)
    w0s = problem.initial_points(3, seed=1)
    lrs = np.array([1e-3, 2e-3, 5e-4])
    args = {"steps": 40, "noise": noise, "batch_size": 4, "beta1": 0.9, "beta2": 0.99}
    batch = quadlab.run(problem, "adam", lr=lrs, w0=w0s, seed=[11, 12, 13], **args)
    for i, s in enumerate([11, 12, 13]):
        one = quadlab.run(problem, "adam", lr=lrs[i], w0=w0s[i], seed=s, **args)
        np.testing.assert_allclose(batch[i], one, rtol=1e-12)
    # one int seed: row i uses stream i whatever the number of rows, chunking or threads
    many = quadlab.run(problem, "adam", lr=1e-3, w0=problem.initial_points(70, seed=1), seed=3,
                       **args)
    few = quadlab.run(problem, "adam", lr=1e-3, w0=problem.initial_points(70, seed=1)[:5],
                      seed=3, **args)
    np.testing.assert_allclose(many[:5], few, rtol=1e-12)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = quadlab.run(problem, "adam", lr=1e-3, w0=problem.initial_points(70, seed=1),
                             seed=3, **args)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_allclose(many, serial, rtol=1e-12)
    # and the noise does change the trajectories, differently per stream
    assert not np.array_equal(many[0], many[1])
    det = quadlab.run(problem, "adam", lr=1e-3, w0=w0s[0], steps=40, beta1=0.9, beta2=0.99)
    assert not np.array_equal(det, quadlab.run(problem, "adam", lr=1e-3, w0=w0s[0], seed=0,
                                               **args))


def test_one_seed_per_row_sets_the_number_of_rows():
    problem = quadlab.make_problem("hetero")
    gaps = quadlab.run(problem, "sign-gd", lr=1e-3, w0=problem.initial_points(seed=0), steps=5,
                       noise=GaussianNoise(), seed=[0, 1, 2, 3])
    assert gaps.shape == (4, 6)


def test_noisy_divergence_is_reported():
    problem = quadlab.make_problem("hetero")
    with pytest.warns(quadlab.DivergenceWarning, match=r"row 1 at step \d+"):
        gaps = quadlab.run(problem, "gd", lr=np.array([1e-4, 1e-2]),
                           w0=problem.initial_points(seed=0), steps=300,
                           noise=GaussianNoise(scale=1.0))
    assert np.isfinite(gaps[0]).all() and np.isinf(gaps[1, -1])


@pytest.mark.parametrize(("make", "match"), [
    (lambda: GaussianNoise(scale=-1.0), "scale must be finite and >= 0"),
    (lambda: GaussianNoise(scale=np.inf), "scale"),
    (lambda: GaussianNoise("bogus"), "unknown covariance"),
    (lambda: GaussianNoise(np.ones((2, 3))), "shape"),
    (lambda: GaussianNoise(np.array([[1.0, 2.0], [2.0, 1.0]])), "not positive semi-definite"),
    (lambda: GaussianNoise(np.array([[1.0, 0.5], [0.0, 1.0]])), "not symmetric"),
    (lambda: GaussianNoise(np.array([1.0, -1.0])), ">= 0"),
    (lambda: LeastSquaresNoise(n_samples=1), "n_samples"),
    (lambda: LeastSquaresNoise(sigma=-0.1), "sigma"),
    (lambda: LeastSquaresNoise(replace="yes"), "replace"),
    (lambda: LeastSquaresNoise(data_seed=-1), "data_seed"),
])
def test_noise_models_reject_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"noise": GaussianNoise(), "batch_size": 0}, "batch_size must be >= 1"),
    ({"noise": GaussianNoise(), "batch_size": 2.5}, "batch_size must be an integer"),
    ({"noise": LeastSquaresNoise(n_samples=32), "batch_size": 33}, "exceeds the 32 data rows"),
    ({"noise": LeastSquaresNoise(n_samples=8)}, "must exceed d"),
    ({"noise": GaussianNoise(np.eye(3))}, "has size 3"),
    ({"batch_size": 4}, "needs a noise model"),
    ({"noise": "gaussian"}, "noise must be"),
    ({"noise": GaussianNoise(), "method": "closed-form", "optimizer": "gd"}, "no noise"),
    ({"noise": GaussianNoise(), "seed": -1}, "seed must be >= 0"),
    ({"noise": GaussianNoise(), "seed": 1.5}, "seed must be an int"),
    ({"noise": GaussianNoise(), "seed": [1, 2], "lr": np.ones(3) * 1e-3}, "3 trajectories"),
    ({"optimizer": "adabelief", "beta1": 0.0}, "beta1"),
    ({"optimizer": "adabelief", "beta2": 1.0}, "beta2"),
    ({"optimizer": "adabelief", "eps": -1.0}, "eps"),
    ({"optimizer": "adabelief", "bias_correction": True}, "unknown option"),
])
def test_run_rejects_bad_noise_input(kwargs, match):
    problem = quadlab.make_problem("hetero")
    args = {"optimizer": "adam", "lr": 1e-3, "w0": problem.initial_points(seed=0), "steps": 3,
            "beta2": 0.99}
    args.update(kwargs)
    optimizer = args.pop("optimizer")
    if optimizer != "adam":
        args.pop("beta2")
        args.update({k: v for k, v in kwargs.items() if k.startswith("beta")})
    with pytest.raises(ValueError, match=match):
        quadlab.run(problem, optimizer, **args)
