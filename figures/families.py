"""The one model → family table used by every figure (zoo models of `nets.zoo.models`)."""

from __future__ import annotations

__all__ = ["FAMILY", "family"]

#: Architecture family of each zoo model, as the paper groups them.
FAMILY: dict[str, str] = {"resnet": "CNN", "vgg": "CNN", "mlp": "MLP", "gpt": "Transformer",
                          "bert": "Transformer", "vit": "Transformer", "mixer": "MLP-mixer"}


def family(model: str) -> str:
    """The family of a zoo model (``"?"`` for models outside the zoo, e.g. scaled MLPs)."""
    return FAMILY.get(model, "?")
