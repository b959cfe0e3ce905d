"""``--device`` on every training command: one check (``local_device``), the value passed
through the library, CPU runs, and the refusal of ``cuda`` on a torch without CUDA."""

import json

import pytest
import torch

import nets.cli.app as cli
import nets.cli.ladder as cli_ladder
import nets.cli.training as cli_training
import nets.studies.gap as gap
from nets.studies.gap import GapProfile, device_settings, measure_gap
from nets.studies.training import Pool, TrainConfig, train

from .test_gap import tiny_task
from .test_training import tiny_factory

#: Every command that trains or computes with torch, with minimal arguments.
COMMANDS = {
    "gap": ["gap", "--model", "mlp", "--quick", "--quiet"],
    "table1": ["table1", "--tasks", "mlp", "--quick", "--quiet"],
    "hetero": ["hetero", "--quick", "--quiet"],
    "lnstudy": ["lnstudy", "--quiet"],
    "finetune": ["finetune", "--quick", "--quiet"],
    "advise": ["advise", "--model", "mlp"],
    "ladder": ["ladder", "--family", "mlp", "--profile", "tiny", "--quiet"],
}

#: The library function each command hands its device to.
ENTRY = {"gap": (cli_training, "measure_gap"), "table1": (cli_training, "table1"),
         "hetero": (cli_training, "table1"), "lnstudy": (cli_training, "perturbation_study"),
         "finetune": (cli_training, "finetune_study"), "advise": (cli_training, "resolve_model"),
         "ladder": (cli_ladder, "run_ladder")}


class _Stop(ValueError):
    pass


@pytest.fixture
def spies(monkeypatch):
    """Replace every entry point by a spy that records its ``device`` (by function name) and
    stops the command."""
    seen: dict[str, object] = {}

    def spy(name):
        def f(*args, **kwargs):
            seen[name] = kwargs.get("device", "NOT PASSED")
            raise _Stop("stopped by the test")
        return f

    for module, name in set(ENTRY.values()):
        monkeypatch.setattr(module, name, spy(name))
    return seen


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
@pytest.mark.parametrize("value", ["cpu", "auto"])
def test_device_reaches_the_library(cmd, value, spies, capsys):
    assert cli.main([*COMMANDS[cmd], "--device", value]) == 2  # the spy stops it
    assert "stopped by the test" in capsys.readouterr().err
    want = torch.device("cuda", 0) if value == "auto" and torch.cuda.is_available() else \
        torch.device("cpu")
    assert spies[ENTRY[cmd][1]] == want


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_bad_devices_are_refused_like_spectrum(cmd, spies, capsys):
    """The same one-line messages as `nets spectrum` (one helper), exit 2, nothing run."""
    bad = ["bogus", "meta"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"])
    for value in bad:
        assert cli.main(["spectrum", "--model", "mlp", "--device", value, "--quiet"]) == 2
        want = capsys.readouterr().err
        assert cli.main([*COMMANDS[cmd], "--device", value]) == 2
        err = capsys.readouterr().err
        assert err == want and err.count("\n") == 1 and "Traceback" not in err, (cmd, value)
    assert not spies  # refused before anything ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_cuda_on_a_cpu_only_torch_says_what_to_use(capsys):
    assert cli.main([*COMMANDS["gap"], "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nets: error: --device cuda: this torch has no usable CUDA")
    assert "use --device cpu" in err


def test_gap_cli_on_cpu_and_auto_share_results(tmp_path, capsys, monkeypatch):
    """On a CPU-only machine `auto` is the CPU: same numbers, same cache entries (no new file);
    with a GPU, auto's runs are cached apart from the CPU's."""
    q = gap.PROFILES["quick"]
    monkeypatch.setitem(gap.PROFILES, "quick", GapProfile(
        "quick", steps=6, sgd_lrs=q.sgd_lrs[:2], adam_lrs=q.adam_lrs, seeds=q.seeds,
        batch_sizes=(8,), pool_size=q.pool_size, eval_every=3, js_steps=3, js_probes=2))
    argv = ["gap", "--model", "mlp", "--quick", "--json", "--quiet", "--cache", str(tmp_path)]
    assert cli.main([*argv, "--device", "cpu"]) == 0
    cpu = json.loads(capsys.readouterr().out)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main([*argv, "--device", "auto"]) == 0
    auto = json.loads(capsys.readouterr().out)
    if not torch.cuda.is_available():
        assert auto == cpu and sorted(p.name for p in tmp_path.iterdir()) == files
    else:
        assert len(list(tmp_path.iterdir())) > len(files)
        assert auto["js0"] == pytest.approx(cpu["js0"], rel=1e-3)


def test_pool_to_and_training_follow_the_pool_device():
    g = torch.Generator().manual_seed(7)
    pool = Pool(torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g))
    assert pool.to("cpu") is pool and pool.device == torch.device("cpu")
    cfg = TrainConfig("sgd", 0.1, 8, 8, eval_every=4)
    models = []

    def factory(seed):
        model, loss = tiny_factory(seed)
        models.append(model)
        return model, loss

    r = train(factory, pool, cfg)
    assert not r.diverged and all(p.device == pool.device for p in models[0].parameters())


def test_device_settings_key_the_cache():
    assert device_settings("cpu") == {"torch_threads": torch.get_num_threads()}
    assert device_settings(torch.device("cpu")) == device_settings("cpu")
    with pytest.raises(ValueError, match="not a device"):
        device_settings("bogus")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_gap_on_cuda_matches_cpu(tmp_path):
    prof = GapProfile("t", steps=6, sgd_lrs=(0.1,), adam_lrs=(1e-2,), seeds=(0,),
                      batch_sizes=(8,), pool_size=64, eval_every=3, js_steps=4, js_probes=2)
    cpu = measure_gap(tiny_task(), prof, cache_dir=tmp_path / "c", device="cpu")
    gpu = measure_gap(tiny_task(), prof, cache_dir=tmp_path / "g", device="cuda")
    assert gpu.results[0].sgd.final_loss == pytest.approx(cpu.results[0].sgd.final_loss,
                                                          rel=1e-4)
    assert gpu.js0 == pytest.approx(cpu.js0, rel=1e-3)
