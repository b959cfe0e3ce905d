"""Bad input: clear errors, never a hang or a NaN density."""

import copy

import numpy as np
import pytest
import torch

import nets
from nets.engine.results import fingerprint


def _mlp():
    torch.manual_seed(0)  # test-local model construction only
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g))]


CE = torch.nn.functional.cross_entropy


def test_model_without_parameters():
    with pytest.raises(ValueError, match="no trainable parameters"):
        nets.blockwise_spectrum(torch.nn.ReLU(), CE, _data())
    with pytest.raises(ValueError, match="no trainable parameters"):
        nets.full_spectrum(torch.nn.ReLU(), CE, _data())


def test_blocks_naming_no_parameter():
    with pytest.raises(ValueError, match="'nope'"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), blocks={"a": "nope"})
    with pytest.raises(ValueError, match="names no parameter"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), blocks={"a": []})
    with pytest.raises(ValueError, match="empty mapping"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), blocks={})
    with pytest.raises(ValueError, match="selects no entry"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), blocks={"a": ("0.weight", slice(9, 12))})
    with pytest.raises(ValueError, match="overlaps"):
        nets.blockwise_spectrum(_mlp(), CE, _data(),
                                blocks={"a": "0.weight", "b": ("0.weight", slice(0, 1))})
    with pytest.raises(TypeError, match="piece"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), blocks={"a": 3})


def test_empty_and_one_shot_data():
    with pytest.raises(ValueError, match="empty"):
        nets.blockwise_spectrum(_mlp(), CE, [])
    with pytest.raises(TypeError, match="one-shot"):
        nets.blockwise_spectrum(_mlp(), CE, iter(_data()))
    with pytest.raises(TypeError, match="pair"):
        nets.blockwise_spectrum(_mlp(), CE, [torch.zeros(3)])


def test_non_finite_loss():
    x, y = _data()[0]
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        nets.blockwise_spectrum(_mlp(), CE, [(x, y)])


class _Cusp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        return (self.w.abs() ** 1.5).sum() + 0 * x.sum()


def test_non_finite_hvp_is_reported():
    """Finite loss but infinite curvature (|w|^1.5 at 0): an error, never a NaN density."""
    with pytest.raises(ValueError, match="non-finite"):
        nets.blockwise_spectrum(_Cusp(), lambda o, t: o, [(torch.zeros(1), torch.zeros(1))],
                                lanczos_steps=3, probes=1)


def test_loss_not_scalar():
    with pytest.raises(ValueError, match=r"batch 0: loss_fn must return a scalar floating "
                                         r"tensor \(a mean loss\), got shape \(8,\)"):
        nets.blockwise_spectrum(_mlp(), lambda o, t: CE(o, t, reduction="none"), _data())


@pytest.mark.parametrize("loss, got", [(lambda o, t: None, "returned None"),
                                       (lambda o, t: torch.tensor(3), "got dtype torch.int64"),
                                       (lambda o, t: 3.0, "got float")])
def test_a_loss_that_is_not_a_floating_scalar_tensor_is_named(loss, got):
    for spectrum in (nets.blockwise_spectrum, nets.full_spectrum):
        with pytest.raises(ValueError, match=f"batch 0: .*{got}"):
            spectrum(_mlp(), loss, _data(), lanczos_steps=2, probes=1)


@pytest.mark.parametrize("style", ["parametrization", "hook"])
def test_a_spectral_norm_in_training_mode_is_refused_by_name(style):
    """In training mode every forward call of a spectral norm runs a power-iteration step that
    updates its buffers: the loss is another function at every call. In eval mode the stored
    vectors are constants: accepted."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    if style == "parametrization":
        torch.nn.utils.parametrizations.spectral_norm(m[0])
        name = "0.parametrizations.weight.0"
    else:
        torch.nn.utils.spectral_norm(m[0])
        name = "0"
    with pytest.raises(ValueError, match=rf"module '{name}' is a spectral norm in training "
                                         r"mode: .*model\.eval\(\)"):
        nets.blockwise_spectrum(m, CE, _data(), lanczos_steps=3, probes=1)
    m.eval()
    out = nets.blockwise_spectrum(m, CE, _data(), lanczos_steps=3, probes=1)
    assert set(out) == {n for n, _ in m.named_parameters()}


def test_a_model_failing_on_the_data_names_the_batch_torchs_message_and_both_suspects():
    class Float32Only(torch.nn.Module):  # as a kernel without float64 (Hugging Face MoE)
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            if self.lin.weight.dtype == torch.float64:
                raise RuntimeError("Expected mat_a to be Float32 matrix, got Double")
            return self.lin(x)

    with pytest.raises(ValueError, match=r"fails on batch 0 \(RuntimeError: Expected mat_a.*"
                                         r"shapes and dtypes of the inputs and targets, and "
                                         r"that the model itself runs"):
        nets.blockwise_spectrum(Float32Only().double(), CE, [(x.double(), y) for x, y in _data()],
                                lanczos_steps=2, probes=1)


def test_a_complex_parameter_is_refused_with_the_fix():
    class Complex(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.complex64))

        def forward(self, x):
            return (x.to(torch.complex64) @ self.w).abs()

    for spectrum in (nets.blockwise_spectrum, nets.full_spectrum):
        with pytest.raises(TypeError, match=r"parameter 'w' is torch\.complex64.*view_as_real"):
            spectrum(Complex(), CE, _data(), lanczos_steps=2, probes=1)


def test_random_loss_refused():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="dropout"):
        nets.blockwise_spectrum(m, CE, _data())
    bn = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                             torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="batch-norm"):
        nets.blockwise_spectrum(bn, CE, _data())
    bn.eval()  # fixed statistics: accepted
    out = nets.blockwise_spectrum(bn, CE, _data(), lanczos_steps=3, probes=1)
    assert set(out) == {n for n, _ in bn.named_parameters()}

    g = torch.Generator().manual_seed(0)

    def noisy(o, t):  # randomness the mode check cannot see
        return CE(o + torch.rand(o.shape, generator=g), t)

    with pytest.raises(ValueError, match="not deterministic"):
        nets.blockwise_spectrum(_mlp(), noisy, _data())


def test_steps_larger_than_block_dimension():
    """Steps > dim: runs stop at the invariant subspace; padded weights 0; densities finite."""
    model = _mlp().double()
    data = [(x.double(), y) for x, y in _data()]
    spectra = nets.blockwise_spectrum(model, CE, data, lanczos_steps=60, probes=2)
    for s in spectra.values():
        assert s.nodes.shape == (2, 60)
        assert np.all(s.n_steps <= s.dim)
        assert np.all(np.isfinite(s.nodes)) and np.all(np.isfinite(s.weights))
    _grid, dens, _sigma = nets.block_densities(spectra)
    for d in dens.values():
        assert np.all(np.isfinite(d)) and d.sum() > 0
    assert 0.0 <= nets.js0(spectra) <= 1.0


def test_bad_counts():
    with pytest.raises(ValueError, match="lanczos_steps"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), lanczos_steps=0)
    with pytest.raises(ValueError, match="probes"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), probes=0)
    with pytest.raises(TypeError, match="probes"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), probes=2.5)
    with pytest.raises(ValueError, match="probe_indices"):
        nets.blockwise_spectrum(_mlp(), CE, _data(), probes=2, probe_indices=[2])


_NOT_A_MODULE = {"model": "a dict of weights"}
_MODEL_TAKERS = {
    "BlockHVP": lambda m, f: nets.BlockHVP(m, f, _data(), [nets.full_block(_mlp())]),
    "make_batch_hessian_vector_product":
        lambda m, f: nets.make_batch_hessian_vector_product(m, f),
    "blockwise_spectrum": lambda m, f: nets.blockwise_spectrum(m, f, _data()),
    "full_spectrum": lambda m, f: nets.full_spectrum(m, f, _data()),
    "dense_hessian": lambda m, f: nets.dense_hessian(m, f, _data()),
    "resolve_blocks": lambda m, f: nets.resolve_blocks(m, None),
    "parameter_roles": lambda m, f: nets.parameter_roles(m),
    "role_blocks": lambda m, f: nets.role_blocks(m),
    "fingerprint": lambda m, f: fingerprint(m, _data()),
}


@pytest.mark.parametrize("entry", sorted(_MODEL_TAKERS))
def test_every_entry_point_refuses_a_non_module_model_with_one_message(entry):
    """One check (``nets.engine.checks.check_model``) says it everywhere a model is taken."""
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module, got dict$"):
        _MODEL_TAKERS[entry](_NOT_A_MODULE, CE)


@pytest.mark.parametrize("entry", ["BlockHVP", "make_batch_hessian_vector_product",
                                   "blockwise_spectrum", "full_spectrum", "dense_hessian"])
def test_every_entry_point_refuses_a_non_callable_loss_with_one_message(entry):
    with pytest.raises(TypeError, match=r"^loss_fn must be a function such as "
                                        r"torch.nn.functional.cross_entropy, got Tensor$"):
        _MODEL_TAKERS[entry](_mlp(), torch.zeros(()))


def test_a_data_parallel_wrapper_is_refused_with_the_fix():
    wrapped = torch.nn.DataParallel(_mlp())
    for call in (lambda: nets.full_spectrum(wrapped, CE, _data(), lanczos_steps=2, probes=1),
                 lambda: nets.blockwise_spectrum(wrapped, CE, _data(), lanczos_steps=2),
                 lambda: nets.role_blocks(wrapped)):
        with pytest.raises(TypeError, match=r"wrapped in DataParallel: pass model\.module"):
            call()
    nets.full_spectrum(wrapped.module, CE, _data(), lanczos_steps=2, probes=1)


def test_a_compiled_wrapper_is_refused_with_the_fix():
    """torch.compile's wrapper has no double backward (torch's own error said nothing of the
    fix); the module it wraps, and a module compiled in place, give the plain module's
    Hessian."""
    model = _mlp()
    with pytest.raises(TypeError, match=r"compiled by torch.compile \(OptimizedModule\).*"
                                        r"pass model\._orig_mod"):
        nets.full_spectrum(torch.compile(model), CE, _data(), lanczos_steps=2, probes=1)
    h = nets.dense_hessian(model, CE, _data())
    np.testing.assert_array_equal(nets.dense_hessian(torch.compile(model)._orig_mod, CE,
                                                     _data()), h)
    in_place = copy.deepcopy(model)
    in_place.compile()
    np.testing.assert_allclose(nets.dense_hessian(in_place, CE, _data()), h, rtol=0,
                               atol=1e-12 * np.abs(h).max())
