"""``nets ladder --family module:function``: a user's family factory, one model per size index.

The factories live in this module and are named by their import path
(``tests.nets.test_ladder_factory:family``), as a user names theirs.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import nets
from nets.cli.app import main
from nets.studies.ladder import run_ladder
from nets.zoo import resolve_family_size

SPEC = "tests.nets.test_ladder_factory:family"
WIDTHS = (3, 6)


def family(size: int, seed: int = 0):
    """A two-layer tanh MLP on 4 features whose hidden width grows with ``size``."""
    if size >= len(WIDTHS):
        raise IndexError(f"this family has {len(WIDTHS)} sizes")
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, WIDTHS[size]), nn.Tanh(), nn.Linear(WIDTHS[size], 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(16, 4, generator=g)
    y = torch.randn(16, 2, generator=g)
    return model.double(), nn.functional.mse_loss, [(x[:8].double(), y[:8].double()),
                                                    (x[8:].double(), y[8:].double())]


def no_size():
    """Not a family factory: takes no size index."""
    return family(0)


def test_resolve_family_size_builds_each_size_and_seed():
    m0, _, d0 = resolve_family_size(SPEC, 0, device="cpu")
    m1, _, _ = resolve_family_size(SPEC, 1, device="cpu")
    assert m0[0].out_features == 3 and m1[0].out_features == 6
    a = resolve_family_size(SPEC, 0, seed=5, device="cpu")[0]
    assert not torch.equal(a[0].weight, m0[0].weight)
    assert torch.equal(resolve_family_size(SPEC, 0, seed=5, device="cpu")[0][0].weight,
                       a[0].weight)
    assert len(d0) == 2 and d0[0][0].dtype == torch.float64


def test_resolve_family_size_refusals():
    with pytest.raises(TypeError, match=r"def family\(size: int"):
        resolve_family_size("tests.nets.test_ladder_factory:no_size", 0, device="cpu")
    with pytest.raises(ValueError, match="at size 7"):
        resolve_family_size(SPEC, 7, device="cpu")
    with pytest.raises(TypeError, match="size"):
        resolve_family_size(SPEC, -1, device="cpu")


def test_ladder_cli_runs_a_factory_family(tmp_path, capsys):
    argv = ["ladder", "--family", SPEC, "--profile", "tiny", "--sizes", "0", "1", "--no-gap",
            "--json", "--quiet", "--cache", str(tmp_path)]
    assert main(argv) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [(r["family"], r["size"], r["name"]) for r in recs] == [
        (SPEC, 0, f"{SPEC}[0]"), (SPEC, 1, f"{SPEC}[1]")]
    for r, w in zip(recs, WIDTHS, strict=True):
        assert r["parameters"] == 4 * w + w + 2 * w + 2 and r["blocks"] == 4
        assert r["gap"] is None and "factory" in r["gap_skipped"]
        assert 0 <= r["js0"]["log"]["low"] <= r["js0"]["log"]["value"] <= \
            r["js0"]["log"]["high"] <= 1
    # the record's JS0 is the engine's JS0 on the factory's model and batches
    model, loss_fn, data = family(0)
    spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=6, probes=3, seed=0)
    assert math.isclose(recs[0]["js0"]["log"]["value"], nets.js0(spectra), rel_tol=1e-9)
    # --model-seed reaches the factory: another model, another record
    assert main([*argv, "--model-seed", "3"]) == 0
    seeded = json.loads(capsys.readouterr().out)
    assert seeded[0]["js0"]["log"]["value"] != recs[0]["js0"]["log"]["value"]


def test_ladder_cli_refuses_a_bad_factory_family(capsys):
    base = ["ladder", "--profile", "tiny", "--quiet", "--no-gap", "--sizes", "0"]
    assert main([*base, "--family", "tests.nets.test_ladder_factory:no_size"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "def family(size: int" in err
    assert main(["ladder", "--profile", "tiny", "--quiet", "--sizes", "0",
                 "--family", SPEC]) == 2  # gap asked of a factory family
    assert "--no-gap" in capsys.readouterr().err
    assert main(["ladder", "--profile", "tiny", "--quiet", "--no-gap",
                 "--family", SPEC]) == 2  # no sizes
    assert "--sizes" in capsys.readouterr().err
    assert main([*base, "--family", "mlp", "--model-seed", "2"]) == 2
    assert "model seed 0" in capsys.readouterr().err


def test_run_ladder_factory_family_rejects_gap():
    with pytest.raises(ValueError, match="gap=False"):
        run_ladder(SPEC, "tiny", sizes=[0])


FILE_FAMILY = """
import torch
from torch import nn

def family(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 2 + size), nn.Tanh(), nn.Linear(2 + size, 1))
    x, y = torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)
    return model, lambda out, t: SCALE * ((out - t) ** 2).mean(), [(x, y)]
"""


def test_factory_record_cache_follows_the_factory_source(tmp_path):
    """Editing the factory's loss (not in the model/data fingerprint) makes a new cache entry."""
    from nets.studies.ladder import LADDER_PROFILES, factory_record

    src = tmp_path / "fam.py"
    cache = tmp_path / "cache"
    profile = LADDER_PROFILES["tiny"]
    for scale in ("1.0", "1.0", "3.0"):
        src.write_text(FILE_FAMILY.replace("SCALE", scale))
        factory_record(f"{src}:family", 0, profile, cache_dir=cache)
    assert len(list(cache.rglob("ladder-spectra-*"))) == 2
