"""Whether the double backward is the second derivative: products against differences of the
gradient.

Autograd differentiates a custom ``torch.autograd.Function``'s ``backward`` as written. Where
that ``backward`` is not differentiable as written (marked ``@once_differentiable``, a factor
computed from a detached tensor, a kernel with no derivative of its own), the double backward
runs without an error and returns the derivative of another function: a Hessian that is
finite and symmetric, and wrong (a hand-written tanh whose ``backward`` detaches its factor
gave a Hessian off by its own size, ``tests/nets/test_second_derivatives.py``). The products
cannot show it; the gradient can. Along a unit direction ``d`` the central difference of the
gradient

    D(h) = (∇ℓ(w + h d) − ∇ℓ(w − h d)) / 2h = H d + c h² + O(h⁴)

converges to ``H d`` for a loss with a continuous third derivative. :func:`difference_check`
takes ``D(h)`` and ``D(h/2)``: their difference ``‖D(h) − D(h/2)‖`` (the *spread*) measures
how far the differences are from converged (the ``h²`` term and the gradient's round-off
divided by ``h``), and the Richardson extrapolation ``D* = D(h/2) + (D(h/2) − D(h)) / 3``
removes the ``h²`` term. The verdict (:func:`derivative_verdict`, relative to
``max(‖H d‖, ‖D(h/2)‖)``):

* ``"inconclusive"`` where the spread passes :data:`SPREAD_LIMIT`: the gradient is not smooth
  at the scale of ``h`` (a ReLU or a routing decision that flips between the two points) or
  is mostly round-off, and the differences say nothing;
* ``"agrees"`` where ``‖H d − D*‖`` is within :data:`SPREAD_FACTOR` spreads, or within the
  dtype's floor (:func:`error_floor`);
* ``"disagrees"`` otherwise: the differences converged, and not to the product.

The step is ``h = u^{1/3} ‖w‖`` (``u`` the dtype's unit roundoff, ``‖w‖`` the norm of the
parameters checked): each coordinate moves by about ``u^{1/3}`` of the parameters' root mean
square, the step that balances a central difference's truncation and round-off.

:func:`custom_functions` finds the custom ``autograd.Function`` classes in a loss's graph: the
operator (:class:`nets.engine.hvp.BlockHVP`) runs the check on its first batch where there are
any (torch's own operations have tested derivatives), or always or never as asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["SPREAD_FACTOR", "SPREAD_LIMIT", "VERDICTS", "DerivativeCheck", "custom_functions",
           "derivative_verdict", "difference_check", "error_floor", "step_size"]

#: The verdicts of :func:`derivative_verdict`.
VERDICTS = ("agrees", "disagrees", "inconclusive")

#: A spread ``‖D(h) − D(h/2)‖`` above this fraction of the products' scale leaves the check
#: inconclusive: differences that far from converged cannot tell a wrong product from their
#: own error.
SPREAD_LIMIT = 0.1

#: The product agrees where it is within this many spreads of the extrapolated difference
#: (the extrapolation's own error is a fraction of one spread for a smooth loss).
SPREAD_FACTOR = 3.0


@dataclass(frozen=True)
class DerivativeCheck:
    """One check of the products against differences of the gradient.

    Attributes:
        verdict: ``"agrees"``, ``"disagrees"`` or ``"inconclusive"`` (:data:`VERDICTS`).
        error: ``‖H d − D*‖`` relative to the scale (``max(‖H d‖, ‖D(h/2)‖)``).
        spread: ``‖D(h) − D(h/2)‖`` relative to the scale.
        tolerance: The error the verdict allowed (``max(SPREAD_FACTOR · spread, floor)``).
        step: ``h``.
        functions: The custom ``autograd.Function`` classes in the loss's graph.
    """

    verdict: str
    error: float
    spread: float
    tolerance: float
    step: float
    functions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The check as plain values (for ``info()``)."""
        return {"verdict": self.verdict, "error": self.error, "spread": self.spread,
                "tolerance": self.tolerance, "step": self.step,
                "functions": list(self.functions)}


def derivative_verdict(error: float, spread: float, floor: float) -> tuple[str, float]:
    """The verdict on a product whose relative distance to the extrapolated difference is
    ``error``, the differences' relative ``spread`` (module docstring).

    Args:
        error: ``‖H d − D*‖ / scale``.
        spread: ``‖D(h) − D(h/2)‖ / scale``.
        floor: The smallest relative error that counts (:func:`error_floor`).

    Returns:
        ``(verdict, tolerance)``: ``"inconclusive"`` where ``spread > SPREAD_LIMIT`` (or either
        is not finite), else ``"agrees"`` where ``error <= tolerance``, else ``"disagrees"``;
        ``tolerance = max(SPREAD_FACTOR · spread, floor)``.
    """
    tolerance = max(SPREAD_FACTOR * spread, floor)
    if not (math.isfinite(error) and math.isfinite(spread)) or spread > SPREAD_LIMIT:
        return "inconclusive", tolerance
    return ("agrees" if error <= tolerance else "disagrees"), tolerance


def error_floor(dtype: torch.dtype) -> float:
    """The smallest relative disagreement :func:`derivative_verdict` counts for a model of
    ``dtype``: ``10⁴ u`` (``u`` its unit roundoff), at least ``10⁻⁶`` and at most
    :data:`SPREAD_LIMIT` (1e-6 in float64, 6e-4 in float32, the limit in 16-bit dtypes).

    Args:
        dtype: The model's floating dtype.
    """
    u = torch.finfo(dtype).eps / 2
    return min(max(1e4 * u, 1e-6), SPREAD_LIMIT)


def step_size(norm: float, dtype: torch.dtype) -> float:
    """The difference step ``h = u^{1/3} ‖w‖`` for parameters of norm ``norm`` in ``dtype``
    (``u^{1/3}`` where the parameters are all zero).

    Args:
        norm: ``‖w‖`` over the parameters checked.
        dtype: Their floating dtype.
    """
    u = torch.finfo(dtype).eps / 2
    return u ** (1 / 3) * (norm if norm > 0 else 1.0)


def difference_check(gradient: Callable[[float], torch.Tensor], product: torch.Tensor,
                     step: float, floor: float, functions: tuple[str, ...] = ()
                     ) -> DerivativeCheck:
    """Check ``product = H d`` against central differences of ``gradient`` at ``step`` and
    ``step / 2`` (module docstring).

    Args:
        gradient: ``gradient(s)`` is the flattened gradient ``∇ℓ(w + s d)`` (a new tensor).
        product: The flattened product ``H d`` to check.
        step: ``h``.
        floor: The smallest relative error that counts (:func:`error_floor`).
        functions: What to record as the custom functions checked.

    Returns:
        The :class:`DerivativeCheck`. Norms are taken in float64; the gradients are held in
        their own dtype (four evaluations, two parameter-sized differences at a time).
    """
    def difference(h: float) -> torch.Tensor:
        plus = gradient(h)
        return plus.sub_(gradient(-h)).div_(2 * h)

    coarse, fine = difference(step), difference(step / 2)
    scale = max(_norm(product), _norm(fine))
    if scale == 0.0:  # a zero product and zero differences: nothing curves along d
        return DerivativeCheck("agrees", 0.0, 0.0, floor, step, functions)
    spread = _norm(fine - coarse) / scale
    extrapolated = fine.mul_(4 / 3).sub_(coarse, alpha=1 / 3)  # D(h/2) + (D(h/2) − D(h)) / 3
    del coarse
    error = _norm(product - extrapolated) / scale
    verdict, tolerance = derivative_verdict(error, spread, floor)
    return DerivativeCheck(verdict, error, spread, tolerance, step, functions)


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t, dtype=torch.float64))


def custom_functions(loss: torch.Tensor) -> tuple[str, ...]:
    """The custom ``torch.autograd.Function`` classes whose nodes are in ``loss``'s graph
    (qualified names, sorted; empty for a graph of torch's own operations).

    Args:
        loss: A tensor with a graph (``grad_fn``), e.g. a batch's loss recorded by autograd.
    """
    found: set[str] = set()
    seen: set[int] = set()
    stack = [loss.grad_fn] if loss.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            cls = node._forward_cls
            found.add(f"{cls.__module__}.{cls.__qualname__}")
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return tuple(sorted(found))
