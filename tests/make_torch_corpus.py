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

The corpus file holds one compact JSON object per line/case:
    {"input": [1,3,9,9], "tokens": [...], "layers": [{"shape": [...], "params": n, "flops": n}, ...]}
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
    "identity": nn.Identity,
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
META = ("kind", "_alias", "_pos", "_bare")


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
    if isinstance(v, dict):  # asymmetric padding {"asym": [[b, a], ...]}
        return "x".join(f"{b}:{a}" for b, a in v["asym"])
    return str(v)


def render(layer: dict) -> str:
    """The convcalc token for a layer dict (keys render in dict order)."""
    name = layer.get("_alias") or layer["kind"]
    args = []
    pos = layer.get("_pos")
    if pos is not None:
        args.append(_fmt(layer[pos]))
    for key, val in layer.items():
        if key in META or key == pos:
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


def _measure(fn, mods):
    with FlopCounterMode(display=False) as fc:
        y = fn()
    if any(int(n) == 0 for n in y.shape):
        raise Rejected(f"zero-sized output {list(y.shape)}")
    rec = {"shape": [int(n) for n in y.shape], "params": _nparams(*mods),
           "flops": int(fc.get_total_flops())}
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


def run_layer(layer: dict, x: torch.Tensor):
    """Run one token's layer(s) on x.  Returns (records, y); raises on rejection."""
    kind = layer["kind"]
    n = x.dim() - 2
    C = int(x.shape[1])
    if kind in SPATIAL_KINDS and n not in (1, 2, 3):
        raise Rejected(f"{kind} needs spatial dims")

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
                               C, False, layer.get("pm", "zeros"))
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
            size = _tup(layer["size"], n)
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
        mode = layer.get("mode", "nearest")
        ac = True if layer.get("align_corners") else None
        size = layer.get("size")
        if isinstance(size, list):
            size = tuple(size)
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
        name = layer.get("name", kind)
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
        m = nn.Linear(int(x.shape[-1]), layer["out"], bias=layer.get("bias", True)).eval()
        rec, y = _measure(lambda: m(x), [m])
        return [rec], y

    raise ValueError(f"unknown kind {kind}")


def try_layer(layer, x):
    """(records, y, None) on success, (None, None, error_line) on rejection."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recs, y = run_layer(layer, x)
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


def case_for(seed: int, idx: int):
    rng = random.Random(f"{seed}:{idx}")
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
    name = {"deconv": "tconv", "upsample": "up", "fc": "linear"}.get(name, name)
    return "act" if name in ("relu", "gelu", "sigmoid", "tanh") else name


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
    ("dropout p", r"dropout probability"),
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
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT)
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
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB) in {dt:.1f} s")


if __name__ == "__main__":
    main()
