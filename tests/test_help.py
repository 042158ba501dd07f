"""Help that matches behaviour (issue 13 item 10): options are listed where
they change something, combinations that do nothing are refused, and what a
user reads never points at files a user does not have."""
from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from convcalc.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_dtype_is_listed_only_where_it_changes_memory():
    assert "--dtype" in run("shape", "--help").stdout
    for cmd in (["rf"], ["check"], ["solve", "sizes"]):
        assert "--dtype" not in run(*cmd, "--help").stdout, cmd
    # still accepted (hidden), and it changes nothing there
    a = run("rf", "@mnist", "--format", "json")
    b = run("rf", "@mnist", "--format", "json", "--dtype", "float16")
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout
    a = run("check", "@mnist", "--max-params", "1M", "--format", "json")
    b = run("check", "@mnist", "--max-params", "1M", "--format", "json", "--dtype", "int8")
    assert json.loads(a.stdout) == json.loads(b.stdout)
    # where it is listed, it does change the memory: float16 halves float32's bytes
    a = json.loads(run("shape", "@mnist", "--format", "json").stdout)
    b = json.loads(run("shape", "@mnist", "--format", "json", "--dtype", "float16").stdout)
    assert b["totals"]["activation_bytes"] * 2 == a["totals"]["activation_bytes"]


def test_layer_help_names_both_options_that_take_it():
    text = " ".join(run("rf", "--help").stdout.split())
    m = re.search(r"--layer N (.*?)--show", text)
    assert m and "--at" in m.group(1) and "--erf" in m.group(1)
    # and --erf really takes it: layer 3 of mnist's output is the field of layer 3
    r = run("rf", "@mnist", "--erf", "--layer", "3", "--format", "json")
    assert r.exit_code == 0, r.output


def test_erf_with_show_is_refused_not_ignored():
    r = run("rf", "@mnist", "--erf", "--show")
    assert r.exit_code == 2
    assert "--show" in r.stderr and "--erf" in r.stderr


def test_user_texts_do_not_point_at_the_teams_spec():
    out = run("models").stdout
    assert "SPEC" not in out and "REFERENCE" not in out
    text = README.read_text(encoding="utf-8")
    assert not re.search(r"SPEC\b|REFERENCE\b|SPEC\.md|§\d", text)
