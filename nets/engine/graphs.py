"""The gradient graphs a Hessian operator's double backwards run on: built, measured, kept.

Reverse-over-reverse products ``∇²ℓ_b v = ∇_w ⟨g_b, v⟩`` differentiate the gradient
``g_b = ∇_w ℓ_b`` of batch ``b`` again, so they need its graph (``create_graph=True``).
:class:`GradientGraphs` builds those graphs for :class:`nets.engine.hvp.BlockHVP`, times every
build, measures the first batch's (the size the memory plan scales to every batch,
:class:`nets.engine.budget.MemoryPlan`) and keeps graphs across calls while the plan allows
all of them beside one tangent's room. It also evaluates the data check's losses
(:meth:`GradientGraphs.check_loss`), most of which are the builds the products need anyway,
and the gradients at shifted parameters that the check of the second derivatives differences
(:meth:`GradientGraphs.gradient`).
Which graphs a call uses, and whether they are kept at all (the operator's graph strategy),
is the operator's decision.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import torch

from nets.engine.adapters import LossFn, batch_size
from nets.engine.budget import MemoryPlan
from nets.engine.memory import SavedBytes, saved_by_graph
from nets.engine.products import Graph, batch_loss, gradient_graph
from nets.engine.second_derivatives import custom_functions

__all__ = ["GradientGraphs", "synchronize"]


class GradientGraphs:
    """Gradient graphs ``g_b = ∇_w ℓ_b`` of a model's batches, built with respect to some of
    its parameters and kept (by batch index) within a memory plan.

    Args:
        model: The network (its parameters are substituted by ``params``).
        loss_fn: Scalar mean batch loss ``loss_fn(model(inputs), targets)``.
        params: Every parameter of the model by name (detached tensors).
        names: The parameters the graphs differentiate with respect to by default (the
            operator's blocks' parameters, in block order).
        plan: The operator's memory plan: the first graph's measured size goes into it, and
            it decides whether another graph fits (:meth:`nets.engine.budget.MemoryPlan.fits`).
        device: The parameters' device (builds are synchronized with it when timed).
        keeping: Whether the data check keeps the graphs it builds (not where the products
            run forward-over-reverse, which needs none).

    Attributes:
        keeping: Whether the data check still keeps the graphs it builds (it stops at the
            first that does not fit, and drops those kept before it).
        kept: The kept graphs ``(leaves, gradient)`` by batch index.
        kept_bytes: Their estimated bytes (:meth:`nets.engine.budget.MemoryPlan.estimated_bytes`).
        seconds: Wall seconds building the graphs the products ran on.
        first_build_seconds: Wall seconds of the first batch's measured build: what a call
            that rebuilds every graph pays per batch, which the operator's ``auto``
            calibration charges to the double-backward modes where graphs are not kept
            (:class:`nets.engine.hvp.BlockHVP`).
        saved_dtypes: The floating dtypes the first batch's graph saves
            (:func:`nets.engine.modes.compute_dtype`); empty before it is measured.
        custom_functions: The custom ``autograd.Function`` classes in the first batch's graph
            (:func:`nets.engine.second_derivatives.custom_functions`).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn,
                 params: Mapping[str, torch.Tensor], names: Sequence[str], plan: MemoryPlan,
                 device: torch.device, *, keeping: bool) -> None:
        self._model = model
        self._loss_fn = loss_fn
        self._buffers = dict(model.named_buffers())
        self._params = params
        self._names = tuple(names)
        self._plan = plan
        self._device = device
        self.keeping = keeping
        self.kept: dict[int, Graph] = {}
        self.kept_bytes = 0
        self.seconds = 0.0
        self.first_build_seconds = 0.0
        self.saved_dtypes: tuple[torch.dtype, ...] = ()
        self.custom_functions: tuple[str, ...] = ()

    def build(self, x: object, y: object, names: Sequence[str] | None = None
              ) -> tuple[dict, dict, torch.Tensor]:
        """One batch's gradient ``∇ℓ`` with its graph (:func:`nets.engine.products.gradient_graph`).

        Args:
            x: The batch's inputs.
            y: The batch's targets.
            names: The parameters to differentiate with respect to (default: the operator's).

        Returns:
            ``(leaves, gradient, loss)``: the parameter leaves, ``{name: ∇_name ℓ}`` and ``ℓ``.
        """
        return gradient_graph(self._model, self._buffers, self._loss_fn, self._params,
                              self._names if names is None else names, x, y)

    def kept_or_built(self, i: int, x: object, y: object) -> Graph:
        """Batch ``i``'s kept graph, or one built for the caller alone (neither kept nor
        counted in :attr:`seconds`: the callers are checks and measurements, not products).

        Args:
            i: The batch's index.
            x: The batch's inputs.
            y: The batch's targets.

        Returns:
            ``(leaves, gradient)``.
        """
        kept = self.kept.get(i)
        if kept is not None:
            return kept
        leaves, grads, _ = self.build(x, y)
        return leaves, grads

    def gradient(self, x: object, y: object, values: Mapping[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """One batch's loss ``ℓ(w')`` and gradient ``∇ℓ(w')`` with respect to the default
        parameters, at other values ``w'`` of some of them, without a graph (the check of the
        second derivatives differences these, :mod:`nets.engine.second_derivatives`).

        Args:
            x: The batch's inputs.
            y: The batch's targets.
            values: Parameter values by name that replace the graphs' own (the others keep
                theirs).

        Returns:
            ``(loss, gradient)``: the detached loss and ``{name: ∇_name ℓ}`` (``None`` where
            ``ℓ`` does not depend on the parameter).
        """
        _, grads, loss = gradient_graph(self._model, self._buffers, self._loss_fn,
                                        {**self._params, **values}, self._names, x, y,
                                        create_graph=False)
        return loss.detach(), grads

    def timed_build(self, x: object, y: object, names: Sequence[str] | None = None
                    ) -> tuple[tuple[dict, dict, torch.Tensor], float]:
        """:meth:`build` and its wall seconds (synchronized with a GPU).

        Args:
            x: The batch's inputs.
            y: The batch's targets.
            names: As in :meth:`build`.

        Returns:
            ``(built, seconds)``: :meth:`build`'s triple and the build's wall seconds.
        """
        t0 = time.perf_counter()
        built = self.build(x, y, names)
        synchronize(self._device)
        return built, time.perf_counter() - t0

    def new(self, i: int, x: object, y: object, *, keep: bool, samples: int,
            names: Sequence[str] | None = None) -> tuple[Graph, torch.Tensor]:
        """Build a graph the products run on: its time counts in :attr:`seconds`.

        Args:
            i: The batch's index.
            x: The batch's inputs.
            y: The batch's targets.
            keep: Keep the graph for later calls (:meth:`keep`).
            samples: The batch's samples (its kept bytes are estimated from them).
            names: As in :meth:`build`.

        Returns:
            ``((leaves, gradient), loss)``.
        """
        (leaves, grads, loss), seconds = self.timed_build(x, y, names)
        self.seconds += seconds
        if keep:
            self.keep(i, (leaves, grads), samples)
        return (leaves, grads), loss

    def keep(self, i: int, graph: Graph, samples: int) -> None:
        """Keep a batch's graph for later calls, counting its estimated bytes.

        Args:
            i: The batch's index.
            graph: Its ``(leaves, gradient)``.
            samples: Its samples (:meth:`nets.engine.budget.MemoryPlan.estimated_bytes`).
        """
        self.kept[i] = graph
        self.kept_bytes += self._plan.estimated_bytes(samples)

    def drop(self) -> None:
        """Drop every kept graph."""
        self.kept.clear()
        self.kept_bytes = 0

    def fits(self, samples: int) -> bool:
        """Whether one more graph fits beside the kept ones
        (:meth:`nets.engine.budget.MemoryPlan.fits`, the plan's ``"keep-all"`` test batch by
        batch: every batch fits exactly when all graphs do).

        Args:
            samples: The batch's samples.

        Returns:
            Whether its graph, those kept so far and one tangent's room fit the budget.
        """
        return self._plan.fits(self.kept_bytes, samples)

    def forward_loss(self, x: object, y: object, *, record: bool) -> torch.Tensor:
        """A batch's loss by a forward call on the products' path (the operator's parameters
        as leaves that require gradients).

        Args:
            x: The batch's inputs.
            y: The batch's targets.
            record: Record autograd (as a build does, without its backward).

        Returns:
            The batch loss.
        """
        with torch.set_grad_enabled(record):
            return batch_loss(self._model, self._buffers, self._loss_fn, self._params,
                              self._names, x, y)[1]

    def check_loss(self, i: int, x: object, y: object, k: int) -> torch.Tensor:
        """Batch ``i``'s loss for :func:`nets.engine.adapters.prepare_data`'s checks
        (evaluation ``k``).

        Every evaluation runs the products' own forward path (the operator's parameters as
        leaves that require gradients), and all but one of them are graph builds the products
        need anyway:

        * batch 0, first evaluation: :meth:`measure_first` builds its gradient graph, measures
          it and keeps it for the products while it fits the budget (:meth:`fits`);
        * batch 0's second evaluation (the determinism check): the same forward, recorded by
          autograd as in a build, without the backward (no graph is built twice);
        * every other batch: its gradient graph is built and kept for the products
          (:meth:`new`) while all of them fit, so an operator that keeps every graph pays for
          its data check with its products' graph builds and one forward, and no call of its
          own.

        Where graphs are not kept (:attr:`keeping` false, a graph over the budget, or a model
        whose gradient graph cannot be built) a batch is checked by a forward call, without
        autograd for batches other than 0; the first batch over the budget drops the graphs
        kept before it (the operator's first call then holds one graph at a time: the same
        test).

        Args:
            i: The batch's index.
            x: The batch's inputs.
            y: The batch's targets.
            k: The evaluation's number for this batch (batch 0 is evaluated twice).

        Returns:
            The batch loss (detached where a graph was built).
        """
        if i == 0:
            return self.measure_first(x, y) if k == 0 else self.forward_loss(x, y, record=True)
        if self.keeping and self.fits(batch_size(y, x)):
            return self.new(i, x, y, keep=True, samples=batch_size(y, x))[1].detach()
        if self.keeping:
            self.keeping = False
            self.drop()
        return self.forward_loss(x, y, record=False)

    def measure_first(self, x: object, y: object) -> torch.Tensor:
        """Build the first batch's gradient graph, measure it and keep it while it fits; its
        (detached) loss.

        The graph is measured by walking it (:func:`nets.engine.memory.saved_by_graph`), which
        leaves it as fast as any other: it becomes batch 0's kept graph where it fits the budget
        with one tangent's room (:meth:`fits`), and is dropped otherwise. Only a graph whose
        nodes the walk cannot read is measured on a second build, under
        :class:`nets.engine.memory.SavedBytes` (:meth:`measure_unkept`), and dropped: those
        hooks would stay in it and run (in Python) at every unpack of every later double
        backward, about a third more time per product. Batch ``i``'s size is estimated as the
        measured size times ``n_i / n_0`` (activations grow with the number of samples).
        The data check calls this as its first evaluation of the first batch, so measuring
        costs no forward call of its own. A graph that cannot be built here (a model that has no
        backward) is left to the operator's first call, which reports the failure; the batch is
        then checked by a forward call with autograd recording (the path of its second
        evaluation). Either way the loss's graph is searched for custom ``autograd.Function``
        nodes (:attr:`custom_functions`, which decide the operator's check of the second
        derivatives).

        Args:
            x: The first batch's inputs.
            y: Its targets.

        Returns:
            The batch loss.
        """
        try:
            (leaves, grads, loss), seconds = self.timed_build(x, y)
        except (NotImplementedError, RuntimeError):
            self.keeping = False
            loss = self.forward_loss(x, y, record=True)
            self.custom_functions = custom_functions(loss)
            return loss
        self.custom_functions = custom_functions(loss)
        saved = saved_by_graph(grads.values(), exclude=self._params.values())
        if saved is None:  # a node the walk cannot read: measured by hooks on a second build
            del leaves, grads
            return self.measure_unkept(x, y).detach()
        self._measured(saved.bytes, saved.float_dtypes, batch_size(y, x), seconds)
        if self.keeping and self.fits(batch_size(y, x)):  # the products run on it: its build
            self.keep(0, (leaves, grads), batch_size(y, x))  # counts
            self.seconds += seconds
        else:
            self.keeping = False
        return loss.detach()

    def measure_unkept(self, x: object, y: object) -> torch.Tensor:
        """Build one batch's gradient graph under :class:`nets.engine.memory.SavedBytes` and
        drop it, recording its size in the plan, its saved dtypes and its build time.

        Args:
            x: The batch's inputs.
            y: Its targets.

        Returns:
            The batch loss.
        """
        with torch.enable_grad(), SavedBytes(exclude=self._params.values()) as saved:
            (_, _, loss), seconds = self.timed_build(x, y)
        self._measured(saved.bytes, saved.float_dtypes, batch_size(y, x), seconds)
        return loss

    def _measured(self, size: int, dtypes: Iterable[torch.dtype], samples: int,
                  seconds: float) -> None:
        """Record batch 0's measured graph: ``size`` bytes over ``samples`` samples
        (:meth:`nets.engine.budget.MemoryPlan.measured`), saving tensors of ``dtypes``, built
        in ``seconds``."""
        self._plan.measured(size, samples)
        self.saved_dtypes = tuple(dtypes)
        self.first_build_seconds = seconds


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (GPU), so that a wall time measures them.

    Args:
        device: The device whose kernels are waited for (nothing to wait for on a CPU).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
