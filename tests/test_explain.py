"""--explain: each layer's formulas with the numbers substituted (checked by hand)."""
from __future__ import annotations

import json

from click.testing import CliRunner

import convcalc
from convcalc.cli import cli


def lines(tokens, shape):
    return convcalc.analyze(tokens, shape, explain=True).layers[0].explain


def test_dilated_example_of_the_issue():
    # 4x4 input, 2x2 kernel, dilation 2: o = ⌊(4 + 0 + 0 − 2·(2−1) − 1)/1⌋ + 1 = 2
    ex = lines(["conv:1,k=2,d=2"], (1, 1, 4, 4))
    assert "y, x: o = ⌊(i + pb + pa − d·(k−1) − 1)/s⌋ + 1 = ⌊(4 + 0 + 0 − 2·(2−1) − 1)/1⌋ + 1 = 2" \
        in ex
    # receptive field 1 + 2·(2−1)·1 = 3
    assert any("r = r₀ + d·(k−1)·S₀ = 1 + 2·(2−1)·1 = 3" in line for line in ex)


def test_full_valid_same_on_5x5():
    # SPEC §7: 5x5 input, 3x3 kernel, stride 1: full -> 7 (2 a side), valid -> 3, same -> 5 (1, 1)
    full = lines(["conv:1,k=3,p=full"], (1, 1, 5, 5))
    assert "p=full: y, x: d·(k−1) = 1·(3−1) = 2 on both sides" in full
    assert any(line.endswith("⌊(5 + 2 + 2 − 1·(3−1) − 1)/1⌋ + 1 = 7") for line in full)
    valid = lines(["conv:1,k=3,p=valid"], (1, 1, 5, 5))
    assert "p=valid: no padding" in valid
    assert any(line.endswith("⌊(5 + 0 + 0 − 1·(3−1) − 1)/1⌋ + 1 = 3") for line in valid)
    same = lines(["conv:1,k=3,p=same"], (1, 1, 5, 5))
    assert any("max((⌈5/1⌉−1)·1 + 1·(3−1) + 1 − 5, 0) = 2 → 1 before, 1 after" in line
               for line in same)
    # a 2x2 kernel with same pads 0 before and 1 after
    same2 = lines(["conv:1,k=2,p=same"], (1, 1, 5, 5))
    assert any("= 1 → 0 before, 1 after" in line for line in same2)


def test_pool_ceil_rule_and_tconv_and_up():
    # 5 wide, k=2, s=2, p=1, ceil: ⌈(5+1+1−1−1)/2⌉+1 = 4, but (4−1)·2 = 6 ≥ 5+1: o = 3
    ex = lines(["maxpool:2,s=2,p=1,ceil"], (1, 1, 5))
    assert any("so o = 3" in line and "(o−1)·s = 6 ≥ i + pb = 6" in line for line in ex)
    # SPEC §7: tconv:64,k=3,s=2,p=1,op=1 on 16: (16−1)·2 − 1 − 1 + 1·(3−1) + 1 + 1 = 32
    ex = lines(["tconv:64,k=3,s=2,p=1,op=1"], (1, 128, 16, 16))
    assert "y, x: o = (i−1)·s − pb − pa + d·(k−1) + op + 1 = (16−1)·2 − 1 − 1 + 1·(3−1) + 1 + 1" \
           " = 32" in ex
    # REFERENCE: 10·1.7 → 17
    assert "x: o = ⌊i·scale⌋ = ⌊10·1.7⌋ = 17" in lines(["up:1.7"], (1, 1, 10))


def test_explain_in_cli_formats():
    r = CliRunner().invoke(cli, ["shape", "-i", "1x1x5x5", "conv:1,k=3,p=same", "--explain"])
    assert r.exit_code == 0 and "1 before, 1 after" in r.stdout
    r = CliRunner().invoke(cli, ["rf", "-i", "1x1x5x5", "conv:1,k=3,p=same", "--explain",
                                 "--format", "json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and "receptive_field" in doc["layers"][0]
    r = CliRunner().invoke(cli, ["shape", "-i", "1x1x5x5", "conv:1,k=3", "--explain",
                                 "--format", "json"])
    assert any("= 3" in line for line in json.loads(r.stdout)["layers"][0]["explain"])
