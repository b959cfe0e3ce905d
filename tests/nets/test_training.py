"""Training loop: determinism, fixed data order, divergence with its step, bad input."""

import math

import numpy as np
import pytest
import torch

from nets.studies.training import Pool, TrainConfig, TrainResult, batch_order, make_optimizer, train


def tiny_factory(seed: int):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model, torch.nn.functional.cross_entropy


@pytest.fixture
def pool():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(48, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return Pool(x, y)


def test_same_seed_same_curve(pool):
    cfg = TrainConfig("adam", 1e-2, 30, 8, seed=3, data_seed=1, eval_every=10)
    a, b = train(tiny_factory, pool, cfg), train(tiny_factory, pool, cfg)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.eval_losses, b.eval_losses)
    assert list(a.eval_steps) == [0, 10, 20, 30]
    assert a.final_loss == a.eval_losses[-1] < a.initial_loss
    c = train(tiny_factory, pool, TrainConfig("adam", 1e-2, 30, 8, seed=4, data_seed=1))
    assert not np.array_equal(a.losses, c.losses)  # another initialization


def test_data_order_fixed_by_data_seed_only():
    a = batch_order(20, batch_size=6, steps=7, data_seed=5)
    b = batch_order(20, batch_size=6, steps=7, data_seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # one epoch = 3 full batches (tail of 2 dropped), every batch distinct samples
    first_epoch = torch.cat(a[:3])
    assert len(set(first_epoch.tolist())) == 18
    c = batch_order(20, batch_size=6, steps=7, data_seed=6)
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_sgd_and_adam_see_the_same_batches(pool, monkeypatch):
    seen = {}
    for opt in ("sgd", "adam"):
        batches = []

        def factory(seed, batches=batches):
            model, loss = tiny_factory(seed)
            orig = model.forward

            def fwd(x):
                batches.append(x.clone())
                return orig(x)

            model.forward = fwd
            return model, loss

        train(factory, pool, TrainConfig(opt, 1e-2, 5, 8, eval_every=100))
        seen[opt] = [b for b in batches if len(b) == 8]
    assert all(torch.equal(x, y) for x, y in zip(seen["sgd"], seen["adam"], strict=True))


def test_divergence_reported_with_step(pool):
    r = train(tiny_factory, pool, TrainConfig("sgd", 1e4, 50, 8, eval_every=5))
    assert r.diverged and r.diverged_step is not None
    assert 0 <= r.diverged_step < 50
    assert r.final_loss == math.inf
    assert len(r.losses) == r.diverged_step  # curve stops at the diverged step, all finite
    assert np.all(np.isfinite(r.losses)) and np.all(np.isfinite(r.eval_losses))
    back = TrainResult.from_dict(r.to_dict())
    assert back.diverged_step == r.diverged_step and back.config == r.config


def test_nan_loss_is_divergence(pool):
    calls = {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, y)
        return loss * float("nan") if calls["n"] > 4 else loss

    r = train(lambda s: (tiny_factory(s)[0], loss_fn), pool,
              TrainConfig("adam", 1e-3, 20, 8, eval_every=100))
    assert r.diverged and r.diverged_step == 3  # the 1st call is the initial pool loss


def test_bad_input(pool):
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig("lion", 1e-3, 10, 8)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig("sgd", -1.0, 10, 8)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig("sgd", 0.1, 0, 8)
    with pytest.raises(ValueError, match="batch_size"):
        train(tiny_factory, pool, TrainConfig("sgd", 0.1, 3, 100))
    with pytest.raises(ValueError, match="as many"):
        Pool(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(TypeError, match="config"):
        train(tiny_factory, pool, {"optimizer": "sgd"})
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer("sgd", [], lr=0.1)
