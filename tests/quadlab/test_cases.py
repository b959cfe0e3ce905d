import numpy as np
import pytest

import quadlab
from quadlab.cases import HETERO_SPECTRA, HOMO_SPECTRA, haar_orthogonal


@pytest.mark.parametrize("case", quadlab.CASES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_case_has_kappa_5000_exactly(case, seed):
    p = quadlab.make_problem(case, seed=seed)
    lam = p.all_eigenvalues
    assert lam[-1] / lam[0] == pytest.approx(5000.0, rel=1e-14)
    # the dense blocks carry those eigenvalues (up to eigensolver round-off)
    dense = np.sort(np.linalg.eigvalsh(p.hessian()))
    np.testing.assert_allclose(dense, lam, rtol=1e-9, atol=1e-9 * lam[-1])


def test_hetero_and_homo_have_the_papers_blocks():
    het, hom = quadlab.make_problem("hetero"), quadlab.make_problem("homo")
    for p, spec in ((het, HETERO_SPECTRA), (hom, HOMO_SPECTRA)):
        assert p.block_sizes == (3, 3, 3)
        for lam, want in zip(p.eigenvalues, spec, strict=True):
            np.testing.assert_array_equal(lam, sorted(want))
    np.testing.assert_array_equal(het.all_eigenvalues, hom.all_eigenvalues)
    # blocks are rotated, not diagonal
    assert np.abs(het.blocks[2] - np.diag(np.diag(het.blocks[2]))).max() > 1e-3


@pytest.mark.parametrize("case", ["transformer", "cnn"])
def test_block_count_and_size_options(case):
    p = quadlab.make_problem(case, n_blocks=6, block_size=10, seed=2)
    assert p.block_sizes == (10,) * 6
    assert p.kappa == pytest.approx(5000.0, rel=1e-14)


def test_transformer_blocks_are_heterogeneous_and_cnn_blocks_homogeneous():
    """Block scales (median log-eigenvalue) spread over decades for transformer, not for cnn."""
    for seed in range(5):
        t = quadlab.make_problem("transformer", seed=seed)
        c = quadlab.make_problem("cnn", seed=seed)
        spread_t = np.ptp([np.median(np.log10(lam)) for lam in t.eigenvalues])
        spread_c = np.ptp([np.median(np.log10(lam)) for lam in c.eigenvalues])
        assert spread_t > 1.5 > 0.5 > spread_c
        assert t.kappa_blocks.max() < 5000 / 10  # ill-conditioning comes from across blocks
        assert c.kappa_blocks.min() > 5000 / 20  # each cnn block spans most of the range


def test_seeds_reproduce_and_differ():
    a, b = quadlab.make_problem("cnn", seed=5), quadlab.make_problem("cnn", seed=5)
    np.testing.assert_array_equal(a.blocks[0], b.blocks[0])
    np.testing.assert_array_equal(a.h, b.h)
    c = quadlab.make_problem("cnn", seed=6)
    assert not np.array_equal(a.blocks[0], c.blocks[0])


def test_h_scale_zero_gives_origin_optimum():
    p = quadlab.make_problem("hetero", h_scale=0.0)
    np.testing.assert_array_equal(p.w_star, np.zeros(9))


def test_haar_orthogonal_is_orthogonal_and_unbiased():
    rng = np.random.default_rng(0)
    qs = np.stack([haar_orthogonal(3, rng) for _ in range(4000)])
    np.testing.assert_allclose(qs[0].T @ qs[0], np.eye(3), atol=1e-13)
    # Haar: E[Q] = 0 and E[Q_ij²] = 1/n (4000 samples: s.e. ≈ 0.009 and 0.005)
    assert np.abs(qs.mean(axis=0)).max() < 0.05
    np.testing.assert_allclose((qs**2).mean(axis=0), 1 / 3, atol=0.03)


@pytest.mark.parametrize(
    ("case", "options", "match"),
    [
        ("bert", {}, "unknown case"),
        ("hetero", {"n_blocks": 3}, "unknown option"),
        ("cnn", {"blocks": 3}, "unknown option"),
        ("cnn", {"n_blocks": 0}, "n_blocks"),
        ("transformer", {"block_size": 1}, "block_size"),
        ("hetero", {"h_scale": -1.0}, "h_scale"),
    ],
)
def test_make_problem_rejects_bad_input(case, options, match):
    with pytest.raises(ValueError, match=match):
        quadlab.make_problem(case, **options)


@pytest.mark.parametrize("case", ["transformer", "cnn"])
def test_measured_spectra_variant(case):
    p = quadlab.make_problem(case, spectra="measured", seed=1)
    assert p.block_sizes == (25,) * 4
    assert p.kappa == pytest.approx(5000.0, rel=1e-14)
    # same data file, different rotations per seed; same eigenvalues
    q = quadlab.make_problem(case, spectra="measured", seed=2)
    np.testing.assert_array_equal(p.all_eigenvalues, q.all_eigenvalues)
    assert not np.array_equal(p.blocks[0], q.blocks[0])


def test_measured_transformer_blocks_spread_wider_than_cnn_blocks():
    spread = {c: np.ptp([np.median(np.log10(lam)) for lam in
                         quadlab.make_problem(c, spectra="measured").eigenvalues])
              for c in ("transformer", "cnn")}
    assert spread["transformer"] > spread["cnn"]


def test_measured_spectra_options_are_checked():
    with pytest.raises(ValueError, match="unknown spectra"):
        quadlab.make_problem("cnn", spectra="made-up")
    with pytest.raises(ValueError, match="unknown option"):
        quadlab.make_problem("cnn", spectra="measured", n_blocks=3)
    with pytest.raises(ValueError, match="unknown option"):
        quadlab.make_problem("hetero", spectra="measured")
