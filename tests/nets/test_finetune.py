"""Fine-tuning study pieces: dialect corpus, cached local pretraining, the two tasks."""

import json

import pytest
import torch

import nets.cli.app as cli
import nets.studies.finetune as ft
import nets.studies.pretraining as pre
from nets import zoo
from nets.cli.tasks import task_from_name
from nets.studies.tasks import finetune_task, zoo_task
from nets.studies.training import pool_loss
from nets.zoo.data import VOCAB


def test_dialect_corpus_swaps_letters():
    """The batches are the grammar corpus (seed 500) with every a and o swapped, nothing else."""
    (x, y), = zoo.dialect_lm_batches(n_seq=4, context=32, batch_size=4, seed=0)
    got = ["".join(VOCAB[i] for i in row) for row in x.tolist()]
    plain = zoo.grammar_corpus(4 * 33 + 1, seed=500)
    want = [plain[k * 33:k * 33 + 32] for k in range(4)]
    swap = {"a": "o", "o": "a"}
    assert got == ["".join(swap.get(c, c) for c in w) for w in want]
    assert any("a" in w or "o" in w for w in want)  # the swap changed something
    assert got != want
    assert torch.equal(x[:, 1:], y[:, :-1])  # next-character targets
    assert plain.translate(zoo.DIALECT).translate(zoo.DIALECT) == plain


def test_pretraining_is_cached_and_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NETS_CACHE", str(tmp_path / "not-here"))  # the argument wins
    pre._pretrained_cached.cache_clear()
    calls = []
    real = pre._pretrain
    monkeypatch.setattr(pre, "_pretrain", lambda s, n: (calls.append((s, n)), real(s, n))[1])
    m_ft, loss = pre.finetune_build(0, pretrained=True, steps=15, directory=tmp_path)
    m_0, _ = pre.finetune_build(0, pretrained=False, steps=15, directory=tmp_path)
    assert calls == [(0, 15)]
    assert len(list(tmp_path.glob("pretrain-*.npz"))) == 1
    pre._pretrained_cached.cache_clear()
    again, _ = finetune_task(True, pretrain_steps=15, cache_dir=tmp_path).build(0)
    assert calls == [(0, 15)]  # read back from disk, not retrained
    for a, b in zip(m_ft.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not (tmp_path / "not-here").exists()
    pool = zoo_task("gpt").pool(64)
    assert pool_loss(m_ft, loss, pool) < pool_loss(m_0, loss, pool)  # pretraining helped
    pre._pretrained_cached.cache_clear()


def test_tasks_exist():
    assert finetune_task(True).data_kind == "dialect"
    assert "scratch" in finetune_task(False).description
    assert finetune_task(True).settings == {"task": "finetune", "pretrained": True,
                                            "pretrain_steps": pre.PRETRAIN_STEPS}


@pytest.mark.slow
def test_finetune_cli_quick(tmp_path, capsys):
    assert cli.main(["finetune", "--quick", "--json", "--quiet", "--cache", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["start"] for r in doc["rows"]} == {"from scratch", "fine-tune"}


def test_pretraining_length_is_a_task_setting():
    short = task_from_name("gpt-ft-p15")
    assert short == finetune_task(True, pretrain_steps=15) != finetune_task(True)
    assert short.settings["pretrain_steps"] == 15 and "(15 steps)" in short.description
    assert f"({pre.PRETRAIN_STEPS} steps)" in task_from_name("gpt-ft").description
    with pytest.raises(ValueError, match="only gpt-ft"):
        task_from_name("gpt-dialect-p15")
    with pytest.raises(ValueError, match=">= 1"):
        task_from_name("gpt-ft-p0")
    with pytest.raises(ValueError, match="pretrained=True"):
        finetune_task(False, pretrain_steps=15)
    with pytest.raises(ValueError, match="positive integer"):
        ft.finetune_study("quick", pretrain_steps=0)


def test_pretraining_cache_entry_of_other_data_is_reported_and_recomputed(tmp_path,
                                                                           monkeypatch):
    """The checkpoint carries the fingerprint of the initial GPT and its training pool: a pool
    that changed behind the same key (here shifted tokens) makes the entry stale by name."""
    from labkit.cache import CacheWarning
    from nets.studies.training import Pool

    pre._pretrained_cached.cache_clear()
    first = pre.pretrained_state(0, steps=2, directory=tmp_path)
    (entry,) = tmp_path.glob("pretrain-*.npz")
    real = pre.make_pool

    def other_pool(kind, n):
        p = real(kind, n)
        return Pool(p.inputs.roll(1, dims=0), p.targets.roll(1, dims=0))

    monkeypatch.setattr(pre, "make_pool", other_pool)
    pre._pretrained_cached.cache_clear()
    try:
        with pytest.warns(CacheWarning, match=rf"{entry.name}.*other fingerprint"):
            second = pre.pretrained_state(0, steps=2, directory=tmp_path)
    finally:
        pre._pretrained_cached.cache_clear()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # retrained on the new pool
