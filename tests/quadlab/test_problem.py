import numpy as np
import pytest
from hypothesis import given

import quadlab
from quadlab import strategies as qs
from quadlab.cases import haar_orthogonal


def spd(eigs, seed=0):
    q = haar_orthogonal(len(eigs), np.random.default_rng(seed))
    return (q * np.asarray(eigs, float)) @ q.T


def test_from_blocks_basic_quantities():
    b1, b2 = spd([1.0, 4.0]), spd([10.0, 20.0, 40.0], seed=1)
    h = np.arange(5.0)
    p = quadlab.Problem.from_blocks([b1, b2], h)
    assert p.d == 5 and p.n_blocks == 2 and p.block_sizes == (2, 3)
    np.testing.assert_allclose(p.hessian()[:2, :2], b1)
    assert p.hessian()[0, 3] == 0.0
    assert p.kappa == pytest.approx(40.0, rel=1e-12)
    np.testing.assert_allclose(p.kappa_blocks, [4.0, 4.0], rtol=1e-12)
    np.testing.assert_allclose(p.hessian() @ p.w_star, h, atol=1e-12)
    w = np.ones(5)
    dense_loss = 0.5 * w @ p.hessian() @ w - h @ w
    assert p.loss(w) == pytest.approx(dense_loss, rel=1e-13)
    assert p.gap(w) == pytest.approx(p.loss(w) - p.loss_star, rel=1e-10)
    np.testing.assert_allclose(p.grad(w), p.hessian() @ w - h, atol=1e-12)


@given(qs.problems_with_start())
def test_gap_equals_loss_minus_optimum_and_broadcasts(case):
    p, w0 = case
    ws = np.stack([w0, 2 * w0, p.w_star])
    gaps = p.gap(ws)
    assert gaps.shape == (3,)
    assert gaps[2] == pytest.approx(0.0, abs=1e-20)
    scale = abs(p.loss(ws[:2])).max() + abs(p.loss_star) + 1.0
    np.testing.assert_allclose(gaps[:2], p.loss(ws[:2]) - p.loss_star, atol=1e-10 * scale)
    assert gaps.min() >= 0


def test_from_spectra_keeps_exact_eigenvalues():
    lam = [np.array([3.0, 1.0, 2.0]), np.array([7.0])]
    rng = np.random.default_rng(0)
    p = quadlab.Problem.from_spectra(lam, [haar_orthogonal(3, rng), np.eye(1)])
    np.testing.assert_array_equal(p.eigenvalues[0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.linalg.eigvalsh(p.blocks[0]), [1, 2, 3], rtol=1e-12)
    assert p.kappa == 7.0


@pytest.mark.parametrize(
    ("blocks", "h", "match"),
    [
        ([np.array([[1.0, 2.0], [0.0, 1.0]])], None, "not symmetric"),
        ([np.array([[1.0, 0.0], [0.0, -1.0]])], None, "not positive definite"),
        ([np.array([[1.0, 0.0], [0.0, 0.0]])], None, "not positive definite"),
        ([np.array([[np.nan, 0.0], [0.0, 1.0]])], None, "non-finite"),
        ([np.ones((2, 3))], None, "square"),
        ([np.zeros((2, 2))], None, "zero matrix"),
        ([], None, "at least one block"),
        ([np.eye(2)], np.ones(3), "shape"),
        ([np.eye(2)], np.array([1.0, np.inf]), "non-finite"),
        ([np.eye(2)], np.ones((2, 1)), "dimension"),
    ],
)
def test_from_blocks_rejects_bad_input(blocks, h, match):
    with pytest.raises(ValueError, match=match):
        quadlab.Problem.from_blocks(blocks, h)


def test_from_spectra_rejects_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        quadlab.Problem.from_spectra([np.array([1.0, -1.0])], [np.eye(2)])
    with pytest.raises(ValueError, match="orthonormal"):
        quadlab.Problem.from_spectra([np.array([1.0, 2.0])], [np.ones((2, 2))])
    with pytest.raises(ValueError, match="shape"):
        quadlab.Problem.from_spectra([np.array([1.0, 2.0])], [np.eye(3)])


def test_matvec_and_solve_reject_wrong_shapes():
    p = quadlab.Problem.from_blocks([np.eye(2)])
    with pytest.raises(ValueError, match="last dimension"):
        p.matvec(np.ones(3))
    with pytest.raises(ValueError, match="last dimension"):
        p.solve(np.ones((4, 3)))


def test_problem_arrays_are_read_only():
    p = quadlab.make_problem("hetero")
    with pytest.raises(ValueError):
        p.h[0] = 1.0
    with pytest.raises(ValueError):
        p.blocks[0][0, 0] = 1.0


def test_initial_points_are_seeded_standard_gaussian():
    p = quadlab.make_problem("transformer")
    a = p.initial_points(2000, seed=3)
    np.testing.assert_array_equal(a, p.initial_points(2000, seed=3))
    assert not np.array_equal(a, p.initial_points(2000, seed=4))
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1.0) < 0.01  # 200k samples: s.e. ~0.002
    assert p.initial_points(seed=0).shape == (p.d,)
