"""JS distances, JS0, bootstrap and recipe sensitivity, on synthetic spectra."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import t as student_t

import nets
from nets.engine.density import ZERO_REL, ZERO_REL_RESOLVED


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


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_js_matrix_is_scipys_distance_of_each_pair(monkeypatch, chunk):
    """Every entry is scipy's one-pair distance of the two normalized densities (values below
    1e-200 flushed to zero, as the module does), bit for bit, whether the pairs go to scipy all
    at once or in chunks (of one pair, of three)."""
    from nets.engine import js as js_module

    spectra = _random_spectra(np.random.default_rng(5), n_blocks=6)
    if chunk is not None:
        grid, _, _ = nets.block_densities(spectra)
        monkeypatch.setattr(js_module, "PAIR_CHUNK_VALUES", chunk * len(grid))
    names, d = nets.js_matrix(spectra)
    _, dens, _ = nets.block_densities(spectra)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            p, q = (np.where(x / x.sum() < 1e-200, 0.0, x / x.sum())
                    for x in (dens[a], dens[b]))
            want = 0.0 if i == j else float(jensenshannon(p, q, base=2))
            assert d[i, j] == want, (a, b)


def test_js_uses_scipy_distance_on_the_shared_grid():
    spectra = {"a": _spec("a", [0.0, 1.0, 2.0]), "b": _spec("b", [1.0, 5.0, 9.0])}
    for recipe in (nets.DensityRecipe(axis="linear", width=0.02), nets.DensityRecipe()):
        grid, dens, sigma = nets.block_densities(spectra, recipe)
        if recipe.axis == "linear":
            assert sigma == pytest.approx(0.02 * 9.0)
        else:
            assert sigma == 0.1 and np.allclose(np.diff(grid), 0.1 / 8)
        want = jensenshannon(dens["a"], dens["b"], base=2)
        assert nets.js0(spectra, recipe) == pytest.approx(want, rel=1e-12)
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
    for axis, width in (("linear", 0.003), ("linear", 0.01), ("linear", 0.1), ("log", 0.03),
                        ("log", 0.1)):
        _, d = nets.js_matrix(spectra, nets.DensityRecipe(axis=axis, width=width))
        assert np.all(d == 0.0)


def test_identical_and_disjoint_blocks():
    same = {"a": _spec("a", [1.0, 2.0, 3.0]), "b": _spec("b", [1.0, 2.0, 3.0])}
    assert nets.js0(same) == pytest.approx(0.0, abs=1e-7)
    far = {"a": _spec("a", [0.0, 0.1]), "b": _spec("b", [100.0, 100.1])}
    assert nets.js0(far) == pytest.approx(1.0, abs=1e-6)


def _scaled(s, c):
    return nets.BlockSpectrum(s.name, s.dim, s.nodes * c, s.weights, s.n_steps, s.probe_ids)


def test_js_between_is_the_matrix_distance_between_the_two_results():
    rng = np.random.default_rng(3)
    first = _random_spectra(rng)
    second = {k: _scaled(s, 1.0 + 0.05 * i) for i, (k, s) in enumerate(first.items())}
    for recipe in (nets.DensityRecipe(), nets.DensityRecipe(axis="linear")):
        got = nets.js_between(first, second, recipe)
        assert list(got) == list(first)
        union = {**{f"1/{k}": s for k, s in first.items()},
                 **{f"2/{k}": s for k, s in second.items()}}
        names, d = nets.js_matrix(union, recipe)
        for k, v in got.items():
            assert v == pytest.approx(d[names.index(f"1/{k}"), names.index(f"2/{k}")],
                                      rel=1e-12, abs=1e-15)
        assert got["b0"] == 0.0 and got["b3"] > got["b1"] > 0  # 1x, then 1.05x < 1.15x
        back = nets.js_between(second, first, recipe)
        assert all(back[k] == pytest.approx(v, rel=1e-12, abs=1e-15) for k, v in got.items())


def test_js_between_ignores_an_unrelated_block_and_sees_a_rescaled_one():
    """The instrument's invariances on the default (log) axis: a block added to both results
    moves no distance, a block rescaled in one result is seen (10x moves its density by one
    decade, ten kernel widths) and leaves the other blocks' distances at zero."""
    first = _random_spectra(np.random.default_rng(5))
    base = nets.js_between(first, first)
    assert set(base.values()) == {0.0}
    second = dict(first, b2=_scaled(first["b2"], 10.0))
    seen = nets.js_between(first, second)
    assert seen["b2"] > 0.5
    assert all(v == 0.0 for k, v in seen.items() if k != "b2")
    big = _spec("big", [1e3, 2e3, 5e3], probes=6)  # larger than every block: moves τ
    more = nets.js_between({**first, "big": big}, {**second, "big": big})
    assert more.pop("big") == 0.0
    assert more == pytest.approx(seen, rel=1e-9, abs=1e-12)


def test_js_between_leaves_out_blocks_zero_in_both_and_names_mismatches():
    first = _random_spectra(np.random.default_rng(6), n_blocks=3)
    zero = _scaled(first["b0"], 0.0)
    got = nets.js_between({**first, "z": zero}, {**first, "z": zero})
    assert list(got) == ["b0", "b1", "b2"]
    one_sided = nets.js_between({**first, "z": zero}, {**first, "z": first["b1"]})
    assert one_sided["z"] > 0.99  # curvature in one result only: kept, and seen
    with pytest.raises(ValueError, match=r"only in first: \['b2'\], only in second: \[\]"):
        nets.js_between(first, {k: first[k] for k in ("b0", "b1")})
    with pytest.raises(ValueError, match="numerically zero in both"):
        nets.js_between({"z": zero}, {"z": zero})
    with pytest.raises(TypeError, match="second must be a mapping"):
        nets.js_between(first, list(first.values()))


@pytest.mark.parametrize("axis", ["linear", "log"])
def test_scale_invariance_of_recipe(axis):
    """Multiplying every block by c leaves JS0 unchanged: on the linear axis the kernel scales
    with the spread, on the log axis everything translates by log10 c."""
    spectra = _random_spectra(np.random.default_rng(1))
    scaled = {k: nets.BlockSpectrum(s.name, s.dim, s.nodes * 1e-4, s.weights, s.n_steps,
                                    s.probe_ids) for k, s in spectra.items()}
    recipe = nets.DensityRecipe(axis=axis)
    assert nets.js0(scaled, recipe) == pytest.approx(nets.js0(spectra, recipe), rel=1e-9)


def test_lambda10_normalization():
    nodes = np.arange(1.0, 21.0)
    s = _spec("a", nodes)
    assert nets.lambda10(s) == 11.0
    t = _spec("b", nodes * 7.0)
    # normalized by λ10 the two blocks coincide
    assert nets.js0({"a": s, "b": t}, nets.RECIPES["lambda10"]) < 1e-7
    assert nets.js0({"a": s, "b": t}, nets.DensityRecipe(axis="linear")) > 0.3
    assert nets.js0({"a": s, "b": t}) > 0.3  # on the log axis 7× is 0.85 decades apart
    assert nets.kth_largest_eigenvalue(s, 1) == 20.0
    assert nets.js0({"a": s, "b": t}, nets.RECIPES["lambda1"]) < 1e-7
    with pytest.raises(ValueError, match="at least 10"):
        nets.lambda10(_spec("c", np.arange(5.0)))
    with pytest.raises(ValueError, match="not positive"):
        nets.lambda10(_spec("d", -nodes))


def test_bootstrap_is_seeded_and_brackets_the_value():
    spectra = _random_spectra(np.random.default_rng(2))
    a = nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(7))
    b = nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(7))
    assert a == b
    assert a.value == pytest.approx(nets.js0(spectra)) and a.probes == 6
    # the same resamples, drawn by hand: the spread, the bias and the t interval are theirs
    rng = np.random.default_rng(7)
    boots = [nets.js0({k: s.select(rows) for k, s in spectra.items()})
             for rows in (rng.integers(0, 6, size=6) for _ in range(30))]
    assert a.std == pytest.approx(np.std(boots, ddof=1), rel=1e-12)
    assert a.bias == pytest.approx(np.mean(boots) - a.value, rel=1e-9)
    half = student_t.ppf(0.975, 5) * a.std
    assert (a.low, a.high) == pytest.approx((a.value - half, a.value + half), rel=1e-12)
    assert a.low < a.value < a.high and a.std > 0
    assert nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(8)) != a
    with pytest.raises(TypeError, match="Generator"):
        nets.js0_bootstrap(spectra, rng=7)


def test_sensitivity_records():
    spectra = _random_spectra(np.random.default_rng(3))
    recs = nets.js0_sensitivity(spectra, width_factors=(0.5, 1.0))
    fine, coarse = ZERO_REL, ZERO_REL_RESOLVED
    assert [(r["recipe"], r["zero_rel"], r["width"]) for r in recs] == [
        (name, z, w) for name, widths in (("log", (0.05, 0.1)), ("linear", (0.005, 0.01)),
                                          ("lambda1", (0.005, 0.01)),
                                          ("lambda10", (0.005, 0.01)))
        for z in (fine, coarse) for w in widths]
    for r in recs:
        if r["recipe"] == "lambda10":  # 10 steps per probe: λ10 is the smallest Ritz value
            assert r["js0"] is not None
        recipe = nets.DensityRecipe(axis=r["axis"], width=r["width"], normalize=r["normalize"],
                                    zero_rel=r["zero_rel"])
        assert r["js0"] == pytest.approx(nets.js0(spectra, recipe), rel=1e-12)


def test_sensitivity_sees_a_block_at_the_products_roundoff():
    """A block whose eigenvalues lie between the two thresholds (1e-6 of the largest) counts at
    float32's epsilon and is numerically zero, left out, at the coarser threshold: JS0 moves,
    and the coarse value is JS0 without that block."""
    spectra = {"a": _spec("a", [100.0, 200.0, 300.0]), "b": _spec("b", [150.0, 250.0, 350.0]),
               "c": _spec("c", [1e-4, 2e-4, 3e-4])}  # 1e-6 of the largest
    log = {"log": nets.RECIPES["log"]}
    fine, coarse = nets.js0_sensitivity(spectra, recipes=log, width_factors=(1.0,))
    assert (fine["zero_rel"], coarse["zero_rel"]) == (ZERO_REL, ZERO_REL_RESOLVED)
    assert fine["js0"] == pytest.approx(nets.js0(spectra), rel=1e-12)
    without_c = {k: v for k, v in spectra.items() if k != "c"}
    assert coarse["js0"] == pytest.approx(nets.js0(without_c), rel=1e-12)
    assert fine["js0"] - coarse["js0"] > 0.1  # c is far from a and b (close) on the log axis
    # thresholds given explicitly, and a base recipe coarser than the resolved one alone
    recs = nets.js0_sensitivity(spectra, recipes=log, width_factors=(1.0,),
                                zero_rels=(1e-3, 1e-9))
    assert [r["zero_rel"] for r in recs] == [1e-3, 1e-9]
    coarse_base = {"log": nets.DensityRecipe(zero_rel=1e-3)}
    assert [r["zero_rel"] for r in nets.js0_sensitivity(spectra, recipes=coarse_base)] == [1e-3] * 3


@pytest.mark.parametrize("zero_rels, error", [("1e-5", TypeError), ((), TypeError),
                                              ((0.0,), ValueError), ((1e-5, 2.0), ValueError)])
def test_sensitivity_refuses_bad_thresholds(zero_rels, error):
    with pytest.raises(error, match="zero_rel"):
        nets.js0_sensitivity(_random_spectra(np.random.default_rng(1)), zero_rels=zero_rels)


def test_recipe_validation():
    with pytest.raises(ValueError, match="width"):
        nets.DensityRecipe(width=0)
    with pytest.raises(ValueError, match="normalize"):
        nets.DensityRecipe(normalize="max")
    with pytest.raises(ValueError, match="axis"):
        nets.DensityRecipe(axis="sqrt")
    with pytest.raises(ValueError, match="zero_rel"):
        nets.DensityRecipe(zero_rel=0.0)
    with pytest.raises(TypeError):
        nets.DensityRecipe(0.01)  # keyword-only: a bare number was the old linear width
    with pytest.raises(ValueError, match="no curvature"):
        nets.js_matrix({"a": _spec("a", [0.0, 0.0]), "b": _spec("b", [0.0])})
    with pytest.raises(ValueError, match="two blocks"):
        nets.js0({"a": _spec("a", [1.0])})


def test_three_probes_bootstrap_every_resample_once():
    """With 3 probes the 10 distinct resamples are fewer than the resamples asked for: each is
    evaluated once, with its probability, whatever the generator."""
    spectra = _random_spectra(np.random.default_rng(3), probes=3)
    a = nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(7))
    assert a.exact and a.n_boot == 10
    assert nets.js0_bootstrap(spectra, n_boot=30, rng=np.random.default_rng(8)) == a
    rows, weights = nets.probe_resamples(3, 30, np.random.default_rng(0))
    boots = np.array([nets.js0({k: s.select(r) for k, s in spectra.items()}) for r in rows])
    mean = weights @ boots
    assert a.std == pytest.approx(np.sqrt(weights @ (boots - mean) ** 2), rel=1e-12)
    assert a.bias == pytest.approx(mean - a.value, rel=1e-9)
    drawn = nets.js0_bootstrap(spectra, n_boot=9, rng=np.random.default_rng(7))
    assert not drawn.exact and drawn.n_boot == 9
