"""Pictures: the --show grid and the effective receptive field (the SVG
diagram: tests/test_diagram.py)."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import convcalc
from convcalc.analysis import region_at
from convcalc.cli import cli
from convcalc.pictures import erf, erf_extent, region_grid


def test_show_grid_drawn_by_hand():
    # 5x5 input, conv k=3 p=1: output (0,0) reads rows/cols -1..1; -1 is padding
    a = convcalc.analyze(["conv:1,k=3,p=1"], (1, 1, 5, 5))
    grid = region_grid(a, region_at(a, (0, 0)))
    assert grid[:6] == ["▒▒▒   ",
                        "▒██···",
                        "▒██···",
                        " ·····",
                        " ·····",
                        " ·····"]


def test_show_grid_marks_dilation_holes():
    # 1-D, k=2 d=3: output 1 reads inputs 1 and 4 only
    a = convcalc.analyze(["conv:1,k=2,d=3"], (1, 1, 7))
    assert region_grid(a, region_at(a, (1,)))[0] == "·█··█··"


def test_show_cli_and_size_limit():
    r = CliRunner().invoke(cli, ["rf", "-i", "1x1x9x9", "conv:1,k=3,s=2", "--at", "1,1",
                                 "--show"])
    assert r.exit_code == 0 and "███" in r.stdout
    r = CliRunner().invoke(cli, ["rf", "-i", "1x1x200x200", "conv:1,k=3", "--at", "1,1",
                                 "--show"])
    assert r.exit_code == 3 and "at most 80" in r.stderr
    r = CliRunner().invoke(cli, ["rf", "-i", "1x1x9x9", "conv:1,k=3", "--show"])
    assert r.exit_code == 2


def test_erf_two_convs_by_hand():
    # each conv k=3 gives weight 1/3 per tap; output 2 of the second reads outputs 2..4
    # of the first, which read inputs 2..6: weights [1, 2, 3, 2, 1]/9 there, peak 3/9
    a = convcalc.analyze(["conv:1,k=3", "conv:1,k=3"], (1, 1, 9))
    g = erf(a, (2,), 1)
    expected = np.array([0, 0, 1, 2, 3, 2, 1, 0, 0]) / 3
    np.testing.assert_allclose(g, expected)
    # 95% of the mass 9/9: the whole 2..6 (without the ends it would be 7/9)
    assert erf_extent(g) == ((2, 6),)


def test_erf_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tokens = ["conv:1,k=3,p=1", "avgpool:2", "conv:1,k=5,d=2,p=2", "tconv:1,k=4,s=2,p=1",
              "up:2", "conv:1,k=3"]
    a = convcalc.analyze(tokens, (1, 1, 24, 20))
    x = torch.ones(1, 1, 24, 20, dtype=torch.float64, requires_grad=True)

    def w(k):  # uniform weights: every tap 1/k per dim
        return torch.full((1, 1, k, k), 1.0 / (k * k), dtype=torch.float64)
    h = F.conv2d(x, w(3), padding=1)
    h = F.avg_pool2d(h, 2)
    h = F.conv2d(h, w(5), dilation=2, padding=2)
    h = F.conv_transpose2d(h, w(4), stride=2, padding=1)
    h = F.interpolate(h, scale_factor=2.0, mode="nearest")
    h = F.conv2d(h, w(3))
    at = (9, 13)
    h[0, 0, at[0], at[1]].backward()
    ref = x.grad[0, 0].abs().numpy()
    got = erf(a, at, len(a.layers) - 1)
    np.testing.assert_allclose(got, ref / ref.max(), rtol=1e-9, atol=1e-12)


def test_erf_cli_formats():
    r = CliRunner().invoke(cli, ["rf", "@mnist", "--erf", "--layer", "6"])
    assert r.exit_code == 0 and "95% of the gradient mass" in r.stdout
    r = CliRunner().invoke(cli, ["rf", "@mnist", "--erf", "--layer", "6", "--format", "json"])
    import json
    doc = json.loads(r.stdout)
    assert doc["layer"] == 6 and len(doc["erf"]) == 28 and len(doc["erf"][0]) == 28
    assert max(max(row) for row in doc["erf"]) == 1.0
    r = CliRunner().invoke(cli, ["rf", "@mnist", "--erf"])
    assert r.exit_code == 3 and "mixes every position" in r.stderr
