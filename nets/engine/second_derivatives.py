"""Whether the products are the loss's second derivative: against differences of the gradient
and of the loss.

Autograd differentiates a custom ``torch.autograd.Function``'s ``backward`` as written. Where
that ``backward`` is not differentiable as written (marked ``@once_differentiable``, a factor
computed from a detached tensor, a kernel with no derivative of its own), the double backward
runs without an error and returns the derivative of another function: a Hessian that is
finite and symmetric, and wrong (a hand-written tanh whose ``backward`` detaches its factor
gave a Hessian off by its own size, ``tests/nets/test_second_derivatives.py``). And where the
backward computes something other than the loss's gradient (a backward hook that rescales it,
a gradient-reversal or straight-through Function), every product differentiates that instead.
The products cannot show either; the gradient and the loss can. Along a unit direction ``d``
the central differences

    D(h) = (∇ℓ(w + h d) − ∇ℓ(w − h d)) / 2h = H d + c h² + O(h⁴)
    C(h) = (ℓ(w + h d) − 2 ℓ(w) + ℓ(w − h d)) / h² = dᵀH d + c' h² + O(h⁴)

converge to ``H d`` (from the gradient torch computes) and to the curvature ``dᵀH d`` (from the
loss alone) for a loss with continuous fourth derivatives. :func:`difference_check` takes each
at ``h`` and ``h/2``: their difference (the *spread*) measures how far they are from converged
(the ``h²`` term and the round-off divided by ``h`` or ``h²``), and the Richardson
extrapolation ``D* = D(h/2) + (D(h/2) − D(h)) / 3`` (likewise ``C*``) removes the ``h²`` term.
Each part's verdict (:func:`derivative_verdict`, relative to ``max(‖H d‖, ‖D(h/2)‖)``):

* ``"inconclusive"`` where the spread passes :data:`SPREAD_LIMIT`: the loss is not smooth at
  the scale of ``h`` (a ReLU or a routing decision that flips between the points) or the
  differences are mostly round-off, and they say nothing;
* ``"agrees"`` where the error (``‖H d − D*‖``, ``|dᵀH d − C*|``) is within
  :data:`SPREAD_FACTOR` spreads, or within the dtype's floor (:func:`error_floor`);
* ``"disagrees"`` otherwise: the differences converged, and not to the product.

The check's verdict (:func:`combined_verdict`) disagrees where either part does, and is
otherwise the gradient part's, the sharper one (the loss's part resolves one number and is
often round-off in float32). The step is ``h = u^{1/3} ‖w‖`` (``u`` the dtype's unit
roundoff, ``‖w‖`` the norm of the parameters checked): each coordinate moves by about
``u^{1/3}`` of the parameters' root mean square, the step that balances a central
difference's truncation and round-off.

:func:`custom_functions` finds the custom ``autograd.Function`` classes in a loss's graph: the
operator (:class:`nets.engine.hvp.BlockHVP`) runs the check on its first batch where there are
any (torch's own operations have tested derivatives; a module's full backward hook is one,
``BackwardHookFunction``), or always or never as asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nets.engine.autograd_graph import graph_nodes

__all__ = ["ROUNDOFF_FACTOR", "SPREAD_FACTOR", "SPREAD_LIMIT", "VERDICTS", "DerivativeCheck",
           "combined_verdict", "custom_functions", "derivative_verdict", "difference_check",
           "error_floor", "step_size"]

#: The verdicts of :func:`derivative_verdict`.
VERDICTS = ("agrees", "disagrees", "inconclusive")

#: A spread ``‖D(h) − D(h/2)‖`` above this fraction of the products' scale leaves the check
#: inconclusive: differences that far from converged cannot tell a wrong product from their
#: own error.
SPREAD_LIMIT = 0.1

#: The round-off of a loss or gradient evaluation, in units of the dtype's unit roundoff times
#: the value's magnitude (the rounding of the many operations behind one loss); it sets the
#: least spread a difference can show (:func:`difference_check`).
ROUNDOFF_FACTOR = 10.0

#: The product agrees where it is within this many spreads of the extrapolated difference
#: (the extrapolation's own error is a fraction of one spread for a smooth loss).
SPREAD_FACTOR = 3.0


@dataclass(frozen=True)
class DerivativeCheck:
    """One check of the products against differences of the gradient and of the loss.

    Attributes:
        verdict: The check's verdict (:func:`combined_verdict` of the two below).
        error: ``‖H d − D*‖`` relative to the scale (``max(‖H d‖, ‖D(h/2)‖)``).
        spread: ``‖D(h) − D(h/2)‖`` relative to the scale.
        tolerance: The error the gradient's verdict allowed
            (``max(SPREAD_FACTOR · spread, floor)``).
        gradient_verdict: The products against the gradient's differences.
        loss_error: ``|dᵀH d − C*|`` relative to the same scale (``C*`` the extrapolated second
            difference of the loss).
        loss_spread: ``|C(h) − C(h/2)|`` relative to the scale.
        loss_verdict: The curvature ``dᵀH d`` against the loss's second differences.
        step: ``h``.
        functions: The custom ``autograd.Function`` classes in the loss's graph.
    """

    verdict: str
    error: float
    spread: float
    tolerance: float
    gradient_verdict: str
    loss_error: float
    loss_spread: float
    loss_verdict: str
    step: float
    functions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The check as plain values (for ``info()``)."""
        return {"verdict": self.verdict, "error": self.error, "spread": self.spread,
                "tolerance": self.tolerance, "gradient_verdict": self.gradient_verdict,
                "loss_error": self.loss_error, "loss_spread": self.loss_spread,
                "loss_verdict": self.loss_verdict, "step": self.step,
                "functions": list(self.functions)}


def combined_verdict(gradient: str, loss: str) -> str:
    """The check's verdict from its two parts: ``"disagrees"`` where either disagrees, else the
    gradient's (the products against the gradient's differences, the sharper test: the loss's
    second differences resolve only the one number ``dᵀH d``, and in float32 are often too
    noisy to, so an inconclusive loss part does not make the check inconclusive).

    Args:
        gradient: The verdict on ``H d`` against the gradient's differences.
        loss: The verdict on ``dᵀH d`` against the loss's second differences.
    """
    if "disagrees" in (gradient, loss):
        return "disagrees"
    return gradient


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


def difference_check(evaluate: Callable[[float], tuple[float, torch.Tensor]],
                     product: torch.Tensor, curvature: float, step: float, dtype: torch.dtype,
                     functions: tuple[str, ...] = ()) -> DerivativeCheck:
    """Check ``product = H d`` against central differences of the gradient, and
    ``curvature = dᵀH d`` against second differences of the loss, at ``step`` and ``step / 2``
    (module docstring).

    Each spread also counts the round-off the differences cannot resolve below
    (:data:`ROUNDOFF_FACTOR` ``· u`` of the loss or the gradient, times the stencil's weights,
    over the step): differences that round to the same numbers at both steps (a loss whose
    second difference is below its dtype's resolution rounds to zero at both) have not
    converged, they are unresolved.

    Args:
        evaluate: ``evaluate(s)`` is ``(ℓ(w + s d), ∇ℓ(w + s d))``, the gradient flattened (a
            new tensor).
        product: The flattened product ``H d`` to check.
        curvature: ``dᵀ H d`` (``d`` the unit direction the evaluations move along).
        step: ``h``.
        dtype: The precision the model computes in (its round-off and :func:`error_floor`).
        functions: What to record as the custom functions checked.

    Returns:
        The :class:`DerivativeCheck`. Norms are taken in float64; the gradients are held in
        their own dtype (five evaluations, two parameter-sized differences at a time).
    """
    u = ROUNDOFF_FACTOR * torch.finfo(dtype).eps / 2
    floor = error_floor(dtype)
    center, gradient = evaluate(0.0)
    gradient_noise = 2 * u * _norm(gradient) / step  # |D(h/2)|'s round-off: 2u‖g‖ / (h/2)
    loss_noise = 16 * u * abs(center) / step ** 2  # |C(h/2)|'s: 4u|ℓ| / (h/2)²
    del gradient

    def differences(h: float) -> tuple[float, torch.Tensor]:
        up, plus = evaluate(h)
        down, minus = evaluate(-h)
        return (up - 2 * center + down) / h ** 2, plus.sub_(minus).div_(2 * h)

    (c_coarse, coarse), (c_fine, fine) = differences(step), differences(step / 2)
    scale = max(_norm(product), _norm(fine))
    if scale == 0.0:  # a zero product and zero differences: nothing curves along d
        return DerivativeCheck("agrees", 0.0, 0.0, floor, "agrees", 0.0, 0.0, "agrees", step,
                               functions)
    spread = (_norm(fine - coarse) + gradient_noise) / scale
    extrapolated = fine.mul_(4 / 3).sub_(coarse, alpha=1 / 3)  # D(h/2) + (D(h/2) − D(h)) / 3
    del coarse
    error = _norm(product - extrapolated) / scale
    gradient_verdict, tolerance = derivative_verdict(error, spread, floor)
    loss_spread = (abs(c_fine - c_coarse) + loss_noise) / scale
    loss_error = abs(curvature - (4 * c_fine - c_coarse) / 3) / scale
    loss_verdict, _ = derivative_verdict(loss_error, loss_spread, floor)
    return DerivativeCheck(combined_verdict(gradient_verdict, loss_verdict), error, spread,
                           tolerance, gradient_verdict, loss_error, loss_spread, loss_verdict,
                           step, functions)


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t, dtype=torch.float64))


def custom_functions(loss: torch.Tensor) -> tuple[str, ...]:
    """The custom ``torch.autograd.Function`` classes whose nodes are in ``loss``'s graph
    (:func:`nets.engine.autograd_graph.graph_nodes`; qualified names, sorted; empty for a graph
    of torch's own operations).

    Args:
        loss: A tensor with a graph (``grad_fn``), e.g. a batch's loss recorded by autograd.
    """
    return tuple(sorted({f"{n._forward_cls.__module__}.{n._forward_cls.__qualname__}"
                         for n in graph_nodes([loss])
                         if isinstance(n, torch.autograd.function.BackwardCFunction)}))
