"""``convcalc check`` (CI assertions) and ``convcalc solve`` (layer geometry,
input sizes), through ``click.testing.CliRunner``.

Expected numbers are worked out by hand in the comments:
conv / pool  o = ⌊(i + T − d(k−1) − 1)/s⌋ + 1   (T = total padding),
tconv        o = (i − 1)s − 2p + d(k−1) + op + 1,  0 ≤ op < max(s, d).
"""
from __future__ import annotations

import json
import random
import re

import pytest
from click.testing import CliRunner

from convcalc.analysis import analyze
from convcalc.cli import cli
from convcalc.errors import ConvcalcError
from convcalc.errors import StackSyntaxError
from convcalc.solve import MAX_SIZES, solve_layer


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def check_json(*args):
    r = run("check", *args, "--format", "json")
    return r, json.loads(r.stdout)


def by_name(doc):
    return {c["name"]: c for c in doc["checks"]}


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------

# @vgg16 at its default 1x3x224x224: 138,357,544 params, 15,470,264,320 MACs.
# Receptive field before the classifier: two convs r 5, pool 6 (S 2); two convs
# 6 + 2·2·2 = 14, pool 16 (S 4); three convs 16 + 3·2·4 = 40, pool 44 (S 8);
# three convs 44 + 3·2·8 = 92, pool 100 (S 16); three convs 100 + 3·2·16 = 196,
# pool 212 (S 32).  aavgpool:7 at 7x7 keeps it (layer 32); flatten mixes.
VGG_ALL_PASS = ["@vgg16", "--expect-output", "1x1000", "--max-params", "139M",
                "--max-macs", "15.5G", "--min-rf", "212", "--divisible-by", "32"]
VGG_ALL_FAIL = ["@vgg16", "--expect-output", "1x10", "--max-params", "1M",
                "--max-macs", "1G", "--min-rf", "213", "--divisible-by", "64"]
NAMES = ["output shape", "params", "MACs", "receptive field", "divisible by"]  # the table's
KEYS = ["expect_output", "max_params", "max_macs", "min_rf", "divisible_by"]  # SPEC §5's


def test_check_every_assertion_passes():
    r = run("check", *VGG_ALL_PASS)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    for name in NAMES:
        row = next(line for line in lines if line.startswith(name))
        assert row.rstrip().endswith("pass"), row
    assert "FAIL" not in r.stdout
    assert "5 of 5 checks passed" in r.stdout
    assert "212x212 (at layer 32, before positions mix)" in r.stdout
    # 32, 64, …, 224: seven multiples of 32
    assert "checked 7 sizes from 32 to 224" in r.stdout


def test_check_every_assertion_fails():
    r = run("check", *VGG_ALL_FAIL)
    assert r.exit_code == 1
    assert r.stdout.count("FAIL") == 5
    assert "0 of 5 checks passed" in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.strip()]
    assert errors == [
        "Error: check failed: output shape: expected 1x10, got 1x1000",
        "Error: check failed: params: expected ≤ 1,000,000, got 138,357,544",
        "Error: check failed: MACs: expected ≤ 1,000,000,000, got 15,470,264,320",
        "Error: check failed: receptive field: expected ≥ 213 in every dim, got 212x212 "
        "(at layer 32, before positions mix)",
        "Error: check failed: divisible by: expected every input size divisible by 64 works "
        "exactly, got the input 224x224 is not divisible by 64",
    ]
    assert "Traceback" not in r.stderr


def test_check_some_fail_lists_only_those():
    r = run("check", "@vgg16", "--expect-output", "1x1000", "--max-params", "100M")
    assert r.exit_code == 1
    assert r.stdout.count("FAIL") == 1
    assert "1 of 2 checks passed" in r.stdout
    assert [line for line in r.stderr.splitlines() if line.strip()] == [
        "Error: check failed: params: expected ≤ 100,000,000, got 138,357,544"]


def test_check_json_report():
    # SPEC §5: {"ok", "checks": [{"name", "limit", "actual", "ok"}]}, plain JSON values
    r, doc = check_json(*VGG_ALL_PASS)
    assert r.exit_code == 0
    assert doc["ok"] is True
    assert doc["input_shape"] == [1, 3, 224, 224]
    assert [c["name"] for c in doc["checks"]] == KEYS
    for c in doc["checks"]:
        assert {"name", "limit", "actual", "ok"} <= set(c) <= {"name", "limit", "actual", "ok",
                                                               "layer", "note"}
        assert c["ok"] is True
    c = by_name(doc)
    assert c["expect_output"]["limit"] == c["expect_output"]["actual"] == [1, 1000]
    assert c["max_params"]["limit"] == 139_000_000
    assert c["max_params"]["actual"] == 138_357_544
    assert c["max_macs"]["limit"] == 15_500_000_000
    assert c["max_macs"]["actual"] == 15_470_264_320
    assert c["min_rf"]["limit"] == 212
    # r 212, S 32 (five 2x pools); P adds each 3x3 conv's p=1 times its S:
    # 2·1 + 2·2 + 3·4 + 3·8 + 3·16 = 90 (the pools pad nothing)
    assert c["min_rf"]["actual"] == {"size": [212, 212], "stride": [32, 32], "padding": [90, 90]}
    assert c["min_rf"]["layer"] == 32
    assert c["divisible_by"]["limit"] == 32
    assert c["divisible_by"]["actual"] == [32, 64, 96, 128, 160, 192, 224]

    r, doc = check_json(*VGG_ALL_FAIL)
    assert r.exit_code == 1
    assert doc["ok"] is False
    assert [c["ok"] for c in doc["checks"]] == [False] * 5
    c = by_name(doc)
    assert c["expect_output"]["limit"] == [1, 10] and c["expect_output"]["actual"] == [1, 1000]
    assert c["max_params"]["limit"] == 1_000_000
    assert c["max_macs"]["limit"] == 1_000_000_000
    assert c["divisible_by"]["limit"] == 64
    assert c["divisible_by"]["actual"] == 224  # the size that fails: 224 = 3·64 + 32
    assert r.stderr.count("Error: check failed:") == 5


def test_check_csv_and_markdown():
    r = run("check", *VGG_ALL_FAIL[:7], "--format", "csv")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0] == "name,limit,actual,ok,note"
    assert lines[1] == "expect_output,1x10,1x1000,false,"
    assert lines[2] == "max_params,1000000,138357544,false,"
    assert lines[3] == "max_macs,1000000000,15470264320,false,"
    r = run("check", *VGG_ALL_PASS[:3], "--format", "markdown")
    assert r.exit_code == 0
    assert "| output shape | 1x1000 | 1x1000 | pass |" in r.stdout


@pytest.mark.parametrize("model,option,limit,passed,bound,actual", [
    # @resnet50: 25,557,032 params, 4,089,184,256 MACs
    ("@resnet50", "--max-params", "25M", False, 25_000_000, 25_557_032),
    ("@resnet50", "--max-params", "26M", True, 26_000_000, 25_557_032),
    ("@resnet50", "--max-params", "25.6m", True, 25_600_000, 25_557_032),
    ("@resnet50", "--max-macs", "4.1G", True, 4_100_000_000, 4_089_184_256),
    ("@resnet50", "--max-macs", "4G", False, 4_000_000_000, 4_089_184_256),
    ("@resnet50", "--max-macs", "4089184256", True, 4_089_184_256, 4_089_184_256),  # the bound is inclusive
    ("@resnet50", "--max-macs", "4089184255", False, 4_089_184_255, 4_089_184_256),
    # @resnet18: 1,814,073,344 MACs; 2 GiB = 2·1024³ = 2,147,483,648 > it > 1.8 G
    ("@resnet18", "--max-macs", "2GiB", True, 2_147_483_648, 1_814_073_344),
    ("@resnet18", "--max-macs", "1.8G", False, 1_800_000_000, 1_814_073_344),
    ("@resnet18", "--max-params", "11.7M", True, 11_700_000, 11_689_512),  # 11,689,512
    ("@resnet18", "--max-params", "1.5Mi", False, 1_572_864, 11_689_512),
    ("@mnist", "--max-params", "22k", True, 22_000, 21_840),  # 21,840
    ("@mnist", "--max-params", "21k", False, 21_000, 21_840),
])
def test_check_si_suffixes(model, option, limit, passed, bound, actual):
    r, doc = check_json(model, option, limit)
    assert r.exit_code == (0 if passed else 1), (r.stdout, r.stderr)
    (c,) = doc["checks"]
    assert c["name"] == option[2:].replace("-", "_")
    assert c["ok"] is passed and doc["ok"] is passed
    assert c["limit"] == bound and type(c["limit"]) is int
    assert c["actual"] == actual and type(c["actual"]) is int


@pytest.mark.parametrize("bad", ["lots", "25X", "-5", "1e9"])
def test_check_bad_quantity_exit_2(bad):
    r = run("check", "@mnist", "--max-params", bad)
    assert r.exit_code == 2
    assert "Traceback" not in r.stderr


def test_check_min_rf_classifier_uses_last_layer_before_mixing():
    r, doc = check_json("@vgg16", "--min-rf", "212")
    assert r.exit_code == 0
    (c,) = doc["checks"]
    assert c["actual"]["size"] == [212, 212] and c["layer"] == 32
    assert c["note"] == "at layer 32, before positions mix"
    r, doc = check_json("@vgg16", "--min-rf", "213")
    assert r.exit_code == 1
    assert doc["checks"][0]["ok"] is False and doc["checks"][0]["limit"] == 213


def test_check_min_rf_fully_convolutional():
    # two 3x3 convs: r = 1 + 2 + 2 = 5 at the output itself
    r, doc = check_json("-i", "1x1x16x16", "conv:1,k=3", "conv:1,k=3", "--min-rf", "5")
    assert r.exit_code == 0
    # S 1, P 0: output u sees input u..u+4
    assert doc["checks"][0]["actual"] == {"size": [5, 5], "stride": [1, 1], "padding": [0, 0]}
    r, doc = check_json("-i", "1x1x16x16", "conv:1,k=3", "conv:1,k=3", "--min-rf", "6")
    assert r.exit_code == 1
    # "in every dim": k=5x3 gives 5x3, which is not ≥ 4 in dim 2
    r, doc = check_json("-i", "1x1x16x16", "conv:1,k=5x3", "--min-rf", "4")
    assert r.exit_code == 1
    assert doc["checks"][0]["actual"]["size"] == [5, 3]


def test_check_min_rf_no_spatial_dims_fails():
    r, doc = check_json("-i", "1x10", "linear:5", "--min-rf", "1")
    assert r.exit_code == 1
    assert doc["checks"][0]["ok"] is False
    assert doc["checks"][0]["actual"] is None


def test_check_min_rf_misaligned_output_tests_the_box_and_notes_the_offset():
    # x + conv k=2 p=0:1 (x): windows [u, u+1] and [u, u], centers 1/2 apart; the
    # field is their box, size 2: --min-rf 2 passes with the note, 3 fails
    r, doc = check_json("-i", "1x1x9x9", "save:x", "conv:1,k=2,p=0:1", "add:x", "--min-rf", "2")
    assert r.exit_code == 0
    (c,) = doc["checks"]
    assert c["ok"] is True and c["actual"]["size"] == [2, 2]
    assert c["actual"]["misaligned_by"] == [0.5, 0.5]
    assert "centered up to 1/2 input positions apart" in c["note"]
    r, doc = check_json("-i", "1x1x9x9", "save:x", "conv:1,k=2,p=0:1", "add:x", "--min-rf", "3")
    assert r.exit_code == 1 and doc["checks"][0]["ok"] is False


def test_check_divisible_by_unet():
    # 512 = 16·32 = 32·16: four pools need 16; every multiple of 16 (or 32) up to
    # 512 halves exactly four times
    r, doc = check_json("@unet", "-i", "1x1x512x512", "--divisible-by", "16")
    assert r.exit_code == 0, r.stderr
    # 32 multiples of 16 sampled to 16 (as the help says): 15 spread evenly,
    # index i·31//15 = 0, 2, …, 28 → 16, 48, …, 464, and 512 itself
    assert doc["checks"][0]["actual"] == [*range(16, 465, 32), 512]
    assert len(doc["checks"][0]["actual"]) == 16
    assert doc["checks"][0]["note"] == "checked 16 sizes from 16 to 512"
    r, doc = check_json("@unet", "-i", "1x1x512x512", "--divisible-by", "32")
    assert r.exit_code == 0, r.stderr
    assert doc["checks"][0]["actual"] == list(range(32, 513, 32))  # 16 multiples, all


def test_check_divisible_by_unet_fails():
    # 528 = 16·33 works itself but is not a multiple of 32
    r, doc = check_json("@unet", "-i", "1x1x528x528", "--divisible-by", "32")
    assert r.exit_code == 1
    assert doc["checks"][0]["actual"] == 528
    assert doc["checks"][0]["note"] == "the input 528x528 is not divisible by 32"
    # 512 is a multiple of 8, but 40 = 8·5 is not of 16: 40 → 20 → 10 → 5 → 2,
    # then 2·2 = 4 ≠ 5 at the first concat.  (8, the first multiple, is too small
    # for four pools at all: skipped.)
    r, doc = check_json("@unet", "-i", "1x1x512x512", "--divisible-by", "8")
    assert r.exit_code == 1
    assert doc["checks"][0]["actual"] == 40
    assert doc["checks"][0]["layer"] == 40
    actual = doc["checks"][0]["note"]
    assert actual.startswith("fails at 40: layer 40 (concat:e4)")
    assert "1x512x4x4 (the current tensor) vs 1x512x5x5" in actual


def test_check_at_572_the_stack_itself_fails():
    # README: "2 or 3 when the stack itself is wrong": @unet cannot be computed at 572
    r = run("check", "@unet", "-i", "1x1x572x572", "--divisible-by", "16")
    assert r.exit_code == 3
    assert "concat: 1x512x70x70 (the current tensor) vs 1x512x71x71" in r.stderr
    assert "not divisible by 16" in r.stderr
    assert r.stdout == ""


def test_check_divisible_by_smaller_multiple_fails():
    # five 2x pools then ×32 back up: needs multiples of 32.  At 512 with 16:
    # 16 is too small (16 → … → 1 → 0: skipped); 48 → 24 → 12 → 6 → 3 → 1 → 32 ≠ 48
    stack = ["conv:2,k=3,p=1", "save:e"] + ["maxpool:2"] * 5 + ["up:32", "concat:e"]
    r, doc = check_json("-i", "1x1x512x512", *stack, "--divisible-by", "16")
    assert r.exit_code == 1
    assert doc["checks"][0]["actual"] == 48 and doc["checks"][0]["layer"] == 9
    assert doc["checks"][0]["note"].startswith("fails at 48: layer 9 (concat:e)")
    r, doc = check_json("-i", "1x1x512x512", *stack, "--divisible-by", "32")
    assert r.exit_code == 0
    assert doc["checks"][0]["actual"] == list(range(32, 513, 32))


def test_check_divisible_by_rounding_layer_without_join():
    # no join at all: a conv k=2 s=2 at 6 → 3 … then another → 1 reads 0..1 of 3
    r, doc = check_json("-i", "1x1x12", "conv:1,k=2,s=2", "conv:1,k=2,s=2", "--divisible-by",
                        "2")
    # 2 → 1 → too small: skipped; 4 ok; 6: 3 → 1 drops one; (12 fine)
    assert r.exit_code == 1
    assert doc["checks"][0]["actual"] == 6 and doc["checks"][0]["layer"] == 2
    actual = doc["checks"][0]["note"]
    assert actual.startswith("at 6: layer 2 (conv:1,k=2,s=2) never reads the last 1 input "
                             "position of 3"), actual


def test_check_without_assertion_exit_2():
    r = run("check", "@vgg16")
    assert r.exit_code == 2
    assert "no assertion given" in r.stderr
    assert r.stdout == ""


def test_check_stack_errors_keep_their_codes():
    r = run("check", "-i", "1x1x8x8", "add:nope", "--max-params", "1")
    assert r.exit_code == 2
    r = run("check", "-i", "1x1x2x2", "conv:1,k=5", "--max-params", "1")
    assert r.exit_code == 3


# ---------------------------------------------------------------------------
# solve conv | tconv | maxpool | avgpool
# ---------------------------------------------------------------------------

def solve_json(kind, *args):
    r = run("solve", kind, *args, "--format", "json")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def out_size(token: str, size: int, channels: int = 3) -> int:
    """The token with C filled in, analyzed by convcalc at a 1-D input."""
    a = analyze([token.replace("C", str(channels))], (1, 2, size))
    return a.output_shape[-1]


def test_solve_conv_64_to_32_k4_s2():
    # ⌊(64 + T − 3 − 1)/2⌋ + 1 = 32  ⇔  60 + T ∈ {62, 63}  ⇔  T ∈ {2, 3}
    doc = solve_json("conv", "--in", 64, "--out", 32, "-k", 4, "-s", 2)
    assert doc["kind"] == "conv" and doc["in"] == 64 and doc["out"] == 32
    # both read real input in every window (output 0 reads −1..2) and leave none
    # unread (the last window ends at 31·2 − 1 + 3 = 64 ≥ 63); 1:2 needs an F.pad
    same = {"op": 0, "ceil": False, "wasted": False, "loses": False}
    assert doc["solutions"] == [
        {"token": "conv:C,k=4,s=2,p=1", "k": 4, "s": 2, "d": 1, "padding": [1, 1],
         **same, "in_pytorch": True},
        {"token": "conv:C,k=4,s=2,p=1:2", "k": 4, "s": 2, "d": 1, "padding": [1, 2],
         **same, "in_pytorch": False},
    ]
    assert doc["total"] == 2
    r = run("solve", "conv", "--in", 64, "--out", 32, "-k", 4, "-s", 2)
    assert r.exit_code == 0
    assert "2 ways to map 64 → 32 with conv" in r.stdout
    assert "⌊(64 + 1 + 2 − 1·(4−1) − 1)/2⌋ + 1 = 32" in r.stdout


@pytest.mark.parametrize("args,tokens", [
    # ⌊(224 + T − 7)/2⌋ + 1 = 112  ⇔  T ∈ {5, 6}; the odd unit after; symmetric first
    (("--in", 224, "--out", 112, "-k", 7, "-s", 2), ["conv:C,k=7,s=2,p=3", "conv:C,k=7,s=2,p=2:3"]),
    # stride 1: T = 2 exactly
    (("--in", 32, "--out", 32, "-k", 3, "-s", 1), ["conv:C,k=3,p=1"]),
    # dilation 2: d(k−1) = 4, T = 4
    (("--in", 32, "--out", 32, "-k", 3, "-s", 1, "-d", 2), ["conv:C,k=3,p=2,d=2"]),
    # shrinking without padding: 10 − 3 + 1 = 8
    (("--in", 10, "--out", 8, "-k", 3, "-s", 1), ["conv:C,k=3"]),
    # k=1 s=3: ⌊(10 + T − 1)/3⌋ + 1 = 4  ⇔  9 + T ∈ {9, 10, 11}  ⇔  T ∈ {0, 1, 2};
    # p=1 reads only padding at output 0 (tap −1): last; asymmetric 0:1 before it
    (("--in", 10, "--out", 4, "-k", 1, "-s", 3),
     ["conv:C,k=1,s=3", "conv:C,k=1,s=3,p=0:1", "conv:C,k=1,s=3,p=1"]),
])
def test_solve_conv_hand(args, tokens):
    doc = solve_json("conv", *args)
    assert [x["token"] for x in doc["solutions"]] == tokens




@pytest.mark.parametrize("i,o,k,s,pairs", [
    # 62 − 2p + 3 + op + 1 = 64  ⇔  2p − op = 2, op ∈ {0, 1}  ⇒  (p, op) = (1, 0)
    (32, 64, 4, 2, [(1, 0)]),
    # k=3: 62 − 2p + 2 + op + 1 = 63  ⇔  2p − op = 2  ⇒  (1, 0)   (p ≤ d(k−1) = 2)
    (32, 63, 3, 2, [(1, 0)]),
    # 65 − 2p + op = 65  ⇒  (0, 0)
    (32, 65, 3, 2, [(0, 0)]),
    # 16 → 16 with k=3 s=1: 15 − 2p + 2 + 1 = 16 ⇒ p = 1 (op must be 0 < max(1, 1))
    (16, 16, 3, 1, [(1, 0)]),
    # 65 − 2p + op = 64  ⇔  2p − op = 1  ⇒  (p, op) = (1, 1)
    (32, 64, 3, 2, [(1, 1)]),
    # 65 − 2p + op = 66  ⇔  op − 2p = 1  ⇒  (0, 1)
    (32, 66, 3, 2, [(0, 1)]),
    # s=3, k=3: 93 − 2p + 2 + op + 1 = 96 − 2p + op = 95 ⇔ 2p − op = 1 ⇒ (1, 1)
    (32, 95, 3, 3, [(1, 1)]),
])
def test_solve_tconv_hand(i, o, k, s, pairs):
    r = run("solve", "tconv", "--in", i, "--out", o, "-k", k, "-s", s, "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    got = [(x["padding"][0], x["op"]) for x in doc["solutions"]]
    assert got == pairs
    for x in doc["solutions"]:
        assert x["padding"][0] == x["padding"][1]  # PyTorch pads a tconv symmetrically
        assert out_size(x["token"], i) == o


def test_solve_tconv_token_text():
    doc = solve_json("tconv", "--in", 32, "--out", 64, "-k", 4, "-s", 2)
    assert [x["token"] for x in doc["solutions"]] == ["tconv:C,k=4,s=2,p=1"]
    r = run("solve", "tconv", "--in", 32, "--out", 64, "-k", 4, "-s", 2)
    assert "(32−1)·2 − 1 − 1 + 1·(4−1) + 0 + 1 = 64" in r.stdout
    assert "crop" in r.stdout  # a tconv's padding column says what it crops


def test_solve_tconv_readme_example_every_kernel():
    # README: `convcalc solve tconv --in 32 --out 64 -s 2`.  For each k in 1..11,
    # 62 − 2p + (k − 1) + op + 1 = 64  ⇔  2p − op = k − 2, 0 ≤ op ≤ 1, 0 ≤ p ≤ k − 1:
    # p = ⌊(k − 1)/2⌋ and op = k mod 2 (k=1: p = 0, op = 1)
    doc = solve_json("tconv", "--in", 32, "--out", 64, "-s", 2, "--limit", 0)
    got = sorted((x["k"], x["padding"][0], x["op"]) for x in doc["solutions"])
    assert got == [(k, (k - 1) // 2, k % 2) for k in range(1, 12)]


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
def test_solve_pools_hand(kind):
    # k=3 s=2: ⌊(64 + T − 2 − 1)/2⌋ + 1 = 32 ⇔ T ∈ {1, 2}; each side ≤ 3/2: (1,1)
    # (symmetric, first), (0,1); ceil mode: ⌈(61 + 2p)/2⌉ + 1 = 32 ⇔ p = 0 (31 + 1)
    doc = solve_json(kind, "--in", 64, "--out", 32, "-k", 3, "-s", 2)
    assert [x["token"] for x in doc["solutions"]] == [
        f"{kind}:3,s=2,p=1", f"{kind}:3,s=2,ceil", f"{kind}:3,s=2,p=0:1"]
    # k=2 s=2 (the default stride, not written): T ∈ {0, 1}; (0, 1) has 1 ≤ 2/2;
    # ceil: ⌈(63 + 2p)/2⌉ + 1 is 33 at p = 0 and 34 at p = 1: none
    doc = solve_json(kind, "--in", 64, "--out", 32, "-k", 2, "-s", 2)
    assert [x["token"] for x in doc["solutions"]] == [f"{kind}:2", f"{kind}:2,p=0:1"]
    # 7 → 3, k=3 s=2: ⌊(4 + T)/2⌋ = 2 ⇔ T ∈ {0, 1}; ceil: ⌈4/2⌉ + 1 = 3 = floor's: not listed
    doc = solve_json(kind, "--in", 7, "--out", 3, "-k", 3, "-s", 2)
    assert [x["token"] for x in doc["solutions"]] == [f"{kind}:3,s=2", f"{kind}:3,s=2,p=0:1"]
    # 5 → 6 with k=3 s=1 needs T = 3, a side of 2 > 3/2: none
    r = run("solve", kind, "--in", 5, "--out", 6, "-k", 3, "-s", 1)
    assert r.exit_code == 1
    assert f"No {kind} with those settings maps 5 to 6." in r.stderr


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
@pytest.mark.parametrize("i,o", [(64, 32), (7, 3), (30, 10), (9, 9), (13, 7)])
def test_solve_pools_each_side_at_most_half_the_kernel(kind, i, o):
    doc = solve_json(kind, "--in", i, "--out", o)
    assert doc["solutions"]
    for x in doc["solutions"]:
        b, a = x["padding"]
        assert 2 * max(b, a) <= x["k"], x
        assert a - b in (0, 1)  # the odd unit after
        assert out_size(x["token"], i) == o


def _solve_cases():
    cases = []
    for kind in ("conv", "tconv", "maxpool", "avgpool"):
        for i, o in ((64, 32), (32, 64), (28, 28), (224, 112), (15, 8), (8, 15), (100, 33),
                     (5, 1), (1, 4)):
            for extra in ((), ("-s", 2), ("-k", 3), ("-k", 4, "-s", 2)):
                cases.append((kind, i, o, extra))
    return cases


def test_solve_every_listed_solution_gives_the_target_except_tconv():
    """Every listed conv/pool solution, with C filled in and analyzed (1-D and
    2-D), gives the target size; and the kernels and strides stay in the
    searched ranges (k 1..11, s 1..4)."""
    checked = 0
    for kind, i, o, extra in _solve_cases():
        if kind == "tconv":
            continue
        r = run("solve", kind, "--in", i, "--out", o, *extra, "--format", "json", "--limit", 0)
        if r.exit_code == 1:  # nothing maps i to o here: still a document (SPEC §6)
            assert json.loads(r.stdout)["solutions"] == [] and "No " in r.stderr
            continue
        assert r.exit_code == 0, (kind, i, o, extra, r.stderr)
        for x in json.loads(r.stdout)["solutions"]:
            assert 1 <= x["k"] <= 11 and 1 <= x["s"] <= 4
            assert out_size(x["token"], i) == o, (kind, i, o, x)
            a = analyze([x["token"].replace("C", "4")], (1, 1, i, i))
            assert a.output_shape[2:] == (o, o)
            checked += 1
    assert checked > 300


def test_solve_every_listed_tconv_solution_gives_the_target():
    bad, checked, empty = [], 0, 0
    for kind, i, o, extra in _solve_cases():
        if kind != "tconv":
            continue
        r = run("solve", kind, "--in", i, "--out", o, *extra, "--format", "json", "--limit", 0)
        if r.exit_code == 1:  # no solution: still a document with none listed
            assert json.loads(r.stdout)["solutions"] == []
            empty += 1
            continue
        assert r.exit_code == 0, (i, o, extra, r.stderr)
        for x in json.loads(r.stdout)["solutions"]:
            checked += 1
            try:
                got = out_size(x["token"], i)
            except ConvcalcError as e:
                got = str(e)
            if got != o:
                bad.append((i, o, x["token"], got))
    assert not bad, bad[:5]
    assert checked > 100 and empty >= 1, (checked, empty)


def _brute(kind, i, o, k, s, d):
    """Every (k, s, before, after, op) by the formulas, as solve promises to list."""
    out = set()
    for kk in ([k] if k else range(1, 12)):
        for ss in ([s] if s else range(1, 5)):
            span = d * (kk - 1)
            if kind == "tconv":
                for p in range(0, span + 1):
                    for op in range(0, max(ss, d)):
                        if (i - 1) * ss - 2 * p + span + op + 1 == o:
                            out.add((kk, ss, p, p, op))
                continue
            for total in range(0, o * ss + span + 1):  # T ≤ (o−1)s + span + 1 − i + s − 1
                before, after = total // 2, total - total // 2
                if kind != "conv" and 2 * after > kk:
                    continue
                if i + total - span - 1 < 0:
                    continue
                if (i + total - span - 1) // ss + 1 == o:
                    out.add((kk, ss, before, after, 0))
            if kind != "conv":  # ceil mode, symmetric padding, where floor differs
                for p in range(0, kk // 2 + 1):
                    top = i + 2 * p - span - 1
                    if top < 0:
                        continue
                    windows = -(-top // ss) + 1
                    if (windows - 1) * ss >= i + p:  # PyTorch: the last window starts inside
                        windows -= 1
                    if windows == o != top // ss + 1:
                        out.add((kk, ss, p, p, "ceil"))
    return out


@pytest.mark.parametrize("kind", ["conv", "maxpool", "avgpool"])
def test_solve_lists_every_solution(kind):
    n = 0
    for i in range(1, 19, 3):
        for o in range(1, 19, 2):
            want = _brute(kind, i, o, None, None, 1)
            got = {(x.k, x.s, *x.padding, "ceil" if x.ceil else x.op)
                   for x in solve_layer(kind, i, o)}
            assert got == want, (kind, i, o, sorted(want - got), sorted(got - want))
            n += len(got)
    assert n > 100


def test_solve_lists_every_tconv_solution():
    n = 0
    for i in range(1, 19, 3):
        for o in range(1, 40, 3):
            want = _brute("tconv", i, o, None, None, 1)
            got = {(x.k, x.s, *x.padding, x.op) for x in solve_layer("tconv", i, o)}
            assert got == want, (i, o, sorted(want - got), sorted(got - want))
            n += len(got)
    assert n > 100


@pytest.mark.parametrize("kind", ["conv", "tconv", "maxpool", "avgpool"])
def test_solve_counts_huge_ranges_without_listing_them(kind):
    # CI's fuzz hang: k = s = 10⁶ took 43 s (a set of 10⁶ residues per solution,
    # per sort key). Now the count is exact and only the best are listed.
    rng = random.Random(15)
    for _ in range(40):
        k, s = rng.randint(1, 900), rng.randint(1, 900)
        d = 1 if kind == "avgpool" else rng.randint(1, 3)
        i, o = rng.randint(1, 40), rng.randint(1, 6)
        if kind == "tconv":
            o = rng.randint(max(1, (i - 1) * s - d * (k - 1)), (i - 1) * s + d * (k - 1) + 1)
        want = _brute(kind, i, o, k, s, d)
        got = solve_layer(kind, i, o, k, s, d)
        assert got.total == len(want), (kind, i, o, k, s, d)
        listed = {(x.k, x.s, *x.padding, "ceil" if x.ceil else x.op) for x in got}
        assert listed <= want and len(listed) == min(len(want), 200)
    # by hand: 1 → 1 with k = s = 10⁶ takes a total padding T with
    # ⌊(1 + T − 999999 − 1)/10⁶⌋ = 0, T in [999999, 1999998]: 10⁶ ways; the best
    # 200 are the symmetric ones p = 500000 … 500199 (T odd is asymmetric)
    if kind == "conv":
        doc = solve_json("conv", "--in", 1, "--out", 1, "-k", 10**6, "-s", 10**6,
                         "--limit", 0)
        assert doc["total"] == 10**6
        assert [x["padding"] for x in doc["solutions"]] == \
            [[p, p] for p in range(500000, 500200)]
        r = run("solve", "conv", "--in", 1, "--out", 1, "-k", 10**6, "-s", 10**6)
        assert "1,000,000 ways to map 1 → 1 with conv; the best 10 (--limit 0 lists the " \
               "best 200)" in r.stdout


def test_solve_ranks_as_a_designer_wants_and_caps_the_list():
    # issue 13 item 8: 224 → 112 has 98 ways (k 1..11, s 1..4); before, the list
    # began with asymmetric paddings and included k=1,s=3,p=55
    doc = solve_json("conv", "--in", 224, "--out", 112)
    assert doc["total"] == 98 and len(doc["solutions"]) == 10
    tokens = [x["token"] for x in doc["solutions"]]
    # by hand: k=2 s=2 needs no padding; k=3,4 pad 1; k=5,6 pad 2; … symmetric
    assert tokens == ["conv:C,k=2,s=2", "conv:C,k=3,s=2,p=1", "conv:C,k=4,s=2,p=1",
                      "conv:C,k=5,s=2,p=2", "conv:C,k=6,s=2,p=2", "conv:C,k=7,s=2,p=3",
                      "conv:C,k=8,s=2,p=3", "conv:C,k=9,s=2,p=4", "conv:C,k=10,s=2,p=4",
                      "conv:C,k=11,s=2,p=5"]
    every = solve_json("conv", "--in", 224, "--out", 112, "--limit", 0)["solutions"]
    assert len(every) == 98
    # k=1,s=3,p=55: output 0 reads tap −55, output 111 reads 3·111 − 55 = 278 ≥ 224
    silly = next(x for x in every if x["token"] == "conv:C,k=1,s=3,p=55")
    assert silly["wasted"] is True
    assert all(x["wasted"] for x in every[every.index(silly):])  # the wasted ones come last
    first_asym = next(n for n, x in enumerate(every) if x["padding"][0] != x["padding"][1])
    assert all(x["padding"][0] == x["padding"][1] or x["wasted"]
               for x in every[first_asym:]) is False  # asymmetric ones do follow
    assert all(x["padding"][0] == x["padding"][1] for x in every[:first_asym])
    r = run("solve", "conv", "--in", 224, "--out", 112)
    assert "98 ways to map 224 → 112 with conv; the best 10 (--limit 0 lists all)" in r.stdout


def test_solve_pools_offer_ceil_mode_checked_by_torch():
    # 7 → 4 with k=2 s=2: floor ⌊5/2⌋ + 1 = 3, ceil ⌈5/2⌉ + 1 = 4 (last start 6 < 7)
    doc = solve_json("maxpool", "--in", 7, "--out", 4, "-k", 2, "-s", 2)
    assert "maxpool:2,ceil" in [x["token"] for x in doc["solutions"]]
    torch = pytest.importorskip("torch")
    checked = 0
    for kind, cls in (("maxpool", torch.nn.MaxPool1d), ("avgpool", torch.nn.AvgPool1d)):
        for i, o in ((7, 4), (10, 4), (13, 7), (6, 3), (112, 56), (55, 28)):
            for x in solve_layer(kind, i, o):
                if not x.ceil:
                    continue
                m = cls(x.k, x.s, x.padding[0], ceil_mode=True)
                assert m(torch.zeros(1, 1, i)).shape[-1] == o, (kind, i, o, x.token)
                assert out_size(x.token, i) == o
                checked += 1
    assert checked > 20


def test_solve_help_texts():
    # issue 13 item 8: descriptions in the group's list; avgpool has no -d
    r = run("solve", "--help")
    for kind in ("conv", "tconv", "maxpool", "avgpool", "sizes"):
        line = next(l for l in r.stdout.splitlines() if l.strip().startswith(kind + " "))
        assert len(line.split()) > 3, line
    r = run("solve", "avgpool", "--help")
    assert "--dilation" not in r.stdout and "-d," not in r.stdout
    assert "--dilation" in run("solve", "maxpool", "--help").stdout


def test_solve_avgpool_with_dilation_is_refused():
    # PyTorch's AvgPool has no dilation: exit 2 with the reason, as a document too
    r = run("solve", "avgpool", "--in", 64, "--out", 30, "-k", 3, "-s", 2, "-d", 2,
            "--format", "json")
    assert r.exit_code == 2
    # avgpool takes no -d at all (its --help does not list it): a usage error
    assert "No such option '-d'" in json.loads(r.stdout)["error"]["message"]
    # and the engine refuses it too, for API callers
    with pytest.raises(StackSyntaxError, match="avgpool has no dilation"):
        solve_layer("avgpool", 64, 30, 3, 2, 2)


def test_solve_no_solution_exit_1():
    # tconv 4 → 100 with k=3 s=2: at most 3·2 + 2 + 1 + 1 = 10
    r = run("solve", "tconv", "--in", 4, "--out", 100, "-k", 3, "-s", 2)
    assert r.exit_code == 1
    assert "No tconv with those settings maps 4 to 100." in r.stderr
    assert r.stdout == ""
    # a pool cannot grow 10 → 20 (with k ≤ 11 and padding ≤ k/2 a side)
    r = run("solve", "maxpool", "--in", 10, "--out", 20)
    assert r.exit_code == 1
    # conv 10 → 3 with k=3, s=1 would need negative padding
    r = run("solve", "conv", "--in", 10, "--out", 3, "-k", 3, "-s", 1, "--format", "json")
    assert r.exit_code == 1


def test_solve_bad_arguments_exit_2():
    assert run("solve", "conv", "--in", 0, "--out", 3).exit_code == 2
    assert run("solve", "conv", "--out", 3).exit_code == 2
    assert run("solve", "conv", "--in", 4, "--out", 3, "-k", 0).exit_code == 2
    assert run("solve", "up", "--in", 4, "--out", 8).exit_code == 2


def test_solve_csv():
    r = run("solve", "conv", "--in", 64, "--out", 32, "-k", 4, "-s", 2, "--format", "csv")
    assert r.exit_code == 0
    # the tokens hold commas, so they are quoted
    assert r.stdout.splitlines() == ["token,before,after,op,ceil",
                                     '"conv:C,k=4,s=2,p=1",1,1,0,false',
                                     '"conv:C,k=4,s=2,p=1:2",1,2,0,false']


# ---------------------------------------------------------------------------
# solve sizes
# ---------------------------------------------------------------------------

# two 2x pools, padded 3x3 convs, transposed convs ×2 back: size n works iff
# n is even (pool 1 reads all) and n/2 is even (pool 2 reads all): n ≡ 0 (mod 4)
UNET2 = ("conv:4,k=3,p=1 save:e1 maxpool:2 conv:4,k=3,p=1 save:e2 maxpool:2 conv:4,k=3,p=1 "
         "tconv:4,k=2,s=2 concat:e2 conv:4,k=3,p=1 tconv:4,k=2,s=2 concat:e1 conv:2,k=1").split()


def test_solve_sizes_multiples_of_4():
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "60..100")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "11 of 41 sizes in 60..100 work exactly: every multiple of 4 from 60 to 100"
    assert lines[1].strip() == "60, 64, 68, 72, 76, 80, 84, 88, 92, 96, 100"
    # 61: pool 1 drops one (61 → 30), 30 → 15 → 30 → 60 ≠ 61 at the last concat
    assert "61: layer 12 (concat:e1)" in r.stdout
    # 62 → 31 → 15 → 30 ≠ 31 at the first concat
    assert "62: layer 9 (concat:e2): concat: 1x4x30x30 (the current tensor) vs 1x4x31x31" \
        in r.stdout


def test_solve_sizes_json():
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "60..100", "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["range"] == [60, 100]
    assert doc["sizes"] == [n for n in range(60, 101) if n % 4 == 0]
    assert doc["step"] == 4
    assert [f["size"] for f in doc["failures"]] == [61, 62, 63, 65, 66]
    assert all(f["reason"] for f in doc["failures"])
    # every listed size really goes through, back to its own size
    for n in doc["sizes"]:
        assert analyze(UNET2, (1, 1, n, n)).output_shape == (1, 2, n, n)


def test_solve_sizes_1d_and_rectangular_template():
    # 1-D, the same graph: same answer; the batch and channels come from -i
    r = run("solve", "sizes", "-i", "3x1x8", *UNET2, "--range", "60..100", "--format", "json")
    assert json.loads(r.stdout)["sizes"] == list(range(60, 101, 4))
    # 2-D with a rectangular template: every spatial dim is set to the size
    r = run("solve", "sizes", "-i", "1x1x8x12", *UNET2, "--range", "60..100", "--format",
            "json")
    assert json.loads(r.stdout)["sizes"] == list(range(60, 101, 4))


def test_solve_sizes_step_null_when_irregular():
    # one valid conv k=3 then a 2x pool: n − 2 must be even: 10, 12, 14, step 2;
    # a single size has no step
    r = run("solve", "sizes", "-i", "1x1x8", "conv:1,k=3", "maxpool:2", "--range", "9..15",
            "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["sizes"] == [10, 12, 14]
    assert doc["step"] == 2
    r = run("solve", "sizes", "-i", "1x1x8", "conv:1,k=3", "maxpool:2", "--range", "10..10",
            "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["sizes"] == [10]
    assert doc["step"] is None


def test_solve_sizes_none_exit_1():
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "61..63")
    assert r.exit_code == 1
    assert "No size in 61..63 works exactly." in r.stdout


def test_solve_sizes_bad_ranges_exit_2():
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "5..1")
    assert r.exit_code == 2
    assert "empty" in r.stderr
    # MAX_SIZES = 5,000 sizes at most: 1..5001 is 5,001
    assert MAX_SIZES == 5000
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "1..5001")
    assert r.exit_code == 2
    assert "5,000" in r.stderr
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "ten..20")
    assert r.exit_code == 2
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "0..20")
    assert r.exit_code == 2 and "--range 0..20: sizes start at 1" in r.stderr
    r = run("solve", "sizes", "-i", "1x1x8x8", *UNET2, "--range", "20..10")
    assert r.exit_code == 2 and "--range 20..10 is empty" in r.stderr


def test_solve_sizes_exactly_the_cap_is_allowed():
    # 1..5000 is 5,000 sizes: allowed (a 1x1 conv takes every size)
    r = run("solve", "sizes", "-i", "1x1x8", "conv:1,k=1", "--range", "1..5000", "--format",
            "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["sizes"]) == 5000 and doc["step"] == 1


def test_solve_sizes_builtin_unet_readme():
    # README: 6 of 101 sizes in 500..600 work: 512, 528, …, 592 (multiples of 16)
    r = run("solve", "sizes", "@unet", "--range", "500..600")
    assert r.exit_code == 0
    assert re.search(r"6 of 101 sizes in 500\.\.600 work exactly: every multiple of 16 from "
                     r"512 to 592", r.stdout)


def test_resnet50_takes_every_multiple_of_32():
    # five stride-2 stages: 2^5 = 32.  The 1x1 stride-2 shortcut convs skip every other
    # position by design (k < s), which is not a rounding loss: 8 → 4 reads 0, 2, 4, 6.
    r = CliRunner().invoke(cli, ["check", "@resnet50", "--divisible-by", "32"])
    assert r.exit_code == 0, r.output
    from convcalc.analysis import inexact
    a = analyze(["conv:4,k=1,s=2"], (1, 3, 8, 8))
    assert inexact(a.layers[0]) is None
    # but 7 → 3 with a 2x2/2 pool leaves input position 6 unread: a real loss
    a = analyze(["maxpool:2"], (1, 3, 7, 7))
    assert "never reads the last 1 input position of 7" in inexact(a.layers[0])


def test_check_and_solve_sizes_read_stack_files_once(tmp_path):
    # the -f file (and stdin) is read once and analyzed: conv:4,k=3 on 3 channels has
    # 4·3·9 + 4 = 112 params, so ≤ 100 fails with exit 1 (not "no layers given", exit 2)
    stack = tmp_path / "net.stack"
    stack.write_text("# input: 1x3x8x8\nconv:4,k=3\n")
    r = CliRunner().invoke(cli, ["check", "-f", str(stack), "--max-params", "100"])
    assert r.exit_code == 1 and "112" in r.stdout
    r = CliRunner().invoke(cli, ["check", "-i", "1x3x8x8", "-f", "-", "relu", "--max-params",
                                 "112"], input="conv:4,k=3\n")
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["solve", "sizes", "-i", "1x3x8x8", "-f", "-", "--range", "8..12"],
                           input="conv:4,k=3,p=1 save:a maxpool:2 tconv:4,k=2,s=2 add:a\n")
    assert r.exit_code == 0 and "every multiple of 2" in r.stdout
