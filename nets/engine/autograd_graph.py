"""Walking an autograd graph: every node reachable from some tensors' ``grad_fn``, once.

The engine reads two things off a graph it has built, without changing it: what its nodes
saved for backward (:func:`nets.engine.memory.saved_by_graph`, the memory budget's measure and
the precision the model computes in) and which custom ``torch.autograd.Function`` classes it
holds (:func:`nets.engine.second_derivatives.custom_functions`). Both visit the nodes through
:func:`graph_nodes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

__all__ = ["graph_nodes"]


def graph_nodes(tensors: Iterable[torch.Tensor | None]) -> Iterator[object]:
    """Every node of the graph behind ``tensors``, each once (depth first, along
    ``next_functions``).

    Args:
        tensors: The graph's outputs (``None`` and tensors without a ``grad_fn`` are skipped).

    Yields:
        The autograd nodes (``torch.autograd.graph.Node``; a custom Function's is a
        ``torch.autograd.function.BackwardCFunction``).
    """
    stack = [t.grad_fn for t in tensors if t is not None and t.grad_fn is not None]
    visited: set = set()
    while stack:
        node = stack.pop()
        if node in visited:
            continue
        visited.add(node)
        yield node
        stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)
