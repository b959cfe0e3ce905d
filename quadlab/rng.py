"""A counter-based random generator for the numba kernels: one independent stream per trajectory.

The generator itself (`next_u64`, `uniform`, `fill_normals`) is compiled in `quadlab.kernels`,
in the same file as the kernels that inline it: numba's on-disk cache only notices changes to
the file of the function it caches. This module seeds the lanes.

Each trajectory ("lane") owns a 64-bit counter. A draw advances the counter by the golden-ratio
increment and returns the splitmix64 finaliser of it (Steele, Lea & Flood 2014), a bijective
mix that passes BigCrush. Gaussians come from Marsaglia's polar method, two per accepted
pair of uniforms.

Why this design:
* No global state: the kernels only touch the counters they are handed.
* Results do not depend on chunking or thread scheduling: lane k only ever reads and advances
  its own counter, so a trajectory is the same whether it runs alone or among thousands.
* The lane counters are scrambled from the state of `numpy.random.SeedSequence(seed)` and the
  lane index (`lane_states`), so seeds are explicit and reproducible, and setting up a
  million lanes costs milliseconds. A sequence of seeds gives lane i the stream 0 of
  ``seeds[i]``. Hence row i of a batch run with seeds ``[s_0, …, s_{n−1}]`` equals a single
  run with seed ``s_i``, and the first rows of a batch with one integer seed do not depend on
  how many rows follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba as nb
import numpy as np

from .kernels import _M1, _M2, _S27, _S30, _S31, fill_normals, next_u64, uniform

__all__ = ["fill_normals", "lane_states", "next_u64", "standard_normals", "uniform"]

_NB = {"cache": True, "nogil": True, "error_model": "numpy"}

_GAMMA_LANE = np.uint64(0xD1B54A32D192ED03)


@nb.njit(**_NB)
def _spread(base, first, n, out):
    """out[i] = splitmix64(base + (first + i + 1)·γ'): well-separated start counters."""
    for i in range(n):
        s = base + np.uint64(first + i + 1) * _GAMMA_LANE
        z = (s ^ (s >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        out[i] = z ^ (z >> _S31)


def _base(seed) -> np.uint64:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return ss.generate_state(1, np.uint64)[0]


def lane_states(seed: int | np.random.SeedSequence | Sequence[int], n: int) -> np.ndarray:
    """Initial counters of n lanes, shape (n,) uint64 (see the module docstring).

    Lane i of seed s starts at splitmix64(b + (i+1)·γ'), b the 64-bit state that
    `SeedSequence(s)` generates and γ' an odd constant; a sequence of seeds gives lane i the
    lane-0 counter of its own seed. The starts are scrambled 64-bit values, so the streams (at
    most ~10⁹ draws each here) overlap with probability below n²·10⁹/2⁶⁴.

    Args:
        seed: an int >= 0 or a `numpy.random.SeedSequence` (lane i gets stream i), or a
            sequence of n ints >= 0 (lane i gets stream 0 of ``seed[i]``).
        n: number of lanes.

    Raises:
        ValueError: negative or non-integer seed, or a sequence whose length is not n.
    """
    out = np.empty(n, dtype=np.uint64)
    if isinstance(seed, np.random.SeedSequence) or (
            isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        if not isinstance(seed, np.random.SeedSequence) and seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        _spread(_base(seed), 0, n, out)
        return out
    try:
        seeds = list(seed)
    except TypeError:
        raise ValueError(f"seed must be an int, a SeedSequence or a sequence of ints, "
                         f"got {type(seed).__name__}") from None
    if len(seeds) != n:
        raise ValueError(f"seed has {len(seeds)} entries but there are {n} trajectories")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
            raise ValueError(f"per-trajectory seeds must be ints >= 0, got {s!r}")
        _spread(_base(int(s)), 0, 1, out[i:i + 1])
    return out


def standard_normals(seed: int | np.random.SeedSequence | Sequence[int],
                     shape: tuple[int, int]) -> np.ndarray:
    """Draws of the kernels' generator, shape (d, n): column k is lane k's first d normals.

    Args:
        seed: as `lane_states`.
        shape: (d, n).

    For tests and for checking the generator; the kernels call `fill_normals` directly.
    """
    d, n = shape
    state = lane_states(seed, n)
    z = np.empty((d, n))
    fill_normals(state, z)
    return z
