"""The receptive-field answers scripts read (issue 13 items 3, 5, 14)."""
from __future__ import annotations

import convcalc
from convcalc.analysis import last_field_row


def test_a_classifier_keeps_its_field_at_the_top_level():
    # ResNet-50 at 224: the last field before the global pool is 427 / 32 with
    # P = 213 (the published value; test_rf_published holds the arithmetic)
    d = convcalc.analyze(["@resnet50"]).to_dict()
    assert d["receptive_field"] is None
    assert "aavgpool:1" in d["receptive_field_note"]
    assert d["receptive_field_before_mixing"] == {
        "layer": 196, "local": False, "size": [427, 427], "stride": [32, 32],
        "padding": [213, 213]}


def test_last_before_mixing_does_not_depend_on_token_order():
    # paths of r 5 (k=5) and 3 (k=3) and a global branch joined by one concat:
    # the field there is the larger, 5, whichever path is current
    head = ["save:x", "conv:8,k=5,p=2", "save:a", "from:x", "conv:8,k=3,p=1", "save:b",
            "from:x", "gap", "up:size=8", "save:g"]
    tail = ["gap", "flatten", "linear:10"]
    for join in (["from:b", "concat:a+g"], ["from:a", "concat:b+g"]):
        a = convcalc.analyze(head + join + tail, (1, 3, 8, 8))
        last = last_field_row(a)
        assert last.index == 12 and last.local_receptive_field.size == (5, 5)
        assert a.to_dict()["receptive_field_before_mixing"]["size"] == [5, 5]


def test_analyze_uses_a_stacks_own_input():
    a = convcalc.analyze(["@mnist"])
    assert a.input_shape == (1, 1, 28, 28) and a.totals.params == 21840  # SPEC §7


def test_fractional_strides_read_clearly():
    # tconv k=4, s=2, p=1: stride 1/2 per dim; r = 2 (each output reads 2 inputs)
    from click.testing import CliRunner

    from convcalc.cli import cli
    r = CliRunner().invoke(cli, ["shape", "-i", "1x1x8x8", "tconv:1,k=4,s=2,p=1", "--explain"])
    assert "2 / (1/2)" in r.output
    assert "S = S₀·(1/2) = 1·(1/2) = 1/2" in r.output


def test_show_draws_a_bounded_margin_of_padding():
    """rf --at --show draws at most 8 padding positions past each border (a
    64x64 input at resnet18 depth used to draw 435x435 characters; a padding
    of 10^9 never finished)."""
    from click.testing import CliRunner

    from convcalc.cli import cli
    r = CliRunner().invoke(cli, ["rf", "-i", "1x3x64x64", "@resnet18", "--at", "0,0",
                                 "--layer", "20", "--show"])
    grid = [line for line in r.output.splitlines() if set(line) <= set("█·▒ ") and line]
    assert r.exit_code == 0 and len(grid) <= 64 + 2 * 8
    assert max(len(line) for line in grid) <= 64 + 2 * 8
    assert "drawn up to 8 past the border" in r.output
    r = CliRunner().invoke(cli, ["rf", "-i", "1x1x80x80", "conv:1,k=1,p=1000000000",
                                 "--at", "5,5", "--show"])
    assert r.exit_code == 0 and "-999999995..79" in r.output  # 5 − 10^9, reached but not drawn
