"""Post-LN / Pre-LN / Admin: models, Admin profiling, output-change growth, scaled MLP."""

import math

import numpy as np
import pytest
import torch

import nets.cli.app as cli
from nets.studies.layernorm import fit_growth, perturbation_study
from nets.studies.pools import first_batches
from nets.studies.tasks import scaled_mlp_task
from nets.zoo.ln_transformer import admin_profile, ln_transformer
from nets.zoo.scaled_mlp import layer_scales, scaled_mlp


def test_post_ln_output_change_grows_faster_than_pre_ln():
    st = perturbation_study((1, 2, 4), variants=("postln", "preln"), seeds=(0,), draws=1)
    post, pre = np.array(st.random["postln"]), np.array(st.random["preln"])
    assert np.all(post > 0) and np.all(pre > 0)
    # growth from the shallowest to the deepest model
    assert post[-1] / post[0] > pre[-1] / pre[0]
    assert st.fits_random["postln"].exponent > st.fits_random["preln"].exponent
    assert st.fits_adam["postln"].exponent > st.fits_adam["preln"].exponent


def test_admin_profile_sets_omega_from_branch_variances():
    batch = first_batches("charlm")[0]
    model, _ = ln_transformer("admin", 3, seed=0, profile_batch=batch)
    v = admin_profile(model, batch[0])
    assert v.shape == (1 + 6,) and np.all(v > 0)
    for i, w in enumerate(model.omega):
        assert torch.allclose(w, torch.full_like(w, math.sqrt(v[: i + 1].sum())))
    # with ω_i² = Σ_{j<i} v_j, branch i's share of its LN input is about v_i / Σ_{j≤i} v_j
    assert model.omega[-1][0] > model.omega[0][0]
    with pytest.raises(ValueError, match="profiling batch"):
        ln_transformer("admin", 2)
    with pytest.raises(ValueError, match="admin"):
        admin_profile(ln_transformer("postln", 2)[0], batch[0])


def test_ln_models_are_deterministic_and_differ():
    batch = first_batches("charlm")[0]
    outs = {}
    for v in ("postln", "preln", "admin"):
        m1, loss = ln_transformer(v, 2, seed=3, profile_batch=batch)
        m2, _ = ln_transformer(v, 2, seed=3, profile_batch=batch)
        o1, o2 = m1(batch[0]), m2(batch[0])
        assert torch.equal(o1, o2)
        assert math.isfinite(float(loss(o1, batch[1]).detach()))
        outs[v] = o1
    assert not torch.allclose(outs["postln"], outs["preln"])
    with pytest.raises(ValueError, match="variant"):
        ln_transformer("sandwich", 2)


def test_fit_growth():
    n = np.array([2, 4, 8, 16])
    f = fit_growth(n, 0.1 * n)
    assert f.exponent == pytest.approx(1.0) and f.r2_linear == pytest.approx(1.0)
    g = fit_growth(n, 1 + np.log(n))
    assert g.r2_log == pytest.approx(1.0) and g.exponent < 0.5
    with pytest.raises(ValueError, match="positive"):
        fit_growth(n, [1, 0, 1, 1])


def test_scaled_mlp_same_function_scaled_curvature():
    x, _ = first_batches("digits")[0]
    m1, _ = scaled_mlp(1.0, seed=0)
    m10, _ = scaled_mlp(10.0, seed=0)
    torch.testing.assert_close(m1(x), m10(x), rtol=1e-4, atol=1e-5)  # same function at init
    assert layer_scales(10.0, 4) == pytest.approx((0.1, 10 ** (-1 / 3), 10 ** (1 / 3), 10.0))
    # the gradient of W_l is c_l times the gradient in the effective weights
    y = torch.arange(len(x)) % 10
    g = []
    for m in (m1, m10):
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        g.append([lin.weight.grad.norm().item() for lin in m.layers])
    ratio = np.array(g[1]) / np.array(g[0])
    np.testing.assert_allclose(ratio, layer_scales(10.0), rtol=1e-3)
    with pytest.raises(ValueError, match="S must be"):
        layer_scales(0.5)
    assert scaled_mlp_task(3).description.startswith("4-layer MLP")


def test_lnstudy_cli(capsys):
    assert cli.main(["lnstudy", "--depths", "1", "2", "3", "--seeds", "1", "--draws", "1",
                     "--variants", "postln", "preln", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "postln" in out and "preln" in out
