"""The import command, source names, --depth and ONNX files as stacks, without
torch or onnx (the importers' own tests are test_import_torch.py and
test_import_onnx.py).  Expected numbers are worked out by hand."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import convcalc
from convcalc.analysis import group_by_depth
from convcalc.cli import cli
from convcalc.importers.graph import Node, write

NAMED = ["stem.conv=conv:8,k=3", "stem.act=relu", "save:a", "layer1.0.conv=conv:8,k=3,p=1",
         "layer1.0.add=add:a", "layer1.1.conv=conv:8,k=3,p=1", "fc=flatten"]


def run(*args, **kw):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kw)


def test_source_names_ride_on_tokens():
    a = convcalc.analyze(NAMED, (1, 3, 8, 8))
    assert [r.name for r in a.layers] == ["stem.conv", "stem.act", None, "layer1.0.conv",
                                          "layer1.0.add", "layer1.1.conv", "fc"]
    assert a.layers[0].spec == "conv:8,k=3"  # the token proper, without its name
    doc = json.loads(run("shape", "-i", "1x3x8x8", *NAMED, "--format", "json").output)
    assert doc["layers"][0]["name"] == "stem.conv" and "name" not in doc["layers"][2]
    table = run("shape", "-i", "1x3x8x8", *NAMED).output
    assert "name" in table.splitlines()[0] and "layer1.0.conv" in table
    csv = run("shape", "-i", "1x3x8x8", *NAMED, "--format", "csv").output.splitlines()
    assert csv[0].endswith(",name") and csv[1].endswith(",stem.conv")
    # an error names the token, not the label
    r = run("shape", "-i", "1x3x8x8", "stem.conv=conv:8")
    assert r.exit_code == 2 and "layer 1 (conv:8): k is required" in r.output


def test_depth_groups_like_torchinfo():
    a = group_by_depth(convcalc.analyze(NAMED, (1, 3, 8, 8)), 1)
    assert [(r.name, r.index) for r in a.layers] == [("stem", 1), ("layer1", 4), ("fc", 7)]
    stem, layer1, fc = a.layers
    # stem: conv 8·3·9 + 8 = 224 params, MACs 8·6·6·3·9 = 7,776; save:a joins it
    assert (stem.params, stem.macs, stem.output_shape) == (224, 7776, (1, 8, 6, 6))
    # layer1: two 3x3 convs 8->8 with p=1 at 6x6: 2·(8·8·9 + 8) params, 2·8·36·8·9 MACs
    assert (layer1.params, layer1.macs) == (2 * 584, 2 * 20736)
    assert a.totals.params == 224 + 2 * 584  # totals are the whole network's
    two = group_by_depth(convcalc.analyze(NAMED, (1, 3, 8, 8)), 2)
    assert [r.name for r in two.layers] == ["stem.conv", "stem.act", "layer1.0",
                                            "layer1.1.conv", "fc"]
    r = run("shape", "-i", "1x3x8x8", *NAMED, "--depth", "1", "--format", "json")
    assert [row["name"] for row in json.loads(r.output)["layers"]] == ["stem", "layer1", "fc"]


def test_graph_writer_wires_joins():
    nodes = [Node("conv1", "conv:8,k=3,p=1", ["input"], "a"), Node("relu", "relu", ["a"], "b"),
             Node("l1.conv", "conv:8,k=3,p=1", ["b"], "c"), Node("l1.add", "add", ["c", "b"], "d"),
             Node("se.pool", "gap", ["d"], "e"), Node("se.fc", "conv:8,k=1", ["e"], "f"),
             Node("se.mul", "mul", ["d", "f"], "g"), Node("cat", "concat", ["d", "g"], "h")]
    tokens = write(nodes, "h")
    assert tokens == ["conv1=conv:8,k=3,p=1", "relu=relu", "save:t1", "l1.conv=conv:8,k=3,p=1",
                      "l1.add=add:t1", "save:t2", "se.pool=gap", "se.fc=conv:8,k=1",
                      "se.mul=mul:t2", "save:t3", "from:t2", "cat=concat:t3"]
    # concat keeps its order: d first (8), then the gated g (8)
    assert convcalc.analyze(tokens, (1, 3, 8, 8)).output_shape == (1, 16, 8, 8)


def test_import_needs_one_source():
    assert run("import").exit_code == 2
    r = run("import", "x.onnx", "--torch", "m:f")
    assert r.exit_code == 2 and "one of them" in r.output
    r = run("import", "--torch", "nomodule_here_xyz:build", "-i", "1x3x8x8")
    assert r.exit_code == 2 and "ModuleNotFoundError" in r.output
    assert "Traceback" not in r.output
    r = run("import", "--torch", "no_colon")
    assert r.exit_code == 2


def test_missing_onnx_file_is_one_line(tmp_path):
    r = run("shape", str(tmp_path / "nosuch.onnx"))
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) <= 2
    assert "Traceback" not in r.output
