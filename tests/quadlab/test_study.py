import numpy as np

import quadlab
import quadlab.studies


def test_small_study_shows_adam_ahead_on_hetero_and_not_on_homo():
    calls = []
    res = quadlab.studies.run_study(cases=("hetero", "homo"), seeds=(0,), steps=20_000,
                            optimizers={"GD": ("gd", {}), "Adam β2=1": ("adam", {})},
                            progress=calls.append)
    assert len(calls) == 4 and len(res.runs) == 4
    assert res.speedup("hetero") > 10  # measured: ~190× (loss-gap criterion)
    assert res.speedup("homo") < 2
    rows = res.table()
    assert {r["case"] for r in rows} == {"hetero", "homo"}
    assert all(r["seeds"] == 1 for r in rows)
    curve = res.curve("hetero", "GD", 0)
    assert curve.shape == (20_001,) and np.all(np.diff(curve) <= 1e-12 * curve[0])
