"""Receptive fields against published values and hand derivations (no torch).

Published: Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019, table of TF-slim models at 224x224 -- VGG-16
pool5: r 212, S 32, P 90; AlexNet v2 pool5: r 195, S 32, P 64.  The stacks
in tests/stacks/ are written from tensorflow/models research/slim/nets
(vgg.py vgg_16, alexnet.py alexnet_v2): slim's conv2d pads SAME, its
max_pool2d VALID (arg scopes), alexnet_v2's conv1 is 11x11/4 VALID.

Output u sees input [u·S − P, u·S − P + r − 1] (SPEC §5).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import convcalc
from convcalc.analysis import region_at

STACKS = Path(__file__).resolve().parent / "stacks"


def _rf(rf):
    return tuple(rf.size), tuple(rf.stride), tuple(rf.padding)


@pytest.mark.parametrize("name, r, S, P, out", [
    # VGG-16 by hand: every conv 3x3/1 SAME (pad 1), pools 2x2/2.
    #   r: 1+2+2 =5, pool 6 (S 2); +2·2·2 =14, pool 16 (S 4); +3·2·4 =40, pool 44 (S 8);
    #      +3·2·8 =92, pool 100 (S 16); +3·2·16 =196, pool5 212 (S 32)
    #   P: 2, +2·2 =6, +3·4 =18, +3·8 =42, +3·16 =90 (pools add nothing)
    ("vgg16_slim", 212, 32, 90, (1, 512, 7, 7)),
    # AlexNet v2 by hand: conv1 11/4 VALID r 11 S 4 P 0 (224 -> 54); pool1 3/2 r 19 S 8
    #   (-> 26); conv2 5x5 SAME (pad 2) r 51 P 16; pool2 r 67 S 16 (-> 12);
    #   conv3-5 3x3 SAME r 163 P 64; pool5 r 195 S 32 (-> 5)
    ("alexnet_v2_slim", 195, 32, 64, (1, 256, 5, 5)),
])
def test_published_pool5(name, r, S, P, out):
    path = STACKS / f"{name}.stack"
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# ") and lines[1] == "# input: 1x3x224x224"
    a = convcalc.analyze(["@" + str(path)], (1, 3, 224, 224))
    pool5 = a.layers[-1]
    assert pool5.kind == "maxpool"
    assert tuple(pool5.output_shape) == out
    assert _rf(pool5.receptive_field) == ((r, r), (S, S), (P, P))
    assert _rf(a.receptive_field) == ((r, r), (S, S), (P, P))


def test_dilated_conv():
    # d·(k−1) + 1 = 2·2 + 1 = 5
    a = convcalc.analyze(["conv:1,k=3,d=2"], (1, 1, 16, 16))
    assert _rf(a.layers[-1].receptive_field) == ((5, 5), (1, 1), (0, 0))


def test_spec_worked_example_dilated_2x2():
    # SPEC §7: 4x4 input, 2x2 kernel, dilation 2 -> 2x2 output, receptive field 3
    a = convcalc.analyze(["conv:1,k=2,d=2"], (1, 1, 4, 4))
    assert tuple(a.output_shape) == (1, 1, 2, 2)
    assert a.layers[-1].receptive_field.size == (3, 3)
    # output (1, 0) reads rows 1 and 3, columns 0 and 2
    assert region_at(a, (1, 0)).region == ((1, 3), (0, 2))


def test_tf_same_padding_depends_on_input_size():
    # conv k=3, s=2, SAME.  At 224: o = ⌈224/2⌉ = 112, total = max(111·2 + 3 − 224, 0)
    # = 1, before = 0, after = 1 -> P = 0.  At 225: o = 113, total = 112·2 + 3 − 225
    # = 2, before = 1 -> P = 1.  r = 3 and S = 2 either way.
    at224 = convcalc.analyze(["conv:8,k=3,s=2,p=same"], (1, 3, 224, 224))
    at225 = convcalc.analyze(["conv:8,k=3,s=2,p=same"], (1, 3, 225, 225))
    assert tuple(at224.output_shape) == (1, 8, 112, 112)
    assert tuple(at225.output_shape) == (1, 8, 113, 113)
    assert tuple(map(tuple, at224.layers[0].padding)) == ((0, 1), (0, 1))
    assert tuple(map(tuple, at225.layers[0].padding)) == ((1, 1), (1, 1))
    assert _rf(at224.receptive_field) == ((3, 3), (2, 2), (0, 0))
    assert _rf(at225.receptive_field) == ((3, 3), (2, 2), (1, 1))
    # and so VGG-16's P would differ too: position 0 starts at −P
    assert region_at(at224, (0, 0)).unclipped == ((0, 2), (0, 2))
    assert region_at(at225, (0, 0)).unclipped == ((-1, 1), (-1, 1))


# conv:4,k=3,p=1 then tconv:2,k=4,s=2,p=1 on 1x1x8x8.
#
# conv (8 -> 8): position x reads inputs [x−1, x+1] (clipped to 0..7); r 3, S 1, P 1.
# tconv (8 -> (8−1)·2 − 2 + 3 + 1 = 16): output o reads conv outputs x with
# x·2 − 1 + j = o, j in 0..3, i.e. x = (o + 1 − j)/2 where that is an integer:
#   o = 2m (even):   j = 1 -> x = m,   j = 3 -> x = m − 1    => {m − 1, m}
#   o = 2m+1 (odd):  j = 0 -> x = m+1, j = 2 -> x = m        => {m, m + 1}
# so through the conv:
#   o = 2m   reads inputs [m − 2, m + 1],   o = 2m+1 reads [m − 1, m + 2]
# clipped to 0..7:
#   o = 0  (m 0): unclipped [−2, 1], tconv taps {−1, 0} -> {0} -> region [0, 1]
#   o = 1  (m 0): unclipped [−1, 2], taps {0, 1}        -> region [0, 2]
#   o = 6  (m 3): [1, 4] both;  o = 7 (m 3): [2, 5] both
#   o = 14 (m 7): unclipped [5, 8], taps {6, 7}         -> region [5, 7]
#   o = 15 (m 7): unclipped [6, 9], taps {7, 8} -> {7}  -> region [6, 7]
# Effective stride S = 1 · 1/2; r = 4 in both phases; with P the largest
# u·S − start(u) over a period: u=0: 0 − (−2) = 2, u=1: 1/2 − (−1) = 3/2 -> P = 2.
TCONV_CASES = [
    (0, (0, 1), (-2, 1)),
    (1, (0, 2), (-1, 2)),
    (6, (1, 4), (1, 4)),
    (7, (2, 5), (2, 5)),
    (14, (5, 7), (5, 8)),
    (15, (6, 7), (6, 9)),
]


def _tconv_stack():
    return convcalc.analyze(["conv:4,k=3,p=1", "tconv:2,k=4,s=2,p=1"], (1, 1, 8, 8))


def test_tconv_after_conv_receptive_field():
    a = _tconv_stack()
    assert tuple(a.output_shape) == (1, 2, 16, 16)
    assert _rf(a.layers[0].receptive_field) == ((3, 3), (1, 1), (1, 1))
    half = Fraction(1, 2)
    assert _rf(a.layers[1].receptive_field) == ((4, 4), (half, half), (2, 2))


@pytest.mark.parametrize("o, region, unclipped", TCONV_CASES)
def test_tconv_after_conv_region_at(o, region, unclipped):
    a = _tconv_stack()
    reg = region_at(a, (o, o))
    assert reg.region == (region, region)
    assert reg.unclipped == (unclipped, unclipped)


def test_tconv_after_conv_region_at_mixed_dims():
    reg = region_at(_tconv_stack(), (0, 15))
    assert reg.region == ((0, 1), (6, 7))
    assert reg.unclipped == ((-2, 1), (6, 9))
