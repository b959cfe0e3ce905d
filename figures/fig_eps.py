"""Seed 004: the Adam-over-GD speed-up as a function of ε, and the SoftSign map.

The numbers come from `quadlab.studies.eps`; this module draws them and owns the report entry
``SPEC``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from quadlab.studies.eps import EPS_VARIANTS, EpsResult, eps_study, softsign
from quadlab.studies.settings import SETTINGS

from .registry import FigureSpec, Finding
from .style import RC, save
from .verdict import Part, combine, explain


def plot(result: EpsResult, out_dir: Path) -> list[Path]:
    """Speed-up (GD iterations / Adam iterations, median over seeds) against ε/G per case, and
    the SoftSign direction g/(|g| + ε) for the same ε/G values."""
    cases = result.cases
    rel = np.array(result.rel_eps)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(cases) + 1, figsize=(4.6 * (len(cases) + 1), 3.8),
                                 squeeze=False)
        for ax, case in zip(axes.flat, cases, strict=False):
            for variant in EPS_VARIANTS:
                sp = result.median_speedup(case, variant)
                ax.loglog(rel, np.where(np.isfinite(sp) & (sp > 0), sp, np.nan), "o-",
                          label=variant)
            gd = np.median([r.gd_iterations for r in result.rows if r.case == case])
            sign = np.median(result.sign_iterations[case])
            ax.axhline(1.0, color="0.4", lw=0.8, ls="--", label="GD (ε → ∞)")
            ax.axhline(gd / sign, color="0.4", lw=0.8, ls=":", label="sign descent (ε → 0)")
            ax.set_xlabel("ε / median |∇L(w0)|")
            ax.set_ylabel("speed-up over tuned GD")
            ax.set_title(case)
            ax.legend(loc="best")
        ax = axes.flat[-1]
        g = np.linspace(-3, 3, 401)
        for re in rel[::2]:
            ax.plot(g, softsign(g, re), label=f"ε/G = {re:g}")
        ax.set_xlabel("g / G")
        ax.set_ylabel("g / (|g| + ε)")
        ax.set_title("SoftSign direction (Adam, β1 = β2 = 0)")
        ax.legend(loc="upper left")
        fig.suptitle(f"Adam's ε moves it from sign descent to GD (tol {result.tol:g}, "
                     f"budget {result.steps})")
        fig.tight_layout()
        return save(fig, out_dir, "fig_eps")


#: A speed-up over GD within this band counts as "GD-like"; above it, as an advantage.
GD_LIKE = (0.5, 2.0)


def speedup_parts(res: EpsResult, case: str, variant: str) -> list[Part]:
    """(a) at the smallest ε Adam has an advantage over GD: speed-up above 2 on every seed
    (a speed-up of 0, Adam never reaching the tolerance, is no advantage; ∞, GD never reaching
    it, is one); (b) at the largest ε Adam is GD-like: speed-up within [0.5, 2] on every seed.
    Mixed seeds are "inconclusive"; a tuned rate at its grid's edge is "not measurable"."""
    lo, hi = GD_LIKE
    out = []
    for label, re_, want in (("advantage over GD at the smallest ε", res.rel_eps[0], "adv"),
                             ("GD-like at the largest ε", res.rel_eps[-1], "gd")):
        rows = [r for r in res.rows if r.case == case and r.variant == variant
                and r.rel_eps == re_]
        name = f"{case}/{variant}: {label} (ε/G = {re_:g})"
        if not rows:
            out.append(Part(name, "not measurable", "no runs"))
            continue
        if any(r.at_edge for r in rows):
            out.append(Part(name, "not measurable", "a tuned rate is at its grid's edge"))
            continue
        s_ = np.array([r.speedup for r in rows])
        ok = s_ > hi if want == "adv" else (s_ >= lo) & (s_ <= hi)
        detail = "speed-ups " + ", ".join(f"{v:.3g}×" for v in s_)
        out.append(Part(name, "holds" if ok.all() else "fails" if not ok.any()
                        else "inconclusive", detail))
    return out


def findings(res: EpsResult) -> Finding:
    """Every case and variant: the two parts of `speedup_parts`."""
    parts = [p for case in res.cases for v in EPS_VARIANTS for p in speedup_parts(res, case, v)]
    return Finding("Speed-up over tuned GD (GD iterations / Adam iterations to the tolerance). "
                   + explain(parts), combine(parts), parts=tuple(parts))


SPEC = FigureSpec(
    name="fig_eps",
    title="ε interpolates between sign descent and SGD (Su, 2024)",
    claim=("Adam with ε → 0 behaves like sign descent and with large ε like SGD (SoftSign "
           "view), so its advantage over GD on heterogeneous blocks fades as ε grows past the "
           "gradient scale."),
    caption="Speed-up over tuned GD against ε relative to the median gradient magnitude G.",
    settings={"tiny": {"cases": ("hetero",), "rel_eps": (1e-2, 1e2), "steps": 5000},
              "quick": SETTINGS["eps"]["quick"], "full": SETTINGS["eps"]["full"]},
    packages=("quadlab",),
    compute=eps_study,
    draw=plot,
    findings=findings,
)
