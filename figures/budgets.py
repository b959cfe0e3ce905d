"""Training budgets of the figures that run `nets.studies.gap` (Figures 5, 6, 7).

A profile's settings name a budget of :data:`nets.studies.gap.PROFILES` or give one explicitly
as a dict (settings must stay JSON-able: they are the cache key). The tiny budget is a smoke
test of the pipeline, not a measurement: its verdicts say "not measurable".
"""

from __future__ import annotations

from dataclasses import asdict

from nets.studies.gap import PROFILES, GapProfile

__all__ = ["FINETUNE_QUICK_PROFILE", "QUICK_PROFILE", "TINY_PROFILE", "gap_profile"]

TINY_PROFILE = {"name": "tiny", "steps": 6, "sgd_lrs": (0.1,), "adam_lrs": (1e-2,),
                "seeds": (0,), "batch_sizes": (8,), "pool_size": 32, "eval_every": 3,
                "js_steps": 3, "js_probes": 2}


#: The quick figures' gap budget: `nets.studies.gap.PROFILES["quick"]` with three seeds, the
#: fewest the verdict rules accept for a training outcome (`figures.verdict.MIN_SEEDS`); its
#: cost per model is estimated by ``benchmarks/estimate_gap_budget.py --seeds 3``.
QUICK_PROFILE = {**asdict(PROFILES["quick"]), "name": "quick-3seeds", "seeds": (0, 1, 2)}


#: Figure 6's quick budget: the ``lite`` grids and 300 steps (at 60 steps the fine-tuning runs'
#: tuned rates sat at the grid edges), three seeds under the ``first-seed`` protocol (every rate
#: on seed 0, seeds 1 and 2 at its choice and its grid neighbours: ~10 runs per optimizer instead
#: of 12), one batch size (B = 8) to pay for the seeds, the pool evaluated every 50 steps, and
#: 6 probes for JS at the start (the interval's t factor is 4.30 with 3 probes, 2.57 with 6).
FINETUNE_QUICK_PROFILE = {**asdict(PROFILES["lite"]), "name": "finetune-quick-3seeds",
                          "seeds": (0, 1, 2), "protocol": "first-seed", "neighbours": 1,
                          "batch_sizes": (8,), "eval_every": 50, "js_probes": 6}


def gap_profile(profile: str | dict) -> str | GapProfile:
    """A profile name of `nets.studies.gap.PROFILES`, or a `GapProfile` from a dict."""
    return GapProfile(**profile) if isinstance(profile, dict) else profile
