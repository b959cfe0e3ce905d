"""The gap harness takes inputs as the engine does: tensors, tuples of tensors, mappings of
keyword tensors (Hugging Face style), and passes the loss whatever the model returns."""

import math

import pytest
import torch

from nets.studies.gap import GapProfile, measure_gap
from nets.studies.tasks import Task
from nets.studies.training import Pool, TrainConfig, pool_loss, train


class KeywordModel(torch.nn.Module):
    """``model(input_ids=..., mask=...)`` -> ``{"logits": ...}`` (a dict output)."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(7, 5, generator=g) * 0.5)
        self.out = torch.nn.Parameter(torch.randn(3, 5, generator=g) * 0.5)

    def forward(self, input_ids, mask):
        h = torch.tanh(self.emb[input_ids]) * mask[..., None]
        return {"logits": h.sum(1) @ self.out.T}


class PositionalModel(KeywordModel):
    """``model(ids, mask)`` -> ``(logits,)`` (a tuple output)."""

    def forward(self, ids, mask):
        return (super().forward(ids, mask)["logits"],)


def _data(n=48, seed=3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 7, (n, 4), generator=g)
    mask = (torch.rand(n, 4, generator=g) > 0.2).float()
    y = ids[:, 0] % 3
    return ids, mask, y


def _dict_loss(out, y):
    return torch.nn.functional.cross_entropy(out["logits"], y)


def _tuple_loss(out, y):
    return torch.nn.functional.cross_entropy(out[0], y)


def test_keyword_tuple_and_tensor_pools_train_to_the_same_numbers():
    ids, mask, y = _data()
    cfg = TrainConfig("adam", 3e-2, 12, 8, seed=1, eval_every=4)
    kw = train(lambda s: (KeywordModel(s), _dict_loss),
               Pool({"input_ids": ids, "mask": mask}, y), cfg)
    pos = train(lambda s: (PositionalModel(s), _tuple_loss), Pool((ids, mask), y), cfg)
    assert not kw.diverged and kw.final_loss < kw.initial_loss
    assert kw.losses.tolist() == pos.losses.tolist()  # same model, same batches
    model = KeywordModel(0)
    with torch.no_grad():
        direct = float(_dict_loss(model(input_ids=ids, mask=mask), y))
    assert pool_loss(model, _dict_loss, Pool({"input_ids": ids, "mask": mask}, y),
                     chunk=20) == pytest.approx(direct, rel=1e-6)


def test_pool_from_datasets_style_batches_and_bad_pools():
    ids, mask, y = _data(8)
    batches = [{"input_ids": ids[:4], "mask": mask[:4], "labels": y[:4]},
               {"input_ids": ids[4:], "mask": mask[4:], "labels": y[4:]}]
    pool = Pool.from_batches(batches)
    assert len(pool) == 8 and torch.equal(pool.inputs["mask"], mask)
    assert torch.equal(pool.targets, y)
    x, t = pool.take(torch.tensor([5, 1]))
    assert torch.equal(x["input_ids"], ids[[5, 1]]) and torch.equal(t, y[[5, 1]])
    with pytest.raises(ValueError, match="as many"):
        Pool({"input_ids": ids, "mask": mask[:3]}, y)
    with pytest.raises(TypeError, match="Pool inputs must be a tensor"):
        Pool([1, 2], y)
    with pytest.raises(TypeError, match="Pool targets"):
        Pool(ids, None)


def test_measure_gap_on_a_keyword_input_task(tmp_path):
    ids, mask, y = _data(64)
    task = Task("kw", "custom", lambda s: (KeywordModel(s), _dict_loss),
                lambda: [({"input_ids": ids[:16], "mask": mask[:16]}, y[:16]),
                         {"input_ids": ids[16:32], "mask": mask[16:32], "labels": y[16:32]}],
                {"test": "keyword inputs"},
                make_pool=lambda n: Pool({"input_ids": ids[:n], "mask": mask[:n]}, y[:n]))
    prof = GapProfile("t", steps=8, sgd_lrs=(0.1, 1.0), adam_lrs=(1e-2, 1e-1), seeds=(0,),
                      batch_sizes=(8,), pool_size=64, eval_every=4, js_steps=4, js_probes=2)
    rep = measure_gap(task, prof, cache_dir=tmp_path)
    assert 0 <= rep.js0 <= 1
    (r,) = rep.results
    assert math.isfinite(r.sgd.final_loss) and math.isfinite(r.adam.final_loss)


def test_hugging_face_bert_with_attention_mask_trains():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=9, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=16,
                                  max_position_embeddings=6, type_vocab_size=1,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def build(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = transformers.BertForMaskedLM(cfg).eval()
        return model, lambda out, labels: torch.nn.functional.cross_entropy(
            out.logits.reshape(-1, 9), labels.reshape(-1), ignore_index=-100)

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 9, (16, 5), generator=g)
    ids[::3, 4] = 0  # padding, masked out
    labels = torch.where(torch.rand(16, 5, generator=g) < 0.3, ids, torch.full_like(ids, -100))
    labels[:, 1] = ids[:, 1]
    pool = Pool({"input_ids": ids, "attention_mask": (ids != 0).long()}, labels)
    r = train(build, pool, TrainConfig("adam", 1e-2, 6, 4, eval_every=3))
    assert not r.diverged and r.final_loss < r.initial_loss
