"""The ONNX importer: torch models exported by both exporters round-trip to
torch's output shape, MACs and (the file's) params; hand-built graphs with the
attributes exporters rarely write agree with onnxruntime; and what has no
twin is refused in one line."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convcalc  # noqa: E402
from convcalc.errors import StackSyntaxError  # noqa: E402
from convcalc.importers.onnxfile import import_onnx  # noqa: E402


# ------------------------------------------------------------------ torch models

def _torch_models():
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Conv1D(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv1d(2, 4, 5, stride=2, padding=2)
            s.bn = nn.BatchNorm1d(4)
            s.p = nn.MaxPool1d(3, 2, ceil_mode=True)
            s.t = nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1, output_padding=1)
            s.a = nn.AvgPool1d(2)
            s.fc = nn.Linear(3 * 16, 7)

        def forward(s, x):
            x = s.p(F.relu(s.bn(s.c(x))))
            x = F.interpolate(s.a(s.t(x)), scale_factor=2, mode="nearest")
            return s.fc(x.flatten(1))

    class Conv2D(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                   nn.ReLU())
            s.b1 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
            s.b2 = nn.Conv2d(8, 8, 4, padding="same")
            s.mp = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
            s.ap = nn.AvgPool2d(3, 2, 1, count_include_pad=False)
            s.asym = nn.Conv2d(8, 6, (3, 5), stride=(2, 1), padding=(0, 2))
            s.gap = nn.AdaptiveAvgPool2d(1)
            s.fc = nn.Linear(6, 10)

        def forward(s, x):
            x = s.stem(x)
            x = x + s.b2(F.relu(s.b1(x)))
            x = s.ap(s.mp(x))
            return s.fc(torch.flatten(s.gap(s.asym(x)), 1))

    class Conv3D(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv3d(1, 4, 3, padding=1)
            s.bn = nn.BatchNorm3d(4)
            s.mp = nn.MaxPool3d(2)
            s.t = nn.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1)

        def forward(s, x):
            x = s.mp(F.relu(s.bn(s.c(x))))
            x = s.t(x)
            x = F.interpolate(x, scale_factor=2, mode="trilinear")
            return F.interpolate(x, scale_factor=0.5, mode="nearest")

    class Upsampling(nn.Module):
        def __init__(s, exact):
            super().__init__()
            s.c = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            s.exact = exact

        def forward(s, x):
            y = s.c(x)
            a = F.interpolate(y, scale_factor=2, mode="nearest")
            b = F.interpolate(y, size=(13, 9), mode="nearest")
            c = F.interpolate(y, scale_factor=2, mode="bilinear")
            d = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
            e = F.interpolate(y, size=(16, 16), mode="bicubic")
            f = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=True)
            g = F.interpolate(y, size=x.shape[-2:], mode="bilinear")
            out = [a, c, d, f, F.interpolate(b, size=(16, 16)), e, g]
            if s.exact:
                out.append(F.interpolate(y, scale_factor=2, mode="nearest-exact"))
            return torch.cat(out, 1)

    class SE(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(3, 16, 3, padding=1)
            s.bn = nn.BatchNorm2d(16)
            s.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
            s.r = nn.Conv2d(16, 4, 1)
            s.e = nn.Conv2d(4, 16, 1)
            s.r2 = nn.Conv2d(16, 4, 1)
            s.e2 = nn.Conv2d(4, 16, 1)

        def forward(s, x):
            x = F.silu(s.bn(s.c(x)))
            x = F.hardswish(s.dw(x))
            g = torch.sigmoid(s.e(F.relu(s.r(F.adaptive_avg_pool2d(x, 1)))))
            x = F.relu6(x * g)
            h = F.hardsigmoid(s.e2(F.relu(s.r2(x.mean((2, 3), keepdim=True)))))
            return x * h

    class Norms(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(3, 8, 3, padding=1)
            s.inorm = nn.InstanceNorm2d(8)
            s.gn = nn.GroupNorm(4, 8)
            s.c2 = nn.Conv2d(8, 8, 1)
            s.bn = nn.BatchNorm2d(16)
            s.ln = nn.LayerNorm(16)
            s.fc = nn.Linear(16, 5)

        def forward(s, x):
            x = s.inorm(s.c(x))
            y = s.gn(s.c2(x))
            z = s.bn(torch.cat([x, y], 1))
            z = torch.softmax(z, 1) + torch.log_softmax(z, -1)
            return s.fc(s.ln(z.permute(0, 2, 3, 1)))

    class Shuffles(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(3, 16, 3, padding=1)
            s.ps = nn.PixelShuffle(2)
            s.pu = nn.PixelUnshuffle(2)
            s.c2 = nn.Conv2d(8, 8, 1)

        def forward(s, x):
            x = s.pu(s.ps(s.c(x)))
            n, c, h, w = x.shape
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
            a, b = x.chunk(2, dim=1)
            return torch.cat([a, s.c2(b)], 1)

    class Pads(nn.Module):
        def __init__(s):
            super().__init__()
            s.z = nn.ZeroPad2d((1, 0, 2, 0))
            s.r = nn.ReflectionPad2d((1, 2, 0, 1))
            s.e = nn.ReplicationPad2d(1)
            s.k = nn.ConstantPad2d(1, 1.5)
            s.c = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")

        def forward(s, x):
            x = s.c(s.k(s.e(s.r(s.z(x)))))
            return F.pad(x, (0, 0, -1, -1))

    class ConvNeXtish(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 16, 4, stride=4)
            s.dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
            s.ln = nn.LayerNorm(16, eps=1e-6)
            s.fc1 = nn.Linear(16, 64)
            s.fc2 = nn.Linear(64, 16)
            s.gamma = nn.Parameter(torch.full((16, 1, 1), 1e-6))
            s.drop = nn.Dropout(0.2)
            s.id = nn.Identity()
            s.head = nn.Linear(16, 3)

        def forward(s, x):
            x = s.stem(x)
            y = s.ln(s.dw(x).permute(0, 2, 3, 1))
            y = s.fc2(F.gelu(s.fc1(y))).permute(0, 3, 1, 2)
            x = x + s.drop(s.gamma * y)
            return s.head(s.id(x.mean((2, 3))))

    class Dense(nn.Module):
        def __init__(s):
            super().__init__()
            s.c0 = nn.Conv2d(3, 8, 3, padding=1)
            s.bn = nn.BatchNorm2d(8)
            s.c1 = nn.Conv2d(8, 4, 3, padding=1)
            s.bn2 = nn.BatchNorm2d(12)
            s.c2 = nn.Conv2d(12, 4, 1)

        def forward(s, x):
            x = s.c0(x)
            f = [x]
            y = s.c1(F.relu(s.bn(torch.cat(f, 1))))
            z = torch.cat([x, y], 1)
            out = s.c2(F.relu(s.bn2(z)))
            return torch.cat([z, out], 1)

    return [
        ("conv1d", Conv1D(), (1, 2, 33)),
        ("conv2d", Conv2D(), (2, 3, 32, 30)),
        ("conv3d", Conv3D(), (1, 1, 8, 10, 12)),
        ("upsample", Upsampling(False), (1, 3, 16, 16)),
        ("upsample_exact", Upsampling(True), (1, 3, 16, 16)),
        ("se", SE(), (1, 3, 12, 12)),
        ("norms", Norms(), (1, 3, 10, 10)),
        ("shuffles", Shuffles(), (1, 3, 8, 8)),
        ("pads", Pads(), (1, 3, 9, 10)),
        ("convnext", ConvNeXtish(), (1, 3, 32, 32)),
        ("dense", Dense(), (1, 3, 8, 8)),
    ]


EXPORTS = [(False, 17), (False, 20), (True, 18), (True, 20)]


def _export(torch, model, x, path, dynamo, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = dict(dynamo=dynamo, opset_version=opset)
        if dynamo:
            kw["verbose"] = False
        torch.onnx.export(model, (x,), str(path), **kw)


def _init_dims(model, name):
    """The dims of a constant tensor, following Identity and Constant."""
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    by_out = {o: n for n in model.graph.node for o in n.output}
    while name not in inits:
        n = by_out[name]
        if n.op_type == "Identity":
            name = n.input[0]
        elif n.op_type == "Constant":
            return tuple(n.attribute[0].t.dims)
        else:
            raise AssertionError(f"{name} is not a constant")
    return inits[name]


def _file_params(model):
    """The params as the file defines them, counted from its initializers and
    constants per use: weights and biases of Conv/ConvTranspose/Gemm/MatMul,
    scale and bias of every norm (an InstanceNormalization always has them,
    but not the one inside an exported GroupNorm), and the per-channel
    constants of Mul and Add (a GroupNorm's affine, a linear's bias after a
    MatMul, a layer scale).  BN means and variances are buffers."""
    by_out = {o: n for n in model.graph.node for o in n.output}
    consts = {t.name for t in model.graph.initializer} | \
        {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}

    def size(name):
        if not name or name not in consts and not (
                name in by_out and by_out[name].op_type == "Identity"):
            return None
        return math.prod(_init_dims(model, name))

    total = 0
    for n in model.graph.node:
        op = n.op_type
        slots = []
        if op in ("Conv", "ConvTranspose", "Gemm", "BatchNormalization",
                  "LayerNormalization"):
            slots = n.input[1:3]
        elif op == "InstanceNormalization":
            src = by_out.get(n.input[0])
            slots = [] if src is not None and src.op_type == "Reshape" else n.input[1:3]
        elif op == "MatMul":
            slots = n.input[1:2]
        elif op in ("Add", "Mul"):
            slots = [t for t in n.input if (size(t) or 0) > 1]
        total += sum(size(t) or 0 for t in slots)
    return total


def _expected_params(torch, module, model):
    """The file's count (folded BNs gone, the folded conv's bias there) —
    which is torch's count when nothing was folded."""
    return _file_params(model)


@pytest.mark.parametrize("dynamo,opset", EXPORTS, ids=lambda v: str(v))
@pytest.mark.parametrize("case", range(11), ids=lambda i: str(i))
def test_round_trip(tmp_path, case, dynamo, opset):
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    from torch.utils.flop_counter import FlopCounterMode
    name, module, shape = _torch_models()[case]
    module.eval()
    torch.manual_seed(0)
    x = torch.randn(*shape)
    if not dynamo and name == "upsample_exact":
        pytest.skip("the legacy exporter has no nearest-exact")
    path = tmp_path / f"{name}.onnx"
    _export(torch, module, x, path, dynamo, opset)
    if dynamo and name == "upsample_exact":
        # the dynamo exporter writes nearest-exact as GatherND with index
        # constants (aten._unsafe_index), not a Resize: refused, not guessed
        with pytest.raises(StackSyntaxError, match="GatherND"):
            import_onnx(path)
        return
    with torch.no_grad():
        fc = FlopCounterMode(display=False)
        with fc:
            y = module(x)
    tokens, ishape = import_onnx(path)
    assert tuple(ishape) == tuple(shape)
    a = convcalc.analyze(tokens, ishape)
    model = onnx.load(str(path))
    assert a.output_shape == tuple(y.shape), tokens
    assert a.totals.macs == fc.get_total_flops() // 2, tokens
    assert a.totals.params == _expected_params(torch, module, model), tokens
    # every row carries its source name
    assert all("=" in t.split(":", 1)[0] for t in tokens
               if not t.startswith(("save:", "from:"))), tokens


def test_resnet_like_folded_bn_counts_as_file(tmp_path):
    """BN folded into the conv: the conv gains a bias, the BN's 2C are gone."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    m = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU()).eval()
    path = tmp_path / "m.onnx"
    _export(torch, m, torch.randn(1, 3, 8, 8), path, False, 17)
    tokens, shape = import_onnx(path)
    a = convcalc.analyze(tokens, shape)
    assert a.totals.params == 8 * 27 + 8          # torch: 8*27 + 16
    assert [t.split("=", 1)[1] for t in tokens] == ["conv:8,k=3", "relu"]


def test_dynamo_names_and_external_data(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(s):
            super().__init__()
            s.conv1 = nn.Conv2d(3, 3, 3, padding=1)

        def forward(s, x):
            return torch.relu(s.conv1(x)) + x

    m = nn.Sequential(nn.Sequential(Block(), Block()), nn.Conv2d(3, 600, 1)).eval()
    path = tmp_path / "m.onnx"
    _export(torch, m, torch.randn(1, 3, 8, 8), path, True, 18)
    assert (tmp_path / "m.onnx.data").exists()
    tokens, shape = import_onnx(path)
    names = [t.split("=", 1)[0] for t in tokens if "=" in t.split(":", 1)[0]]
    # leaf modules by their path, functional ops by path and fx node name
    assert names == ["0.0.conv1", "0.0.relu", "0.0.add", "0.1.conv1", "0.1.relu_1",
                     "0.1.add_1", "1"]
    # a missing data file is one line
    (tmp_path / "m.onnx.data").rename(tmp_path / "gone")
    with pytest.raises(StackSyntaxError) as e:
        import_onnx(path)
    assert "m.onnx.data" in str(e.value) and "\n" not in str(e.value)


def test_dynamic_dims_need_a_shape(tmp_path):
    torch = pytest.importorskip("torch")
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(1)).eval()
    path = tmp_path / "d.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    with pytest.raises(StackSyntaxError, match="dynamic dims"):
        import_onnx(path)
    tokens, shape = import_onnx(path, (2, 3, 10, 12))
    assert shape == (2, 3, 10, 12)
    assert convcalc.analyze(tokens, shape).output_shape == (2, 4 * 8 * 10)
    tokens, shape = import_onnx(path, "1x3x5x5")
    assert convcalc.analyze(tokens, shape).output_shape == (1, 36)


# ------------------------------------------------------------------ hand-built graphs

def _model(nodes, in_shape, out_name="y", inits=(), opset=18):
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _ort_shape(model, in_shape):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    return tuple(sess.run(None, {"x": x})[0].shape)


def _w(*shape):
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


CONV_CASES = [
    # (attrs, in_shape, weight shape)
    (dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), (1, 2, 9, 10), (4, 2, 3, 3)),
    (dict(kernel_shape=[4, 4], strides=[3, 2], auto_pad="SAME_LOWER"), (1, 2, 11, 10), (4, 2, 4, 4)),
    (dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID"), (1, 2, 9, 10), (4, 2, 3, 3)),
    (dict(kernel_shape=[3, 2], pads=[0, 1, 2, 0], strides=[1, 2]), (1, 2, 9, 10), (4, 2, 3, 2)),
    (dict(kernel_shape=[3], pads=[2, 1], dilations=[2], group=2), (1, 4, 20), (6, 2, 3)),
    (dict(kernel_shape=[2, 3, 3], pads=[1, 0, 1, 0, 2, 1], strides=[1, 2, 2]),
     (1, 1, 5, 9, 9), (2, 1, 2, 3, 3)),
]


@pytest.mark.parametrize("attrs,in_shape,wshape", CONV_CASES)
def test_conv_attributes_against_onnxruntime(attrs, in_shape, wshape):
    m = _model([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)], in_shape,
               inits=[("w", _w(*wshape)), ("b", _w(wshape[0]))])
    tokens, shape = import_onnx(m)
    a = convcalc.analyze(tokens, shape)
    assert a.output_shape == _ort_shape(m, in_shape), tokens
    assert a.totals.params == math.prod(wshape) + wshape[0]


TCONV_CASES = [
    (dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0]),
     (1, 2, 5, 6), (2, 3, 3, 3)),
    (dict(kernel_shape=[3, 3], strides=[2, 2], output_shape=[12, 11]), (1, 2, 5, 5), (2, 3, 3, 3)),
    (dict(kernel_shape=[3, 3], strides=[2, 2], output_shape=[9, 8]), (1, 2, 5, 5), (2, 3, 3, 3)),
    (dict(kernel_shape=[4], strides=[2], auto_pad="SAME_UPPER"), (1, 2, 7), (2, 3, 4)),
]


@pytest.mark.parametrize("attrs,in_shape,wshape", TCONV_CASES)
def test_tconv_attributes_against_onnxruntime(attrs, in_shape, wshape):
    m = _model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)], in_shape,
               inits=[("w", _w(*wshape))])
    tokens, shape = import_onnx(m)
    a = convcalc.analyze(tokens, shape)
    assert a.output_shape == _ort_shape(m, in_shape), tokens
    assert a.totals.params == math.prod(wshape)


POOL_CASES = [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), (1, 2, 9, 10)),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"), (1, 2, 9, 9)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
     (1, 2, 10, 11)),
    ("MaxPool", dict(kernel_shape=[3], strides=[1], dilations=[2], pads=[1, 1]), (1, 2, 9)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0]), (1, 2, 9, 10)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[1, 1]), (1, 2, 5, 5)),
    ("GlobalAveragePool", {}, (1, 2, 5, 5)),
    ("GlobalMaxPool", {}, (1, 2, 5, 5, 3)),
]


@pytest.mark.parametrize("op,attrs,in_shape", POOL_CASES)
def test_pool_attributes_against_onnxruntime(op, attrs, in_shape):
    m = _model([helper.make_node(op, ["x"], ["y"], **attrs)], in_shape)
    tokens, shape = import_onnx(m)
    assert convcalc.analyze(tokens, shape).output_shape == _ort_shape(m, in_shape), tokens


RESIZE_CASES = [
    # (attrs, scales, sizes, expected mode)
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     [1, 1, 2, 3], None, "nearest"),
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     None, [1, 2, 13, 7], "nearest"),
    (dict(mode="nearest", coordinate_transformation_mode="half_pixel",
          nearest_mode="round_prefer_ceil"), [1, 1, 1.5, 1.5], None, "nearest-exact"),
    (dict(mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
          nearest_mode="floor"), None, [1, 2, 7, 11], "nearest-exact"),
    (dict(mode="linear", coordinate_transformation_mode="half_pixel"), [1, 1, 1.7, 0.5], None,
     "bilinear"),
    (dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), None,
     [1, 2, 20, 3], "bilinear"),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), [1, 1, 2, 2], None,
     "bilinear,align_corners"),
    (dict(mode="cubic", coordinate_transformation_mode="half_pixel"), None, [1, 2, 9, 9],
     "bicubic"),
    (dict(mode="cubic", coordinate_transformation_mode="align_corners"), [1, 1, 2.5, 2], None,
     "bicubic,align_corners"),
]


@pytest.mark.parametrize("attrs,scales,sizes,mode", RESIZE_CASES)
def test_resize_against_onnxruntime(attrs, scales, sizes, mode):
    in_shape = (1, 2, 6, 7)
    inits = [("roi", np.zeros(0, np.float32))]
    ins = ["x", "roi"]
    if scales is not None:
        inits.append(("scales", np.array(scales, np.float32)))
        ins.append("scales")
    else:
        inits.append(("sizes", np.array(sizes, np.int64)))
        ins += ["", "sizes"]
    m = _model([helper.make_node("Resize", ins, ["y"], **attrs)], in_shape, inits=inits)
    tokens, shape = import_onnx(m)
    assert tokens[0].endswith(f"mode={mode}"), tokens
    assert convcalc.analyze(tokens, shape).output_shape == _ort_shape(m, in_shape), tokens


def test_resize_indices_match_torch():
    """The mode mapping is exact: onnxruntime's output equals torch's on the
    same data (nearest, nearest-exact, bilinear, bicubic, align_corners)."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 7)).astype(np.float32)
    for attrs, sizes, tmode, align in [
        (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
         [1, 1, 8, 11], "nearest", None),
        (dict(mode="nearest", coordinate_transformation_mode="half_pixel",
              nearest_mode="round_prefer_ceil"), [1, 1, 8, 11], "nearest-exact", None),
        (dict(mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
              nearest_mode="floor"), [1, 1, 3, 12], "nearest-exact", None),
        (dict(mode="linear", coordinate_transformation_mode="half_pixel"), [1, 1, 8, 11],
         "bilinear", False),
        (dict(mode="linear", coordinate_transformation_mode="align_corners"), [1, 1, 8, 11],
         "bilinear", True),
        (dict(mode="cubic", coordinate_transformation_mode="half_pixel"), [1, 1, 9, 13],
         "bicubic", False),
    ]:
        m = _model([helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)],
                   x.shape, inits=[("sizes", np.array(sizes, np.int64))])
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x})[0]
        want = torch.nn.functional.interpolate(torch.from_numpy(x), size=tuple(sizes[2:]),
                                               mode=tmode, align_corners=align).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=str(attrs))
        tokens, _ = import_onnx(m)
        assert f"mode={tmode}" in tokens[0]


def test_resize_without_twin_is_refused():
    m = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
               (1, 2, 4, 4), inits=[("scales", np.array([1, 1, 2, 2], np.float32))])
    with pytest.raises(StackSyntaxError, match="round_prefer_floor"):
        import_onnx(m)


def test_pad_slice_split_from_constant_subgraphs():
    """Pads, starts and split sizes computed by constant subgraphs are folded."""
    in_shape = (1, 4, 6, 7)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i1"], ["c"], axis=0),
        helper.make_node("Div", ["c", "two"], ["half"]),
        helper.make_node("Unsqueeze", ["half", "ax0"], ["halfv"]),
        helper.make_node("Slice", ["x", "zero", "halfv", "ax1"], ["a"]),
        helper.make_node("Concat", ["p0", "p1"], ["pads"], axis=0),
        helper.make_node("Pad", ["a", "pads"], ["b"], mode="edge"),
        helper.make_node("Split", ["b"], ["s1", "s2"], axis=3, num_outputs=2),
        helper.make_node("Concat", ["s1", "s2"], ["y"], axis=1),
    ]
    m = _model(nodes, in_shape, inits=[
        ("i1", np.array(1, np.int64)), ("two", np.array(2, np.int64)),
        ("ax0", np.array([0], np.int64)), ("zero", np.array([0], np.int64)),
        ("ax1", np.array([1], np.int64)),
        ("p0", np.array([0, 0, 1, 2], np.int64)), ("p1", np.array([0, 0, 0, 1], np.int64))])
    tokens, shape = import_onnx(m)
    assert convcalc.analyze(tokens, shape).output_shape == _ort_shape(m, in_shape), tokens
    assert any("chunk:2,i=0" in t for t in tokens) and any("mode=replicate" in t for t in tokens)


def test_shared_initializer_counts_per_use():
    w = _w(2, 2, 1, 1)
    nodes = [helper.make_node("Identity", ["w"], ["w2"]),
             helper.make_node("Conv", ["x", "w"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["y"], kernel_shape=[1, 1])]
    m = _model(nodes, (1, 2, 3, 3), inits=[("w", w)])
    tokens, shape = import_onnx(m)
    assert convcalc.analyze(tokens, shape).totals.params == 8


def test_mul_by_channel_initializer_is_layerscale_and_add_zero_drops():
    nodes = [helper.make_node("Mul", ["x", "g"], ["a"]),
             helper.make_node("Add", ["a", "z"], ["y"])]
    m = _model(nodes, (1, 3, 4, 4), inits=[("g", _w(3, 1, 1)), ("z", np.zeros(1, np.float32))])
    tokens, shape = import_onnx(m)
    assert [t.split("=", 1)[1] for t in tokens] == ["layerscale"]
    assert convcalc.analyze(tokens, shape).totals.params == 3


def test_depth_to_space_modes():
    m = _model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")],
               (1, 8, 3, 3))
    tokens, _ = import_onnx(m)
    assert tokens[0].endswith("pixelshuffle:2")
    m = _model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="DCR")],
               (1, 8, 3, 3))
    with pytest.raises(StackSyntaxError, match="DCR"):
        import_onnx(m)
    m = _model([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], (1, 2, 4, 4))
    with pytest.raises(StackSyntaxError, match="pixel_unshuffle"):
        import_onnx(m)
    m = _model([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], (1, 1, 4, 4))
    tokens, _ = import_onnx(m)
    assert tokens[0].endswith("pixelunshuffle:2")


def test_space_to_depth_order_claim():
    """SpaceToDepth and torch's pixel_unshuffle agree on one channel only."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    for c, same in ((1, True), (2, False)):
        x = np.arange(c * 16, dtype=np.float32).reshape(1, c, 4, 4)
        m = _model([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], x.shape)
        got = ort.InferenceSession(m.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        want = torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), 2).numpy()
        assert np.array_equal(got, want) == same


# ------------------------------------------------------------------ refusals

def test_unsupported_ops_listed_in_one_line():
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], kernel_shape=[1, 1], name="c1"),
             helper.make_node("Erf", ["a"], ["b"], name="erf1"),
             helper.make_node("Erf", ["b"], ["c"], name="erf2"),
             helper.make_node("Sub", ["c", "a"], ["d"], name="sub1"),
             helper.make_node("TopK", ["d", "k"], ["y", "idx"], axis=1, name="topk1")]
    m = _model(nodes, (1, 2, 3, 3), inits=[("w", _w(2, 2, 1, 1)), ("k", np.array([1]))])
    with pytest.raises(StackSyntaxError) as e:
        import_onnx(m)
    msg = str(e.value)
    assert "\n" not in msg
    assert "Erf ×2 (first: erf1" in msg and "Sub ×1 (first: sub1" in msg
    assert "TopK ×1 (first: topk1" in msg
    assert e.value.exit_code == 2


def test_corrupt_and_truncated_files(tmp_path):
    torch = pytest.importorskip("torch")
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    good = tmp_path / "good.onnx"
    _export(torch, m, torch.randn(1, 3, 8, 8), good, False, 17)
    data = good.read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    for cut in (7, len(data) // 3, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(StackSyntaxError) as e:
            import_onnx(tmp_path / "cut.onnx")
        assert "\n" not in str(e.value) and e.value.exit_code == 2
    with pytest.raises(StackSyntaxError) as e:
        import_onnx(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(StackSyntaxError, match="no such"):
        import_onnx(tmp_path / "missing.onnx")


def test_missing_onnx_names_the_extra(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(StackSyntaxError, match=r"pip install 'convcalc\[onnx\]'"):
        import_onnx("whatever.onnx")
