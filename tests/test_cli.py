"""The ``convcalc`` command line, end to end (SPEC.md §3-§7).

Everything runs through ``click.testing.CliRunner`` against ``convcalc.cli.cli``
(stdout and stderr are captured separately), plus two subprocess checks of
the entry points (``python -m convcalc`` and the ``convcalc`` script).

Every expected number is worked out by hand from the formulas of
REFERENCE.md (the arithmetic is written next to it) or is a published figure
(VGG-16's 138,357,544 parameters and 15,470,264,320 MACs, AlexNet's
61,100,840 parameters, the MNIST net's 21,840); none is copied from
convcalc's own output.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import convcalc
from convcalc.cli import cli

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def run(*args, input=None):
    """Invoke the CLI; stdout and stderr are separate (click >= 8.2)."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(*args, input=None):
    r = run(*args, input=input)
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    return r


def shape_json(*args, input=None) -> dict:
    return json.loads(ok("shape", *args, "--format", "json", input=input).stdout)


def assert_error(r, code: int):
    """An error per SPEC §6: the exit code, nothing on stdout, no traceback."""
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    # a handled error ends in SystemExit; anything else escaped the CLI
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr.strip(), "an error must say something on stderr"


def stderr_lines(r):
    return [line for line in r.stderr.splitlines() if line.strip()]


SHAPE_ERR = 3
SYNTAX_ERR = 2

# ---------------------------------------------------------------------------
# Hand arithmetic
# ---------------------------------------------------------------------------

# MNIST net (SPEC §7) on 1x1x28x28:
#   conv:10,k=5   28-5+1 = 24 -> 1x10x24x24, params 1*10*25 + 10 = 260,
#                 MACs 10*24*24*1*25 = 144,000
#   maxpool:2     24/2 = 12  -> 1x10x12x12
#   relu                     -> 1x10x12x12
#   conv:20,k=5   12-5+1 = 8 -> 1x20x8x8, params 10*20*25 + 20 = 5,020,
#                 MACs 20*8*8*10*25 = 320,000
#   dropout                  -> 1x20x8x8
#   maxpool:2     8/2 = 4    -> 1x20x4x4
#   relu                     -> 1x20x4x4
#   flatten       20*4*4 = 320 -> 1x320 (a view: allocates nothing)
#   linear:50     params 320*50 + 50 = 16,050, MACs 16,000 -> 1x50
#   relu, dropout            -> 1x50
#   linear:10     params 50*10 + 10 = 510, MACs 500 -> 1x10
MNIST_TOKENS = ["conv:10,k=5", "maxpool:2", "relu", "conv:20,k=5", "dropout", "maxpool:2",
                "relu", "flatten", "linear:50", "relu", "dropout", "linear:10"]
MNIST_OUT = [[1, 10, 24, 24], [1, 10, 12, 12], [1, 10, 12, 12], [1, 20, 8, 8], [1, 20, 8, 8],
             [1, 20, 4, 4], [1, 20, 4, 4], [1, 320], [1, 50], [1, 50], [1, 50], [1, 10]]
MNIST_LAYER_PARAMS = [260, 0, 0, 5020, 0, 0, 0, 0, 16050, 0, 0, 510]
MNIST_PARAMS = 260 + 5020 + 16050 + 510  # 21,840
MNIST_MACS = 144_000 + 320_000 + 16_000 + 500  # 480,500
assert MNIST_PARAMS == 21_840

# torchsummary's four lines, MiB = 1024**2, float32:
#   input   1*1*28*28*4 = 3,136 B                          -> 0.00
#   fwd/bwd 2 * 4 * (5760 + 1440 + 1440 + 1280 + 1280 + 320 + 320 + 0 (flatten view)
#                    + 50 + 50 + 50 + 10) = 2*4*12,000 = 96,000 B -> 0.0916 -> 0.09
#   params  21,840*4 = 87,360 B                              -> 0.0833 -> 0.08
#   total   3,136 + 96,000 + 87,360 = 186,496 B             -> 0.1779 -> 0.18
MNIST_INPUT_B = 1 * 1 * 28 * 28 * 4
MNIST_FWDBWD_B = 2 * 4 * (5760 + 1440 + 1440 + 1280 + 1280 + 320 + 320 + 50 + 50 + 50 + 10)
MNIST_PARAM_B = MNIST_PARAMS * 4
MIB = 1024 ** 2

# SPEC §5's example layer on 1x3x224x224: conv:64,k=7,s=2,p=3
#   o = floor((224 + 3 + 3 - 1*(7-1) - 1) / 2) + 1 = floor(223/2) + 1 = 112
#   params 64*3*7*7 = 9,408 without bias, + 64 = 9,472 with bias (the default)
#   MACs 1*64*112*112*3*7*7 = 118,013,952; FLOPs 2*that = 236,027,904
#   activation 1*64*112*112*4 = 3,211,264 B (float32)
EX_TOKEN = "conv:64,k=7,s=2,p=3"
EX_OUT = [1, 64, 112, 112]
EX_MACS = 1 * 64 * 112 * 112 * 3 * 7 * 7
EX_ACT = 1 * 64 * 112 * 112 * 4
assert (EX_MACS, EX_ACT) == (118013952, 3211264)
EX_PARAMS_NOBIAS = 64 * 3 * 7 * 7
EX_PARAMS_BIAS = 64 * 3 * 7 * 7 + 64
assert (EX_PARAMS_NOBIAS, EX_PARAMS_BIAS) == (9408, 9472)

# Published: torchvision VGG-16 has 138,357,544 params and 15.47 GMACs at 224.
VGG16_PARAMS = 138_357_544
VGG16_MACS = 15_470_264_320

# AlexNet (torchvision), 1x3x224x224, 61,100,840 params (published). MACs:
#   conv1 64*55*55*3*121   =  70,276,800
#   conv2 192*27*27*64*25  = 223,948,800
#   conv3 384*13*13*192*9  = 112,140,288
#   conv4 256*13*13*384*9  = 149,520,384
#   conv5 256*13*13*256*9  =  99,680,256
#   fc    9216*4096 + 4096*4096 + 4096*1000 = 37,748,736 + 16,777,216 + 4,096,000
ALEXNET_PARAMS = 61_100_840
ALEXNET_MACS = (64 * 55 * 55 * 3 * 121 + 192 * 27 * 27 * 64 * 25 + 384 * 13 * 13 * 192 * 9
                + 256 * 13 * 13 * 384 * 9 + 256 * 13 * 13 * 256 * 9
                + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)

# DCGAN generator (nz=100, ngf=64, nc=3) on 1x100x1x1, bias=false:
#   tconv params Cin*Cout*4*4: 100*512*16 + 512*256*16 + 256*128*16 + 128*64*16 + 64*3*16
#   bn params 2C: 2*(512 + 256 + 128 + 64)
#   tconv MACs (input based) N*Cin*prod(i)*Cout*16: 1x1, 4x4, 8x8, 16x16, 32x32 inputs
#   shapes 1 -> 4 -> 8 -> 16 -> 32 -> 64
DCGAN_PARAMS = (100 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 3 * 16
                + 2 * (512 + 256 + 128 + 64))
DCGAN_MACS = (100 * 1 * 512 * 16 + 512 * 16 * 256 * 16 + 256 * 64 * 128 * 16
              + 128 * 256 * 64 * 16 + 64 * 1024 * 3 * 16)

# name -> (default input, output shape, number of tokens, params, MACs)
#   vgg16: 13 conv + 13 relu + 5 maxpool + aavgpool + flatten + 3 linear + 2 relu + 2 dropout = 40
#   alexnet: 5 conv + 5 relu + 3 maxpool + aavgpool + flatten + 3 linear + 2 relu + 2 dropout = 22
#   dcgan: 5 tconv + 4 bn + 4 relu + tanh = 14
MODELS = {
    "alexnet": ([1, 3, 224, 224], [1, 1000], 22, ALEXNET_PARAMS, ALEXNET_MACS),
    "dcgan": ([1, 100, 1, 1], [1, 3, 64, 64], 14, DCGAN_PARAMS, DCGAN_MACS),
    "mnist": ([1, 1, 28, 28], [1, 10], 12, MNIST_PARAMS, MNIST_MACS),
    "vgg16": ([1, 3, 224, 224], [1, 1000], 40, VGG16_PARAMS, VGG16_MACS),
}

TOP_KEYS = {"input_shape", "output_shape", "layers", "totals", "receptive_field"}
LAYER_KEYS = {"index", "kind", "spec", "input_shape", "output_shape", "padding", "params",
              "macs", "flops", "activation_bytes", "receptive_field"}
TOTAL_KEYS = {"params", "trainable_params", "macs", "flops", "activation_bytes", "param_bytes"}
RF_KEYS = {"size", "stride", "padding"}

# ---------------------------------------------------------------------------
# shape: table
# ---------------------------------------------------------------------------


def test_table_mnist():
    out = ok("shape", "-i", "1x1x28x28", "@mnist").stdout
    for tok in set(MNIST_TOKENS):
        assert tok in out
    for s in MNIST_OUT:
        assert "x".join(map(str, s)) in out
    # per-layer params with thousands separators
    for p in ("260", "5,020", "16,050", "510"):
        assert re.search(rf"(?<![\d,]){p}(?![\d,])", out), p
    # the totals line
    assert any("21,840" in line and "param" in line.lower() for line in out.splitlines())
    # torchsummary's four memory lines (see MNIST_*_B above)
    assert f"{MNIST_INPUT_B / MIB:.2f}" == "0.00"
    assert f"{MNIST_PARAM_B / MIB:.2f}" == "0.08"
    assert "Input size (MB): 0.00" in out
    assert f"Forward/backward pass size (MB): {MNIST_FWDBWD_B / MIB:.2f}" in out  # 0.09
    assert "Params size (MB): 0.08" in out
    total = (MNIST_INPUT_B + MNIST_FWDBWD_B + MNIST_PARAM_B) / MIB  # 0.18
    assert f"Estimated Total Size (MB): {total:.2f}" in out
    assert re.search(r"^Forward/backward pass size \(MB\): \d+\.\d\d$", out, re.M)
    assert re.search(r"^Estimated Total Size \(MB\): \d+\.\d\d$", out, re.M)


def test_table_single_conv():
    out = ok("shape", "-i", "1x3x224x224", EX_TOKEN).stdout
    assert EX_TOKEN in out
    assert "1x64x112x112" in out
    assert "9,472" in out  # 64*3*49 + 64
    assert "Traceback" not in out


def test_table_is_default_format():
    a = ok("shape", "-i", "1x1x28x28", "@mnist").stdout
    b = ok("shape", "-i", "1x1x28x28", "@mnist", "--format", "table").stdout
    assert a == b


# ---------------------------------------------------------------------------
# shape: JSON (SPEC §5)
# ---------------------------------------------------------------------------


def test_json_keys_mnist():
    doc = shape_json("-i", "1x1x28x28", "@mnist")
    assert TOP_KEYS <= set(doc), TOP_KEYS - set(doc)
    assert TOTAL_KEYS <= set(doc["totals"]), TOTAL_KEYS - set(doc["totals"])
    assert doc["input_shape"] == [1, 1, 28, 28]
    assert doc["output_shape"] == [1, 10]
    assert len(doc["layers"]) == len(MNIST_TOKENS)
    for i, layer in enumerate(doc["layers"], 1):
        assert LAYER_KEYS <= set(layer), (i, LAYER_KEYS - set(layer))
        assert layer["index"] == i
        assert layer["spec"] == MNIST_TOKENS[i - 1]
        assert layer["output_shape"] == MNIST_OUT[i - 1]
        assert layer["params"] == MNIST_LAYER_PARAMS[i - 1]
        assert layer["flops"] == 2 * layer["macs"]
        rf = layer["receptive_field"]
        assert rf is None or RF_KEYS <= set(rf)
    # input of each layer is the output of the one before
    prev = [1, 1, 28, 28]
    for layer in doc["layers"]:
        assert layer["input_shape"] == prev
        prev = layer["output_shape"]
    # flatten onwards mixes all positions: null receptive field
    assert [l["receptive_field"] for l in doc["layers"][7:]] == [None] * 5
    assert doc["receptive_field"] is None
    # conv1 k=5: rf 5, stride 1; maxpool 2 after it: 5 + (2-1)*1 = 6, stride 2
    assert doc["layers"][0]["receptive_field"] == {"size": [5, 5], "stride": [1, 1],
                                                   "padding": [0, 0]}
    assert doc["layers"][1]["receptive_field"]["size"] == [6, 6]
    assert doc["layers"][1]["receptive_field"]["stride"] == [2, 2]
    t = doc["totals"]
    assert t["params"] == MNIST_PARAMS
    assert t["trainable_params"] == MNIST_PARAMS
    assert t["macs"] == MNIST_MACS
    assert t["flops"] == 2 * MNIST_MACS
    assert t["param_bytes"] == MNIST_PARAMS * 4
    assert t["activation_bytes"] == MNIST_FWDBWD_B // 2
    assert t["activation_bytes"] == sum(l["activation_bytes"] for l in doc["layers"])


def test_json_spec_example_layer():
    doc = shape_json("-i", "1x3x224x224", EX_TOKEN)
    assert TOP_KEYS <= set(doc)
    assert doc["input_shape"] == [1, 3, 224, 224]
    assert doc["output_shape"] == EX_OUT
    (layer,) = doc["layers"]
    assert LAYER_KEYS <= set(layer)
    expected = {"index": 1, "kind": "conv", "spec": EX_TOKEN,
                "input_shape": [1, 3, 224, 224], "output_shape": EX_OUT,
                "padding": [[3, 3], [3, 3]],
                "params": EX_PARAMS_BIAS, "macs": EX_MACS, "flops": 2 * EX_MACS,
                "activation_bytes": EX_ACT,
                "receptive_field": {"size": [7, 7], "stride": [2, 2], "padding": [3, 3]}}
    assert {k: layer[k] for k in expected} == expected
    assert doc["receptive_field"] == expected["receptive_field"]
    assert doc["totals"]["params"] == EX_PARAMS_BIAS
    assert doc["totals"]["param_bytes"] == EX_PARAMS_BIAS * 4
    assert doc["totals"]["macs"] == EX_MACS
    assert doc["totals"]["activation_bytes"] == EX_ACT


def test_json_spec_example_params_without_bias():
    # SPEC §5 prints params 9408: that is the layer with bias=false (64*3*7*7)
    doc = shape_json("-i", "1x3x224x224", EX_TOKEN + ",bias=false")
    (layer,) = doc["layers"]
    assert layer["params"] == EX_PARAMS_NOBIAS == 9408
    assert layer["macs"] == EX_MACS  # bias is not counted in MACs
    assert layer["output_shape"] == EX_OUT
    assert layer["padding"] == [[3, 3], [3, 3]]


def test_json_tconv_example():
    # SPEC §7: tconv:64,k=3,s=2,p=1,op=1 on 1x128x16x16:
    #   o = (16-1)*2 - 1 - 1 + 1*(3-1) + 1 + 1 = 32; params 128*64*9 + 64 = 73,792
    #   MACs (input based) 1*128*16*16*64*9 = 18,874,368
    doc = shape_json("-i", "1x128x16x16", "tconv:64,k=3,s=2,p=1,op=1")
    (layer,) = doc["layers"]
    assert layer["output_shape"] == [1, 64, 32, 32]
    assert layer["params"] == 128 * 64 * 9 + 64
    assert layer["macs"] == 128 * 16 * 16 * 64 * 9


def test_vgg16_published_numbers():
    doc = shape_json("-i", "1x3x224x224", "@vgg16")
    assert doc["totals"]["params"] == VGG16_PARAMS
    assert doc["totals"]["macs"] == VGG16_MACS
    assert doc["output_shape"] == [1, 1000]


def test_vgg16_default_input():
    doc = shape_json("@vgg16")
    assert doc["input_shape"] == [1, 3, 224, 224]
    assert doc["totals"]["params"] == VGG16_PARAMS
    assert doc["totals"]["macs"] == VGG16_MACS


def test_mnist_published_numbers_json():
    doc = shape_json("-i", "1x1x28x28", "@mnist")
    assert [l["params"] for l in doc["layers"] if l["params"]] == [260, 5020, 16050, 510]
    assert doc["totals"]["params"] == 21840


# ---------------------------------------------------------------------------
# shape: CSV and Markdown
# ---------------------------------------------------------------------------


def test_csv_mnist():
    out = ok("shape", "-i", "1x1x28x28", "@mnist", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(MNIST_TOKENS)
    header = out.splitlines()[0].split(",")
    for col in ("index", "spec", "output_shape", "params", "macs"):
        assert col in header
    for i, row in enumerate(rows):
        assert int(row["index"]) == i + 1
        assert row["spec"] == MNIST_TOKENS[i]  # commas inside tokens are quoted
        assert row["output_shape"] == "x".join(map(str, MNIST_OUT[i]))
        assert int(row["params"]) == MNIST_LAYER_PARAMS[i]  # exact integers, no separators
    assert sum(int(r["macs"]) for r in rows) == MNIST_MACS


def test_csv_spec_example():
    out = ok("shape", "-i", "1x3x224x224", EX_TOKEN, "--format", "csv").stdout
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["spec"] == EX_TOKEN
    assert int(row["params"]) == EX_PARAMS_BIAS
    assert int(row["macs"]) == EX_MACS
    assert int(row["activation_bytes"]) == EX_ACT


MD_SEP = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


def md_table(out: str):
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("|"))
    table = []
    for l in lines[start:]:
        if not l.startswith("|"):
            break
        table.append(l)
    return table


def test_markdown_mnist():
    out = ok("shape", "-i", "1x1x28x28", "@mnist", "--format", "markdown").stdout
    table = md_table(out)
    assert MD_SEP.match(table[1]), table[1]
    ncols = table[0].count("|")
    assert all(l.rstrip().endswith("|") for l in table)
    assert all(l.count("|") - l.count("\\|") == ncols for l in table)
    body = table[2:]
    assert len(body) == len(MNIST_TOKENS)
    for tok, line, s in zip(MNIST_TOKENS, body, MNIST_OUT):
        assert tok in line
        assert "x".join(map(str, s)) in line
    assert "21,840" in out


# ---------------------------------------------------------------------------
# --dtype
# ---------------------------------------------------------------------------


def test_dtype_float16_halves_bytes():
    f32 = shape_json("-i", "1x3x224x224", EX_TOKEN)
    f16 = shape_json("-i", "1x3x224x224", EX_TOKEN, "--dtype", "float16")
    assert f16["layers"][0]["activation_bytes"] == EX_ACT // 2 == 1 * 64 * 112 * 112 * 2
    assert f16["totals"]["param_bytes"] == EX_PARAMS_BIAS * 2
    assert 2 * f16["totals"]["activation_bytes"] == f32["totals"]["activation_bytes"]
    assert 2 * f16["totals"]["param_bytes"] == f32["totals"]["param_bytes"]
    # shapes, params and MACs do not depend on the dtype
    assert f16["layers"][0]["params"] == f32["layers"][0]["params"]
    assert f16["totals"]["macs"] == f32["totals"]["macs"]


def test_dtype_float16_mnist():
    f32 = shape_json("-i", "1x1x28x28", "@mnist")
    f16 = shape_json("-i", "1x1x28x28", "@mnist", "--dtype", "float16")
    for a, b in zip(f32["layers"], f16["layers"]):
        assert a["activation_bytes"] == 2 * b["activation_bytes"]
    assert f16["totals"]["param_bytes"] == MNIST_PARAMS * 2


# ---------------------------------------------------------------------------
# Stack sources: stdin, files, @path, @NAME
# ---------------------------------------------------------------------------

STDIN_TEXT = """\
# a small net, described here
# input: 1x1x28x28

conv:10,k=5      # 28 -> 24
maxpool:2        # 24 -> 12

   relu   # indented, trailing comment
conv:20,k=5 dropout maxpool:2
relu flatten     # 320
linear:50 relu dropout linear:10
"""


def test_stdin_with_input_directive():
    doc = shape_json("-f", "-", input=STDIN_TEXT)
    assert doc["input_shape"] == [1, 1, 28, 28]
    assert [l["spec"] for l in doc["layers"]] == MNIST_TOKENS
    assert doc["totals"]["params"] == MNIST_PARAMS


def test_stdin_with_explicit_input():
    text = "conv:10,k=5\n# comment only\n\nrelu  # done\n"
    doc = shape_json("-i", "1x1x28x28", "-f", "-", input=text)
    # 1*10*25 + 10 = 260; 28-5+1 = 24
    assert [l["spec"] for l in doc["layers"]] == ["conv:10,k=5", "relu"]
    assert doc["output_shape"] == [1, 10, 24, 24]
    assert doc["totals"]["params"] == 260


def test_stdin_explicit_input_overrides_directive():
    # 1x1x32x32: 32-5+1 = 28
    doc = shape_json("-i", "1x1x32x32", "-f", "-", input="# input: 1x1x28x28\nconv:10,k=5\n")
    assert doc["input_shape"] == [1, 1, 32, 32]
    assert doc["output_shape"] == [1, 10, 28, 28]


def test_file_with_input_directive(tmp_path):
    p = tmp_path / "net.stack"
    p.write_text(STDIN_TEXT)
    doc = shape_json("-f", p)
    assert doc["input_shape"] == [1, 1, 28, 28]
    assert doc["output_shape"] == [1, 10]
    assert doc["totals"]["params"] == MNIST_PARAMS


def test_file_then_positional_layers(tmp_path):
    p = tmp_path / "head.stack"
    p.write_text("# input: 1x3x32x32\nconv:8,k=3,p=1  # 32 -> 32\nrelu\n")
    doc = shape_json("-f", p, "maxpool:2", "flatten", "linear:10")
    # conv 8*3*9 + 8 = 224; pool -> 16; flatten 8*16*16 = 2048; linear 2048*10 + 10 = 20,490
    assert [l["spec"] for l in doc["layers"]] == ["conv:8,k=3,p=1", "relu", "maxpool:2",
                                                  "flatten", "linear:10"]
    assert [l["output_shape"] for l in doc["layers"]] == [
        [1, 8, 32, 32], [1, 8, 32, 32], [1, 8, 16, 16], [1, 2048], [1, 10]]
    assert doc["totals"]["params"] == 8 * 3 * 9 + 8 + 2048 * 10 + 10


def test_two_files_in_order(tmp_path):
    a = tmp_path / "a.stack"
    b = tmp_path / "b.stack"
    a.write_text("conv:4,k=3\n")
    b.write_text("conv:6,k=3\n")
    doc = shape_json("-i", "1x2x10x10", "-f", a, "-f", b)
    # 10 -> 8 -> 6; params 4*2*9+4 = 76, 6*4*9+6 = 222
    assert [l["output_shape"] for l in doc["layers"]] == [[1, 4, 8, 8], [1, 6, 6, 6]]
    assert [l["params"] for l in doc["layers"]] == [76, 222]


def test_at_path_file(tmp_path):
    d = tmp_path / "path" / "to"
    d.mkdir(parents=True)
    p = d / "file.stack"
    p.write_text("# tiny\n# input: 1x3x16x16\nconv:8,k=3,s=2,p=1\nbn relu\n")
    doc = shape_json(f"@{p}")
    # floor((16 + 2 - 2 - 1)/2) + 1 = 8; conv 8*3*9 + 8 = 224; bn 2*8 = 16
    assert doc["input_shape"] == [1, 3, 16, 16]
    assert doc["output_shape"] == [1, 8, 8, 8]
    assert doc["totals"]["params"] == 224 + 16
    assert [l["spec"] for l in doc["layers"]] == ["conv:8,k=3,s=2,p=1", "bn", "relu"]


def test_at_relative_path(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "n.stack").write_text("conv:4,k=3\n")
    monkeypatch.chdir(tmp_path)
    doc = shape_json("-i", "1x1x5x5", "@sub/n.stack", "relu")
    assert doc["output_shape"] == [1, 4, 3, 3]  # 5-3+1
    assert len(doc["layers"]) == 2


# the model zoo of issue 5, besides the four checked number by number here
ZOO = {"resnet18", "resnet50", "vgg16", "alexnet", "mobilenet_v2", "unet", "dcgan"}


def test_models_listing_names():
    listed = json.loads(ok("models", "--format", "json").stdout)
    assert {m["name"] for m in listed} >= set(MODELS) | ZOO


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_builtin_model(name):
    inp, out, ntok, params, macs = MODELS[name]
    doc = shape_json(f"@{name}")  # default input from the model
    assert doc["input_shape"] == inp
    assert doc["output_shape"] == out
    assert len(doc["layers"]) == ntok
    assert doc["totals"]["params"] == params
    assert doc["totals"]["macs"] == macs
    # explicit -i equal to the default gives the same document
    assert shape_json("-i", "x".join(map(str, inp)), f"@{name}") == doc
    # and the table renders too
    assert "x".join(map(str, out)) in ok("shape", f"@{name}").stdout


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


def test_models_json():
    listed = json.loads(ok("models", "--format", "json").stdout)
    assert isinstance(listed, list)
    by_name = {}
    for m in listed:
        assert {"name", "description", "input", "layers", "params", "macs"} <= set(m)
        by_name[m["name"]] = m
    assert set(by_name) >= {"alexnet", "dcgan", "mnist", "vgg16"}
    for name, (inp, _, ntok, params, macs) in MODELS.items():
        m = by_name[name]
        assert m["input"] in (inp, "x".join(map(str, inp)))
        assert m["layers"] == ntok
        assert m["params"] == params
        assert m["macs"] == macs
        assert isinstance(m["description"], str) and m["description"]


def test_models_csv():
    out = ok("models", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["name"].lstrip("@") for r in rows} >= set(MODELS)
    for r in rows:
        if r["name"].lstrip("@") not in MODELS:
            continue
        _, _, ntok, params, macs = MODELS[r["name"].lstrip("@")]
        assert int(r["params"]) == params
        assert int(r["macs"]) == macs
        assert int(r["layers"]) == ntok


def test_models_markdown():
    out = ok("models", "--format", "markdown").stdout
    table = md_table(out)
    assert MD_SEP.match(table[1])
    assert len(table) == 2 + len(convcalc.builtin_models())
    for name in MODELS:
        assert any(name in l for l in table[2:])
    assert "138,357,544" in out and "21,840" in out


def test_models_table():
    out = ok("models").stdout
    for name in MODELS:
        assert name in out
    assert "138,357,544" in out  # VGG-16 params, published
    assert "61,100,840" in out  # AlexNet params, published
    assert "21,840" in out
    assert "1x3x224x224" in out and "1x100x1x1" in out and "1x1x28x28" in out


# ---------------------------------------------------------------------------
# Errors and exit codes (SPEC §6)
# ---------------------------------------------------------------------------

# (args, stdin, expected exit code, "layer N (TOKEN)" expected or None)
SYNTAX_CASES = {
    "unknown kind": (["shape", "-i", "1x3x8x8", "relu", "foo:3"], None, "layer 2 (foo:3)"),
    "bad key": (["shape", "-i", "1x3x8x8", "conv:4,k=3,zz=1"], None, "layer 1 (conv:4,k=3,zz=1)"),
    "bad value": (["shape", "-i", "1x3x8x8", "conv:4,k=abc"], None, "layer 1 (conv:4,k=abc)"),
    "missing k": (["shape", "-i", "1x3x8x8", "conv:4"], None, "layer 1 (conv:4)"),
    "key twice": (["shape", "-i", "1x3x8x8", "conv:4,k=3,k=5"], None, "layer 1 (conv:4,k=3,k=5)"),
    "malformed -i letters": (["shape", "-i", "1xax8x8", "relu"], None, None),
    "malformed -i trailing x": (["shape", "-i", "1x3x8x8x", "relu"], None, None),
    "malformed -i zero dim": (["shape", "-i", "0x3x8x8", "relu"], None, None),
    "malformed -i one dim": (["shape", "-i", "8", "relu"], None, None),
    "missing -i": (["shape", "conv:4,k=3"], None, None),
    "no layers with -i": (["shape", "-i", "1x3x8x8"], None, None),
    "no layers at all": (["shape"], None, None),
    "empty stdin": (["shape", "-i", "1x3x8x8", "-f", "-"], "# only a comment\n\n", None),
    "unknown @NAME": (["shape", "@nosuchmodel"], None, None),
    "unknown @NAME with -i": (["shape", "-i", "1x3x8x8", "@nosuchmodel"], None, None),
    "missing -f file": (["shape", "-i", "1x3x8x8", "-f", "/nonexistent/dir/net.stack"], None,
                        None),
    "bad token in file": (["shape", "-i", "1x3x8x8", "-f", "-", "relu"],
                          "conv:4,k=3  # fine\nmaxpool:2,q=1\n", "layer 2 (maxpool:2,q=1)"),
    "bad --format": (["shape", "-i", "1x3x8x8", "relu", "--format", "xml"], None, None),
}

SHAPE_CASES = {
    # 8 + 0 < 1*(9-1) + 1 = 9: kernel larger than the padded input
    "kernel too large": (["shape", "-i", "1x3x8x8", "relu", "conv:4,k=9"], None,
                         "layer 2 (conv:4,k=9)"),
    # mnist on 8x8: 8-5+1 = 4, pool -> 2, then conv k=5 on 2x2 (layer 4)
    "kernel too large inside @mnist": (["shape", "-i", "1x1x8x8", "@mnist"], None,
                                       "layer 4 (conv:20,k=5)"),
    # o = (1-1)*1 - 2 - 2 + 1*(3-1) + 0 + 1 = -1 < 1
    "tconv output < 1": (["shape", "-i", "1x3x1x1", "tconv:4,k=3,p=2"], None,
                         "layer 1 (tconv:4,k=3,p=2)"),
    # in channels 3 not divisible by groups 2
    "channels vs groups": (["shape", "-i", "1x3x8x8", "conv:4,k=3,g=2"], None,
                           "layer 1 (conv:4,k=3,g=2)"),
    # 4 channels after the first conv, groups 3
    "channels vs groups, 2nd layer": (["shape", "-i", "1x3x8x8", "conv:4,k=3", "conv:6,k=1,g=3"],
                                      None, "layer 2 (conv:6,k=1,g=3)"),
    # reflect needs p < i: 8 is not < 8
    "reflect padding >= input": (["shape", "-i", "1x3x8x8", "conv:4,k=3,pm=reflect,p=8"], None,
                                 "layer 1 (conv:4,k=3,pm=reflect,p=8)"),
    "conv on a flat input": (["shape", "-i", "1x3", "conv:4,k=3"], None, "layer 1 (conv:4,k=3)"),
}


@pytest.mark.parametrize("case", sorted(SYNTAX_CASES))
def test_syntax_errors_exit_2(case):
    args, stdin, where = SYNTAX_CASES[case]
    r = run(*args, input=stdin)
    assert_error(r, SYNTAX_ERR)
    if where:
        assert where in r.stderr, r.stderr


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_shape_errors_exit_3(case):
    args, stdin, where = SHAPE_CASES[case]
    r = run(*args, input=stdin)
    assert_error(r, SHAPE_ERR)
    assert where in r.stderr, r.stderr


@pytest.mark.parametrize("case", sorted(SYNTAX_CASES) + sorted(SHAPE_CASES))
def test_error_is_one_or_two_lines(case):
    args, stdin, _ = {**SYNTAX_CASES, **SHAPE_CASES}[case]
    r = run(*args, input=stdin)
    assert r.exit_code in (SYNTAX_ERR, SHAPE_ERR)
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_at_name_names_the_layer():
    r = run("shape", "-i", "1x3x8x8", "relu", "@nosuchmodel")
    assert_error(r, SYNTAX_ERR)
    assert "layer 2 (@nosuchmodel)" in r.stderr, r.stderr


def test_unknown_at_name_says_what():
    r = run("shape", "@nosuchmodel")
    assert_error(r, SYNTAX_ERR)
    assert "@nosuchmodel" in r.stderr
    # lists the built-ins as a hint
    assert all(name in r.stderr for name in MODELS)


def test_out_channels_not_divisible_by_groups():
    # Independent of the input shape, so the code treats it as a bad value (2);
    # SPEC §6 lists "channel mismatch" under 3. Either is accepted here.
    r = run("shape", "-i", "1x4x8x8", "conv:6,k=3,g=4")
    assert r.exit_code in (SYNTAX_ERR, SHAPE_ERR)
    assert_error(r, r.exit_code)
    assert "layer 1 (conv:6,k=3,g=4)" in r.stderr


def test_exit_0():
    r = run("shape", "-i", "1x3x8x8", "conv:4,k=3")
    assert r.exit_code == 0
    assert r.stderr == ""


# ---------------------------------------------------------------------------
# Entry points and --version
# ---------------------------------------------------------------------------


def test_version():
    r = ok("--version")
    assert "convcalc" in r.stdout
    assert convcalc.__version__ in r.stdout
    try:
        from importlib.metadata import version
        assert version("convcalc") in r.stdout
    except ImportError:  # pragma: no cover
        pass


def test_help_lists_commands():
    out = ok("--help").stdout
    assert "shape" in out and "models" in out
    out = ok("shape", "--help").stdout
    for opt in ("--input", "--file", "--format", "--dtype"):
        assert opt in out


def test_python_dash_m():
    p = subprocess.run([sys.executable, "-m", "convcalc", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "shape" in p.stdout and "models" in p.stdout
    assert "Traceback" not in p.stderr


def test_python_dash_m_exit_code():
    p = subprocess.run([sys.executable, "-m", "convcalc", "shape", "-i", "1x3x8x8", "conv:4,k=9"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == SHAPE_ERR
    assert p.stdout == ""
    assert "layer 1 (conv:4,k=9)" in p.stderr


def _console_script():
    here = Path(sys.executable).parent / "convcalc"
    if here.exists():
        return str(here)
    return shutil.which("convcalc")


def test_console_script():
    exe = _console_script()
    if exe is None:
        pytest.skip("convcalc console script not installed")
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert convcalc.__version__ in p.stdout
    p = subprocess.run([exe, "shape", "-i", "1x1x28x28", "@mnist", "--format", "json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["totals"]["params"] == MNIST_PARAMS


def test_inplace_activation_allocates_nothing():
    # SPEC §7: in-place activations allocate nothing in the forward/backward pass.
    # conv:10,k=5 on 1x1x28x28 -> 1x10x24x24 = 5,760 elements
    #   plain relu:   2 * 4 * (5760 + 5760) = 92,160 B -> 0.0879 MiB -> 0.09
    #   relu:inplace: 2 * 4 * 5760          = 46,080 B -> 0.0439 MiB -> 0.04
    plain = ok("shape", "-i", "1x1x28x28", "conv:10,k=5", "relu").stdout
    inplace = ok("shape", "-i", "1x1x28x28", "conv:10,k=5", "relu:inplace").stdout
    assert f"Forward/backward pass size (MB): {2 * 4 * (5760 + 5760) / MIB:.2f}" in plain
    assert f"Forward/backward pass size (MB): {2 * 4 * 5760 / MIB:.2f}" in inplace
    assert f"{2 * 4 * 5760 / MIB:.2f}" != f"{2 * 4 * (5760 + 5760) / MIB:.2f}"
