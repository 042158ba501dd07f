"""What other counting tools would report for each row: ``--count``.

convcalc's own numbers follow PyTorch (``torch.utils.flop_counter``): only
convolutions, transposed convolutions and linear layers cost anything,
FLOPs = 2·MACs and bias is free.  Peer tools disagree on almost every other
point, so :func:`row_cost` re-counts a row the way one of them does:

``torch``
    convcalc's default: ``row.macs`` and 2·``row.macs``.
``fvcore``
    ``FlopCountAnalysis`` (fvcore 0.1.5.post20221221, facebookresearch/fvcore):
    counts one fused multiply-add as one "flop", so its flops *are* MACs.
``ptflops``
    ``get_model_complexity_info`` (ptflops 0.7.5, sovrasov/flops-counter.pytorch)
    with its default ``pytorch`` backend: prints MACs ("GMac").
``thop``
    ``thop.profile`` (thop 0.1.1.post2209072238, Lyken17/pytorch-OpCounter):
    returns MACs (its README's column is "MACs(G)").

Every rule below was read in the tool's released source (the file is named
next to the rule) and checked by running that release on PyTorch 2.13 on a
model of ``torch.nn`` modules, one module per convcalc row (graph joins
written ``x + y``, ``torch.cat``, slicing); ``tests/test_conventions.py``
holds those oracle runs.  A layer a tool has no rule for costs 0 under it.

The twins of the SPEC §3b kinds, as the oracles build them: ``mul`` and
``layerscale`` are the ``*`` operator (``x * y``, ``gamma * x``), ``permute``
and ``chunk`` tensor methods, ``pad`` is ``F.pad`` (``nn.ZeroPad2d`` and friends
count the same), ``up:size=NAME`` is ``F.interpolate(x, size=NAME.shape[2:])``
(a function: module hooks never see it), ``ln2d`` is torchvision's
``LayerNorm2d`` (an ``nn.LayerNorm`` subclass, which the tools that look up
``type(module)`` do not recognise) and ``droppath`` torchvision's
``StochasticDepth``; every other kind is its ``torch.nn`` module.

This module is plain library code: no click, rich or numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Optional, Tuple

from .language import LayerSpec, parse_token

CONVENTIONS = ("torch", "fvcore", "ptflops", "thop")

VERSIONS = {
    "torch": "torch 2.13 (torch/utils/flop_counter.py)",
    "fvcore": "fvcore 0.1.5.post20221221",
    "ptflops": "ptflops 0.7.5",
    "thop": "thop 0.1.1.post2209072238",
}


@dataclass(frozen=True)
class Cost:
    """One row counted the way one tool counts it."""

    macs: int   # what that tool calls MACs
    flops: int  # what that tool calls FLOPs (fvcore: the same number; else 2·MACs)
    note: str   # what was counted for this row


@lru_cache(maxsize=4096)
def _spec(text: str, index: int) -> LayerSpec:
    return parse_token(text, index)


def _fmt(v) -> str:
    return f"{v:,}"


# ---------------------------------------------------------------------------
# torch: torch/utils/flop_counter.py (conv, conv transpose, mm/addmm/bmm only)
# ---------------------------------------------------------------------------

def _torch(row, sp, batch) -> Tuple[int, str]:
    k = row.kind
    if k in ("conv", "sepconv"):
        return row.macs, "conv: N·Cout·∏o·(Cin/g)·∏k, bias not counted"
    if k == "tconv":
        return row.macs, "transposed conv by input: N·Cin·∏i·(Cout/g)·∏k, bias not counted"
    if k == "linear":
        return row.macs, "linear: rows·in·out, bias not counted"
    return 0, f"{k}: not counted (torch.utils.flop_counter counts conv/linear only)"


# ---------------------------------------------------------------------------
# fvcore 0.1.5.post20221221
#   fvcore/nn/flop_count.py  _DEFAULT_SUPPORTED_OPS: aten::_convolution,
#     aten::linear/addmm/matmul/mm/bmm/einsum, aten::batch_norm (+ group/layer/
#     instance norm), aten::upsample_nearest2d (1 per output element),
#     aten::upsample_bilinear2d (4 per output element),
#     aten::adaptive_avg_pool2d (1 per INPUT element), aten::grid_sampler.
#   fvcore/nn/jit_handles.py  conv_flop_count: N·prod(w)·prod(out or, when
#     transposed, in spatial) — bias ignored; linear_flop_jit: prod(in)·out;
#     batchnorm_flop_jit: eval: numel·(2 if affine else 1), training:
#     numel·(5 if affine else 4) (norm_flop_counter).
#   fvcore/nn/jit_analysis.py  _IGNORED_OPS (aten::relu, relu_, dropout,
#     flatten, cat, slice, view …) count 0 silently; every other op without a
#     handle (max_pool*, avg_pool*, gelu, sigmoid, add, upsample_nearest1d/3d,
#     bicubic, trilinear, linear1d, nearest-exact …) counts 0 with a warning.
#   The norms (fvcore/nn/flop_count.py lines 37-39, aten::group_norm and
#     aten::layer_norm: norm_flop_counter(2), aten::instance_norm:
#     norm_flop_counter(1)); fvcore/nn/jit_handles.py norm_flop_jit (line 236):
#     numel·(5 if the weight argument is a tensor else 4), in eval mode too.
#     LayerNorm2d calls F.layer_norm: the same op.  ln with bias=false still
#     has a weight: 5.
#   Zero, with a warning (no handle): aten::mul (x * y, gamma * x),
#     aten::add, aten::pad (every F.pad mode and nn.*Pad*d in torch 2.13),
#     aten::channel_shuffle, aten::pixel_shuffle / pixel_unshuffle,
#     aten::softmax, aten::log_softmax, aten::feature_dropout (Dropout1d/2d/3d),
#     aten::alpha_dropout, aten::feature_alpha_dropout.  Zero, silently
#     (_IGNORED_OPS, fvcore/nn/jit_analysis.py lines 28-87): aten::permute,
#     aten::chunk, aten::view, aten::transpose, aten::contiguous,
#     aten::constant_pad_nd.  StochasticDepth in eval returns its input: no op.
# ---------------------------------------------------------------------------

# kinds that are the identity at inference or only move data: no tool counts them
# (fvcore's reason for each)
_DATA_ONLY = {
    "permute": "permute: aten::permute is ignored, 0",
    "chunk": "chunk: aten::chunk is ignored, 0",
    "shuffle": "shuffle: view/transpose are ignored, aten::channel_shuffle has no handle, 0",
    "pixelshuffle": "pixelshuffle: aten::pixel_shuffle has no handle, 0",
    "pixelunshuffle": "pixelunshuffle: aten::pixel_unshuffle has no handle, 0",
    "pad": "pad: aten::pad has no handle (constant_pad_nd is ignored), 0",
    "droppath": "droppath: StochasticDepth in eval returns its input, no op, 0",
    "dropout1d": "dropout1d: aten::feature_dropout has no handle, 0",
    "dropout2d": "dropout2d: aten::feature_dropout has no handle, 0",
    "dropout3d": "dropout3d: aten::feature_dropout has no handle, 0",
    "alphadropout": "alphadropout: aten::alpha_dropout has no handle, 0",
    "featurealphadropout": "featurealphadropout: aten::feature_alpha_dropout has no handle, 0",
}


def _fvcore(row, sp, batch) -> Tuple[int, str]:
    k = row.kind
    n = len(row.input_shape) - 2
    numel_in, numel_out = math.prod(row.input_shape), math.prod(row.output_shape)
    if k in ("conv", "sepconv"):
        return row.macs, "aten::_convolution: N·∏o·∏w, bias ignored (= torch)"
    if k == "tconv":
        return row.macs, "aten::_convolution transposed: N·∏i·∏w, by input (= torch)"
    if k == "linear":
        return row.macs, "aten::linear: ∏input·out, bias ignored (= torch)"
    if k == "bn":
        per = 2 if sp["affine"] else 1
        return per * numel_in, (f"batch_norm (eval): {per} per element · {_fmt(numel_in)}"
                                f"{'' if sp['affine'] else ' (no affine)'}; "
                                f"in training mode fvcore charges {5 if sp['affine'] else 4}")
    if k == "up":
        mode = sp["mode"]
        if mode == "nearest" and n == 2:
            return numel_out, f"upsample_nearest2d: 1 per output element · {_fmt(numel_out)}"
        if mode == "bilinear":
            return 4 * numel_out, f"upsample_bilinear2d: 4 per output element · {_fmt(numel_out)}"
        if mode == "area" and n == 2:
            return numel_in, (f"area → adaptive_avg_pool2d: 1 per input element · "
                              f"{_fmt(numel_in)}")
        return 0, f"upsample {mode} ({n}-D): no fvcore handle, 0"
    if k in ("aavgpool", "gap"):
        if n == 2:
            return numel_in, f"adaptive_avg_pool2d: 1 per input element · {_fmt(numel_in)}"
        return 0, f"adaptive_avg_pool{n}d: no fvcore handle, 0"
    if k in ("maxpool", "avgpool", "amaxpool"):
        return 0, f"{k}: no fvcore handle (max_pool/avg_pool unsupported), 0"
    if k == "act":
        if sp["name"] == "relu":
            return 0, "relu: in fvcore's _IGNORED_OPS, 0"
        return 0, f"{sp['name']}: no fvcore handle, 0"
    if k in ("dropout", "flatten", "concat", "crop"):
        return 0, f"{k}: ignored op (dropout/flatten/cat/slice), 0"
    if k == "add":
        return 0, "add (x + y): aten::add has no fvcore handle, 0"
    if k in ("ln", "ln2d", "gn", "instnorm"):
        op = {"ln": "layer_norm", "ln2d": "layer_norm", "gn": "group_norm",
              "instnorm": "instance_norm"}[k]
        per = 5 if sp["affine"] else 4
        return per * numel_in, (f"aten::{op}: {per} per element · {_fmt(numel_in)}"
                                f"{'' if per == 5 else ' (no affine)'}")
    if k == "mul":
        return 0, "mul (x * y): aten::mul has no fvcore handle, 0"
    if k == "layerscale":
        return 0, "layerscale (gamma * x): aten::mul has no fvcore handle, 0"
    if k in ("softmax", "logsoftmax"):
        op = "softmax" if k == "softmax" else "log_softmax"
        return 0, f"{k}: aten::{op} has no fvcore handle, 0"
    if k in _DATA_ONLY:
        return 0, _DATA_ONLY[k]
    return 0, f"{k}: no computation, 0"


# ---------------------------------------------------------------------------
# ptflops 0.7.5, default backend "pytorch" (ptflops/flops_counter.py:
# backend=FLOPS_BACKEND.PYTORCH in the code, although the README says aten)
#   ptflops/pytorch_ops.py  MODULES_MAPPING (forward hooks on nn modules):
#     conv_flops_counter_hook: ∏k·Cin·(Cout/g) per position, positions
#       N·∏o, or N·∏i when transposed; + bias N·Cout·∏o (bias counted);
#     linear_flops_counter_hook: (in·out + out if bias)·∏input[:-1];
#     bn_flops_counter_hook: numel·(2 if affine else 1);
#     relu_flops_counter_hook (ReLU, PReLU, ELU, LeakyReLU, ReLU6, GELU):
#       output numel; pool_flops_counter_hook (Max/Avg/Adaptive pools):
#       INPUT numel; upsample_flops_counter_hook: numel of output[0], which
#       is the first sample only (so ÷ N twice below when N > 1).
#   ptflops/pytorch_engine.py  compute_average_flops_cost divides the module
#     sum by the batch size (per-sample MACs); patch_functional (on by default,
#     backend_specific_config count_functional=True) wraps F.relu, F.elu,
#     F.gelu, F.silu, F.{max,avg,adaptive_*}_pool*, F.interpolate, … and adds
#     FUNCTIONAL_MAPPING's count (input numel; interpolate: output size from
#     size=, else numel·scale^dims) without dividing by the batch.  nn.ReLU,
#     nn.ELU, nn.GELU, the pools and nn.Upsample call those F functions, so
#     ptflops counts them twice; nn.SiLU only through F.silu.  `x + y` is
#     Tensor.__add__, not patched: 0 (torch.add(x, y) would count numel).
#   The norms: MODULES_MAPPING (pytorch_ops.py lines 300-304) gives
#     InstanceNorm1d/2d/3d, GroupNorm and LayerNorm bn_flops_counter_hook
#     (line 51): numel·(2 if hasattr(module, "affine") and module.affine else
#     1).  LayerNorm's flag is `elementwise_affine`, it has no `affine`: 1 per
#     element whatever its affine.  Lookup is by exact type
#     (pytorch_engine.py is_supported_instance, line 311): torchvision's
#     LayerNorm2d, a LayerNorm subclass, has no hook, and F.layer_norm is not
#     patched: 0.  nn.Softmax calls F.softmax, patched (FUNCTIONAL_MAPPING
#     line 443): input numel, not divided by the batch; F.log_softmax is not
#     patched: 0.  `x * y` and `gamma * x` are Tensor.__mul__; only torch.mul
#     and Tensor.mul are patched (TENSOR_OPS_MAPPING lines 465-468): 0.
#     F.pad, pixel (un)shuffle, channel shuffle, permute, chunk, the dropouts
#     and StochasticDepth have no hook and no patch: 0.  up:size=NAME is
#     F.interpolate(x, size=…): the patch only, prod(size)·N·C, undivided.
# ---------------------------------------------------------------------------

_PT_MODULE_ACTS = ("relu", "relu6", "leaky_relu", "elu", "gelu")  # MODULES_MAPPING
_PT_FUNCTIONAL_ACTS = ("relu", "elu", "gelu", "silu")             # patch_functional


def _ptflops(row, sp, batch) -> Tuple[int, str]:
    k = row.kind
    N = batch  # the root module's batch counter: len() of the NETWORK input
    n = len(row.input_shape) - 2
    numel_in, numel_out = math.prod(row.input_shape), math.prod(row.output_shape)
    module = 0           # counted by the module hook (divided by the batch)
    functional = 0       # counted by a patched F function (not divided)
    what = ""
    if k in ("conv", "sepconv", "tconv"):
        bias = bool(sp["dbias"] if row.part == "depthwise" else sp["bias"])
        module = row.macs + (numel_out if bias else 0)
        how = "by input" if k == "tconv" else "by output"
        what = (f"conv {how} {_fmt(row.macs)}" + (f" + bias N·Cout·∏o {_fmt(numel_out)}"
                                                   if bias else ", no bias"))
    elif k == "linear":
        bias = bool(sp["bias"])
        module = row.macs + (numel_out if bias else 0)
        what = f"linear {_fmt(row.macs)}" + (f" + bias {_fmt(numel_out)}" if bias else "")
    elif k == "bn":
        per = 2 if sp["affine"] else 1
        module = per * numel_in
        what = f"batch norm: {per} per element · {_fmt(numel_in)}"
    elif k == "act":
        name = sp["name"]
        if name in _PT_MODULE_ACTS:
            module = numel_out
        if name in _PT_FUNCTIONAL_ACTS:
            functional = numel_in
        if module and functional:
            what = f"{name}: module hook {_fmt(module)} + patched F.{name} {_fmt(functional)}"
        elif module:
            what = f"{name}: 1 per element · {_fmt(module)}"
        elif functional:
            what = f"{name}: patched F.{name} only, 1 per element · {_fmt(functional)}"
        else:
            what = f"{name}: no ptflops hook, 0"
    elif k in ("maxpool", "avgpool", "aavgpool", "amaxpool", "gap"):
        module = functional = numel_in
        what = (f"pool: module hook 1 per INPUT element {_fmt(numel_in)} + patched "
                f"F pool {_fmt(numel_in)}")
    elif k == "up" and isinstance(sp["size"], str):
        # F.interpolate(x, size=NAME.shape[2:]): no module, the patch only
        functional = numel_out
        what = (f"upsample to {sp['size']}'s size: F.interpolate, a function (no module "
                f"hook); patched F.interpolate prod(size)·N·C {_fmt(numel_out)}")
        if sp["mode"] == "area":
            functional += numel_in
            what += f" + patched F.adaptive_avg_pool{n}d {_fmt(numel_in)}"
    elif k == "up":
        # upsample_flops_counter_hook reads output[0]: the first SAMPLE of the batch
        module = math.prod(row.output_shape[1:])
        functional = _pt_interpolate(row, sp)
        what = (f"upsample: module hook {_fmt(module)} (output[0], one sample) + patched "
                f"F.interpolate {float(functional):,g}")
        if sp["mode"] == "area":  # F.interpolate(area) calls the patched F.adaptive_avg_pool
            functional += numel_in
            what += f" + patched F.adaptive_avg_pool{n}d {_fmt(numel_in)}"
    elif k in ("dropout", "flatten"):
        what = f"{k}: no ptflops hook, 0"
    elif k == "add":
        what = "add (x + y): Tensor.__add__ not patched, 0"
    elif k in ("gn", "instnorm"):
        per = 2 if sp["affine"] else 1
        module = per * numel_in
        name = "group" if k == "gn" else "instance"
        what = f"{name} norm: {per} per element · {_fmt(numel_in)}"
    elif k == "ln":
        module = numel_in
        what = (f"layer norm: 1 per element · {_fmt(numel_in)} (the hook reads `affine`, "
                f"which LayerNorm does not have)")
    elif k == "ln2d":
        what = "ln2d: LayerNorm2d is a LayerNorm subclass, no hook by exact type; 0"
    elif k == "softmax":
        functional = numel_in
        what = f"softmax: patched F.softmax, 1 per element · {_fmt(numel_in)}"
    elif k == "logsoftmax":
        what = "logsoftmax: F.log_softmax not patched, no hook, 0"
    elif k == "mul":
        what = "mul (x * y): Tensor.__mul__ not patched, 0"
    elif k == "layerscale":
        what = "layerscale (gamma * x): Tensor.__mul__ not patched, 0"
    elif k in _DATA_ONLY:
        what = f"{k}: no ptflops hook, 0"
    else:
        what = f"{k}: no computation, 0"
    value = Fraction(module, N) + Fraction(functional)
    macs = math.floor(value)
    if N > 1 and module:
        what += f"; per sample: module hooks ÷ N={N}"
    return macs, what


def _pt_interpolate(row, sp):
    """ptflops' _interpolate_functional_flops_hook as nn.Upsample calls it."""
    n = len(row.input_shape) - 2
    if sp["size"] is not None:  # prod(size)·N·C
        size = tuple(sp["size"]) * n if len(sp["size"]) == 1 else tuple(sp["size"])
        return math.prod(size) * math.prod(row.input_shape[:2])
    scale = sp["scale"]
    numel = math.prod(row.input_shape)
    if len(scale) == 1:  # nn.Upsample keeps a float: numel·scale**dims (a float)
        return Fraction(numel * float(scale[0]) ** n)
    # a tuple: numel·np.prod(scale, dtype=int64), which truncates each factor
    return numel * math.prod(int(s) for s in scale)


# ---------------------------------------------------------------------------
# thop 0.1.1.post2209072238
#   thop/profile.py  register_hooks: Conv*/ConvTranspose*: count_convNd;
#     BatchNorm*: count_normalization; ReLU, ReLU6, MaxPool*, AdaptiveMaxPool*,
#     Dropout: zero_ops; LeakyReLU: count_relu (0); AvgPool*: count_avgpool;
#     AdaptiveAvgPool*: count_adap_avgpool; Linear: count_linear; Upsample:
#     count_upsample.  Modules without a rule (ELU, GELU, SiLU, Sigmoid, Tanh,
#     Flatten, Identity …) and functional calls (x + y, torch.cat) count 0.
#   thop/vision/basic_hooks.py (= commit 9e106f34) and thop/vision/calc_func.py:
#     calculate_conv2d_flops: ∏output·(Cin/g)·∏k — for a transposed conv too,
#       so it is output-based; bias not counted;
#     count_normalization: 2·numel, ×2 if affine;
#     count_avgpool: output numel; count_adap_avgpool:
#       int((∏(in/out) + 1)·output numel) in float64;
#     count_upsample: modes nearest/linear/bilinear/bicubic only (trilinear,
#       area, nearest-exact: 0 with a warning); calculate_upsample: output
#       numel × 1 (nearest), 5 (linear), 11 (bilinear), 224 + 35 (bicubic);
#     count_linear: in_features·output numel.
#   The §3b kinds.  register_hooks (thop/profile.py lines 21-66) is looked up
#     by exact type (line 188: type(m) in register_hooks).  LayerNorm (line 32)
#     and InstanceNorm1d/2d/3d (33-35): count_normalization (basic_hooks.py
#     line 60): 2·numel, ×2 when `affine` or `elementwise_affine` (an ln with
#     bias=false is still affine: 4).  GroupNorm has no rule: 0; LayerNorm2d,
#     a LayerNorm subclass, is not found by type: 0.  Softmax (line 37):
#     count_softmax (basic_hooks.py line 98, calc_func.py calculate_softmax
#     line 57): (numel/f)·(f exp + f−1 add + f div), f = size along dim;
#     LogSoftmax has no rule: 0.  ZeroPad2d and PixelShuffle: zero_ops; the
#     other pads, PixelUnshuffle, ChannelShuffle, the dropouts and
#     StochasticDepth: no rule, 0.  x * y, gamma * x, permute, chunk, F.pad and
#     F.interpolate (up:size=NAME) are no modules: 0.
# ---------------------------------------------------------------------------

_THOP_UP = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 224 + 35}


def _thop(row, sp, batch) -> Tuple[int, str]:
    k = row.kind
    numel_in, numel_out = math.prod(row.input_shape), math.prod(row.output_shape)
    if k in ("conv", "sepconv"):
        return row.macs, "conv: ∏output·(Cin/g)·∏k, bias not counted (= torch)"
    if k == "tconv":
        # torch: N·Cin·∏i·(Cout/g)·∏k; thop: N·Cout·∏o·(Cin/g)·∏k
        macs = row.macs // math.prod(row.input_shape[2:]) * math.prod(row.output_shape[2:])
        return macs, ("transposed conv by OUTPUT: N·Cout·∏o·(Cin/g)·∏k "
                      f"(torch's {_fmt(row.macs)} × ∏o/∏i)")
    if k == "linear":
        return row.macs, "linear: in·output numel, bias not counted (= torch)"
    if k == "bn":
        per = 4 if sp["affine"] else 2
        return per * numel_in, f"batch norm: {per} per element · {_fmt(numel_in)}"
    if k == "avgpool":
        return numel_out, f"avg pool: 1 per output element · {_fmt(numel_out)}"
    if k in ("aavgpool", "gap"):
        kernel = 1.0
        for i, o in zip(row.input_shape[2:], row.output_shape[2:]):
            kernel *= i / o
        macs = int((kernel + 1) * numel_out)
        return macs, (f"adaptive avg pool: (∏(in/out) + 1)·output = ({kernel:g} + 1)·"
                      f"{_fmt(numel_out)} → {_fmt(macs)}")
    if k in ("maxpool", "amaxpool"):
        return 0, f"{k}: zero_ops, 0"
    if k == "up" and isinstance(sp["size"], str):
        return 0, (f"upsample to {sp['size']}'s size: F.interpolate, a function, thop "
                   f"does not see it, 0")
    if k == "up":
        mode = sp["mode"]
        if mode in _THOP_UP:
            per = _THOP_UP[mode]
            return per * numel_out, (f"{mode}: {per} op{'s' if per > 1 else ''} per output "
                                     f"element · {_fmt(numel_out)} (thop)")
        return 0, f"upsample {mode}: not implemented in thop, 0"
    if k == "act":
        name = sp["name"]
        if name in ("relu", "relu6", "leaky_relu"):
            return 0, f"{name}: zero ops in thop, 0"
        return 0, f"{name}: no thop rule, 0"
    if k == "dropout":
        return 0, "dropout: zero_ops, 0"
    if k == "flatten":
        return 0, "flatten: no thop rule, 0"
    if k == "add":
        return 0, "add (x + y): not a module, thop does not see it, 0"
    if k in ("ln", "instnorm"):
        affine = bool(sp["affine"])
        per = 4 if affine else 2
        name = "layer" if k == "ln" else "instance"
        return per * numel_in, (f"{name} norm: {per} per element · {_fmt(numel_in)}"
                                f"{'' if affine else ' (no affine)'}")
    if k == "ln2d":
        return 0, "ln2d: LayerNorm2d is a LayerNorm subclass, no rule by exact type; 0"
    if k == "gn":
        return 0, "gn: GroupNorm has no thop rule, 0"
    if k == "softmax":
        f = row.input_shape[sp["dim"]]
        rows_ = numel_in // f
        macs = rows_ * (3 * f - 1)
        return macs, (f"softmax: (exp + add + div) per row, {_fmt(rows_)}·(3·{f} − 1) = "
                      f"{_fmt(macs)}")
    if k == "logsoftmax":
        return 0, "logsoftmax: no thop rule, 0"
    if k == "mul":
        return 0, "mul (x * y): not a module, thop does not see it, 0"
    if k == "layerscale":
        return 0, "layerscale (gamma * x): not a module, thop does not see it, 0"
    if k == "pad":
        return 0, "pad: F.pad is not a module (nn.ZeroPad2d: zero_ops; other pads: no rule), 0"
    if k == "pixelshuffle":
        return 0, "pixelshuffle: zero_ops, 0"
    if k in _DATA_ONLY:
        return 0, f"{k}: no thop rule, 0"
    return 0, f"{k}: no computation, 0"


_COUNTERS = {"torch": _torch, "fvcore": _fvcore, "ptflops": _ptflops, "thop": _thop}


def _check(convention: str) -> None:
    if convention not in _COUNTERS:
        raise ValueError(f"unknown convention {convention!r}; one of {', '.join(CONVENTIONS)}")


def row_cost(row, convention: str, batch: Optional[int] = None) -> Cost:
    """The MACs and FLOPs ``convention``'s tool reports for one analysis row.

    ``row`` is a :class:`convcalc.analysis.Row`; ``convention`` one of
    :data:`CONVENTIONS`.  fvcore calls its MACs "flops", so its ``flops``
    equal its ``macs``; the others' ``flops`` are 2·MACs.  ``batch`` is the
    network input's batch size, by which ptflops divides its module hooks
    (pytorch_engine.py batch_counter_hook reads the model's input); it
    defaults to the row's first input dim, which is the batch unless a
    ``permute`` moved it.
    """
    _check(convention)
    sp = _spec(row.spec, row.index)
    if batch is None:
        batch = row.input_shape[0]
    macs, note = _COUNTERS[convention](row, sp, batch)
    flops = macs if convention == "fvcore" else 2 * macs
    return Cost(int(macs), int(flops), note)


def recount(a, convention: str):
    """The analysis with every row's MACs and FLOPs as ``convention``'s tool
    counts them (``--count``), totals summed again."""
    if convention == "torch":
        return a
    rows = []
    for r in a.layers:
        c = row_cost(r, convention, a.input_shape[0])
        rows.append(r._replace(macs=c.macs, counted_flops=c.flops, count_note=c.note))
    macs = sum(r.macs for r in rows)
    totals = a.totals._replace(macs=macs, flops=sum(r.flops for r in rows))
    return a._replace(layers=tuple(rows), totals=totals, count=convention)


def total_cost(rows: Iterable, convention: str, batch: Optional[int] = None) -> Cost:
    """The sum of :func:`row_cost` over ``rows`` (an Analysis's ``layers``);
    ``batch`` as there (default: the first row's first input dim)."""
    _check(convention)
    rows = list(rows)
    if batch is None and rows:
        batch = rows[0].input_shape[0]
    costs = [row_cost(r, convention, batch) for r in rows]
    macs = sum(c.macs for c in costs)
    flops = sum(c.flops for c in costs)
    return Cost(macs, flops, f"{len(costs)} rows counted as {convention}")


_DESCRIPTIONS = {
    "torch": (
        "torch (convcalc's default): PyTorch's own counter, torch.utils.flop_counter."
        "FlopCounterMode (torch 2.13, torch/utils/flop_counter.py). It counts matrix-like ops "
        "only: conv MACs = N·Cout·∏o·(Cin/g)·∏k, transposed conv by input size "
        "N·Cin·∏i·(Cout/g)·∏k, linear rows·in·out; bias, batch norm, pools, upsample, "
        "activations and elementwise adds cost 0. It reports FLOPs = 2·MACs."),
    "fvcore": (
        "fvcore: fvcore.nn.FlopCountAnalysis (fvcore 0.1.5.post20221221, facebookresearch/"
        "fvcore; fvcore/nn/flop_count.py _DEFAULT_SUPPORTED_OPS, fvcore/nn/jit_handles.py, "
        "fvcore/nn/jit_analysis.py _IGNORED_OPS). It traces the model and counts one fused "
        "multiply-add as one flop, so its \"flops\" are MACs (shown here as both). Conv, "
        "transposed conv (by input) and linear equal torch's, bias ignored; batch norm "
        "costs 2 per element with affine, 1 without (model in eval mode; in training mode 5 "
        "or 4); nearest upsample 1 and bilinear 4 per output element but only 2-D (other "
        "modes and ranks 0; area on 2-D is an adaptive average pool); adaptive average "
        "pool 1 per input element, 2-D only; max/avg pools, activations, dropout, flatten, "
        "add and concat 0 (no handle, or ignored). Layer norm (LayerNorm2d too), group norm "
        "and instance norm cost 5 per element with a weight, 4 without (eval mode too); "
        "x * y, layer scale, softmax, log-softmax, pad, permute, chunk, channel and pixel "
        "shuffles, stochastic depth and the channel and alpha dropouts 0."),
    "ptflops": (
        "ptflops: ptflops.get_model_complexity_info (ptflops 0.7.5, sovrasov/"
        "flops-counter.pytorch) with the backend its code defaults to, 'pytorch' "
        "(ptflops/flops_counter.py; the README says aten), and count_functional on "
        "(ptflops/pytorch_engine.py). It prints MACs (\"GMac\"); FLOPs here are 2·MACs. "
        "Rules from ptflops/pytorch_ops.py: conv and linear add bias (N·Cout·∏o); "
        "transposed conv by input size; batch norm 2 per element with affine, 1 without; "
        "ReLU, ReLU6, LeakyReLU, ELU, GELU 1 per element; pools 1 per input element; "
        "upsample 1 per output element. The functional patches count F.relu, F.elu, "
        "F.gelu, F.silu, the F pools and F.interpolate again, so nn.ReLU, ELU, GELU, every "
        "pool and nn.Upsample are counted twice (SiLU once); other activations, dropout, "
        "flatten, x + y and concat 0. Module counts are divided by the batch size "
        "(per sample; the upsample hook reads output[0], one sample, so it is divided "
        "twice), the functional ones are not; the total is int() of the sum. Group and "
        "instance norm 2 per element with affine, 1 without; LayerNorm 1 per element whatever "
        "its affine (the hook reads an `affine` attribute LayerNorm lacks); torchvision's "
        "LayerNorm2d, a subclass, 0 (hooks are looked up by exact type); nn.Softmax 1 per "
        "element through the patched F.softmax (not divided by the batch); x * y and layer "
        "scale (Tensor.__mul__, unpatched), log-softmax, pad, permute, chunk, the shuffles, "
        "stochastic depth and the other dropouts 0; an upsample to a named tensor's size is "
        "F.interpolate alone, prod(size)·N·C."),
    "thop": (
        "thop: thop.profile (thop 0.1.1.post2209072238, Lyken17/pytorch-OpCounter; "
        "thop/profile.py register_hooks, thop/vision/basic_hooks.py, "
        "thop/vision/calc_func.py). It returns MACs (\"ops\"); FLOPs here are 2·MACs. "
        "Conv as torch with bias not counted, but transposed conv from the OUTPUT size "
        "N·Cout·∏o·(Cin/g)·∏k (about s^d times torch); linear in·output elements; batch "
        "norm 4 per element with affine, 2 without; avg pool 1 per output element; "
        "adaptive avg pool (∏(in/out) + 1) per output element; upsample per output "
        "element: nearest 1, linear 5, bilinear 11, bicubic 259, others 0; ReLU, ReLU6, "
        "LeakyReLU, max pools and dropout zero; other activations, flatten, x + y and "
        "concat have no rule: 0. LayerNorm and instance norm 4 per element with affine, 2 "
        "without; softmax (3f − 1) per row of f elements along its dim; group norm, "
        "torchvision's LayerNorm2d (a subclass: rules are looked up by exact type), "
        "log-softmax, pads, shuffles, stochastic depth, the other dropouts, x * y, layer "
        "scale and F.interpolate (an upsample to a named tensor's size) 0."),
}


def describe(convention: str) -> str:
    """One paragraph: what the tool counts, which version, from which source."""
    _check(convention)
    return _DESCRIPTIONS[convention]


# The per-layer rules side by side (the README table): MACs per row.
TABLE = (
    ("layer", "torch (default)", "fvcore", "ptflops", "thop"),
    ("conv", "N·Cout·∏o·(Cin/g)·∏k", "= torch", "= torch + bias N·Cout·∏o", "= torch"),
    ("transposed conv", "by input: N·Cin·∏i·(Cout/g)·∏k", "= torch",
     "= torch + bias N·Cout·∏o", "by output: N·Cout·∏o·(Cin/g)·∏k"),
    ("linear", "rows·in·out", "= torch", "= torch + bias rows·out", "= torch"),
    ("batch norm", "0", "2 per element (1 without affine; 5/4 in training mode)",
     "2 per element (1 without affine)", "4 per element (2 without affine)"),
    ("relu", "0", "0", "2 per element (module hook + F.relu)", "0"),
    ("relu6, leaky_relu", "0", "0", "1 per element", "0"),
    ("elu, gelu", "0", "0", "2 per element (module hook + F.elu/F.gelu)", "0"),
    ("silu", "0", "0", "1 per element (F.silu only)", "0"),
    ("other activations", "0", "0", "0", "0"),
    ("max pool, adaptive max pool", "0", "0", "2 per input element (module hook + F pool)",
     "0"),
    ("avg pool", "0", "0", "2 per input element (module hook + F pool)",
     "1 per output element"),
    ("adaptive avg pool, gap", "0", "1 per input element (2-D only)",
     "2 per input element (module hook + F pool)", "(∏(in/out) + 1) per output element"),
    ("upsample nearest", "0", "1 per output element (2-D only)",
     "1 per output element + F.interpolate's numel·scale^d", "1 per output element"),
    ("upsample linear", "0", "0", "as nearest", "5 per output element"),
    ("upsample bilinear", "0", "4 per output element", "as nearest", "11 per output element"),
    ("upsample bicubic", "0", "0", "as nearest", "259 per output element"),
    ("upsample trilinear, nearest-exact", "0", "0", "as nearest", "0"),
    ("upsample area", "0", "1 per input element (2-D only)",
     "as nearest + 1 per input element", "0"),
    ("upsample to a named size (F.interpolate)", "0", "as upsample",
     "prod(size)·N·C (F.interpolate only; + 1 per input element for area)", "0"),
    ("dropout, flatten", "0", "0", "0", "0"),
    ("layer norm (ln)", "0", "5 per element (4 without affine)",
     "1 per element (affine or not)", "4 per element (2 without affine)"),
    ("ln2d (LayerNorm2d)", "0", "5 per element (4 without affine)",
     "0 (a LayerNorm subclass: no hook)", "0 (a LayerNorm subclass: no rule)"),
    ("group norm", "0", "5 per element (4 without affine)", "2 per element (1 without affine)",
     "0"),
    ("instance norm", "0", "5 per element with affine, 4 without",
     "2 per element with affine, 1 without", "4 per element with affine, 2 without"),
    ("softmax", "0", "0", "1 per element (F.softmax, not ÷ N)", "(3f − 1) per row, f along dim"),
    ("log-softmax", "0", "0", "0", "0"),
    ("add, mul (x + y, x * y), layer scale", "0", "0", "0", "0"),
    ("permute, chunk, shuffle, pixel (un)shuffle, pad", "0", "0", "0", "0"),
    ("droppath, dropout1d/2d/3d, alpha dropouts", "0", "0", "0", "0"),
    ("save, from, concat, crop", "0", "0", "0", "0"),
    ("FLOPs", "2·MACs", "= MACs (fvcore calls them flops)", "not reported (2·MACs shown)",
     "not reported (2·MACs shown)"),
    ("batch N > 1", "whole batch", "whole batch",
     "per sample: module hooks ÷ N (upsample's ÷ N²), F patches not", "whole batch"),
)


def markdown_table() -> str:
    """:data:`TABLE` as GitHub Markdown."""
    head, *body = TABLE
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)
