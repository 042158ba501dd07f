"""Regenerate tests/golden/ops_golden.json from PyTorch (the oracle).

    python tests/make_ops_golden.py        # needs torch==2.13.0

Each case stores its inputs (small float32 arrays drawn from a fixed seed),
the ``convcalc.ops`` function and keyword arguments to call, and PyTorch's
output.  ``tests/test_ops.py::test_golden`` replays the cases with NumPy only,
so the default test run checks the numerics without PyTorch installed.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="Using padding='same'")

OUT = Path(__file__).resolve().parent / "golden" / "ops_golden.json"

rng = np.random.default_rng(20240613)


def arr(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def T(a):
    return torch.from_numpy(np.asarray(a))


def crop(y, pairs):
    """Crop (before, after) from the trailing len(pairs) dims of a tensor."""
    idx = [slice(None)] * (y.dim() - len(pairs))
    for k, (b, a) in enumerate(pairs):
        idx.append(slice(b, y.shape[y.dim() - len(pairs) + k] - a))
    return y[tuple(idx)]


cases = []


def f32list(a):
    """float32 values as the shortest decimals that read back as the same float32."""
    return [float(str(np.float32(t))) for t in np.asarray(a, dtype=np.float32).ravel()]


def case(name, fn, inputs, kwargs, oracle):
    with torch.no_grad():
        out = oracle(**{k: (T(v) if isinstance(v, np.ndarray) else v) for k, v in inputs.items()})
    out = out.detach().numpy().astype(np.float32)
    cases.append({
        "name": name,
        "fn": fn,
        "inputs": {k: {"shape": list(v.shape), "data": f32list(v)}
                   if isinstance(v, np.ndarray) else v for k, v in inputs.items()},
        "kwargs": kwargs,
        "output": {"shape": list(out.shape), "data": f32list(out)},
    })


# --- convolutions -----------------------------------------------------------
x, w, b = arr(2, 4, 7, 6), arr(6, 2, 3, 2), arr(6)
case("conv2d_stride_pad_groups", "conv2d", {"input": x, "weight": w, "bias": b},
     {"stride": [2, 1], "padding": [1, 0], "dilation": 1, "groups": 2},
     lambda input, weight, bias: F.conv2d(input, weight, bias, (2, 1), (1, 0), 1, 2))

x, w = arr(1, 3, 8, 9), arr(2, 3, 3, 2)
case("conv2d_same_dilated", "conv2d", {"input": x, "weight": w},
     {"padding": "same", "dilation": [2, 3]},
     lambda input, weight: F.conv2d(input, weight, padding="same", dilation=(2, 3)))

x, w, b = arr(2, 2, 17), arr(3, 2, 4), arr(3)
case("conv1d_valid_stride3_dilation2", "conv1d", {"input": x, "weight": w, "bias": b},
     {"stride": 3, "padding": "valid", "dilation": 2},
     lambda input, weight, bias: F.conv1d(input, weight, bias, 3, "valid", 2))

x, w, b = arr(1, 2, 5, 4, 6), arr(4, 1, 2, 3, 2), arr(4)
case("conv3d_groups_pad", "conv3d", {"input": x, "weight": w, "bias": b},
     {"stride": [1, 2, 2], "padding": [1, 1, 0], "groups": 2},
     lambda input, weight, bias: F.conv3d(input, weight, bias, (1, 2, 2), (1, 1, 0), 1, 2))

x, w, b = arr(1, 2, 6, 5), arr(3, 2, 3, 3), arr(3)
case("conv_generic_reflect_asymmetric", "conv", {"input": x, "weight": w, "bias": b},
     {"padding": [[2, 1], [0, 2]], "padding_mode": "reflect", "stride": [1, 2]},
     lambda input, weight, bias: F.conv2d(F.pad(input, (0, 2, 2, 1), mode="reflect"), weight, bias, (1, 2)))

x, w, b = arr(1, 2, 7), arr(2, 2, 3), arr(2)
case("conv_generic_circular", "conv", {"input": x, "weight": w, "bias": b},
     {"padding": 2, "padding_mode": "circular"},
     lambda input, weight, bias: F.conv1d(F.pad(input, (2, 2), mode="circular"), weight, bias))

# --- transposed convolutions ------------------------------------------------
x, w, b = arr(1, 4, 5, 4), arr(4, 3, 3, 3), arr(6)
case("conv_transpose2d_s2_p1_op1_g2", "conv_transpose2d", {"input": x, "weight": w, "bias": b},
     {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
     lambda input, weight, bias: F.conv_transpose2d(input, weight, bias, 2, 1, 1, 2))

x, w = arr(2, 2, 6), arr(2, 3, 3)
case("conv_transpose1d_s3_d2_op2", "conv_transpose1d", {"input": x, "weight": w},
     {"stride": 3, "padding": 2, "output_padding": 2, "dilation": 2},
     lambda input, weight: F.conv_transpose1d(input, weight, None, 3, 2, 2, 1, 2))

x, w, b = arr(1, 2, 3, 3, 4), arr(2, 2, 2, 3, 2), arr(2)
case("conv_transpose3d_mixed", "conv_transpose3d", {"input": x, "weight": w, "bias": b},
     {"stride": [2, 1, 2], "padding": [0, 1, 1], "output_padding": [1, 0, 0]},
     lambda input, weight, bias: F.conv_transpose3d(input, weight, bias, (2, 1, 2), (0, 1, 1), (1, 0, 0)))

x, w = arr(1, 3, 4, 5), arr(3, 2, 4, 4)
case("conv_transpose_generic_asymmetric_crop", "conv_transpose", {"input": x, "weight": w},
     {"stride": 2, "padding": [[1, 2], [2, 1]]},
     lambda input, weight: crop(F.conv_transpose2d(input, weight, None, 2), [(1, 2), (2, 1)]))

# --- pools --------------------------------------------------------------------
x = arr(1, 2, 8, 7)
case("max_pool2d_ceil_pad", "max_pool2d", {"input": x},
     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
     lambda input: F.max_pool2d(input, 3, 2, 1, ceil_mode=True))

x = arr(2, 1, 11)
case("max_pool1d_dilated_ceil", "max_pool1d", {"input": x},
     {"kernel_size": 3, "stride": 3, "padding": 1, "dilation": 2, "ceil_mode": True},
     lambda input: F.max_pool1d(input, 3, 3, 1, 2, ceil_mode=True))

x = arr(1, 2, 7, 6)
case("avg_pool2d_ceil_include_pad", "avg_pool2d", {"input": x},
     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": True},
     lambda input: F.avg_pool2d(input, 3, 2, 1, ceil_mode=True, count_include_pad=True))
case("avg_pool2d_ceil_exclude_pad", "avg_pool2d", {"input": x},
     {"kernel_size": [3, 2], "stride": [2, 3], "padding": [1, 1], "ceil_mode": True,
      "count_include_pad": False},
     lambda input: F.avg_pool2d(input, (3, 2), (2, 3), (1, 1), ceil_mode=True, count_include_pad=False))

x = arr(1, 1, 5, 6, 7)
case("avg_pool3d_floor", "avg_pool3d", {"input": x},
     {"kernel_size": [2, 3, 2], "stride": [1, 2, 3], "padding": [1, 1, 0]},
     lambda input: F.avg_pool3d(input, (2, 3, 2), (1, 2, 3), (1, 1, 0)))

x = arr(1, 2, 7, 11)
case("adaptive_avg_pool2d", "adaptive_avg_pool2d", {"input": x}, {"output_size": [5, 3]},
     lambda input: F.adaptive_avg_pool2d(input, (5, 3)))
x = arr(2, 2, 10)
case("adaptive_max_pool1d", "adaptive_max_pool1d", {"input": x}, {"output_size": 4},
     lambda input: F.adaptive_max_pool1d(input, 4))
x = arr(1, 1, 3, 5, 4)
case("adaptive_avg_pool3d_upsampling", "adaptive_avg_pool3d", {"input": x}, {"output_size": [4, 2, 6]},
     lambda input: F.adaptive_avg_pool3d(input, (4, 2, 6)))

# --- interpolate ----------------------------------------------------------------
x2 = arr(1, 2, 5, 7)
for name, kw in [
    ("nearest_scale1.7", {"scale_factor": 1.7, "mode": "nearest"}),
    ("nearest_size", {"size": [8, 3], "mode": "nearest"}),
    ("nearest_exact_scale", {"scale_factor": [1.5, 0.6], "mode": "nearest-exact"}),
    ("bilinear_scale0.6", {"scale_factor": 0.6, "mode": "bilinear"}),
    ("bilinear_align_corners", {"size": [9, 4], "mode": "bilinear", "align_corners": True}),
    ("bicubic_size", {"size": [8, 12], "mode": "bicubic"}),
    ("bicubic_align_corners_scale", {"scale_factor": 1.3, "mode": "bicubic", "align_corners": True}),
    ("area_size", {"size": [3, 4], "mode": "area"}),
]:
    case("interpolate_" + name, "interpolate", {"input": x2}, kw,
         lambda input, kw=kw: F.interpolate(input, **kw))
x1 = arr(1, 3, 6)
case("interpolate_linear_scale2.5", "interpolate", {"input": x1}, {"scale_factor": 2.5, "mode": "linear"},
     lambda input: F.interpolate(input, scale_factor=2.5, mode="linear"))
x3 = arr(1, 1, 3, 4, 3)
case("interpolate_trilinear", "interpolate", {"input": x3}, {"size": [5, 3, 6], "mode": "trilinear"},
     lambda input: F.interpolate(input, size=(5, 3, 6), mode="trilinear"))

# --- batch norm, pad, linear, activations ---------------------------------------
x = arr(2, 3, 4, 2)
rm, rv, g, bb = arr(3), np.abs(arr(3)) + 0.5, arr(3), arr(3)
case("batch_norm_eval", "batch_norm", {"input": x, "running_mean": rm, "running_var": rv, "weight": g, "bias": bb},
     {"eps": 1e-3},
     lambda input, running_mean, running_var, weight, bias:
         F.batch_norm(input, running_mean, running_var, weight, bias, False, 0.1, 1e-3))
case("batch_norm_training", "batch_norm", {"input": x, "running_mean": rm, "running_var": rv, "weight": g, "bias": bb},
     {"training": True},
     lambda input, running_mean, running_var, weight, bias:
         F.batch_norm(input, running_mean.clone(), running_var.clone(), weight, bias, True))

x = arr(1, 2, 4, 5)
for mode, p in [("reflect", [2, 1, 3, 0]), ("replicate", [1, 3, 2, 2]), ("circular", [3, 2, 0, 4]),
                ("constant", [1, -2, 2, 1])]:
    case("pad_" + mode, "pad", {"input": x}, {"pad": p, "mode": mode},
         lambda input, p=p, mode=mode: F.pad(input, p, mode=mode))

x, w, b = arr(3, 5), arr(4, 5), arr(4)
case("linear", "linear", {"input": x, "weight": w, "bias": b}, {},
     lambda input, weight, bias: F.linear(input, weight, bias))

x = (np.linspace(-12, 12, 49).astype(np.float32) + arr(49) * 0.1).reshape(1, 1, 49)
for act, tf in [("gelu", F.gelu), ("silu", F.silu), ("mish", F.mish), ("elu", F.elu), ("selu", F.selu),
                ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid), ("softplus", F.softplus),
                ("sigmoid", torch.sigmoid), ("leaky_relu", F.leaky_relu), ("relu6", F.relu6)]:
    case("act_" + act, act, {"input": x}, {}, lambda input, tf=tf: tf(input))
case("act_gelu_tanh", "gelu", {"input": x}, {"approximate": "tanh"},
     lambda input: F.gelu(input, approximate="tanh"))

# --- the modern vocabulary: norms, shuffles, softmax, pad edge rules -------------
# (appended after the cases above, so their inputs stay the same draws)
x = arr(2, 6, 3, 4)
g, bb = arr(3, 4), arr(3, 4)
case("layer_norm_last2_affine", "layer_norm", {"input": x, "weight": g, "bias": bb},
     {"normalized_shape": [3, 4], "eps": 1e-3},
     lambda input, weight, bias: F.layer_norm(input, (3, 4), weight, bias, 1e-3))
g, bb = arr(6), arr(6)
case("group_norm_3_affine", "group_norm", {"input": x, "weight": g, "bias": bb}, {"num_groups": 3},
     lambda input, weight, bias: F.group_norm(input, 3, weight, bias))
case("group_norm_1_plain", "group_norm", {"input": x}, {"num_groups": 1, "eps": 0.1},
     lambda input: F.group_norm(input, 1, eps=0.1))
case("instance_norm_input_stats_affine", "instance_norm", {"input": x, "weight": g, "bias": bb}, {},
     lambda input, weight, bias: F.instance_norm(input, weight=weight, bias=bias))
rm, rv = arr(6), np.abs(arr(6)) + 0.5
case("instance_norm_running_stats", "instance_norm", {"input": x, "running_mean": rm, "running_var": rv},
     {"use_input_stats": False, "eps": 1e-3},
     lambda input, running_mean, running_var:
         F.instance_norm(input, running_mean, running_var, use_input_stats=False, eps=1e-3))

case("pixel_shuffle_r2", "pixel_shuffle", {"input": arr(2, 8, 3, 2)}, {"upscale_factor": 2},
     lambda input: F.pixel_shuffle(input, 2))
case("pixel_shuffle_5d_r3", "pixel_shuffle", {"input": arr(2, 1, 9, 2, 2)}, {"upscale_factor": 3},
     lambda input: F.pixel_shuffle(input, 3))
case("pixel_unshuffle_r3", "pixel_unshuffle", {"input": arr(1, 2, 6, 3)}, {"downscale_factor": 3},
     lambda input: F.pixel_unshuffle(input, 3))
case("channel_shuffle_g3", "channel_shuffle", {"input": arr(2, 6, 2, 2)}, {"groups": 3},
     lambda input: F.channel_shuffle(input, 3))

x = arr(2, 5, 3) * 4
case("softmax_dim1", "softmax", {"input": x}, {"dim": 1}, lambda input: F.softmax(input, 1))
case("log_softmax_dim_neg1", "log_softmax", {"input": x}, {"dim": -1}, lambda input: F.log_softmax(input, -1))

x = arr(1, 2, 4, 5)
for name, kw in [("reflect_negative", {"pad": [-2, 3, 1, -1], "mode": "reflect"}),
                 ("replicate_negative", {"pad": [-4, 2, 3, -2], "mode": "replicate"}),
                 ("circular_negative", {"pad": [-1, 2, 2, -1], "mode": "circular"}),
                 ("constant_3dims_crop_value", {"pad": [1, -1, 0, 2, -1, 1], "mode": "constant", "value": 2.5})]:
    case("pad_" + name, "pad", {"input": x}, kw, lambda input, kw=kw: F.pad(input, **kw))
x = arr(1, 1, 3, 4, 5)
case("pad_reflect_3d", "pad", {"input": x}, {"pad": [2, 1, 1, 0, 1, 2], "mode": "reflect"},
     lambda input: F.pad(input, [2, 1, 1, 0, 1, 2], mode="reflect"))

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, separators=(",", ":")) + "\n")
print(f"wrote {len(cases)} cases to {OUT} ({OUT.stat().st_size} bytes)")
