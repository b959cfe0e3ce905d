"""Training budgets of the figures that run `nets.studies.gap` (Figures 5, 6, 7).

A profile's settings name a budget of :data:`nets.studies.gap.PROFILES` or give one explicitly
as a dict (settings must stay JSON-able: they are the cache key). The tiny budget is a smoke
test of the pipeline, not a measurement: its verdicts say "not measurable".

The quick budgets of Table 1 / Figure 7 and Figure 5 were chosen from a seed-0 sweep of every
model at both batch sizes (100 steps, half-decade grids SGD 1e-3..0.3, Adam 1e-4..3e-2): the
tuned rates lay at SGD 1e-3..0.3 and Adam 3e-4..1e-2, so decade grids one step wider on each
side put every one of them inside the grid. To fit the whole quick profile in 20 minutes on two
cores they use the ``"first-seed"`` protocol of `nets.studies.gap` without neighbours: every
rate with seed 0, then seeds 1 and 2 at seed 0's choice (12 runs per model and batch size
instead of 24). Their cost is estimated by ``benchmarks/estimate_gap_budget.py --figure fig7``.
Models whose runs do not train within 80 steps (in that sweep: the ResNet and the ViT at B = 8)
stay in the table and are reported "not measurable at this budget"; the report says which.
"""

from __future__ import annotations

from dataclasses import asdict

from nets.studies.gap import PROFILES, GapProfile

__all__ = ["FIG5_QUICK", "FIG7_QUICK", "FINETUNE_QUICK_PROFILE", "QUICK_PROFILE", "TINY_PROFILE",
           "gap_profile"]

TINY_PROFILE = {"name": "tiny", "steps": 6, "sgd_lrs": (0.1,), "adam_lrs": (1e-2,),
                "seeds": (0,), "batch_sizes": (8,), "pool_size": 32, "eval_every": 3,
                "js_steps": 3, "js_probes": 2, "heldout_size": 32}

#: Table 1 / Figure 7, quick: 80 steps, decade grids, three seeds (the fewest the verdict rules
#: accept for a training outcome, `figures.verdict.MIN_SEEDS`) by the first-seed protocol, and a
#: held-out pool as large as the training pool. JS0 from 6 probes: its interval's Student factor
#: is t(5) = 2.57 (with 2 probes it was t(1) = 12.7, and every JS0 comparison read
#: "inconclusive" from the width of the interval alone, not from the data).
FIG7_QUICK = {"name": "quick-fig7", "steps": 80, "sgd_lrs": (1e-3, 1e-2, 0.1, 1.0),
              "adam_lrs": (1e-4, 1e-3, 1e-2, 0.1), "seeds": (0, 1, 2), "batch_sizes": (8, 64),
              "pool_size": 256, "eval_every": 40, "js_steps": 8, "js_probes": 6,
              "protocol": "first-seed", "neighbours": 0, "heldout_size": 256}

#: Figure 5, quick: Figure 7's budget (the mixer's runs are shared through the cache) with the
#: SGD grid one decade lower (the scaled MLP at S = 30 tunes SGD at 1e-3 in the sweep).
FIG5_QUICK = {**FIG7_QUICK, "name": "quick-fig5", "sgd_lrs": (1e-4, 1e-3, 1e-2, 0.1, 1.0)}

#: The quick gap budget of the figures that do not set their own (Figure 7's).
QUICK_PROFILE = FIG7_QUICK


#: Figure 6's quick budget: the ``lite`` grids and 300 steps (at 60 steps the fine-tuning runs'
#: tuned rates sat at the grid edges), three seeds under the ``first-seed`` protocol (every rate
#: on seed 0, seeds 1 and 2 at its choice and its grid neighbours: ~10 runs per optimizer instead
#: of 12), one batch size (B = 8) to pay for the seeds, and the pool evaluated every 50 steps.
#: JS at the start keeps lite's 3 probes (its interval's t factor is 4.30; 6 probes give 2.57
#: and about half the width, but double the cost of JS, already the largest single item of
#: this figure).
FINETUNE_QUICK_PROFILE = {**asdict(PROFILES["lite"]), "name": "finetune-quick-3seeds",
                          "seeds": (0, 1, 2), "protocol": "first-seed", "neighbours": 1,
                          "batch_sizes": (8,), "eval_every": 50}


def gap_profile(profile: str | dict) -> str | GapProfile:
    """A profile name of `nets.studies.gap.PROFILES`, or a `GapProfile` from a dict.

    Args:
        profile: A name of `nets.studies.gap.PROFILES` or the fields of a `GapProfile`.
    """
    if not isinstance(profile, dict):
        return profile
    d = dict(profile)
    for k in ("sgd_lrs", "adam_lrs", "seeds", "batch_sizes"):
        if k in d:
            d[k] = tuple(d[k])
    return GapProfile(**d)
