"""Narrow terminals (issue 13 item 15): a number is never cut.

Every number the JSON document reports is looked for in the table printed at
COLUMNS=N (N from 20 to 200), whole: not glued to other digits.  A number may
be missing only when its column was left out, and then the note after the
table names the column.  The displayed forms are worked out here from the
JSON numbers (thousands separators, powers of 1000, MiB).
"""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from convcalc.cli import cli

WIDTHS = (20, 23, 27, 32, 40, 48, 60, 72, 80, 100, 132, 160, 200)


def run(args, columns=None):
    env = {"COLUMNS": str(columns)} if columns else {}
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code in (0, 1), res.output
    return res.stdout


def si(n: int) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def mib(n: int) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def whole(text: str, number: str) -> bool:
    """``number`` appears in ``text`` with nothing numeric glued to either end."""
    return re.search(rf"(?<![\d.,x]){re.escape(number)}(?![\d,x]|\.\d)", text) is not None


def left_out(text: str):
    m = re.search(r"\(left out to fit \d+ columns: (.*?); a wider", " ".join(text.split()))
    return set(m.group(1).split(", ")) if m else set()


def assert_whole(text, wanted, columns):
    """wanted: (column header, displayed number) pairs."""
    gone = left_out(text)
    for header, number in wanted:
        if header in gone:
            continue
        assert whole(text, number), f"{number} ({header}) cut or missing at {columns} columns"


@pytest.mark.parametrize("columns", WIDTHS)
def test_shape_table_keeps_every_number_whole(columns):
    doc = json.loads(run(["shape", "@resnet50", "--format", "json"]))
    text = run(["shape", "@resnet50"], columns)
    wanted = [("params", f"{doc['totals']['params']:,}")]
    for layer in doc["layers"]:
        wanted += [("output", "x".join(map(str, layer["output_shape"]))),
                   ("params", f"{layer['params']:,}"), ("MACs", si(layer["macs"])),
                   ("memory", mib(layer["activation_bytes"]))]
    assert_whole(text, wanted, columns)
    assert all(len(line) <= columns for line in text.splitlines()), \
        max(text.splitlines(), key=len)
    if columns < 100:  # ResNet-50's table is wider than that: something had to go
        assert left_out(text) or any("│" in line and line.startswith("    │")
                                     for line in text.splitlines())


@pytest.mark.parametrize("columns", WIDTHS)
def test_check_table_keeps_the_count_whole(columns):
    doc = json.loads(run(["check", "@resnet50", "--max-params", "26M", "--format", "json"]))
    actual = doc["checks"][0]["actual"]
    text = run(["check", "@resnet50", "--max-params", "26M"], columns)
    assert_whole(text, [("actual", f"{actual:,}")], columns)
    assert "actual" not in left_out(text)  # the result of the check stays


@pytest.mark.parametrize("columns", (20, 40, 60, 200))
def test_models_and_rf_tables(columns):
    entries = json.loads(run(["models", "--format", "json"]))
    text = run(["models"], columns)
    wanted = [("params", f"{e['params']:,}") for e in entries if e["params"] is not None]
    wanted += [("name", "@" + e["name"]) for e in entries]
    assert_whole(text, wanted, columns)
    doc = json.loads(run(["rf", "@vgg16", "--format", "json"]))
    text = run(["rf", "@vgg16"], columns)
    wanted = [("output", "x".join(map(str, la["output_shape"]))) for la in doc["layers"]]
    wanted += [("size r", str(la["receptive_field"]["size"][0])) for la in doc["layers"]
               if la["receptive_field"]]
    assert_whole(text, wanted, columns)


def test_a_pipe_gets_the_whole_table():
    """Without COLUMNS (CliRunner is not a terminal) nothing is left out."""
    text = run(["shape", "@resnet50"])
    assert not left_out(text)
    assert text.splitlines()[0].split() == ["#", "┃", "layer", "┃", "output", "┃", "padding",
                                            "┃", "RF", "/", "stride", "┃", "params", "┃",
                                            "MACs", "┃", "memory"]
