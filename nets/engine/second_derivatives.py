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
``BackwardHookFunction``), or always or never as asked: :func:`check_along_random_direction`
draws the direction and the step and runs :func:`difference_check` on the operator's gradient
and product, and :func:`enforce_derivative_check` refuses a product that disagrees (naming the
fix) and warns where the differences could not tell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

from nets.engine.autograd_graph import graph_nodes
from nets.engine.userwarn import warn

__all__ = ["ROUNDOFF_FACTOR", "SPREAD_FACTOR", "SPREAD_LIMIT", "VERDICTS", "DerivativeCheck",
           "check_along_random_direction", "combined_verdict", "custom_functions",
           "derivative_verdict", "difference_check", "enforce_derivative_check", "error_floor",
           "step_size"]

#: Tensors by parameter name (a point, a direction, a product).
Tensors = dict[str, torch.Tensor]

#: A gradient by parameter name (``None`` where the loss does not depend on the parameter).
Gradient = Mapping[str, torch.Tensor | None]

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


def check_along_random_direction(params: Mapping[str, torch.Tensor],
                                 gradient_at: Callable[[Tensors], tuple[float, Gradient]],
                                 product_of: Callable[[Tensors], Mapping[str, torch.Tensor]],
                                 dtype: torch.dtype, functions: tuple[str, ...],
                                 generator: torch.Generator) -> tuple[DerivativeCheck, str]:
    """Check one product ``H d`` along a random unit direction ``d`` over ``params``
    (:func:`difference_check` at the step :func:`step_size` of their norm).

    ``d`` is a standard Gaussian drawn from ``generator`` on the parameters' device, in their
    dtype, scaled to unit norm over all of them. A product or gradient that cannot be evaluated
    (``NotImplementedError``, ``RuntimeError``: a model with no double backward) leaves the check
    inconclusive, with the failure as the reason.

    Args:
        params: The parameters checked, by name (the point ``w``).
        gradient_at: ``gradient_at(shifted)`` is ``(ℓ, {name: ∇_name ℓ or None})`` at the
            parameters ``shifted`` (the same names, moved along ``d``).
        product_of: ``product_of(d)`` is ``{name: (H d)_name}``.
        dtype: The precision the model computes in (the step and the tolerances).
        functions: The custom ``autograd.Function`` classes in the loss's graph (recorded).
        generator: Draws ``d``.

    Returns:
        ``(check, why)``: the :class:`DerivativeCheck`, and why it would be inconclusive (the
        failure, or the differences' spread), for :func:`enforce_derivative_check`.
    """
    names = list(params)
    direction = {n: torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device)
                 for n, p in params.items()}
    scale = _joint_norm(direction.values())
    for d in direction.values():
        d.div_(scale)
    step = step_size(_joint_norm(params.values()), dtype)

    def flat(tensors: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        return torch.cat([(torch.zeros_like(params[n]) if tensors[n] is None
                           else tensors[n]).reshape(-1) for n in names])

    def evaluate(s: float) -> tuple[float, torch.Tensor]:
        loss, grads = gradient_at({n: params[n] + s * direction[n] for n in names})
        return loss, flat(grads)

    try:
        hd = flat(product_of(direction))
        curvature = float(torch.dot(hd.double(), flat(direction).double()))
        check = difference_check(evaluate, hd, curvature, step, dtype, functions)
    except (NotImplementedError, RuntimeError) as e:  # no double backward: nothing to check
        nan = math.nan
        return (DerivativeCheck("inconclusive", nan, nan, nan, "inconclusive", nan, nan,
                                "inconclusive", step, functions),
                f"the double backward failed ({type(e).__name__}: {str(e)[:200]})")
    return check, (f"the differences of the gradient did not converge (they differ by "
                   f"{check.spread:.1e} of their size between steps h and h/2: a gradient "
                   "that is not smooth at the step's scale, or mostly round-off)")


def enforce_derivative_check(check: DerivativeCheck, why: str) -> None:
    """Act on a check of the products: refuse products that disagree with the gradient's or the
    loss's differences, naming the likely cause and the fix; warn (:class:`UserWarning`) where
    the check is inconclusive, saying ``why``; pass where it agrees.

    Args:
        check: The check (:func:`check_along_random_direction`).
        why: Why it is inconclusive, where it is.

    Raises:
        ValueError: Either part of the check disagrees.
    """
    what = (f"custom torch.autograd.Function {', '.join(check.functions)} in the model's "
            "graph" if check.functions else "the model (no custom torch.autograd.Function "
            "in its graph)")
    if check.gradient_verdict == "disagrees":
        raise ValueError(
            f"{what}: the Hessian-vector products are not the second derivative of the "
            f"loss. Along a random direction they differ from central differences of the "
            f"gradient by {check.error:.1e} of their size, where the differences agree with "
            f"each other to {check.spread:.1e} (tolerance {check.tolerance:.1e}). Autograd "
            "differentiates a backward as written: one marked @once_differentiable, "
            "computing with detached tensors or a kernel without a derivative of its own, "
            "or a backward hook that changes gradients, gives the derivative of another "
            "function. Write the backward in differentiable operations, or remove the "
            "hook (or evaluate the layer with torch operations) while nets runs; "
            "check_derivatives=False (--check-derivatives never) turns this check off")
    if check.loss_verdict == "disagrees":
        raise ValueError(
            f"{what}: the Hessian-vector products are not the second derivative of the "
            f"loss. The curvature along a random direction differs from second differences "
            f"of the loss by {check.loss_error:.1e} of the products' size, where the "
            f"differences agree with each other to {check.loss_spread:.1e}: the gradient "
            "the model's backward computes is not the loss's (a backward hook that changes "
            "gradients, or a custom backward such as a straight-through or gradient-"
            "reversal one), and the products differentiate it instead. Remove the hook or "
            "Function while nets runs to get the loss's Hessian; check_derivatives=False "
            "(--check-derivatives never) turns this check off")
    if check.verdict == "inconclusive":
        warn(f"could not check the second derivatives of {what} against differences of "
             f"the gradient: {why}; the products are used unchecked "
             "(info()['derivative_check'])")


def _joint_norm(tensors: Iterable[torch.Tensor]) -> float:
    """The norm of the tensors' concatenation, in float64."""
    return math.sqrt(sum(_norm(t) ** 2 for t in tensors))
