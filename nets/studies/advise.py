"""``nets advise``: is SGD likely to lag Adam on *my* model? JS0 against measured evidence.

The user gives a factory ``module:function`` (or ``path/to/file.py:function``); calling it with
no arguments returns ``(model, loss_fn, data)`` in the :mod:`nets` conventions. The advice:

1. refuse models whose loss is not twice differentiable (a tiny Hessian-vector product on a few
   samples, with the same ``torch.func`` transforms as the spectrum engine, must succeed and
   be finite and not identically zero);
2. compute JS0 at the given parameters with the evidence's own settings (Lanczos steps,
   probes, density recipe), with a bootstrap interval over probes;
3. compare it with the evidence: a table of (JS0, tuned SGD–Adam gap) measured on the zoo
   (:mod:`nets.studies.table1`, stored in a JSON file). The predicted gap is the mean gap of the
   ``k = 3`` evidence models nearest in JS0. The verdict: *likely to lag* if the prediction
   exceeds ``ln 1.5`` (SGD's final loss 50% above Adam's), *unlikely* below ``ln 1.1``,
   *unclear* in between. The evidence's Spearman ρ and its interval are printed with the
   verdict: where that interval contains 0, JS0 did not predict the gap on the evidence and the
   verdict says so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labkit.atomic import atomic_write_bytes
from labkit.cache import code_version
from labkit.jsonio import as_float, check_sealed, dumps, load_file, seal
from nets.engine.adapters import check_modes, first_samples, forward, split_batch
from nets.engine.density import RECIPES, DensityRecipe
from nets.engine.js import js0_bootstrap
from nets.engine.products import make_batch_hessian_vector_product
from nets.engine.spectrum import blockwise_spectrum

__all__ = ["EVIDENCE", "EVIDENCE_FIX", "Advice", "advise", "check_twice_differentiable",
           "checked_user_problem", "evidence_recipe", "load_evidence", "write_evidence"]

#: The evidence file shipped with the package (written by ``nets table1 --write-evidence``).
EVIDENCE = Path(__file__).resolve().parent / "evidence_table1.json"
#: How to get a good evidence file back (quoted by every refusal of :func:`load_evidence`).
EVIDENCE_FIX = ("regenerate it with `nets table1 --profile lite --write-evidence PATH` (the "
                "packaged file: reinstall the package)")
LAG, NO_LAG = math.log(1.5), math.log(1.1)


#: Recipe names written by older evidence files: ``DensityRecipe()`` was the linear recipe.
_LEGACY_RECIPES = {"DensityRecipe()": "linear"}


def evidence_recipe(evidence: dict) -> DensityRecipe:
    """The density recipe the evidence's JS0 values were computed with (a key of
    :data:`nets.engine.density.RECIPES`): the user's JS0 must use the same one to be comparable.

    Args:
        evidence: An evidence document (:func:`load_evidence`).

    Raises:
        ValueError: an evidence file naming an unknown recipe.
    """
    name = evidence["js_settings"].get("recipe", "DensityRecipe()")
    name = _LEGACY_RECIPES.get(name, name)
    if name not in RECIPES:
        raise ValueError(f"the evidence names density recipe {name!r}; known: "
                         f"{', '.join(RECIPES)}")
    return RECIPES[name]


def _check_loss(model: torch.nn.Module, loss_fn: Callable, inputs: object,
                targets: object) -> None:
    """Evaluate the loss once, so that bad data is reported as such (not as a missing Hessian).

    Args:
        model: The network.
        loss_fn: ``loss_fn(model(inputs), targets)``, the scalar mean batch loss.
        inputs: A few inputs of the first batch.
        targets: Their targets.

    Raises:
        ValueError: the model or the loss fails on the first batch, the loss broadcasts targets
            of another shape than the outputs, or it is not a finite scalar.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*target size.*different to the input size.*")
        try:
            out = forward(model, inputs)
        except Exception as e:
            raise ValueError(f"the model fails on the first batch of inputs ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); check the data's "
                             "shapes and dtypes") from e
        try:
            loss = loss_fn(out, targets)
        except Exception as e:
            shapes = (f"outputs {tuple(getattr(out, 'shape', ()))}, targets "
                      f"{tuple(getattr(targets, 'shape', ()))}")
            raise ValueError(f"the loss cannot be evaluated on the first batch ({shapes}: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                             "; the targets must match what loss_fn expects for the model's "
                             "outputs") from e
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar tensor (the mean batch loss), got "
                         f"{type(loss).__name__} of shape {tuple(getattr(loss, 'shape', ()))}")
    if not torch.isfinite(loss.detach()).all():
        raise ValueError(f"the loss on the first batch is not finite ({float(loss)})")


def checked_user_problem(model: torch.nn.Module, loss_fn: Callable, data: Iterable, *,
                         seed: int = 0) -> list:
    """Check a user's ``(model, loss_fn, data)`` before any advice is computed from it.

    The model must be a module and the loss callable; the Hessian-vector product
    ``∇²ℓ v`` must exist on the first batch (:func:`check_twice_differentiable`).

    Args:
        model: The user's network (eval mode, deterministic loss).
        loss_fn: ``loss_fn(model(inputs), targets)`` scalar mean loss.
        data: Iterable of batches (read once, here).
        seed: Seed of the check's random vector.

    Returns:
        ``data`` as a list (so a generator can be read again by the spectra).

    Raises:
        TypeError: ``model`` is not a module or ``loss_fn`` not callable.
        ValueError: see :func:`check_twice_differentiable`.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the factory must return (model, loss_fn, data) with a torch.nn.Module "
                        f"model, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable")
    data = list(data)
    check_twice_differentiable(model, loss_fn, data, seed=seed)
    return data


def check_twice_differentiable(model: torch.nn.Module, loss_fn: Callable, data: Iterable, *,
                               samples: int = 4,
                               seed: int = 0) -> float:
    """Refuse a loss whose Hessian-vector product cannot be computed (or is zero).

    Evaluates ``∇²ℓ v`` on the first ``samples`` samples of the first batch for a Gaussian
    ``v`` (``torch.Generator`` seeded with ``seed``).

    Args:
        model: The model.
        loss_fn: ``loss_fn(outputs, targets)``.
        data: Batches; the first one is used.
        samples: Samples of the first batch used.
        seed: Seed of ``v``.

    Returns:
        ``‖∇²ℓ v‖``.

    Raises:
        ValueError: the product fails, is not finite, or is zero.
    """
    check_modes(model)
    try:
        inputs, targets = split_batch(next(iter(data)))
    except (StopIteration, TypeError, ValueError) as e:
        raise ValueError(f"data must be an iterable of (inputs, targets) batches or of "
                         f"mappings with a 'labels' entry: {e}") from e
    inputs, targets = first_samples(inputs, samples), first_samples(targets, samples)
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters")
    _check_loss(model, loss_fn, inputs, targets)
    g = torch.Generator().manual_seed(int(seed))
    tang = {n: torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device)[None]
            for n, p in params.items()}
    hvp = make_batch_hessian_vector_product(model, loss_fn)
    try:
        out = hvp(params, inputs, targets, tang)
    except Exception as e:  # autograd/functorch report missing double backward in many ways
        raise ValueError("the loss is not twice differentiable with respect to the "
                         f"parameters (a Hessian-vector product failed: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}). Common causes: fused "
                         "attention kernels (use math attention), custom autograd Functions "
                         "without double backward, BatchNorm in training mode") from e
    norm = math.sqrt(sum(float((t.double() ** 2).sum()) for t in out.values()))
    if not math.isfinite(norm):
        raise ValueError("the Hessian-vector product is not finite")
    if norm == 0.0:
        raise ValueError("the Hessian-vector product is identically zero: the loss has no "
                         "curvature in the parameters (detached graph or piecewise-constant "
                         "loss), so its spectra and JS0 are undefined")
    return norm


def write_evidence(doc: dict, path: str | Path) -> None:
    """Write an evidence file atomically: ``doc`` (the JSON of ``nets table1 --json``) with the
    version of the code that wrote it (``"code"``) and a checksum of its content.

    Args:
        doc: The Table 1 document (:meth:`nets.studies.table1.Table1.to_dict`).
        path: Where to write.
    """
    atomic_write_bytes(path, dumps(seal({**doc, "code": code_version(["nets"])}),
                                   indent=1).encode())


def load_evidence(path: str | Path | None = None) -> dict:
    """Read and verify an evidence file (written by :func:`write_evidence`).

    Args:
        path: The file (default: the packaged :data:`EVIDENCE`).

    Returns:
        The document; non-finite numbers stay strings (read them with
        :func:`labkit.jsonio.as_float`).

    Raises:
        ValueError: no such file, not strict JSON, no checksum or one that does not match its
            content (damaged or edited), or not an evidence file; the message names the file
            and :data:`EVIDENCE_FIX`.
    """
    path = Path(path) if path is not None else EVIDENCE
    doc = load_file(path, EVIDENCE_FIX, missing=f"no evidence file at {path}; create one with "
                    "`nets table1 --write-evidence PATH`")
    check_sealed(doc, str(path), EVIDENCE_FIX)
    if "rows" not in doc or "js_settings" not in doc:
        raise ValueError(f"{path}: not an evidence file (needs 'rows' and 'js_settings'); "
                         f"{EVIDENCE_FIX}")
    return doc


@dataclass(frozen=True)
class Advice:
    """The verdict and what it rests on.

    Attributes:
        js0: JS0 of the user's model.
        js0_low: 2.5% bootstrap percentile over probes.
        js0_high: 97.5% percentile.
        blocks: Number of blocks (parameter tensors).
        batch_size: Evidence batch size used for the prediction.
        predicted_gap: Mean gap of the ``k`` nearest evidence models in JS0.
        neighbours: Their task names.
        verdict: ``"likely"``, ``"unclear"`` or ``"unlikely"`` (SGD lagging Adam).
        message: One paragraph for the user.
        evidence: The evidence rows (task, js0, gaps).
        spearman: The evidence's Spearman record at ``batch_size`` (or ``None``).
    """

    js0: float
    js0_low: float
    js0_high: float
    blocks: int
    batch_size: int
    predicted_gap: float
    neighbours: tuple[str, ...]
    verdict: str
    message: str
    evidence: tuple[dict, ...]
    spearman: dict | None

    def to_dict(self) -> dict:
        """The advice as plain JSON values (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


def advise(model: torch.nn.Module, loss_fn: Callable, data: Iterable, *,
           evidence: dict | None = None,
           batch_size: int | None = None, k: int = 3, seed: int = 0) -> Advice:
    """JS0 of a model and the predicted SGD–Adam gap from the evidence (module docstring).

    Args:
        model: The user's network (eval mode, deterministic loss).
        loss_fn: ``loss_fn(model(inputs), targets)`` scalar mean loss.
        data: Iterable of ``(inputs, targets)`` batches (the Hessian is that of their mean).
        evidence: From :func:`load_evidence` (default: the packaged file).
        batch_size: Evidence batch size to predict at (default: the largest).
        k: Number of nearest evidence models.
        seed: Probe seed.
    """
    data = checked_user_problem(model, loss_fn, data, seed=seed)
    ev = evidence if evidence is not None else load_evidence()
    js = ev["js_settings"]
    sizes = sorted(int(b) for b in ev["spearman"])
    b = int(batch_size) if batch_size is not None else sizes[-1]
    if b not in sizes:
        raise ValueError(f"the evidence has batch sizes {sizes}, not {b}")
    spectra = blockwise_spectrum(model, loss_fn, data, lanczos_steps=int(js["steps"]),
                                 probes=int(js["probes"]), seed=seed)
    if len(spectra) < 2:
        raise ValueError("JS0 needs at least two parameter tensors (blocks)")
    est = js0_bootstrap(spectra, evidence_recipe(ev), n_boot=50 if js["probes"] > 1 else 2,
                        rng=np.random.default_rng([seed, 777]))
    rows = [r for r in ev["rows"] if r.get(f"gap_b{b}") is not None
            and math.isfinite(as_float(r[f"gap_b{b}"])) and math.isfinite(as_float(r["js0"]))]
    if not rows:
        raise ValueError("the evidence has no finite gap at this batch size")
    order = sorted(rows, key=lambda r: abs(as_float(r["js0"]) - est.value))[:max(1, k)]
    pred = float(np.mean([as_float(r[f"gap_b{b}"]) for r in order]))
    sp = ev["spearman"].get(str(b))
    verdict = "likely" if pred > LAG else ("unlikely" if pred < NO_LAG else "unclear")
    say = {"likely": "SGD (with momentum, tuned) is LIKELY to lag Adam",
           "unclear": "it is UNCLEAR whether SGD will lag Adam",
           "unlikely": "SGD (with momentum, tuned) is UNLIKELY to lag Adam much"}[verdict]
    msg = (f"JS0 = {est.value:.3f} (95% [{est.low:.3f}, {est.high:.3f}]); the nearest evidence "
           f"models in JS0 ({', '.join(r['task'] for r in order)}) had a mean gap "
           f"ln(L_SGD/L_Adam) = {pred:.2f} at batch size {b}: {say}.")
    if sp is None:
        msg += (" The evidence has too few usable models for a rank correlation: treat this "
                "as a guess.")
    else:
        lo, hi = (math.nan if v is None else as_float(v) for v in sp["interval95_bootstrap"])
        rho = as_float(sp["rho"])
        defined = math.isfinite(lo) and math.isfinite(hi)
        if not defined or lo <= 0 <= hi:
            span = f"[{lo:+.2f}, {hi:+.2f}]" if defined else "undefined"
            msg += (f" Caution: on the evidence, Spearman rho(JS0, gap) = {rho:+.2f} "
                    f"with a 95% interval {span} that contains 0 — JS0 did not reliably "
                    "predict the gap there, so this verdict is weak.")
        else:
            msg += (f" On the evidence, Spearman rho(JS0, gap) = {rho:+.2f}, 95% "
                    f"[{lo:+.2f}, {hi:+.2f}].")
    ev_rows = tuple({"task": r["task"], "js0": r["js0"],
                     **{f"gap_b{s}": r.get(f"gap_b{s}") for s in sizes}} for r in ev["rows"])
    return Advice(est.value, est.low, est.high, len(spectra), b, pred,
                  tuple(r["task"] for r in order), verdict, msg, ev_rows, sp)
