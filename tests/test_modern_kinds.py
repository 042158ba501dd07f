"""The kinds of SPEC §3b through the language, the engine and the CLI.

Every expected value here is worked out by hand from the PyTorch definition
(written next to it); the PyTorch oracles are in test_conformance.py (the
golden corpus), test_modern_models.py and test_rf_modern_oracle.py.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import convcalc
from convcalc.analysis import region_at
from convcalc.cli import cli
from convcalc.errors import ShapeError, StackSyntaxError
from convcalc.language import parse_token


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows(tokens, shape):
    return convcalc.analyze(tokens, shape).layers


# ---------------------------------------------------------------------------
# the language
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, args", [
    ("permute:0,2,3,1", "permute", {"dims": (0, 2, 3, 1)}),
    ("permute:0,-1,1,2", "permute", {"dims": (0, -1, 1, 2)}),
    ("gn:8", "gn", {"g": 8, "affine": True}),
    ("groupnorm:groups=4", "gn", {"g": 4}),
    ("ln:2,bias=false", "ln", {"dims": 2, "bias": False, "affine": True}),
    ("layernorm", "ln", {"dims": 1}),
    ("chunk:2,i=-1", "chunk", {"n": 2, "i": -1}),
    ("pad:-1:2x1,mode=reflect", "pad", {"p": ((-1, 2), (1, 1)), "mode": "reflect"}),
    ("droppath:0.1", "droppath", {"p": 0.1, "mode": "row"}),
    ("stochastic_depth:0.2,mode=batch", "droppath", {"p": 0.2, "mode": "batch"}),
    ("softmax:-1", "softmax", {"dim": -1}),
    ("linear:10,in=7200", "linear", {"out": 10, "in": 7200}),
    ("sepconv:8,k=3,dbias", "sepconv", {"dbias": True}),
    ("tconv:8,k=3,s=2,size=skip", "tconv", {"size": "skip"}),
    ("up:size=input,mode=bilinear", "up", {"size": "input"}),
    ("Conv2d:8,k=3", "conv", {"out": 8, "k": (3,)}),
    ("conv2d:8,k=3", "conv", {"out": 8}),
    ("ReLU6", "act", {"name": "relu6"}),
    ("ZeroPad2d:1", "pad", {"mode": "zeros", "p": ((1, 1),)}),
    ("ReflectionPad1d:2", "pad", {"mode": "reflect"}),
    ("UpsamplingBilinear2d:2", "up", {"mode": "bilinear", "align_corners": True}),
    ("Dropout2d:0.1", "dropout2d", {"p": 0.1}),
    ("PixelShuffle:3", "pixelshuffle", {"r": 3}),
])
def test_tokens_parse(text, kind, args):
    spec = parse_token(text, 1)
    assert spec.kind == kind
    for k, v in args.items():
        assert spec[k] == v, k


@pytest.mark.parametrize("text, words", [
    ("gn", "g is required"),
    ("chunk:2", "i is required"),
    ("permute:0,2,,1", "empty argument"),
    ("pad:1,mode=reflect,value=1", "value= only goes with mode=zeros"),
    ("pixelshuffle:0", "at least 1"),
    ("droppath:1.5", "between 0 and 1"),
    ("ln:dims=0", "at least 1"),
    ("shuffle:2,k=3", "unknown key 'k'"),
    ("Conv4d:8,k=3", "unknown layer kind"),
])
def test_malformed_tokens_exit_2(text, words):
    with pytest.raises(StackSyntaxError) as e:
        convcalc.analyze([text], (1, 4, 8, 8))
    assert words in str(e.value) and "layer 1" in str(e.value)
    r = run("shape", "-i", "1x4x8x8", text)
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------------------
# shapes, params, buffers (by hand from the PyTorch definitions)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("tokens, shape, out, params, buffers", [
    # GroupNorm(2, 8): weight and bias of C
    (["gn:2"], (1, 8, 5, 5), (1, 8, 5, 5), 16, 0),
    (["gn:2,affine=false"], (1, 8, 5, 5), (1, 8, 5, 5), 0, 0),
    # LayerNorm(6) on the last dim, LayerNorm([5, 6]) on the last two
    (["ln"], (2, 3, 6), (2, 3, 6), 12, 0),
    (["ln:2"], (2, 3, 5, 6), (2, 3, 5, 6), 60, 0),
    (["ln:2,bias=false"], (2, 3, 5, 6), (2, 3, 5, 6), 30, 0),
    (["ln2d"], (1, 96, 7, 7), (1, 96, 7, 7), 192, 0),
    # InstanceNorm2d(8, affine=True, track_running_stats=True): 16 params, 2·8 + 1 buffers
    (["instnorm:affine,track"], (1, 8, 4, 4), (1, 8, 4, 4), 16, 17),
    (["instnorm"], (1, 8, 4, 4), (1, 8, 4, 4), 0, 0),
    (["permute:0,2,3,1"], (1, 8, 4, 5), (1, 4, 5, 8), 0, 0),
    (["permute:0,2,3,1", "linear:32"], (1, 8, 4, 5), (1, 4, 5, 32), 8 * 32 + 32, 0),
    (["layerscale"], (1, 96, 7, 7), (1, 96, 7, 7), 96, 0),
    (["shuffle:2"], (1, 116, 28, 28), (1, 116, 28, 28), 0, 0),
    # chunk sizes of torch: 10 in 4 -> 3, 3, 3, 1; 10 in 3 -> 4, 4, 2
    (["chunk:4,i=3"], (1, 10, 4, 4), (1, 1, 4, 4), 0, 0),
    (["chunk:3,i=-1"], (1, 10, 4, 4), (1, 2, 4, 4), 0, 0),
    (["pixelshuffle:3"], (1, 18, 5, 7), (1, 2, 15, 21), 0, 0),
    (["pixelunshuffle:2"], (1, 3, 8, 6), (1, 12, 4, 3), 0, 0),
    (["pad:1"], (1, 2, 4, 4), (1, 2, 6, 6), 0, 0),
    (["pad:-1:2x0:1"], (1, 2, 4, 4), (1, 2, 5, 5), 0, 0),
    (["pad:3,mode=reflect"], (1, 2, 4, 4), (1, 2, 10, 10), 0, 0),
    (["pad:4,mode=circular"], (1, 2, 4, 4), (1, 2, 12, 12), 0, 0),
    (["softmax"], (1, 10), (1, 10), 0, 0),
    (["dropout2d:0.2", "droppath:0.1", "alphadropout"], (1, 3, 4, 4), (1, 3, 4, 4), 0, 0),
    # sepconv with dbias: depthwise 8·1·9 + 8, pointwise 16·8 + 16
    (["sepconv:16,k=3,dbias"], (1, 8, 6, 6), (1, 16, 4, 4), 8 * 9 + 8 + 16 * 8 + 16, 0),
])
def test_shapes_params_buffers(tokens, shape, out, params, buffers):
    a = convcalc.analyze(tokens, shape)
    assert a.output_shape == out
    assert a.totals.params == params
    assert a.totals.buffers == buffers
    assert a.totals.macs == sum(r.macs for r in a.layers)


def test_broadcast_add_and_mul():
    # an SE gate: 1x16x1x1 times 1x16x8x8
    a = convcalc.analyze(["save:x", "gap", "save:g", "from:x", "mul:g"], (1, 16, 8, 8))
    assert a.output_shape == (1, 16, 8, 8)
    # the current tensor may be the small one: the output is the broadcast shape
    a = convcalc.analyze(["save:x", "gap", "add:x"], (2, 4, 3, 5))
    assert a.output_shape == (2, 4, 3, 5)
    with pytest.raises(ShapeError) as e:
        convcalc.analyze(["save:x", "conv:8,k=1", "mul:x"], (1, 4, 8, 8))
    assert "cannot broadcast" in str(e.value) and "1x8x8x8" in str(e.value) \
        and "1x4x8x8" in str(e.value)


@pytest.mark.parametrize("tokens, shape, words", [
    (["gn:3"], (1, 8, 4, 4), "not divisible by 3 groups"),
    (["chunk:4,i=3"], (1, 5, 4, 4), "i=3 does not exist"),  # 5 in 4: 2, 2, 1
    (["pixelshuffle:2"], (1, 6, 4, 4), "not divisible by r² = 4"),
    (["pixelshuffle:2"], (1, 8, 4), "2-D spatial"),
    (["pixelunshuffle:2"], (1, 2, 5, 4), "not divisible by r = 2"),
    (["pad:4,mode=reflect"], (1, 2, 4, 4), "smaller than the input size 4"),
    (["pad:5,mode=circular"], (1, 2, 4, 4), "wraps around more than once"),
    (["pad:-2:-2"], (1, 2, 4, 4), "leaves 0"),
    (["softmax:4"], (1, 2, 4, 4), "out of range"),
    (["linear:10,in=7"], (1, 8), "in=7 features"),
    (["permute:0,1,2"], (1, 2, 4, 4), "names 3 dims"),
    (["permute:0,1,1,2"], (1, 2, 4, 4), "repeats a dim"),
    (["instnorm"], (2, 3, 1, 1), "more than 1 position"),
    (["dropout1d"], (1, 2, 4, 4), "2-D or 3-D"),
])
def test_rejections_exit_3(tokens, shape, words):
    with pytest.raises(ShapeError) as e:
        convcalc.analyze(tokens, shape)
    assert words in str(e.value)


def test_rank_bound_class_names_exit_2():
    with pytest.raises(StackSyntaxError) as e:
        convcalc.analyze(["Conv2d:8,k=3"], (1, 1, 28))
    assert "Conv2d takes a 4-D input" in str(e.value) and "1x1x28" in str(e.value)
    assert convcalc.analyze(["BatchNorm1d"], (4, 8)).output_shape == (4, 8)
    assert convcalc.analyze(["BatchNorm1d"], (4, 8, 5)).output_shape == (4, 8, 5)
    r = run("shape", "-i", "1x3x8x8", "BatchNorm1d")
    assert r.exit_code == 2 and "BatchNorm1d takes a 2-D or 3-D input" in r.output


def test_size_names_resize_to_a_saved_tensor():
    # the segmentation heads: F.interpolate(x, size=input.shape[-2:])
    for n in (64, 97):
        a = convcalc.analyze(["conv:8,k=3,s=2,p=1", "conv:8,k=3,s=2,p=1",
                              "up:size=input,mode=bilinear"], (1, 3, n, n))
        assert a.output_shape == (1, 8, n, n)
    # tconv output_size=skip.shape: 15 -> (15−1)·2 − 2 + 3 = 29 or, with op 1, 30
    a = convcalc.analyze(["save:skip", "conv:4,k=3,s=2,p=1", "tconv:4,k=3,s=2,p=1,size=skip"],
                         (1, 4, 30, 30))
    assert a.output_shape == (1, 4, 30, 30)
    with pytest.raises(StackSyntaxError) as e:
        convcalc.analyze(["up:size=nosuch"], (1, 4, 8, 8))
    assert "no tensor is named 'nosuch'" in str(e.value)


# ---------------------------------------------------------------------------
# receptive fields as dependency sets
# ---------------------------------------------------------------------------

SE = ["conv:16,k=3,p=1", "save:x", "gap", "conv:4,k=1", "relu", "conv:16,k=1", "sigmoid",
      "save:se", "from:x", "mul:se", "conv:8,k=3,p=1"]


def test_se_gate_is_global_with_a_local_field():
    a = convcalc.analyze(SE, (1, 3, 32, 32))
    mul, last = a.layers[9], a.layers[10]
    assert mul.receptive_field is None and "layer 10 (mul:se)" in mul.mixed_by
    assert "layer 3 (gap)" in mul.mixed_by
    # the gated path: conv k=3 then conv k=3: r = 1 + 2 + 2 = 5, S = 1, P = 1 + 1 = 2
    assert mul.local_receptive_field.size == (3, 3)
    assert last.local_receptive_field.size == (5, 5)
    assert tuple(last.local_receptive_field.padding) == (2, 2)
    d = a.to_dict()
    assert d["receptive_field"] is None
    assert d["local_receptive_field"] == {"size": [5, 5], "stride": [1, 1], "padding": [2, 2]}
    assert "mul:se" in d["receptive_field_note"]
    row = d["layers"][10]
    assert row["receptive_field"] is None and row["local_receptive_field"]["size"] == [5, 5]


def test_rf_at_exact_and_local_regions():
    a = convcalc.analyze(SE, (1, 3, 32, 32))
    reg = region_at(a, (5, 5))
    assert reg.region == ((0, 31), (0, 31))  # every input position, through the gate
    assert reg.local_region == ((3, 7), (3, 7))  # two 3x3 convs around 5
    doc = json.loads(run("rf", "-i", "1x3x32x32", *SE, "--at", "5,5", "--format", "json").output)
    assert doc["region"] == [[0, 31], [0, 31]] and doc["local_region"] == [[3, 7], [3, 7]]
    assert "mul:se" in doc["mixed_by"]


def test_softmax_over_one_spatial_dim_mixes_only_that_dim():
    # NHWC after the permute: dim 2 is x; output (2, 9) reads every x at rows 1..3
    tokens = ["conv:4,k=3,p=1", "permute:0,2,3,1", "softmax:2"]
    a = convcalc.analyze(tokens, (1, 4, 10, 10))
    assert a.receptive_field is None and "along x" in a.mixed_by
    reg = region_at(a, (2, 9))
    assert reg.region == ((1, 3), (0, 9)) and reg.local_region == ((1, 3), (8, 9))


@pytest.mark.parametrize("tokens, local", [
    (["conv:8,k=3", "bn"], False),
    (["conv:8,k=3", "ln2d"], False),
    (["conv:8,k=3", "instnorm:track"], False),
    (["conv:8,k=3", "permute:0,2,3,1", "ln", "linear:16", "permute:0,3,1,2"], False),
    (["conv:8,k=3", "softmax"], False),
    (["conv:8,k=3", "gn:2"], True),
    (["conv:8,k=3", "instnorm"], True),
    (["conv:8,k=3", "ln:3"], True),
    (["conv:8,k=3", "softmax:-1"], True),
])
def test_which_layers_mix_positions(tokens, local):
    a = convcalc.analyze(tokens, (1, 4, 12, 12))
    if local:
        assert a.receptive_field is None and a.local_receptive_field.size == (3, 3)
    else:
        assert a.receptive_field.size == (3, 3) and a.mixed_by is None


def test_pixel_shuffle_pad_and_unshuffle_move_positions():
    # pixelshuffle:2 then conv k=3: output u reads shuffled u−1..u+1 = input ⌊(u−1)/2⌋..⌊(u+1)/2⌋
    a = convcalc.analyze(["pixelshuffle:2", "conv:1,k=3,p=1"], (1, 4, 8, 8))
    assert region_at(a, (4, 4)).region == ((1, 2), (1, 2))
    assert region_at(a, (5, 5)).region == ((2, 3), (2, 3))
    # pad 2 before: output 0 and 1 are border (zeros read nothing), 2 is input 0
    a = convcalc.analyze(["pad:2"], (1, 1, 6))
    assert region_at(a, (1,)).region is None and region_at(a, (2,)).region == ((0, 0),)
    # reflect: output 0 of pad 2 copies input 2
    a = convcalc.analyze(["pad:2,mode=reflect"], (1, 1, 6))
    assert region_at(a, (0,)).region == ((2, 2),)
    # unshuffle 2: output o reads 2o, 2o+1
    a = convcalc.analyze(["pixelunshuffle:2"], (1, 1, 8, 8))
    assert region_at(a, (3, 1)).region == ((6, 7), (2, 3))
    assert a.receptive_field.size == (2, 2) and a.receptive_field.stride == (2, 2)


def test_check_min_rf_tests_the_local_field():
    args = ["check", "-i", "1x3x32x32", *SE]
    assert run(*args, "--min-rf", "5").exit_code == 0
    r = run(*args, "--min-rf", "6")
    assert r.exit_code == 1 and "5x5" in r.output and "local" in r.output


def test_table_and_rf_show_the_local_field():
    r = run("shape", "-i", "1x3x32x32", *SE)
    assert "global; local 5 / 1" in r.output
    r = run("rf", "-i", "1x3x32x32", *SE)
    assert "local 5" in r.output


def test_explain_names_the_mixing_layer():
    r = run("shape", "-i", "1x8x8x8", "conv:8,k=3,p=1", "gn:2", "--explain")
    assert "global from layer 2 (gn:2)" in r.output
    assert "local receptive field (the paths that keep positions): r = 3x3" in r.output


# ---------------------------------------------------------------------------
# --verify proves the dependency claims on the real ops
# ---------------------------------------------------------------------------

def test_verify_passes_through_every_new_kind():
    from convcalc.verify import verify
    tokens = ["conv:8,k=3,p=1", "save:x", "gap", "conv:8,k=1", "sigmoid", "save:g", "from:x",
              "mul:g", "gn:2", "permute:0,2,3,1", "ln", "linear:16", "permute:0,3,1,2",
              "layerscale", "droppath:0.1", "shuffle:2", "chunk:2,i=1", "pixelshuffle:2",
              "pad:1:1x-1:1,mode=reflect", "ln2d", "instnorm", "softmax", "pixelunshuffle:2",
              "dropout2d"]
    v = verify(convcalc.analyze(tokens, (2, 4, 10, 10)))
    assert v.ok, v.failures
    assert v.dependencies == 5  # gn, ln, ln2d, instnorm, softmax: each changed on the op
    assert v.rf_layers >= 20


def test_verify_catches_a_false_dependency_claim():
    """A forged row that says gn keeps positions apart (or bn mixes them) fails."""
    from convcalc.verify import verify
    a = convcalc.analyze(["conv:4,k=3,p=1", "gn:2"], (1, 4, 8, 8))
    rows = list(a.layers)
    rows[1] = rows[1]._replace(mixes=())
    v = verify(a._replace(layers=tuple(rows)))
    assert not v.receptive_field and "moved 64 output positions" in v.failures[0]
    a = convcalc.analyze(["conv:4,k=3,p=1", "bn"], (1, 4, 8, 8))
    rows = list(a.layers)
    rows[1] = rows[1]._replace(mixes=(0, 1))
    v = verify(a._replace(layers=tuple(rows)))
    assert not v.receptive_field and "moved 1 output positions" in v.failures[0]


def test_verify_catches_a_wrong_pixel_shuffle_map():
    """The impulse through the real pixel shuffle lights exactly one position per
    input position's r x r block; a forged 'keeps positions' window fails."""
    from convcalc.verify import verify
    a = convcalc.analyze(["pixelshuffle:2"], (1, 4, 4, 4))
    assert verify(a).ok
    row = a.layers[0]._replace(inputs=((-1, ()),))
    v = verify(a._replace(layers=(row,)))
    assert not v.receptive_field


def test_verify_agrees_on_random_stacks_of_the_new_kinds():
    """Random stacks mixing every new kind with the old ones, and permutes
    that leave spatial dims in odd places: --verify (the real ops, impulses
    and the norms' dependency checks) agrees with the analysis on each."""
    import random

    from convcalc.errors import ConvcalcError
    from convcalc.verify import verify
    kinds = ["conv:4,k=3,p=1", "conv:4,k=3,g=4", "maxpool:2", "up:2", "up:2,mode=bilinear",
             "pixelshuffle:2", "pixelunshuffle:2", "pad:1:0,mode=reflect",
             "pad:-1:2,mode=circular", "gn:2", "ln", "ln2d", "softmax:2", "softmax", "linear:4",
             "chunk:2,i=0", "shuffle:2", "tconv:4,k=2,s=2", "bn", "instnorm", "layerscale",
             "gap", "save:a", "add:a", "mul:a", "concat:a", "droppath", "dropout2d",
             "sepconv:4,k=3,p=1,dbias", "instnorm:track", "ln:3", "logsoftmax:3",
             "permute:0,2,3,1", "permute:0,3,1,2", "permute:0,2,1,3"]
    rng = random.Random(11)
    checked, failed = 0, []
    while checked < 250:
        tokens = ["save:a"] + [rng.choice(kinds) for _ in range(rng.randint(1, 6))]
        try:
            a = convcalc.analyze(tokens, (2, 4, 8, 8))
        except ConvcalcError:
            continue
        v = verify(a)
        checked += 1
        if not v.ok:
            failed.append((tokens, v.failures[:1]))
    assert not failed, failed[:5]
