"""Figure 6 analogue: JS at the starting point and the SGD–Adam gap, scratch vs fine-tune.

Draws :meth:`nets.studies.finetune.FinetuneStudy.to_dict` (also what ``nets finetune --json``
prints); the report entry is ``figures.nets_specs.FINETUNE``
(``python -m figures --only fig6_finetune``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .style import PALETTE, RC, save


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

