"""``convcalc.conventions``: each row counted the way torch, fvcore, ptflops
and thop count it.

Three kinds of test:

* hand arithmetic from the tools' source rules (see the comments in
  ``src/convcalc/conventions.py`` for the file each rule comes from), one
  layer at a time, the numbers worked out in the comments;
* the ``torch`` convention against convcalc's own MACs and the FLOPs
  PyTorch recorded in ``tests/golden/torch_corpus.json``;
* oracles: the real tools (thop, ptflops, fvcore), each run on a ``torch.nn``
  model built from the analysis rows (one module per row, graph joins as
  ``x + y``, ``torch.cat`` and slicing), totals compared.  Each oracle is
  skipped when its tool is not importable.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import warnings
from functools import lru_cache
from pathlib import Path

import pytest

import convcalc
from convcalc.conventions import (CONVENTIONS, TABLE, Cost, describe, markdown_table,
                                  row_cost, total_cost)

CORPUS = Path(__file__).resolve().parent / "golden" / "torch_corpus.json"


def rows(tokens, shape):
    return convcalc.analyze(tokens, shape).layers


def costs(token, shape):
    """{convention: Cost} of a one-token stack (its only row)."""
    (row,) = rows([token], shape)
    return {c: row_cost(row, c) for c in CONVENTIONS}


def macs(token, shape):
    return {c: v.macs for c, v in costs(token, shape).items()}


# ---------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------

def test_conventions_and_cost_type():
    assert CONVENTIONS == ("torch", "fvcore", "ptflops", "thop")
    c = row_cost(rows(["conv:6,k=3"], (1, 4, 8, 8))[0], "torch")
    assert isinstance(c, Cost) and isinstance(c.macs, int) and isinstance(c.flops, int)
    assert isinstance(c.note, str) and c.note
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.macs = 1  # frozen


def test_unknown_convention():
    row = rows(["conv:6,k=3"], (1, 4, 8, 8))[0]
    with pytest.raises(ValueError, match="torch, fvcore, ptflops, thop"):
        row_cost(row, "calflops")
    with pytest.raises(ValueError):
        describe("torchinfo")


@pytest.mark.parametrize("conv,words", [
    ("torch", ["torch 2.13", "flop_counter", "2·MACs"]),
    ("fvcore", ["0.1.5.post20221221", "jit_handles.py", "_IGNORED_OPS", "MACs"]),
    ("ptflops", ["0.7.5", "pytorch_ops.py", "pytorch_engine.py", "GMac", "twice"]),
    ("thop", ["0.1.1.post2209072238", "basic_hooks.py", "calc_func.py", "OUTPUT"]),
])
def test_describe_names_version_and_source(conv, words):
    text = describe(conv)
    assert "\n" not in text
    for w in words:
        assert w in text, w


def test_markdown_table():
    md = markdown_table()
    lines = md.splitlines()
    assert lines[0] == "| layer | torch (default) | fvcore | ptflops | thop |"
    assert lines[1] == "|---|---|---|---|---|"
    assert len(lines) == len(TABLE) + 1
    assert all(line.count("|") == 6 for line in lines)
    assert "11 per output element" in md and "by output" in md


def test_total_cost_sums_rows():
    r = convcalc.analyze(["conv:6,k=3", "bn", "relu", "up:2,mode=bilinear"], (1, 4, 8, 8))
    for c in CONVENTIONS:
        t = total_cost(r.layers, c)
        assert t.macs == sum(row_cost(x, c).macs for x in r.layers)
        assert t.flops == sum(row_cost(x, c).flops for x in r.layers)
    assert total_cost(r.layers, "torch").macs == r.totals.macs


# ---------------------------------------------------------------------------
# Hand arithmetic, layer by layer
# ---------------------------------------------------------------------------

def test_conv_with_bias():
    # Conv2d(4, 6, 3) on 1x4x8x8 -> 1x6x6x6.
    # torch: N·Cout·∏o·(Cin/g)·∏k = 1·6·36·4·9 = 7,776 MACs, 15,552 FLOPs
    # fvcore: the same 7,776, and calls it flops
    # ptflops: 7,776 + bias N·Cout·∏o = 6·36 = 216 -> 7,992
    # thop: 7,776 (bias not counted)
    c = costs("conv:6,k=3", (1, 4, 8, 8))
    assert (c["torch"].macs, c["torch"].flops) == (7776, 15552)
    assert (c["fvcore"].macs, c["fvcore"].flops) == (7776, 7776)
    assert (c["ptflops"].macs, c["ptflops"].flops) == (7992, 15984)
    assert (c["thop"].macs, c["thop"].flops) == (7776, 15552)
    assert "bias" in c["ptflops"].note


def test_conv_without_bias_and_groups():
    # Conv2d(4, 6, 3, groups=2, bias=False): 1·6·36·2·9 = 3,888 for every tool
    assert set(macs("conv:6,k=3,g=2,bias=false", (1, 4, 8, 8)).values()) == {3888}


def test_sepconv_parts():
    # sepconv:8,k=3 on 1x4x8x8: depthwise Conv2d(4,4,3,groups=4,bias=False) -> 6x6:
    #   1·4·36·1·9 = 1,296 (no bias anywhere, ptflops too)
    # pointwise Conv2d(4,8,1) with bias: 1·8·36·4·1 = 1,152; ptflops + 8·36 = 288 -> 1,440
    dw, pw = rows(["sepconv:8,k=3"], (1, 4, 8, 8))
    assert {c: row_cost(dw, c).macs for c in CONVENTIONS} == \
        {"torch": 1296, "fvcore": 1296, "ptflops": 1296, "thop": 1296}
    assert {c: row_cost(pw, c).macs for c in CONVENTIONS} == \
        {"torch": 1152, "fvcore": 1152, "ptflops": 1440, "thop": 1152}


def test_transposed_conv_input_vs_output_based():
    # ConvTranspose2d(4, 6, 3, stride 2, padding 1, output_padding 1) on 1x4x8x8:
    # o = (8−1)·2 − 2 + (3−1) + 1 + 1 = 16.
    # torch (input-based): N·Cin·∏i·(Cout/g)·∏k = 1·4·64·6·9 = 13,824 MACs = 27,648 FLOPs
    # fvcore: the same (conv_flop_count uses x_shape when transposed)
    # ptflops: input-based 13,824 + bias N·Cout·∏o = 6·256 = 1,536 -> 15,360
    # thop (output-based): N·Cout·∏o·(Cin/g)·∏k = 1·6·256·4·9 = 55,296 (4x = s^2)
    c = costs("tconv:6,k=3,s=2,p=1,op=1", (1, 4, 8, 8))
    assert (c["torch"].macs, c["torch"].flops) == (13824, 27648)
    assert (c["fvcore"].macs, c["fvcore"].flops) == (13824, 13824)
    assert c["ptflops"].macs == 15360
    assert c["thop"].macs == 55296 == 4 * 13824
    assert "OUTPUT" in c["thop"].note


def test_transposed_conv_groups():
    # groups=2: torch 1·4·64·3·9 = 6,912; ptflops + 1,536 = 8,448;
    # thop 1·6·256·2·9 = 27,648
    m = macs("tconv:6,k=3,s=2,p=1,op=1,g=2", (1, 4, 8, 8))
    assert m == {"torch": 6912, "fvcore": 6912, "ptflops": 8448, "thop": 27648}


def test_linear_with_bias():
    # Linear(10, 5) on 2x10: torch rows·in·out = 2·10·5 = 100; fvcore 100; thop
    # in·output elements = 10·10 = 100; ptflops (in·out + out)·rows = 55·2 = 110,
    # divided by the batch 2 (ptflops reports per sample) -> 55
    m = macs("linear:5", (2, 10))
    assert m == {"torch": 100, "fvcore": 100, "ptflops": 55, "thop": 100}
    # batch 1: ptflops 50 + 5 = 55; without bias 50
    assert macs("linear:5", (1, 10))["ptflops"] == 55
    assert macs("linear:5,bias=false", (1, 10))["ptflops"] == 50


def test_linear_on_rank_3():
    # Linear(10, 5) on 1x3x10: 3 rows. torch/fvcore/thop 3·10·5 = 150; ptflops 3·55 = 165
    assert macs("linear:5", (1, 3, 10)) == {"torch": 150, "fvcore": 150, "ptflops": 165,
                                             "thop": 150}


def test_batch_norm():
    # BatchNorm2d(4) on 1x4x8x8: 256 elements.
    # fvcore (eval): 2·256 = 512 (affine), 1·256 = 256 (affine=False)
    # ptflops: 2·256 = 512 / 256
    # thop: 2·256 ×2 when affine = 1,024 / 512
    assert macs("bn", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 512, "ptflops": 512,
                                         "thop": 1024}
    assert macs("bn:affine=false", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 256,
                                                      "ptflops": 256, "thop": 512}
    assert "training" in costs("bn", (1, 4, 8, 8))["fvcore"].note


@pytest.mark.parametrize("name,pt", [
    # ptflops on 1x4x8x8 (256 elements): module hook (ReLU, ReLU6, LeakyReLU, ELU, GELU)
    # plus the patched F.relu / F.elu / F.gelu / F.silu each 1 per element
    ("relu", 512), ("relu6", 256), ("leaky_relu", 256), ("elu", 512), ("gelu", 512),
    ("silu", 256), ("selu", 0), ("celu", 0), ("mish", 0), ("hardswish", 0),
    ("hardsigmoid", 0), ("hardtanh", 0), ("sigmoid", 0), ("tanh", 0), ("softplus", 0),
    ("identity", 0),
])
def test_activations(name, pt):
    # torch, fvcore (relu ignored, the rest unsupported) and thop (zero_ops or no rule): 0
    assert macs(f"act:{name}", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 0, "ptflops": pt,
                                                   "thop": 0}


def test_relu_alias_and_inplace():
    assert macs("relu", (1, 4, 8, 8))["ptflops"] == 512
    assert macs("act:relu,inplace", (1, 4, 8, 8))["ptflops"] == 512


def test_maxpool():
    # MaxPool2d(2) on 1x4x8x8: ptflops counts the INPUT, 256, in the module hook and
    # again through F.max_pool2d: 512; fvcore has no max_pool handle; thop zero_ops
    assert macs("maxpool:2", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 0, "ptflops": 512,
                                                "thop": 0}
    assert macs("amaxpool:3", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 0, "ptflops": 512,
                                                 "thop": 0}


def test_avgpool():
    # AvgPool2d(2) on 1x4x8x8 -> 1x4x4x4: thop 1 per output element = 64;
    # ptflops 2·256 = 512; fvcore 0
    assert macs("avgpool:2", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 0, "ptflops": 512,
                                                "thop": 64}


def test_adaptive_avgpool():
    # AdaptiveAvgPool2d(3) on 1x4x8x8 -> 1x4x3x3 (36):
    # fvcore adaptive_avg_pool2d: 1 per input element = 256
    # ptflops: 2·256 = 512
    # thop: int((8/3·8/3 + 1)·36) = int(8.111…·36) = int(292.0) = 292
    assert macs("aavgpool:3", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 256, "ptflops": 512,
                                                 "thop": 292}
    # thop computes in float64: (7/5·8/3 + 1)·60 = 283.99999999999997 -> 283
    assert macs("aavgpool:5x3", (1, 4, 7, 8))["thop"] == 283
    # global average pool on 1x4x8x8 -> 1x4x1x1: thop (64 + 1)·4 = 260; fvcore 256
    assert macs("gap", (1, 4, 8, 8)) == {"torch": 0, "fvcore": 256, "ptflops": 512,
                                          "thop": 260}


def test_adaptive_avgpool_fvcore_2d_only():
    # fvcore has a handle for adaptive_avg_pool2d only
    assert macs("aavgpool:3", (1, 4, 8))["fvcore"] == 0
    assert macs("gap", (1, 4, 4, 4, 4))["fvcore"] == 0
    # thop 1-D: (8/3 + 1)·12 = 44.0 -> 44
    assert macs("aavgpool:3", (1, 4, 8))["thop"] == 44


def test_bilinear_upsample():
    # Upsample(scale 2, bilinear) on 1x4x8x8 -> 1x4x16x16 = 1,024 output elements.
    # thop: 11·1,024 = 11,264; fvcore upsample_bilinear2d: 4·1,024 = 4,096;
    # ptflops: module hook 1,024 + F.interpolate 256·2.0² = 1,024 -> 2,048
    c = costs("up:2,mode=bilinear", (1, 4, 8, 8))
    assert {k: v.macs for k, v in c.items()} == {"torch": 0, "fvcore": 4096,
                                                  "ptflops": 2048, "thop": 11264}
    assert c["thop"].note == "bilinear: 11 ops per output element · 1,024 (thop)"
    assert c["fvcore"].flops == 4096 and c["thop"].flops == 22528


@pytest.mark.parametrize("token,shape,want", [
    # nearest 2-D, 1,024 outputs: fvcore 1·1,024; thop 1·1,024; ptflops 2·1,024
    ("up:2", (1, 4, 8, 8), {"fvcore": 1024, "ptflops": 2048, "thop": 1024}),
    # nearest 1-D (1x4x16: 64 outputs; ptflops 64 + 32·2.0 = 128) and 3-D (2,048):
    # fvcore has no handle for either
    ("up:2", (1, 4, 8), {"fvcore": 0, "ptflops": 128, "thop": 64}),
    ("up:2", (1, 4, 4, 4, 4), {"fvcore": 0, "ptflops": 4096, "thop": 2048}),
    # linear 1-D: thop 5·64 = 320
    ("up:2,mode=linear", (1, 4, 8), {"fvcore": 0, "ptflops": 128, "thop": 320}),
    # bicubic: thop (224 + 35)·1,024 = 265,216
    ("up:2,mode=bicubic", (1, 4, 8, 8), {"fvcore": 0, "ptflops": 2048, "thop": 265216}),
    # trilinear and nearest-exact: thop skips them (0), fvcore too
    ("up:2,mode=trilinear", (1, 4, 4, 4, 4), {"fvcore": 0, "ptflops": 4096, "thop": 0}),
    ("up:2,mode=nearest-exact", (1, 4, 8, 8), {"fvcore": 0, "ptflops": 2048, "thop": 0}),
    # area 2-D: F.interpolate -> adaptive_avg_pool2d: fvcore 1 per input = 256;
    # ptflops 1,024 + 1,024 + patched F.adaptive_avg_pool2d 256 = 2,304; thop 0
    ("up:2,mode=area", (1, 4, 8, 8), {"fvcore": 256, "ptflops": 2304, "thop": 0}),
    # size= : ptflops F.interpolate counts prod(size)·N·C = 12·10·4 = 480 = the output
    ("up:size=12x10,mode=bilinear", (1, 4, 8, 8),
     {"fvcore": 1920, "ptflops": 960, "thop": 5280}),
    # scale 1.5 on 7x7 -> 10x10 (400): ptflops 400 + 196·1.5² = 441.0 -> 841
    ("up:1.5", (1, 4, 7, 7), {"fvcore": 400, "ptflops": 841, "thop": 400}),
    # per-dim scale 1.5x2 -> 10x14 (560): ptflops 560 + 196·(int 1 · int 2) = 952
    ("up:scale=1.5x2", (1, 4, 7, 7), {"fvcore": 560, "ptflops": 952, "thop": 560}),
])
def test_upsample_modes(token, shape, want):
    assert macs(token, shape) == {"torch": 0, **want}


def test_dropout_flatten():
    for tok in ("dropout", "dropout:0.2", "flatten"):
        assert set(macs(tok, (1, 4, 8, 8)).values()) == {0}


def test_graph_rows_cost_nothing():
    stack = ["conv:4,k=3,p=1", "save:a", "conv:4,k=3,p=1", "add:a", "save:b",
             "from:a", "conv:4,k=3,s=2", "up:size=8x8", "concat:b", "conv:4,k=5",
             "save:c", "from:b", "crop:c"]
    r = convcalc.analyze(stack, (1, 4, 8, 8))
    graph = [row for row in r.layers if row.kind in ("save", "from", "add", "concat", "crop")]
    assert [row.kind for row in graph] == ["save", "add", "save", "from", "concat", "save",
                                           "from", "crop"]
    for row in graph:
        for c in CONVENTIONS:
            cost = row_cost(row, c)
            assert (cost.macs, cost.flops) == (0, 0), (row.spec, c)
    assert "x + y" in row_cost(graph[1], "ptflops").note


def test_ptflops_per_sample():
    # batch 2, ReLU on 2x4x8x8 (512 elements): the module hook's 512 is divided by
    # the batch (256), the patched F.relu's 512 is not -> 768
    assert macs("relu", (2, 4, 8, 8))["ptflops"] == 768
    # conv on batch 2: (2·7,776 + 2·216)/2 = 7,992, as at batch 1
    assert macs("conv:6,k=3", (2, 4, 8, 8))["ptflops"] == 7992
    assert macs("conv:6,k=3", (2, 4, 8, 8))["torch"] == 2 * 7776
    assert "per sample" in costs("conv:6,k=3", (2, 4, 8, 8))["ptflops"].note
    # upsample's module hook reads output[0], one sample (1x4x16x16 = 1,024 of the
    # 2,048 outputs), then ÷ 2: 512; F.interpolate 512·2.0² = 2,048 -> 2,560
    assert macs("up:2,mode=bilinear", (2, 4, 8, 8))["ptflops"] == 2560


def test_resnet18_by_convention():
    # ResNet-18 at 224: torch 1,814,073,344 MACs (test_zoo's hand sum).
    # fvcore adds bn (2·numel each) and the adaptive avg pool (512·49 = 25,088);
    # thop adds bn at 4·numel, the avg pool (49 + 1)·512 = 25,600; published thop
    # 1.82 G, ptflops 1.82 GMac, fvcore 1.82 G.
    r = convcalc.analyze(["@resnet18"], (1, 3, 224, 224))
    bn = sum(math.prod(x.input_shape) for x in r.layers if x.kind == "bn")
    t = {c: total_cost(r.layers, c).macs for c in CONVENTIONS}
    assert t["torch"] == 1_814_073_344
    assert t["fvcore"] == t["torch"] + 2 * bn + 512 * 49
    assert t["thop"] == t["torch"] + 4 * bn + 50 * 512
    for c in ("fvcore", "ptflops", "thop"):
        assert 1.81e9 < t[c] < 1.83e9, (c, t[c])


# ---------------------------------------------------------------------------
# The torch convention is convcalc's own count, and PyTorch's
# ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def corpus_sample():
    """A few hundred accepted corpus cases (every 8th accepted one)."""
    with open(CORPUS) as f:
        cases = json.load(f)["cases"]
    accepted = [c for c in cases if "rejected_at" not in c]
    return accepted[::8]


def test_torch_convention_is_convcalc_on_corpus():
    sample = corpus_sample()
    assert len(sample) >= 300
    n_rows = 0
    for case in sample:
        r = convcalc.analyze(case["tokens"], tuple(case["input"]))
        assert len(r.layers) == len(case["layers"])
        for row, rec in zip(r.layers, case["layers"]):
            c = row_cost(row, "torch")
            assert c.macs == row.macs, case
            assert c.flops == 2 * row.macs == rec["flops"], case  # what torch recorded
            n_rows += 1
        assert total_cost(r.layers, "torch").macs == r.totals.macs
    assert n_rows > 800


def test_every_convention_on_corpus():
    """Every row of the sample: non-negative ints, fvcore flops = MACs, else 2·MACs;
    conv/linear as torch under fvcore and thop (thop's transposed conv is
    output-based: torch's count × ∏o/∏i), ptflops adds the bias."""
    for case in corpus_sample():
        for row in convcalc.analyze(case["tokens"], tuple(case["input"])).layers:
            for c in CONVENTIONS:
                cost = row_cost(row, c)
                assert isinstance(cost.macs, int) and cost.macs >= 0
                assert cost.flops == (cost.macs if c == "fvcore" else 2 * cost.macs)
                assert cost.note
            if row.kind in ("conv", "sepconv", "tconv", "linear"):
                assert row_cost(row, "fvcore").macs == row.macs
                pt = row_cost(row, "ptflops").macs * row.input_shape[0]  # per sample
                assert pt - row.macs in (0, math.prod(row.output_shape))  # bias or not
            if row.kind == "tconv":
                i, o = math.prod(row.input_shape[2:]), math.prod(row.output_shape[2:])
                assert row_cost(row, "thop").macs * i == row.macs * o
            elif row.kind in ("conv", "sepconv", "linear"):
                assert row_cost(row, "thop").macs == row.macs


# ---------------------------------------------------------------------------
# Oracles: the real tools on a torch model built from the rows
# ---------------------------------------------------------------------------

from torch_compat import import_torchvision  # noqa: E402


def _try_import(name):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # thop imports distutils' LooseVersion
            return __import__(name)
    except Exception:  # noqa: BLE001 - missing, or broken against this torch
        return None


torch = _try_import("torch")
import_torchvision()  # ptflops imports torchvision, which needs the CPU workaround first
HAVE = {name: torch is not None and _try_import(mod) is not None
        for name, mod in (("thop", "thop"), ("ptflops", "ptflops"), ("fvcore", "fvcore.nn"))}


def _per_dim(v, n):
    return tuple(v) * n if len(v) == 1 else tuple(v)


@lru_cache(maxsize=1)
def twins():
    """The non-``torch.nn`` twins, as their sources write them (torchvision is not
    a dependency): torchvision/models/convnext.py ``LayerNorm2d`` (an
    ``nn.LayerNorm`` subclass whose forward permutes to channels-last, calls
    ``F.layer_norm`` and permutes back; here for any rank), torchvision/ops/
    stochastic_depth.py ``StochasticDepth`` (its input unchanged in eval), and
    ConvNeXt's layer scale, ``gamma * x`` with gamma a C x 1 ... 1 parameter."""
    nn, F = torch.nn, torch.nn.functional

    class LayerNorm2d(nn.LayerNorm):
        def forward(self, x):
            r = x.dim()
            x = x.permute(0, *range(2, r), 1)
            x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, r - 1, *range(1, r - 1))

    class StochasticDepth(nn.Module):
        def __init__(self, p, mode):
            super().__init__()
            self.p, self.mode = p, mode

        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
            noise = torch.empty(size, dtype=x.dtype).bernoulli_(1.0 - self.p)
            return x * noise.div_(1.0 - self.p) if self.p < 1.0 else x * noise

    class LayerScale(nn.Module):
        def __init__(self, c, rank):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(c, *[1] * (rank - 2)))

        def forward(self, x):
            return self.gamma * x

    return LayerNorm2d, StochasticDepth, LayerScale


_NEEDS_SYMMETRIC = ("conv", "sepconv", "tconv", "maxpool", "avgpool")


def build_model(analysis):
    """A torch.nn model with one module (or functional step) per row, or None
    when a row needs padding a module cannot express (asymmetric).  After a
    forward pass, ``model.shapes`` holds each row's output shape."""
    nn, F = torch.nn, torch.nn.functional
    LayerNorm2d, StochasticDepth, LayerScale = twins()
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
    tconv = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
    maxp = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
    avgp = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
    aavg = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
    amax = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
    bn = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    inorm = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
    acts = {"relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU,
            "selu": nn.SELU, "celu": nn.CELU, "gelu": nn.GELU, "silu": nn.SiLU,
            "mish": nn.Mish, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
            "hardtanh": nn.Hardtanh, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
            "softplus": nn.Softplus, "identity": nn.Identity}
    inplace_ok = {"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "silu", "mish",
                  "hardswish", "hardsigmoid", "hardtanh"}
    dropouts = {"dropout1d": nn.Dropout1d, "dropout2d": nn.Dropout2d,
                "dropout3d": nn.Dropout3d, "alphadropout": nn.AlphaDropout,
                "featurealphadropout": nn.FeatureAlphaDropout}

    mods = nn.ModuleList()
    plan = []
    for row in analysis.layers:
        sp = convcalc.parse_token(row.spec, row.index)
        k, n = row.kind, len(row.input_shape) - 2
        cin, cout = row.input_shape[1], row.output_shape[1]
        pad = None
        if row.padding is not None and k in _NEEDS_SYMMETRIC:
            if any(b != a for b, a in row.padding):
                return None
            pad = tuple(b for b, _ in row.padding)
        m = None
        if k == "conv":
            m = conv[n](cin, cout, _per_dim(sp["k"], n), _per_dim(sp["s"], n), pad,
                        _per_dim(sp["d"], n), sp["g"], sp["bias"], sp["pm"])
        elif k == "sepconv" and row.part == "depthwise":
            m = conv[n](cin, cout, _per_dim(sp["k"], n), _per_dim(sp["s"], n), pad,
                        _per_dim(sp["d"], n), cin, bool(sp["dbias"]), sp["pm"])
        elif k == "sepconv":
            m = conv[n](cin, cout, 1, bias=sp["bias"])
        elif k == "tconv":
            ks, ss, ds = (_per_dim(sp[x], n) for x in ("k", "s", "d"))
            op = tuple(o - ((i - 1) * s - 2 * p + d * (kk - 1) + 1) for i, o, s, p, d, kk in
                       zip(row.input_shape[2:], row.output_shape[2:], ss, pad, ds, ks))
            m = tconv[n](cin, cout, ks, ss, pad, op, sp["g"], sp["bias"], ds)
        elif k == "up" and isinstance(sp["size"], str):
            pass  # F.interpolate(x, size=NAME.shape[2:]): a function, below
        elif k == "up":
            size = scale = None
            if sp["size"] is not None:
                size = _per_dim(sp["size"], n)
            elif len(sp["scale"]) == 1:
                scale = float(sp["scale"][0])
            else:
                scale = tuple(float(s) for s in sp["scale"])
            m = nn.Upsample(size=size, scale_factor=scale, mode=sp["mode"],
                            align_corners=True if sp["align_corners"] else None)
        elif k == "maxpool":
            ks = _per_dim(sp["k"], n)
            m = maxp[n](ks, _per_dim(sp["s"], n) if sp["s"] else ks, pad,
                        _per_dim(sp["d"], n), ceil_mode=sp["ceil"])
        elif k == "avgpool":
            ks = _per_dim(sp["k"], n)
            m = avgp[n](ks, _per_dim(sp["s"], n) if sp["s"] else ks, pad,
                        ceil_mode=sp["ceil"], count_include_pad=sp["count_include_pad"])
        elif k in ("aavgpool", "gap"):
            m = aavg[n](1 if k == "gap" else _per_dim(sp["size"], n))
        elif k == "amaxpool":
            m = amax[n](_per_dim(sp["size"], n))
        elif k == "bn":
            m = bn[len(row.input_shape)](cin, affine=sp["affine"])
        elif k == "act":
            cls = acts[sp["name"]]
            m = cls(inplace=True) if sp["inplace"] and sp["name"] in inplace_ok else cls()
        elif k == "dropout":
            m = nn.Dropout(sp["p"])
        elif k == "flatten":
            m = nn.Flatten(1)
        elif k == "linear":
            m = nn.Linear(row.input_shape[-1], row.output_shape[-1], bias=sp["bias"])
        # the vocabulary of modern nets (SPEC §3b)
        elif k == "ln":
            m = nn.LayerNorm(row.input_shape[-sp["dims"]:], eps=sp["eps"],
                             elementwise_affine=sp["affine"], bias=sp["bias"])
        elif k == "ln2d":
            m = LayerNorm2d(cin, eps=sp["eps"], elementwise_affine=sp["affine"])
        elif k == "gn":
            m = nn.GroupNorm(sp["g"], cin, eps=sp["eps"], affine=sp["affine"])
        elif k == "instnorm":
            m = inorm[n](cin, eps=sp["eps"], momentum=sp["momentum"], affine=sp["affine"],
                         track_running_stats=sp["track"])
        elif k == "layerscale":
            m = LayerScale(cin, len(row.input_shape))
        elif k == "droppath":
            m = StochasticDepth(sp["p"], sp["mode"])
        elif k == "shuffle":
            m = nn.ChannelShuffle(sp["g"])
        elif k == "pixelshuffle":
            m = nn.PixelShuffle(sp["r"])
        elif k == "pixelunshuffle":
            m = nn.PixelUnshuffle(sp["r"])
        elif k == "softmax":
            m = nn.Softmax(sp["dim"])
        elif k == "logsoftmax":
            m = nn.LogSoftmax(sp["dim"])
        elif k in dropouts:
            m = dropouts[k](sp["p"])
        if m is not None:
            mods.append(m)
            plan.append(("module", len(mods) - 1))
        elif k == "pad":
            # F.pad takes the last dim first: (x before, x after, y before, y after, ...)
            amounts = tuple(v for pair in reversed(row.padding) for v in pair)
            mode = "constant" if sp["mode"] == "zeros" else sp["mode"]
            plan.append(("pad", (amounts, mode, sp["value"] if mode == "constant" else None)))
        elif k == "up":
            plan.append(("interpolate", sp))
        else:
            plan.append((k, sp))

    def center_crop(t, size):
        idx = [slice(None), slice(None)]
        for i, s in zip(t.shape[2:], size):
            off = (i - s) // 2
            idx.append(slice(off, off + s))
        return t[tuple(idx)]

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = mods
            self.plan = plan  # one entry per row: ("module", index) or a functional step
            self.shapes = []

        def forward(self, x):
            names = {"input": x}
            self.shapes = []
            for what, arg in plan:
                if what == "module":
                    x = self.layers[arg](x)
                elif what == "save":
                    names[arg["name"]] = x
                elif what == "from":
                    x = names[arg["name"]]
                elif what == "add":
                    for nm in arg["names"]:
                        x = x + names[nm]
                elif what == "mul":
                    for nm in arg["names"]:
                        x = x * names[nm]
                elif what == "concat":
                    parts = [x] + [center_crop(names[nm], x.shape[2:]) if arg["crop"]
                                   else names[nm] for nm in arg["names"]]
                    x = torch.cat(parts, 1)
                elif what == "crop":
                    x = center_crop(x, names[arg["name"]].shape[2:])
                elif what == "permute":
                    x = x.permute(*arg["dims"])
                elif what == "chunk":
                    x = x.chunk(arg["n"], dim=1)[arg["i"]]
                elif what == "pad":
                    amounts, mode, value = arg
                    x = F.pad(x, amounts, mode=mode, value=value)
                elif what == "interpolate":
                    x = F.interpolate(x, size=names[arg["size"]].shape[2:], mode=arg["mode"],
                                      align_corners=True if arg["align_corners"] else None)
                else:
                    raise AssertionError(what)
                self.shapes.append(tuple(x.shape))
            return x

    return Stack().eval()


@contextlib.contextmanager
def quiet():
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def run_tool(tool, model, shape):
    """The tool's total for the model on zeros of ``shape`` (its MAC count)."""
    x = torch.zeros(shape)
    with quiet(), torch.no_grad():
        if tool == "thop":
            import thop
            return thop.profile(model, inputs=(x,), verbose=False)[0]
        if tool == "ptflops":
            from ptflops import get_model_complexity_info
            got, _ = get_model_complexity_info(
                model, tuple(shape[1:]), as_strings=False, print_per_layer_stat=False,
                input_constructor=lambda _res: x)
            return got
        from fvcore.nn import FlopCountAnalysis
        f = FlopCountAnalysis(model, (x,))
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        f.tracer_warnings("none")
        return f.total()


def check_oracle(tool, tokens, shape):
    """None when the tool's total equals the sum of row_cost, else a message;
    'skip' when the stack has a row no module can express."""
    r = convcalc.analyze(tokens, shape)
    model = build_model(r)
    if model is None:
        return "skip"
    want = sum(row_cost(row, tool, shape[0]).macs for row in r.layers)
    got = run_tool(tool, model, shape)
    # ptflops adds F.interpolate's float numel·scale^d and truncates the total once;
    # convcalc floors each row: allow that rounding per such row
    slack = sum(1 for row in r.layers if row.kind == "up") if tool == "ptflops" else 0
    if abs(got - want) > slack:
        per_row = [(row.spec, row_cost(row, tool, shape[0]).macs) for row in r.layers]
        return f"{tool} {got} vs convcalc {want}: -i {'x'.join(map(str, shape))} " \
               f"{' '.join(tokens)}\n  rows: {per_row}"
    return None


def _need(tool):
    if not HAVE[tool]:
        pytest.skip(f"{tool} is not importable here")


HAND_CASES = [
    (["conv:6,k=3"], (1, 4, 8, 8)),
    (["conv:6,k=3,g=2,bias=false,s=2,p=1"], (2, 4, 9, 9)),
    (["conv:5,k=3,d=2,p=2,pm=reflect"], (1, 3, 12)),
    (["conv:4,k=3,p=1"], (1, 2, 5, 6, 7)),
    (["tconv:6,k=3,s=2,p=1,op=1"], (1, 4, 8, 8)),
    (["tconv:6,k=3,s=2,p=1,op=1,g=2"], (1, 4, 8, 8)),
    (["tconv:3,k=4,s=3,bias=false"], (2, 2, 5)),
    (["tconv:2,k=2,s=2"], (1, 2, 3, 4, 5)),
    (["sepconv:8,k=3,p=1"], (1, 4, 8, 8)),
    (["sepconv:8,k=3,mult=2,bias=false"], (2, 4, 8)),
    (["bn"], (1, 4, 8, 8)), (["bn:affine=false"], (3, 4)), (["bn"], (2, 3, 4, 4, 4)),
    (["maxpool:2"], (1, 4, 8, 8)), (["maxpool:3,s=2,p=1,ceil"], (2, 3, 9)),
    (["avgpool:2"], (1, 4, 8, 8)), (["avgpool:3,s=2,p=1,count_include_pad=false"],
                                    (1, 2, 7, 7, 7)),
    (["aavgpool:3"], (1, 4, 8, 8)), (["aavgpool:5x3"], (1, 4, 7, 8)),
    (["aavgpool:3"], (2, 4, 8)), (["aavgpool:2x3x5"], (1, 2, 7, 7, 9)),
    (["amaxpool:3"], (1, 4, 8, 8)), (["gap"], (1, 4, 8, 8)), (["gap"], (1, 4, 5, 6, 7)),
    (["up:2"], (1, 4, 8, 8)), (["up:2"], (1, 4, 8)), (["up:2"], (1, 4, 4, 4, 4)),
    (["up:2,mode=bilinear"], (1, 4, 8, 8)),
    (["up:2,mode=bilinear,align_corners"], (2, 4, 8, 8)),
    (["up:2,mode=bicubic"], (1, 4, 8, 8)), (["up:2,mode=linear"], (1, 4, 8)),
    (["up:2,mode=trilinear"], (1, 4, 4, 4, 4)), (["up:2,mode=nearest-exact"], (1, 4, 8, 8)),
    (["up:2,mode=area"], (1, 4, 8, 8)), (["up:2,mode=area"], (1, 4, 8)),
    (["up:0.5,mode=area"], (1, 4, 4, 4, 4)),
    (["up:size=12x10,mode=bilinear"], (1, 4, 8, 8)), (["up:1.5"], (1, 4, 7, 7)),
    (["up:scale=1.5x2"], (1, 4, 7, 7)), (["up:0.7,mode=bilinear"], (1, 2, 10, 10)),
    *[([f"act:{a}"], (1, 4, 8, 8)) for a in
      ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
       "hardswish", "hardsigmoid", "hardtanh", "sigmoid", "tanh", "softplus", "identity")],
    (["relu:inplace", "act:silu,inplace"], (2, 4, 8, 8)),
    (["dropout:0.3", "flatten", "linear:5"], (2, 4, 3, 3)),
    (["linear:5"], (2, 10)), (["linear:5,bias=false"], (1, 3, 10)),
    (["conv:8,k=3,p=1", "bn", "relu", "save:a", "conv:8,k=3,p=1", "bn", "add:a", "relu",
      "maxpool:2", "save:b", "up:2,mode=bilinear", "concat:a", "conv:4,k=3",
      "crop:b", "gap", "flatten", "linear:10"], (1, 3, 16, 16)),
    (["conv:8,k=3,p=1", "relu", "save:a", "conv:8,k=3,s=2,p=1", "relu",
      "tconv:8,k=2,s=2", "concat:a", "conv:8,k=3", "concat:a,crop", "act:relu6"], (2, 3, 12, 12)),
]

ZOO_CASES = [
    (["@resnet18"], (1, 3, 224, 224)),
    (["@mobilenet_v2"], (1, 3, 96, 96)),
    (["@unet_valid"], (1, 1, 188, 188)),
    (["@dcgan"], None),
    (["@mnist"], None),
]


def _zoo_shape(tokens, shape):
    if shape is not None:
        return shape
    from convcalc.language import default_input
    return default_input(tokens)


@pytest.mark.parametrize("tool", ["thop", "ptflops", "fvcore"])
def test_oracle_hand_cases(tool):
    _need(tool)
    bad = [m for tokens, shape in HAND_CASES
           if (m := check_oracle(tool, tokens, shape)) not in (None, "skip")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("tool", ["thop", "ptflops", "fvcore"])
@pytest.mark.parametrize("tokens,shape", ZOO_CASES, ids=[t[0] for t, _ in ZOO_CASES])
def test_oracle_zoo(tool, tokens, shape):
    _need(tool)
    shape = _zoo_shape(tokens, shape)
    assert shape is not None
    msg = check_oracle(tool, tokens, shape)
    assert msg != "skip", "a zoo stack should build from modules"
    assert msg is None, msg


@pytest.mark.parametrize("tool", ["thop", "ptflops", "fvcore"])
def test_oracle_corpus(tool):
    """The real tool on every buildable case of the corpus sample."""
    _need(tool)
    ran, bad = 0, []
    for case in corpus_sample():
        msg = check_oracle(tool, case["tokens"], tuple(case["input"]))
        if msg == "skip":
            continue
        ran += 1
        if msg is not None:
            bad.append(msg)
    assert ran >= 200, ran
    assert not bad, f"{len(bad)} of {ran} disagree:\n" + "\n".join(bad[:10])


def test_oracle_fvcore_batch_norm_training_mode():
    """The note's claim: fvcore charges 5 per element (4 without affine) when the
    model is in training mode; the convention assumes eval (2 / 1)."""
    _need("fvcore")
    from fvcore.nn import FlopCountAnalysis
    for affine, train, per in ((True, True, 5), (False, True, 4), (True, False, 2),
                               (False, False, 1)):
        m = torch.nn.BatchNorm2d(4, affine=affine).train(train)
        with quiet():
            f = FlopCountAnalysis(m, (torch.zeros(1, 4, 8, 8),))
            f.unsupported_ops_warnings(False)
            assert f.total() == per * 256, (affine, train)


def test_oracle_ptflops_default_backend_is_pytorch():
    """The convention follows the backend ptflops' code defaults to (0.7.5:
    'pytorch', although its README says aten) with count_functional on; the
    aten backend would count only conv/linear (with bias)."""
    _need("ptflops")
    import inspect

    from ptflops import get_model_complexity_info
    default = inspect.signature(get_model_complexity_info).parameters["backend"].default
    assert getattr(default, "value", default) == "pytorch"


def test_cli_count_option_recounts_rows_and_totals():
    """--count through the CLI: ConvTranspose2d(4,6,3,2,1,1) on 1x4x8x8 (the REFERENCE
    example) is 13,824 MACs by input size (torch, fvcore) and 1·6·16·16·4·9 = 55,296
    by output size (thop); ptflops adds the bias, 6·16·16 = 1,536."""
    import json as _json

    from click.testing import CliRunner

    from convcalc.cli import cli

    def macs(count):
        r = CliRunner().invoke(cli, ["shape", "-i", "1x4x8x8", "tconv:6,k=3,s=2,p=1,op=1",
                                     "--count", count, "--format", "json"])
        assert r.exit_code == 0, r.output
        doc = _json.loads(r.stdout)
        assert doc["totals"]["macs"] == doc["layers"][0]["macs"]
        return doc["layers"][0]["macs"], doc["totals"]["flops"], doc.get("count")
    assert macs("torch") == (13824, 27648, None)
    assert macs("fvcore") == (13824, 13824, "fvcore")
    assert macs("ptflops") == (13824 + 1536, 2 * (13824 + 1536), "ptflops")
    assert macs("thop") == (55296, 2 * 55296, "thop")
