"""Tasks are values: typed builders, settings as the identity, names only at the command line."""

import json

import pytest
import torch

from nets.cli.tasks import task_from_name
from nets.studies.gap import train_cached
from nets.studies.tasks import (
    Task,
    finetune_task,
    layernorm_task,
    scaled_mlp_task,
    zoo_task,
)
from nets.studies.training import Pool, TrainConfig

from .test_training import tiny_factory


@pytest.mark.parametrize(("name", "task"), [
    ("gpt", zoo_task("gpt")), ("mlp-s3", scaled_mlp_task(3)), ("mlp-s2.5", scaled_mlp_task(2.5)),
    ("postln12", layernorm_task("postln", 12)), ("admin2", layernorm_task("admin", 2)),
    ("gpt-dialect", finetune_task(False)), ("gpt-ft", finetune_task(True)),
    ("gpt-ft-p15", finetune_task(True, pretrain_steps=15)),
])
def test_cli_names_build_the_same_values(name, task):
    parsed = task_from_name(name)
    assert parsed == task and hash(parsed) == hash(task)
    assert parsed.label == name and parsed.settings == task.settings
    json.dumps(parsed.key())  # the identity is plain JSON
    assert all(isinstance(m, str) and "/" not in m and not m.endswith(".py")
               for m in parsed.modules)


def test_settings_carry_the_parameters():
    assert scaled_mlp_task(3).settings == {"task": "scaled_mlp", "scale": 3.0}
    assert layernorm_task("preln", 4).settings["depth"] == 4
    assert scaled_mlp_task(3) != scaled_mlp_task(10)
    assert layernorm_task("preln", 4) != layernorm_task("postln", 4)
    with pytest.raises(TypeError):
        scaled_mlp_task(3).settings["scale"] = 4.0  # frozen


def test_checkpoint_folder_is_not_part_of_the_identity(tmp_path):
    assert finetune_task(True, cache_dir=tmp_path) == finetune_task(True)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: zoo_task("gpt3"), "unknown zoo model"),
    (lambda: scaled_mlp_task(0.5), "S must be"),
    (lambda: layernorm_task("midln", 3), "variant"),
    (lambda: layernorm_task("preln", 0), "positive integer"),
    (lambda: finetune_task(True, pretrain_steps=0), "positive integer"),
    (lambda: task_from_name("mlp-sx"), "unknown task"),
    (lambda: Task("t", "digits", tiny_factory, list, {}), "settings"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cache_is_keyed_by_settings_not_label(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=g)
    y = (x[:, 0] > 0).long()
    calls = []

    def task(label, scale):
        def build(seed):
            calls.append(label)
            model, loss = tiny_factory(seed)
            with torch.no_grad():
                model[0].weight.mul_(scale)
            return model, loss
        return Task(label, "digits", build, lambda: [(x, y)], {"test": "key", "scale": scale},
                    make_pool=lambda n: Pool(x[:n], y[:n]))

    cfg = TrainConfig("sgd", 0.1, 5, 8, eval_every=5)
    trained = []  # the callback runs only when a run is computed, not read from the cache

    def run(label, scale):
        return train_cached(task(label, scale), cfg, pool_size=32, cache_dir=tmp_path,
                            callback=lambda step, loss: trained.append((label, scale)))

    a = run("a", 1.0)
    assert calls == ["a"] and set(trained) == {("a", 1.0)}  # one build: fingerprint and train
    renamed = run("renamed", 1.0)
    # same settings: reused (the model is built once more, for the fingerprint check only)
    assert calls == ["a", "renamed"] and set(trained) == {("a", 1.0)}
    assert renamed.final_loss == a.final_loss
    other = run("a", 3.0)
    assert set(trained) == {("a", 1.0), ("a", 3.0)} and other.final_loss != a.final_loss
    with pytest.raises(TypeError, match="Task"):
        train_cached("gpt", cfg, pool_size=32, cache_dir=tmp_path)
