"""Lanczos groups: the memory a blockwise Lanczos run's vectors take, and how its blocks are
packed into runs that fit a budget.

A blockwise run keeps, for every probe of every block, its own Lanczos vectors
(:func:`lanczos_probe_bytes`), and one float64 work stack shared by the blocks that run
together (:func:`lanczos_work_bytes`). :func:`lanczos_groups` packs the blocks, in order, into
groups whose vectors fit the bytes that :meth:`nets.engine.hvp.BlockHVP.vector_budget` leaves
for them, cutting a block into chunks of probes only when its probes alone do not fit;
:func:`nets.engine.spectrum.operator_spectra` then runs one Lanczos per group. The packing
counts bytes, not the measured cost of the blocks' products.
"""

from __future__ import annotations

from collections.abc import Sequence

from nets.engine.checks import check_int

__all__ = ["lanczos_group_floor_bytes", "lanczos_groups", "lanczos_probe_bytes",
           "lanczos_work_bytes"]


def lanczos_probe_bytes(dim: int, steps: int, itemsize: int, products: int = 1) -> int:
    """Bytes of its own vectors one probe of a block of dimension ``dim`` holds during a
    Lanczos run.

    ``(k + 2 + c) · d`` numbers of ``itemsize`` bytes: the basis ``Q_k`` of ``k = min(steps, d)``
    rows, the start vector (its caller's, alive through the run), the vector passed to the
    products and ``c = products`` copies of its product (two
    where the operator sums batches: the sum so far and one batch's products,
    :attr:`nets.engine.hvp.BlockHVP.product_copies`). The float64 work stack, one
    ``8 d``-byte row per probe, is shared by the blocks of a run and sized by the largest
    (:func:`lanczos_work_bytes`, :func:`lanczos_groups`'s ``shared``).

    Args:
        dim: Block dimension ``d``.
        steps: Lanczos steps asked for.
        itemsize: Bytes per number of the stored vectors (4 for a float32 model).
        products: Copies of the product a call holds at once (at least 1).
    """
    dim = check_int("dim", dim, minimum=0)
    steps = check_int("steps", steps, minimum=1)
    itemsize = check_int("itemsize", itemsize, minimum=1)
    products = check_int("products", products, minimum=1)
    return (min(steps, dim) + 2 + products) * dim * itemsize


def lanczos_work_bytes(dim: int) -> int:
    """Bytes per probe of a block of dimension ``dim`` in the float64 work stack of a Lanczos
    run, ``8 d``: one stack serves all the blocks of a run, as large as the largest block's
    ``m × d`` (:func:`nets.engine.lanczos.lanczos`).

    Args:
        dim: Block dimension ``d``.
    """
    return 8 * check_int("dim", dim, minimum=0)


def lanczos_group_floor_bytes(dim: int, steps: int, itemsize: int, products: int = 1) -> int:
    """Bytes of the smallest group a block of dimension ``dim`` can run in: one probe's own
    vectors (:func:`lanczos_probe_bytes`), its row of the float64 work stack
    (:func:`lanczos_work_bytes`) and, for a basis narrower than float64 (``itemsize < 8``), one
    ``8 d``-byte row of the float64 buffer the basis is read into for reorthogonalization (at
    least one row, :func:`nets.engine.lanczos.lanczos`).

    A run whose vectors get less room than the largest block's floor still runs that group,
    over the budget (:meth:`nets.engine.hvp.BlockHVP.reserve_vectors`).

    Args:
        dim: Block dimension ``d``.
        steps: Lanczos steps asked for.
        itemsize: Bytes per number of the stored vectors.
        products: Copies of the product a call holds at once (at least 1).
    """
    chunk_row = 8 * dim if itemsize < 8 else 0
    return (lanczos_probe_bytes(dim, steps, itemsize, products) + lanczos_work_bytes(dim)
            + chunk_row)


def lanczos_groups(per_probe: Sequence[int], probes: int, limit: int,
                   lean: int | None = None, shared: Sequence[int] | None = None
                   ) -> list[list[tuple[int, int, int]]]:
    """Split a blockwise Lanczos run into groups whose vectors fit a memory budget.

    Block ``l`` with ``m`` probes keeps ``m · per_probe[l]`` bytes of Lanczos vectors of its
    own, and the group it runs in holds one buffer shared by all its pieces, of the largest
    piece's ``m · shared[l]`` bytes: a group of pieces ``G`` takes
    ``Σ_G m · per_probe[l] + max_G m · shared[l]``. A block whose probes alone exceed ``limit``
    is cut into chunks of as many probes as fit (at least one); the pieces are then packed in
    order into groups of at most ``limit`` bytes, or of at most ``lean`` bytes when given (a
    piece larger than that is a group of its own). No group holds two pieces of one block.

    Args:
        per_probe: Bytes of one probe's own Lanczos vectors, per block
            (:func:`lanczos_probe_bytes`).
        probes: Probes per block ``m``.
        limit: Bytes the vectors of a group may take (probes are split only to meet it).
        lean: A smaller bound for packing whole blocks (see
            :meth:`nets.engine.hvp.BlockHVP.vector_budget`), or ``None``.
        shared: Bytes per probe, per block, of the buffer a group's blocks share
            (:func:`lanczos_work_bytes`); default none.

    Returns:
        Groups of pieces ``(block, first probe position, end position)``, covering every block's
        positions ``0..probes`` exactly once, blocks in order.
    """
    probes = check_int("probes", probes, minimum=1)
    limit = check_int("limit", limit, minimum=0)
    cap = limit if lean is None else min(limit, check_int("lean", lean, minimum=0))
    own = [check_int("per_probe entry", pp, minimum=0) for pp in per_probe]
    if shared is None:
        shared = [0] * len(own)
    elif len(shared) != len(own):
        raise ValueError(f"shared must give one number per block like per_probe "
                         f"({len(own)}), got {len(shared)}")
    common = [check_int("shared entry", sh, minimum=0) for sh in shared]
    pieces = []
    for blk, (pp, sh) in enumerate(zip(own, common, strict=True)):
        step = probes if probes * (pp + sh) <= limit else max(1, limit // max(pp + sh, 1))
        pieces += [(blk, p0, min(p0 + step, probes), min(p0 + step, probes) - p0)
                   for p0 in range(0, probes, step)]
    groups: list[list[tuple[int, int, int]]] = []
    used = top = 0
    for blk, p0, p1, m in pieces:
        size, common_size = m * own[blk], m * common[blk]
        if not groups or used + size + max(top, common_size) > cap or any(
                g[0] == blk for g in groups[-1]):
            groups.append([])
            used = top = 0
        groups[-1].append((blk, p0, p1))
        used += size
        top = max(top, common_size)
    return groups
