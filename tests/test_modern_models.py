"""The modern built-in blocks (SPEC §3b): ``@se_block``, ``@convnext_block``,
``@shufflenet_unit``, ``@espcn``, and three torchvision stages written as
token lists here (EfficientNet-B0 stage 3, a ConvNeXt-T stage with its
downsample, a ShuffleNetV2 x1.0 stage).

Two kinds of test:

* torch-free: params, MACs, output shapes and token counts worked out by
  hand (the arithmetic is written next to each number, never copied from
  convcalc), through ``convcalc.analyze`` and through the CLI;
* torch oracle (skipped without torch): each block and stage built by hand
  from ``torch.nn`` modules, mirroring torchvision's definitions
  (``MBConv``/``SqueezeExcitation``, ``CNBlock``/``LayerNorm2d``/``Permute``/
  ``StochasticDepth``, ``shufflenetv2.InvertedResidual``/``channel_shuffle``;
  no torchvision import), run in eval mode under ``FlopCounterMode``.  Every
  leaf module and every functional step of the forward (chunk, cat, mul,
  add, the layer scale, the channel shuffle) is one event on a tape: kind,
  output shape, params and FLOPs; the tape must equal convcalc's rows (save
  and from excluded) one for one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import convcalc
from convcalc.cli import cli

MODELS_DIR = Path(__file__).resolve().parent.parent / "src" / "convcalc" / "models"

# ---------------------------------------------------------------------------
# Hand arithmetic
# ---------------------------------------------------------------------------

# @se_block, 1x16x56x56 (56*56 = 3136 positions), expand 6 -> 96, SE 16 // 4 = 4:
#   expand 1x1 (no bias) 16*96 = 1,536; bn 2*96 = 192
#   depthwise 3x3 (no bias) 96*9 = 864; bn 192
#   SE fc1 1x1 with bias 96*4 + 4 = 388; fc2 4*96 + 96 = 480
#   project 1x1 (no bias) 96*16 = 1,536; bn 2*16 = 32
# MACs: expand 3136*16*96; depthwise 3136*96*9; fc1 (1x1 spatial) 96*4;
#   fc2 4*96; project 3136*96*16
SE_PARAMS = 16 * 96 + 2 * 96 + 96 * 9 + 2 * 96 + (96 * 4 + 4) + (4 * 96 + 96) + 96 * 16 + 2 * 16
SE_MACS = 3136 * 16 * 96 + 3136 * 96 * 9 + 96 * 4 + 4 * 96 + 3136 * 96 * 16
# save:x, conv, bn, act, conv, bn, act, save:dw, gap, conv, act, conv, act,
# save:se, from:dw, mul:se, conv, bn, droppath, add:x
SE_TOKENS = 20

# @convnext_block, 1x96x56x56, dim 96:
#   depthwise 7x7 with bias 96*49 + 96 = 4,800; LayerNorm(96) 2*96 = 192
#   linear 96 -> 384: 96*384 + 384 = 37,248; linear 384 -> 96: 384*96 + 96 = 36,960
#   layer scale 96
# MACs: depthwise 3136*96*49; each linear on 3136 rows: 3136*96*384
CONVNEXT_PARAMS = (96 * 49 + 96) + 2 * 96 + (96 * 384 + 384) + (384 * 96 + 96) + 96
CONVNEXT_MACS = 3136 * 96 * 49 + 3136 * 96 * 384 + 3136 * 384 * 96
# save, conv, permute, ln, linear, gelu, linear, permute, layerscale, droppath, add
CONVNEXT_TOKENS = 11

# @shufflenet_unit, 1x116x28x28 (784 positions), branch2 on 58 channels, no biases:
#   1x1 58*58 = 3,364; bn 116; depthwise 3x3 58*9 = 522; bn 116; 1x1 3,364; bn 116
# MACs 784*58*58 + 784*58*9 + 784*58*58
SHUFFLE_PARAMS = 58 * 58 + 2 * 58 + 58 * 9 + 2 * 58 + 58 * 58 + 2 * 58
SHUFFLE_MACS = 784 * 58 * 58 + 784 * 58 * 9 + 784 * 58 * 58
# save, chunk, save, from, chunk, conv, bn, relu, conv, bn, conv, bn, relu,
# save, from, concat, shuffle
SHUFFLE_TOKENS = 17

# @espcn, 1x1x64x64 (4096 positions), r = 3, same-size padding:
#   conv 5x5 1 -> 64: 1*64*25 + 64 = 1,664; conv 3x3 64 -> 32: 64*32*9 + 32 = 18,464
#   conv 3x3 32 -> 9: 32*9*9 + 9 = 2,601
# MACs 4096*64*1*25 + 4096*32*64*9 + 4096*9*32*9; output 1x1x(64*3)x(64*3)
ESPCN_PARAMS = (1 * 64 * 25 + 64) + (64 * 32 * 9 + 32) + (32 * 9 * 9 + 9)
ESPCN_MACS = 4096 * 64 * 25 + 4096 * 32 * 64 * 9 + 4096 * 9 * 32 * 9
ESPCN_TOKENS = 6

# name -> (default input, output shape, tokens, params, MACs)
BLOCKS = {
    "se_block": ((1, 16, 56, 56), (1, 16, 56, 56), SE_TOKENS, SE_PARAMS, SE_MACS),
    "convnext_block": ((1, 96, 56, 56), (1, 96, 56, 56), CONVNEXT_TOKENS,
                       CONVNEXT_PARAMS, CONVNEXT_MACS),
    "shufflenet_unit": ((1, 116, 28, 28), (1, 116, 28, 28), SHUFFLE_TOKENS,
                        SHUFFLE_PARAMS, SHUFFLE_MACS),
    "espcn": ((1, 1, 64, 64), (1, 1, 192, 192), ESPCN_TOKENS, ESPCN_PARAMS, ESPCN_MACS),
}


def test_hand_arithmetic_constants():
    assert SE_PARAMS == 5_220 and SE_MACS == 12_344_064
    assert CONVNEXT_PARAMS == 79_296 and CONVNEXT_MACS == 245_962_752
    assert SHUFFLE_PARAMS == 7_598 and SHUFFLE_MACS == 5_684_000
    assert ESPCN_PARAMS == 22_729 and ESPCN_MACS == 92_667_904
    assert EFFNET_PARAMS == 46_640
    assert CONVNEXT_STAGE_PARAMS == 992_256
    assert SHUFFLE_STAGE_PARAMS == 22_594


# ---------------------------------------------------------------------------
# The stages, as token lists (written here, checked against torch below)
# ---------------------------------------------------------------------------

def _mbconv(cin, cout, k, stride, tag, expand=6):
    """torchvision MBConv (EfficientNet-B0): expand, depthwise, SE, project."""
    hidden = cin * expand
    squeeze = max(1, cin // 4)
    residual = stride == 1 and cin == cout
    toks = [f"save:r{tag}"] if residual else []
    toks += [f"conv:{hidden},k=1,bias=false", "bn", "act:silu",
             f"conv:{hidden},k={k},s={stride},p={(k - 1) // 2},g={hidden},bias=false", "bn",
             "act:silu",
             f"save:d{tag}", "gap", f"conv:{squeeze},k=1", "act:silu", f"conv:{hidden},k=1",
             "act:sigmoid", f"save:g{tag}", f"from:d{tag}", f"mul:g{tag}",
             f"conv:{cout},k=1,bias=false", "bn"]
    if residual:
        toks += ["droppath:0.0125", f"add:r{tag}"]
    return toks


# EfficientNet-B0 features.3 (expand 6, k=5, 24 -> 40, two blocks, the first
# with stride 2), at its real input 1x24x56x56.
EFFNET_STAGE = _mbconv(24, 40, 5, 2, "1") + _mbconv(40, 40, 5, 1, "2")
EFFNET_INPUT = (1, 24, 56, 56)
# params, block 1 (144 hidden, squeeze 24 // 4 = 6): 24*144 + 2*144 + 144*25 + 2*144
#   + (144*6 + 6) + (6*144 + 144) + 144*40 + 2*40
# block 2 (240 hidden, squeeze 40 // 4 = 10): 40*240 + 2*240 + 240*25 + 2*240
#   + (240*10 + 10) + (10*240 + 240) + 240*40 + 2*40
EFFNET_PARAMS = (24 * 144 + 2 * 144 + 144 * 25 + 2 * 144 + (144 * 6 + 6) + (6 * 144 + 144)
                 + 144 * 40 + 2 * 40
                 + 40 * 240 + 2 * 240 + 240 * 25 + 2 * 240 + (240 * 10 + 10) + (10 * 240 + 240)
                 + 240 * 40 + 2 * 40)
# MACs: block 1 expand at 56x56 (3136), the rest at 28x28 (784 = ceil(56/2)^2)
EFFNET_MACS = (3136 * 24 * 144 + 784 * 144 * 25 + 144 * 6 + 6 * 144 + 784 * 144 * 40
               + 784 * 40 * 240 + 784 * 240 * 25 + 240 * 10 + 10 * 240 + 784 * 240 * 40)


def _cnblock(dim, tag):
    return [f"save:b{tag}", f"conv:{dim},k=7,p=3,g={dim}", "permute:0,2,3,1", "ln:eps=1e-6",
            f"linear:{4 * dim}", "gelu", f"linear:{dim}", "permute:0,3,1,2", "layerscale",
            "droppath:0.1", f"add:b{tag}"]


# ConvNeXt-T features.2 (downsample LayerNorm2d(96) + conv 2x2 s2 96 -> 192)
# and features.3's first three CNBlocks of dim 192, at 1x96x56x56.
CONVNEXT_STAGE = ["ln2d", "conv:192,k=2,s=2"] + [t for i in range(3) for t in _cnblock(192, i)]
CONVNEXT_INPUT = (1, 96, 56, 56)
# ln2d 2*96; conv 96*192*4 + 192; per block 192*49 + 192 + 2*192 + (192*768 + 768)
#   + (768*192 + 192) + 192
CONVNEXT_STAGE_PARAMS = (2 * 96 + 96 * 192 * 4 + 192
                         + 3 * (192 * 49 + 192 + 2 * 192 + (192 * 768 + 768)
                                + (768 * 192 + 192) + 192))
# MACs: conv 784*192*96*4; per block 784*192*49 + 784*192*768 + 784*768*192
CONVNEXT_STAGE_MACS = (784 * 192 * 96 * 4
                       + 3 * (784 * 192 * 49 + 784 * 192 * 768 + 784 * 768 * 192))


def _shuffle_unit(cin, cout, stride, tag):
    half = cout // 2
    if stride == 1:
        toks = [f"save:x{tag}", "chunk:2,i=0", f"save:a{tag}", f"from:x{tag}", "chunk:2,i=1"]
    else:  # branch1 on the whole input, then branch2 from it too
        toks = [f"save:x{tag}", f"conv:{cin},k=3,s=2,p=1,g={cin},bias=false", "bn",
                f"conv:{half},k=1,bias=false", "bn", "relu", f"save:a{tag}", f"from:x{tag}"]
    toks += [f"conv:{half},k=1,bias=false", "bn", "relu",
             f"conv:{half},k=3,s={stride},p=1,g={half},bias=false", "bn",
             f"conv:{half},k=1,bias=false", "bn", "relu",
             f"save:b{tag}", f"from:a{tag}", f"concat:b{tag}", "shuffle:2"]
    return toks


# ShuffleNetV2 x1.0 stage 2 (24 -> 116): one stride-2 unit with both
# branches, then two stride-1 units, at 1x24x56x56.
SHUFFLE_STAGE = (_shuffle_unit(24, 116, 2, "0") + _shuffle_unit(116, 116, 1, "1")
                 + _shuffle_unit(116, 116, 1, "2"))
SHUFFLE_INPUT = (1, 24, 56, 56)
# stride-2 unit: branch1 24*9 + 2*24 + 24*58 + 2*58; branch2 24*58 + 2*58 + 58*9
#   + 2*58 + 58*58 + 2*58; each stride-1 unit as @shufflenet_unit
SHUFFLE_STAGE_PARAMS = (24 * 9 + 2 * 24 + 24 * 58 + 2 * 58
                        + 24 * 58 + 2 * 58 + 58 * 9 + 2 * 58 + 58 * 58 + 2 * 58
                        + 2 * SHUFFLE_PARAMS)
# MACs: branch1 784*24*9 + 784*24*58; branch2 3136*24*58 (1x1 before the
#   stride) + 784*58*9 + 784*58*58; two stride-1 units
SHUFFLE_STAGE_MACS = (784 * 24 * 9 + 784 * 24 * 58 + 3136 * 24 * 58 + 784 * 58 * 9
                      + 784 * 58 * 58 + 2 * SHUFFLE_MACS)

STAGES = {
    # name: (tokens, input, output, params, MACs)
    "efficientnet_b0_stage3": (EFFNET_STAGE, EFFNET_INPUT, (1, 40, 28, 28),
                               EFFNET_PARAMS, EFFNET_MACS),
    "convnext_t_stage2": (CONVNEXT_STAGE, CONVNEXT_INPUT, (1, 192, 28, 28),
                          CONVNEXT_STAGE_PARAMS, CONVNEXT_STAGE_MACS),
    "shufflenet_v2_stage2": (SHUFFLE_STAGE, SHUFFLE_INPUT, (1, 116, 28, 28),
                             SHUFFLE_STAGE_PARAMS, SHUFFLE_STAGE_MACS),
}


# ---------------------------------------------------------------------------
# The files themselves
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_stack_file_header(name):
    lines = (MODELS_DIR / f"{name}.stack").read_text().splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 4, "first line: a description"
    m = re.fullmatch(r"#\s*input:\s*(\S+)", lines[1])
    assert m, "second line: '# input: SHAPE'"
    assert tuple(int(n) for n in m.group(1).split("x")) == BLOCKS[name][0]
    tokens = [t for line in lines for t in line.split("#")[0].split()]
    assert len(tokens) == BLOCKS[name][2]


# ---------------------------------------------------------------------------
# Torch-free: analyze
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_totals(name):
    inp, out, ntok, params, macs = BLOCKS[name]
    r = convcalc.analyze([f"@{name}"], inp)
    assert tuple(r.output_shape) == out
    assert len(r.layers) == ntok
    assert r.totals.params == params
    assert r.totals.macs == macs
    assert r.totals.flops == 2 * macs


def _shapes(r, kind):
    return [tuple(row.output_shape) for row in r.layers if row.kind == kind]


def test_se_block_rows():
    r = convcalc.analyze(["@se_block"], (1, 16, 56, 56))
    # the squeeze: gap 1x96x1x1, fc1 1x4x1x1, fc2 1x96x1x1; the gate broadcasts
    assert _shapes(r, "gap") == [(1, 96, 1, 1)]
    assert _shapes(r, "conv") == [(1, 96, 56, 56), (1, 96, 56, 56), (1, 4, 1, 1),
                                  (1, 96, 1, 1), (1, 16, 56, 56)]
    assert [row.params for row in r.layers if row.kind == "conv"] == \
           [16 * 96, 96 * 9, 96 * 4 + 4, 4 * 96 + 96, 96 * 16]
    assert [row.macs for row in r.layers if row.kind == "conv"] == \
           [3136 * 16 * 96, 3136 * 96 * 9, 96 * 4, 4 * 96, 3136 * 96 * 16]
    assert _shapes(r, "mul") == [(1, 96, 56, 56)]
    assert _shapes(r, "add") == [(1, 16, 56, 56)]
    # other batch and odd sizes: same params, MACs scale with positions
    r2 = convcalc.analyze(["@se_block"], (2, 16, 31, 45))
    assert r2.totals.params == SE_PARAMS
    assert r2.totals.macs == 2 * (31 * 45 * (16 * 96 + 96 * 9 + 96 * 16) + 96 * 4 + 4 * 96)
    assert tuple(r2.output_shape) == (2, 16, 31, 45)


def test_convnext_block_rows():
    r = convcalc.analyze(["@convnext_block"], (1, 96, 56, 56))
    assert _shapes(r, "permute") == [(1, 56, 56, 96), (1, 96, 56, 56)]
    assert _shapes(r, "linear") == [(1, 56, 56, 384), (1, 56, 56, 96)]
    ln = [row for row in r.layers if row.spec.startswith("ln")]
    assert len(ln) == 1 and ln[0].params == 2 * 96
    assert tuple(ln[0].output_shape) == (1, 56, 56, 96)
    ls = [row for row in r.layers if row.spec == "layerscale"]
    assert len(ls) == 1 and ls[0].params == 96 and ls[0].macs == 0


def test_shufflenet_unit_rows():
    r = convcalc.analyze(["@shufflenet_unit"], (1, 116, 28, 28))
    assert _shapes(r, "chunk") == [(1, 58, 28, 28)] * 2
    assert _shapes(r, "concat") == [(1, 116, 28, 28)]
    assert _shapes(r, "shuffle") == [(1, 116, 28, 28)]


def test_espcn_rows():
    r = convcalc.analyze(["@espcn"], (1, 1, 64, 64))
    assert _shapes(r, "conv") == [(1, 64, 64, 64), (1, 32, 64, 64), (1, 9, 64, 64)]
    assert _shapes(r, "pixelshuffle") == [(1, 1, 192, 192)]
    # any size: H x W -> 3H x 3W
    assert tuple(convcalc.analyze(["@espcn"], (2, 1, 17, 23)).output_shape) == (2, 1, 51, 69)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_totals(name):
    tokens, inp, out, params, macs = STAGES[name]
    r = convcalc.analyze(tokens, inp)
    assert tuple(r.output_shape) == out
    assert r.totals.params == params
    assert r.totals.macs == macs


# ---------------------------------------------------------------------------
# Torch-free: the command line
# ---------------------------------------------------------------------------

def _cli(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr, r.exception)
    return r.stdout


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_cli_shape(name):
    inp, out, ntok, params, macs = BLOCKS[name]
    doc = json.loads(_cli("shape", f"@{name}", "--format", "json"))  # default input
    assert doc["input_shape"] == list(inp)
    assert doc["output_shape"] == list(out)
    assert len(doc["layers"]) == ntok
    assert doc["totals"]["params"] == params
    assert doc["totals"]["macs"] == macs
    assert doc["totals"]["flops"] == 2 * macs
    assert sum(layer["params"] for layer in doc["layers"]) == params
    # explicit -i equal to the default gives the same document
    assert json.loads(_cli("shape", "-i", "x".join(map(str, inp)), f"@{name}",
                           "--format", "json")) == doc
    table = _cli("shape", f"@{name}")
    assert "x".join(map(str, out)) in table
    assert f"{params:,}" in table


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_cli_rf_runs(name):
    _cli("rf", f"@{name}")
    _cli("rf", f"@{name}", "--format", "json")


# rf --at by hand:
#   @se_block at (28, 28): the SE gate averages all of 56x56 (exact region the
#     whole input, mixed at the mul, token 16); through the position-keeping
#     path only the depthwise 3x3 p=1 spreads: 27..29 (the 1x1 convs do not)
#   @convnext_block at (28, 28): depthwise 7x7 p=3: 25..31; the rest is per
#     position (LayerNorm over channels after the permute, linears on C)
#   @shufflenet_unit at (14, 14): depthwise 3x3 p=1 on branch 2: 13..15
#   @espcn at (96, 96): pixelshuffle:3 reads 96 // 3 = 32; the convs 5x5 p=2,
#     3x3 p=1, 3x3 p=1 reach 32 - 2 - 1 - 1 = 28 to 32 + 4 = 36; field 5 + 2 + 2 = 9
RF_AT = {
    "se_block": ((28, 28), [[0, 55], [0, 55]], [[27, 29], [27, 29]]),
    "convnext_block": ((28, 28), [[25, 31], [25, 31]], None),
    "shufflenet_unit": ((14, 14), [[13, 15], [13, 15]], None),
    "espcn": ((96, 96), [[28, 36], [28, 36]], None),
}
RF_SIZE = {"se_block": None, "convnext_block": [7, 7], "shufflenet_unit": [3, 3],
           "espcn": [9, 9]}


@pytest.mark.parametrize("name", sorted(RF_AT))
def test_cli_rf_at(name):
    at, region, local = RF_AT[name]
    doc = json.loads(_cli("rf", f"@{name}", "--at", ",".join(map(str, at)), "--format", "json"))
    assert doc["region"] == region
    if local is None:
        assert "mixed_by" not in doc
    else:
        assert doc["local_region"] == local
        # the SE gate: the mul (token 16) after the gap (token 9) mixes
        assert "layer 16 (mul:se)" in doc["mixed_by"] or "layer 9 (gap)" in doc["mixed_by"], \
            doc["mixed_by"]
    rf = json.loads(_cli("rf", f"@{name}", "--format", "json"))
    if RF_SIZE[name] is None:
        assert rf["receptive_field"] is None
        assert rf["local_receptive_field"]["size"] == [3, 3]
    else:
        assert rf["receptive_field"]["size"] == RF_SIZE[name]


def test_cli_models_lists_blocks():
    listed = {m["name"]: m for m in json.loads(_cli("models", "--format", "json"))}
    for name, (inp, _, ntok, params, macs) in BLOCKS.items():
        m = listed[name]
        assert m["input"] in (list(inp), "x".join(map(str, inp)))
        assert m["layers"] == ntok
        assert m["params"] == params
        assert m["macs"] == macs
        assert m["description"]


# ---------------------------------------------------------------------------
# Torch oracle: the blocks by hand, mirroring torchvision
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


class Tape:
    """Events in forward order: (kind, output shape, params, cumulative FLOPs)."""

    def __init__(self):
        self.events = []
        self.counter = None

    def note(self, kind, out, params=0):
        self.events.append((kind, tuple(out.shape), params, self.counter.get_total_flops()))
        return out

    def rows(self):
        out, before = [], 0
        for kind, shape, params, total in self.events:
            out.append((kind, shape, params, total - before))
            before = total
        return out


def _nets(torch, tape: Tape):
    nn = torch.nn
    F = nn.functional

    class Permute(nn.Module):  # torchvision.ops.misc.Permute
        def __init__(self, dims):
            super().__init__()
            self.dims = dims

        def forward(self, x):
            return torch.permute(x, self.dims)

    class StochasticDepth(nn.Module):  # torchvision.ops.StochasticDepth (eval: identity)
        def __init__(self, p, mode):
            super().__init__()
            self.p, self.mode = p, mode

        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
            noise = x.new_empty(size).bernoulli_(1 - self.p)
            return x * noise / (1 - self.p)

    class LayerNorm2d(nn.LayerNorm):  # torchvision.models.convnext.LayerNorm2d
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    def conv_norm_act(cin, cout, k, stride=1, groups=1, act=nn.SiLU):  # Conv2dNormActivation
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act(inplace=True))
        return nn.Sequential(*layers)

    class SqueezeExcitation(nn.Module):  # torchvision.ops.SqueezeExcitation
        def __init__(self, input_channels, squeeze_channels):
            super().__init__()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
            self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
            self.activation = nn.SiLU(inplace=True)
            self.scale_activation = nn.Sigmoid()

        def forward(self, x):
            scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
            return tape.note("mul", scale * x)

    class MBConv(nn.Module):  # torchvision.models.efficientnet.MBConv
        def __init__(self, cin, cout, k, stride, expand, sd_prob):
            super().__init__()
            self.use_res_connect = stride == 1 and cin == cout
            hidden = cin * expand
            layers = []
            if hidden != cin:
                layers.append(conv_norm_act(cin, hidden, 1))
            layers += [conv_norm_act(hidden, hidden, k, stride, groups=hidden),
                       SqueezeExcitation(hidden, max(1, cin // 4)),
                       conv_norm_act(hidden, cout, 1, act=None)]
            self.block = nn.Sequential(*layers)
            self.stochastic_depth = StochasticDepth(sd_prob, "row")

        def forward(self, x):
            result = self.block(x)
            if self.use_res_connect:
                result = self.stochastic_depth(result)
                result = tape.note("add", result + x)
            return result

    class CNBlock(nn.Module):  # torchvision.models.convnext.CNBlock
        def __init__(self, dim, layer_scale=1e-6, sd_prob=0.1):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
                Permute([0, 2, 3, 1]),
                nn.LayerNorm(dim, eps=1e-6),
                nn.Linear(dim, 4 * dim, bias=True),
                nn.GELU(),
                nn.Linear(4 * dim, dim, bias=True),
                Permute([0, 3, 1, 2]))
            self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)
            self.stochastic_depth = StochasticDepth(sd_prob, "row")

        def forward(self, x):
            result = tape.note("layerscale", self.layer_scale * self.block(x),
                               self.layer_scale.numel())
            result = self.stochastic_depth(result)
            return tape.note("add", result + x)

    def channel_shuffle(x, groups):  # torchvision.models.shufflenetv2.channel_shuffle
        n, c, h, w = x.size()
        x = x.view(n, groups, c // groups, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        return tape.note("shuffle", x.view(n, c, h, w))

    class InvertedResidual(nn.Module):  # torchvision.models.shufflenetv2.InvertedResidual
        def __init__(self, inp, oup, stride):
            super().__init__()
            self.stride = stride
            bf = oup // 2
            if stride > 1:
                self.branch1 = nn.Sequential(
                    nn.Conv2d(inp, inp, 3, stride, 1, bias=False, groups=inp),
                    nn.BatchNorm2d(inp),
                    nn.Conv2d(inp, bf, 1, 1, 0, bias=False), nn.BatchNorm2d(bf),
                    nn.ReLU(inplace=True))
            else:
                self.branch1 = nn.Sequential()
            self.branch2 = nn.Sequential(
                nn.Conv2d(inp if stride > 1 else bf, bf, 1, 1, 0, bias=False),
                nn.BatchNorm2d(bf), nn.ReLU(inplace=True),
                nn.Conv2d(bf, bf, 3, stride, 1, bias=False, groups=bf), nn.BatchNorm2d(bf),
                nn.Conv2d(bf, bf, 1, 1, 0, bias=False), nn.BatchNorm2d(bf),
                nn.ReLU(inplace=True))

        def forward(self, x):
            if self.stride == 1:
                x1, x2 = x.chunk(2, dim=1)
                tape.note("chunk", x1)
                tape.note("chunk", x2)
                out = torch.cat((x1, self.branch2(x2)), dim=1)
            else:
                out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
            tape.note("concat", out)
            return channel_shuffle(out, 2)

    class ESPCN(nn.Module):
        def __init__(self, r=3, channels=1):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(channels, 64, 5, padding=2), nn.Tanh(),
                nn.Conv2d(64, 32, 3, padding=1), nn.Tanh(),
                nn.Conv2d(32, r * r * channels, 3, padding=1), nn.PixelShuffle(r))

        def forward(self, x):
            return self.body(x)

    def convnext_stage():
        return nn.Sequential(nn.Sequential(LayerNorm2d(96, eps=1e-6),
                                           nn.Conv2d(96, 192, kernel_size=2, stride=2)),
                             *[CNBlock(192) for _ in range(3)])

    leaf = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.ReLU: "act", nn.SiLU: "act",
            nn.GELU: "act", nn.Sigmoid: "act", nn.Tanh: "act", nn.AdaptiveAvgPool2d: "gap",
            nn.Linear: "linear", nn.LayerNorm: "ln", LayerNorm2d: "ln2d", Permute: "permute",
            StochasticDepth: "droppath", nn.PixelShuffle: "pixelshuffle"}
    nets = {
        "se_block": lambda: MBConv(16, 16, 3, 1, 6, 0.2),
        "convnext_block": lambda: CNBlock(96),
        "shufflenet_unit": lambda: InvertedResidual(116, 116, 1),
        "espcn": lambda: ESPCN(3, 1),
        "efficientnet_b0_stage3": lambda: nn.Sequential(MBConv(24, 40, 5, 2, 6, 0.0125),
                                                        MBConv(40, 40, 5, 1, 6, 0.0125)),
        "convnext_t_stage2": convnext_stage,
        "shufflenet_v2_stage2": lambda: nn.Sequential(InvertedResidual(24, 116, 2),
                                                      InvertedResidual(116, 116, 1),
                                                      InvertedResidual(116, 116, 1)),
    }
    return nets, leaf


# convcalc's canonical kind for each event kind (aliases tolerated)
KIND_ALIASES = {"ln": {"ln", "layernorm"}, "droppath": {"droppath", "stochastic_depth"},
                "concat": {"concat", "cat"}, "gap": {"gap", "aavgpool"}}


def _hook(tape, kind):
    def post(module, args, out):
        tape.note(kind, out, sum(p.numel() for p in module.parameters()))
    return post


def _torch_run(torch, name, shape):
    """(tape rows, total params, total FLOPs, output shape) of the hand-built net."""
    from torch.utils.flop_counter import FlopCounterMode

    tape = Tape()
    nets, leaf = _nets(torch, tape)
    torch.manual_seed(0)
    model = nets[name]().eval()
    for m in model.modules():
        kind = leaf.get(type(m))
        if kind is not None:
            m.register_forward_hook(_hook(tape, kind))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        tape.counter = fc
        out = model(torch.randn(shape))
    params = sum(p.numel() for p in model.parameters())
    return tape.rows(), params, fc.get_total_flops(), tuple(out.shape)


def _compare(torch, name, tokens, shape):
    rows, params, flops, out_shape = _torch_run(torch, name, shape)
    r = convcalc.analyze(tokens, shape)
    mine = [(row.kind, tuple(row.output_shape), row.params, row.flops, row.spec)
            for row in r.layers if row.kind not in ("save", "from")]
    assert len(mine) == len(rows), (len(mine), len(rows), [m[4] for m in mine],
                                    [t[0] for t in rows])
    bad = [f"#{i} {m[4]}: convcalc {m[:4]} vs torch {t}"
           for i, (m, t) in enumerate(zip(mine, rows), 1)
           if m[0] not in KIND_ALIASES.get(t[0], {t[0]}) or m[1:4] != t[1:]]
    assert not bad, "\n".join(bad[:15])
    assert all(row.macs * 2 == row.flops for row in r.layers)
    assert r.totals.params == params
    assert r.totals.flops == flops
    assert tuple(r.output_shape) == out_shape
    return params, flops


BLOCK_CASES = [(name, BLOCKS[name][0]) for name in sorted(BLOCKS)] + [
    ("se_block", (2, 16, 31, 45)),
    ("convnext_block", (1, 96, 13, 17)),
    ("shufflenet_unit", (2, 116, 9, 14)),
    ("espcn", (1, 1, 17, 23)),
]


@pytest.mark.parametrize("name,shape", BLOCK_CASES,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in BLOCK_CASES])
def test_block_against_torch(torch, name, shape):
    params, flops = _compare(torch, name, [f"@{name}"], shape)
    if shape == BLOCKS[name][0]:  # torch agrees with the hand arithmetic too
        assert params == BLOCKS[name][3]
        assert flops == 2 * BLOCKS[name][4]


STAGE_CASES = [(name, STAGES[name][1]) for name in sorted(STAGES)] + [
    ("efficientnet_b0_stage3", (2, 24, 37, 50)),   # odd: 37 -> 19 with k=5, s=2, p=2
    ("convnext_t_stage2", (1, 96, 18, 22)),
    ("shufflenet_v2_stage2", (1, 24, 29, 30)),     # 29 -> 15
]


@pytest.mark.parametrize("name,shape", STAGE_CASES,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in STAGE_CASES])
def test_stage_against_torch(torch, name, shape):
    tokens, inp, out, hand_params, hand_macs = STAGES[name]
    params, flops = _compare(torch, name, tokens, shape)
    assert params == hand_params
    if shape == inp:
        assert flops == 2 * hand_macs
