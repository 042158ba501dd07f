"""The effective receptive field (issue 13 item 11): concat branches weighted
by their channels as a real uniform-weight network weights them, symmetric
fields give symmetric windows, and JSON keeps small gradients.

The oracle is PyTorch autograd through the same network built by hand with
uniform weights (every conv weight 1/(Cin/g·∏k), no bias, no nonlinearity),
seeded with the sum over the output's channels at one position."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import convcalc
from convcalc.cli import cli
from convcalc.pictures import erf, erf_extent


def _torch_erf(build, shape, at):
    torch = pytest.importorskip("torch")
    x = torch.ones(*shape, dtype=torch.float64, requires_grad=True)
    y = build(torch, x)
    y[(0, slice(None), *at)].sum().backward()
    g = x.grad[0].sum(0).abs().numpy()
    return g / g.max()


def _conv(torch, x, cout, k, p=0, s=1, d=1, groups=1):
    cin = x.shape[1]
    w = torch.full((cout, cin // groups, k, k), 1.0 / (cin // groups * k * k),
                   dtype=torch.float64)
    return torch.nn.functional.conv2d(x, w, stride=s, padding=p, dilation=d, groups=groups)


# Branches of 8 and 24 channels, so an unweighted join would be off by far
INCEPTION = ("save:x conv:8,k=1 save:a from:x conv:24,k=5,p=2 save:b "
             "from:x conv:4,k=3,p=1 conv:4,k=3,p=1 concat:a+b conv:6,k=3,p=1")


def _inception(torch, x):
    a = _conv(torch, x, 8, 1)
    b = _conv(torch, x, 24, 5, p=2)
    c = _conv(torch, _conv(torch, x, 4, 3, p=1), 4, 3, p=1)
    return _conv(torch, torch.cat([c, a, b], 1), 6, 3, p=1)


# DenseNet-style: each concat joins the block's input and its new features
DENSE = ("conv:16,k=3,p=1 save:h0 conv:4,k=3,p=1 concat:h0 save:h1 "
         "conv:4,k=3,p=1 concat:h1 save:h2 conv:12,k=1 avgpool:2 conv:5,k=3,p=1")


def _dense(torch, x):
    F = torch.nn.functional
    h0 = _conv(torch, x, 16, 3, p=1)
    h1 = torch.cat([_conv(torch, h0, 4, 3, p=1), h0], 1)
    h2 = torch.cat([_conv(torch, h1, 4, 3, p=1), h1], 1)
    return _conv(torch, F.avg_pool2d(_conv(torch, h2, 12, 1), 2), 5, 3, p=1)


# A depthwise branch (groups = channels) joined with a dense one
GROUPED = ("conv:6,k=1 save:x conv:6,k=3,p=1,g=6 save:dw from:x conv:2,k=5,p=2 "
           "concat:dw conv:3,k=1")


def _grouped(torch, x):
    x6 = _conv(torch, x, 6, 1)
    dw = _conv(torch, x6, 6, 3, p=1, groups=6)
    return _conv(torch, torch.cat([_conv(torch, x6, 2, 5, p=2), dw], 1), 3, 1)


@pytest.mark.parametrize("stack, build, shape, at", [
    (INCEPTION, _inception, (1, 3, 15, 15), (7, 7)),
    (INCEPTION, _inception, (1, 3, 15, 15), (0, 3)),
    (DENSE, _dense, (1, 2, 16, 16), (3, 4)),
    (GROUPED, _grouped, (1, 3, 11, 11), (5, 5)),
])
def test_erf_of_joins_matches_a_uniform_weight_network(stack, build, shape, at):
    ref = _torch_erf(build, shape, at)
    a = convcalc.analyze(stack.split(), shape)
    got = erf(a, at, len(a.layers) - 1)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_concat_weights_by_channels_by_hand():
    # 1-D: x → a = conv:1,k=1 (one channel, reads x[u]) and b = conv:3,k=3,p=1
    # (three channels, reads x[u−1..u+1], 1/3 each).  concat:b → 4 channels,
    # of which a holds 1 and b 3: the summed gradient at u is 1/4·1 from a and
    # 3/4·1/3 = 1/4 on each of u−1, u, u+1 from b: [1/4, 1/2, 1/4] → peak 1
    a = convcalc.analyze("save:x conv:3,k=3,p=1 save:b from:x conv:1,k=1 concat:b".split(),
                         (1, 1, 7))
    g = erf(a, (3,), len(a.layers) - 1)
    np.testing.assert_allclose(g, np.array([0, 0, 1, 2, 1, 0, 0]) / 2)


def test_symmetric_field_gives_a_symmetric_window():
    # issue 13: `rf @resnet18 --erf --layer 60` reported y 75..153, x 71..149
    r = CliRunner().invoke(cli, ["rf", "@resnet18", "--erf", "--layer", "60", "--format",
                                 "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    g = np.array(doc["erf"])
    # the field itself is the same in y and x (square input, square layers) ...
    np.testing.assert_allclose(g, g.T, rtol=1e-6, atol=1e-12)
    (y0, y1), (x0, x1) = doc["extent_95"]
    assert (y0, y1) == (x0, x1)
    # ... and the window is centred where the marginal is mirror-symmetric
    marg = g.sum(axis=1)
    centre = (y0 + y1) / 2
    k = int(min(centre, len(marg) - 1 - centre))
    lo, hi = int(np.floor(centre - k)), int(np.ceil(centre + k))
    np.testing.assert_allclose(marg[lo:hi + 1], marg[lo:hi + 1][::-1], rtol=1e-5, atol=1e-9)


def test_extent_of_symmetric_marginals_by_hand():
    # odd support, single peak: 1 2 3 2 1 (9): 95% needs all but < 0.45: 0..4
    assert erf_extent(np.array([1.0, 2, 3, 2, 1])) == ((0, 4),)
    # a flat top of two: 1 4 4 1 → start at both middles, then both ends together
    assert erf_extent(np.array([1.0, 4, 4, 1]), share=0.8) == ((1, 2),)
    assert erf_extent(np.array([1.0, 4, 4, 1])) == ((0, 3),)
    # a flat top of three, 60%: the middle one (1/3) is not enough; both sides at once
    assert erf_extent(np.array([1.0, 1, 1]), share=0.6) == ((0, 2),)
    # asymmetric: the larger neighbour first
    assert erf_extent(np.array([0.0, 1, 5, 3, 0]), share=0.85) == ((2, 3),)


def test_json_keeps_small_gradients():
    # a deep 1-D chain of k=3 convs: the tails fall to ~1e-9 of the peak
    tokens = ["conv:1,k=3,p=1"] * 24
    r = CliRunner().invoke(cli, ["rf", "-i", "1x1x64", *tokens, "--erf", "--at", "32",
                                 "--format", "json"])
    doc = json.loads(r.stdout)
    vals = doc["erf"][0]
    a = convcalc.analyze(tokens, (1, 1, 64))
    g = erf(a, (32,), len(a.layers) - 1)
    # by hand: ∂y/∂x_j ∝ the trinomial coefficient of 24 convs at offset j − 32
    coeff = np.polynomial.polynomial.polypow([1, 1, 1], 24)
    want = np.zeros(64)
    want[32 - 24:32 + 25] = coeff / coeff.max()
    np.testing.assert_allclose(g, want, rtol=1e-9, atol=0)
    tail = want[32 - 24]  # 1/C(24-ish): ~ 1e-9 of the peak
    assert 0 < tail < 1e-6
    assert vals[32 - 24] != 0
    np.testing.assert_allclose(vals, want, rtol=1e-6, atol=0)
