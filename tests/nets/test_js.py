"""JS distances, JS0, bootstrap and recipe sensitivity, on synthetic spectra."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

import nets


def _spec(name, nodes, probes=4):
    nodes = np.tile(np.sort(np.asarray(nodes, dtype=float)), (probes, 1))
    w = np.full(nodes.shape, 1.0 / nodes.shape[1])
    return nets.BlockSpectrum(name, nodes.shape[1], nodes, w,
                              np.full(probes, nodes.shape[1]), np.arange(probes))


def _random_spectra(rng, n_blocks=4, probes=6, steps=10):
    out = {}
    for b in range(n_blocks):
        nodes = np.sort(rng.gamma(1.0 + b, 1.0 + 3 * b, size=(probes, steps)), axis=1)
        w = rng.dirichlet(np.ones(steps), size=probes)
        out[f"b{b}"] = nets.BlockSpectrum(f"b{b}", 50, nodes, w, np.full(probes, steps),
                                          np.arange(probes))
    return out


def test_js_matrix_properties():
    spectra = _random_spectra(np.random.default_rng(0))
    names, d = nets.js_matrix(spectra)
    assert names == list(spectra)
    np.testing.assert_array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)
    assert np.all((d >= 0) & (d <= 1))
    js = nets.js0(spectra)
    assert js == pytest.approx(d[np.triu_indices(4, 1)].mean(), rel=1e-14)


def test_js_uses_scipy_distance_on_the_shared_grid():
    spectra = {"a": _spec("a", [0.0, 1.0, 2.0]), "b": _spec("b", [1.0, 5.0, 9.0])}
    grid, dens, sigma = nets.block_densities(spectra, nets.DensityRecipe(width=0.02))
    assert sigma == pytest.approx(0.02 * 9.0)
    want = jensenshannon(dens["a"], dens["b"], base=2)
    assert nets.js0(spectra, nets.DensityRecipe(width=0.02)) == pytest.approx(want, rel=1e-12)
    # densities integrate to ~1 on the grid
    for d in dens.values():
        assert np.trapezoid(d, grid) == pytest.approx(1.0, rel=1e-4)  # tails beyond ±4σ


def test_identical_densities_give_zero_not_nan():
    """scipy returns sqrt(negative rounding) = NaN for some identical inputs; we return 0."""
    rng = np.random.default_rng(4)
    nodes = np.sort(rng.standard_normal((3, 30)), axis=1) * 1e-3
    w = rng.dirichlet(np.ones(30), size=3)
    spectra = {k: nets.BlockSpectrum(k, 30, nodes, w, np.full(3, 30), np.arange(3))
               for k in ("a", "b", "c")}
    for width in (0.003, 0.01, 0.1):
        _, d = nets.js_matrix(spectra, nets.DensityRecipe(width=width))
        assert np.all(d == 0.0)


def test_identical_and_disjoint_blocks():
    same = {"a": _spec("a", [1.0, 2.0, 3.0]), "b": _spec("b", [1.0, 2.0, 3.0])}
    assert nets.js0(same) == pytest.approx(0.0, abs=1e-7)
    far = {"a": _spec("a", [0.0, 0.1]), "b": _spec("b", [100.0, 100.1])}
    assert nets.js0(far) == pytest.approx(1.0, abs=1e-6)


def test_scale_invariance_of_recipe():
    """The kernel scales with the spectrum: multiplying all nodes by c leaves JS0 unchanged."""
    spectra = _random_spectra(np.random.default_rng(1))
    scaled = {k: nets.BlockSpectrum(s.name, s.dim, s.nodes * 1e-4, s.weights, s.n_steps,
                                    s.probe_ids) for k, s in spectra.items()}
    assert nets.js0(scaled) == pytest.approx(nets.js0(spectra), rel=1e-9)


def test_lambda10_normalization():
    nodes = np.arange(1.0, 21.0)
    s = _spec("a", nodes)
    assert nets.lambda10(s) == 11.0
    t = _spec("b", nodes * 7.0)
    # normalized by λ10 the two blocks coincide
    assert nets.js0({"a": s, "b": t}, nets.DensityRecipe(normalize="lambda10")) < 1e-7
    assert nets.js0({"a": s, "b": t}) > 0.3
    assert nets.kth_largest_eigenvalue(s, 1) == 20.0
    assert nets.js0({"a": s, "b": t}, nets.DensityRecipe(normalize="lambda1")) < 1e-7
    with pytest.raises(ValueError, match="at least 10"):
        nets.lambda10(_spec("c", np.arange(5.0)))
    with pytest.raises(ValueError, match="not positive"):
        nets.lambda10(_spec("d", -nodes))


def test_bootstrap_is_seeded_and_brackets_the_value():
    spectra = _random_spectra(np.random.default_rng(2))
    a = nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(7))
    b = nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(7))
    assert a == b
    assert a.value == pytest.approx(nets.js0(spectra))
    assert a.std > 0 and a.low <= a.high
    with pytest.raises(TypeError, match="Generator"):
        nets.js0_bootstrap(spectra, rng=7)


def test_sensitivity_records():
    spectra = _random_spectra(np.random.default_rng(3))
    recs = nets.js0_sensitivity(spectra, widths=(0.01, 0.05), grid_sizes=(500,),
                                normalizations=("none",))
    assert [r["width"] for r in recs] == [0.01, 0.05]
    for r in recs:
        assert r["js0"] == pytest.approx(nets.js0(spectra, nets.DensityRecipe(r["width"], 500)))


def test_recipe_validation():
    with pytest.raises(ValueError, match="width"):
        nets.DensityRecipe(width=0)
    with pytest.raises(ValueError, match="normalize"):
        nets.DensityRecipe(normalize="max")
    with pytest.raises(ValueError, match="two blocks"):
        nets.js0({"a": _spec("a", [1.0])})
