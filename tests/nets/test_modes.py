"""``auto``'s rules (:mod:`nets.engine.modes`) on hand-set inputs: which product modes its
calibration tries (:func:`auto_skip`, each reason, and the plan's candidates erring towards
trying), and the check that the modes' products agree (:func:`check_agreement`)."""

from __future__ import annotations

import warnings

import pytest
import torch

import nets
from nets.engine.blocks import full_block
from nets.engine.hvp import BlockHVP
from nets.engine.modes import (
    FORWARD_MIN_TANGENTS,
    FORWARD_MIN_TANGENTS_CPU,
    ZERO_PADDED_MAX_BLOCKS,
    auto_skip,
    check_agreement,
    compute_dtype,
)

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def _why(mode, device=CPU, blocks=4, unpadded=False, tangents=100, chunk_size=None,
         per_bundle=None):
    return auto_skip(mode, device=device, blocks=blocks, unpadded=unpadded, tangents=tangents,
                     chunk_size=chunk_size, per_bundle=per_bundle)


def test_the_block_restricted_product_is_always_tried():
    for kw in ({}, {"blocks": 1, "unpadded": True, "tangents": 1, "chunk_size": 1},
               {"blocks": 100, "device": GPU}):
        assert _why("reverse-block", **kw) is None


def test_bundles_need_several_blocks_per_bundle_and_an_accelerator():
    assert _why("reverse-bundle", blocks=1) == "one block: nothing to bundle"
    assert _why("reverse-bundle", per_bundle=1, device=GPU).startswith("one block per bundle")
    assert _why("reverse-bundle", per_bundle=4).startswith("not tried on a CPU")
    assert _why("reverse-bundle", per_bundle=4, device=GPU) is None
    assert _why("reverse-bundle", device=GPU) is None  # bundles not known yet: may run


@pytest.mark.parametrize("device, least", [(CPU, FORWARD_MIN_TANGENTS_CPU),
                                           (GPU, FORWARD_MIN_TANGENTS)])
def test_forward_over_reverse_needs_enough_tangents_per_vmap(device, least):
    assert _why("forward", device, tangents=least) is None
    assert _why("forward", device, tangents=least - 1) == (
        f"{least - 1} < {least} tangents on {device.type}")
    assert _why("forward", device, tangents=10 * least, chunk_size=least - 1) == (
        f"{least - 1} tangents per product (chunk_size {least - 1}) < {least} on "
        f"{device.type}")


def test_zero_padded_modes_need_few_blocks_and_something_to_pad():
    many = ZERO_PADDED_MAX_BLOCKS
    assert _why("reverse", blocks=many) == f"{many} >= {many} blocks"
    assert _why("forward", blocks=many) == f"{many} >= {many} blocks"
    assert _why("reverse", blocks=many - 1) is None
    assert _why("reverse", chunk_size=1).startswith("one tangent per product")
    assert _why("reverse", tangents=1) is None  # chunks not planned yet: may run
    assert _why("reverse", blocks=1, unpadded=True).startswith("every block is whole tensors")


def _agree(products, choice="reverse-block", vectors=None, dtype=torch.float64):
    """Run the agreement check on hand-set products of two blocks, ``a`` and ``b``."""
    vectors = vectors or [torch.ones(1, 2, dtype=dtype), torch.ones(1, 2, dtype=dtype)]
    check_agreement(products, choice, ["a", "b"], vectors, dtype)


def _stack(*values, dtype=torch.float64):
    return torch.tensor([values], dtype=dtype)


def test_products_equal_to_round_off_agree_and_a_difference_beyond_it_is_named():
    eps = torch.finfo(torch.float64).eps
    ref = [_stack(1.0, 2.0), _stack(3.0, -4.0)]
    close = [_stack(1.0 + 10 * eps, 2.0), _stack(3.0, -4.0 * (1 + 10 * eps))]
    _agree({"reverse-block": ref, "forward": close})
    far = [_stack(1.0, 2.0), _stack(3.0, -4.0 * (1 + 1e-6))]
    with pytest.raises(ValueError, match="modes 'reverse-block' and 'forward' in block 'b'"):
        _agree({"reverse-block": ref, "forward": far})


def test_a_block_is_compared_at_the_hessians_scale_not_its_own():
    # block b's Hessian is zero (an attention key bias): its products are round-off of the
    # largest block's scale and agree however different they are relative to themselves
    ref = [_stack(1e3, 0.0), _stack(1e-12, 0.0)]
    other = [_stack(1e3, 0.0), _stack(-1e-12, 3e-12)]
    _agree({"reverse-block": ref, "reverse": other})
    # ... but not a difference at a hundredth of the largest block's scale
    with pytest.raises(ValueError, match="in block 'b'"):
        _agree({"reverse-block": ref, "reverse": [_stack(1e3, 0.0), _stack(10.0, 0.0)]})


def test_a_block_alone_is_compared_at_the_tangents_scale():
    # no other block gives a scale: products below sqrt(eps) * max|v| are round-off
    ones = [torch.ones(1, 2, dtype=torch.float64)]
    tiny = float(torch.finfo(torch.float64).eps)
    check_agreement({"reverse-block": [_stack(tiny, 0.0)], "forward": [_stack(0.0, tiny)]},
                    "reverse-block", ["a"], ones, torch.float64)
    with pytest.raises(ValueError, match="disagree"):
        check_agreement({"reverse-block": [_stack(1e-3, 0.0)], "forward": [_stack(0.0, 0.0)]},
                        "reverse-block", ["a"], ones, torch.float64)


def test_the_tolerance_follows_the_dtype():
    ref = [_stack(1.0, 2.0, dtype=torch.float32), _stack(3.0, 4.0, dtype=torch.float32)]
    off = [_stack(1.0 + 1e-4, 2.0, dtype=torch.float32), _stack(3.0, 4.0, dtype=torch.float32)]
    ones = [torch.ones(1, 2), torch.ones(1, 2)]
    _agree({"reverse-block": ref, "forward": off}, vectors=ones, dtype=torch.float32)
    with pytest.raises(ValueError, match="disagree"):  # 1e-4 is far beyond float64 round-off
        _agree({"reverse-block": [r.double() for r in ref],
                "forward": [o.double() for o in off]})


def test_the_compute_dtype_is_the_coarsest_seen():
    assert compute_dtype(torch.float64) == torch.float64
    assert compute_dtype(torch.float64, {torch.float64, torch.float32}) == torch.float32
    assert compute_dtype(torch.float32, [torch.float64]) == torch.float32
    assert compute_dtype(torch.float32, [torch.bfloat16, torch.float16]) == torch.bfloat16


def test_the_tolerance_follows_the_precision_the_model_computes_in():
    """float64 products of a model that computes in float32 agree to float32's round-off: a
    difference of 1e-5 passes there, and is still refused where the model computes in float64,
    with a message that names the coarser precision only where it set the tolerance."""
    ref = [_stack(1.0, 2.0), _stack(3.0, 4.0)]
    off = [_stack(1.0 + 1e-5, 2.0), _stack(3.0, 4.0)]
    check_agreement({"reverse-block": ref, "forward": off}, "reverse-block", ["a", "b"],
                    [torch.ones(1, 2, dtype=torch.float64)] * 2, torch.float64, torch.float32)
    with pytest.raises(ValueError, match=r"1e-07\): the model") as err:
        check_agreement({"reverse-block": ref, "forward": off}, "reverse-block", ["a", "b"],
                        [torch.ones(1, 2, dtype=torch.float64)] * 2, torch.float64,
                        torch.float64)
    assert "computes" not in str(err.value)
    far = [_stack(1.0 + 1e-2, 2.0), _stack(3.0, 4.0)]
    with pytest.raises(ValueError, match="the tolerance of float32, in which part of the model "
                                         "computes"):
        check_agreement({"reverse-block": ref, "forward": far}, "reverse-block", ["a", "b"],
                        [torch.ones(1, 2, dtype=torch.float64)] * 2, torch.float64,
                        torch.float32)


class _HalfInside(torch.nn.Module):
    """A float64 MLP whose hidden activation computes in bfloat16."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(6, 5, dtype=torch.float64)
        self.l2 = torch.nn.Linear(5, 2, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.tanh(self.l1(x).to(torch.bfloat16)).to(torch.float64))


def test_a_model_computing_in_lower_precision_inside_passes_the_calibration():
    """The calibration reads the coarsest dtype off the model's graph and checks agreement to
    its round-off: the dense Hessian of a float64 model with a bfloat16 activation (47
    parameters, so ``auto`` tries forward-over-reverse against the double backward) is
    computed, not refused for a disagreement of bfloat16's round-off (as it was when the
    tolerance was float64's), and equals the double-backward reference to that round-off."""
    torch.manual_seed(0)
    model = _HalfInside()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (5,), generator=g)
    data = [(x, y)]
    loss_fn = torch.nn.functional.cross_entropy
    op = BlockHVP(model, loss_fn, data, [full_block(model)])
    assert op.compute_dtype == torch.bfloat16
    eye = torch.eye(47, dtype=torch.float64)
    (h,) = op([eye])
    assert set(op.info()["calibration"]["seconds"]) == {"forward", "reverse-block"}
    assert op.info()["compute_dtype"] == "bfloat16"
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def loss(w):
        tensors = dict(zip([n for n, _ in model.named_parameters()],
                           (t.reshape(s) for t, s in zip(w.split([s.numel() for s in shapes]),
                                                         shapes, strict=True)), strict=True))
        return loss_fn(torch.func.functional_call(model, tensors, (x,)), y)

    ref = torch.autograd.functional.hessian(loss, flat)
    scale = float(ref.abs().max())
    assert float((h - ref).abs().max()) <= 5e-2 * scale
    # the two modes differ by bfloat16's round-off: far beyond float64's tolerance (10 sqrt(eps))
    (forward,) = BlockHVP(model, loss_fn, data, [full_block(model)], mode="forward")([eye])
    assert 1e-6 * scale < float((forward - ref).abs().max()) <= 5e-2 * scale
    ref = [_stack(1.0, 2.0), None]
    _agree({"reverse-block": ref, "forward": [_stack(1.0, 2.0), None]},
           vectors=[torch.ones(1, 2, dtype=torch.float64), None])
    with pytest.raises(ValueError, match="non-finite Hessian-vector product in block 'a'"):
        _agree({"reverse-block": ref, "forward": [_stack(float("nan"), 2.0), None]},
               vectors=[torch.ones(1, 2, dtype=torch.float64), None])


def test_an_autocast_context_is_named_by_the_precision_warning():
    """A float32 model's spectrum under the caller's ``torch.autocast(bfloat16)`` is computed
    in bfloat16 (what the caller asked for): the products' graph says so
    (``info["compute_dtype"]``) and the precision warning names that dtype and autocast."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 6, generator=g), torch.randint(0, 2, (8,), generator=g))]
    info: dict = {}
    with pytest.warns(UserWarning, match=r"computes in bfloat16.*autocast"), torch.autocast(
            "cpu", dtype=torch.bfloat16):
        nets.full_spectrum(model, torch.nn.functional.cross_entropy, data, lanczos_steps=8,
                           info=info)
    assert info["compute_dtype"] == "bfloat16"
    with warnings.catch_warnings():  # the same model outside autocast: float32, no warning
        warnings.simplefilter("error", UserWarning)
        nets.full_spectrum(model, torch.nn.functional.cross_entropy, data, lanczos_steps=8,
                           info=info)
    assert info["compute_dtype"] == "float32"
