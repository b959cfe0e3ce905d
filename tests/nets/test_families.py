"""The model-size ladder: sizes, seeded builds on real data, exact Hessians at a tiny size."""

import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian
from torch.func import functional_call

import nets
from nets.engine.exact import dense_hessian
from nets.zoo import families as fam
from nets.zoo import realdata


def _have_texts() -> bool:
    try:
        realdata.shakespeare_text()
    except ValueError:
        return False
    return True


_TEXT_FAMILIES = {"gpt", "bert"}  # word LMs on Shakespeare (installed by `make data`)


def rung_dense_reference(model, loss_fn, rung, *, vectorize: bool = False):
    """A rung's 6 spectrum samples as two batches of 3, and the dense Hessian of their mean loss
    over the flattened parameters by torch's reverse-over-reverse ``hessian`` (independent of
    the engine). Returns ``(data, names, shapes, H)``."""
    x, y = fam.rung_data(rung, "spectrum", 6)
    x = x.double() if x.is_floating_point() else x
    data = [(x[:3], y[:3]), (x[3:], y[3:])]
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        parts = torch.split(flat, [math.prod(s) for s in shapes])
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return sum(loss_fn(functional_call(model, params, (xb,)), yb) for xb, yb in data) / 2

    return data, names, shapes, hessian(loss, flat0, vectorize=vectorize).numpy()


@pytest.mark.parametrize("family", fam.FAMILIES)
def test_ladder_profile_spans_two_decades_up_to_about_a_million(family):
    counts = [fam.parameter_count(r) for r in fam.ladder(family, "ladder")]
    assert len(counts) >= 4 and counts == sorted(counts)
    assert counts[-1] / counts[0] >= 100
    assert counts[0] <= 30_000 and 5e5 <= counts[-1] <= 1.5e6
    gpu = fam.parameter_count(fam.ladder(family, "gpu")[0])
    assert gpu > 4 * counts[-1]


def test_gpu_profile_has_the_papers_sizes():
    assert fam.parameter_count(fam.ladder("gpt", "gpu")[0]) > 1e8       # GPT-2 small: 124M
    assert 1e7 < fam.parameter_count(fam.ladder("resnet", "gpu")[0]) < 1.3e7  # ResNet-18: 11M
    assert 2e7 < fam.parameter_count(fam.ladder("vit", "gpu")[0]) < 2.5e7     # ViT-S: 22M


def test_bad_names():
    with pytest.raises(ValueError, match="unknown family"):
        fam.ladder("alexnet")
    with pytest.raises(ValueError, match="unknown ladder profile"):
        fam.ladder("gpt", "huge")
    with pytest.raises(TypeError, match="Rung"):
        fam.build_rung("gpt")


@pytest.mark.parametrize("family", fam.FAMILIES)
def test_build_is_seeded_and_starts_at_chance_loss(family):
    if family in _TEXT_FAMILIES and not _have_texts():
        pytest.skip("Shakespeare not installed: make data")
    rung = fam.ladder(family, "ladder")[0]
    m1, loss_fn = fam.build_rung(rung, seed=0)
    m2, _ = fam.build_rung(rung, seed=0)
    m3, _ = fam.build_rung(rung, seed=1)
    assert not m1.training
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(m1.parameters(), m3.parameters(),
                                                     strict=True))
    x, y = fam.rung_data(rung, "spectrum", 16)
    with torch.no_grad():
        loss = float(loss_fn(m1(x), y))
    classes = rung.vocab or 10
    assert math.isfinite(loss) and abs(loss - math.log(classes)) < 0.35 * math.log(classes)


@pytest.mark.slow
@pytest.mark.parametrize("family", fam.FAMILIES)
def test_exact_hessian_of_tiny_rung_matches_an_independent_reference(family):
    """nets.engine.exact's dense Hessian = torch.func.hessian of the flat-parameter loss, and
    SLQ with as many Lanczos steps as a block's dimension finds its exact extreme eigenvalues."""
    rung = fam.ladder(family, "tiny")[0]
    model, loss_fn = fam.build_rung(rung, seed=0, dtype=torch.float64)
    data, names, shapes, ref = rung_dense_reference(model, loss_fn, rung)
    h = dense_hessian(model, loss_fn, data)
    scale = np.abs(ref).max()
    assert scale > 0 and np.abs(h - ref).max() <= 1e-9 * scale
    # blocks whose exact Hessian is identically zero (attention key biases: softmax ignores a
    # shift shared by all keys; the mixer's token-MLP output bias) are left out: the engine's
    # forward/reverse cross-check refuses an all-zero block
    ends = np.cumsum([math.prod(sh) for sh in shapes])
    live = {n: n for n, e, sz in zip(names, ends, [math.prod(sh) for sh in shapes], strict=True)
            if np.abs(ref[e - sz:e, e - sz:e]).max() > 1e-12 * scale}
    exact = nets.exact_blockwise_eigenvalues(model, loss_fn, data, live)
    big = max((k for k in exact if exact[k].size <= 64), key=lambda k: exact[k].size)
    dim = exact[big].size
    spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=dim, probes=1,
                                      seed=0, blocks={big: big})
    lo, hi = spectra[big].extreme_eigenvalues()
    tol = 1e-6 * np.abs(exact[big]).max()
    assert abs(hi - exact[big][-1]) <= tol and abs(lo - exact[big][0]) <= tol
