"""A quadratic loss as a torch module, to check the pipeline on known blockwise spectra.

``L(w) = ½ wᵀ H w − hᵀ w`` with ``H = diag(H_1, …, H_L)`` block diagonal; block ``l`` is the
parameter ``w_l`` (named ``"block{l}"``), so ``[∇²L]_ll = H_l`` exactly and the blockwise
spectra are the eigenvalues of the ``H_l``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["QuadraticModel", "quadratic_problem"]


class QuadraticModel(torch.nn.Module):
    """Module whose forward returns the quadratic loss ``½ wᵀHw − hᵀw`` (inputs ignored).

    Args:
        blocks: Dense symmetric arrays ``H_l`` (``d_l × d_l``), or an object with ``.blocks``
            and ``.h`` attributes (e.g. a quadlab ``Problem``), in which case ``h`` is taken
            from it.
        h: Linear term, a vector of length ``Σ d_l`` (default zeros).
        w0: Starting point (default zeros).
        dtype: Torch dtype of parameters and matrices (default float64).
    """

    def __init__(self, blocks: Sequence[np.ndarray] | object, h: np.ndarray | None = None, *,
                 w0: np.ndarray | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if hasattr(blocks, "blocks") and hasattr(blocks, "h"):
            if h is not None:
                raise ValueError("give h either in the problem object or as an argument")
            h = np.asarray(blocks.h)  # type: ignore[attr-defined]
            blocks = blocks.blocks  # type: ignore[attr-defined]
        mats = [np.asarray(b, dtype=np.float64) for b in blocks]  # type: ignore[union-attr]
        if not mats:
            raise ValueError("a quadratic needs at least one block")
        for i, m in enumerate(mats):
            if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
                raise ValueError(f"block {i} must be a non-empty square matrix, got shape "
                                 f"{m.shape}")
            if not np.all(np.isfinite(m)):
                raise ValueError(f"block {i} has non-finite entries")
            if not np.allclose(m, m.T, rtol=1e-12, atol=1e-12 * max(np.abs(m).max(), 1e-300)):
                raise ValueError(f"block {i} is not symmetric")
        d = sum(m.shape[0] for m in mats)
        h = np.zeros(d) if h is None else np.asarray(h, dtype=np.float64)
        w0 = np.zeros(d) if w0 is None else np.asarray(w0, dtype=np.float64)
        for label, v in (("h", h), ("w0", w0)):
            if v.shape != (d,):
                raise ValueError(f"{label} must have shape ({d},), got {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{label} has non-finite entries")
        off = 0
        for i, m in enumerate(mats):
            k = m.shape[0]
            self.register_parameter(f"block{i}", torch.nn.Parameter(
                torch.as_tensor(w0[off:off + k], dtype=dtype)))
            self.register_buffer(f"H{i}", torch.as_tensor(m, dtype=dtype))
            self.register_buffer(f"h{i}", torch.as_tensor(h[off:off + k], dtype=dtype))
            off += k
        self.n_blocks = len(mats)

    def forward(self, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The loss ``½ wᵀHw − hᵀw`` at the current parameters (the model *is* its loss).

        Args:
            inputs: Ignored (the dummy batch of :func:`quadratic_problem`).
        """
        loss = torch.zeros((), dtype=self.H0.dtype, device=self.H0.device)
        for i in range(self.n_blocks):
            w = getattr(self, f"block{i}")
            loss = loss + 0.5 * w @ (getattr(self, f"H{i}") @ w) - getattr(self, f"h{i}") @ w
        return loss


def _identity_loss(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return output


def quadratic_problem(blocks: Sequence[np.ndarray] | object, h: np.ndarray | None = None, *,
                      w0: np.ndarray | None = None, dtype: torch.dtype = torch.float64
                      ) -> tuple[torch.nn.Module, Callable, list]:
    """``(model, loss_fn, data)`` for the quadratic, in the conventions of :mod:`nets`.

    ``data`` is one dummy batch; ``loss_fn`` returns the model output (the loss itself).

    Args:
        blocks: The blocks ``H_l`` (symmetric matrices), or a ``quadlab.Problem``-like object
            with ``blocks`` (and ``h``).
        h: The linear term (default zero, or the problem's).
        w0: Initial parameters (default zero).
        dtype: Parameter dtype.
    """
    model = QuadraticModel(blocks, h, w0=w0, dtype=dtype)
    data = [(torch.zeros(1, dtype=dtype), torch.zeros(1, dtype=dtype))]
    return model, _identity_loss, data
