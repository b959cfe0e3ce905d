"""The statistics kernel, the three studies (seeds 002 and 004) and their commands."""

import json

import numpy as np
import pytest

import quadlab
from quadlab.cli.app import main
from quadlab.statistics import trajectory_statistics
from quadlab.studies.batch import batch_study, curve_shape, refine_minimum
from quadlab.studies.eps import eps_study, softsign
from quadlab.studies.newton import newton_problem, newton_study


def test_statistics_kernel_accumulates_the_right_sums():
    """GD without noise, numpy loop as reference: time averages of e², g², v and e eᵀ."""
    problem = quadlab.make_problem("transformer", seed=0, n_blocks=2, block_size=3)
    w0 = problem.initial_points(2, seed=1)
    lr, steps, start = 1e-4, 30, 20
    st = trajectory_statistics(problem, "adam", lr=lr, w0=w0, steps=steps, average_from=start,
                               beta1=0.5, beta2=0.9, eps=1e-8)
    e = w0 - problem.w_star
    g = problem.matvec(e)
    m, v = g.copy(), g * g
    acc_e2, acc_g2, acc_v = 0.0, 0.0, 0.0
    acc_ee = [np.zeros((3, 3)) for _ in range(2)]
    for t in range(steps):
        if t >= start:
            acc_e2 = acc_e2 + e * e
            acc_g2 = acc_g2 + g * g
            acc_v = acc_v + v
            for b, sl in enumerate(problem.block_slices):
                acc_ee[b] += np.einsum("ni,nj->ij", e[:, sl], e[:, sl]) / 2
        m = 0.5 * m + 0.5 * g
        v = 0.9 * v + 0.1 * g * g
        e = e - lr * m / (np.sqrt(v) + 1e-8)
        g = problem.matvec(e)
    window = steps - start
    np.testing.assert_allclose(st.e2, acc_e2 / window, rtol=1e-10)
    np.testing.assert_allclose(st.g2_true, acc_g2 / window, rtol=1e-10)
    np.testing.assert_allclose(st.g2_noisy, st.g2_true, rtol=0)  # no noise: g̃ is g
    np.testing.assert_allclose(st.v, acc_v / window, rtol=1e-10)
    for got, want in zip(st.ee, acc_ee, strict=True):
        np.testing.assert_allclose(got, want / window, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="average_from"):
        trajectory_statistics(problem, "gd", lr=lr, w0=w0, steps=10, average_from=10)


def test_newton_study_measures_slope_two_without_noise_and_one_with_least_squares():
    res = newton_study(problems=("hetero-diagonal",), noises=("none", "least-squares"),
                       optimizers=("adam", "adabelief"), beta2s=(0.9,), steps=4000,
                       trajectories=8)
    rows = {(r.noise, r.optimizer): r for r in res.rows}
    # the theory: p = 2 with exact gradients (diagonal Newton), 1 with least-squares noise
    assert abs(rows["none", "adam"].p - 2.0) < 0.05
    assert abs(rows["least-squares", "adam"].p - 1.0) < 0.1
    assert rows["least-squares", "adam"].signal < 0.1  # v is mostly gradient noise
    assert np.isnan(rows["none", "adam"].err_noise)
    assert json.dumps(res.summary(), default=float)
    with pytest.raises(ValueError, match="unknown problem"):
        newton_problem("nope")


def test_first_adam_step_with_zero_beta2_is_softsign():
    problem = quadlab.make_problem("hetero", seed=0)
    w0 = problem.initial_points(seed=0)
    eps = 3.0
    g = problem.grad(w0)
    want = problem.gap(w0 - 0.01 * softsign(g, eps))
    got = quadlab.run(problem, "adam", lr=0.01, w0=w0, steps=1, beta1=0.0, beta2=0.0, eps=eps)
    assert got[1] == pytest.approx(want, rel=1e-12)


def test_eps_study_tends_to_gd_for_large_eps():
    res = eps_study(cases=("hetero",), rel_eps=(1e-2, 1e4), steps=20_000)
    for variant in ("softsign (β2=0)", "simplified (β2=1)"):
        small, large = res.median_speedup("hetero", variant)
        assert 0.7 < large < 1.4  # ε → ∞: Adam is GD with step η/ε (grid resolution ~±30%)
        assert small > 2  # sign-like: faster than GD on the heterogeneous case
    assert len(res.rows) == 6 and json.dumps(res.summary(), default=float)


def test_refine_minimum_and_curve_shape():
    grid = np.geomspace(1e-3, 1e1, 41)
    loss = np.exp((np.log(grid) - np.log(0.37)) ** 2)
    lr, _, edge = refine_minimum(grid, loss)
    assert lr == pytest.approx(0.37, rel=1e-9) and not edge
    assert refine_minimum(grid, np.full(41, np.inf))[2]
    assert curve_shape(np.array([1.0, 2.0, 3.0, 1.0])) == (True, "surge")
    assert curve_shape(np.array([1.0, 2.0, 3.0, 3.1])) == (False, "increasing")
    assert curve_shape(np.array([3.0, 2.0, 1.0])) == (False, "decreasing")
    assert curve_shape(np.array([1.0, 1.1, 1.0])) == (False, "flat")


def test_batch_study_sgd_optimal_step_grows_with_batch_size():
    res = batch_study(optimizers=("sgd", "sign"), batch_sizes=(1, 64), repeats=512)
    sgd = res.curves[0]
    assert sgd.lr_star[1] > 1.5 * sgd.lr_star[0]
    assert not sgd.at_edge.any()
    with pytest.raises(ValueError, match="criterion"):
        batch_study(criterion="median")
    with pytest.raises(ValueError, match="unknown noise"):
        batch_study(noise="pink")
    with pytest.raises(ValueError, match="optimizer label"):
        batch_study(optimizers=("lion",), batch_sizes=(1,))


@pytest.mark.parametrize("command", ["newton", "eps", "batch"])
def test_commands_quick_json(command, capsys):
    assert main([command, "--quick", "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    if command == "newton":
        assert {r["noise"] for r in res["rows"]} == {"none", "least-squares", "isotropic"}
    elif command == "eps":
        assert set(res["median_speedup"]["hetero"]) >= {"softsign (β2=0)"}
    else:
        assert set(res) == {"one-step", "budget"}
        assert all(isinstance(v, str) for v in res["budget"]["shape"].values())


def test_batch_command_table(capsys):
    assert main(["batch", "--quick", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "η* sgd" in out and "shape of η*(B)" in out


def test_run_command_takes_adabelief_hyper_parameters(capsys):
    assert main(["run", "hetero", "--optimizer", "adabelief", "--lr", "0.01", "--steps", "500",
                 "--beta2", "0.99", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["hyper"] == {"beta2": 0.99} and res["label"].startswith("adabelief(")
    assert main(["run", "hetero", "--optimizer", "adabelief", "--bias-correction"]) == 2
