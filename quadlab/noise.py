"""Gradient-noise models: stochastic quadratics with a controllable noise covariance.

The optimizer sees a stochastic gradient g̃ with E[g̃] = ∇L(w) = He (e = w − w*); the loss gap
the lab records stays the true one, L(w_t) − L* = ½ eᵀHe.

* `GaussianNoise(cov, scale)`: g̃ = He + ξ, ξ ~ N(0, scale² Σ / B) independent across steps,
  with Σ = I ("isotropic"), Σ = H ("hessian", the Gauss–Newton shape of seed 002), or any
  positive semi-definite d×d array (a 1-D array means diag(array)). B is the batch size.
* `LeastSquaresNoise(n_samples=N, sigma=σ, replace=…)`: the quadratic is the least-squares
  loss L(w) = (1/2N)‖Xw − y‖² + const of N data rows with XᵀX/N = H exactly, and the optimizer
  sees the minibatch gradient g̃ = (1/B) Σ_{i∈batch} x_i (x_iᵀe − r_i) of B rows drawn each step
  (with or without replacement). The data: X = √N Z H^{1/2} with Z an N×d matrix with
  orthonormal columns (Haar, seeded), residuals r ⟂ range(X) with ‖r‖²/N = σ², so the full-batch
  gradient is exactly He. Near the optimum the noise covariance is
  (1/B)(1/N) Σ_i r_i² x_i x_iᵀ ≈ σ² H / B — the Gauss–Newton view g gᵀ ≈ σ² H of seed 002.

`covariance(problem, e, batch_size)` gives the exact covariance of g̃ at a point (the number
the statistical tests check the kernels against). Sampling happens inside the numba kernels
(`quadlab.kernels.noisy_gradient`) with one counter-based stream per trajectory (`quadlab.rng`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .problem import Problem, check_problem
from .rng import lane_states
from .validation import ArrayLike, as_float_array, as_real, check_memory

#: kernel codes of the noise models
NONE = 0
GAUSSIAN = 1
LEAST_SQUARES = 2

#: relative tolerance for accepting a covariance as symmetric positive semi-definite
PSD_RTOL = 1e-10


def _sqrtm_psd(block: np.ndarray) -> np.ndarray:
    lam, q = np.linalg.eigh(0.5 * (block + block.T))
    return (q * np.sqrt(np.clip(lam, 0.0, None))) @ q.T


@dataclass(frozen=True, eq=False)
class GaussianNoise:
    """Additive Gaussian gradient noise ξ ~ N(0, scale² Σ / B).

    Attributes:
        cov: "isotropic" (Σ = I), "hessian" (Σ = H), a (d,) array of variances (Σ = diag) or a
            (d, d) symmetric positive semi-definite array.
        scale: σ >= 0; σ = 0 gives exactly the deterministic gradient (bitwise).
    """

    cov: str | np.ndarray = "isotropic"
    scale: float = 1.0

    def __post_init__(self):
        scale = as_real(self.scale, name="noise scale")
        if not np.isfinite(scale) or scale < 0:
            raise ValueError(f"noise scale must be finite and >= 0, got {self.scale!r}")
        object.__setattr__(self, "scale", scale)
        if isinstance(self.cov, str):
            if self.cov not in ("isotropic", "hessian"):
                raise ValueError(f"unknown covariance {self.cov!r}; choose 'isotropic', "
                                 "'hessian' or pass an array")
            return
        arr = as_float_array(self.cov, name="noise covariance")
        if arr.ndim == 1:
            if np.any(arr < 0):
                raise ValueError("noise covariance: diagonal variances must be >= 0")
        elif arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
            top = max(float(np.max(np.abs(arr))), 1e-300)
            if np.max(np.abs(arr - arr.T)) > PSD_RTOL * top:
                raise ValueError("noise covariance is not symmetric")
            lam_min = float(np.linalg.eigvalsh(0.5 * (arr + arr.T))[0])
            if lam_min < -PSD_RTOL * top:
                raise ValueError(f"noise covariance is not positive semi-definite: smallest "
                                 f"eigenvalue {lam_min:.3g}")
        else:
            raise ValueError(f"noise covariance must have shape (d,) or (d, d), got {arr.shape}")
        arr.setflags(write=False)
        object.__setattr__(self, "cov", arr)

    def sigma_matrix(self, problem: Problem) -> np.ndarray:
        """Σ as a dense d×d array (checking its size against the problem).

        Args:
            problem: the quadratic whose dimension d Σ must match.
        """
        if isinstance(self.cov, str):
            return np.eye(problem.d) if self.cov == "isotropic" else problem.hessian()
        if self.cov.shape[0] != problem.d:
            raise ValueError(f"noise covariance has size {self.cov.shape[0]} but the problem "
                             f"has d = {problem.d}")
        return np.diag(self.cov) if self.cov.ndim == 1 else np.array(self.cov)

    def covariance(self, problem: Problem, e: ArrayLike | None = None,
                   batch_size: int = 1) -> np.ndarray:
        """Covariance of g̃ (any point: the noise is additive): scale² Σ / B, shape (d, d).

        Args:
            problem: the quadratic.
            e: the error w − w* (ignored: additive noise does not depend on it).
            batch_size: B >= 1.
        """
        batch_size = check_batch_size(batch_size, None)
        return self.scale**2 * self.sigma_matrix(problem) / batch_size

    def factor_blocks(self, problem: Problem) -> list[np.ndarray]:
        """Blocks F_j of a block-diagonal F with F Fᵀ = Σ (symmetric square roots).

        Args:
            problem: the quadratic (its block structure).
        """
        if isinstance(self.cov, str):
            if self.cov == "isotropic":
                return [np.ones((1, 1))] * problem.d
            return [_sqrtm_psd(b) for b in problem.blocks]
        if self.cov.shape[0] != problem.d:
            raise ValueError(f"noise covariance has size {self.cov.shape[0]} but the problem "
                             f"has d = {problem.d}")
        if self.cov.ndim == 1:
            return [np.sqrt(np.array([[c]])) for c in self.cov]
        return [_sqrtm_psd(np.array(self.cov))]

    def label(self) -> str:
        """Short description for tables."""
        cov = self.cov if isinstance(self.cov, str) else "custom"
        return f"gaussian({cov}, σ={self.scale:g})"


@dataclass(frozen=True, eq=False)
class LeastSquaresData:
    """The data rows of a least-squares problem: X (N, d) and residuals r (N,) at w*."""

    x: np.ndarray = field(repr=False)
    r: np.ndarray = field(repr=False)

    @property
    def n_samples(self) -> int:
        """N, the number of rows."""
        return self.x.shape[0]


@dataclass(frozen=True, eq=False)
class LeastSquaresNoise:
    """Minibatch noise of a least-squares loss with N rows and residual scale σ.

    Attributes:
        n_samples: N > d data rows.
        sigma: rms residual σ >= 0 at the optimum (‖r‖²/N = σ²).
        replace: draw the B rows of each step with replacement (default) or without.
        data_seed: seed of the data (Z and r), separate from the per-step sampling seed.
    """

    n_samples: int = 1024
    sigma: float = 1.0
    replace: bool = True
    data_seed: int = 0

    def __post_init__(self):
        n = self.n_samples
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
            raise ValueError(f"n_samples must be an integer >= 2, got {n!r}")
        sigma = as_real(self.sigma, name="sigma")
        if not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be finite and >= 0, got {self.sigma!r}")
        object.__setattr__(self, "sigma", sigma)
        if not isinstance(self.replace, bool | np.bool_):
            raise ValueError(f"replace must be a bool, got {self.replace!r}")
        if isinstance(self.data_seed, bool) or not isinstance(self.data_seed, int | np.integer) \
                or self.data_seed < 0:
            raise ValueError(f"data_seed must be an int >= 0, got {self.data_seed!r}")

    def data(self, problem: Problem) -> LeastSquaresData:
        """X = √N Z H^{1/2} and r ⟂ range(X) with ‖r‖²/N = σ² (so XᵀX/N = H, Xᵀr = 0).

        Args:
            problem: the quadratic whose Hessian H the data reproduce.
        """
        n, d = int(self.n_samples), problem.d
        if n <= d:
            raise ValueError(f"n_samples must exceed d = {d} (r ⟂ range(X) needs N > d), "
                             f"got {n}")
        rng_z, rng_r = (np.random.default_rng(s)
                        for s in np.random.SeedSequence(self.data_seed).spawn(2))
        z, rr = np.linalg.qr(rng_z.standard_normal((n, d)))
        z = z * np.sign(np.diag(rr))
        half = np.zeros((d, d))
        for sl, lam, q in zip(problem.block_slices, problem.eigenvalues, problem.eigenvectors,
                              strict=True):
            half[sl, sl] = (q * np.sqrt(lam)) @ q.T
        x = np.sqrt(n) * z @ half
        u = rng_r.standard_normal(n)
        u -= z @ (z.T @ u)
        u -= z @ (z.T @ u)  # twice: orthogonal to working precision
        r = u * (self.sigma * np.sqrt(n) / np.linalg.norm(u)) if self.sigma > 0 else 0.0 * u
        return LeastSquaresData(np.ascontiguousarray(x), np.ascontiguousarray(r))

    def covariance(self, problem: Problem, e: ArrayLike | None = None,
                   batch_size: int = 1) -> np.ndarray:
        """Exact covariance of the minibatch gradient at the error e = w − w* (default 0).

        Args:
            problem: the quadratic.
            e: the error w − w*, shape (d,); None for 0.
            batch_size: B, 1 <= B <= N.

        With per-row gradients a_i = x_i (x_iᵀe − r_i) and their mean ā = He,
        C_1 = (1/N) Σ_i a_i a_iᵀ − ā āᵀ; the covariance is C_1 / B with replacement and
        C_1 / B · (N − B)/(N − 1) without.
        """
        data = self.data(problem)
        n = data.n_samples
        batch_size = check_batch_size(batch_size, self)
        e = np.zeros(problem.d) if e is None else as_float_array(e, name="e", ndim=1)
        a = data.x * (data.x @ e - data.r)[:, None]
        mean = a.mean(axis=0)
        c1 = a.T @ a / n - np.outer(mean, mean)
        fpc = 1.0 if self.replace else (n - batch_size) / (n - 1)
        return c1 * fpc / batch_size

    def label(self) -> str:
        """Short description for tables."""
        how = "with" if self.replace else "without"
        return f"least-squares(N={self.n_samples}, σ={self.sigma:g}, {how} replacement)"


NoiseModel = GaussianNoise | LeastSquaresNoise


def check_batch_size(batch_size, noise) -> int:
    """An integer batch size B >= 1 (and <= N for least-squares noise)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(noise, LeastSquaresNoise) and batch_size > noise.n_samples:
        raise ValueError(f"batch_size {batch_size} exceeds the {noise.n_samples} data rows")
    return int(batch_size)


def kernel_noise(problem: Problem, noise: NoiseModel | None, batch_size: int) -> tuple:
    """The noise model as the tuple the kernels take.

    (code, amp, f_flat, f_off, fc_off, x, r, batch, replace): `amp` = scale/√B and the packed
    blocks of the factor F for Gaussian noise; the data rows for least squares.
    """
    empty_f = np.zeros(0)
    empty_i = np.zeros(1, dtype=np.int64)
    empty_x = np.zeros((0, problem.d))
    if noise is None:
        if batch_size != 1:
            raise ValueError("batch_size needs a noise model (noise=GaussianNoise(...) or "
                             "LeastSquaresNoise(...))")
        return (NONE, 0.0, empty_f, empty_i, empty_i, empty_x, empty_f, 1, True)
    if not isinstance(noise, GaussianNoise | LeastSquaresNoise):
        raise ValueError(f"noise must be a GaussianNoise or LeastSquaresNoise, "
                         f"got {type(noise).__name__}")
    batch_size = check_batch_size(batch_size, noise)
    if isinstance(noise, GaussianNoise):
        blocks = noise.factor_blocks(problem)
        sizes = np.array([b.shape[0] for b in blocks], dtype=np.int64)
        f_off = np.concatenate([[0], np.cumsum(sizes * sizes)]).astype(np.int64)
        fc_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        f_flat = np.ascontiguousarray(np.concatenate([b.ravel() for b in blocks]))
        amp = noise.scale / np.sqrt(batch_size)
        return (GAUSSIAN, float(amp), f_flat, f_off, fc_off, empty_x, empty_f, batch_size, True)
    data = noise.data(problem)
    return (LEAST_SQUARES, 0.0, empty_f, empty_i, empty_i, data.x, data.r, batch_size,
            bool(noise.replace))


def sample_gradients(problem: Problem, noise: NoiseModel, w: ArrayLike, *,
                     batch_size: int = 1, n_samples: int,
                     seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """Independent draws of the stochastic gradient g̃ at the point w, by the kernels' sampler.

    Lane i of the kernel (stream i of `seed`) gives draw i, exactly as trajectory i of a run
    would see it at its first step.

    Args:
        problem: the quadratic.
        noise: the noise model (`GaussianNoise` or `LeastSquaresNoise`).
        w: the point, shape (d,).
        batch_size: B >= 1.
        n_samples: number of independent draws (>= 1).
        seed: an int >= 0 or a SeedSequence (draw i uses stream i).

    Returns:
        Array of shape (n_samples, d).
    """
    check_problem(problem)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) \
            or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    check_memory(5 * 8 * int(n_samples) * problem.d, what=f"{n_samples} gradient samples",
                 fix="use fewer n_samples")
    w = as_float_array(w, name="w", ndim=1)
    if w.shape != (problem.d,):
        raise ValueError(f"w must have shape ({problem.d},), got {w.shape}")
    if noise is None:
        raise ValueError("sample_gradients needs a noise model")
    kn = kernel_noise(problem, noise, batch_size)
    e = np.ascontiguousarray(np.repeat((w - problem.w_star)[:, None], n_samples, axis=1))
    g = np.ascontiguousarray(problem.matvec(e.T).T)
    gn, z, idx = kernels.noise_buffers(kn, e)
    kernels.noisy_gradient(kn, e, g, gn, z, lane_states(seed, n_samples), idx)
    return gn.T.copy()
