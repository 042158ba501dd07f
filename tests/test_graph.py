"""Graph tokens (save, from, add, concat, crop): shapes, counts, errors,
receptive fields through joins, ``rf --at`` against PyTorch autograd on random
graphs, and ``--verify`` on graphs.

Every expected number here is worked out by hand in the comments (output
sizes ⌊(i + 2p − d(k−1) − 1)/s⌋ + 1, receptive-field recursions
r = r₀ + d(k−1)S₀, S = S₀s, P = P₀ + p·S₀, center-crop offsets ⌊(i − t)/2⌋).
"""
from __future__ import annotations

import json
import random
from fractions import Fraction
from functools import lru_cache

import pytest
from click.testing import CliRunner

import convcalc
from convcalc.analysis import analyze, region_at
from convcalc.cli import cli
from convcalc.errors import ConvcalcError, ShapeError, StackSyntaxError


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def rows_of(stack: str, shape: str):
    return analyze(stack.split(), shape).layers


def crop_offsets(windows):
    """A crop expressed as index maps: output o reads input o + offset."""
    return tuple(-w.pad for w in windows)


# ---------------------------------------------------------------------------
# shapes, params, MACs, activation bytes, inputs
# ---------------------------------------------------------------------------

# input 1x3x20x20
GRAPH = ("conv:8,k=3 save:a conv:6,k=3,bias=false save:b from:a crop:b concat:b save:c "
         "from:b conv:14,k=1 add:c concat:b+c from:input crop:a concat:a")


def test_graph_rows_shapes_counts_memory():
    a = analyze(GRAPH.split(), "1x3x20x20")
    got = [(r.index, r.kind, r.output_shape, r.params, r.macs, r.activation_bytes)
           for r in a.layers]
    assert got == [
        # conv 3→8, k=3, 20→18: params 8·3·9 + 8; MACs 8·18·18·3·9; bytes 8·18·18·4
        (1, "conv", (1, 8, 18, 18), 224, 69_984, 10_368),
        (2, "save", (1, 8, 18, 18), 0, 0, 0),
        # conv 8→6 without bias, 18→16: 6·8·9; MACs 6·16·16·8·9
        (3, "conv", (1, 6, 16, 16), 432, 110_592, 6_144),
        (4, "save", (1, 6, 16, 16), 0, 0, 0),
        (5, "from", (1, 8, 18, 18), 0, 0, 0),
        (6, "crop", (1, 8, 16, 16), 0, 0, 0),  # a view
        # channels 8 + 6 = 14 at 16x16: 14·256·4 bytes
        (7, "concat", (1, 14, 16, 16), 0, 0, 14_336),
        (8, "save", (1, 14, 16, 16), 0, 0, 0),
        (9, "from", (1, 6, 16, 16), 0, 0, 0),
        # conv 6→14, k=1: 14·6 + 14; MACs 14·256·6
        (10, "conv", (1, 14, 16, 16), 98, 21_504, 14_336),
        (11, "add", (1, 14, 16, 16), 0, 0, 14_336),
        # concat:b+c: 14 (current) + 6 (b) + 14 (c) = 34 channels: 34·256·4
        (12, "concat", (1, 34, 16, 16), 0, 0, 34_816),
        (13, "from", (1, 3, 20, 20), 0, 0, 0),
        (14, "crop", (1, 3, 18, 18), 0, 0, 0),
        # 3 + 8 = 11 channels at 18x18: 11·324·4
        (15, "concat", (1, 11, 18, 18), 0, 0, 14_256),
    ]
    assert a.output_shape == (1, 11, 18, 18)
    assert a.totals.params == 224 + 432 + 98
    assert a.totals.macs == 69_984 + 110_592 + 21_504
    assert a.totals.activation_bytes == 10_368 + 6_144 + 14_336 * 3 + 34_816 + 14_256
    # the graph rows have no padding of their own, and no buffers
    for r in a.layers:
        if r.kind in ("save", "from", "add", "concat", "crop"):
            assert r.padding is None and r.buffers == 0


def test_graph_row_inputs_structure():
    rows = rows_of(GRAPH, "1x3x20x20")
    # row positions are 0-based; −1 is the network input; () means "as is"
    assert rows[0].inputs[0][0] == -1
    assert rows[1].inputs == ((0, ()),)               # save:a reads the conv
    assert rows[4].inputs == ((1, ()),)               # from:a reads the save:a row
    (src, win), = rows[5].inputs                      # crop:b: from:a through a crop
    assert src == 4
    assert crop_offsets(win) == (1, 1)                # ⌊(18 − 16)/2⌋
    assert [(w.in_size, w.out_size) for w in win] == [(18, 16), (18, 16)]
    assert rows[6].inputs == ((5, ()), (3, ()))       # concat:b: current first, then b
    assert rows[10].inputs == ((9, ()), (7, ()))      # add:c
    assert rows[11].inputs == ((10, ()), (3, ()), (7, ()))  # concat:b+c, in the order named
    assert rows[12].inputs == ((-1, ()),)             # from:input
    assert crop_offsets(rows[13].inputs[0][1]) == (1, 1)  # 20 → 18


def test_from_input_restarts_the_receptive_field():
    a = analyze("conv:2,k=5,s=2 from:input".split(), "1x1x16x16")
    r = a.layers[1]
    assert r.output_shape == (1, 1, 16, 16)
    assert r.receptive_field.size == (1, 1)
    assert r.receptive_field.stride == (1, 1)
    assert r.receptive_field.padding == (0, 0)


def test_add_many_and_concat_channel_sums():
    # three tensors of the same shape summed at once; concat:x+y+z sums channels
    a = analyze("conv:4,k=1 save:x conv:4,k=1 save:y conv:4,k=1 add:x+y "
                "conv:3,k=1 save:z conv:5,k=1 concat:x+y+z".split(), "1x2x7x5")
    add = a.layers[5]
    assert add.kind == "add" and add.output_shape == (1, 4, 7, 5)
    assert len(add.inputs) == 3
    assert add.activation_bytes == 4 * 7 * 5 * 4
    cat = a.layers[-1]
    assert cat.output_shape == (1, 5 + 4 + 4 + 3, 7, 5)
    assert cat.activation_bytes == 16 * 35 * 4
    # 1-D too
    b = analyze("save:a conv:3,k=3,p=1 concat:a".split(), "2x2x9")
    assert b.output_shape == (2, 5, 9)
    assert b.layers[-1].activation_bytes == 2 * 5 * 9 * 4


def test_concat_crop_offsets_floor():
    # input 21x24: conv k=3 → 19x22 (e); maxpool:2 → 9x11; conv k=2 → 8x10
    # crop e 19x22 → 8x10: offsets ⌊(19−8)/2⌋ = ⌊5.5⌋ = 5 and ⌊(22−10)/2⌋ = 6
    a = analyze("conv:4,k=3 save:e maxpool:2 conv:4,k=2 concat:e,crop".split(), "1x1x21x24")
    cat = a.layers[-1]
    assert cat.output_shape == (1, 8, 8, 10)
    assert cat.activation_bytes == 8 * 8 * 10 * 4
    (cur, w0), (src, w1) = cat.inputs
    assert (cur, w0) == (3, ())
    assert src == 1
    assert crop_offsets(w1) == (5, 6)
    # output (0, 0): the current path reads conv2 0..1 → pool 0..1 → conv1 0..3 →
    # input 0..5 in both dims; e at (5, 6) reads input [5, 7] x [6, 8]; the union's box:
    assert region_at(a, (0, 0)).region == ((0, 7), (0, 8))
    # output (7, 9): current → conv1 rows 14..17 → input 14..19; cols 18..21 → input 18..23
    # e at (12, 15) → input [12, 14] x [15, 17]
    assert region_at(a, (7, 9)).region == ((12, 19), (15, 23))


def test_crop_name_offsets_region_and_receptive_field():
    stack = "conv:4,k=3 save:e maxpool:2 conv:4,k=2 save:small from:e crop:small"
    a = analyze(stack.split(), "1x1x21x24")
    crop = a.layers[-1]
    assert crop.output_shape == (1, 4, 8, 10)
    assert crop.activation_bytes == 0
    assert crop_offsets(crop.inputs[0][1]) == (5, 6)
    # e: r = 3, S = 1, P = 0; cropping by (5, 6) moves the start: P = 0 − 5, 0 − 6
    rf = crop.receptive_field
    assert rf.size == (3, 3) and rf.stride == (1, 1) and rf.padding == (-5, -6)
    # crop (0, 0) = e (5, 6) reads input [5, 7] x [6, 8]; (7, 9) = e (12, 15)
    assert region_at(a, (0, 0)).region == ((5, 7), (6, 8))
    assert region_at(a, (7, 9)).region == ((12, 14), (15, 17))
    r = run("rf", "-i", "1x1x21x24", *stack.split(), "--at", "7,9", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["region"] == [[12, 14], [15, 17]]


def test_graph_json_rows():
    r = run("shape", "-i", "1x3x20x20", *GRAPH.split(), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    layers = doc["layers"]
    assert [L["kind"] for L in layers][:7] == ["conv", "save", "conv", "save", "from", "crop",
                                              "concat"]
    assert layers[6]["output_shape"] == [1, 14, 16, 16]
    assert layers[6]["params"] == 0 and layers[6]["macs"] == 0 and layers[6]["flops"] == 0
    assert layers[5]["activation_bytes"] == 0
    assert layers[6]["activation_bytes"] == 14_336


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_unknown_name_exit_2_lists_names():
    with pytest.raises(StackSyntaxError) as e:
        analyze("conv:4,k=3 save:a save:b add:zz".split(), "1x1x8x8")
    assert e.value.exit_code == 2
    assert "layer 4 (add:zz)" in e.value.message
    assert "input, a, b" in e.value.message
    r = run("shape", "-i", "1x1x8x8", "conv:4,k=3", "save:a", "save:b", "concat:a+zz")
    assert r.exit_code == 2
    assert "'zz'" in r.stderr and "input, a, b" in r.stderr
    assert "Traceback" not in r.stderr
    # a name is known only after its save
    r = run("shape", "-i", "1x1x8x8", "from:a", "save:a")
    assert r.exit_code == 2
    assert "named so far: input" in r.stderr
    for tok in ("crop:zz", "from:zz"):
        r = run("shape", "-i", "1x1x8x8", "save:a", tok)
        assert r.exit_code == 2, (tok, r.output)
        assert "input, a" in r.stderr


def test_add_mismatch_names_both_and_the_dropping_layer():
    # 71 → conv p=1 → 71 (a) → maxpool:2 → 35 (reads 0..69, drops 1) → tconv ×2 → 70
    stack = "conv:8,k=3,p=1 save:a maxpool:2 tconv:8,k=2,s=2 add:a".split()
    with pytest.raises(ShapeError) as e:
        analyze(stack, "1x3x71x71")
    err = e.value
    assert err.exit_code == 3
    assert "layer 5 (add:a)" in err.message
    assert "1x8x70x70 (the current tensor) vs 1x8x71x71 ('a', layer 2 (save:a))" in err.message
    assert "layer 3 (maxpool:2)" in err.hint
    assert "never reads the last 1 input position of 71" in err.hint
    assert "not divisible by 2" in err.hint
    r = run("shape", "-i", "1x3x71x71", *stack)
    assert r.exit_code == 3
    assert "1x8x70x70" in r.stderr and "1x8x71x71" in r.stderr and "hint:" in r.stderr
    assert r.stdout == ""


# a 4-pool padded U-Net, one channel per conv to keep it small
UNET4 = ("conv:2,k=3,p=1 save:e1 maxpool:2 conv:2,k=3,p=1 save:e2 maxpool:2 "
         "conv:2,k=3,p=1 save:e3 maxpool:2 conv:2,k=3,p=1 save:e4 maxpool:2 "
         "conv:2,k=3,p=1 tconv:2,k=2,s=2 concat:e4 conv:2,k=3,p=1 tconv:2,k=2,s=2 concat:e3 "
         "conv:2,k=3,p=1 tconv:2,k=2,s=2 concat:e2 conv:2,k=3,p=1 tconv:2,k=2,s=2 concat:e1 "
         "conv:2,k=1")


def test_concat_mismatch_unet_at_572():
    # 572 → 286 → 143 → 71 (e4) → 35 (pool 4 reads 0..69 of 71) → ×2 = 70 ≠ 71
    with pytest.raises(ShapeError) as e:
        analyze(UNET4.split(), "1x1x572x572")
    err = e.value
    assert err.exit_code == 3
    assert err.message == ("layer 15 (concat:e4): concat: 1x2x70x70 (the current tensor) vs "
                           "1x2x71x71 ('e4', layer 11 (save:e4))")
    assert err.hint.startswith("layer 12 (maxpool:2) never reads the last 1 input position "
                               "of 71")
    # the largest stride reached is 2⁴ = 16, and 572 = 16·35 + 12
    assert err.hint.endswith("the input size 572x572 is not divisible by 16")
    # the built-in U-Net fails the same way (README)
    r = run("shape", "@unet")
    assert r.exit_code == 3
    assert "concat: 1x512x70x70 (the current tensor) vs 1x512x71x71" in r.stderr
    assert "layer 32 (maxpool:2)" in r.stderr and "not divisible by 16" in r.stderr
    # and at 512 = 16·32 it goes through, back to 512
    assert analyze(UNET4.split(), "1x1x512x512").output_shape == (1, 2, 512, 512)


def test_concat_mismatch_second_dim():
    # 576 is a multiple of 16, 572 is not: the drop is in dim 2
    with pytest.raises(ShapeError) as e:
        analyze(UNET4.split(), "1x1x576x572")
    assert "1x2x72x70 (the current tensor) vs 1x2x72x71" in e.value.message
    assert "(dim 2: 35 windows of stride 2)" in e.value.hint
    assert "the input size 576x572 is not divisible by 16" in e.value.hint


def test_concat_mismatch_hint_divisibility_of_other_dim():
    # dim 1 has stride 1, dim 2 stride 2: 7 → 3 → 6 ≠ 7
    with pytest.raises(ShapeError) as e:
        analyze("conv:2,k=3,p=1 save:e maxpool:1x2 tconv:2,k=1x2,s=1x2 concat:e".split(),
                "1x1x8x7")
    assert "layer 3 (maxpool:1x2)" in e.value.hint
    assert "not divisible by 2" in e.value.hint


def test_mismatch_without_dropping_layer_has_no_hint():
    # a valid conv shrinks 8 → 6: nothing was rounded away, only made smaller
    with pytest.raises(ShapeError) as e:
        analyze("save:a conv:1,k=3 add:a".split(), "1x1x8x8")
    assert "1x1x6x6 (the current tensor) vs 1x1x8x8" in e.value.message
    assert e.value.hint is None


def test_concat_channels_ok_but_batch_or_rank_differ():
    with pytest.raises(ShapeError) as e:
        analyze("save:a flatten concat:a".split(), "1x2x4x4")
    assert e.value.exit_code == 3


def test_crop_to_larger_tensor_exit_3():
    # crop:input after a valid conv: 8x8 cannot be cropped to 10x10
    r = run("shape", "-i", "1x1x10x10", "conv:4,k=3", "crop:input")
    assert r.exit_code == 3
    assert "crop: the current 1x4x8x8 is smaller than 1x1x10x10 (the input)" in r.stderr
    # concat:NAME,crop with a smaller named tensor: 5x5 cannot be cropped to 10x10
    with pytest.raises(ShapeError) as e:
        analyze("save:s maxpool:2 save:t from:s concat:t,crop".split(), "1x1x10x10")
    assert "cannot crop 1x1x5x5 ('t', layer 3 (save:t)) to the smaller current 1x1x10x10" \
        in e.value.message
    # larger in one dim only is still larger
    with pytest.raises(ShapeError):
        analyze("save:s maxpool:2x1 crop:s".split(), "1x1x10x10")
    # concat without crop at different sizes is a mismatch (exit 3) too
    r = run("shape", "-i", "1x1x10x10", "save:s", "maxpool:2", "concat:s")
    assert r.exit_code == 3
    assert "1x1x5x5 (the current tensor) vs 1x1x10x10" in r.stderr


# ---------------------------------------------------------------------------
# receptive fields through joins
# ---------------------------------------------------------------------------

STEM = "conv:64,k=7,s=2,p=3,bias=false bn relu maxpool:3,s=2,p=1"
BASIC = "save:x conv:64,k=3,p=1,bias=false bn relu conv:64,k=3,p=1,bias=false bn add:x relu"
DOWN = ("save:y conv:128,k=3,s=2,p=1,bias=false bn relu conv:128,k=3,p=1,bias=false bn save:m "
        "from:y conv:128,k=1,s=2,bias=false bn add:m relu")


def rf_tuple(rf):
    return rf.size[0], rf.stride[0], rf.padding[0]


def test_resnet_basic_block_union():
    a = analyze(f"{STEM} {BASIC}".split(), "1x3x64x64")
    by_spec = {}
    for r in a.layers:
        by_spec.setdefault(r.spec, []).append(r)
    # stem: conv7 s2 p3: r 7, S 2, P 3; maxpool3 s2 p1: r 7 + 2·2 = 11, S 4, P 3 + 1·2 = 5
    assert rf_tuple(a.layers[3].receptive_field) == (11, 4, 5)
    # main path: +2·4 twice: r 19 then 27, P 9 then 13; centers −13 + 13 = 0 = −5 + 5
    add = by_spec["add:x"][0]
    assert rf_tuple(add.receptive_field) == (27, 4, 13)
    assert add.receptive_note is None
    assert add.receptive_field.center == (0, 0)
    assert a.receptive_field.size == (27, 27)
    assert a.output_shape == (1, 64, 16, 16)


def test_resnet_downsample_block_union():
    a = analyze(f"{STEM} {BASIC} {DOWN}".split(), "1x3x64x64")
    add = [r for r in a.layers if r.spec == "add:m"][0]
    # from y (27, 4, 13): main conv3 s2 p1 → r 27 + 2·4 = 35, S 8, P 13 + 4 = 17;
    # conv3 p1 → r 35 + 2·8 = 51, P 17 + 8 = 25.  shortcut conv1 s2 → (27, 8, 13).
    # centers: −25 + 25 = 0 and −13 + 13 = 0: aligned; the union is the main path's
    short = [r for r in a.layers if r.spec == "conv:128,k=1,s=2,bias=false"][0]
    assert rf_tuple(short.receptive_field) == (27, 8, 13)
    assert rf_tuple(add.receptive_field) == (51, 8, 25)
    assert add.receptive_note is None
    assert rf_tuple(a.receptive_field) == (51, 8, 25)
    assert a.receptive_note is None
    # the same numbers through the CLI
    r = run("rf", "-i", "1x3x64x64", *f"{STEM} {BASIC} {DOWN}".split(), "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["receptive_field"]["size"] == [51, 51]
    assert doc["receptive_field"]["stride"] == [8, 8]
    assert doc["receptive_field"]["padding"] == [25, 25]


def test_union_takes_the_larger_of_each_side():
    # main path conv k=5 p=2 (window [u−2, u+2]) joined with conv k=3 p=1 ([u−1, u+1]):
    # both centered on u, union r = 5, P = 2
    a = analyze("save:x conv:1,k=5,p=2 save:m from:x conv:1,k=3,p=1 concat:m".split(),
                "1x1x16")
    assert rf_tuple(a.receptive_field) == (5, 1, 2)


def test_misaligned_residual_has_a_bounding_box_field():
    # conv k=2 p=0:1 keeps the shape; its window [u, u+1] is centered at u + 1/2,
    # the identity's at u: the join's field is the box of both, [u, u+1], and the
    # centers lie 1/2 apart (issue 13 item 4: a size, marked, not "none")
    stack = "save:x conv:3,k=2,p=0:1 add:x conv:3,k=3,p=1"
    a = analyze(stack.split(), "1x3x9x9")
    conv = a.layers[1]
    assert rf_tuple(conv.receptive_field) == (2, 1, 0)
    assert conv.receptive_field.offset is None
    add = a.layers[2]
    assert add.output_shape == (1, 3, 9, 9)
    assert rf_tuple(add.receptive_field) == (2, 1, 0)
    assert add.receptive_field.offset == (Fraction(1, 2),) * 2
    assert add.receptive_note is None
    # the 3x3 conv after it: [u−1, u+2], size 4, P = 1; the mark carries on
    assert rf_tuple(a.layers[3].receptive_field) == (4, 1, 1)
    assert a.receptive_field.offset == (Fraction(1, 2),) * 2
    # rf --at answers exactly: u reads [u, u+1] and u; the later conv ±1
    assert region_at(a, (4, 4), layer=3).region == ((4, 5), (4, 5))
    assert region_at(a, (4, 4)).region == ((3, 6), (3, 6))
    # the bounding box at every position equals rf --at's unclipped box
    for u in range(9):
        lo, hi = region_at(a, (u, u)).unclipped[0]
        assert (lo, hi) == (u - 1, u + 2)
    # JSON: the size with the offset; table and rf: a starred size and the footnote
    r = run("shape", "-i", "1x3x9x9", *stack.split(), "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["layers"][2]["receptive_field"] == {
        "size": [2, 2], "stride": [1, 1], "padding": [0, 0], "misaligned_by": [0.5, 0.5]}
    assert doc["receptive_field"]["size"] == [4, 4]
    r = run("shape", "-i", "1x3x9x9", *stack.split())
    assert "4* / 1" in r.stdout and "2* / 1" in r.stdout
    assert "centered up to 1/2 input positions apart" in r.stdout
    r = run("rf", "-i", "1x3x9x9", *stack.split())
    assert "4*" in r.stdout and "centered up to 1/2" in r.stdout


def test_pool_then_up_join_strides_agree_but_centers_differ():
    # save:a maxpool:2 up:2 add:a.  Stride: 2 · 1/2 = 1, the same as a's.
    # Output o of up reads pool ⌊o/2⌋, which reads [2⌊o/2⌋, 2⌊o/2⌋ + 1]:
    # o = 0 → [0, 1] (center 1/2), o = 1 → [0, 1] (center 1/2); a: o → [o, o].
    # Centers 0 vs 1/2 at o = 0: not aligned (not "strides differ").
    a = analyze("save:a maxpool:2 up:2 add:a".split(), "1x3x8x8")
    up = a.layers[2]
    assert up.receptive_field.stride == (1, 1)
    assert up.receptive_field.size == (2, 2)
    # P = max over phases of u·S − start(u): u = 1 starts at 0: P = 1
    assert up.receptive_field.padding == (1, 1)
    add = a.layers[3]
    # the box of both: o = 0 → [0, 1] ∪ {0} = [0, 1]; o = 1 → [0, 1]: size 2, and
    # centers 1/2 apart (1/2 vs 0 at o = 0, 1/2 vs 1 at o = 1)
    assert add.receptive_note is None
    assert add.receptive_field.size == (2, 2)
    assert add.receptive_field.offset == (Fraction(1, 2),) * 2
    # exact regions: o = 3 → [2, 3] ∪ {3}; o = 4 → [4, 5] ∪ {4}
    assert region_at(a, (3, 4)).region == ((2, 3), (4, 5))


def test_join_with_different_strides():
    # concat:a,crop after maxpool:2: the current path has S = 2, the cropped a S = 1
    a = analyze("save:a maxpool:2 concat:a,crop".split(), "1x3x8x8")
    cat = a.layers[-1]
    assert cat.output_shape == (1, 6, 4, 4)
    assert crop_offsets(cat.inputs[1][1]) == (2, 2)  # ⌊(8 − 4)/2⌋
    assert cat.receptive_field is None
    assert "different effective strides (1 vs 2, dim 1)" in cat.receptive_note
    # output 1 reads [2, 3] through the pool and 1 + 2 = 3 through the crop
    assert region_at(a, (1, 0)).region == ((2, 3), (0, 2))
    # an align_corners upsample to a size has a fractional stride: 2 · 3/7 = 6/7
    b = analyze("save:a maxpool:2 up:size=8,mode=bilinear,align_corners add:a".split(),
                "1x3x8x8")
    assert b.layers[2].receptive_field.stride == (Fraction(6, 7),) * 2
    assert "different effective strides (6/7 vs 1" in b.layers[3].receptive_note
    r = run("shape", "-i", "1x3x8x8", "save:a", "maxpool:2", "concat:a,crop")
    assert "strides differ" in r.stdout


def test_tconv_unet_is_misaligned_by_half():
    # README: the transposed-conv decoder is half a position off its skip.
    # By hand, dim-wise: e = conv k=3 p=1 reads [u−1, u+1] (center u).  Through
    # maxpool:2 (stride 2) and conv k=3 p=1, decoder position v reads e over
    # [2v−2, 2v+3], input [2v−3, 2v+4] (center 2v + 1/2); the tconv k=2 s=2 maps
    # output o to v = ⌊o/2⌋: o = 2v → center o + 1/2, o = 2v + 1 → center o − 1/2.
    # Joined with e (center o): 1/2 apart; the box at o = 2v is
    # [2v−3, 2v+4] ∪ [2v−1, 2v+1] = 8 wide, at o = 2v+1 the same 8.
    a = analyze("conv:2,k=3,p=1 save:e maxpool:2 conv:2,k=3,p=1 tconv:2,k=2,s=2 "
                "concat:e".split(), "1x1x16x16")
    assert a.receptive_note is None
    assert a.receptive_field.size == (8, 8)
    assert a.receptive_field.stride == (1, 1)
    assert a.receptive_field.offset == (Fraction(1, 2),) * 2
    for o in (4, 5):
        v = o // 2
        assert region_at(a, (o, o)).unclipped[0] == (2 * v - 3, 2 * v + 4)


def test_unet_min_rf_tests_the_bounding_box_size():
    # issue 13 item 4: the decoder's misalignment must not fail the size check
    # (before: "joined paths are not aligned", FAIL; every output position of
    # the U-Net reads far more than 100 input positions, see rf --at)
    r = CliRunner().invoke(cli, ["check", "@unet", "-i", "1x1x512x512", "--min-rf", "100",
                                 "--format", "json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    (c,) = doc["checks"]
    assert c["ok"] is True and c["limit"] == 100
    size = c["actual"]["size"]
    # independently: the widest exact region over a period of output positions
    a = analyze(["@unet"], "1x1x512x512")
    widest = max(hi - lo + 1 for u in range(200, 232)
                 for lo, hi in [region_at(a, (u, u)).unclipped[0]])
    assert size == [widest, widest]
    assert c["actual"]["misaligned_by"][0] > 0
    assert "apart" in c["note"]
    r = CliRunner().invoke(cli, ["check", "@unet", "-i", "1x1x512x512", "--min-rf", str(widest + 1)])
    assert r.exit_code == 1


# ---------------------------------------------------------------------------
# rf --at through random graphs, against PyTorch autograd
# ---------------------------------------------------------------------------

N_GRAPHS = 160
MAX_ELEMENTS = 20_000
MAX_SIDE = 64


def _dims(vals) -> str:
    return str(vals[0]) if len(set(vals)) == 1 else "x".join(map(str, vals))


class _Builder:
    """A random graph built op by op, in torch (float64, positive weights, no
    bias) and as convcalc tokens side by side.  Ops torch refuses are dropped."""

    def __init__(self, rng: random.Random, torch, ndim: int):
        self.rng, self.torch, self.n = rng, torch, ndim
        self.F = torch.nn.functional
        C = rng.randint(1, 2)
        if ndim == 1:
            sizes = (rng.randint(6, 30),)
        else:
            sizes = (rng.randint(5, 16), rng.randint(5, 16))
        self.input_shape = (1, C, *sizes)
        self.x = torch.rand(self.input_shape, dtype=torch.float64, requires_grad=True)
        self.cur = self.x
        self.names = {"input": self.x}
        self.tokens, self.outputs, self.kinds = [], [], []

    # ---- helpers
    def per_dim(self, pick):
        if self.n > 1 and self.rng.random() < 0.3:
            return tuple(pick() for _ in range(self.n))
        return (pick(),) * self.n

    def weight(self, shape):
        return self.torch.rand(shape, dtype=self.torch.float64) + 0.5

    def channels(self):
        opts = [1, 2, 3] + [t.shape[1] for t in self.names.values()]
        return self.rng.choice(opts)

    @staticmethod
    def center_crop(t, target):
        idx = [slice(None), slice(None)]
        for i, o in zip(t.shape[2:], target):
            off = (i - o) // 2
            idx.append(slice(off, off + o))
        return t[tuple(idx)]

    def emit(self, token, y, kind):
        if y.numel() > MAX_ELEMENTS or any(v > MAX_SIDE for v in y.shape[2:]):
            return False
        self.tokens.append(token)
        self.outputs.append(y)
        self.kinds.append(kind)
        self.cur = y
        return True

    # ---- layers
    def conv(self):
        rng, F = self.rng, self.F
        C = self.channels()
        if rng.random() < 0.4:  # shape-preserving, so that add has partners
            k = self.per_dim(lambda: rng.choice([1, 3, 5]))
            d = self.per_dim(lambda: rng.choice([1, 1, 2]))
            s = (1,) * self.n
            p = tuple(dd * (kk - 1) // 2 for kk, dd in zip(k, d))
        else:
            k = self.per_dim(lambda: rng.randint(1, 4))
            s = self.per_dim(lambda: rng.randint(1, 3))
            d = self.per_dim(lambda: rng.choice([1, 1, 2]))
            p = self.per_dim(lambda: rng.randint(0, 2))
        w = self.weight((C, self.cur.shape[1], *k))
        f = (F.conv1d, F.conv2d)[self.n - 1]
        y = f(self.cur, w, None, s, p, d)
        return self.emit(f"conv:{C},k={_dims(k)},s={_dims(s)},p={_dims(p)},d={_dims(d)},"
                         f"bias=false", y, "conv")

    def avgpool(self):
        rng, F = self.rng, self.F
        k = self.per_dim(lambda: rng.randint(1, 3))
        s = self.per_dim(lambda: rng.randint(1, 3))
        p = tuple(rng.randint(0, kk // 2) for kk in k)
        ceil, cip = rng.random() < 0.3, rng.random() < 0.5
        f = (F.avg_pool1d, F.avg_pool2d)[self.n - 1]
        y = f(self.cur, k, s, p, ceil, cip)
        tok = f"avgpool:{_dims(k)},s={_dims(s)},p={_dims(p)}"
        tok += ",ceil" if ceil else ""
        tok += "" if cip else ",count_include_pad=false"
        return self.emit(tok, y, "avgpool")

    def tconv(self):
        rng, F = self.rng, self.F
        C = self.channels()
        k = self.per_dim(lambda: rng.randint(1, 4))
        s = self.per_dim(lambda: rng.randint(1, 3))
        d = self.per_dim(lambda: rng.choice([1, 1, 2]))
        p = tuple(rng.randint(0, dd * (kk - 1)) for kk, dd in zip(k, d))
        op = tuple(rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d))
        w = self.weight((self.cur.shape[1], C, *k))
        f = (F.conv_transpose1d, F.conv_transpose2d)[self.n - 1]
        y = f(self.cur, w, None, s, p, op, 1, d)
        return self.emit(f"tconv:{C},k={_dims(k)},s={_dims(s)},p={_dims(p)},op={_dims(op)},"
                         f"d={_dims(d)},bias=false", y, "tconv")

    def up(self):
        mode = self.rng.choice(["nearest", "nearest", "nearest-exact",
                                ("linear", "bilinear")[self.n - 1]])
        kw = {"align_corners": False} if "linear" in mode else {}
        y = self.F.interpolate(self.cur, scale_factor=2, mode=mode, **kw)
        return self.emit("up:2" if mode == "nearest" else f"up:2,mode={mode}", y, "up")

    # ---- graph tokens
    def save(self):
        name = f"t{len(self.tokens)}"
        self.names[name] = self.cur
        return self.emit(f"save:{name}", self.cur, "save")

    def from_(self):
        name = self.rng.choice(sorted(self.names))
        return self.emit(f"from:{name}", self.names[name], "from")

    def _pick(self, ok):
        names = sorted(n for n, t in self.names.items() if ok(t))
        return self.rng.choice(names) if names else None

    def add(self):
        name = self._pick(lambda t: t.shape == self.cur.shape)
        if name is None:
            return False
        return self.emit(f"add:{name}", self.cur + self.names[name], "add")

    def concat(self):
        spatial = self.cur.shape[2:]
        names = sorted(n for n, t in self.names.items() if t.shape[2:] == spatial)
        if not names:
            return False
        chosen = self.rng.sample(names, min(len(names), self.rng.choice([1, 1, 2])))
        y = self.torch.cat([self.cur] + [self.names[n] for n in chosen], dim=1)
        return self.emit(f"concat:{'+'.join(chosen)}", y, "concat")

    def concat_crop(self):
        spatial = self.cur.shape[2:]
        name = self._pick(lambda t: all(a >= b for a, b in zip(t.shape[2:], spatial)))
        if name is None:
            return False
        cropped = self.center_crop(self.names[name], spatial)
        y = self.torch.cat([self.cur, cropped], dim=1)
        return self.emit(f"concat:{name},crop", y, "concat_crop")

    def crop(self):
        spatial = self.cur.shape[2:]
        name = self._pick(lambda t: all(a <= b for a, b in zip(t.shape[2:], spatial)))
        if name is None:
            return False
        y = self.center_crop(self.cur, self.names[name].shape[2:])
        return self.emit(f"crop:{name}", y, "crop")

    OPS = {"conv": 22, "avgpool": 10, "tconv": 10, "up": 6, "save": 18, "from": 6, "add": 10,
           "concat": 8, "concat_crop": 8, "crop": 8}

    def step(self) -> bool:
        op = self.rng.choices(list(self.OPS), list(self.OPS.values()))[0]
        try:
            return getattr(self, "from_" if op == "from" else op)()
        except RuntimeError:  # torch refuses (output < 1, kernel larger than input, ...)
            return False


def _grad_box(torch, x, y, pos):
    """Bounding box of the input positions with a nonzero gradient of
    y[0, :, *pos].sum() (all weights positive: nothing cancels)."""
    (g,) = torch.autograd.grad(y[(0, slice(None), *pos)].sum(), x, retain_graph=True,
                               allow_unused=True)
    if g is None:
        return None
    mask = g[0].abs().sum(0) > 0
    nz = mask.nonzero()
    if nz.shape[0] == 0:
        return None
    return tuple((int(nz[:, d].min()), int(nz[:, d].max())) for d in range(nz.shape[1]))


@lru_cache(maxsize=1)
def random_graphs():
    """At least N_GRAPHS random graphs (seeded), each with a join and a layer
    that moves positions: (seed, builder, analysis or the error convcalc raised)."""
    import torch
    cases = []
    seed = 0
    while len(cases) < N_GRAPHS and seed < 2000:
        seed += 1
        rng = random.Random(seed)
        torch.manual_seed(seed)
        g = _Builder(rng, torch, ndim=1 if seed % 2 else 2)
        length = rng.randint(5, 14)
        tries = 0
        while len(g.tokens) < length and tries < 80:
            tries += 1
            g.step()
        if not {"add", "concat", "concat_crop", "crop"} & set(g.kinds):
            continue
        if not {"conv", "avgpool", "tconv", "up"} & set(g.kinds):
            continue
        try:
            a = analyze(g.tokens, g.input_shape)
        except ConvcalcError as e:
            a = e
        cases.append((seed, g, a))
    return cases


def _shape_text(g) -> str:
    return "x".join(map(str, g.input_shape))


def test_random_graphs_shapes_match_torch():
    """convcalc accepts every graph torch ran, with torch's shape at every row,
    and ``rf --at`` (CLI, JSON) answers what ``region_at`` answers."""
    torch = pytest.importorskip("torch")
    cases = random_graphs()
    assert len(cases) == N_GRAPHS
    seen = {k: 0 for k in _Builder.OPS}
    ndims = {1: 0, 2: 0}
    problems = []
    for n, (seed, g, a) in enumerate(cases):
        if isinstance(a, ConvcalcError):
            problems.append((seed, _shape_text(g), " ".join(g.tokens), f"rejected: {a}"))
            continue
        got = [r.output_shape for r in a.layers]
        want = [tuple(t.shape) for t in g.outputs]
        if got != want:
            problems.append((seed, _shape_text(g), " ".join(g.tokens), f"{got} vs {want}"))
        for k in set(g.kinds):
            seen[k] += 1
        ndims[len(g.input_shape) - 2] += 1
        if n % 10 == 0:  # the CLI says what the API says
            pos = tuple(v // 2 for v in g.outputs[-1].shape[2:])
            r = run("rf", "-i", _shape_text(g), *g.tokens, "--at", ",".join(map(str, pos)),
                    "--format", "json")
            assert r.exit_code == 0, (seed, r.output)
            doc = json.loads(r.stdout)
            api = region_at(a, pos).region
            assert doc["layer"] == len(a.layers)
            assert doc["region"] == (None if api is None else [list(b) for b in api])
    assert not problems, f"{len(problems)} graphs; first: {problems[:3]}"
    assert ndims[1] >= 50 and ndims[2] >= 50, ndims
    for k, count in seen.items():  # every op took part in plenty of graphs
        assert count >= 20, (k, count, seen)


def test_rf_at_matches_autograd_on_random_graphs():
    torch = pytest.importorskip("torch")
    cases = random_graphs()
    checked, queries, failures = 0, 0, []
    for seed, g, a in cases:
        if isinstance(a, ConvcalcError):
            failures.append((seed, _shape_text(g), " ".join(g.tokens), f"rejected: {a}"))
            continue
        rng = random.Random(seed * 7919 + 1)
        # the last row, and one earlier row; two positions each
        for index in (len(a.layers), rng.randint(1, len(a.layers))):
            y = g.outputs[index - 1]
            for _ in range(2):
                pos = tuple(rng.randrange(v) for v in y.shape[2:])
                want = _grad_box(torch, g.x, y, pos)
                got = region_at(a, pos, layer=index).region
                queries += 1
                if got != want:
                    failures.append((seed, _shape_text(g), " ".join(g.tokens[:index]),
                                     f"at {pos}: convcalc {got} vs autograd {want}"))
        checked += 1
    assert not failures, f"{len(failures)} disagreements; first: {failures[:3]}"
    assert checked == N_GRAPHS >= 150
    assert queries == 4 * N_GRAPHS


def test_region_through_identity_add():
    # output 0 of x + conv1x1(x) reads input 0 on both paths
    a = analyze("save:x conv:1,k=1 add:x".split(), "1x1x4")
    assert region_at(a, (0,)).region == ((0, 0),)


def test_region_misaligned_residual_at_border():
    a = analyze("save:x conv:3,k=2,p=0:1 add:x".split(), "1x3x9x9")
    assert region_at(a, (8, 8)).region == ((8, 8), (8, 8))  # 9 is padding


# ---------------------------------------------------------------------------
# --verify on graphs
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("stack,shape", [
    (f"{STEM} {BASIC} {DOWN}", "1x3x32x32"),
    ("conv:4,k=3 save:e maxpool:2 conv:4,k=2 concat:e,crop save:s from:e crop:s", "1x1x21x24"),
    ("save:x conv:3,k=2,p=0:1 add:x", "1x3x9x9"),
    ("conv:3,k=3 save:a from:input crop:a conv:3,k=1 add:a concat:a+input,crop", "1x2x11"),
    ("save:a maxpool:2 up:2 add:a save:b avgpool:3,s=2,p=1 tconv:4,k=3,s=2,p=1,op=1 "
     "concat:a+b", "1x2x10x12"),
    (UNET4, "1x1x64x64"),
])
def test_verify_graphs(stack, shape):
    from convcalc.verify import verify
    a = analyze(stack.split(), shape)
    v = verify(a)
    assert v.ok, v.failures
    assert v.layers == len(a.layers)
    assert v.rf_layers >= 1


def test_verify_resnet18_64():
    from convcalc.verify import verify
    a = analyze(["@resnet18"], "1x3x64x64")
    assert a.output_shape == (1, 1000)
    v = verify(a)
    assert v.ok, v.failures
    assert v.shapes and v.params and v.receptive_field
    r = run("shape", "@resnet18", "-i", "1x3x64x64", "--verify", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["verify"]["receptive_field"] is True
