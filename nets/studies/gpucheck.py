"""``make gpu-check``: the spectra engine on one GPU at the paper's sizes, in a few minutes.

Two measurements, each timed and with the peak GPU memory:

1. the blockwise spectrum of a GPT-2-small-sized model (the ``gpt`` rung of the ``gpu`` ladder
   profile: d = 768, 12 layers, 16k word vocabulary, context 128; ~110M parameters) on a
   handful of blocks (the first layer's attention and MLP matrices), few Lanczos steps and
   probes, reporting the time per Hessian-vector product (one Lanczos step of all blocks and
   probes at once);
2. one ``gpu``-profile ladder point (:func:`nets.studies.ladder.ladder_record` of the ResNet-18-
   sized rung: spectra of every block, the predictor candidates).

Refuses to run without CUDA (a clear ValueError, so the command exits non-zero).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from nets.engine.spectrum import blockwise_spectrum
from nets.studies.ladder import LADDER_PROFILES, rung_spectra
from nets.studies.predictor import candidate_values
from nets.zoo.families import build_rung, ladder, parameter_count, rung_data

__all__ = ["GPT_BLOCKS", "GPT_SAMPLES", "gpt_problem", "gpu_check"]

#: The blocks of the GPT-2-small-sized spectrum (layer 0: Q, K, V, output projection, MLP).
GPT_BLOCKS = ("layers.0.attn.q.weight", "layers.0.attn.k.weight", "layers.0.attn.v.weight",
              "layers.0.attn.proj.weight", "layers.0.fc1.weight", "layers.0.fc2.weight")

#: Sequences (of 128 tokens, in batches of 4) the GPT-2-small-sized Hessian is averaged over.
GPT_SAMPLES = 8


def gpt_problem(samples: int = GPT_SAMPLES, *, device: str | torch.device = "cpu"
                ) -> tuple[torch.nn.Module, Callable, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The GPT-2-small-sized spectrum's ``(model, loss_fn, data)``: the ``gpt`` rung of the
    ``gpu`` ladder profile at its seeded initialization, and ``samples`` sequences of its text
    in batches of 4 (also ``benchmarks/bench_peers.py``'s ``gpt-gpu`` model).

    Args:
        samples: Sequences of the rung's context (128 tokens).
        device: Where to put the model and data.

    Returns:
        The model, its mean token cross-entropy and the batches ``(inputs, targets)``.
    """
    dev = torch.device(device)
    rung = ladder("gpt", "gpu")[0]
    model, loss_fn = build_rung(rung, 0, device=dev)
    x, y = rung_data(rung, "spectrum", samples, seed=0)
    return model, loss_fn, [(x[i:i + 4].to(dev), y[i:i + 4].to(dev))
                            for i in range(0, samples, 4)]


def gpu_check(*, device: str = "cuda", lanczos_steps: int = 5, probes: int = 2,
              samples: int = GPT_SAMPLES) -> dict:
    """Run both measurements of the module docstring on ``device``.

    Args:
        device: A CUDA device string.
        lanczos_steps: Lanczos steps of the GPT-2-small spectrum.
        probes: Probes of the GPT-2-small spectrum.
        samples: Sequences (of 128 tokens) the GPT-2-small Hessian is averaged over.

    Returns:
        ``{"device", "gpt": {...}, "ladder_point": {...}}`` with parameters, seconds, seconds
        per HVP, peak memory (bytes) and the extreme Ritz values / candidates.

    Raises:
        ValueError: no CUDA device (this check needs a GPU).
    """
    if not torch.cuda.is_available():
        raise ValueError("make gpu-check needs a CUDA GPU and this machine has none "
                         "(torch.cuda.is_available() is False); run it on a GPU machine")
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"device must be a CUDA device, got {device!r}")
    rung = ladder("gpt", "gpu")[0]
    torch.cuda.reset_peak_memory_stats(dev)
    model, loss_fn, data = gpt_problem(samples, device=dev)
    steps_done = []
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    spectra = blockwise_spectrum(model, loss_fn, data, blocks={b: b for b in GPT_BLOCKS},
                                 lanczos_steps=lanczos_steps, probes=probes, seed=0,
                                 callback=lambda s, n: steps_done.append(s))
    torch.cuda.synchronize(dev)
    gpt_s = time.perf_counter() - t0
    gpt = {"rung": rung.name, "parameters": parameter_count(rung), "blocks": len(spectra),
           "lanczos_steps": lanczos_steps, "probes": probes, "seconds": gpt_s,
           "seconds_per_hvp_step": gpt_s / max(len(steps_done), 1),
           "peak_memory_bytes": int(torch.cuda.max_memory_allocated(dev)),
           "extremes": {k: s.extreme_eigenvalues() for k, s in spectra.items()}}
    del model, data
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    point = ladder("resnet", "gpu")[0]
    profile = LADDER_PROFILES["gpu"]
    t0 = time.perf_counter()
    spec, _ = rung_spectra(point, profile, device=dev)
    cands = candidate_values(spec, n_boot=profile.n_boot,
                             rng=np.random.default_rng([0, 777]))
    torch.cuda.synchronize(dev)
    return {"device": torch.cuda.get_device_name(dev), "gpt": gpt,
            "ladder_point": {"rung": point.name, "parameters": parameter_count(point),
                             "blocks": len(spec), "seconds": time.perf_counter() - t0,
                             "peak_memory_bytes": int(torch.cuda.max_memory_allocated(dev)),
                             "candidates": cands}}
