"""Fuzz the engine's building blocks: Lanczos, Gauss quadrature, block resolution, HVPs.

As in :mod:`tests.nets.test_fuzz`: each example takes a valid call and replaces one argument by
a malformed value (wrong type, shape or dtype, NaN/inf, extremes); the call must raise a
ValueError/TypeError naming the argument, or return a correct (finite) result — never another
exception, a hang or a silent NaN. Valid calls are checked against dense references.

Errors that the caller's own callables raise (a ``matvec`` given vectors of a width its operator
does not have) propagate unchanged: Lanczos cannot know an operator's dimension.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import nets
from nets.engine.lanczos import LanczosRun, lanczos

from .test_fuzz import COMMON, _finite, malformed_examples, refused_by_name_or_handled

torch.manual_seed(0)  # nothing below draws from it: every tensor comes from a Generator
G = torch.Generator().manual_seed(3)
A = torch.randn(5, 5, generator=G, dtype=torch.float64)
A = A + A.T  # symmetric test operator
STARTS = [torch.randn(2, 5, generator=G, dtype=torch.float64)]


def _matvec(vs):
    return [None if v is None else v @ A for v in vs]


RUN = lanczos(_matvec, STARTS, 5)[0]

MODEL = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                            torch.nn.Linear(4, 2)).double()
X = torch.randn(6, 3, generator=G, dtype=torch.float64)
Y = torch.randn(6, 2, generator=G, dtype=torch.float64)
LOSS = torch.nn.functional.mse_loss
DATA = [(X, Y)]
BLOCKS = nets.resolve_blocks(MODEL, None)
PARAMS = {n: p.detach() for n, p in MODEL.named_parameters()}
HVP = nets.make_batch_hessian_vector_product(MODEL, lambda o, y: ((o - y) ** 2).mean())
TANGENTS = {"0.weight": torch.randn(2, 4, 3, generator=G, dtype=torch.float64)}
VECTORS = [torch.randn(2, b.dim, generator=G, dtype=torch.float64) for b in BLOCKS]
OPERATOR = nets.BlockHVP(MODEL, LOSS, DATA, BLOCKS, mode="reverse-block")


def _bad_run(**fields) -> LanczosRun:
    return LanczosRun(**{"alpha": RUN.alpha, "beta": RUN.beta, "n_steps": RUN.n_steps,
                         **fields})


EXTRA = {
    "matvec": [lambda vs: vs[:0], lambda vs: [v * math.nan for v in vs],
               lambda vs: [v[:, :2] for v in vs], lambda vs: ["x" for _ in vs],
               lambda vs: None, lambda vs: [v.float() * 1e300 for v in vs]],
    "starts": [[torch.zeros(2, 5, dtype=torch.float64)], [torch.ones(5, dtype=torch.float64)],
               [torch.ones(2, 5, dtype=torch.int64)], [torch.ones(2, 5, dtype=torch.complex128)],
               [torch.full((2, 5), math.nan, dtype=torch.float64)], [torch.ones(0, 5)],
               [torch.ones(2, 0)], [np.ones((2, 5))], torch.ones(2, 5),
               [torch.full((1, 5), 1e308, dtype=torch.float64)],
               [torch.full((1, 5), 1e-320, dtype=torch.float64)]],
    "steps": [10**9, 10**30, np.int64(3), 5.0],
    "tol": [-1e-3, 1.0, 1e300],
    "callback": [lambda *a: 1 / 0 if False else None],
    "run": [RUN.alpha, _bad_run(alpha=RUN.alpha * math.nan),
            _bad_run(n_steps=np.zeros(2, dtype=np.int64)),
            _bad_run(n_steps=np.array([9, 9])), _bad_run(beta=RUN.beta[:, :1]),
            _bad_run(alpha=RUN.alpha[:1]), _bad_run(alpha=RUN.alpha.astype(np.complex128)),
            _bad_run(n_steps=np.array([1.5, 2.0])), _bad_run(alpha=[[1.0]])],
    "model": [torch.nn.Identity(), MODEL.state_dict(), torch.nn.Linear(3, 4)],
    "blocks": [{"a": "nope"}, {"a": ("0.weight", (slice(0, 99),))}, {"": "0.weight"},
               {"a": "0.weight", "b": "0.weight"}, {"a": ("0.weight", (slice(0, 2, 0),))},
               {"a": ("0.weight", (slice(2, 0, -1),))}, {"a": ("0.weight", (slice("a", 2),))},
               {"a": ("0.weight", slice(None), slice(None))}, {"a": []}, {1: "0.weight"},
               {"a": ("0.weight", (slice(None),) * 3)}, {"a": ["0.weight", 3]},
               [nets.Block("x", ())], BLOCKS[:1] * 2, [BLOCKS[0], "x"]],
    "loss_fn": [lambda out, y: out, 3],
    "data": [[], [(X[:, :2], Y)], [(X * math.nan, Y)], [X]],
    "params": [{}, {**PARAMS, "0.weight": PARAMS["0.weight"][:2]},
               {**PARAMS, "0.weight": PARAMS["0.weight"] * math.nan}, [1, 2]],
    "inputs": [X[:, :2], X * math.inf, X.float()],
    "targets": [Y[:, :1], Y * math.nan],
    "tangents": [{}, {"nope": TANGENTS["0.weight"]}, {"0.weight": TANGENTS["0.weight"][0]},
                 {"0.weight": TANGENTS["0.weight"][:, :2]},
                 {"0.weight": TANGENTS["0.weight"] * math.nan},
                 {"0.weight": TANGENTS["0.weight"].to(torch.complex128)}, [TANGENTS]],
    "chunk_size": [0, -3, 2.0],
    "vectors": [VECTORS[:1], [v[:, :1] for v in VECTORS], [v * math.nan for v in VECTORS],
                [v.to(torch.complex128) for v in VECTORS], [v[0] for v in VECTORS],
                [v.numpy() for v in VECTORS], [None] * len(VECTORS),
                [v.float() for v in VECTORS], VECTORS[0]],
    "mode": ["fast", "AUTO"],
    "which": ["all ", "MATRICES"],
    "roles": [("nope",), ["q", "q"]],
    "split": ["heads", "none"],

    "max_memory": [0, 2.5],
}

#: Words other than the argument's name that a message may use for it.
ALIASES = {"starts": ("start",), "run": ("Lanczos run", "run"), "blocks": ("block",),
           "data": ("batch",), "loss_fn": ("loss",), "vectors": ("vector", "stack"),
           "tangents": ("tangent",), "params": ("param",), "inputs": ("input",),
           "targets": ("target",)}


def _hvp(**k):
    return HVP(k.pop("params"), k.pop("inputs"), k.pop("targets"), k.pop("tangents"), **k)


def _block_hvp(**k):
    return nets.BlockHVP(k.pop("model"), k.pop("loss_fn"), k.pop("data"), k.pop("blocks"), **k)


CASES: dict[str, tuple[Callable, dict]] = {
    "lanczos": (lambda **k: lanczos(k.pop("matvec"), k.pop("starts"), k.pop("steps"), **k),
                dict(matvec=_matvec, starts=STARTS, steps=4, tol=None, callback=None)),
    "gauss_quadrature": (nets.gauss_quadrature, dict(run=RUN)),
    "resolve_blocks": (nets.resolve_blocks, dict(model=MODEL, blocks={"w": "0.weight",
                                                                        "rest": ["0.bias"]})),
    "make_batch_hessian_vector_product": (
        nets.make_batch_hessian_vector_product, dict(model=MODEL, loss_fn=LOSS)),
    "batch_hvp": (_hvp, dict(params=PARAMS, inputs=X, targets=Y, tangents=TANGENTS,
                             chunk_size=None)),
    "BlockHVP": (_block_hvp, dict(model=MODEL, loss_fn=LOSS, data=DATA, blocks=BLOCKS,
                                  mode="reverse-block", max_memory=None, chunk_size=None)),
    "BlockHVP.__call__": (lambda vectors: OPERATOR(vectors), dict(vectors=VECTORS)),
    "block_set": (nets.block_set, dict(model=MODEL, blocks=BLOCKS, which="matrices")),
    "matrix_blocks": (nets.matrix_blocks, dict(model=MODEL, blocks=BLOCKS)),
    "exact_blockwise_eigenvalues": (
        lambda **k: nets.exact_blockwise_eigenvalues(k.pop("model"), k.pop("loss_fn"),
                                                     k.pop("data"), **k),
        dict(model=MODEL, loss_fn=LOSS, data=DATA, blocks=None)),
    "parameter_roles": (nets.parameter_roles, dict(model=MODEL)),
    "attention_parts": (nets.attention_parts, dict(model=MODEL)),
    "block_roles": (nets.block_roles, dict(model=MODEL, blocks=None)),
    "role_blocks": (nets.role_blocks, dict(model=MODEL, roles=None, split="params")),
}


def _bad_values(arg: str) -> list:
    return COMMON + EXTRA.get(arg, [])


_examples = malformed_examples(CASES, _bad_values)


def _dense_block(name: str) -> torch.Tensor:
    H = nets.dense_hessian(MODEL, LOSS, DATA)
    offsets, start = {}, 0
    for n, p in MODEL.named_parameters():
        offsets[n] = (start, start + p.numel())
        start += p.numel()
    a, b = offsets[name]
    return torch.as_tensor(np.asarray(H[a:b, a:b]))


def test_valid_calls_match_dense_references():
    # Lanczos: Gauss quadrature of a full run reproduces the eigenvalues of A
    nodes, weights = nets.gauss_quadrature(RUN)
    eig = np.linalg.eigvalsh(A.numpy())
    for r in range(2):
        np.testing.assert_allclose(np.sort(nodes[r]), eig, atol=1e-10 * np.abs(eig).max())
        assert weights[r].sum() == pytest.approx(1.0, rel=1e-12)
    # the batch HVP and the block operator against the dense Hessian
    H00 = _dense_block("0.weight")
    got = _hvp(**CASES["batch_hvp"][1])["0.weight"].reshape(2, -1)
    want = TANGENTS["0.weight"].reshape(2, -1) @ H00
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-12 * float(want.abs().max()))
    out = OPERATOR(VECTORS)
    for blk, v, o in zip(BLOCKS, VECTORS, out, strict=True):
        Hb = _dense_block(blk.name)
        want = (v @ Hb).numpy()
        np.testing.assert_allclose(o.numpy(), want, atol=1e-12 * max(np.abs(want).max(), 1))
    for name, (func, kwargs) in CASES.items():
        assert _finite(func(**dict(kwargs))), name


@settings(deadline=None, suppress_health_check=list(HealthCheck))
@given(_examples)
def test_malformed_arguments_are_refused_by_name_or_handled(example):
    name, arg, i = example
    func, kwargs = CASES[name]
    bad = _bad_values(arg)[i]
    result = refused_by_name_or_handled(name, func, kwargs, arg, bad, ALIASES.get(arg, ()))
    if isinstance(result, list) and result and isinstance(result[0], LanczosRun):
        assert all(np.all(r.n_steps >= 1) for r in result), (name, arg, bad)
