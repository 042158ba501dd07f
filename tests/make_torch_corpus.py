#!/usr/bin/env python
"""Build the PyTorch golden corpus for convcalc's conformance test.

    python tests/make_torch_corpus.py [--seed N] [--count N] [--out PATH] [--jobs N]

Independence is the point of this file: it never imports convcalc.  A case
is drawn as a list of plain layer dicts; ``render`` turns each dict into
convcalc's token text, and ``run_layer`` separately builds the ``torch.nn``
module(s) for it and runs them (eval mode, ``torch.no_grad()``, float32
random input), one layer at a time, each inside its own
``torch.utils.flop_counter.FlopCounterMode``.  Per layer we record the output
shape, the parameter count (sum of ``p.numel()``) and the FLOPs counted for
that layer alone.  A ``sepconv`` token is two torch layers (depthwise then
pointwise) and so two records.

If PyTorch raises (construction or forward), or returns a tensor with a
zero-sized dimension, the case is recorded as rejected: ``rejected_at`` is the
1-based token index, ``error`` the first line of the exception.

Padding that torch modules cannot express (asymmetric pairs, the modes
valid/same/same_lower/full) is emulated: convs pad with ``F.pad`` (zeros ->
'constant', or the padding mode) and convolve with padding 0; transposed
convs run with padding 0 and crop; pools check torch's ``pad <= kernel/2``
rule first, then pad (-inf for max, zeros for avg) and pool with padding 0.
Symmetric padding always goes straight into the module, so torch's own
checks fire.

The modern vocabulary (SPEC 3b) is drawn by the cases after the original
``DEFAULT_COUNT`` (indices 3600 .. 3600 + NEW_COUNT - 1, ``make_case_new``),
so the original cases' random streams, and so their tokens and records, are
unchanged.  Each new case is 0-2 filler layers, a focus *block* and 0-2 filler
layers.  Blocks use the graph tokens: ``save:NAME`` (records the current
shape), ``from:NAME``, ``add``/``mul:NAME`` (``x + t`` / ``x * t`` with
torch's broadcasting: SE gates N x C x 1 x 1 against N x C x H x W in both
orders, same shapes, pooled-to-1 dims, 1-channel attention maps, (N, F)
against N x C x H x W right-aligned, and shapes that cannot broadcast),
``concat:NAME`` (``torch.cat([x, t], 1)``); ConvNeXt-like
``permute``/``ln``/``linear``/``permute`` back; ShuffleNet split/concat/shuffle;
U-Net-like ``tconv:...,size=NAME`` and ``up:size=NAME`` (``NAME`` may be
``input``, the network input).  Twins: ``ln`` nn.LayerNorm(x.shape[-dims:]),
``ln2d`` LayerNorm over dim 1 (movedim, LayerNorm(C), movedim back),
``gn`` nn.GroupNorm, ``instnorm`` nn.InstanceNorm{1,2,3}d, ``permute``
x.permute, ``layerscale`` a module with nn.Parameter(ones(C, 1, ..., 1))
times x, ``droppath`` a local StochasticDepth (torchvision is not a
dependency: same argument checks, identity in eval), ``shuffle``
nn.ChannelShuffle, ``chunk`` x.chunk(n, 1)[i], ``pixelshuffle`` /
``pixelunshuffle`` nn.PixelShuffle / nn.PixelUnshuffle, ``pad`` F.pad (pairs
converted to F.pad's last-dim-first order; ``zeros`` is 'constant';
``value`` passed only when the token has it), ``softmax`` / ``logsoftmax``,
the dropout variants, and PyTorch class names as kinds (``Conv2d:8,k=3``,
``BatchNorm2d``, ``ReLU``, ``ZeroPad2d:1``, ... run as their base kind).
Every layer record also holds ``buffers`` (sum of ``b.numel()`` over the
module's buffers, e.g. BatchNorm's 2C + 1 with num_batches_tracked).

Rejections that are convcalc's rule rather than torch's (SPEC 3b / the
issue's design), recorded deliberately as rejections with an error text
ending in "(emulated)"; torch itself would accept these:
- a rank-bound class name (``Conv2d``, ``BatchNorm2d``, ``ZeroPad2d``,
  ``Dropout2d``, ``PixelShuffle``, ...; ``BatchNorm1d`` takes 2-D or 3-D) on
  an input of another rank -- torch would often read it as an unbatched
  input; convcalc exits 2 naming both shapes;
- ``pixelshuffle``/``pixelunshuffle`` on an input that is not 4-D (torch
  reads leading dims as batch);
- ``ln:dims`` with dims greater than the rank (torch's x.shape[-dims:] would
  quietly take the whole shape);
- ``ln2d`` on a tensor without spatial dims, ``instnorm`` and ``pad`` on a
  tensor without spatial dims (as ``conv`` etc. before them).

The corpus file holds one compact JSON object per line/case:
    {"input": [1,3,9,9], "tokens": [...],
     "layers": [{"shape": [...], "params": n, "buffers": n, "flops": n}, ...]}
    {"input": [...], "tokens": [...], "rejected_at": 2, "error": "..."}

Generation is deterministic for a seed: case ``idx`` uses its own
``random.Random(f"{seed}:{idx}")`` and its own torch generator.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_COUNT = 3600
DEFAULT_OUT = Path(__file__).resolve().parent / "golden" / "torch_corpus.json"

# Spatial size limits per number of spatial dims (input sizes are drawn below these).
MAX_SIZE = {1: 48, 2: 40, 3: 12}
MAX_CH = 16

# Kinds that need spatial dims (never drawn on a rank-2 tensor).
SPATIAL_KINDS = ["conv", "tconv", "up", "maxpool", "avgpool", "aavgpool",
                 "amaxpool", "gap", "sepconv"]
ANY_RANK_KINDS = ["bn", "act", "dropout", "flatten", "linear"]
ALL_KINDS = SPATIAL_KINDS + ANY_RANK_KINDS

# How often each kind is the focus of a case (the focus is where most of the
# variety, and most deliberate rejections, are put).
FOCUS_WEIGHTS = {
    "conv": 17, "tconv": 13, "up": 13, "maxpool": 9, "avgpool": 8,
    "sepconv": 6, "aavgpool": 4, "amaxpool": 4, "gap": 2, "bn": 3,
    "act": 6, "dropout": 3, "flatten": 2, "linear": 5,
}
FOCUS_LIST = [k for k, w in FOCUS_WEIGHTS.items() for _ in range(w)]

# Filler layers of stacks around the focus.
FILLER_WEIGHTS = {
    "conv": 14, "tconv": 4, "up": 4, "maxpool": 6, "avgpool": 4,
    "sepconv": 2, "aavgpool": 1, "amaxpool": 1, "gap": 1, "bn": 8,
    "act": 10, "dropout": 3, "flatten": 2, "linear": 3,
}

ACT_NAMES = ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu",
             "mish", "hardswish", "hardsigmoid", "sigmoid", "tanh",
             "softplus", "identity"]
ACT_MODULES = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU, "silu": nn.SiLU,
    "mish": nn.Mish, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softplus": nn.Softplus,
    "identity": nn.Identity, "celu": nn.CELU, "hardtanh": nn.Hardtanh,
}
INPLACE_OK = {"relu", "relu6", "leaky_relu", "elu", "selu", "silu", "mish",
              "hardswish", "hardsigmoid"}

UP_MODES = {1: ["nearest", "nearest-exact", "linear", "area"],
            2: ["nearest", "nearest-exact", "bilinear", "bicubic", "area"],
            3: ["nearest", "nearest-exact", "trilinear", "area"]}
INTERP_MODES = ["linear", "bilinear", "bicubic", "trilinear"]
RANKED_MODES = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
UP_SCALES = ["2", "2", "2", "3", "1.5", "0.5", "0.7", "1.7", "0.3", "2.5",
             "1.25", "0.75", "1", "0.6", "1.1", "2.2", "0.9", "1.3", "0.45",
             "1.16", "4"]
# Scales whose float product floor differs from the exact decimal one,
# with the size at which that happens (Python: 25 * 1.16 = 28.999999999999996).
FLOAT_EDGE_SCALES = [("1.16", 25), ("2.28", 25), ("2.32", 25), ("0.58", 50),
                     ("2.3", 50)]
DROPOUT_PS = ["0", "0.1", "0.25", "0.5", "0.5", "0.9", "1", "1.0", "0.33", "0.75"]
PAD_MODES = ["valid", "same", "same_lower", "full"]


class Rejected(Exception):
    """Our own rejection (emulated rule or zero-sized output)."""


# ---------------------------------------------------------------------------
# rendering: layer dict -> convcalc token text
# ---------------------------------------------------------------------------

def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt(e) for e in v)
    if isinstance(v, dict) and "pad" in v:  # pad amounts: per dim n or [b, a]
        return "x".join(f"{e[0]}:{e[1]}" if isinstance(e, list) else str(e) for e in v["pad"])
    if isinstance(v, dict):  # asymmetric padding {"asym": [[b, a], ...]}
        return "x".join(f"{b}:{a}" for b, a in v["asym"])
    return str(v)


def render(layer: dict) -> str:
    """The convcalc token for a layer dict (keys render in dict order; "kind" and
    keys starting with "_" are bookkeeping, never rendered)."""
    name = layer.get("_alias") or layer["kind"]
    args = []
    pos = layer.get("_pos")
    if pos is not None:
        val = layer[pos]
        args.append(",".join(str(v) for v in val) if layer.get("_join") else _fmt(val))
    for key, val in layer.items():
        if key == "kind" or key.startswith("_") or key == pos:
            continue
        if val is True and layer.get("_bare", True):
            args.append(key)
        else:
            args.append(f"{key}={_fmt(val)}")
    return name + (":" + ",".join(args) if args else "")


# ---------------------------------------------------------------------------
# padding emulation (pure arithmetic on the dict; the brief's formulas)
# ---------------------------------------------------------------------------

def _tup(v, n):
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"expected {n} values, got {v}")
        return [int(e) for e in v]
    return [int(v)] * n


def _tupf(v, n):
    if isinstance(v, (list, tuple)):
        return tuple(float(e) for e in v)
    return float(v)


def pad_pairs(p, sizes, k, s, d):
    """Per-dim (before, after) for a conv/pool padding spec."""
    n = len(sizes)
    if isinstance(p, dict):
        pairs = [tuple(pr) for pr in p["asym"]]
        return pairs * n if len(pairs) == 1 else pairs
    if isinstance(p, str):
        out = []
        for i, kk, ss, dd in zip(sizes, k, s, d):
            if p == "valid":
                out.append((0, 0))
            elif p == "full":
                out.append((dd * (kk - 1), dd * (kk - 1)))
            else:
                o = -(-i // ss)
                total = max((o - 1) * ss + dd * (kk - 1) + 1 - i, 0)
                b = total // 2 if p == "same" else total - total // 2
                out.append((b, total - b))
        return out
    return [(v, v) for v in _tup(p, n)]


def tconv_pad_pairs(p, n, k, s, d, op):
    """Per-dim (before, after) crop and output_padding for a tconv spec."""
    if isinstance(p, str):
        pairs, ops = [], []
        for kk, ss, dd in zip(k, s, d):
            if p == "valid":
                pairs.append((0, 0)); ops.append(0)
            elif p == "full":
                pairs.append((dd * (kk - 1),) * 2); ops.append(0)
            else:
                t = dd * (kk - 1) + 1 - ss
                if t >= 0:
                    b = t // 2 if p == "same" else (t + 1) // 2
                    pairs.append((b, t - b)); ops.append(0)
                else:
                    pairs.append((0, 0)); ops.append(-t)
        return pairs, ops
    return pad_pairs(p, [1] * n, k, s, d), _tup(op, n)


def _fpad_arg(pairs):
    """F.pad wants the last dim first."""
    out = []
    for b, a in reversed(pairs):
        out += [b, a]
    return out


# ---------------------------------------------------------------------------
# torch side: layer dict -> module(s), run, records
# ---------------------------------------------------------------------------

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_TCONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXP = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGP = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_AAVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_AMAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


def _nparams(*mods):
    return sum(p.numel() for m in mods for p in m.parameters())


def _nbuffers(*mods):
    return sum(b.numel() for m in mods for b in m.buffers())


def _measure(fn, mods):
    with FlopCounterMode(display=False) as fc:
        y = fn()
    if any(int(n) == 0 for n in y.shape):
        raise Rejected(f"zero-sized output {list(y.shape)}")
    rec = {"shape": [int(n) for n in y.shape], "params": _nparams(*mods),
           "buffers": _nbuffers(*mods), "flops": int(fc.get_total_flops())}
    return rec, y


def _conv_stage(x, C, out, k, s, p, d, g, bias, pm):
    """One conv (also the depthwise half of sepconv); returns (record, y)."""
    n = x.dim() - 2
    sizes = list(x.shape[2:])
    pairs = pad_pairs(p, sizes, k, s, d)
    if all(b == a for b, a in pairs):
        m = _CONV[n](C, out, k, s, padding=tuple(b for b, _ in pairs), dilation=d,
                     groups=g, bias=bias, padding_mode=pm).eval()
        return _measure(lambda: m(x), [m])
    m = _CONV[n](C, out, k, s, padding=0, dilation=d, groups=g, bias=bias).eval()
    mode = "constant" if pm == "zeros" else pm

    def fwd():
        return m(F.pad(x, _fpad_arg(pairs), mode=mode))
    return _measure(fwd, [m])


def run_layer(layer: dict, x: torch.Tensor, env=None):
    """Run one token's layer(s) on x.  Returns (records, y); raises on rejection.

    ``env`` maps the names of saved tensors (and ``input``) to tensors."""
    kind = layer["kind"]
    n = x.dim() - 2
    C = int(x.shape[1]) if x.dim() > 1 else 1
    alias = layer.get("_alias")
    if alias and alias.lower() in RANK_BOUND and x.dim() not in RANK_BOUND[alias.lower()]:
        # convcalc's rule (SPEC 3b): torch would read some of these as unbatched
        ranks = " or ".join(f"{r}-D" for r in RANK_BOUND[alias.lower()])
        raise Rejected(f"{alias} takes a {ranks} input, got {list(x.shape)} "
                       f"(emulated rank-bound class name)")
    if kind in SPATIAL_KINDS + ["pad", "instnorm"] and n not in (1, 2, 3):
        raise Rejected(f"{kind} needs spatial dims")
    if kind in NEW_RUNNERS:
        return NEW_RUNNERS[kind](layer, x, env if env is not None else {})

    if kind == "conv":
        k = _tup(layer["k"], n)
        rec, y = _conv_stage(x, C, layer["out"], k, _tup(layer.get("s", 1), n),
                             layer.get("p", 0), _tup(layer.get("d", 1), n),
                             layer.get("g", 1), layer.get("bias", True),
                             layer.get("pm", "zeros"))
        return [rec], y

    if kind == "sepconv":
        mult = layer.get("mult", 1)
        k = _tup(layer["k"], n)
        rec1, y1 = _conv_stage(x, C, C * mult, k, _tup(layer.get("s", 1), n),
                               layer.get("p", 0), _tup(layer.get("d", 1), n),
                               C, layer.get("dbias", False), layer.get("pm", "zeros"))
        pw = _CONV[n](C * mult, layer["out"], 1, bias=layer.get("bias", True)).eval()
        rec2, y2 = _measure(lambda: pw(y1), [pw])
        return [rec1, rec2], y2

    if kind == "tconv":
        k = _tup(layer["k"], n)
        s = _tup(layer.get("s", 1), n)
        d = _tup(layer.get("d", 1), n)
        g = layer.get("g", 1)
        bias = layer.get("bias", True)
        cls = _TCONV[n]
        if "size" in layer:
            pairs = pad_pairs(layer.get("p", 0), [1] * n, k, s, d)
            m = cls(C, layer["out"], k, s, padding=tuple(b for b, _ in pairs),
                    dilation=d, groups=g, bias=bias).eval()
            size = layer["size"]
            size = list(env[size].shape[2:]) if isinstance(size, str) else _tup(size, n)
            rec, y = _measure(lambda: m(x, output_size=size), [m])
            return [rec], y
        pairs, op = tconv_pad_pairs(layer.get("p", 0), n, k, s, d, layer.get("op", 0))
        if all(b == a for b, a in pairs):
            m = cls(C, layer["out"], k, s, padding=tuple(b for b, _ in pairs),
                    output_padding=tuple(op), dilation=d, groups=g, bias=bias).eval()
            rec, y = _measure(lambda: m(x), [m])
            return [rec], y
        m = cls(C, layer["out"], k, s, padding=0, output_padding=tuple(op),
                dilation=d, groups=g, bias=bias).eval()

        def fwd():
            y = m(x)
            idx = [slice(None), slice(None)]
            for (b, a), L in zip(pairs, y.shape[2:]):
                if L - b - a < 1:
                    raise Rejected(f"output size {L - b - a} < 1 after cropping "
                                   f"padding ({b}, {a}) from {L}")
                idx.append(slice(b, L - a))
            return y[tuple(idx)]
        rec, y = _measure(fwd, [m])
        return [rec], y

    if kind == "up":
        mode = layer.get("mode", layer.get("_mode", "nearest"))
        ac = True if layer.get("align_corners") else None
        size = layer.get("size")
        if isinstance(size, str):  # up:size=NAME, the named tensor's spatial size
            size = tuple(int(v) for v in env[size].shape[2:])
        if isinstance(size, list):
            size = tuple(size)
        if "_ac" in layer:  # UpsamplingBilinear2d's fixed align_corners=True
            ac = layer["_ac"]
        scale = layer.get("scale")
        scale = None if scale is None else _tupf(scale, n)
        m = nn.Upsample(size=size, scale_factor=scale, mode=mode, align_corners=ac)
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    if kind in ("maxpool", "avgpool"):
        k = _tup(layer["k"], n)
        s = _tup(layer.get("s", layer["k"]), n)
        d = _tup(layer.get("d", 1), n)
        ceil = layer.get("ceil", False)
        pairs = pad_pairs(layer.get("p", 0), list(x.shape[2:]), k, s, d)
        sym = all(b == a for b, a in pairs)
        if kind == "maxpool":
            args = dict(dilation=d, ceil_mode=ceil)
            cls, fill = _MAXP[n], float("-inf")
        else:
            args = dict(ceil_mode=ceil,
                        count_include_pad=layer.get("count_include_pad", True))
            cls, fill = _AVGP[n], 0.0
        if sym:
            m = cls(k, s, padding=tuple(b for b, _ in pairs), **args)
            rec, y = _measure(lambda: m(x), [m])
            return [rec], y
        for (b, a), kk in zip(pairs, k):
            if 2 * b > kk or 2 * a > kk:
                raise Rejected("pad should be smaller than or equal to half of kernel size")
        m = cls(k, s, padding=0, **args)
        rec, y = _measure(lambda: m(F.pad(x, _fpad_arg(pairs), value=fill)), [m])
        return [rec], y

    if kind in ("aavgpool", "amaxpool", "gap"):
        size = 1 if kind == "gap" else layer["size"]
        size = tuple(size) if isinstance(size, list) else size
        m = (_AMAX if kind == "amaxpool" else _AAVG)[n](size)
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    if kind == "bn":
        m = _BN[x.dim()](C, affine=layer.get("affine", True)).eval()
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    if kind in ("act", "relu", "gelu", "sigmoid", "tanh"):
        name = layer.get("name", layer.get("_act", kind))
        cls = ACT_MODULES[name]
        m = cls(inplace=True) if (layer.get("inplace") and name in INPLACE_OK) else cls()
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    if kind == "dropout":
        m = nn.Dropout(float(layer["p"])) if "p" in layer else nn.Dropout()
        m.eval()
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    if kind == "flatten":
        m = nn.Flatten(1)
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    if kind == "linear":
        m = nn.Linear(layer.get("in", int(x.shape[-1])), layer["out"],
                      bias=layer.get("bias", True)).eval()
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    raise ValueError(f"unknown kind {kind}")


# ---------------------------------------------------------------------------
# torch side of the modern vocabulary (SPEC 3b) and the graph tokens
# ---------------------------------------------------------------------------

class LayerScale(nn.Module):
    """ConvNeXt's ``layer_scale * x``: gamma of shape C x 1 ... 1 (C = dim 1)."""

    def __init__(self, c, rank):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c, *[1] * max(rank - 2, 0)))

    def forward(self, x):
        return self.gamma * x


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth (torchvision is not installed here): the
    same argument checks, and the identity in eval mode."""

    def __init__(self, p, mode):
        super().__init__()
        if p < 0.0 or p > 1.0:
            raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
        if mode not in ("batch", "row"):
            raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
        self.p, self.mode = p, mode

    def forward(self, x):
        return x  # eval


class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d (permute channels last, LayerNorm(C), permute
    back), written with movedim so that 1-D and 3-D inputs work too."""

    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


_INST = {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d}
_DROPN = {"dropout1d": nn.Dropout1d, "dropout2d": nn.Dropout2d, "dropout3d": nn.Dropout3d,
          "alphadropout": nn.AlphaDropout, "featurealphadropout": nn.FeatureAlphaDropout}


def _one(fn, mods=()):
    rec, y = _measure(fn, list(mods))
    return [rec], y


def _run_save(layer, x, env):
    return _one(lambda: x)


def _run_from(layer, x, env):
    t = env[layer["name"]]
    return _one(lambda: t)


def _names(layer):
    return layer["names"].split("+")


def _run_add(layer, x, env):
    def fwd():
        y = x
        for nm in _names(layer):
            y = y + env[nm]
        return y
    return _one(fwd)


def _run_mul(layer, x, env):
    def fwd():
        y = x
        for nm in _names(layer):
            y = y * env[nm]
        return y
    return _one(fwd)


def _run_concat(layer, x, env):
    return _one(lambda: torch.cat([x] + [env[nm] for nm in _names(layer)], 1))


def _run_ln(layer, x, env):
    dims = layer.get("dims", 1)
    if dims > x.dim():  # torch would slice x.shape[-dims:] to the whole shape
        raise Rejected(f"ln over {dims} dims of a {x.dim()}-D tensor (emulated)")
    m = nn.LayerNorm(tuple(x.shape[-dims:]), eps=float(layer.get("eps", 1e-5)),
                     elementwise_affine=layer.get("affine", True),
                     bias=layer.get("bias", True)).eval()
    return _one(lambda: m(x), [m])


def _run_ln2d(layer, x, env):
    if x.dim() < 3:
        raise Rejected(f"ln2d needs a channels-first tensor with spatial dims, got "
                       f"{list(x.shape)} (emulated)")
    m = LayerNorm2d(int(x.shape[1]), eps=float(layer.get("eps", 1e-6)),
                    elementwise_affine=layer.get("affine", True)).eval()
    return _one(lambda: m(x), [m])


def _run_gn(layer, x, env):
    m = nn.GroupNorm(layer["g"], int(x.shape[1]), eps=float(layer.get("eps", 1e-5)),
                     affine=layer.get("affine", True)).eval()
    return _one(lambda: m(x), [m])


def _run_instnorm(layer, x, env):
    m = _INST[x.dim()](int(x.shape[1]), eps=float(layer.get("eps", 1e-5)),
                       momentum=float(layer.get("momentum", 0.1)),
                       affine=layer.get("affine", False),
                       track_running_stats=layer.get("track", False)).eval()
    return _one(lambda: m(x), [m])


def _run_permute(layer, x, env):
    return _one(lambda: x.permute(*layer["dims"]))


def _run_layerscale(layer, x, env):
    m = LayerScale(int(x.shape[1]), x.dim())
    return _one(lambda: m(x), [m])


def _run_droppath(layer, x, env):
    m = StochasticDepth(float(layer.get("p", 0.5)), layer.get("mode", "row")).eval()
    return _one(lambda: m(x), [m])


def _run_shuffle(layer, x, env):
    m = nn.ChannelShuffle(layer["g"])
    return _one(lambda: m(x), [m])


def _run_chunk(layer, x, env):
    return _one(lambda: x.chunk(layer["n"], 1)[layer["i"]])


def _run_pixelshuffle(layer, x, env):
    if x.dim() != 4:  # torch reads the leading dims as batch; SPEC 3b rejects
        raise Rejected(f"{layer['kind']} needs a 4-D input, got {list(x.shape)} (emulated)")
    cls = nn.PixelShuffle if layer["kind"] == "pixelshuffle" else nn.PixelUnshuffle
    m = cls(layer["r"])
    return _one(lambda: m(x), [m])


def _run_pad(layer, x, env):
    n = x.dim() - 2
    p = layer["p"]
    ents = p["pad"] if isinstance(p, dict) else [p]
    if len(ents) == 1:
        ents = ents * n
    if len(ents) != n:
        raise Rejected(f"pad: {len(ents)} values for {n} spatial dims (emulated)")
    pairs = [tuple(e) if isinstance(e, list) else (e, e) for e in ents]
    mode = layer.get("mode", layer.get("_mode", "zeros"))
    mode = "constant" if mode == "zeros" else mode
    value = float(layer["value"]) if "value" in layer else None
    if mode == "circular" and any(i + min(b, 0) + min(a, 0) <= 0 and i + b + a > 0
                                  for i, (b, a) in zip(x.shape[2:], pairs)):
        # PyTorch 2.13 returns a tensor of uninitialized memory here (F.pad of
        # [0.] by (1, -1) gives 2.2e-38): no input is left to wrap; convcalc refuses
        raise Rejected("circular padding crops the whole input (torch: uninitialized output)")
    return _one(lambda: F.pad(x, _fpad_arg(pairs), mode=mode, value=value))


def _run_softmax(layer, x, env):
    cls = nn.Softmax if layer["kind"] == "softmax" else nn.LogSoftmax
    m = cls(dim=layer.get("dim", 1))
    return _one(lambda: m(x), [m])


def _run_dropn(layer, x, env):
    m = _DROPN[layer["kind"]](float(layer.get("p", 0.5))).eval()
    return _one(lambda: m(x), [m])


NEW_RUNNERS = {
    "save": _run_save, "from": _run_from, "add": _run_add, "mul": _run_mul,
    "concat": _run_concat, "ln": _run_ln, "ln2d": _run_ln2d, "gn": _run_gn,
    "instnorm": _run_instnorm, "permute": _run_permute, "layerscale": _run_layerscale,
    "droppath": _run_droppath, "shuffle": _run_shuffle, "chunk": _run_chunk,
    "pixelshuffle": _run_pixelshuffle, "pixelunshuffle": _run_pixelshuffle, "pad": _run_pad,
    "softmax": _run_softmax, "logsoftmax": _run_softmax,
    **{k: _run_dropn for k in _DROPN},
}

# PyTorch class names usable as kinds: name -> (kind, fixed meta keys, input ranks or None).
CLASS_NAMES = {}
for _n in (1, 2, 3):
    for _cls, _kind, _fixed in (
            ("Conv", "conv", {}), ("ConvTranspose", "tconv", {}), ("MaxPool", "maxpool", {}),
            ("AvgPool", "avgpool", {}), ("AdaptiveAvgPool", "aavgpool", {}),
            ("AdaptiveMaxPool", "amaxpool", {}), ("BatchNorm", "bn", {}),
            ("InstanceNorm", "instnorm", {}), ("Dropout", f"dropout{_n}d", {}),
            ("ZeroPad", "pad", {"_mode": "zeros"}), ("ConstantPad", "pad", {"_mode": "zeros"}),
            ("ReflectionPad", "pad", {"_mode": "reflect"}),
            ("ReplicationPad", "pad", {"_mode": "replicate"}),
            ("CircularPad", "pad", {"_mode": "circular"})):
        CLASS_NAMES[f"{_cls}{_n}d"] = (_kind, _fixed, (_n + 2,))
CLASS_NAMES["BatchNorm1d"] = ("bn", {}, (2, 3))
CLASS_NAMES["UpsamplingNearest2d"] = ("up", {"_mode": "nearest"}, (4,))
CLASS_NAMES["UpsamplingBilinear2d"] = ("up", {"_mode": "bilinear", "_ac": True}, (4,))
CLASS_NAMES["PixelShuffle"] = ("pixelshuffle", {}, (4,))
CLASS_NAMES["PixelUnshuffle"] = ("pixelunshuffle", {}, (4,))
for _cls, _kind in (("Upsample", "up"), ("Linear", "linear"), ("Flatten", "flatten"),
                    ("Dropout", "dropout"), ("AlphaDropout", "alphadropout"),
                    ("FeatureAlphaDropout", "featurealphadropout"), ("LayerNorm", "ln"),
                    ("LayerNorm2d", "ln2d"), ("GroupNorm", "gn"), ("Softmax", "softmax"),
                    ("LogSoftmax", "logsoftmax"), ("ChannelShuffle", "shuffle"),
                    ("StochasticDepth", "droppath"), ("Permute", "permute")):
    CLASS_NAMES[_cls] = (_kind, {}, None)
for _cls, _act in (("ReLU", "relu"), ("ReLU6", "relu6"), ("GELU", "gelu"), ("SiLU", "silu"),
                   ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Hardswish", "hardswish"),
                   ("Hardsigmoid", "hardsigmoid"), ("LeakyReLU", "leaky_relu"), ("ELU", "elu"),
                   ("SELU", "selu"), ("CELU", "celu"), ("Mish", "mish"),
                   ("Softplus", "softplus"), ("Hardtanh", "hardtanh"), ("Identity", "identity")):
    CLASS_NAMES[_cls] = ("act", {"_act": _act}, None)
# lower-cased: accepted input ranks of the rank-bound names
RANK_BOUND = {k.lower(): v[2] for k, v in CLASS_NAMES.items() if v[2]}


def try_layer(layer, x, env=None):
    """(records, y, None) on success, (None, None, error_line) on rejection."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recs, y = run_layer(layer, x, env)
        return recs, y, None
    except Exception as e:  # any torch failure is a rejection
        msg = str(e).strip().splitlines()
        line = msg[0] if msg else ""
        return None, None, f"{type(e).__name__}: {line}"[:300]


# ---------------------------------------------------------------------------
# drawing layers
# ---------------------------------------------------------------------------

def _divisors(c):
    return [g for g in range(1, c + 1) if c % g == 0]


def _per_dim(rng, n, draw, p_tuple=0.35):
    """A single value for all dims, or (sometimes) a distinct value per dim."""
    if n > 1 and rng.random() < p_tuple:
        vals = [draw(j) for j in range(n)]
        if len(set(vals)) == 1 and rng.random() < 0.5:
            return vals[0]
        return vals
    return draw(0)


def _kmax(i, d=1, pad=0):
    return max(1, (i + 2 * pad - 1) // d + 1)


def _draw_kernel(rng, sizes, d=1, cap=7):
    return _per_dim(rng, len(sizes), lambda j: rng.randint(1, max(1, min(cap, _kmax(sizes[j], d)))))


def _draw_pad(rng, n, k, allow_modes=True, allow_asym=True, halfk=False):
    """A padding spec: int / per-dim list / asym dict / mode string."""
    kk = _tup(k, n)
    lim = [max(0, kq // 2) if halfk else max(0, kq) for kq in kk]
    r = rng.random()
    if allow_modes and r < 0.16:
        return rng.choice(PAD_MODES)
    if allow_asym and r < 0.30:
        if rng.random() < 0.3:
            m = min(lim)
            return {"asym": [[rng.randint(0, m), rng.randint(0, m)]]}
        return {"asym": [[rng.randint(0, lim[j]), rng.randint(0, lim[j])] for j in range(n)]}
    if r < 0.42 and n > 1:
        return [rng.randint(0, lim[j]) for j in range(n)]
    return rng.randint(0, min(lim) if halfk else max(lim))


def _put(layer, rng, items):
    """Add optional key/values to the layer dict in a random order."""
    items = list(items)
    rng.shuffle(items)
    for key, val in items:
        layer[key] = val
    return layer


def draw_conv(rng, shape, bad=None, kind="conv"):
    n = len(shape) - 2
    C, sizes = shape[1], shape[2:]
    layer = {"kind": kind, "_pos": "out"}
    opts = []
    d = 1
    if rng.random() < 0.25:
        d = _per_dim(rng, n, lambda j: rng.randint(1, 3))
        opts.append(("d", d))
    elif rng.random() < 0.04:
        opts.append(("d", 1))
    dmin = min(_tup(d, n))
    k = _draw_kernel(rng, sizes, dmin)
    s = None
    if rng.random() < 0.45:
        s = _per_dim(rng, n, lambda j: rng.randint(1, 3))
        opts.append(("s", s))
    if rng.random() < 0.55:
        opts.append(("p", _draw_pad(rng, n, k)))
    if kind == "conv":
        out = rng.randint(1, MAX_CH)
        if rng.random() < 0.2:
            g = rng.choice(_divisors(C))
            out = g * rng.randint(1, max(1, MAX_CH // g))
            opts.append(("g", g))
        elif rng.random() < 0.03:
            opts.append(("g", 1))
    else:
        out = rng.randint(1, MAX_CH)
        if rng.random() < 0.3:
            opts.append(("mult", rng.randint(1, 3)))
    if rng.random() < 0.25:
        opts.append(("pm", rng.choice(["reflect", "replicate", "circular", "zeros"])))
    if rng.random() < 0.2:
        opts.append(("bias", rng.random() < 0.3))
    layer["out"] = out
    layer["k"] = k
    _put(layer, rng, opts)

    if bad == "kernel":
        k2 = [rng.randint(i + 1, i + 4) for i in sizes]
        layer["k"] = k2 if n > 1 and rng.random() < 0.4 else max(k2)
        layer.pop("p", None); layer.pop("d", None)
        if rng.random() < 0.3:
            layer["p"] = "valid"
    elif bad == "dilation":
        layer["k"] = 3
        layer["d"] = max(sizes) // 2 + 1 + rng.randint(0, 2)
        layer.pop("p", None)
    elif bad == "groups" and kind == "conv":
        if C > 1 and rng.random() < 0.6:
            g = rng.choice([g for g in range(2, C + 3) if C % g]) if any(C % g for g in range(2, C + 3)) else C + 1
            layer["g"] = g
            layer["out"] = g * rng.randint(1, 3)
        else:
            g = rng.choice(_divisors(C)[1:] or [2])
            layer["g"] = g
            if C % g:
                layer["out"] = g * rng.randint(1, 3)
            else:
                layer["out"] = g * rng.randint(1, 3) + rng.randint(1, g - 1)
    elif bad == "reflect":
        layer["pm"] = rng.choice(["reflect", "reflect", "circular"])
        i = min(sizes)
        extra = 0 if layer["pm"] == "reflect" else 1
        r = rng.random()
        if r < 0.5:
            layer["p"] = i + extra + rng.randint(0, 1)
        elif r < 0.8:
            layer["p"] = {"asym": [[rng.randint(0, 1), sz + extra + rng.randint(0, 1)] for sz in sizes]}
        else:
            layer["p"] = "full"
            layer["k"] = i + 1 + extra
        layer.pop("d", None)
    elif bad == "zero_out":
        layer["out"] = 0
        layer.pop("g", None)
    elif bad == "mult0" and kind == "sepconv":
        layer["mult"] = 0
    return layer


def draw_tconv(rng, shape, bad=None):
    n = len(shape) - 2
    C, sizes = shape[1], shape[2:]
    layer = {"kind": "tconv", "_pos": "out"}
    if rng.random() < 0.2:
        layer["_alias"] = "deconv"
    opts = []
    k = _per_dim(rng, n, lambda j: rng.randint(1, 5))
    s = rng.choice([1, 2, 2, 2, 3]) if rng.random() < 0.75 else _per_dim(rng, n, lambda j: rng.randint(1, 3))
    d = 1
    if rng.random() < 0.2:
        d = _per_dim(rng, n, lambda j: rng.randint(1, 3))
    if bad == "size_dil":  # torch's output_size path allows op < stride only
        s = rng.choice([1, 2])
        d = s + rng.randint(1, 2)
        k = max(2, k if isinstance(k, int) else max(k))
    kk, ss, dd = _tup(k, n), _tup(s, n), _tup(d, n)
    if s != 1 or rng.random() < 0.1:
        opts.append(("s", s))
    if d != 1:
        opts.append(("d", d))
    out = rng.randint(1, MAX_CH)
    if rng.random() < 0.15:
        g = rng.choice(_divisors(C))
        out = g * rng.randint(1, max(1, MAX_CH // g))
        opts.append(("g", g))
    if rng.random() < 0.15:
        opts.append(("bias", rng.random() < 0.3))
    mode = rng.random()
    use_size = mode < 0.25 or bad in ("size", "size_dil")
    if use_size:
        if rng.random() < 0.5:
            p = _per_dim(rng, n, lambda j: rng.randint(0, max(0, dd[j] * (kk[j] - 1) // 2)))
            if p != 0 or rng.random() < 0.2:
                opts.append(("p", p))
        else:
            p = 0
        pp = _tup(p, n)
        mins = [(i - 1) * sq - 2 * pq + dq * (kq - 1) + 1
                for i, sq, pq, dq, kq in zip(sizes, ss, pp, dd, kk)]
        size = [mn + rng.randint(0, sq - 1) for mn, sq in zip(mins, ss)]
        if bad == "size_dil":
            j = rng.randrange(n)
            size[j] = mins[j] + rng.randint(ss[j], dd[j] - 1)
        if bad == "size":
            j = rng.randrange(n)
            size[j] = mins[j] - 1 if rng.random() < 0.4 else mins[j] + ss[j] + (rng.randint(0, 1) if dd[j] <= ss[j] else 0)
        if n == 1 or (len(set(size)) == 1 and rng.random() < 0.6):
            size = size[0]
        opts.append(("size", size))
    elif mode < 0.4:
        opts.append(("p", rng.choice(PAD_MODES)))
    elif mode < 0.52:
        opts.append(("p", {"asym": [[rng.randint(0, dq * (kq - 1)), rng.randint(0, dq * (kq - 1))]
                                    for kq, dq in zip(kk, dd)]}))
        if rng.random() < 0.4:
            opts.append(("op", _per_dim(rng, n, lambda j: rng.randint(0, max(ss[j], dd[j]) - 1))))
    else:
        if rng.random() < 0.6:
            opts.append(("p", _per_dim(rng, n, lambda j: rng.randint(0, max(0, dd[j] * (kk[j] - 1))))))
        if rng.random() < 0.4:
            opts.append(("op", _per_dim(rng, n, lambda j: rng.randint(0, max(ss[j], dd[j]) - 1))))
    layer["out"] = out
    layer["k"] = k
    _put(layer, rng, opts)

    if bad == "op":
        layer.pop("size", None)
        if isinstance(layer.get("p"), str):
            layer["p"] = 1
        m = max(max(ss), max(dd))
        layer["op"] = m + rng.randint(0, 1)
    elif bad == "small":
        layer.pop("size", None); layer.pop("op", None)
        layer["p"] = max(kk) * max(dd) + rng.randint(0, 2) if min(sizes) < 4 or rng.random() < 0.5 \
            else (max(sizes) * max(ss)) // 2 + rng.randint(0, 3)
        if rng.random() < 0.3:
            layer["p"] = {"asym": [[0, layer["p"] * 2 + 2]] * n}
    elif bad == "groups":
        g = rng.randint(2, 5)
        layer["g"] = g
        if C % g == 0:
            layer["out"] = g * rng.randint(1, 3) + 1
    elif bad == "zero_out":
        layer["out"] = 0
        layer.pop("g", None)
    return layer


def draw_pool(rng, shape, kind, bad=None, hint=None):
    n = len(shape) - 2
    sizes = shape[2:]
    layer = {"kind": kind, "_pos": "k" if rng.random() < 0.7 else None}
    opts = []
    d = 1
    if kind == "maxpool" and rng.random() < 0.2:
        d = _per_dim(rng, n, lambda j: rng.randint(1, 3))
        opts.append(("d", d))
    dmin = min(_tup(d, n))
    k = _draw_kernel(rng, sizes, dmin, cap=5)
    kk = _tup(k, n)
    if rng.random() < 0.45:
        opts.append(("s", _per_dim(rng, n, lambda j: rng.randint(1, 3))))
    ceil = rng.random() < 0.3
    if ceil:
        opts.append(("ceil", True))
    elif rng.random() < 0.05:
        opts.append(("ceil", False))
    if rng.random() < 0.5:
        opts.append(("p", _draw_pad(rng, n, k, allow_modes=not ceil,
                                    allow_asym=not ceil, halfk=True)))
    if kind == "avgpool" and rng.random() < 0.3:
        opts.append(("count_include_pad", rng.random() < 0.25))
    layer["k"] = k
    _put(layer, rng, opts)

    if bad == "pad":
        r = rng.random()
        if r < 0.45:
            layer["p"] = max(kk) // 2 + 1 + rng.randint(0, 1)
        elif r < 0.75 and not layer.get("ceil"):
            j = rng.randrange(n)
            pr = [[rng.randint(0, kq // 2), rng.randint(0, kq // 2)] for kq in kk]
            pr[j][rng.randrange(2)] = kk[j] // 2 + 1
            layer["p"] = {"asym": pr}
        else:
            layer.pop("ceil", None)
            layer["p"] = "full"
            layer["k"] = rng.randint(3, 5)
    elif bad == "kernel":
        layer["k"] = max(sizes) + rng.randint(1, 3)
        layer.pop("p", None); layer.pop("d", None)
        layer.pop("s", None)
    elif hint == "ceil_edge":
        # look for (k, s, p) where ceil mode's last-window rule fires
        for _ in range(40):
            kq = rng.randint(2, 5)
            sq = rng.randint(2, 4)
            pq = rng.randint(1, kq // 2)
            i = min(sizes)
            o = -(-(i + 2 * pq - kq) // sq) + 1
            if (o - 1) * sq >= i + pq and o >= 2:
                layer.update({"k": kq, "s": sq, "p": pq, "ceil": True})
                layer.pop("d", None)
                break
    return layer


def draw_up(rng, shape, bad=None, hint=None):
    n = len(shape) - 2
    sizes = shape[2:]
    layer = {"kind": "up"}
    if rng.random() < 0.2:
        layer["_alias"] = "upsample"
    big = math.prod(sizes) > {1: 64, 2: 24 * 24, 3: 8 ** 3}[n]
    scales = [s for s in UP_SCALES if not (big and float(s) > 2)]
    mode = rng.choice(UP_MODES[n]) if rng.random() < 0.75 else None
    r = rng.random()
    if hint and hint.startswith("scale="):
        layer["scale"] = hint[6:]
    elif r < 0.22:
        size = _per_dim(rng, n, lambda j: rng.randint(1, 2 * MAX_SIZE[n] // (2 if big else 1)))
        layer["size"] = size
    elif r < 0.45 and n > 1:
        layer["scale"] = [rng.choice(scales) for _ in range(n)]
    else:
        sc = rng.choice(scales)
        if rng.random() < 0.5:
            layer["_pos"] = "scale"
        layer["scale"] = sc
    if mode is not None and (mode != "nearest" or rng.random() < 0.3):
        layer["mode"] = mode
    if (mode or "nearest") in INTERP_MODES and rng.random() < 0.5:
        layer["align_corners"] = rng.random() < 0.75
        layer["_bare"] = rng.random() < 0.6

    if bad == "align":
        layer["mode"] = rng.choice(["nearest", "nearest-exact", "area", None])
        if layer["mode"] is None:
            del layer["mode"]
        layer["align_corners"] = True
    elif bad == "rank":
        layer["mode"] = rng.choice([m for m in INTERP_MODES if RANKED_MODES[m] != n])
        if rng.random() < 0.3:
            layer["align_corners"] = True
    elif bad == "zero":
        layer.pop("scale", None); layer.pop("size", None); layer.pop("_pos", None)
        if rng.random() < 0.5 and min(sizes) < 10:
            layer["scale"] = rng.choice(["0.3", "0.1", "0.05", "0.2"])
        elif rng.random() < 0.5:
            layer["scale"] = "0.01"
        else:
            sz = [rng.randint(1, 8) for _ in range(n)]
            sz[rng.randrange(n)] = 0
            layer["size"] = sz if n > 1 else 0
    elif bad == "both":
        layer["scale"] = layer.get("scale") or "2"
        layer["size"] = layer.get("size") or rng.randint(1, 20)
    return layer


def draw_adaptive(rng, shape, kind, bad=None):
    n = len(shape) - 2
    sizes = shape[2:]
    if kind == "gap":
        return {"kind": "gap"}
    size = _per_dim(rng, n, lambda j: rng.randint(1, sizes[j] + (3 if rng.random() < 0.2 else 0)), 0.5)
    if bad == "zero":
        size = _tup(size, n)
        size[rng.randrange(n)] = 0
        if n == 1 or rng.random() < 0.4:
            size = 0
    return {"kind": kind, "_pos": "size", "size": size}


def draw_act(rng, shape):
    r = rng.random()
    if r < 0.45:
        layer = {"kind": rng.choice(["relu", "relu", "gelu", "sigmoid", "tanh"])}
    else:
        layer = {"kind": "act", "_pos": "name", "name": rng.choice(ACT_NAMES)}
    if rng.random() < 0.2:
        layer["inplace"] = True
        layer["_bare"] = rng.random() < 0.7
    return layer


def draw_bn(rng, shape):
    layer = {"kind": "bn"}
    if rng.random() < 0.25:
        layer["affine"] = False
    return layer


def draw_dropout(rng, shape, bad=None):
    if bad:
        return {"kind": "dropout", "_pos": "p", "p": rng.choice(["1.5", "-0.1", "2", "1.01"])}
    if rng.random() < 0.15:
        return {"kind": "dropout"}
    return {"kind": "dropout", "_pos": "p", "p": rng.choice(DROPOUT_PS)}


def draw_linear(rng, shape, bad=None):
    layer = {"kind": "linear", "_pos": "out"}
    if rng.random() < 0.25:
        layer["_alias"] = "fc"
    layer["out"] = 0 if bad else rng.randint(1, 32)
    if rng.random() < 0.2:
        layer["bias"] = rng.random() < 0.3
    return layer


# Which deliberate rejection rules each kind can be asked for.
BAD_RULES = {
    "conv": ["kernel", "kernel", "dilation", "groups", "groups", "reflect", "reflect", "zero_out"],
    "sepconv": ["kernel", "reflect", "zero_out", "mult0"],
    "tconv": ["op", "op", "small", "small", "groups", "size", "size", "size_dil", "zero_out"],
    "maxpool": ["pad", "pad", "kernel"],
    "avgpool": ["pad", "pad", "kernel"],
    "up": ["align", "align", "rank", "rank", "zero", "zero", "both"],
    "aavgpool": ["zero"], "amaxpool": ["zero"],
    "dropout": ["p"], "linear": ["zero_out"],
}


def draw_layer(rng, kind, shape, bad=None, hint=None):
    if kind in ("conv", "sepconv"):
        return draw_conv(rng, shape, bad, kind)
    if kind == "tconv":
        return draw_tconv(rng, shape, bad)
    if kind in ("maxpool", "avgpool"):
        return draw_pool(rng, shape, kind, bad, hint)
    if kind == "up":
        return draw_up(rng, shape, bad, hint)
    if kind in ("aavgpool", "amaxpool", "gap"):
        return draw_adaptive(rng, shape, kind, bad)
    if kind == "act":
        return draw_act(rng, shape)
    if kind == "bn":
        return draw_bn(rng, shape)
    if kind == "dropout":
        return draw_dropout(rng, shape, bad)
    if kind == "flatten":
        return {"kind": "flatten"}
    if kind == "linear":
        return draw_linear(rng, shape, bad)
    raise ValueError(kind)


def _filler_kind(rng, rank, spatial_needed):
    ks = [k for k in FILLER_WEIGHTS
          if (rank > 2 or k in ANY_RANK_KINDS) and not (spatial_needed and k == "flatten")]
    return rng.choices(ks, weights=[FILLER_WEIGHTS[k] for k in ks])[0]


def _draw_input(rng, n):
    N = rng.choice([1, 1, 1, 2, 2, 3])
    C = rng.randint(1, MAX_CH)
    hi = MAX_SIZE[n]

    def one():
        r = rng.random()
        if r < 0.08:
            return rng.randint(1, 4)
        if r < 0.3:
            return rng.randint(5, 12)
        return rng.randint(8, hi)
    if n > 1 and rng.random() < 0.4:
        sp = [one()] * n
    else:
        sp = [one() for _ in range(n)]
    return [N, C] + sp


def make_case(rng: random.Random, focus=None, n_spatial=None, p_bad=0.27):
    """Draw one case and run it through torch.  Returns the corpus record."""
    if focus in NEW_FOCUS_WEIGHTS:
        return make_case_new(rng, focus, n_spatial, p_bad)
    focus = focus or rng.choice(FOCUS_LIST)
    n = n_spatial or rng.choice([1, 2, 2, 3])
    shape = _draw_input(rng, n)
    hint = None
    if focus == "up" and rng.random() < 0.1:
        sc, at = rng.choice(FLOAT_EDGE_SCALES)
        if at <= 2 * MAX_SIZE[n] and n < 3:
            shape[2 + rng.randrange(n)] = at
            hint = "scale=" + sc
    if focus in ("maxpool", "avgpool") and rng.random() < 0.15:
        hint = "ceil_edge"
    input_shape = list(shape)

    n_layers = 1 if rng.random() < 0.35 else rng.randint(2, 5)
    focus_pos = rng.randrange(n_layers)
    if hint and hint.startswith("scale="):
        focus_pos = 0
    bad = None
    if rng.random() < p_bad and focus in BAD_RULES:
        bad = rng.choice(BAD_RULES[focus])
    raw = rng.random() < 0.1  # accept the focus draw as is, even if torch rejects

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(rng.getrandbits(31)))
    tokens, records = [], []
    with torch.no_grad():
        for pos in range(n_layers):
            rank = x.dim()
            if pos == focus_pos:
                kind = focus
                if kind in SPATIAL_KINDS and rank < 3:
                    kind = _filler_kind(rng, rank, False)
            else:
                kind = _filler_kind(rng, rank, pos < focus_pos and focus in SPATIAL_KINDS)
            is_focus = pos == focus_pos
            tries = 1 if (is_focus and (bad or raw)) else 25
            for attempt in range(tries):
                layer = draw_layer(rng, kind, list(x.shape),
                                   bad if is_focus else None, hint if is_focus else None)
                recs, y, err = try_layer(layer, x)
                if err is None:
                    break
            tokens.append(render(layer))
            if err is not None:
                # a few never-executed, always well-formed trailing tokens
                if rng.random() < 0.4:
                    tokens += rng.sample(["relu", "bn", "flatten", "linear:10", "gap",
                                          "dropout:0.25", "act:silu", "maxpool:2",
                                          "conv:8,k=3"], rng.randint(1, 2))
                return {"input": input_shape, "tokens": tokens,
                        "rejected_at": pos + 1, "error": err}
            records += recs
            x = y
    return {"input": input_shape, "tokens": tokens, "layers": records}


# ---------------------------------------------------------------------------
# drawing the modern vocabulary (cases DEFAULT_COUNT .. DEFAULT_COUNT+NEW_COUNT)
# ---------------------------------------------------------------------------

NEW_COUNT = 2000

# How often each new focus leads a case (sums to 100: one cycle of the list).
NEW_FOCUS_WEIGHTS = {
    "mul": 10, "add": 5, "ln": 6, "ln2d": 3, "gn": 5, "instnorm": 4, "permute": 7,
    "layerscale": 2, "droppath": 2, "shuffle": 3, "chunk": 4, "pixelshuffle": 4,
    "pixelunshuffle": 4, "pad": 9, "softmax": 4, "dropoutn": 4, "linear_in": 3,
    "sepconv_dbias": 3, "tconv_name": 4, "up_name": 4, "classname": 10,
}
NEW_FOCUS_LIST = [k for k, w in NEW_FOCUS_WEIGHTS.items() for _ in range(w)]

# Fillers of the new cases: the old ones plus the always-valid new ones.
NEW_FILLER_WEIGHTS = {**FILLER_WEIGHTS, "ln2d": 2, "gn": 2, "layerscale": 1, "droppath": 1,
                      "shuffle": 1, "softmax": 1, "pad": 2, "instnorm": 1, "ln": 1,
                      "dropoutn": 1}
NEW_SPATIAL_FILLERS = set(SPATIAL_KINDS) | {"ln2d", "shuffle", "pad", "instnorm"}

NEW_BAD_RULES = {
    "mul": ["shape", "shape", "rank"], "add": ["shape", "shape", "rank"],
    "ln": ["dims"], "ln2d": ["rank"], "gn": ["groups", "groups", "single"],
    "instnorm": ["rank", "single"], "permute": ["dup", "length", "range"],
    "droppath": ["p"], "shuffle": ["groups", "groups", "rank"], "chunk": ["index"],
    "pixelshuffle": ["channels", "channels", "rank"], "pixelunshuffle": ["size", "size", "rank"],
    "pad": ["reflect", "circular", "crop", "crop", "value_mode"], "softmax": ["dim"],
    "dropoutn": ["p", "p", "rank1d"], "linear_in": ["in", "in"],
    "sepconv_dbias": ["kernel", "zero_out"], "tconv_name": ["size", "size"],
    "up_name": ["align", "rank"], "classname": ["rank", "rank", "rank"],
}

DROPN_KINDS = ["dropout1d", "dropout2d", "dropout3d", "alphadropout", "featurealphadropout"]
BAD_PS = ["1.5", "-0.1", "2", "1.01"]
PAD_VALUES = ["1", "-1", "0.5", "2", "0", "-2.5"]
NAMES = ["a", "b", "g", "skip", "x1", "s2", "y"]


def _np(shape):
    return len(shape) - 2


def _perm_tok(dims, rng=None, neg=0.0):
    """A permute layer; some dims written negative (d - rank)."""
    R = len(dims)
    out = [d - R if (rng is not None and rng.random() < neg) else d for d in dims]
    return {"kind": "permute", "_pos": "dims", "dims": out, "_join": True}


def _inverse(perm):
    inv = [0] * len(perm)
    for i, d in enumerate(perm):
        inv[d % len(perm)] = i
    return inv


def draw_ln(rng, shape, bad=None):
    layer = {"kind": "ln"}
    if rng.random() < 0.2:
        layer["_alias"] = "layernorm"
    R = len(shape)
    if bad == "dims":
        dims = R + rng.randint(1, 2)
    else:
        dims = rng.choice([1, 1, 1, 2, 2, 3]) if rng.random() < 0.95 else R
        dims = min(dims, R)
    opts = []
    if dims != 1 or rng.random() < 0.5:
        layer["_pos"] = "dims" if rng.random() < 0.8 else None
        layer["dims"] = dims
    if rng.random() < 0.25:
        opts.append(("affine", rng.random() < 0.3))
    if rng.random() < 0.25:
        opts.append(("bias", rng.random() < 0.3))
    if rng.random() < 0.1:
        opts.append(("eps", rng.choice(["1e-6", "0.001"])))
    return _put(layer, rng, opts)


def draw_ln2d(rng, shape, bad=None):
    layer = {"kind": "ln2d"}
    opts = []
    if rng.random() < 0.25:
        opts.append(("affine", rng.random() < 0.3))
    if rng.random() < 0.1:
        opts.append(("eps", "1e-5"))
    return _put(layer, rng, opts)


def draw_gn(rng, shape, bad=None):
    C = shape[1]
    layer = {"kind": "gn", "_pos": "g"}
    if rng.random() < 0.2:
        layer["_alias"] = "groupnorm"
    if bad == "groups":
        bads = [g for g in range(2, C + 4) if C % g]
        layer["g"] = rng.choice(bads)
    elif bad == "single":
        layer["g"] = C
    else:
        layer["g"] = rng.choice(_divisors(C))
    opts = []
    if rng.random() < 0.2:
        opts.append(("affine", rng.random() < 0.3))
    if rng.random() < 0.1:
        opts.append(("eps", "1e-6"))
    return _put(layer, rng, opts)


def draw_instnorm(rng, shape, bad=None):
    layer = {"kind": "instnorm"}
    if rng.random() < 0.2:
        layer["_alias"] = "instancenorm"
    opts = []
    if rng.random() < 0.4:
        opts.append(("affine", rng.random() < 0.7))
    if rng.random() < 0.4:
        opts.append(("track", rng.random() < 0.7))
    if rng.random() < 0.1:
        opts.append(("eps", "0.001"))
    if rng.random() < 0.1:
        opts.append(("momentum", rng.choice(["0.2", "0.01"])))
    _put(layer, rng, opts)
    if bad == "single":
        layer.pop("track", None)
    return layer


def draw_permute(rng, shape, bad=None):
    R = len(shape)
    perm = list(range(R))
    rng.shuffle(perm)
    if bad == "dup":
        j, k = rng.sample(range(R), 2)
        perm[j] = perm[k]
    elif bad == "length":
        perm = perm[:-1] if rng.random() < 0.5 else perm + [R]
    elif bad == "range":
        perm[rng.randrange(R)] = rng.choice([R, R + 1, -R - 1])
    return _perm_tok(perm, rng, 0.25 if not bad else 0.0)


def draw_layerscale(rng, shape, bad=None):
    return {"kind": "layerscale"}


def draw_droppath(rng, shape, bad=None):
    layer = {"kind": "droppath"}
    r = rng.random()
    if r < 0.2:
        layer["_alias"] = "stochastic_depth"
    if bad == "p":
        layer["_pos"], layer["p"] = "p", rng.choice(BAD_PS)
    elif rng.random() < 0.8:
        layer["_pos"], layer["p"] = "p", rng.choice(DROPOUT_PS)
    if rng.random() < 0.3:
        layer["mode"] = rng.choice(["row", "batch"])
    return layer


def draw_shuffle(rng, shape, bad=None):
    C = shape[1]
    layer = {"kind": "shuffle", "_pos": "g"}
    if bad == "groups":
        layer["g"] = rng.choice([g for g in range(2, C + 4) if C % g])
    else:
        ds = _divisors(C)
        layer["g"] = rng.choice(ds[1:] if len(ds) > 1 and rng.random() < 0.8 else ds)
    return layer


def _chunk_count(C, n):
    size = -(-C // n)
    return -(-C // size)


def draw_chunk(rng, shape, bad=None):
    C = shape[1]
    n = rng.randint(1, 4) if rng.random() < 0.8 else rng.randint(1, C + 3)
    k = _chunk_count(C, n)
    if bad == "index":
        i = rng.choice([k, k + rng.randint(0, 2), -k - 1]) if k == n or rng.random() < 0.5 \
            else rng.randint(k, n - 1)
        if k < n and rng.random() < 0.5:
            i = rng.randint(k, n - 1)  # a chunk the count promises but torch does not make
    else:
        i = rng.randint(-k, k - 1) if rng.random() < 0.25 else rng.randint(0, k - 1)
    return {"kind": "chunk", "_pos": "n", "n": n, "i": i}


def draw_pixelshuffle(rng, shape, bad=None):
    C = shape[1]
    ok = [r for r in (1, 2, 3, 4) if C % (r * r) == 0]
    if bad == "channels":
        r = rng.choice([r for r in (2, 3) if C % (r * r)] or [5])
    else:
        r = rng.choice([r for r in ok if r > 1] or ok) if rng.random() < 0.9 else 1
    return {"kind": "pixelshuffle", "_pos": "r", "r": r}


def draw_pixelunshuffle(rng, shape, bad=None):
    sizes = shape[2:]
    ok = [r for r in (1, 2, 3, 4) if all(s % r == 0 for s in sizes)]
    if bad == "size":
        r = rng.choice([r for r in (2, 3, 4) if any(s % r for s in sizes)] or [max(sizes) + 1])
    else:
        r = rng.choice([r for r in ok if r > 1] or ok)
    return {"kind": "pixelunshuffle", "_pos": "r", "r": r}


def draw_pad(rng, shape, bad=None, mode=None):
    n = _np(shape)
    sizes = shape[2:]
    layer = {"kind": "pad", "_pos": "p"}
    if mode is None and rng.random() < 0.65:
        mode = rng.choice(["zeros", "reflect", "replicate", "circular"])
        layer["_given_mode"] = True
    mode = mode or "zeros"

    def amount(j):
        lim = {"reflect": sizes[j] - 1, "circular": sizes[j]}.get(mode, 4)
        hi = max(0, min(4, lim))
        if rng.random() < 0.2:  # a crop
            return -rng.randint(1, max(1, min(3, sizes[j] // 2)))
        return rng.randint(0, hi)

    r = rng.random()
    if r < 0.3:
        p = amount(0)
    elif r < 0.55:
        p = {"pad": [amount(j) for j in range(n)]}
    else:
        p = {"pad": [[amount(j), amount(j)] if rng.random() < 0.75 else amount(j)
                     for j in range(n)]}
    if bad in ("reflect", "circular"):
        mode = bad
        layer["_given_mode"] = True
        j = rng.randrange(n)
        big = sizes[j] + (0 if bad == "reflect" else 1) + rng.randint(0, 1)
        ents = [[rng.randint(0, 1), rng.randint(0, 1)] for _ in range(n)]
        ents[j][rng.randrange(2)] = big
        p = {"pad": ents} if n > 1 or rng.random() < 0.5 else big
    elif bad == "crop":
        j = rng.randrange(n)
        ents = [[0, rng.randint(0, 1)] for _ in range(n)]
        ents[j] = [-sizes[j] + rng.randint(-1, 0), 0] if rng.random() < 0.5 \
            else [-(sizes[j] // 2) - rng.randint(0, 1), -(sizes[j] // 2) - 1]
        p = {"pad": ents}
    layer["p"] = p
    opts = []
    if layer.pop("_given_mode", False) and "_mode" not in layer:
        opts.append(("mode", mode))
    if bad == "value_mode":
        opts = [("mode", rng.choice(["reflect", "replicate", "circular"]))]
        layer["p"] = 1
        opts.append(("value", rng.choice(["1", "2", "-1"])))
    elif mode == "zeros" and rng.random() < 0.3:
        opts.append(("value", rng.choice(PAD_VALUES)))
    return _put(layer, rng, opts)


def draw_softmax(rng, shape, bad=None):
    R = len(shape)
    layer = {"kind": rng.choice(["softmax", "softmax", "logsoftmax"])}
    if bad == "dim":
        layer["_pos"], layer["dim"] = "dim", rng.choice([R, R + 1, -R - 1])
    elif rng.random() < 0.8:
        layer["_pos"] = "dim" if rng.random() < 0.8 else None
        layer["dim"] = rng.randint(-R, R - 1)
    return layer


def draw_dropn(rng, shape, bad=None):
    R = len(shape)
    if bad == "rank1d":
        kind = "dropout1d"
    else:
        kind = rng.choice([k for k in DROPN_KINDS if k != "dropout1d" or R <= 3])
    layer = {"kind": kind}
    if bad == "p":
        layer["_pos"], layer["p"] = "p", rng.choice(BAD_PS)
    elif rng.random() < 0.75:
        layer["_pos"], layer["p"] = "p", rng.choice(DROPOUT_PS)
    return layer


def draw_linear_in(rng, shape, bad=None):
    layer = draw_linear(rng, shape)
    F_ = shape[-1]
    wrong = [m for m in (F_ - 1, F_ + 1, 2 * F_, F_ // 2, F_ + 7) if m >= 1 and m != F_]
    layer["in"] = rng.choice(wrong) if bad == "in" else F_
    if rng.random() < 0.4 and "bias" in layer:  # key order varies
        layer["bias"] = layer.pop("bias")
    return layer


NEW_DRAWS = {
    "ln": draw_ln, "ln2d": draw_ln2d, "gn": draw_gn, "instnorm": draw_instnorm,
    "permute": draw_permute, "layerscale": draw_layerscale, "droppath": draw_droppath,
    "shuffle": draw_shuffle, "chunk": draw_chunk, "pixelshuffle": draw_pixelshuffle,
    "pixelunshuffle": draw_pixelunshuffle, "pad": draw_pad, "softmax": draw_softmax,
    "dropoutn": draw_dropn,
}


def draw_any(rng, kind, shape, bad=None):
    if kind == "logsoftmax":
        return {**draw_softmax(rng, shape, bad), "kind": kind}
    if kind in DROPN_KINDS:
        return {**draw_dropn(rng, shape, bad), "kind": kind}
    if kind in NEW_DRAWS:
        return NEW_DRAWS[kind](rng, shape, bad)
    return draw_layer(rng, kind, shape, bad)


# --- graph and block helpers ------------------------------------------------

def _save(name):
    return {"kind": "save", "_pos": "name", "name": name}


def _from(name):
    return {"kind": "from", "_pos": "name", "name": name}


def _join(op, names):
    return {"kind": op, "_pos": "names", "names": "+".join(names)}


def _conv1(out, **kw):
    return {"kind": "conv", "_pos": "out", "out": out, "k": 1, **kw}


def _conv3(out, s=None):
    layer = {"kind": "conv", "_pos": "out", "out": out, "k": 3, "p": 1}
    if s:
        layer["s"] = s
    return layer


def _act(name):
    return {"kind": name} if name in ("relu", "gelu", "sigmoid", "tanh") else \
        {"kind": "act", "_pos": "name", "name": name}


def _fixed(layer):
    return lambda rng, shape, env: dict(layer)


def _kindstep(kind, bad=None):
    return lambda rng, shape, env: draw_any(rng, kind, shape, bad)


# A block is a list of steps (draw, is_bad); draw(rng, shape, env_shapes) -> layer dict
# or None (skip).  Steps are drawn on the shape the previous step produced.

def block_join(rng, shape, bad, op):
    """SE gates, same-shape joins, size-1 broadcasts, failing broadcasts."""
    C = shape[1]
    n = _np(shape)
    a, b = rng.sample(NAMES, 2)
    r = rng.random()
    gate_act = rng.choice(["sigmoid", "sigmoid", "hardsigmoid"])
    if bad == "rank":
        # (N, F) against (N, C, *spatial): right-aligned broadcasting
        last = shape[-1]
        F_ = rng.choice([last, last, 1, last + 1, 2 * last]) if rng.random() < 0.6 else last + 1
        return [(_fixed(_save(a)), False), (_fixed({"kind": "gap"}), False),
                (_fixed({"kind": "flatten"}), False),
                (_fixed({"kind": "linear", "_pos": "out", "out": F_}), False),
                (_fixed(_save(b)), False), (_fixed(_from(a)), False),
                (_fixed(_join(op, [b])), True)]
    if bad == "shape":
        v = rng.random()
        if v < 0.35:
            mid = _conv1(rng.choice([c for c in range(2, MAX_CH + 2) if c != C]))
        elif v < 0.7:
            mid = {"kind": "maxpool", "_pos": "k", "k": 2}
        else:
            mid = {"kind": "aavgpool", "_pos": "size",
                   "size": [rng.choice([2, 3]) for _ in range(n)] if n > 1 else rng.choice([2, 3])}
        steps = [(_fixed(_save(a)), False), (_fixed(mid), False)]
        if rng.random() < 0.5:
            steps += [(_fixed(_join(op, [a])), True)]
        else:
            steps += [(_fixed(_save(b)), False), (_fixed(_from(a)), False),
                      (_fixed(_join(op, [b])), True)]
        return steps
    if r < 0.4:  # squeeze-excitation gate
        pool = rng.choice([{"kind": "gap"}, {"kind": "gap"},
                           {"kind": "aavgpool", "_pos": "size", "size": 1},
                           {"kind": "amaxpool", "_pos": "size", "size": 1}])
        red = max(1, C // rng.choice([2, 4, 4, 8]))
        steps = [(_fixed(_save(a)), False), (_fixed(pool), False),
                 (_fixed(_conv1(red)), False), (_fixed(_act(rng.choice(["relu", "silu"]))), False),
                 (_fixed(_conv1(C)), False), (_fixed(_act(gate_act)), False)]
        if rng.random() < 0.5:
            steps += [(_fixed(_join(op, [a])), False)]  # gate (N C 1 1) times x
        else:
            steps += [(_fixed(_save(b)), False), (_fixed(_from(a)), False),
                      (_fixed(_join(op, [b])), False)]
        return steps
    if r < 0.6:  # same shape: residual-like
        use_input = rng.random() < 0.2
        steps = [] if use_input else [(_fixed(_save(a)), False)]
        for _ in range(rng.randint(0, 2)):
            steps.append((_kindstep(rng.choice(["bn", "act", "ln2d", "gn", "layerscale",
                                                "droppath"])), False))
        if rng.random() < 0.5:
            steps.append((_fixed(_conv3(C)), False))
        steps.append((_fixed(_join(op, ["input" if use_input else a])), False))
        return steps
    if r < 0.85:  # size-1 dims: pooled over some dims, or a 1-channel map
        if rng.random() < 0.5:
            size = [1 if rng.random() < 0.5 else s for s in shape[2:]]
            size[rng.randrange(n)] = 1
            mid = [{"kind": "aavgpool", "_pos": "size", "size": size if n > 1 else size[0]}]
        else:  # spatial attention (CBAM-like): N x 1 x H x W
            mid = [_conv1(1), _act(gate_act)]
            if rng.random() < 0.3:
                mid = [{"kind": "gap"}, _conv1(1)]  # N x 1 x 1 ... 1
        steps = [(_fixed(_save(a)), False)] + [(_fixed(m), False) for m in mid]
        if rng.random() < 0.5:
            steps += [(_fixed(_join(op, [a])), False)]  # small op big: result is the big shape
        else:
            steps += [(_fixed(_save(b)), False), (_fixed(_from(a)), False),
                      (_fixed(_join(op, [b])), False)]
        return steps
    # two names at once: x op a op g
    red = max(1, C // 2)
    return [(_fixed(_save(a)), False), (_fixed({"kind": "gap"}), False),
            (_fixed(_conv1(red)), False), (_fixed(_act("relu")), False),
            (_fixed(_conv1(C)), False), (_fixed(_act(gate_act)), False),
            (_fixed(_save(b)), False), (_fixed(_from(a)), False),
            (_fixed(_conv3(C)), False), (_fixed(_join(op, [a, b])), False)]


def _to_last(R):
    return [0] + list(range(2, R)) + [1]


def _to_first(R):
    return [0, R - 1] + list(range(1, R - 1))


def block_permute(rng, shape, bad):
    R = len(shape)
    C = shape[1]
    if bad:
        return [(_kindstep("permute", bad), True)]
    r = rng.random()
    if r < 0.4 and R >= 3:  # ConvNeXt block (channels last)
        mid = [{"kind": "ln"}]
        if rng.random() < 0.8:
            mid += [{"kind": "linear", "_pos": "out", "out": 4 * C}, {"kind": "gelu"},
                    {"kind": "linear", "_pos": "out", "out": C}]
        saved = rng.random() < 0.5
        steps = [(_fixed(_save("x1")), False)] if saved else []
        steps += [(_fixed(_perm_tok(_to_last(R), rng, 0.2)), False)]
        steps += [(_fixed(m), False) for m in mid]
        steps += [(_fixed(_perm_tok(_to_first(R), rng, 0.2)), False)]
        if rng.random() < 0.5:
            steps.append((_fixed({"kind": "layerscale"}), False))
        if saved:
            if rng.random() < 0.5:
                steps.append((_kindstep("droppath"), False))
            steps.append((_fixed(_join("add", ["x1"])), False))
        return steps
    perm = list(range(R))
    rng.shuffle(perm)
    mids = []
    for _ in range(rng.randint(1, 2)):
        k = rng.choice(["ln", "softmax", "linear", "act", "layerscale", "dropout", "bn"])
        mids.append((_kindstep(k), False))
    steps = [(_fixed(_perm_tok(perm, rng, 0.25)), False)] + mids
    if rng.random() < 0.85:
        steps.append((_fixed(_perm_tok(_inverse(perm), rng, 0.25)), False))
    else:
        steps.append((None, "end"))  # stays permuted: no fillers after
    return steps


def block_chunk(rng, shape, bad):
    C = shape[1]
    if bad or rng.random() < 0.6 or C < 2:
        return [(_kindstep("chunk", bad), bool(bad))]
    # ShuffleNetV2 unit: split, a branch, concat, shuffle
    half = -(-C // 2)
    return [(_fixed(_save("x1")), False),
            (_fixed({"kind": "chunk", "_pos": "n", "n": 2, "i": 0}), False),
            (_fixed(_save("l")), False), (_fixed(_from("x1")), False),
            (_fixed({"kind": "chunk", "_pos": "n", "n": 2, "i": rng.choice([1, -1])}), False),
            (_fixed(_conv1(half)), False), (_fixed({"kind": "bn"}), False),
            (_fixed({"kind": "relu"}), False),
            (_fixed({"kind": "concat", "_pos": "names", "names": "l"}), False),
            (_fixed({"kind": "shuffle", "_pos": "g", "g": 2}), False)]


def _tconv_to(rng, shape, target, name, bad):
    """A tconv whose output_size is the spatial size of the named tensor."""
    n = _np(shape)
    m = shape[2:]
    ks = [2, 3, 4, 1, 5]
    rng.shuffle(ks)
    s = rng.choice([2, 2, 2, 3, 1])
    best = None
    for k in ks:
        for p in range(0, k // 2 + 1):
            ok = all(0 <= t - ((mi - 1) * s - 2 * p + k) < s for t, mi in zip(target, m))
            if ok != bool(bad):
                best = (k, p)
                break
        if best:
            break
    k, p = best or (3, 1)
    layer = {"kind": "tconv", "_pos": "out", "out": rng.randint(1, MAX_CH), "k": k}
    if rng.random() < 0.2:
        layer["_alias"] = "deconv"
    opts = [("s", s), ("size", name)]
    if p or rng.random() < 0.2:
        opts.append(("p", p))
    if rng.random() < 0.15:
        opts.append(("bias", False))
    return _put(layer, rng, opts)


def _down(rng, shape):
    r = rng.random()
    if r < 0.5:
        return _conv3(rng.randint(1, MAX_CH), s=2)
    if r < 0.8:
        return {"kind": "maxpool", "_pos": "k", "k": 2}
    return {"kind": "avgpool", "_pos": "k", "k": 2, "s": 2}


def block_resize_to(rng, shape, bad, kind):
    name = "input" if rng.random() < 0.2 else rng.choice(NAMES)
    steps = [] if name == "input" else [(_fixed(_save(name)), False)]
    for _ in range(rng.choice([1, 1, 1, 2] if kind == "tconv" else [1, 2, 2, 3])):
        steps.append((lambda rng_, shape_, env_: _down(rng_, shape_), False))
    if rng.random() < 0.3:
        steps.append((_kindstep(rng.choice(["bn", "act", "conv"])), False))
    if kind == "tconv":
        steps.append((lambda rng_, shape_, env_: _tconv_to(rng_, shape_, env_[name][2:],
                                                           name, bad), bool(bad)))
    else:
        def up(rng_, shape_, env_, name=name):
            layer = {"kind": "up"}
            if rng_.random() < 0.2:
                layer["_alias"] = "upsample"
            nn_ = _np(shape_)
            mode = rng_.choice(UP_MODES[nn_]) if rng_.random() < 0.7 else None
            if bad == "rank":
                mode = rng_.choice([m for m in INTERP_MODES if RANKED_MODES[m] != nn_])
            opts = [("size", name)]
            if bad == "align":
                mode = rng_.choice(["nearest", "nearest-exact", "area"])
                opts.append(("align_corners", True))
            elif mode in INTERP_MODES and rng_.random() < 0.5:
                opts.append(("align_corners", rng_.random() < 0.7))
            if mode:
                opts.append(("mode", mode))
            return _put(layer, rng_, opts)
        steps.append((up, bool(bad)))
    if not bad and rng.random() < 0.6:
        steps.append((lambda rng_, shape_, env_, name=name:
                      {"kind": "concat", "_pos": "names", "names": name}
                      if rng_.random() < 0.5 or shape_[1] != env_[name][1]
                      else _join("add", [name]), False))
    return steps


def _class_of(rng, shape, bad):
    """A PyTorch class name for this rank (or, for bad, a rank-bound one for another)."""
    R = len(shape)
    names = sorted(CLASS_NAMES)
    if bad == "rank":
        pool = [c for c in names if CLASS_NAMES[c][2] and R not in CLASS_NAMES[c][2]]
    else:
        pool = [c for c in names if CLASS_NAMES[c][2] is None or R in CLASS_NAMES[c][2]]
        if R == 2:
            pool = [c for c in pool if CLASS_NAMES[c][0] not in NEW_SPATIAL_FILLERS
                    and CLASS_NAMES[c][0] not in ("ln2d", "permute")]
    return rng.choice(pool)


_KIND_NAMES_LOWER = {"relu", "gelu", "sigmoid", "tanh", "linear", "flatten", "dropout",
                     "softmax", "logsoftmax", "upsample", "layernorm", "groupnorm",
                     "pixelshuffle", "pixelunshuffle", "alphadropout", "featurealphadropout",
                     "dropout1d", "dropout2d", "dropout3d", "identity", "permute"}


def draw_classname(rng, shape, bad=None):
    cls = _class_of(rng, shape, bad)
    kind, fixed, ranks = CLASS_NAMES[cls]
    R = len(shape)
    # draw the base layer on a shape the class accepts (for a bad one: its own rank)
    dshape = list(shape)
    if ranks and R not in ranks:
        r2 = ranks[-1]
        dshape = shape[:2] + [min(shape[2:] or [8])] * (r2 - 2)
    if kind == "act":
        layer = {"kind": "act"}
        if rng.random() < 0.15:
            layer["inplace"] = True
    elif kind == "permute":
        layer = _perm_tok(list(range(len(dshape))), rng, 0.2)
    elif kind == "pad":
        layer = draw_pad(rng, dshape, mode=fixed["_mode"])
        if not cls.startswith("ConstantPad"):
            layer.pop("value", None)
        elif "value" not in layer:
            layer["value"] = rng.choice(PAD_VALUES)
    elif kind == "up" and "_mode" in fixed:
        layer = {"kind": "up"}
        if rng.random() < 0.5:
            layer["_pos"], layer["scale"] = "scale", rng.choice(["2", "2", "3", "0.5", "1.5"])
        else:
            layer["size"] = _per_dim(rng, 2, lambda j: rng.randint(1, 48))
    elif kind in DROPN_KINDS:
        layer = draw_dropn(rng, dshape)
        layer["kind"] = kind
    else:
        layer = draw_any(rng, kind, dshape)
    layer.update(fixed)
    layer["kind"] = kind
    name = cls
    if cls.lower() not in _KIND_NAMES_LOWER and rng.random() < 0.2:
        name = rng.choice([cls.lower(), cls.upper()])
    layer["_alias"] = name
    return layer


def block_for(rng, focus, shape, bad):
    """The focus block of a new case (a list of steps)."""
    R = len(shape)
    if focus in ("mul", "add"):
        return block_join(rng, shape, bad, focus)
    if focus == "permute":
        return block_permute(rng, shape, bad)
    if focus == "chunk":
        return block_chunk(rng, shape, bad)
    if focus == "tconv_name":
        return block_resize_to(rng, shape, bad, "tconv")
    if focus == "up_name":
        return block_resize_to(rng, shape, bad, "up")
    if focus == "classname":
        return [(lambda rng_, shape_, env_: draw_classname(rng_, shape_, bad), bool(bad))]
    if focus == "sepconv_dbias":
        def sep(rng_, shape_, env_):
            layer = draw_conv(rng_, shape_, bad, "sepconv")
            if rng_.random() < 0.85:
                layer["dbias"] = True
            else:
                layer["dbias"] = False
            if rng_.random() < 0.3:  # move dbias before the other keys
                items = list(layer.items())
                layer = dict(items[:3] + [("dbias", layer["dbias"])] +
                             [kv for kv in items[3:] if kv[0] != "dbias"])
            return layer
        return [(sep, bool(bad))]
    if focus == "linear_in":
        steps = []
        r = rng.random()
        if R > 2 and r < 0.3:
            steps.append((_fixed({"kind": "flatten"}), False))
        elif R > 2 and r < 0.6:
            steps += [(_fixed({"kind": "gap"}), False), (_fixed({"kind": "flatten"}), False)]
        steps.append((lambda rng_, shape_, env_: draw_linear_in(rng_, shape_, bad), bool(bad)))
        return steps
    # single-layer new kinds, sometimes after a shape-changing set-up
    pre = []
    if focus in ("ln", "gn", "softmax", "layerscale", "droppath") and rng.random() < 0.2:
        pre.append((_fixed({"kind": "flatten"}), False))
    if bad == "rank" and focus in ("ln2d", "instnorm", "shuffle"):
        pre = [(_fixed({"kind": "flatten"}), False)]
    if bad == "single" or (focus == "instnorm" and rng.random() < 0.1):
        pre = [(_fixed({"kind": "gap"}), False)]
    if focus == "ln" and not pre and R > 2 and rng.random() < 0.25:  # channels last
        perm = _to_last(R)
        return [(_fixed(_perm_tok(perm, rng, 0.2)), False), (_kindstep("ln", bad), bool(bad)),
                (_fixed(_perm_tok(_inverse(perm), rng, 0.2)), False)]
    if focus == "pixelshuffle" and not bad and rng.random() < 0.5:  # a conv to C*r^2 first
        r = rng.choice([2, 2, 3])
        pre.append((_fixed(_conv3(r * r * rng.randint(1, 4))), False))
    if focus == "pixelunshuffle" and not bad and rng.random() < 0.4:  # pad to a multiple
        def padto(rng_, shape_, env_):
            r = rng_.choice([2, 3])
            ents = [[0, (-s) % r] for s in shape_[2:]]
            return {"kind": "pad", "_pos": "p", "p": {"pad": ents}}
        pre.append((padto, False))
    if focus == "droppath" and rng.random() < 0.4:  # a residual branch
        return [(_fixed(_save("x1")), False), (_fixed(_conv3(shape[1])), False),
                (_fixed({"kind": "bn"}), False), (_kindstep("droppath", bad), bool(bad)),
                (_fixed(_join("add", ["x1"])), False)]
    return pre + [(_kindstep(focus, bad), bool(bad))]


def _new_filler(rng, rank):
    ks = [k for k in NEW_FILLER_WEIGHTS
          if (rank > 2 or k not in NEW_SPATIAL_FILLERS) and k != "flatten"]
    return rng.choices(ks, weights=[NEW_FILLER_WEIGHTS[k] for k in ks])[0]


def make_case_new(rng: random.Random, focus, n_spatial=None, p_bad=0.27):
    """A case of the modern vocabulary: fillers, the focus block, fillers."""
    bad = None
    if rng.random() < p_bad and focus in NEW_BAD_RULES:
        bad = rng.choice(NEW_BAD_RULES[focus])
    n = n_spatial or rng.choice([1, 2, 2, 2, 3])
    if focus in ("pixelshuffle", "pixelunshuffle") or (focus == "classname" and rng.random() < 0.4):
        n = 2
    if bad == "rank" and focus in ("pixelshuffle", "pixelunshuffle"):
        n = rng.choice([1, 3])
    if focus == "dropoutn" and not n_spatial and rng.random() < 0.4:
        n = 1  # dropout1d's ranks
    if bad == "rank1d" and n == 1:
        n = rng.choice([2, 3])
    shape = _draw_input(rng, n)
    if focus in ("pixelshuffle", "pixelunshuffle") and rng.random() < 0.5:
        shape[1] = rng.choice([4, 8, 9, 12, 16, 18, 6])
    input_shape = list(shape)
    raw = rng.random() < 0.1
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(rng.getrandbits(31)))
    env = {"input": x}
    tokens, records = [], []
    n_pre = rng.choice([0, 0, 0, 1, 1, 2])
    n_post = rng.choice([0, 0, 1, 1, 2])
    plan = [("filler", None)] * n_pre + [("block", None)] + [("filler", None)] * n_post
    pos = 0
    with torch.no_grad():
        for what, _ in plan:
            if what == "block":
                steps = block_for(rng, focus, list(x.shape), bad)
            else:
                kind = _new_filler(rng, x.dim())
                steps = [(_kindstep(kind), False)]
            for draw, is_bad in steps:
                if draw is None:  # the block leaves a permuted layout: stop here
                    return {"input": input_shape, "tokens": tokens, "layers": records}
                tries = 1 if (is_bad or (raw and what == "block")) else 25
                eshapes = {k: list(v.shape) for k, v in env.items()}
                for attempt in range(tries):
                    layer = draw(rng, list(x.shape), eshapes)
                    recs, y, err = try_layer(layer, x, env)
                    if err is None:
                        break
                tokens.append(render(layer))
                pos += 1
                if err is not None:
                    if rng.random() < 0.4:
                        tokens += rng.sample(["relu", "bn", "gap", "ln2d", "gn:1", "layerscale",
                                              "droppath", "softmax", "conv:8,k=3"],
                                             rng.randint(1, 2))
                    return {"input": input_shape, "tokens": tokens, "rejected_at": pos,
                            "error": err}
                if layer["kind"] == "save":
                    env[layer["name"]] = y
                records += recs
                x = y
    return {"input": input_shape, "tokens": tokens, "layers": records}


def case_for(seed: int, idx: int):
    rng = random.Random(f"{seed}:{idx}")
    if idx >= DEFAULT_COUNT:  # the modern vocabulary, after the original cases
        j = idx - DEFAULT_COUNT
        return make_case_new(rng, NEW_FOCUS_LIST[j % len(NEW_FOCUS_LIST)])
    focus = FOCUS_LIST[idx % len(FOCUS_LIST)]
    n = 1 + (idx // len(FOCUS_LIST)) % 3
    return make_case(rng, focus=focus, n_spatial=n)


def _work(args):
    seed, lo, hi = args
    torch.set_num_threads(1)
    return [case_for(seed, i) for i in range(lo, hi)]


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------

def token_kind(tok: str) -> str:
    name, _, rest = tok.partition(":")
    name = {"deconv": "tconv", "upsample": "up", "fc": "linear", "layernorm": "ln",
            "groupnorm": "gn", "instancenorm": "instnorm", "stochastic_depth": "droppath",
            "cat": "concat"}.get(name, name)
    if name in ("relu", "gelu", "sigmoid", "tanh"):
        return "act"
    if name.lower() in _CLASS_KIND and name not in NEW_RUNNERS and name not in ALL_KINDS:
        return "class:" + _CLASS_KIND[name.lower()]
    return name


_CLASS_KIND = {k.lower(): v[0] for k, v in CLASS_NAMES.items()}


REJECTION_RULES = [
    ("kernel > padded input / output < 1", r"Kernel size can't be greater|Output size is too small|smaller than kernel size|output size -?\d+ < 1|sizes should be greater than 0|zero-sized output|memory descriptor|primitive descriptor|Invalid computed output size"),
    ("groups", r"divisible by groups"),
    ("output_padding", r"output padding must be smaller"),
    ("tconv output_size", r"requested an output size"),
    ("pool pad > k/2", r"half of (effective )?kernel size"),
    ("reflect pad >= input", r"Padding size should be less than"),
    ("circular pad > input", r"wrapping around more than once"),
    ("align_corners with non-interp mode", r"align_corners option"),
    ("mode/rank mismatch", r"mode needs \d+D input|Only 3D, 4D and 5D input"),
    ("size and scale both", r"only one of size or scale_factor"),
    ("upsample size 0", r"ZeroDivisionError|either size or scale_factor"),
    ("dropout / droppath p", r"dropout probability|drop probability"),
    ("rank-bound class name (emulated)", r"emulated rank-bound"),
    ("rank rule of the spec (emulated)", r"\(emulated\)|needs spatial dims"),
    ("broadcast", r"must match the size of tensor"),
    ("gn groups", r"must be divisible by num_groups"),
    ("shuffle groups", r"Number of channels must be divisible by groups"),
    ("shuffle rank", r"channel_shuffle expects"),
    ("pixel(un)shuffle divisibility", r"pixel_(un)?shuffle expects"),
    ("chunk index", r"tuple index out of range"),
    ("dim out of range", r"Dimension out of range"),
    ("permute dims", r"permute\("),
    ("one value per group/instance", r"Expected more than 1"),
    ("in-features mismatch", r"mat1 and mat2 shapes"),
    ("pad value with a non-constant mode", r"doesn't take in value"),
    ("pad crops to < 1", r"narrow\(\)|Negative padding value is resulting|"
                         r"is too small\. Calculated output|tensor with negative dimension"),
    ("dropout1d rank", r"dropout1d: Expected"),
    ("concat sizes", r"Sizes of tensors must match"),
    ("zero out-channels", r"weight to be at least \d+|non-empty .*weight tensor|non-empty 5D"),
]


def classify(err: str, kind: str = "?") -> str:
    for name, pat in REJECTION_RULES:
        if re.search(pat, err):
            if name.startswith("kernel") and "zero-sized" in err:
                return f"zero-sized output ({kind})"
            return name
    return "other: " + err[:60]


def summarize(cases):
    kinds = Counter()
    focus_rank = Counter()
    for c in cases:
        for t in c["tokens"][: c.get("rejected_at", len(c["tokens"]))]:
            kinds[token_kind(t)] += 1
    rej = [c for c in cases if "rejected_at" in c]
    rules = Counter(classify(c["error"], token_kind(c["tokens"][c["rejected_at"] - 1]))
                    for c in rej)
    rej_kind = Counter(token_kind(c["tokens"][c["rejected_at"] - 1]) for c in rej)
    ranks = Counter(len(c["input"]) - 2 for c in cases)
    lines = [f"cases: {len(cases)}  accepted: {len(cases) - len(rej)}  "
             f"rejected: {len(rej)} ({100 * len(rej) / len(cases):.1f}%)",
             "spatial dims of input: " + ", ".join(f"{k}-D {v}" for k, v in sorted(ranks.items())),
             "stack lengths: " + ", ".join(f"{k}:{v}" for k, v in sorted(Counter(len(c['tokens']) for c in cases).items())),
             "layer tokens per kind (up to the rejecting one):"]
    lines += [f"  {k:10s} {v}" for k, v in kinds.most_common()]
    lines.append("rejections per kind:")
    lines += [f"  {k:10s} {v}" for k, v in rej_kind.most_common()]
    lines.append("rejections per rule:")
    lines += [f"  {v:5d}  {k}" for k, v in rules.most_common()]
    return "\n".join(lines)


def summarize_new(cases):
    """Per focus of the new block (cases DEFAULT_COUNT ..): cases and rejections."""
    per, rej = Counter(), Counter()
    for j, c in enumerate(cases):
        f = NEW_FOCUS_LIST[j % len(NEW_FOCUS_LIST)]
        per[f] += 1
        rej[f] += "rejected_at" in c
    total_rej = sum(rej.values())
    lines = [f"new-vocabulary cases: {len(cases)}, rejected {total_rej} "
             f"({100 * total_rej / max(1, len(cases)):.1f}%); per focus (cases / rejected):"]
    lines += [f"  {f:14s} {per[f]:4d} / {rej[f]}" for f in NEW_FOCUS_WEIGHTS]
    return "\n".join(lines)


def write_corpus(cases, path: Path, seed: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"generator": "tests/make_torch_corpus.py", "seed": seed,
            "torch": torch.__version__, "count": len(cases)}
    with open(path, "w") as f:
        f.write(json.dumps(head)[:-1] + ', "cases": [\n')
        for i, c in enumerate(cases):
            f.write(json.dumps(c, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20250601)
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT + NEW_COUNT)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    t0 = time.time()
    step = 100
    chunks = [(a.seed, lo, min(lo + step, a.count)) for lo in range(0, a.count, step)]
    if a.jobs > 1:
        import multiprocessing as mp
        with mp.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(a.jobs) as pool:
            parts = pool.map(_work, chunks)
    else:
        parts = [_work(c) for c in chunks]
    cases = [c for part in parts for c in part]
    write_corpus(cases, a.out, a.seed)
    dt = time.time() - t0
    print(summarize(cases))
    if a.count > DEFAULT_COUNT:
        print(summarize_new(cases[DEFAULT_COUNT:]))
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB) in {dt:.1f} s")


if __name__ == "__main__":
    main()
