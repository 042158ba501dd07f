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
