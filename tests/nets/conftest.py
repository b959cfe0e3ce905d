"""Small deterministic models with dense Hessians for the nets tests."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nets.studies import gap


def random_spd_block(eigenvalues: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Q diag(λ) Qᵀ with a random orthogonal Q."""
    n = len(eigenvalues)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    m = q @ np.diag(eigenvalues) @ q.T
    return 0.5 * (m + m.T)


def geometric_problem() -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """``(λ, A, starts)``: 40 eigenvalues spread over 8 decades in a random basis (float64) and
    two start vectors; Lanczos without reorthogonalization makes ghosts on it."""
    rng = np.random.default_rng(5)
    lam = np.geomspace(1e-4, 1e4, 40)
    a = torch.as_tensor(random_spd_block(lam, rng))
    return lam, a, torch.as_tensor(rng.standard_normal((2, 40)))


class OldStyleSquare(torch.autograd.Function):
    """``x²`` as an old-style ``autograd.Function`` (``ctx`` in ``forward``, no
    ``setup_context``): twice differentiable in reverse mode, its node keeping what it saved,
    and refused by ``torch.func`` transforms (BLOOM's ``GeLUFunction`` is one)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class TinyAttention(torch.nn.Module):
    """One head of math attention + MLP readout, float64, for dense-Hessian checks."""

    def __init__(self, vocab: int = 5, dim: int = 4, classes: int = 3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(vocab, dim, generator=g, dtype=torch.float64))
        self.q = torch.nn.Parameter(torch.randn(dim, dim, generator=g, dtype=torch.float64) / 2)
        self.k = torch.nn.Parameter(torch.randn(dim, dim, generator=g, dtype=torch.float64) / 2)
        self.v = torch.nn.Parameter(torch.randn(dim, dim, generator=g, dtype=torch.float64) / 2)
        self.out = torch.nn.Parameter(torch.randn(classes, dim, generator=g,
                                                  dtype=torch.float64) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb[x]
        q, k, v = h @ self.q.T, h @ self.k.T, h @ self.v.T
        a = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
        return ((a @ v) + h).mean(1) @ self.out.T


#: The devices the engine's tests cross their problems with (curvlinops' habit): the CPU
#: always, CUDA where this machine has it (``benchmarks/gpu_check.sh`` runs them on a GPU).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each of :data:`DEVICES` in turn."""
    return torch.device(request.param)


def on_device(model: torch.nn.Module, data: list, device: torch.device):
    """A copy of ``model`` and of the ``(x, y)`` batches in ``data`` on ``device`` (the
    session's fixtures stay on the CPU)."""
    moved = copy.deepcopy(model).to(device)
    return moved, [(x.to(device), y.to(device)) for x, y in data]


@pytest.fixture(scope="session")
def mlp_problem():
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(),
                                torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(23, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (23,), generator=g)
    data = [(x[:10], y[:10]), (x[10:16], y[10:16]), (x[16:], y[16:])]
    return model, torch.nn.functional.cross_entropy, data, (x, y)


@pytest.fixture(scope="session")
def attention_problem():
    g = torch.Generator().manual_seed(2)
    model = TinyAttention()
    x = torch.randint(0, 5, (12, 6), generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    data = [(x[:7], y[:7]), (x[7:], y[7:])]
    return model, torch.nn.functional.cross_entropy, data, (x, y)


@pytest.fixture(scope="session")
def exact_eigenvalues(mlp_problem, attention_problem):
    """Dense-reference blockwise eigenvalues, computed once per session."""
    import nets

    return {name: nets.exact_blockwise_eigenvalues(*prob[:3])
            for name, prob in (("mlp_problem", mlp_problem),
                               ("attention_problem", attention_problem))}


@pytest.fixture
def gap_train_calls(monkeypatch):
    """Count the training runs `nets.studies.gap` computes (cached runs are not counted):
    ``calls["n"]``."""
    calls = {"n": 0}
    real = gap.train

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(gap, "train", counting)
    return calls


@pytest.fixture(scope="session")
def benchmark_script():
    """``load(name)``: the script ``benchmarks/<name>.py`` imported as a module, with
    ``benchmarks/`` on ``sys.path`` as when the scripts run (they import each other: a helper
    module such as ``reports`` loads alone, whatever ran before)."""
    root = Path(__file__).resolve().parents[2] / "benchmarks"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def smoke_report():
    """``run(main, argv, out, model)``: a benchmark script's ``main(argv)`` run with its
    report written to ``out``; checks that what it printed is the file, and that every
    number column (from the fourth on) of each of ``model``'s table rows is positive;
    returns ``(text, [cells of each row])``."""

    def run(main, argv: list[str], out: Path, model: str):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            main([*argv, "--out", str(out)])
        text = out.read_text()
        assert text.strip() == buf.getvalue().strip()
        rows = [[c.strip() for c in line.strip("|").split("|")]
                for line in text.splitlines() if line.startswith(f"| {model} |")]
        for cells in rows:  # every timed and derived column is a positive number
            assert all(float(c) > 0 for c in cells[3:]), cells
        return text, rows

    return run


def mse_problem():
    """A float64 MLP regressing floating targets with ``mse_loss``, two batches: forward-mode
    AD gives the loss an efficient ZeroTensor for targets without a tangent (pytorch#123996).
    A plain function (a child process builds it too)."""
    g = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                torch.nn.Linear(4, 2)).double()
    data = [(torch.randn(5, 3, generator=g, dtype=torch.float64),
             torch.randn(5, 2, generator=g, dtype=torch.float64)) for _ in range(2)]
    return model, torch.nn.functional.mse_loss, data
