"""Figure 6 analogue: JS at the starting point and the SGD–Adam gap, scratch vs fine-tune.

Draws :meth:`nets.studies.finetune.FinetuneStudy.to_dict` (also what ``nets finetune --json``
prints) and owns the report entry ``SPEC`` (``python -m figures --only fig6_finetune``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from labkit.tables import format_table
from nets.studies.finetune import PRETRAIN_STEPS, FinetuneStudy, finetune_study

from .budgets import FINETUNE_QUICK_PROFILE, TINY_PROFILE, gap_profile
from .gapstats import describe, gap_difference_part
from .registry import FigureSpec, Finding
from .style import PALETTE, RC, save
from .verdict import combine, explain, groups_ordered


def plot(study: dict, out_dir: Path) -> list[Path]:
    """Left: JS at start and gap per batch size; right: tuned loss curves (largest batch)."""
    reps = {"from scratch": study["scratch"], "fine-tune": study["finetune"]}
    with plt.rc_context(RC):
        fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(12, 3.5))
        names = list(reps)
        a0.bar(names, [reps[n]["js0"] for n in names], color=PALETTE[:2])
        a0.set_ylabel("JS at the starting point")
        a0.set_title("block heterogeneity")
        sizes = [r["batch_size"] for r in reps["from scratch"]["results"]]
        w = 0.38
        for k, n in enumerate(names):
            gaps = [r["gap"] if r["gap"] is not None else float("nan")
                    for r in reps[n]["results"]]
            a1.bar([i + (k - 0.5) * w for i in range(len(sizes))], gaps, w, label=n,
                   color=PALETTE[k])
        a1.set_xticks(range(len(sizes)), [f"B={b}" for b in sizes])
        a1.set_ylabel("gap ln(L_SGD / L_Adam)")
        a1.set_title("SGD–Adam gap")
        a1.legend()
        for k, n in enumerate(names):
            r = reps[n]["results"][-1]
            for opt, label, ls in (("sgd", "SGD", "--"), ("adam", "Adam", "-")):
                a2.plot(r[opt]["eval_steps"], r[opt]["curve"], ls, color=PALETTE[k],
                        label=f"{n}, {label}")
        a2.set_yscale("log")
        a2.set_xlabel("step")
        a2.set_ylabel("training loss")
        a2.set_title(f"tuned curves, B={reps['fine-tune']['results'][-1]['batch_size']}")
        a2.legend()
        fig.tight_layout()
        return save(fig, Path(out_dir), "fig6_finetune")



def compute(*, profile, pretrain_steps: int, progress=None) -> FinetuneStudy:
    """`nets.studies.finetune.finetune_study`: GPT on the dialect corpus, from scratch vs
    fine-tuned."""
    return finetune_study(gap_profile(profile), pretrain_steps=pretrain_steps,
                          progress=progress)


def draw(res: FinetuneStudy, out_dir: Path) -> list[Path]:
    return plot(res.to_dict(), out_dir)


def findings(res: FinetuneStudy) -> Finding:
    """Parts: (1) JS at the pretrained checkpoint is below JS at random initialization beyond
    the bootstrap intervals; (2) per batch size, the gap from scratch exceeds the fine-tuning
    gap beyond the spread of the paired seeds (≥ 3 seeds, else "inconclusive")."""
    sc, ft = res.scratch, res.finetune
    parts = [groups_ordered("the pretrained model is less heterogeneous (JS at the start)",
                            [(sc.js0_low, sc.js0_high)], [(ft.js0_low, ft.js0_high)])]
    parts += [gap_difference_part(f"at B = {a.batch_size}, SGD lags Adam less when "
                                  "fine-tuning than from scratch", a, b)
              for a, b in zip(sc.results, ft.results, strict=True)]
    measured = (explain(parts) + f" JS at the start: {sc.js0:.3f} [{sc.js0_low:.3f}, "
                f"{sc.js0_high:.3f}] from scratch, {ft.js0:.3f} [{ft.js0_low:.3f}, "
                f"{ft.js0_high:.3f}] at the checkpoint. From scratch: {describe(sc.results)}. "
                f"Fine-tuning: {describe(ft.results)}.")
    rows = [{"start": r["start"], "B": r["B"], "js": r["js"], "sgd": r["sgd_loss"],
             "adam": r["adam_loss"], "gap": r["gap"]} for r in res.rows()]
    return Finding(measured, combine(parts), format_table(rows, [
        ("start", "start", ""), ("B", "B", "d"), ("js", "JS at start", ".3f"),
        ("sgd", "L_SGD", ".3g"), ("adam", "L_Adam", ".3g"), ("gap", "gap", ".2f")],
        markdown=True), tuple(parts))


SPEC = FigureSpec(
    name="fig6_finetune",
    title="Figure 6 analogue — fine-tuning a pretrained GPT vs training from scratch",
    claim=("A pretrained Transformer's Hessian is less block-heterogeneous than at random "
           "initialization, and SGD lags Adam less when fine-tuning it than when training from "
           "scratch (the paper: GPT-2 fine-tuned on Alpaca)."),
    caption=("The zoo GPT pretrained locally with Adam on the grammar corpus, then trained on a "
             "dialect of it (letters a/o swapped), against the same model from random "
             "initialization: JS at the starting point, tuned gap per batch size, tuned curves."),
    settings={"tiny": {"profile": TINY_PROFILE, "pretrain_steps": 15},
              # three seeds (the verdict rules' minimum for a training outcome); see the budget
              "quick": {"profile": FINETUNE_QUICK_PROFILE, "pretrain_steps": PRETRAIN_STEPS},
              "full": {"profile": "full", "pretrain_steps": PRETRAIN_STEPS}},
    packages=("nets",),
    compute=compute,
    draw=draw,
    findings=findings,
)
