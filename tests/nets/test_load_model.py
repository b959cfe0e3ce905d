"""nets.zoo.factory.load_model: the library (not the CLI) loads and checks user factories."""

import pytest
import torch

from nets.zoo.factory import load_model

SOURCE = '''
import torch

def good():
    m = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    return m, torch.nn.functional.cross_entropy, [(x, torch.tensor([0, 1, 0, 1]))]

def pair():
    return torch.nn.Linear(3, 2), torch.nn.functional.cross_entropy

def not_a_module():
    return "model", torch.nn.functional.cross_entropy, []

def loss_not_callable():
    return torch.nn.Linear(3, 2), 3.0, []

def broken():
    raise RuntimeError("no GPU here")
'''


@pytest.fixture
def factories(tmp_path):
    path = tmp_path / "user_factories.py"
    path.write_text(SOURCE)
    return str(path)


def test_good_factory(factories):
    model, loss_fn, data = load_model(f"{factories}:good")
    assert isinstance(model, torch.nn.Linear) and callable(loss_fn) and len(data) == 1


@pytest.mark.parametrize(("name", "error", "match"), [
    ("pair", TypeError, r"\(model, loss_fn, data\)"),
    ("not_a_module", TypeError, "torch.nn.Module"),
    ("loss_not_callable", TypeError, "non-callable loss_fn"),
    ("broken", ValueError, "raised RuntimeError: no GPU here"),
    ("missing", ValueError, "no attribute"),
])
def test_bad_factories_are_named(factories, name, error, match):
    with pytest.raises(error, match=match):
        load_model(f"{factories}:{name}")
