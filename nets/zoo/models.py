"""Small models that show each architecture's block structure, with offline data.

``load(name, seed=0)`` returns ``(model, loss_fn, data)`` in the :mod:`nets` conventions, the
model in eval mode (a deterministic loss) and float32. Parameters are created on the ``meta``
device and initialized from a ``torch.Generator`` seeded with ``seed`` (no global RNG state).

==========  ==========================================================  ==================
name        model                                                       data
==========  ==========================================================  ==================
``mlp``     4-layer ReLU MLP 256-64-64-64-10                            glyph digits 16×16
``vgg``     VGG-style: 4 conv3×3 (8,8,16,16) + ReLU + max-pool, FC       glyph digits
``resnet``  ResNet-style: stem 8 + basic blocks 8, 16 (BatchNorm, eval)  glyph digits
``vit``     ViT: 4×4 patches, 2 Pre-LN layers, d=32, 4 heads, fused QKV  glyph digits
``mixer``   MLP-Mixer: 4×4 patches, 2 layers, d=32                      glyph digits
``gpt``     GPT: char LM, 2 Pre-LN layers, d=32, 4 heads, separate Q/K/V grammar corpus
``bert``    BERT: masked char LM, 2 Post-LN layers, d=32, 4 heads        grammar corpus
==========  ==========================================================  ==================

Initializations follow the originals: N(0, 0.02²) for Transformer weights and embeddings
(GPT-2/BERT/ViT), N(0, 1/fan_in) (LeCun) elsewhere, zero biases, unit norm gains. Attention is
written out (math attention) so that it has second derivatives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nets.engine.roles import role_blocks
from nets.zoo.data import VOCAB, char_lm_batches, glyph_digits, masked_lm_batches

__all__ = ["MODELS", "PARTITIONS", "attention", "load", "partition", "tiny_transformer",
           "token_cross_entropy"]

MODELS = ("mlp", "vgg", "resnet", "vit", "gpt", "bert", "mixer")
PARTITIONS = ("params", "qkv", "heads")

META = torch.device("meta")


def _init(model: nn.Module, gen: torch.Generator, *, std: float | None) -> nn.Module:
    """Materialize a meta-device model on the CPU and initialize it from ``gen``.

    Norm layers: gain 1, bias 0, running statistics (0, 1). Linear, conv and embedding weights:
    N(0, std²) if ``std`` is given, else N(0, 1/fan_in) (embeddings N(0, 1)). Biases 0. Other
    parameters (class token, position embeddings): N(0, (std or 0.02)²).
    """
    model = model.to_empty(device="cpu")
    done: set[int] = set()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm | nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)
                    m.num_batches_tracked.zero_()
            elif isinstance(m, nn.Linear | nn.Conv2d | nn.Embedding):
                w = m.weight
                fan_in = 1 if isinstance(m, nn.Embedding) else w[0].numel()
                s = std if std is not None else 1.0 / math.sqrt(fan_in)
                w.copy_(torch.randn(w.shape, generator=gen) * s)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
            else:
                continue
            done.update(id(p) for p in m.parameters(recurse=False))
        for p in model.parameters():
            if id(p) not in done:
                p.copy_(torch.randn(p.shape, generator=gen) * (std or 0.02))
    return model.eval()


class MLP(nn.Module):
    def __init__(self, sizes=(256, 64, 64, 64, 10)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b, device=META)
                                    for a, b in itertools.pairwise(sizes))

    def forward(self, x):
        x = x.flatten(1)
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class VGG(nn.Module):
    def __init__(self, channels=(8, 8, 16, 16), classes=10, size=16):
        super().__init__()
        convs, c = [], 1
        for ch in channels:
            convs.append(nn.Conv2d(c, ch, 3, padding=1, device=META))
            c = ch
        self.convs = nn.ModuleList(convs)
        self.fc = nn.Linear(c * (size // 4) ** 2, classes, device=META)

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return self.fc(x.flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False, device=META)
        self.bn1 = nn.BatchNorm2d(cout, device=META)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False, device=META)
        self.bn2 = nn.BatchNorm2d(cout, device=META)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Conv2d(cin, cout, 1, stride, bias=False, device=META)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, 1, 1, bias=False, device=META)
        self.bn = nn.BatchNorm2d(8, device=META)
        self.block1 = BasicBlock(8, 8, 1)
        self.block2 = BasicBlock(8, 16, 2)
        self.fc = nn.Linear(16, classes, device=META)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.block2(self.block1(x))
        return self.fc(x.mean((2, 3)))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
              causal: bool) -> torch.Tensor:
    """Math attention (twice differentiable): softmax(QKᵀ/√d_h + mask) V, per head.

    Args:
        q: Queries ``(b, t, d)``.
        k: Keys ``(b, t, d)``.
        v: Values ``(b, t, d)``.
        heads: Number of heads (``d_h = d / heads``).
        causal: Mask the future (decoder) or not (encoder).
    """
    b, t, d = q.shape
    dh = d // heads
    q, k, v = (z.reshape(b, t, heads, dh).transpose(1, 2) for z in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(dh)
    if causal:
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
        s = s.masked_fill(mask, float("-inf"))
    y = torch.softmax(s, dim=-1) @ v
    return y.transpose(1, 2).reshape(b, t, d)


class SelfAttention(nn.Module):
    def __init__(self, d, heads, *, fused: bool, causal: bool):
        super().__init__()
        self.heads, self.causal, self.fused = heads, causal, fused
        if fused:
            self.qkv = nn.Linear(d, 3 * d, device=META)
        else:
            self.q = nn.Linear(d, d, device=META)
            self.k = nn.Linear(d, d, device=META)
            self.v = nn.Linear(d, d, device=META)
        self.proj = nn.Linear(d, d, device=META)

    def forward(self, x):
        if self.fused:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        return self.proj(attention(q, k, v, self.heads, self.causal))


class TransformerLayer(nn.Module):
    def __init__(self, d, heads, *, fused: bool, causal: bool, pre_ln: bool):
        super().__init__()
        self.pre_ln = pre_ln
        self.ln1 = nn.LayerNorm(d, device=META)
        self.attn = SelfAttention(d, heads, fused=fused, causal=causal)
        self.ln2 = nn.LayerNorm(d, device=META)
        self.fc1 = nn.Linear(d, 4 * d, device=META)
        self.fc2 = nn.Linear(4 * d, d, device=META)

    def mlp(self, x):
        return self.fc2(F.gelu(self.fc1(x)))

    def forward(self, x):
        if self.pre_ln:
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))


class ViT(nn.Module):
    def __init__(self, d=32, heads=4, layers=2, patch=4, size=16, classes=10):
        super().__init__()
        self.patch = patch
        n = (size // patch) ** 2
        self.patch_emb = nn.Linear(patch * patch, d, device=META)
        self.cls_emb = nn.Parameter(torch.empty(1, 1, d, device=META))
        self.pos_emb = nn.Parameter(torch.empty(1, n + 1, d, device=META))
        self.layers = nn.ModuleList(TransformerLayer(d, heads, fused=True, causal=False,
                                                     pre_ln=True) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, device=META)
        self.head = nn.Linear(d, classes, device=META)

    def forward(self, x):
        b, p = x.shape[0], self.patch
        x = x.unfold(2, p, p).unfold(3, p, p).reshape(b, -1, p * p)
        x = self.patch_emb(x)
        x = torch.cat([self.cls_emb.expand(b, -1, -1), x], 1) + self.pos_emb
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln_f(x[:, 0]))


class MixerLayer(nn.Module):
    def __init__(self, tokens, d, token_hidden, channel_hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, device=META)
        self.token_fc1 = nn.Linear(tokens, token_hidden, device=META)
        self.token_fc2 = nn.Linear(token_hidden, tokens, device=META)
        self.ln2 = nn.LayerNorm(d, device=META)
        self.channel_fc1 = nn.Linear(d, channel_hidden, device=META)
        self.channel_fc2 = nn.Linear(channel_hidden, d, device=META)

    def forward(self, x):
        y = self.ln1(x).transpose(1, 2)
        x = x + self.token_fc2(F.gelu(self.token_fc1(y))).transpose(1, 2)
        return x + self.channel_fc2(F.gelu(self.channel_fc1(self.ln2(x))))


class Mixer(nn.Module):
    def __init__(self, d=32, layers=2, patch=4, size=16, classes=10):
        super().__init__()
        self.patch = patch
        n = (size // patch) ** 2
        self.patch_emb = nn.Linear(patch * patch, d, device=META)
        self.layers = nn.ModuleList(MixerLayer(n, d, 2 * n, 4 * d) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, device=META)
        self.head = nn.Linear(d, classes, device=META)

    def forward(self, x):
        b, p = x.shape[0], self.patch
        x = self.patch_emb(x.unfold(2, p, p).unfold(3, p, p).reshape(b, -1, p * p))
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln_f(x).mean(1))


class GPT(nn.Module):
    def __init__(self, vocab, context, d=32, heads=4, layers=2, *, causal=True, pre_ln=True):
        super().__init__()
        self.wte = nn.Embedding(vocab, d, device=META)
        self.wpe = nn.Embedding(context, d, device=META)
        self.layers = nn.ModuleList(TransformerLayer(d, heads, fused=False, causal=causal,
                                                     pre_ln=pre_ln) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, device=META) if pre_ln else None
        self.head = nn.Linear(d, vocab, bias=False, device=META)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for layer in self.layers:
            x = layer(x)
        if self.ln_f is not None:
            x = self.ln_f(x)
        return self.head(x)


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over tokens, the loss of every language model of the zoo.

    ``ℓ = −(1/|T|) Σ_{t∈T} log softmax(logits_t)[y_t]`` over the positions ``T`` whose target
    is not ``-100`` (masked-LM positions that are not predicted).

    Args:
        logits: ``(..., vocab)`` scores.
        targets: ``(...)`` token ids, ``-100`` where ignored.

    Returns:
        The scalar mean loss.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-100)


def _image_data(seed: int) -> list:
    x, y = glyph_digits(64, seed=seed)
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32)]


_BUILDERS: dict[str, Callable[[], tuple[nn.Module, float | None]]] = {
    "mlp": lambda: (MLP(), None),
    "vgg": lambda: (VGG(), None),
    "resnet": lambda: (ResNet(), None),
    "vit": lambda: (ViT(), 0.02),
    "mixer": lambda: (Mixer(), None),
    "gpt": lambda: (GPT(len(VOCAB), 32), 0.02),
    "bert": lambda: (GPT(len(VOCAB) + 1, 32, causal=False, pre_ln=False), 0.02),
}


def load(name: str, seed: int = 0, *, device: str | torch.device = "cpu",
         dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Callable, list]:
    """``(model, loss_fn, data)`` of a zoo model at its seeded initialization.

    Args:
        name: One of :data:`MODELS`.
        seed: Seed of the initialization and of the data.
        device: Where to put the model and data.
        dtype: Parameter and input dtype.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    gen = torch.Generator().manual_seed(int(seed))
    module, std = _BUILDERS[name]()
    model = _init(module, gen, std=std).to(device=device, dtype=dtype)
    if name in ("gpt", "bert"):
        make = char_lm_batches if name == "gpt" else masked_lm_batches
        data = make(n_seq=16, context=32, batch_size=8, seed=seed)
        loss_fn = token_cross_entropy
        data = [(x.to(device), y.to(device)) for x, y in data]
    else:
        data = [(x.to(device=device, dtype=dtype), y.to(device)) for x, y in _image_data(seed)]
        loss_fn = F.cross_entropy
    return model, loss_fn, data


def partition(name: str, model: nn.Module, kind: str = "params") -> dict[str, object] | None:
    """Block partitions of a zoo model: :func:`nets.engine.roles.role_blocks` with zoo names.

    The split is the engine's (one way to split blocks by role: Q/K/V found from module types
    and shapes, heads from the attention module's ``heads``); only the names of the blocks cut
    from a fused ``attn.qkv`` tensor follow the zoo's convention, as if Q, K and V were separate
    layers (``layers.0.attn.q.weight``, ``layers.0.attn.k.weight.head3``, ``layers.0.attn.v.bias``
    instead of the engine's ``layers.0.attn.qkv.weight.q`` …), so ViT's fused blocks are named
    like GPT's separate ones and stored results keep their block names.

    Args:
        name: Zoo model name (:data:`MODELS`).
        model: The model from :func:`load`.
        kind: ``"params"`` (one block per tensor: ``None``), ``"qkv"`` (a fused QKV weight and
            bias split into Q, K, V; other tensors whole) or ``"heads"`` (Q and K weights split
            further into one block per head, rows of the head, as in Adam-mini).

    Returns:
        A ``blocks`` mapping for :func:`nets.blockwise_spectrum`, or ``None`` for ``"params"``.

    Raises:
        ValueError: an unknown model name or partition.
    """
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; choose from {', '.join(MODELS)}")
    if kind not in PARTITIONS:
        raise ValueError(f"unknown partition {kind!r}; choose from {', '.join(PARTITIONS)}")
    if kind == "params":
        return None
    out: dict[str, object] = {}
    for block, spec in role_blocks(model, split=kind).items():
        pname = spec if isinstance(spec, str) else spec[0]
        if block != pname and ".qkv." in pname:  # a part of a fused Q/K/V tensor
            base, stem = pname.rsplit(".qkv.", 1)
            part, _, head = block[len(pname) + 1:].partition(".")
            block = f"{base}.{part}.{stem}" + (f".{head}" if head else "")
        out[block] = spec
    return out


def tiny_transformer(seed: int = 0, *, d: int = 8, dtype: torch.dtype = torch.float64
                     ) -> tuple[nn.Module, Callable, list]:
    """``(model, loss_fn, data)`` of a one-layer character GPT small enough for its dense
    Hessian (width d, 2 heads, context 8; about 1.4k parameters at d = 8), e.g. for the paper's
    Figure 2.

    Args:
        seed: Seed of the initialization and the data.
        d: Model width.
        dtype: Parameter dtype (float64 for dense-Hessian references).
    """
    gen = torch.Generator().manual_seed(int(seed))
    model = _init(GPT(len(VOCAB), 8, d=d, heads=2, layers=1), gen, std=0.02).to(dtype=dtype)
    data = char_lm_batches(n_seq=8, context=8, batch_size=4, seed=seed)
    return model, token_cross_entropy, data
