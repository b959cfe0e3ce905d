import json

import numpy as np

from nets.cli import main
from nets.engine.slq import BlockSpectrum
from nets.studies.quadratic_spectra import SOURCES, sample_eigenvalues


def test_sample_eigenvalues_are_quantiles_of_the_absolute_measure():
    # two probes, measure: |λ| ∈ {1, 2, 3, 4} with equal weight
    spec = BlockSpectrum("b", 4, np.array([[-1.0, 2.0], [3.0, -4.0]]), np.full((2, 2), 0.5),
                         np.array([2, 2]), np.array([0, 1]))
    np.testing.assert_array_equal(sample_eigenvalues(spec, 4), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(sample_eigenvalues(spec, 2), [1.0, 3.0])  # levels ¼, ¾
    spike = BlockSpectrum("z", 2, np.array([[0.0, 1.0]]), np.array([[0.9, 0.1]]),
                          np.array([2]), np.array([0]))
    assert sample_eigenvalues(spike, 2)[0] == 1e-6  # floored, never 0


def test_regeneration_script_writes_the_data_file(tmp_path):
    out = tmp_path / "spectra.json"
    assert main(["quadratic-spectra", "--out", str(out), "--size", "5", "--steps", "3",
                 "--probes", "1"]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["size"] == 5 and set(doc["spectra"]) == set(SOURCES)
    for case, (_, blocks) in SOURCES.items():
        assert list(doc["spectra"][case]) == list(blocks)
        assert all(len(v) == 5 and min(v) > 0 for v in doc["spectra"][case].values())
