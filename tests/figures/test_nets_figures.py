"""The nets-gap figures draw from real (tiny) results of the nets functions."""

import numpy as np
import torch

from figures import fig5_mlp_mixer, fig6_finetune, fig7_gap_vs_js0, fig_layernorm
from figures.budgets import gap_profile
from figures.verdict import MIN_SEEDS
from nets.engine.slq import BlockSpectrum
from nets.studies.finetune import FinetuneStudy
from nets.studies.gap import PROFILES, GapProfile, measure_gap
from nets.studies.layernorm import PerturbationStudy, fit_growth
from nets.studies.table1 import Table1, correlate
from nets.studies.tasks import Task
from nets.studies.training import Pool


def _task(name, scale):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 4, generator=g)
    y = (x[:, 0] > 0).long()

    def build(seed):
        gg = torch.Generator().manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=gg) * scale)
        return m, torch.nn.functional.cross_entropy

    return Task(name, "digits", build, lambda: [(x, y)], {"test": "figures", "scale": scale},
                make_pool=lambda n: Pool(x[:n], y[:n]))


def _exists(paths):
    assert paths and all(p.exists() and p.stat().st_size > 1000 for p in paths)


def test_nets_figures(tmp_path):
    prof = GapProfile("t", steps=6, sgd_lrs=(0.1,), adam_lrs=(1e-2,), seeds=(0,),
                      batch_sizes=(4, 8), pool_size=32, eval_every=3, js_steps=3, js_probes=2)
    reps = tuple(measure_gap(_task(f"mlp-s{s}", s), prof, cache_dir=tmp_path)
                 for s in (1, 2, 4))
    corr = {b: correlate(reps, b, rng=np.random.default_rng(0))[0] for b in (4, 8)}
    tab = Table1("t", reps, corr, {4: [], 8: []}, {"steps": 3, "probes": 2}).to_dict()
    _exists(fig7_gap_vs_js0.plot(tab, tmp_path, extra=[tab]))
    rng = np.random.default_rng(0)
    spectra = {n: BlockSpectrum(n, 10, np.sort(rng.random((2, 3)) * k, axis=1),
                                np.full((2, 3), 1 / 3), np.array([3, 3]), np.array([0, 1]))
               for k, n in enumerate(("a.weight", "b.weight"), 1)}
    _exists(fig5_mlp_mixer.plot(tab, tmp_path, mixer_spectra=spectra,
                                mixer_report=tab["reports"][0]))
    _exists(fig6_finetune.plot(FinetuneStudy(reps[0], reps[1]).to_dict(), tmp_path))
    depths = (2, 4, 8)
    vals = {"postln": (0.01, 0.02, 0.04), "preln": (0.01, 0.012, 0.014)}
    st = PerturbationStudy(depths, 0.01, 1e-3, vals, vals,
                           {k: fit_growth(depths, v) for k, v in vals.items()},
                           {k: fit_growth(depths, v) for k, v in vals.items()})
    _exists(fig_layernorm.plot(st.to_dict(), tmp_path))


def test_fig6_quick_budget_gives_the_verdict_its_seeds():
    """Figure 6's quick budget has the seeds its rule needs for a training outcome, and the
    300-step lite budget (60 steps left the fine-tuning runs' tuned rates at the grid edges)."""
    prof = gap_profile(fig6_finetune.SPEC.settings_for("quick")["profile"])
    assert isinstance(prof, GapProfile)
    assert len(prof.seeds) >= MIN_SEEDS
    lite = PROFILES["lite"]
    assert (prof.steps, prof.sgd_lrs, prof.adam_lrs) == (lite.steps, lite.sgd_lrs, lite.adam_lrs)
