r"""The model-size ladder: seven architecture families at growing sizes, on real data.

Each family is the zoo's architecture (:mod:`nets.zoo.models`: math attention, so every model
has second derivatives) with its width and depth as parameters:

==========  ===============================================  ===================================
family      model                                            data (:mod:`nets.zoo.realdata`)
==========  ===============================================  ===================================
``gpt``     causal LM, Pre-LN, separate Q/K/V (GPT-2-like)   Shakespeare words, next token
``bert``    masked LM, Post-LN (BERT-like)                   Shakespeare words, 15% masked
``vit``     ViT, 2×2 patches, fused QKV, class token         sklearn 8×8 handwritten digits
``mixer``   MLP-Mixer, 2×2 patches                           digits
``resnet``  ResNet, basic blocks, BatchNorm (eval mode)      digits
``vgg``     VGG: pairs of 3×3 convs + max-pool, one FC       digits
``mlp``     4-layer ReLU MLP                                 digits
==========  ===============================================  ===================================

Profiles (:data:`LADDERS`): ``tiny`` (a few hundred to a few thousand parameters: the exact-
Hessian tests), ``ladder`` (the CPU ladder: 4 sizes per family from the zoo's size, ~5–20k
parameters, to about 1M, a span ≥ 100×) and ``gpu`` (the same code at the paper's sizes:
GPT-2-small and BERT-base widths and depths (d = 768, 12 layers) with a 16k word vocabulary,
ViT-small (d = 384, 12 layers), ResNet-18 widths (64–512, 2 blocks per stage)).

Initialization as in the zoo (:func:`nets.zoo.models._init`): N(0, 0.02²) for the Transformer
families, LeCun normal elsewhere, from a ``torch.Generator`` seeded with the model seed.

Beside them, :data:`HF_FAMILIES` (``hf-gpt2``, ``hf-bert``, ``hf-vit``, ``hf-resnet``) are the
Hugging Face ``transformers`` classes built from configs with random initialization, on the
same data (:mod:`nets.zoo.hf_families`; optional, ``pip install '.[hf]'``): the ``ladder``
profile has 4 sizes each from ~4–6k to ~0.7–1M parameters, the ``gpu`` profile GPT-2-small /
BERT-base widths (16k word vocabulary), ViT-small and ResNet-18. :data:`LADDER_FAMILIES` lists
both kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nets.zoo.hf_families import HF_FAMILIES, HF_TEXT_FAMILIES, hf_build, hf_parameter_count
from nets.zoo.models import (
    GPT,
    META,
    MLP,
    VGG,
    BasicBlock,
    Mixer,
    ViT,
    _init,
    token_cross_entropy,
)
from nets.zoo.realdata import digits_split, word_lm_arrays

__all__ = ["FAMILIES", "HF_FAMILIES", "LADDERS", "LADDER_FAMILIES", "TEXT_FAMILIES", "Rung",
           "build_rung", "ladder", "parameter_count", "rung_data"]

FAMILIES = ("gpt", "bert", "vit", "mixer", "resnet", "vgg", "mlp")
TEXT_FAMILIES = ("gpt", "bert")
#: The zoo's families and the Hugging Face ones (:mod:`nets.zoo.hf_families`).
LADDER_FAMILIES = FAMILIES + HF_FAMILIES
_WORD_FAMILIES = TEXT_FAMILIES + HF_TEXT_FAMILIES  # word LMs on Shakespeare
_MASKED_FAMILIES = ("bert", "hf-bert")
IMAGE_SIZE, CLASSES = 8, 10


class LadderResNet(nn.Module):
    """ResNet with basic blocks: stem conv, stages of ``depth`` blocks at ``widths``
    (stride 2 between stages), global average pool, linear head."""

    def __init__(self, widths=(8, 16), depth=1, classes=CLASSES):
        super().__init__()
        self.stem = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False, device=META)
        self.bn = nn.BatchNorm2d(widths[0], device=META)
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(depth):
                blocks.append(BasicBlock(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(c, classes, device=META)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        for b in self.blocks:
            x = b(x)
        return self.fc(x.mean((2, 3)))


@dataclass(frozen=True)
class Rung:
    """One size of one family.

    Attributes:
        family: One of :data:`FAMILIES`.
        size: Index of the size within its ladder (0 = smallest).
        config: Width/depth keyword arguments (see :func:`build_rung`).
        vocab: Word vocabulary size of the text families (0 for images).
        context: Sequence length of the text families (0 for images).
    """

    family: str
    size: int
    config: tuple[tuple[str, object], ...]
    vocab: int = 0
    context: int = 0

    @property
    def name(self) -> str:
        """``<family>-<k>=<v>-...``, e.g. ``gpt-d32-L2-h4-V512``."""
        parts = [f"{k}{'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                 for k, v in self.config]
        if self.vocab:
            parts.append(f"V{self.vocab}")
        return "-".join([self.family, *parts])

    def kwargs(self) -> dict:
        """The width/depth configuration as keyword arguments."""
        return dict(self.config)


def _text(family, size, d, L, h, vocab=512, context=32):
    return Rung(family, size, (("d", d), ("L", L), ("h", h)), vocab, context)


def _rungs(family: str, configs, **kw) -> tuple[Rung, ...]:
    if family in _WORD_FAMILIES:
        return tuple(_text(family, i, *c, **kw) for i, c in enumerate(configs))
    return tuple(Rung(family, i, tuple(c.items())) for i, c in enumerate(configs))


_TXT_TINY = [(4, 1, 2)]
_TXT_LADDER = [(8, 1, 2), (32, 2, 4), (64, 3, 4), (136, 4, 4)]
_TXT_GPU = [(768, 12, 12)]
_HF_RESNET_LADDER = [{"e": 8, "w": (8, 16), "n": (1, 1)}, {"e": 16, "w": (16, 32), "n": (1, 1)},
                     {"e": 32, "w": (32, 64), "n": (2, 2)},
                     {"e": 32, "w": (32, 64, 128), "n": (2, 2, 2)}]

#: ``{profile: {family: rungs}}``.
LADDERS: dict[str, dict[str, tuple[Rung, ...]]] = {
    "tiny": {
        "gpt": _rungs("gpt", _TXT_TINY, vocab=12, context=4),
        "bert": _rungs("bert", _TXT_TINY, vocab=12, context=4),
        "vit": _rungs("vit", [{"d": 4, "L": 1, "h": 2}]),
        "mixer": _rungs("mixer", [{"d": 4, "L": 1}]),
        "resnet": _rungs("resnet", [{"w": (2, 4), "n": 1}]),
        "vgg": _rungs("vgg", [{"c": 2}]),
        "mlp": _rungs("mlp", [{"h": 6}]),
        "hf-gpt2": _rungs("hf-gpt2", _TXT_TINY, vocab=12, context=4),
        "hf-bert": _rungs("hf-bert", _TXT_TINY, vocab=12, context=4),
        "hf-vit": _rungs("hf-vit", [{"d": 4, "L": 1, "h": 2}]),
        "hf-resnet": _rungs("hf-resnet", [{"e": 2, "w": (2, 3), "n": (1, 1)}]),
    },
    "ladder": {
        "gpt": _rungs("gpt", _TXT_LADDER),
        "bert": _rungs("bert", _TXT_LADDER),
        "vit": _rungs("vit", [{"d": 16, "L": 1, "h": 2}, {"d": 48, "L": 2, "h": 4},
                              {"d": 96, "L": 3, "h": 4}, {"d": 144, "L": 4, "h": 4}]),
        "mixer": _rungs("mixer", [{"d": 16, "L": 1}, {"d": 48, "L": 2}, {"d": 112, "L": 3},
                                  {"d": 176, "L": 4}]),
        "resnet": _rungs("resnet", [{"w": (8, 16), "n": 1}, {"w": (16, 32), "n": 1},
                                    {"w": (32, 64), "n": 2}, {"w": (64, 128), "n": 2}]),
        "vgg": _rungs("vgg", [{"c": 8}, {"c": 24}, {"c": 64}, {"c": 128}]),
        "mlp": _rungs("mlp", [{"h": 32}, {"h": 96}, {"h": 256}, {"h": 640}]),
        "hf-gpt2": _rungs("hf-gpt2", _TXT_LADDER),
        "hf-bert": _rungs("hf-bert", _TXT_LADDER),
        "hf-vit": _rungs("hf-vit", [{"d": 16, "L": 1, "h": 2}, {"d": 48, "L": 2, "h": 4},
                                    {"d": 96, "L": 3, "h": 4}, {"d": 144, "L": 4, "h": 4}]),
        "hf-resnet": _rungs("hf-resnet", _HF_RESNET_LADDER),
    },
    "gpu": {
        "gpt": _rungs("gpt", _TXT_GPU, vocab=16384, context=128),
        "bert": _rungs("bert", _TXT_GPU, vocab=16384, context=128),
        "vit": _rungs("vit", [{"d": 384, "L": 12, "h": 6}]),
        "mixer": _rungs("mixer", [{"d": 512, "L": 8}]),
        "resnet": _rungs("resnet", [{"w": (64, 128, 256, 512), "n": 2}]),
        "vgg": _rungs("vgg", [{"c": 512}]),
        "mlp": _rungs("mlp", [{"h": 2048}]),
        "hf-gpt2": _rungs("hf-gpt2", _TXT_GPU, vocab=16384, context=128),    # GPT-2 small
        "hf-bert": _rungs("hf-bert", _TXT_GPU, vocab=16384, context=128),    # BERT-base
        "hf-vit": _rungs("hf-vit", [{"d": 384, "L": 12, "h": 6}]),           # ViT-S
        "hf-resnet": _rungs("hf-resnet", [{"e": 64, "w": (64, 128, 256, 512),
                                           "n": (2, 2, 2, 2)}]),            # ResNet-18
    },
}


def ladder(family: str, profile: str = "ladder") -> tuple[Rung, ...]:
    """The rungs of ``family`` in ``profile`` (smallest first).

    Args:
        family: One of :data:`LADDER_FAMILIES` (the zoo's or the Hugging Face ones).
        profile: A key of :data:`LADDERS`.

    Returns:
        The rungs, smallest first.

    Raises:
        ValueError: unknown family or profile.
    """
    if profile not in LADDERS:
        raise ValueError(f"unknown ladder profile {profile!r}; choose from {', '.join(LADDERS)}")
    if family not in LADDER_FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(LADDER_FAMILIES)}")
    return LADDERS[profile][family]


def _module(rung: Rung) -> tuple[nn.Module, float | None]:
    k, f = rung.kwargs(), rung.family
    if f in TEXT_FAMILIES:
        causal = f == "gpt"
        return GPT(rung.vocab, rung.context, d=k["d"], heads=k["h"], layers=k["L"],
                   causal=causal, pre_ln=causal), 0.02
    if f == "vit":
        return ViT(d=k["d"], heads=k["h"], layers=k["L"], patch=2, size=IMAGE_SIZE), 0.02
    if f == "mixer":
        return Mixer(d=k["d"], layers=k["L"], patch=2, size=IMAGE_SIZE), None
    if f == "resnet":
        return LadderResNet(widths=tuple(k["w"]), depth=k["n"]), None
    if f == "vgg":
        c = k["c"]
        return VGG(channels=(c, c, 2 * c, 2 * c), size=IMAGE_SIZE), None
    if f == "mlp":
        h = k["h"]
        return MLP(sizes=(IMAGE_SIZE ** 2, h, h, h, CLASSES)), None
    raise ValueError(f"unknown family {f!r}")


def build_rung(rung: Rung, seed: int = 0, *, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Callable]:
    """``(model, loss_fn)`` of a rung at its seeded initialization (eval mode).

    The loss is the mean token cross-entropy (``-100`` targets ignored) for the text
    families and the mean cross-entropy over images otherwise.

    Args:
        rung: The rung (:func:`ladder`).
        seed: Seed of the initialization (``torch.Generator``; the Hugging Face families seed
            a forked global generator, :func:`nets.zoo.hf_families.hf_build`).
        device: Where to put the model.
        dtype: Parameter dtype.

    Returns:
        ``(model, loss_fn)``.
    """
    if not isinstance(rung, Rung):
        raise TypeError(f"rung must be a Rung (from nets.zoo.families.ladder), got "
                        f"{type(rung).__name__}")
    if rung.family in HF_FAMILIES:
        model, loss_fn = hf_build(rung.family, rung.kwargs(), vocab=rung.vocab,
                                  context=rung.context, seed=seed)
        return model.to(device=device, dtype=dtype), loss_fn
    gen = torch.Generator().manual_seed(int(seed))
    module, std = _module(rung)
    model = _init(module, gen, std=std).to(device=device, dtype=dtype)
    return model, (token_cross_entropy if rung.family in TEXT_FAMILIES else F.cross_entropy)


def parameter_count(rung: Rung) -> int:
    """Number of parameters of the rung's model (counted on the meta device, no memory).

    Args:
        rung: The rung.

    Returns:
        The parameter count.
    """
    if rung.family in HF_FAMILIES:
        return hf_parameter_count(rung.family, rung.kwargs(), vocab=rung.vocab,
                                  context=rung.context)
    module, _ = _module(rung)
    return sum(p.numel() for p in module.parameters())


def rung_data(rung: Rung, split: str, n: int, *, seed: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples ``(inputs, targets)`` of the rung's data from ``split``.

    Text: ``n`` windows of ``rung.context`` words drawn with ``seed`` (``bert``: 15% masked).
    Images: the first ``n`` real digits of the split (``seed`` unused: the order is fixed).

    Args:
        rung: The rung.
        split: ``"spectrum"`` or ``"train"``.
        n: Number of samples.
        seed: Seed of the text windows.

    Returns:
        ``(inputs, targets)`` tensors.

    Raises:
        ValueError: ``n`` larger than the image split.
    """
    if rung.family in _WORD_FAMILIES:
        x, y, _ = word_lm_arrays(n_seq=n, context=rung.context, split=split,
                                 vocab_size=rung.vocab, masked=rung.family in _MASKED_FAMILIES,
                                 seed=seed)
        return x, y
    x, y = digits_split(split)
    if n > len(y):
        raise ValueError(f"the {split!r} digits split has {len(y)} images, asked for {n}")
    return x[:n], y[:n]
