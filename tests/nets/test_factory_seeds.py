"""``--model-seed`` reaches a user's factory (a ``seed`` or ``generator`` keyword); a factory
without one refuses any seed but 0 with a clear error, in the library and on the command line."""

import json

import pytest
import torch

import nets.cli.app as cli
import nets.cli.training as cli_training
from nets.cli.tasks import task_from_name
from nets.studies.tasks import factory_task
from nets.zoo.factory import load_model, resolve_model, seed_arguments

SOURCE = '''
import torch
from nets.studies.tasks import Task
from nets.studies.training import Pool


def _mlp(g):
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(8, 3, generator=g)
    y = (x[:, 0] > 0).long()
    return m, torch.nn.functional.cross_entropy, [(x[:4], y[:4]), (x[4:], y[4:])]


def seeded(seed: int = 0):
    return _mlp(torch.Generator().manual_seed(seed))


def with_generator(*, generator=None):
    return _mlp(generator if generator is not None else torch.Generator().manual_seed(0))


def unseeded():
    return _mlp(torch.Generator().manual_seed(0))


def _task(seed):
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(32, 3, generator=g)
    y = (x[:, 0] > 0).long()
    return Task("user", "digits", lambda s: seeded(s)[:2], lambda: [(x[:16], y[:16])],
                {"user": "task"}, make_pool=lambda n: Pool(x[:n], y[:n]))


def task_seeded(seed: int = 0):
    return _task(seed)


def task_unseeded():
    return _task(0)
'''


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "seed_factories.py"
    path.write_text(SOURCE)
    return lambda name: f"{path}:{name}"


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_seed_keyword_gets_the_model_seed(spec):
    m3, _, d3 = resolve_model(spec("seeded"), seed=3, device="cpu")
    m0, _, _ = resolve_model(spec("seeded"), seed=0, device="cpu")
    again, _, d3b = resolve_model(spec("seeded"), seed=3, device="cpu")
    assert _same(_params(m3), _params(again)) and torch.equal(d3[0][0], d3b[0][0])
    assert not _same(_params(m3), _params(m0))


def test_generator_keyword_gets_a_seeded_generator(spec):
    m5, _, _ = load_model(spec("with_generator"), seed=5)
    ref, _, _ = load_model(spec("seeded"), seed=5)  # the same draws from the same generator
    assert _same(_params(m5), _params(ref))
    kw = seed_arguments(lambda *, generator: None, "f", 5)
    assert isinstance(kw["generator"], torch.Generator)
    assert kw["generator"].initial_seed() == 5


def test_factory_without_seed_builds_only_seed_0(spec):
    model, _, _ = resolve_model(spec("unseeded"), seed=0, device="cpu")  # default: fine
    assert isinstance(model, torch.nn.Module)
    load_model(spec("unseeded"))  # no seed asked for: called as it is
    with pytest.raises(ValueError, match=r"--model-seed 4: the factory .*unseeded' takes no "
                       r"seed.*add a 'seed: int = 0' keyword"):
        resolve_model(spec("unseeded"), seed=4, device="cpu")
    with pytest.raises(TypeError, match="non-negative integer"):
        seed_arguments(lambda seed=0: None, "f", -1)


def test_task_factories_get_the_seed_and_key_it(spec):
    t0 = factory_task(spec("task_seeded"), seed=0)
    t2 = factory_task(spec("task_seeded"), seed=2)
    assert t2.settings["factory_seed"] == 2 and t0.settings["factory_seed"] == 0
    assert t0 != t2  # different cache keys
    assert not torch.equal(t0.pool(8).inputs, t2.pool(8).inputs)
    assert "factory_seed" not in factory_task(spec("task_unseeded"), seed=0).settings
    with pytest.raises(ValueError, match="takes no seed"):
        factory_task(spec("task_unseeded"), seed=2)
    with pytest.raises(ValueError, match="only a factory"):
        task_from_name("mlp", model_seed=1)
    assert task_from_name("mlp", model_seed=0) == task_from_name("mlp")


def test_cli_spectrum_seeds_a_factory(spec, tmp_path, capsys):
    common = ["spectrum", "--model", spec("seeded"), "--steps", "3", "--probes", "1", "--quiet",
              "--device", "cpu", "--json", "--blocks", "--hvp-mode", "reverse"]
    # one product mode: --hvp-mode auto picks the fastest by timing, and the modes agree only
    # to round-off
    tops = []
    for seed in ("1", "2", "1"):
        assert cli.main([*common, "--model-seed", seed, "--out",
                         str(tmp_path / f"s{seed}-{len(tops)}.json")]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["settings"]["model_seed"] == int(seed)
        tops.append([b["lambda_max"] for b in doc["blocks"]])
    assert tops[0] == tops[2] and tops[0] != tops[1]


@pytest.mark.parametrize("argv", [
    ["spectrum", "--steps", "2", "--probes", "1", "--quiet"],
    ["js0", "--steps", "2", "--probes", "1", "--quiet"],
    ["advise"],
    ["gap", "--quick", "--quiet"],
])
def test_cli_refuses_a_seed_a_factory_cannot_take(argv, spec, capsys, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("computation started")

    monkeypatch.setattr(cli_training, "measure_gap", boom)
    name = "task_unseeded" if argv[0] == "gap" else "unseeded"
    full = [argv[0], "--model", spec(name), *argv[1:], "--model-seed", "7", "--device", "cpu"]
    assert cli.main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith("nets: error: --model-seed 7: the factory") and err.count("\n") == 1
    assert "add a 'seed: int = 0' keyword" in err


def test_cli_gap_refuses_a_seed_for_built_in_tasks(capsys):
    assert cli.main(["gap", "--model", "mlp", "--model-seed", "3", "--quick", "--quiet"]) == 2
    assert "only a factory module:function takes a model seed" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a seed
        cli.main(["advise", "--model", "mlp", "--model-seed", "-1"])
