from figures.__main__ import main


def test_main_job_writes_figure_8_and_prints_table(tmp_path, capsys):
    assert main(["--seeds", "1", "--steps", "2000", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "transformer" in out and "GD iterations / Adam" in out
    for ext in ("png", "pdf"):
        f = tmp_path / f"fig8_quadratic.{ext}"
        assert f.exists() and f.stat().st_size > 10_000
