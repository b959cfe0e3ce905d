r"""The model-size ladder study: at every size of a family, blockwise spectra at initialization,
every predictor candidate (JS0 per density recipe, block-scale statistics) with bootstrap
intervals, and the tuned SGD-with-momentum vs Adam gap at two batch sizes.

Per rung (:mod:`nets.zoo.families`) of a :class:`LadderProfile`:

1. **Spectra**: :func:`nets.blockwise_spectrum` of the model at seed 0 on the rung's
   *spectrum* split (real data, :mod:`nets.zoo.realdata`), one block per parameter tensor,
   ``lanczos_steps`` steps and ``probes`` probes; stored in the cache (kind ``ladder-spectra``)
   with the seconds it took, so a rerun or a new density recipe costs no HVP.
2. **Candidates**: :func:`nets.studies.predictor.candidate_values` (bootstrap over probes).
3. **Gap**: :func:`nets.studies.gap.measure_gap` with the profile's :class:`GapProfile`
   (learning rates tuned on a log grid, ≥ 3 seeds, two batch sizes) on the *training* split,
   for rungs with at most ``gap_max_params`` parameters; larger rungs get spectra only and
   their record says so (``gap: null``, ``gap_skipped``).

Everything goes through :func:`labkit.cache.cached` (spectra per rung, every training run), so
an interrupted ladder resumes where it stopped. With a distributed communicator the rungs'
spectra are shared out among the ranks (:meth:`Communicator.map`) and each rung's training grid
is shared out by :func:`measure_gap`.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from labkit.cache import cached, code_version
from nets.engine.distributed import Communicator, local_device
from nets.engine.results import fingerprint
from nets.engine.slq import BlockSpectrum
from nets.engine.spectrum import blockwise_spectrum
from nets.studies.gap import SPECTRUM_MODULES, GapProfile, device_settings, measure_gap
from nets.studies.pools import POOL_SEED
from nets.studies.predictor import candidate_values
from nets.studies.tasks import BASE_MODULES, Task
from nets.studies.training import Pool
from nets.zoo.factory import is_factory, load_factory, resolve_family_size
from nets.zoo.families import Rung, build_rung, ladder, parameter_count, rung_data

__all__ = ["LADDER_PROFILES", "LadderProfile", "factory_record", "ladder_record", "ladder_task",
           "run_ladder", "rung_spectra"]

#: Modules whose code determines a rung's results (part of every cache key).
MODULES = (*BASE_MODULES, "nets.zoo.models", "nets.zoo.families", "nets.zoo.realdata")


@dataclass(frozen=True)
class LadderProfile:
    """Budget of a ladder run.

    Attributes:
        name: Profile name.
        rungs: Key of :data:`nets.zoo.families.LADDERS` (which sizes).
        lanczos_steps: Lanczos steps per block.
        probes: Probes per block.
        spectrum_samples: Samples of the spectrum split the Hessian is averaged over.
        spectrum_batch: Batch size of the HVPs.
        n_boot: Bootstrap resamples of the candidates.
        gap: Training budget (``None``: spectra only).
        gap_max_params: The gap is measured only at rungs with at most this many parameters.
    """

    name: str
    rungs: str
    lanczos_steps: int
    probes: int
    spectrum_samples: int
    spectrum_batch: int
    n_boot: int
    gap: GapProfile | None
    gap_max_params: int


#: The ``ladder`` profile's learning-rate grids (half a decade apart). The first ladder run,
#: with SGD on (0.01, 0.1, 1) and Adam on (1e-4, 1e-3, 1e-2), tuned Adam to 1e-2, its grid's
#: top, on 7 of 7 families at B = 64 and SGD to 0.01, its grid's bottom, on 3 of 7 at B = 8:
#: both grids are widened by a decade on the side where the tuned rate sat.
_SGD_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
_ADAM_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)

#: ``tiny``: the tests (seconds). ``ladder``: the documented CPU ladder (sizes ~4k–1M; see
#: docs/studies.md): spectra (20 Lanczos steps × 4 probes on 64 samples) at every size, the gap
#: (200 steps, the first-seed protocol of :mod:`nets.studies.gap`: every rate on seed 0, seeds
#: 1 and 2 at the tuned rate and its neighbours, so 13 runs per optimizer and batch size
#: instead of 21) only at sizes of at most 60k parameters (sizes 0 and 1 of every family):
#: the measured cost per training step grows ~3× from size 1 to size 2
#: (benchmarks/results/ladder-runtime.json), which puts the gaps of sizes 2–3 past the
#: profile's 3-hour budget. ``gpu``: the paper's sizes, spectra only.
LADDER_PROFILES: dict[str, LadderProfile] = {
    "tiny": LadderProfile("tiny", "tiny", 6, 3, 16, 8, 20,
                          GapProfile("ladder-tiny", steps=20, sgd_lrs=(0.1, 1.0),
                                     adam_lrs=(1e-3, 1e-2), seeds=(0, 1, 2),
                                     batch_sizes=(4, 16), pool_size=64, eval_every=10,
                                     js_steps=6, js_probes=3), 10**9),
    "ladder": LadderProfile("ladder", "ladder", 20, 4, 64, 32, 100,
                            GapProfile("ladder", steps=200, sgd_lrs=_SGD_LRS,
                                       adam_lrs=_ADAM_LRS, seeds=(0, 1, 2),
                                       batch_sizes=(8, 64), pool_size=1024, eval_every=50,
                                       js_steps=20, js_probes=4, protocol="first-seed"),
                            60_000),
    "gpu": LadderProfile("gpu", "gpu", 10, 2, 16, 8, 50, None, 0),
}


def _pool(rung: Rung, n: int) -> Pool:
    x, y = rung_data(rung, "train", n, seed=POOL_SEED)
    return Pool(x, y)


def ladder_task(rung: Rung, profile: LadderProfile) -> Task:
    """The :class:`nets.studies.tasks.Task` of one rung.

    Args:
        rung: The rung (:func:`nets.zoo.families.ladder`).
        profile: Sets the spectrum batches (``spectrum_samples``, ``spectrum_batch``).

    Returns:
        A task whose training pool is the rung's *training* split (seed
        :data:`nets.studies.pools.POOL_SEED`) and whose spectrum batches are its *spectrum*
        split.
    """
    return Task(rung.name, "words" if rung.vocab else "digits8", partial(build_rung, rung),
                partial(_spectrum_batches, rung, profile.spectrum_samples,
                        profile.spectrum_batch),
                {"task": "ladder", "rung": rung.name, "spectrum_samples":
                 profile.spectrum_samples, "spectrum_batch": profile.spectrum_batch},
                f"{rung.family} ladder size {rung.size}", MODULES, partial(_pool, rung))


def _spectrum_batches(rung: Rung, n: int, batch: int) -> list:
    x, y = rung_data(rung, "spectrum", n, seed=0)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def rung_spectra(rung: Rung, profile: LadderProfile, *, cache_dir: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu") -> tuple[dict[str, BlockSpectrum], float]:
    """Blockwise spectra of a rung at initialization (cached).

    Args:
        rung: The rung.
        profile: Lanczos steps, probes and spectrum batches.
        cache_dir: Cache folder (:func:`labkit.cache.cache_dir`).
        device: Where to compute (``"auto"``, ``"cpu"``, ``"cuda:1"``, ...); GPU results are
            cached apart from CPU ones (:func:`nets.studies.gap.device_settings`).

    Returns:
        ``({block: BlockSpectrum}, seconds the spectra took when first computed)``.
    """
    spectra, seconds, _ = _rung_spectra(rung, profile, cache_dir, device)
    return spectra, seconds


def _rung_spectra(rung: Rung, profile: LadderProfile, cache_dir, device):
    """:func:`rung_spectra` and the provenance of the spectra (:func:`_cached_spectra`)."""
    device = local_device(device)
    settings = {"rung": rung.name, "steps": profile.lanczos_steps, "probes": profile.probes,
                "samples": profile.spectrum_samples, "batch": profile.spectrum_batch,
                "seed": 0}
    if device.type != "cpu":
        settings.update(device_settings(device))

    model, loss_fn = build_rung(rung, 0, device=device)
    data = [(x.to(device), y.to(device)) for x, y in
            _spectrum_batches(rung, profile.spectrum_samples, profile.spectrum_batch)]
    return _cached_spectra(model, loss_fn, data, profile, settings, cache_dir)


def _cached_spectra(model, loss_fn, data, profile: LadderProfile, settings: dict,
                    cache_dir) -> tuple[dict[str, BlockSpectrum], float, dict]:
    """The spectra (cached), the seconds they took when computed, and their provenance
    ``{"fingerprint", "code"}``: the SHA-256 of the model's parameters and the spectrum batches
    (:func:`nets.engine.results.fingerprint`) and the version of the code that computes them."""
    def compute() -> dict:
        t0 = time.perf_counter()
        spectra = blockwise_spectrum(model, loss_fn, data, lanczos_steps=profile.lanczos_steps,
                                     probes=profile.probes, seed=0)
        return {"seconds": time.perf_counter() - t0,
                "blocks": {k: {"dim": s.dim, "nodes": s.nodes.tolist(),
                               "weights": s.weights.tolist(), "n_steps": s.n_steps.tolist(),
                               "probe_ids": s.probe_ids.tolist()} for k, s in spectra.items()}}

    fp = fingerprint(model, data)
    doc = cached("ladder-spectra", settings, compute, directory=cache_dir,
                 modules=MODULES + SPECTRUM_MODULES, fingerprint=fp)
    spectra = {k: BlockSpectrum(k, int(b["dim"]), np.asarray(b["nodes"], dtype=np.float64),
                                np.asarray(b["weights"], dtype=np.float64),
                                np.asarray(b["n_steps"], dtype=np.int64),
                                np.asarray(b["probe_ids"], dtype=np.int64))
               for k, b in doc["blocks"].items()}
    return spectra, float(doc["seconds"]), {"fingerprint": fp,
                                            "code": code_version(MODULES + SPECTRUM_MODULES)}


def ladder_record(rung: Rung, profile: LadderProfile, *, cache_dir: str | os.PathLike | None = None,
                  comm: Communicator | None = None,
                  progress: Callable[[str], None] | None = None, gap: bool = True,
                  device: str | torch.device = "cpu") -> dict:
    """The record of one rung (module docstring).

    Args:
        rung: The rung.
        profile: The ladder profile.
        cache_dir: Cache folder.
        comm: Communicator sharing the training grid out among ranks.
        progress: Called with a note after every training run.
        gap: Measure the gap where the profile allows it (``False``: spectra and candidates
            only, e.g. to get JS0 at every size before any training; the record says so).
        device: Where the spectra and the training runs are computed.

    Returns:
        ``{"family", "size", "name", "profile", "parameters", "blocks", "candidates",
        "js0", "spectrum_seconds", "gap", "gap_skipped", "spectra_fingerprint", "code"}``
        (``spectra_fingerprint``: SHA-256 of the model's parameters and the spectrum batches;
        ``code``: the version of the code that computed the spectra): ``candidates`` maps each
        predictor candidate to ``{"value", "low", "high"}``; ``js0`` the same for the JS0
        recipes; ``gap`` maps each batch size to the gap, tuned rates, final losses, the
        seed spread of the tuned final losses and the grid-edge flags (``None`` where the
        gap was not measured, with the reason in ``gap_skipped``).
    """
    spectra, spec_s, prov = _rung_spectra(rung, profile, cache_dir, device)
    rec = _spectra_record(rung.family, rung.size, rung.name, parameter_count(rung), spectra,
                          spec_s, profile, prov)
    n_params = rec["parameters"]
    if profile.gap is None or n_params > profile.gap_max_params or not gap:
        rec["gap_skipped"] = ("no training budget in this profile" if profile.gap is None else
                              f"{n_params} parameters > gap_max_params "
                              f"{profile.gap_max_params}: JS0 only at this size"
                              if n_params > profile.gap_max_params else
                              "gap not requested in this run (spectra only)")
        return rec
    t0 = time.perf_counter()
    rep = measure_gap(ladder_task(rung, profile), profile.gap, cache_dir=cache_dir,
                      with_js0=False, progress=progress, comm=comm, device=device)
    rec["gap_seconds_this_call"] = time.perf_counter() - t0
    rec["gap"] = {}
    for r in rep.results:
        spread = {}
        for o in (r.sgd, r.adam):
            best = next((g for g in o.grid if g.lr == o.lr), None)
            finals = [] if best is None else [v for v in best.final_losses if math.isfinite(v)]
            spread[o.optimizer] = float(np.std(finals)) if len(finals) > 1 else math.nan
        rec["gap"][str(r.batch_size)] = {
            "gap": r.gap, "sgd_lr": r.sgd.lr, "adam_lr": r.adam.lr,
            "sgd_loss": r.sgd.final_loss, "adam_loss": r.adam.final_loss,
            "sgd_seed_std": spread["sgd"], "adam_seed_std": spread["adam"],
            "sgd_at_edge": r.sgd.at_edge, "adam_at_edge": r.adam.at_edge,
            "rel_gap": r.rel_gap,
            "seeds": len(profile.gap.seeds), "steps": r.steps}
    return rec


def _spectra_record(family: str, size: int, name: str, n_params: int,
                    spectra: dict[str, BlockSpectrum], spec_s: float,
                    profile: LadderProfile, provenance: dict) -> dict:
    cands = candidate_values(spectra, n_boot=profile.n_boot,
                             rng=np.random.default_rng([0, 777]))
    return {"family": family, "size": size, "name": name,
            "profile": profile.name, "parameters": n_params, "blocks": len(spectra),
            "candidates": cands,
            "js0": {k.split(":", 1)[1]: v for k, v in cands.items() if k.startswith("js0:")},
            "spectrum_seconds": spec_s, "gap": None, "gap_skipped": None,
            "spectra_fingerprint": provenance["fingerprint"], "code": provenance["code"]}


def _source_digest(spec: str) -> str | None:
    """SHA-256 of the source of the factory's module (its loss and data are not in the model's
    fingerprint), or ``None`` where Python cannot show that source."""
    try:
        src = Path(inspect.getfile(load_factory(spec))).read_bytes()
    except (OSError, TypeError):
        return None
    return hashlib.sha256(src).hexdigest()


def factory_record(spec: str, size: int, profile: LadderProfile, *, seed: int = 0,
                   cache_dir: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> dict:
    """The record of size ``size`` of a user's family ``module:function`` (spectra and JS0).

    The model, loss and batches come from :func:`nets.zoo.factory.resolve_family_size`; the
    spectra use the profile's Lanczos steps and probes on the factory's own batches (its
    ``data``; the profile's spectrum sample counts do not apply) and are cached under the
    model's and data's fingerprint and the SHA-256 of the factory module's source (an edited
    loss is a new entry). No gap: a factory gives batches, not a training pool
    (use ``nets gap --model module:function`` with a Task factory for the gap).

    Args:
        spec: ``module:function`` or ``path/file.py:function``.
        size: The size index handed to the factory.
        profile: Lanczos steps, probes and bootstrap resamples.
        seed: The model seed handed to the factory (:func:`nets.zoo.factory.seed_arguments`).
        cache_dir: Cache folder.
        device: Where to compute.

    Returns:
        A record with the keys of :func:`ladder_record` (``name`` is ``<spec>[<size>]``,
        ``gap`` ``None`` with the reason in ``gap_skipped``).
    """
    device = local_device(device)
    model, loss_fn, data = resolve_family_size(spec, size, seed=seed, device=device)
    settings = {"factory": spec, "factory_source": _source_digest(spec), "size": size,
                "model_seed": seed,
                "steps": profile.lanczos_steps, "probes": profile.probes, "seed": 0}
    if device.type != "cpu":
        settings.update(device_settings(device))
    spectra, spec_s, prov = _cached_spectra(model, loss_fn, data, profile, settings, cache_dir)
    rec = _spectra_record(spec, size, f"{spec}[{size}]",
                          sum(p.numel() for p in model.parameters()), spectra, spec_s, profile,
                          prov)
    rec["gap_skipped"] = "a factory family gives spectra and JS0 only (no training pool)"
    return rec


def run_ladder(family: str, profile: str | LadderProfile = "ladder", *,
               sizes: list[int] | None = None, cache_dir: str | os.PathLike | None = None,
               comm: Communicator | None = None,
               progress: Callable[[str], None] | None = None, gap: bool = True,
               device: str | torch.device = "cpu", seed: int = 0) -> list[dict]:
    """One :func:`ladder_record` per rung of ``family`` (smallest first).

    Args:
        family: A family of :data:`nets.zoo.families.LADDER_FAMILIES`, or a user's family
            factory ``module:function`` (:func:`nets.zoo.factory.resolve_family_size`; then
            ``sizes`` is required, ``gap`` must be ``False`` and the records come from
            :func:`factory_record`).
        profile: A :class:`LadderProfile` or a key of :data:`LADDER_PROFILES`.
        sizes: Indices of the rungs to run (default: all).
        cache_dir: Cache folder (:func:`labkit.cache.cache_dir`).
        comm: Communicator: the rungs' spectra are shared out among ranks, then every rung's
            training grid; every rank returns all records.
        progress: Called with a note after each rung and each training run.
        gap: Measure gaps (``False``: spectra and candidates only).
        device: Where spectra and training runs are computed (``"auto"``, ``"cpu"``,
            ``"cuda:1"``, ...).
        seed: The model seed handed to a factory family (built-in families take only 0).

    Returns:
        The records, smallest rung first.

    Raises:
        ValueError: unknown profile, a size index out of range, a factory family without
            ``sizes`` or with ``gap``, or a seed other than 0 for a built-in family.
    """
    if isinstance(profile, str):
        if profile not in LADDER_PROFILES:
            raise ValueError(f"unknown ladder profile {profile!r}; choose from "
                             f"{', '.join(LADDER_PROFILES)}")
        profile = LADDER_PROFILES[profile]
    if is_factory(family):
        if sizes is None:
            raise ValueError(f"family {family!r} is a factory: give the size indices to run "
                             "(sizes, --sizes 0 1 ...)")
        if gap and profile.gap is not None:
            raise ValueError(f"family {family!r} is a factory: it gives spectra and JS0 only; "
                             "pass gap=False (--no-gap), and measure its gap with `nets gap "
                             "--model module:function` and a Task factory")
        out = []
        for s in sizes:
            out.append(factory_record(family, s, profile, seed=seed, cache_dir=cache_dir,
                                      device=device))
            if progress is not None:
                progress(f"{out[-1]['name']}: done")
        return out
    if seed != 0:
        raise ValueError(f"the built-in family {family!r} is studied at model seed 0 only; "
                         "drop the model seed (--model-seed)")
    rungs = ladder(family, profile.rungs)
    if sizes is not None:
        bad = [s for s in sizes if not 0 <= int(s) < len(rungs)]
        if bad:
            raise ValueError(f"sizes {bad} out of range: {family} has {len(rungs)} sizes in "
                             f"profile {profile.name!r} (0..{len(rungs) - 1})")
        rungs = tuple(rungs[int(s)] for s in sizes)
    comm = comm or Communicator()
    device = local_device(device)
    comm.map(lambda r: rung_spectra(r, profile, cache_dir=cache_dir, device=device)[1],
             list(rungs))
    out = []
    for r in rungs:
        out.append(ladder_record(r, profile, cache_dir=cache_dir, comm=comm, progress=progress,
                                 gap=gap, device=device))
        if progress is not None:
            progress(f"{r.name}: done")
    return out
