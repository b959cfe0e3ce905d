"""The check of the products against differences of the gradient
(:mod:`nets.engine.second_derivatives`): its verdict rule on hand-set inputs (each outcome), the
difference check on functions with known derivatives, the custom functions it finds in a
graph, and the operator that runs it: a custom ``autograd.Function`` whose ``backward`` is
not differentiable as written gave a wrong Hessian without a word, and is now refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd.function import once_differentiable

import nets
from nets.cli.app import main
from nets.engine.hvp import BlockHVP
from nets.engine.second_derivatives import (
    SPREAD_FACTOR,
    SPREAD_LIMIT,
    DerivativeCheck,
    check_along_random_direction,
    combined_verdict,
    custom_functions,
    derivative_verdict,
    difference_check,
    enforce_derivative_check,
    error_floor,
    step_size,
)
from nets.zoo import models as zoo

CE = nn.functional.cross_entropy


# -- the verdict rule ------------------------------------------------------------------------

def test_the_rule_agrees_within_the_spread_or_the_floor():
    assert derivative_verdict(0.0, 0.0, 1e-6) == ("agrees", 1e-6)
    assert derivative_verdict(2.9e-3, 1e-3, 1e-6) == ("agrees", SPREAD_FACTOR * 1e-3)
    assert derivative_verdict(5e-7, 1e-9, 1e-6)[0] == "agrees"  # below the floor


def test_the_rule_disagrees_beyond_a_converged_spread():
    assert derivative_verdict(3.1e-3, 1e-3, 1e-6)[0] == "disagrees"
    assert derivative_verdict(0.77, 1e-8, 1e-6)[0] == "disagrees"
    assert derivative_verdict(2e-6, 1e-9, 1e-6)[0] == "disagrees"


def test_the_rule_is_inconclusive_where_the_differences_did_not_converge():
    assert derivative_verdict(0.5, SPREAD_LIMIT * 1.01, 1e-6)[0] == "inconclusive"
    assert derivative_verdict(0.0, SPREAD_LIMIT * 1.01, 1e-6)[0] == "inconclusive"
    assert derivative_verdict(float("nan"), 0.0, 1e-6)[0] == "inconclusive"
    assert derivative_verdict(0.5, float("inf"), 1e-6)[0] == "inconclusive"
    # at the limit itself the differences still count
    assert derivative_verdict(0.5, SPREAD_LIMIT, 1e-6)[0] == "disagrees"


def test_the_floor_and_the_step_follow_the_dtype():
    assert error_floor(torch.float64) == 1e-6
    assert error_floor(torch.float32) == pytest.approx(1e4 * 2.0 ** -24)
    assert error_floor(torch.bfloat16) == SPREAD_LIMIT
    assert step_size(2.0, torch.float64) == pytest.approx(2.0 * 2.0 ** (-53 / 3))
    assert step_size(0.0, torch.float32) == pytest.approx(2.0 ** (-8))


# -- the difference check on known derivatives ----------------------------------------------

def _quartic(a: torch.Tensor, w0: torch.Tensor, d: torch.Tensor, *, gradient_scale=1.0):
    """``ℓ(w) = Σ a_i w_i⁴ / 12``: gradient ``a w³ / 3``, Hessian ``diag(a w²)``; the check's
    evaluations along ``d`` from ``w0`` (the gradient times ``gradient_scale``: a backward that
    is not the loss's)."""
    def evaluate(s):
        w = w0 + s * d
        return float((a * w ** 4).sum() / 12), gradient_scale * a * w ** 3 / 3
    return evaluate


def _problem(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    a, w0, d = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(3))
    d /= d.norm()
    a, w0, d = a.to(dtype), w0.to(dtype), d.to(dtype)
    exact = a * w0 ** 2 * d
    return a, w0, d, exact, float((exact.double() * d.double()).sum())


def test_the_difference_check_on_a_quartic_agrees_with_its_hessian_and_not_with_a_wrong_one():
    a, w0, d, exact, curvature = _problem()
    h = step_size(float(w0.norm()), torch.float64)
    right = difference_check(_quartic(a, w0, d), exact, curvature, h, torch.float64)
    assert right.verdict == "agrees" and right.error < 1e-8, right
    assert right.loss_verdict == "agrees" and right.loss_error < 1e-4, right
    wrong = difference_check(_quartic(a, w0, d), exact * 1.01, curvature * 1.01, h,
                             torch.float64)
    assert wrong.verdict == wrong.gradient_verdict == "disagrees", wrong
    assert wrong.error == pytest.approx(0.01, rel=0.02), wrong
    # float32: the same verdicts at its own round-off
    a, w0, d, exact, curvature = _problem(torch.float32)
    h = step_size(float(w0.norm()), torch.float32)
    assert difference_check(_quartic(a, w0, d), exact, curvature, h,
                            torch.float32).verdict == "agrees"
    assert difference_check(_quartic(a, w0, d), exact * 1.05, curvature * 1.05, h,
                            torch.float32).verdict == "disagrees"


def test_a_gradient_that_is_not_the_losss_is_seen_by_the_losss_differences():
    """A backward that halves the gradient: its products are the derivative of that gradient
    (the gradient part agrees), the loss's second differences are not (the loss part
    disagrees, and so does the check)."""
    a, w0, d, exact, curvature = _problem()
    h = step_size(float(w0.norm()), torch.float64)
    check = difference_check(_quartic(a, w0, d, gradient_scale=0.5), 0.5 * exact,
                             0.5 * curvature, h, torch.float64)
    assert check.gradient_verdict == "agrees", check
    assert check.loss_verdict == check.verdict == "disagrees", check


def test_the_check_combines_its_parts():
    assert combined_verdict("agrees", "agrees") == "agrees"
    assert combined_verdict("agrees", "inconclusive") == "agrees"  # the loss part is coarser
    assert combined_verdict("inconclusive", "agrees") == "inconclusive"
    assert combined_verdict("agrees", "disagrees") == "disagrees"
    assert combined_verdict("disagrees", "inconclusive") == "disagrees"


def _cubic_parts(scale: float = 1.0, fails: bool = False):
    """``ℓ(w) = Σ_n Σ_i a_n,i w_n,i³ / 6`` over two named tensors: the gradient ``a w² / 2``, the
    product ``H d = a w d`` (times ``scale``; raising where ``fails``)."""
    g = torch.Generator().manual_seed(3)
    params = {"u": torch.randn(4, 3, generator=g, dtype=torch.float64),
              "v": torch.randn(5, generator=g, dtype=torch.float64)}
    coef = {n: torch.rand(p.shape, generator=g, dtype=torch.float64) + 0.5
            for n, p in params.items()}

    def gradient_at(shifted):
        loss = sum(float((coef[n] * shifted[n] ** 3).sum()) / 6 for n in params)
        return loss, {n: coef[n] * shifted[n] ** 2 / 2 for n in params}

    def product_of(direction):
        if fails:
            raise RuntimeError("no double backward here")
        return {n: scale * coef[n] * params[n] * direction[n] for n in params}

    return params, gradient_at, product_of


def test_the_check_along_a_random_direction_sees_a_right_and_a_wrong_product():
    params, gradient_at, right = _cubic_parts()
    check, _ = check_along_random_direction(params, gradient_at, right, torch.float64,
                                            ("F",), torch.Generator().manual_seed(0))
    assert check.verdict == "agrees" and check.error < 1e-8, check
    assert check.functions == ("F",)
    assert check.step == pytest.approx(step_size(
        float(torch.cat([p.reshape(-1) for p in params.values()]).norm()), torch.float64))
    _, _, wrong = _cubic_parts(scale=1.02)
    check, _ = check_along_random_direction(params, gradient_at, wrong, torch.float64, (),
                                            torch.Generator().manual_seed(0))
    assert check.verdict == "disagrees", check
    assert check.error == pytest.approx(0.02, rel=0.05), check
    # the seeded direction: the same generator seed gives the same check
    again, _ = check_along_random_direction(params, gradient_at, wrong, torch.float64, (),
                                            torch.Generator().manual_seed(0))
    assert again == check


def test_the_check_along_a_random_direction_is_inconclusive_where_the_product_fails():
    params, gradient_at, failing = _cubic_parts(fails=True)
    check, why = check_along_random_direction(params, gradient_at, failing, torch.float64,
                                              (), torch.Generator().manual_seed(0))
    assert check.verdict == check.gradient_verdict == check.loss_verdict == "inconclusive"
    assert np.isnan(check.error) and check.step > 0
    assert "the double backward failed" in why and "no double backward here" in why


def _hand_set(gradient: str, loss: str, functions=("mod.F",)) -> DerivativeCheck:
    return DerivativeCheck(combined_verdict(gradient, loss), 0.3, 1e-3, 3e-3, gradient, 0.2,
                           1e-3, loss, 1e-5, functions)


def test_enforcing_a_check_passes_refuses_or_warns_by_its_verdicts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enforce_derivative_check(_hand_set("agrees", "agrees"), "unused")
        enforce_derivative_check(_hand_set("agrees", "inconclusive"), "unused")
    with pytest.raises(ValueError, match=r"custom torch.autograd.Function mod.F .*central "
                       r"differences of the gradient by 3.0e-01 .*check_derivatives=False"):
        enforce_derivative_check(_hand_set("disagrees", "agrees"), "unused")
    with pytest.raises(ValueError, match=r"the model \(no custom torch.autograd.Function in "
                       r"its graph\).*second differences of the loss by 2.0e-01"):
        enforce_derivative_check(_hand_set("agrees", "disagrees", ()), "unused")
    with pytest.warns(UserWarning, match=r"could not check .*mod.F.*: the reason given; the "
                      r"products are used unchecked"):
        enforce_derivative_check(_hand_set("inconclusive", "agrees"), "the reason given")


def test_the_difference_check_is_inconclusive_across_a_kink_and_agrees_on_zero():
    d = torch.tensor([1.0, 0.0], dtype=torch.float64)

    def kinked(s):  # |w_0| at w = 0
        return abs(s), torch.sign(torch.tensor([s, 0.0], dtype=torch.float64))

    check = difference_check(kinked, torch.zeros(2, dtype=torch.float64), 0.0, 1e-3,
                             torch.float64)
    assert check.verdict == "inconclusive" and check.spread > SPREAD_LIMIT, check
    flat = difference_check(lambda s: (1.0, torch.zeros(2, dtype=torch.float64) + 0 * s * d),
                            torch.zeros(2, dtype=torch.float64), 0.0, 1e-3, torch.float64)
    assert flat.verdict == "agrees" and flat.error == 0.0


def test_differences_below_the_resolution_are_unresolved_not_converged():
    """A loss whose second difference rounds to zero at both steps: equal differences, but not
    converged ones; the round-off term keeps them from disagreeing with a small curvature."""
    def rounded(s):  # a constant loss as float32 sees it, a tiny true curvature
        return 1.0, torch.full((3,), 1e-9 * s, dtype=torch.float32)

    check = difference_check(rounded, torch.full((3,), 1e-9, dtype=torch.float32), 1e-9, 1e-2,
                             torch.float32)
    assert check.loss_verdict != "disagrees", check
    assert check.loss_spread > check.loss_error / SPREAD_FACTOR, check


# -- custom functions in a graph ---------------------------------------------------------------

class _OnceTanh(torch.autograd.Function):
    """tanh whose backward is marked once-differentiable."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class _DifferentiableTanh(torch.autograd.Function):
    """tanh whose backward is written in differentiable operations: exact to every order."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x) ** 2)


class _DetachedTanh(_DifferentiableTanh):
    """The same tanh with its backward's factor computed from a detached tensor: the first
    derivative is right, the second misses ``tanh''``."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x).detach() ** 2)


class _Net(nn.Module):
    """3 → 4 → 2 with the activation ``act`` (a custom Function, or ``torch.tanh``)."""

    def __init__(self, act=None) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4, dtype=torch.float64)
        self.b = nn.Linear(4, 2, dtype=torch.float64)
        self.act = act

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.tanh(h) if self.act is None else self.act.apply(h))


def _net(act=None) -> _Net:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _Net(act)


def _data():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(6, 3, generator=g, dtype=torch.float64),
             torch.randint(0, 2, (6,), generator=g))]


def test_custom_functions_are_found_in_the_graph_by_name():
    x = _data()[0][0]
    assert custom_functions(CE(_net()(x), torch.zeros(6, dtype=torch.long))) == ()
    loss = CE(_net(_DetachedTanh)(x), torch.zeros(6, dtype=torch.long))
    assert custom_functions(loss) == (f"{__name__}._DetachedTanh",)
    assert custom_functions(torch.ones(())) == ()  # no graph


# -- the operator ----------------------------------------------------------------------------

@pytest.mark.parametrize("act", [_OnceTanh, _DetachedTanh])
def test_a_custom_function_without_a_second_derivative_is_refused(act):
    """Both gave a Hessian off by about its own size (the exact one is the same net with
    ``torch.tanh``), symmetric and finite; the differences of the gradient see it."""
    exact = nets.dense_hessian(_net(), CE, _data())
    with warnings.catch_warnings():  # the wrong Hessian, as the products give it unchecked
        warnings.simplefilter("ignore")
        op = BlockHVP(_net(act), CE, _data(), [nets.full_block(_net(act))],
                      mode="reverse-block", check_derivatives=False)
        (wrong,) = op([torch.eye(exact.shape[0], dtype=torch.float64)])
    assert np.abs(wrong.numpy() - exact).max() > 0.5 * np.abs(exact).max()
    assert op.info()["derivative_check"] is None
    with pytest.raises(ValueError, match=rf"_{act.__name__[1:]}.*not the second derivative"):
        nets.dense_hessian(_net(act), CE, _data())
    with pytest.raises(ValueError, match="differentiable operations"):
        nets.full_spectrum(_net(act), CE, _data(), lanczos_steps=4)
    info: dict = {}  # turned off: the spectrum of the wrong Hessian, as before, said so
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nets.blockwise_spectrum(_net(act), CE, _data(), lanczos_steps=4,
                                check_derivatives=False, info=info)
    assert info["derivative_check"] is None


def test_a_differentiable_custom_function_is_checked_and_agrees():
    exact = nets.dense_hessian(_net(), CE, _data())
    op = BlockHVP(_net(_DifferentiableTanh), CE, _data(), nets.resolve_blocks(_net(), None))
    vecs = [torch.eye(b.dim, dtype=torch.float64) for b in op.blocks]
    start = 0
    for b, hv in zip(op.blocks, op(vecs), strict=True):
        np.testing.assert_allclose(hv.numpy(), exact[start:start + b.dim, start:start + b.dim],
                                   rtol=0, atol=1e-12 * np.abs(exact).max())
        start += b.dim
    check = op.info()["derivative_check"]
    assert check["verdict"] == "agrees" and check["error"] < 1e-7, check
    assert check["functions"] == [f"{__name__}._DifferentiableTanh"]


def test_the_check_runs_where_asked_and_only_there():
    plain = BlockHVP(_net(), CE, _data(), [nets.full_block(_net())])
    plain([torch.ones(1, 26, dtype=torch.float64)])
    assert plain.info()["derivative_check"] is None  # torch's own operations: not run
    forced = BlockHVP(_net(), CE, _data(), [nets.full_block(_net())], check_derivatives=True)
    forced([torch.ones(1, 26, dtype=torch.float64)])
    check = forced.info()["derivative_check"]
    assert check["verdict"] == "agrees" and check["functions"] == [], check
    with pytest.raises(TypeError, match="check_derivatives must be True, False or None"):
        BlockHVP(_net(), CE, _data(), [nets.full_block(_net())], check_derivatives="yes")


class _Kinked(torch.autograd.Function):
    """|x| with a correct derivative everywhere but at 0, evaluated exactly at its kink."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.abs()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sign(x)


class _AtTheKink(nn.Module):
    """``Σ |w x|`` with ``w = 0``: the gradient jumps across the point."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def forward(self, x):
        return _Kinked.apply(x * self.w).sum(-1)


def test_a_gradient_that_jumps_leaves_the_check_inconclusive_with_a_warning():
    data = [(torch.ones(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))]
    op = BlockHVP(_AtTheKink(), lambda out, y: (out - y).mean(), data,
                  [nets.full_block(_AtTheKink())])
    with pytest.warns(UserWarning, match="could not check the second derivatives"):
        op([torch.ones(1, 3, dtype=torch.float64)])
    assert op.info()["derivative_check"]["verdict"] == "inconclusive"


@pytest.mark.parametrize("name", ["vit", "gpt", "bert", "mixer", "resnet"])
def test_the_zoo_models_second_derivatives_against_differences(name):
    """An instrument independent of autograd's double backward for the models behind the
    report: on the zoo's smooth models (GELU, softmax, LayerNorm) the products agree with the
    differences of the gradient in float32 and float64; the ReLU/max-pool ResNet is
    inconclusive (its gradient jumps at the steps' scale), and says so."""
    for dtype in (torch.float32, torch.float64):
        model, loss_fn, data = zoo.load(name, seed=0, dtype=dtype)
        op = BlockHVP(model, loss_fn, data[:1], [nets.full_block(model)],
                      check_derivatives=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            op([torch.ones(1, op.blocks[0].dim, dtype=dtype)])
        check = op.info()["derivative_check"]
        want = "inconclusive" if name == "resnet" else "agrees"
        assert check["verdict"] == want, (name, dtype, check)
        assert any("could not check" in str(w.message) for w in caught) == (want != "agrees")


def test_a_backward_hook_that_changes_gradients_is_refused():
    """A module's full backward hook that halves the gradient flowing into it: torch's
    gradient is not the loss's, and the double backward is not even its derivative. The hook
    runs as a custom Function (``BackwardHookFunction``), so the check runs and refuses it; a
    hook that only observes passes."""
    model = _net()
    model.b.register_full_backward_hook(
        lambda module, grad_in, grad_out: tuple(None if g is None else 0.5 * g
                                                for g in grad_in))
    with pytest.raises(ValueError, match=r"BackwardHookFunction.*not the second derivative"
                                         r".*a backward hook that changes gradients"):
        nets.dense_hessian(model, CE, _data())
    seen = []
    observed = _net()
    observed.b.register_full_backward_hook(lambda module, grad_in, grad_out: seen.append(1))
    exact = nets.dense_hessian(_net(), CE, _data())
    np.testing.assert_allclose(nets.dense_hessian(observed, CE, _data()), exact, rtol=0,
                               atol=1e-12 * np.abs(exact).max())
    assert seen


class _HalfGradient(torch.autograd.Function):
    """The identity whose backward halves the gradient (a gradient-scaling layer, the kind a
    gradient-reversal layer is): differentiable as written, but not the loss's gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return 0.5 * grad


def test_a_gradient_that_is_not_the_losss_is_refused_by_the_losss_differences():
    """A loss whose backward is halved: torch's gradient is that of half the loss, and the
    products are its exact derivative (the gradient part agrees), half the loss's Hessian:
    only the loss's second differences see it. The same layer inside the network makes a
    "gradient" that is no function's (its Jacobian is not symmetric), which the gradient part
    refuses."""
    def halved(out, y):
        return _HalfGradient.apply(CE(out, y))

    op = BlockHVP(_net(), halved, _data(), [nets.full_block(_net())])
    with pytest.raises(ValueError, match=r"_HalfGradient.*second differences of the loss.*"
                                         r"not the loss's"):
        op([torch.ones(1, 26, dtype=torch.float64)])
    check = op.derivative_check
    assert (check.gradient_verdict, check.loss_verdict) == ("agrees", "disagrees"), check
    inside = BlockHVP(_net(_HalfGradient), CE, _data(), [nets.full_block(_net())])
    with pytest.raises(ValueError, match=r"central differences of the gradient"):
        inside([torch.ones(1, 26, dtype=torch.float64)])
    assert inside.derivative_check.gradient_verdict == "disagrees"


class _HookedNet(_Net):
    """The net with a tensor hook halving the gradient of its hidden layer, registered in
    ``forward``: no custom Function in the graph."""

    def forward(self, x):
        h = torch.tanh(self.a(x))
        if h.requires_grad:
            h.register_hook(lambda g: 0.5 * g)
        return self.b(h)


def test_a_tensor_hook_is_found_only_when_asked():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _HookedNet()
    unchecked = BlockHVP(model, CE, _data(), [nets.full_block(model)])
    unchecked([torch.ones(1, 26, dtype=torch.float64)])
    assert unchecked.custom_functions == () and unchecked.info()["derivative_check"] is None
    asked = BlockHVP(model, CE, _data(), [nets.full_block(model)], check_derivatives=True)
    with pytest.raises(ValueError, match=r"no custom torch.autograd.Function in its graph.*"
                                         r"not the second derivative"):
        asked([torch.ones(1, 26, dtype=torch.float64)])


FACTORY = '''import torch


class DetachedTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x).detach() ** 2)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.b(DetachedTanh.apply(self.a(x)))


def make():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    data = [(torch.randn(6, 3, generator=g), torch.randint(0, 2, (6,), generator=g))]
    return Net(), torch.nn.functional.cross_entropy, data
'''


def test_the_command_line_refuses_a_wrong_second_derivative_unless_told_not_to_check(
        tmp_path, capsys):
    """``nets spectrum`` on a user's model whose custom Function has no second derivative:
    refused by default with the cause and the fix, run with ``--check-derivatives never``."""
    path = tmp_path / "detached.py"
    path.write_text(FACTORY)
    common = ["spectrum", "--model", f"{path}:make", "--steps", "3", "--probes", "1",
              "--quiet"]
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "DetachedTanh" in err and "not the second derivative" in err
    assert "--check-derivatives never" in err
    assert main([*common, "--check-derivatives", "never", "--json"]) == 0
    assert '"blocks"' in capsys.readouterr().out
