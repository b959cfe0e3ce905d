from figures import fig_batch, fig_eps, fig_newton
from figures.__main__ import main
from quadlab.studies.batch import batch_study
from quadlab.studies.eps import eps_study
from quadlab.studies.newton import newton_study


def test_noise_figures_are_drawn_from_small_studies(tmp_path):
    newton = newton_study(problems=("hetero-diagonal",), optimizers=("adam",), beta2s=(0.9,),
                          steps=2000, trajectories=4)
    eps = eps_study(cases=("hetero",), rel_eps=(1e-2, 1e2), steps=5000)
    batch = {c: batch_study(criterion=c, optimizers=("sgd", "adam ε=1"), batch_sizes=(1, 8),
                            repeats=64, steps=100) for c in ("one-step", "budget")}
    paths = (fig_newton.plot(newton, tmp_path) + fig_eps.plot(eps, tmp_path)
             + fig_batch.plot(batch, tmp_path))
    assert len(paths) == 6
    for p in paths:
        assert p.exists() and p.stat().st_size > 10_000


def test_figures_main_only_option_draws_one_figure(tmp_path, capsys):
    assert main(["--only", "fig_eps", "--profile", "tiny", "--out", str(tmp_path),
                 "--no-cache"]) == 0
    assert f"== {fig_eps.SPEC.title} [" in capsys.readouterr().out
    assert (tmp_path / "fig_eps.png").exists() and not (tmp_path / "fig8_quadratic.png").exists()
