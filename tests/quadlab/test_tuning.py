import numpy as np
import pytest

import quadlab
from quadlab.tuning import default_grid, reference_step


def test_iterations_to_tolerance_first_crossing_and_staying():
    gaps = np.array([1.0, 0.5, 1e-7, 0.2, 1e-8, 1e-9])
    assert quadlab.iterations_to_tolerance(gaps, 1e-6, stay=False) == 2
    assert quadlab.iterations_to_tolerance(gaps, 1e-6) == 4
    assert np.isinf(quadlab.iterations_to_tolerance(gaps, 1e-12))
    batch = quadlab.iterations_to_tolerance(np.stack([gaps, gaps[::-1]]), 1e-6)
    assert batch[0] == 4 and np.isinf(batch[1])


def test_gd_tuning_finds_the_largest_stable_step_on_the_papers_case():
    """GD's fastest step on a quadratic is close to 2/(λ_min + λ_max) (just below 2/λ_max)."""
    problem = quadlab.make_problem("hetero")
    res = quadlab.tune_lr(problem, "gd", w0=problem.initial_points(seed=0), steps=20_000)
    assert 1.0 / 5000 < res.lr < 2.0 / 5000
    assert np.isfinite(res.best_iterations) and not res.at_edge
    assert (res.diverged[res.grid > 2.0 / 5000] > 0).all()  # unstable steps were seen diverging
    assert res.gaps.shape == (20_001,)
    # the choice is the best of the grid under the stated criterion
    assert res.best_iterations == np.nanmin(np.where(res.diverged < 0, res.iterations, np.inf))


def test_tuning_reports_edge_and_all_divergent_grids():
    problem = quadlab.make_problem("hetero")
    w0 = problem.initial_points(seed=0)
    res = quadlab.tune_lr(problem, "gd", w0=w0, steps=100, grid=[1e-7, 1e-6])
    assert res.at_edge and res.lr == 1e-6  # neither reaches tol: the smaller final gap wins
    with pytest.raises(ValueError, match="diverged"):
        quadlab.tune_lr(problem, "gd", w0=w0, steps=200, grid=[1e-2, 1e-1])


@pytest.mark.parametrize("optimizer", ["gd", "blockwise-gd", "adam", "sign-gd"])
def test_default_grid_is_centred_on_the_reference_step(optimizer):
    problem = quadlab.make_problem("transformer")
    w0 = problem.initial_points(seed=0)
    ref = reference_step(problem, optimizer, w0=w0, steps=1000)
    grid = default_grid(problem, optimizer, w0=w0, steps=1000)
    assert grid[0] == pytest.approx(1e-3 * ref) and grid[-1] == pytest.approx(10 * ref)
    assert np.all(np.diff(np.log(grid)) > 0)
