"""``auto``'s rules for which product modes its calibration tries (:func:`auto_skip`), on
hand-set inputs: each reason, and the plan's candidates erring towards trying."""

from __future__ import annotations

import pytest
import torch

from nets.engine.hvp import (
    FORWARD_MIN_TANGENTS,
    FORWARD_MIN_TANGENTS_CPU,
    ZERO_PADDED_MAX_BLOCKS,
    auto_skip,
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
