"""The properties that make the log recipe the default (see nets.engine.density), on exact
spectra: unrelated blocks do not move JS(a, b); scale differences are heterogeneity; identical
spectra give 0; the paper's simplified heterogeneous blocks score far above their homogeneous
regrouping. The linear and λ-normalized recipes are shown failing the property they fail."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nets

#: How far an unrelated block may move JS(a, b) under the log recipe: the Gaussian sums are
#: exact to far below this, what moves is only the grid's offset against the translated nodes.
INVARIANCE_TOL = 1e-6


def _exact(name, eigenvalues):
    """An exact spectrum as one 'probe': every eigenvalue a node of weight 1/d."""
    e = np.sort(np.asarray(eigenvalues, dtype=np.float64))[None, :]
    d = e.shape[1]
    return nets.BlockSpectrum(name, d, e, np.full(e.shape, 1.0 / d), np.array([d]),
                              np.array([0]))


def _pair_distance(spectra, recipe=None):
    names, d = nets.js_matrix(spectra, recipe)
    return d[names.index("a"), names.index("b")]


@st.composite
def _block(draw, scale, decades=2.0, mixed=True):
    """Eigenvalues with magnitudes in [scale·10^-decades, scale], signs mixed or positive."""
    n = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mag = scale * 10.0 ** rng.uniform(-decades, 0.0, size=n)
    sign = rng.choice([-1.0, 1.0], size=n) if mixed and draw(st.booleans()) else 1.0
    return mag * sign


@st.composite
def _pair_and_other(draw):
    s = 10.0 ** draw(st.floats(-6, 6))
    a = draw(_block(s))
    b = draw(_block(s * 10.0 ** draw(st.floats(-1, 1))))
    # an unrelated block anywhere from 1000× smaller to 1000× larger than a's scale, before and
    # after the rescaling by `factor`
    u = draw(st.floats(-3, 3))
    c = draw(_block(s * 10.0 ** u, decades=4.0))
    factor = 10.0 ** draw(st.floats(-3 - u, 3 - u))
    return a, b, c, factor


@given(_pair_and_other())
def test_log_recipe_unrelated_blocks_do_not_move_the_pair(case):
    """Adding a block 1000× smaller to 1000× larger, or rescaling it, moves JS(a, b) by at most
    INVARIANCE_TOL (as long as a and b stay far above the precision threshold τ)."""
    a, b, c, factor = case
    pair = {"a": _exact("a", a), "b": _exact("b", b)}
    base = _pair_distance(pair)
    with_c = _pair_distance({**pair, "c": _exact("c", c)})
    rescaled = _pair_distance({**pair, "c": _exact("c", c * factor)})
    assert abs(with_c - base) <= INVARIANCE_TOL
    assert abs(rescaled - base) <= INVARIANCE_TOL
    # rescaling the whole model is a pure translation too
    everything = {"a": _exact("a", a * factor), "b": _exact("b", b * factor)}
    assert abs(_pair_distance(everything) - base) <= INVARIANCE_TOL


@given(st.floats(-6, 6), st.data())
def test_log_recipe_a_block_and_its_100x_copy_are_far_apart(log_scale, data):
    """Scale is heterogeneity: spectra spanning at most one decade, copied 100× larger, sit two
    decades (20 σ) apart: JS ≥ 0.99. The λ-normalized recipes cannot see it (JS ≈ 0)."""
    a = data.draw(_block(10.0 ** log_scale, decades=1.0, mixed=False))
    spectra = {"a": _exact("a", a), "b": _exact("b", 100.0 * a)}
    assert _pair_distance(spectra) >= 0.99
    assert _pair_distance(spectra, nets.RECIPES["lambda1"]) <= 1e-6


@given(st.floats(-6, 6), st.data())
def test_identical_spectra_give_zero_under_every_recipe(log_scale, data):
    a = data.draw(_block(10.0 ** log_scale))
    for name, recipe in nets.RECIPES.items():
        if name == "lambda10":
            continue  # needs ≥ 10 eigenvalues (and a positive 10th), tested in test_js
        v = np.abs(a) if name == "lambda1" else a  # λ₁ must be positive to divide by it
        spectra = {"a": _exact("a", v), "b": _exact("b", v.copy())}
        assert _pair_distance(spectra, recipe) == 0.0, name


HETERO = [[1, 2, 3], [99, 100, 101], [4998, 4999, 5000]]
HOMO = [[1, 99, 4998], [2, 100, 4999], [3, 101, 5000]]


def test_paper_simplified_heterogeneous_scores_far_above_homogeneous():
    """The paper's simplified cases (κ = 5000): the heterogeneous blocks differ only in scale.
    Log recipe: JS0 ≈ 1 against ≈ 0.48 for the regrouping (whose blocks still differ by factors
    of 2–3 at the small end, 0.3–0.5 decades = 3–5 σ)."""
    het = nets.js0({f"b{i}": _exact(f"b{i}", v) for i, v in enumerate(HETERO)})
    hom = nets.js0({f"b{i}": _exact(f"b{i}", v) for i, v in enumerate(HOMO)})
    assert het >= 0.999
    assert hom <= 0.5
    assert het - hom >= 0.5


def test_linear_recipe_is_blinded_by_an_unrelated_large_block():
    """The failure that demoted the linear recipe (issue 13): one block 1000× larger squeezes
    two distinct blocks into the same spike at zero."""
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, 1.0, size=20), rng.gamma(1.0, 3.0, size=20)
    big = rng.gamma(2.0, 1.0, size=20) * 1e3
    pair = {"a": _exact("a", a), "b": _exact("b", b)}
    linear = nets.RECIPES["linear"]
    assert _pair_distance(pair, linear) > 0.5
    assert _pair_distance({**pair, "c": _exact("c", big)}, linear) < 0.05
    log_moved = abs(_pair_distance({**pair, "c": _exact("c", big)}) - _pair_distance(pair))
    assert log_moved <= INVARIANCE_TOL


def test_zero_blocks_form_an_atom_and_leave_js0():
    """Eigenvalues below τ = zero_rel·max|λ| count as zero; a numerically zero block (like an
    attention key bias, |λ| ≈ 1e-13 of the model's largest) is excluded from JS0 and named."""
    a, b = np.array([1.0, 2.0, 5.0]), np.array([0.1, 0.3, 3.0])
    spectra = {"a": _exact("a", a), "b": _exact("b", b),
               "kbias": _exact("kbias", [-4e-13, 1e-13, 3e-13])}
    assert nets.numerically_zero_blocks(spectra) == ["kbias"]
    assert nets.js0(spectra) == pytest.approx(nets.js0({k: spectra[k] for k in "ab"}),
                                              abs=INVARIANCE_TOL)
    grid, dens, _ = nets.block_densities(spectra)
    assert grid[np.argmax(dens["kbias"])] == 0.0  # the atom sits at t = 0
    # a threshold looser than the computation's precision would swallow real curvature
    loose = nets.DensityRecipe(zero_rel=0.7)
    assert nets.numerically_zero_blocks(spectra, loose) == ["b", "kbias"]
    with pytest.raises(ValueError, match="two blocks with curvature"):
        nets.js0(spectra, loose)


def test_signed_log_axis():
    t = nets.engine.density.signed_log(np.array([-1e3, -1e-9, 0.0, 1e-9, 1.0, 1e3]), 1e-3)
    np.testing.assert_allclose(t, [-6.0, 0.0, 0.0, 0.0, 3.0, 6.0], atol=1e-12)
    with pytest.raises(ValueError, match="tau"):
        nets.engine.density.signed_log(np.ones(2), 0.0)
