"""``--count`` for the SPEC §3b kinds (norms, softmax, permute, mul, pad, …).

The same three kinds of test as ``tests/test_conventions.py`` (whose model
builder, tool runner and oracle check are reused here):

* hand arithmetic from the tools' source rules, the numbers worked out in the
  comments (the rules and their files and lines are in the comments of
  ``src/convcalc/conventions.py``);
* oracles: thop, ptflops and fvcore run on a torch model built from the rows
  (``torch.nn`` modules; ``x * y``, ``x.permute``, ``x.chunk``, ``F.pad`` and
  ``F.interpolate`` for the functional rows; torchvision's ``LayerNorm2d`` and
  ``StochasticDepth`` as their source writes them), totals compared;
* the same models run forward in PyTorch: every row's output shape, params
  and buffers as convcalc computes them.

Most numbers use a 2x4x6x6 input (288 elements, 144 per sample), so that
ptflops' division of its module hooks by the batch shows.
"""
from __future__ import annotations

import pytest
from test_conventions import HAVE, build_model, check_oracle, quiet, run_tool, torch

import convcalc
from convcalc.conventions import (CONVENTIONS, describe, markdown_table, recount, row_cost,
                                  total_cost)
from convcalc.language import default_input

S = (2, 4, 6, 6)  # 288 elements


def rows(tokens, shape):
    return convcalc.analyze(tokens, shape).layers


def row_macs(token, shape=S):
    """{convention: MACs} of a one-token stack."""
    (row,) = rows([token], shape)
    return {c: row_cost(row, c).macs for c in CONVENTIONS}


def notes(token, shape=S):
    (row,) = rows([token], shape)
    return {c: row_cost(row, c).note for c in CONVENTIONS}


# ---------------------------------------------------------------------------
# Hand arithmetic
# ---------------------------------------------------------------------------

def test_layer_norm():
    # nn.LayerNorm(6) on 2x4x6x6 (288 elements):
    # fvcore aten::layer_norm: 5 per element with a weight = 1,440 (4 without: 1,152)
    # ptflops bn_flops_counter_hook reads `affine`, which LayerNorm lacks: 1 per
    #   element, 288, ÷ batch 2 = 144, with or without affine
    # thop count_normalization: 2·288, ×2 for elementwise_affine = 1,152 (576)
    assert row_macs("ln") == {"torch": 0, "fvcore": 1440, "ptflops": 144, "thop": 1152}
    assert row_macs("ln:affine=false") == {"torch": 0, "fvcore": 1152, "ptflops": 144,
                                           "thop": 576}
    # bias=false keeps the weight (fvcore 5) and elementwise_affine (thop ×2)
    assert row_macs("ln:bias=false") == row_macs("ln")
    # over the last 2 or 3 dims: the same per-element rules
    assert row_macs("ln:2") == row_macs("ln:3") == row_macs("ln")
    assert row_macs("layernorm") == row_macs("ln")
    assert "affine" in notes("ln")["ptflops"]


def test_layer_norm_2d():
    # torchvision LayerNorm2d: F.layer_norm after a permute -> fvcore counts the op,
    # 5·288 = 1,440 (4·288 = 1,152 without affine); ptflops and thop look hooks up
    # by exact type and a LayerNorm subclass is not LayerNorm: 0
    assert row_macs("ln2d") == {"torch": 0, "fvcore": 1440, "ptflops": 0, "thop": 0}
    assert row_macs("ln2d:affine=false")["fvcore"] == 1152
    assert "subclass" in notes("ln2d")["thop"] and "subclass" in notes("ln2d")["ptflops"]


def test_channels_last_layer_norm():
    # ConvNeXt: permute:0,2,3,1 then ln over the 4 channels, 2x6x6x4 = 288 elements:
    # nn.LayerNorm(4), the same rules as any LayerNorm
    r = rows(["permute:0,2,3,1", "ln"], S)
    assert [row_cost(r[1], c).macs for c in CONVENTIONS] == [0, 1440, 144, 1152]


def test_group_norm():
    # nn.GroupNorm(2, 4) on 288 elements: fvcore aten::group_norm 5·288 = 1,440
    # (1,152 without affine); ptflops bn hook, GroupNorm has `affine`: 2·288 ÷ 2 = 288
    # (144 without); thop has no GroupNorm rule: 0
    assert row_macs("gn:2") == {"torch": 0, "fvcore": 1440, "ptflops": 288, "thop": 0}
    assert row_macs("gn:2,affine=false") == {"torch": 0, "fvcore": 1152, "ptflops": 144,
                                             "thop": 0}
    assert row_macs("groupnorm:4") == row_macs("gn:2")


def test_instance_norm():
    # nn.InstanceNorm2d(4) (affine=False by default): fvcore aten::instance_norm 4·288
    # = 1,152; ptflops 1·288 ÷ 2 = 144; thop 2·288 = 576.  affine: 1,440 / 288 / 1,152.
    # track_running_stats changes none of them.
    assert row_macs("instnorm") == {"torch": 0, "fvcore": 1152, "ptflops": 144, "thop": 576}
    want = {"torch": 0, "fvcore": 1440, "ptflops": 288, "thop": 1152}
    assert row_macs("instnorm:affine") == row_macs("instnorm:affine,track") == want
    assert row_macs("instnorm:track") == row_macs("instnorm")
    # 1-D, 2x4x6 = 48 elements: fvcore 5·48 = 240, ptflops 2·48/2 = 48, thop 4·48 = 192
    assert row_macs("instnorm:affine", (2, 4, 6)) == {"torch": 0, "fvcore": 240,
                                                      "ptflops": 48, "thop": 192}


def test_softmax():
    # nn.Softmax(1) on 2x4x6x6: f = 4 along dim 1, 288/4 = 72 rows.
    # thop count_softmax: 72·(4 exp + 3 add + 4 div) = 72·11 = 792
    # ptflops: nn.Softmax calls the patched F.softmax: 288, NOT divided by the batch
    # fvcore: aten::softmax has no handle: 0
    assert row_macs("softmax") == {"torch": 0, "fvcore": 0, "ptflops": 288, "thop": 792}
    # dim -1: f = 6, 48 rows: 48·17 = 816; dim 2 the same sizes
    assert row_macs("softmax:-1")["thop"] == 816 == row_macs("softmax:2")["thop"]
    # logits 2x10: one row of 10 per sample: thop 2·29 = 58
    assert row_macs("softmax", (2, 10)) == {"torch": 0, "fvcore": 0, "ptflops": 20,
                                            "thop": 58}
    # nn.LogSoftmax: no thop rule, F.log_softmax not patched, no fvcore handle
    assert set(row_macs("logsoftmax").values()) == set(row_macs("logsoftmax:-1").values()) \
        == {0}


@pytest.mark.parametrize("token", [
    "permute:0,2,3,1", "permute:0,1,-1,-2", "layerscale", "droppath", "droppath:0.1",
    "droppath:0,mode=batch", "shuffle:2", "chunk:2,i=0", "chunk:3,i=-1", "pixelshuffle:2",
    "pixelunshuffle:2", "pad:1", "pad:0:1x2", "pad:-1:2", "pad:2,mode=reflect",
    "pad:1,mode=replicate", "pad:1,mode=circular", "pad:1,value=0.5", "dropout2d",
    "dropout2d:0.1", "alphadropout", "featurealphadropout", "logsoftmax",
])
def test_data_movement_and_identity_kinds_cost_nothing(token):
    assert set(row_macs(token).values()) == {0}, token
    assert all(notes(token).values())


@pytest.mark.parametrize("token,shape", [("dropout1d", (2, 4, 6)),
                                          ("dropout3d", (2, 4, 3, 3, 3))])
def test_channel_dropouts_other_ranks(token, shape):
    assert set(row_macs(token, shape).values()) == {0}


def test_mul_and_broadcast_add():
    # the SE gate: x * g, g of 2x4x1x1 broadcast over 2x4x6x6; and x + g.  The tools
    # see `x * y` as aten::mul (fvcore: no handle), Tensor.__mul__ (ptflops patches
    # only torch.mul/Tensor.mul) and no module (thop): 0 everywhere
    r = convcalc.analyze(["save:a", "gap", "save:g", "from:a", "mul:g", "add:g", "mul:a+g"], S)
    for row in r.layers:
        for c in CONVENTIONS:
            if row.kind in ("mul", "add"):
                assert row_cost(row, c).macs == 0, (row.spec, c)
    mul = [row for row in r.layers if row.kind == "mul"][0]
    assert "x * y" in row_cost(mul, "ptflops").note
    assert "aten::mul" in row_cost(mul, "fvcore").note


def test_sepconv_depthwise_bias():
    # sepconv:8,k=3,p=1,dbias on 2x4x6x6: the depthwise Conv2d(4, 4, 3, groups=4) has a
    # bias, which ptflops counts: N·C·∏o = 2·4·36 = 288, ÷ 2 = 144 on top of the
    # depthwise 2·4·36·9 = 2,592 ÷ 2 = 1,296; the others never count bias
    dw, pw = rows(["sepconv:8,k=3,p=1,dbias"], S)
    assert row_cost(dw, "ptflops").macs == 1296 + 144
    assert row_cost(dw, "torch").macs == row_cost(dw, "thop").macs == 2592
    dw0, _ = rows(["sepconv:8,k=3,p=1"], S)
    assert row_cost(dw0, "ptflops").macs == 1296
    assert row_cost(pw, "ptflops").macs == row_cost(
        rows(["sepconv:8,k=3,p=1"], S)[1], "ptflops").macs


def test_linear_with_in_features_unchanged():
    assert row_macs("linear:5,in=6") == row_macs("linear:5")


def test_upsample_to_a_named_size():
    # F.interpolate(x, size=skip.shape[2:], mode="bilinear"): 2x4x3x3 -> 2x4x6x6 (288):
    # fvcore aten::upsample_bilinear2d 4·288 = 1,152; ptflops: no module, the patched
    # F.interpolate prod(size)·N·C = 36·2·4 = 288 (not ÷ N); thop sees no module: 0
    r = convcalc.analyze(["save:skip", "maxpool:2", "up:size=skip,mode=bilinear"], S)
    up = r.layers[-1]
    assert up.output_shape == S
    assert {c: row_cost(up, c).macs for c in CONVENTIONS} == {
        "torch": 0, "fvcore": 1152, "ptflops": 288, "thop": 0}
    assert "F.interpolate" in row_cost(up, "thop").note
    # area: F.interpolate calls the patched F.adaptive_avg_pool2d (input numel 72)
    r = convcalc.analyze(["save:skip", "maxpool:2", "up:size=skip,mode=area"], S)
    assert row_cost(r.layers[-1], "ptflops").macs == 288 + 72
    assert row_cost(r.layers[-1], "fvcore").macs == 72


def test_ptflops_divides_by_the_network_batch_after_a_permute():
    # permute:2,3,1,4,0 on 1x11x12x12x3 moves the batch (1) to the end: the ln row's
    # input is 12x12x11x3x1.  ptflops divides its module hooks by the batch the root
    # module saw (batch_counter_hook: len(model input) = 1), not by 12:
    # LayerNorm((3, 1)) on 4,752 elements, 1 per element -> 4,752
    shape = (1, 11, 12, 12, 3)
    a = convcalc.analyze(["permute:2,3,1,4,0", "ln:2"], shape)
    ln = a.layers[1]
    assert ln.input_shape == (12, 12, 11, 3, 1)
    assert row_cost(ln, "ptflops", batch=1).macs == 4752
    assert row_cost(ln, "ptflops").macs == 4752 // 12  # without the batch: the row's dim 0
    assert total_cost(a.layers, "ptflops").macs == 4752  # the first row's input is the network's
    assert recount(a, "ptflops").totals.macs == 4752


def test_descriptions_and_table_mention_the_new_kinds():
    assert "LayerNorm2d" in describe("ptflops") and "F.softmax" in describe("ptflops")
    assert "group norm" in describe("thop") and "5 per element" in describe("fvcore")
    md = markdown_table()
    for label in ("layer norm (ln)", "ln2d", "group norm", "instance norm", "softmax",
                  "pixel (un)shuffle", "droppath"):
        assert label in md, label


# ---------------------------------------------------------------------------
# Oracles: the real tools
# ---------------------------------------------------------------------------

MODERN_CASES = [
    # norms, each rank
    (["ln"], (2, 4, 6, 6)), (["ln:2"], (1, 4, 6, 6)), (["ln:3,affine=false"], (2, 4, 6, 6)),
    (["ln:bias=false"], (1, 3, 5)), (["ln"], (3, 10)), (["ln:2,eps=1e-6"], (1, 2, 3, 4, 5)),
    (["ln2d"], (2, 4, 6, 6)), (["ln2d:affine=false,eps=1e-5"], (1, 4, 5, 7)),
    (["ln2d"], (2, 4, 5)), (["ln2d"], (1, 2, 3, 4, 5)),
    (["gn:2"], (2, 4, 6, 6)), (["gn:4,affine=false"], (1, 4, 6)), (["gn:1"], (1, 4, 3, 3, 3)),
    (["instnorm"], (2, 4, 6, 6)), (["instnorm:affine"], (1, 4, 6)),
    (["instnorm:affine,track"], (2, 4, 3, 3, 3)), (["instnorm:track"], (1, 4, 6, 6)),
    # bn next to them (unchanged rules)
    (["conv:8,k=3,p=1", "bn", "gn:2", "instnorm:affine", "bn:affine=false", "ln2d",
      "softmax"], (2, 4, 6, 6)),
    # ConvNeXt's channels-last MLP
    (["conv:4,k=7,p=3,g=4", "permute:0,2,3,1", "ln:eps=1e-6", "linear:16", "gelu",
      "linear:4", "permute:0,3,1,2", "layerscale", "droppath:0.1"], (2, 4, 6, 6)),
    (["permute:0,1,-1,-2", "layerscale"], (1, 4, 5, 7)), (["layerscale"], (1, 4, 6)),
    (["permute:2,3,1,4,0", "ln:2"], (1, 11, 12, 12, 3)),
    (["permute:1,0,2", "ln", "gn:3", "permute:1,0,2"], (3, 4, 6)),
    # softmax
    (["softmax"], (2, 4, 6, 6)), (["softmax:-1"], (2, 4, 6, 6)), (["softmax:2"], (1, 3, 5, 7)),
    (["logsoftmax"], (2, 4, 6, 6)), (["flatten", "linear:10", "softmax"], (2, 4, 3, 3)),
    (["logsoftmax:-1"], (2, 10)), (["softmax:0"], (3, 4, 5)),
    # SE gate (mul with a broadcast tensor), broadcast add, mul of two names
    (["conv:8,k=3,p=1", "save:a", "gap", "conv:2,k=1", "relu", "conv:8,k=1", "sigmoid",
      "save:g", "from:a", "mul:g"], (2, 3, 8, 8)),
    (["save:a", "gap", "save:g", "from:a", "add:g", "mul:a+g"], (2, 4, 6, 6)),
    # stochastic depth, shuffles, chunks
    (["droppath"], (2, 4, 6, 6)), (["droppath:0.1,mode=batch"], (1, 4, 6)),
    (["droppath:0"], (1, 4, 6, 6)),
    (["conv:8,k=1,g=2", "shuffle:2", "conv:8,k=3,p=1,g=8"], (2, 8, 6, 6)),
    (["shuffle:4"], (1, 8, 5)),
    (["chunk:2,i=0"], (2, 8, 6, 6)), (["chunk:4,i=-1"], (1, 10, 5, 5)),
    (["chunk:3,i=2"], (1, 10, 5)),
    (["conv:16,k=3,p=1", "pixelshuffle:2"], (2, 4, 6, 6)),
    (["pixelunshuffle:2", "conv:4,k=1"], (1, 4, 6, 8)),
    # pads, every mode and rank
    (["pad:1"], (2, 4, 6, 6)), (["pad:0:1x2"], (1, 4, 6, 6)), (["pad:-1:2"], (2, 4, 6, 6)),
    (["pad:2,mode=reflect"], (1, 4, 6, 6)), (["pad:1:2,mode=replicate"], (1, 4, 6, 6)),
    (["pad:3,mode=circular"], (1, 4, 6, 6)), (["pad:1,value=0.5"], (1, 4, 6, 6)),
    (["pad:1x2x0"], (1, 2, 4, 4, 4)), (["pad:1,mode=reflect"], (1, 2, 5)),
    (["pad:1", "conv:4,k=3"], (2, 4, 6, 6)),
    # dropouts
    (["dropout1d"], (2, 4, 6)), (["dropout2d:0.1"], (2, 4, 6, 6)),
    (["dropout3d"], (1, 2, 3, 3, 3)), (["alphadropout"], (2, 4, 6, 6)),
    (["featurealphadropout"], (2, 4, 6, 6)),
    # smaller additions
    (["flatten", "linear:10,in=144"], (2, 4, 6, 6)),
    (["sepconv:8,k=3,p=1,dbias"], (2, 4, 6, 6)),
    (["sepconv:8,k=3,mult=2,dbias,bias=false"], (1, 4, 8)),
    (["save:skip", "conv:8,k=3,s=2,p=1", "up:size=skip,mode=bilinear"], (2, 4, 8, 8)),
    (["conv:4,k=3,s=2,p=1", "up:size=input"], (1, 3, 9, 9)),
    (["maxpool:2", "up:size=input,mode=area"], (1, 4, 8, 8)),
    (["save:skip", "conv:8,k=3,s=2,p=1", "tconv:4,k=3,s=2,p=1,size=skip"], (1, 4, 9, 9)),
    # PyTorch class names
    (["Conv2d:8,k=3", "BatchNorm2d", "ReLU", "GroupNorm:2", "LayerNorm2d", "Softmax",
      "ZeroPad2d:1", "ReflectionPad2d:1", "Dropout2d", "PixelShuffle:2"], (1, 4, 8, 8)),
]

MODERN_ZOO = ["@se_block", "@convnext_block", "@shufflenet_unit", "@espcn"]


def _need(tool):
    if not HAVE[tool]:
        pytest.skip(f"{tool} is not importable here")


@pytest.mark.parametrize("tool", ["thop", "ptflops", "fvcore"])
def test_oracle_modern_cases(tool):
    _need(tool)
    bad, skipped = [], []
    for tokens, shape in MODERN_CASES:
        msg = check_oracle(tool, tokens, shape)
        if msg == "skip":
            skipped.append(tokens)
        elif msg is not None:
            bad.append(msg)
    assert not skipped, skipped
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("tool", ["thop", "ptflops", "fvcore"])
@pytest.mark.parametrize("stack", MODERN_ZOO)
def test_oracle_modern_zoo(tool, stack):
    _need(tool)
    shape = default_input([stack])
    assert shape is not None
    msg = check_oracle(tool, [stack], shape)
    assert msg != "skip"
    assert msg is None, msg


def _tool_on(tool, module, shape):
    return run_tool(tool, module.eval(), shape)


@pytest.mark.parametrize("tool", ["thop", "ptflops", "fvcore"])
def test_oracle_other_twins_count_the_same(tool):
    """The rows' other PyTorch spellings: nn.*Pad2d modules for F.pad, ShuffleNet's
    view/transpose/view for nn.ChannelShuffle, torchvision's exact 4-D LayerNorm2d:
    each tool counts what convcalc's row says (0, or fvcore's layer norm)."""
    _need(tool)
    nn = torch.nn

    class ViewShuffle(nn.Module):  # torchvision/models/shufflenetv2.py channel_shuffle
        def forward(self, x):
            b, c, h, w = x.size()
            x = x.view(b, 2, c // 2, h, w)
            x = torch.transpose(x, 1, 2).contiguous()
            return x.view(b, -1, h, w)

    class TvLayerNorm2d(nn.LayerNorm):  # torchvision/models/convnext.py, verbatim logic
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                                         self.eps)
            return x.permute(0, 3, 1, 2)

    cases = [
        (nn.ZeroPad2d(1), "pad:1"), (nn.ConstantPad2d((1, 2, 0, 1), 0.5), "pad:0:1x1:2"),
        (nn.ReflectionPad2d(2), "pad:2,mode=reflect"),
        (nn.ReplicationPad2d(1), "pad:1,mode=replicate"),
        (nn.CircularPad2d(1), "pad:1,mode=circular"),
        (ViewShuffle(), "shuffle:2"), (TvLayerNorm2d(4, eps=1e-6), "ln2d"),
    ]
    bad = []
    for module, token in cases:
        (row,) = rows([token], S)
        with torch.no_grad():
            assert tuple(module(torch.zeros(S)).shape) == row.output_shape, token
        got, want = _tool_on(tool, module, S), row_cost(row, tool).macs
        if got != want:
            bad.append(f"{token}: {tool} {got} vs convcalc {want}")
    assert not bad, bad


def test_oracle_ptflops_counts_torch_mul_but_not_the_operator():
    """The convention's `mul` is `x * y`: ptflops patches torch.mul and Tensor.mul
    (counting its broadcast shape), not Tensor.__mul__."""
    _need("ptflops")
    nn = torch.nn

    class Star(nn.Module):
        def forward(self, x):
            return x * x.mean((2, 3), keepdim=True)

    class TorchMul(nn.Module):
        def forward(self, x):
            return torch.mul(x, x.mean((2, 3), keepdim=True))

    assert _tool_on("ptflops", Star(), S) == 0
    assert _tool_on("ptflops", TorchMul(), S) == 288  # 2x4x6x6, not ÷ N


def test_oracle_fvcore_norms_in_training_mode():
    """fvcore's layer/group/instance norm counts do not depend on the mode (only
    aten::batch_norm's does): 5 per element with a weight, 4 without."""
    _need("fvcore")
    from fvcore.nn import FlopCountAnalysis
    nn = torch.nn
    for m, per in ((nn.LayerNorm(6), 5), (nn.GroupNorm(2, 4, affine=False), 4),
                   (nn.InstanceNorm2d(4, affine=True), 5)):
        for train in (True, False):
            with quiet():
                f = FlopCountAnalysis(m.train(train), (torch.zeros(S),))
                f.unsupported_ops_warnings(False)
                assert f.total() == per * 288, (m, train)


# ---------------------------------------------------------------------------
# The same models in PyTorch: convcalc's shapes, params and buffers
# ---------------------------------------------------------------------------

def torch_disagreements(tokens, shape):
    """Rows whose output shape, params or buffers differ from the torch model's."""
    r = convcalc.analyze(tokens, shape)
    model = build_model(r)
    assert model is not None, tokens
    with torch.no_grad():
        model(torch.zeros(shape))
    bad = []
    for row, got, (what, arg) in zip(r.layers, model.shapes, model.plan):
        params = buffers = 0
        if what == "module":
            m = model.layers[arg]
            params = sum(p.numel() for p in m.parameters())
            buffers = sum(b.numel() for b in m.buffers())  # bn: 2C + 1, as torch counts
        if (got, params, buffers) != (row.output_shape, row.params, row.buffers):
            bad.append(f"{row.spec} on {row.input_shape}: torch {got}, {params} params, "
                       f"{buffers} buffers; convcalc {row.output_shape}, {row.params}, "
                       f"{row.buffers}")
    return bad


@pytest.mark.skipif(torch is None, reason="torch is not importable here")
@pytest.mark.parametrize("tokens,shape", MODERN_CASES + [([s], None) for s in MODERN_ZOO],
                         ids=[" ".join(t) for t, _ in MODERN_CASES] + MODERN_ZOO)
def test_rows_match_torch(tokens, shape):
    shape = shape or default_input(tokens)
    bad = torch_disagreements(tokens, shape)
    assert not bad, "\n".join(bad)

