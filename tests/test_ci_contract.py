"""The contract a CI script relies on (SPEC §5 and §6, issue 13 items 1, 2, 6).

* ``check --format json`` / ``csv`` hold plain values: ``{"ok", "checks":
  [{"name", "limit", "actual", "ok"}]}``, numbers as numbers, shapes as
  lists, receptive fields as ``{"size", "stride", "padding"}``.
* An error with ``--format json`` is also a JSON document on stdout,
  ``{"error": {"code", "layer", "token", "message", "hint"}}``, for every
  command taking ``--format``, while the human line still goes to stderr.
* An input whose rank disagrees with the stack's own input is exit 2 naming
  both shapes, with a hint.

Expected numbers are worked out by hand in the comments, or are the
published torchvision figures (ResNet-50: 25,557,032 params, 4.09 GMACs).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcalc.cli import cli

ERROR_KEYS = {"code", "layer", "token", "message", "hint"}


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def human_error(r) -> list:
    """The stderr lines, checked to be SPEC §6's one or two lines."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, r.stderr
    assert lines[0].startswith("Error"), r.stderr
    return lines


def error_doc(r, code: int) -> dict:
    """The JSON error document of a failed run, checked against SPEC §6."""
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    human_error(r)
    doc = json.loads(r.stdout)
    assert set(doc) == {"error"}
    err = doc["error"]
    assert set(err) == ERROR_KEYS
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert "\n" not in err["message"]
    return err


# ---------------------------------------------------------------------------
# 1. check --format json / csv: plain numbers
# ---------------------------------------------------------------------------

RESNET50_ALL = ["@resnet50", "--expect-output", "1x1000", "--max-params", "26M",
                "--max-macs", "4.2G", "--min-rf", "200", "--divisible-by", "32"]


def test_check_json_resnet50_plain_numbers():
    r = run("check", *RESNET50_ALL, "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    checks = {c["name"]: c for c in doc["checks"]}
    assert [c["name"] for c in doc["checks"]] == ["expect_output", "max_params", "max_macs",
                                                  "min_rf", "divisible_by"]
    assert all(c["ok"] is True for c in doc["checks"])
    assert checks["expect_output"]["limit"] == [1, 1000]
    assert checks["expect_output"]["actual"] == [1, 1000]
    # SPEC §5's own example: 26M = 26,000,000 against torchvision's 25,557,032
    assert checks["max_params"]["limit"] == 26_000_000
    assert checks["max_params"]["actual"] == 25_557_032
    assert checks["max_macs"]["limit"] == 4_200_000_000  # 4.2 · 10⁹
    assert checks["max_macs"]["actual"] == 4_089_184_256
    for name in ("max_params", "max_macs"):
        assert type(checks[name]["limit"]) is int and type(checks[name]["actual"]) is int
    rf = checks["min_rf"]
    assert rf["limit"] == 200
    assert set(rf["actual"]) == {"size", "stride", "padding"}
    # 427 (issue 13's figure for layer 196, before the global pool mixes); the
    # stride is 2⁵ = 32: conv1, the max-pool and layers 2-4 each halve
    assert rf["actual"]["size"] == [427, 427]
    assert rf["actual"]["stride"] == [32, 32]
    assert rf["layer"] == 196
    assert isinstance(rf["note"], str)
    # 224 = 7·32: every multiple 32, 64, …, 224 is checked (7 ≤ 16, none skipped)
    assert checks["divisible_by"]["limit"] == 32
    assert checks["divisible_by"]["actual"] == [32, 64, 96, 128, 160, 192, 224]


def test_check_json_failures_keep_plain_numbers():
    # @mnist: conv1 10·1·25 + 10 = 260, conv2 20·10·25 + 20 = 5,020,
    # fc1 320·50 + 50 = 16,050, fc2 50·10 + 10 = 510: 21,840 params
    r = run("check", "@mnist", "--max-params", "21k", "--expect-output", "1x5", "--format",
            "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    params, out = sorted(doc["checks"], key=lambda c: c["name"] != "max_params")
    assert params == {"name": "max_params", "limit": 21_000, "actual": 21_840, "ok": False}
    assert out == {"name": "expect_output", "limit": [1, 5], "actual": [1, 10], "ok": False}
    # the human lines stay on stderr, one per failed check
    assert r.stderr.count("Error: check failed:") == 2


def test_check_json_receptive_field_object():
    # conv k=3 s=2 p=1 then conv k=3 p=1: r = 3 + 2·2 = 7, S = 2, P = 1 + 1·2 = 3
    r = run("check", "-i", "1x1x16x16", "conv:1,k=3,s=2,p=1", "conv:1,k=3,p=1", "--min-rf", 7,
            "--format", "json")
    assert r.exit_code == 0, r.stderr
    (c,) = json.loads(r.stdout)["checks"]
    assert c["name"] == "min_rf" and c["limit"] == 7 and c["ok"] is True
    assert c["actual"] == {"size": [7, 7], "stride": [2, 2], "padding": [3, 3]}
    assert "layer" not in c  # the output's own field: not taken at an earlier layer
    r = run("check", "-i", "1x1x16x16", "conv:1,k=3,s=2,p=1", "conv:1,k=3,p=1", "--min-rf", 8,
            "--format", "json")
    assert r.exit_code == 1
    (c,) = json.loads(r.stdout)["checks"]
    assert c["ok"] is False and c["actual"]["size"] == [7, 7]


def test_check_json_divisible_by_failure_is_the_size():
    # 1x1x12, conv k=2 s=2 twice: 2 is too small (→ 1 → nothing), 4 → 2 → 1 exact,
    # 6 → 3 → 1 leaves position 2 of 3 unread: fails at 6, layer 2
    r = run("check", "-i", "1x1x12", "conv:1,k=2,s=2", "conv:1,k=2,s=2", "--divisible-by", 2,
            "--format", "json")
    assert r.exit_code == 1
    (c,) = json.loads(r.stdout)["checks"]
    assert (c["name"], c["limit"], c["actual"], c["ok"], c["layer"]) == \
        ("divisible_by", 2, 6, False, 2)
    assert c["note"].startswith("at 6: layer 2")


def test_check_csv_plain_numbers():
    r = run("check", *RESNET50_ALL, "--format", "csv")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["name", "limit", "actual", "ok", "note"]
    got = {row["name"]: row for row in rows}
    assert int(got["max_params"]["limit"]) == 26_000_000
    assert int(got["max_params"]["actual"]) == 25_557_032
    assert int(got["max_macs"]["limit"]) == 4_200_000_000
    assert int(got["max_macs"]["actual"]) == 4_089_184_256
    assert got["expect_output"]["limit"] == got["expect_output"]["actual"] == "1x1000"
    assert (got["min_rf"]["limit"], got["min_rf"]["actual"]) == ("200", "427x427")
    assert got["divisible_by"]["limit"] == "32"
    assert [int(v) for v in got["divisible_by"]["actual"].split()] == list(range(32, 225, 32))
    assert {row["ok"] for row in rows} == {"true"}
    assert "," not in got["max_params"]["actual"] and "≤" not in r.stdout


def test_check_table_keeps_display_strings():
    r = run("check", "@resnet50", "--max-params", "26M")
    assert r.exit_code == 0
    assert "≤ 26,000,000" in r.stdout and "25,557,032" in r.stdout


# ---------------------------------------------------------------------------
# 2. errors with --format json: a document on stdout, the line on stderr
# ---------------------------------------------------------------------------

def test_error_document_spec_example_add():
    # save:x is layer 1, conv k=3 takes 8 → 6, four relus, add:x is layer 7:
    # 1x1x6x6 + 1x1x8x8 cannot broadcast (exit 3)
    r = run("shape", "-i", "1x1x8x8", "save:x", "conv:1,k=3", "relu", "relu", "relu", "relu",
            "add:x", "--format", "json")
    err = error_doc(r, 3)
    assert err["layer"] == 7 and err["token"] == "add:x"
    assert "cannot broadcast" in err["message"]
    assert err["message"] in r.stderr  # the same words as the human line


def test_error_document_uncomputable_and_syntax():
    # 2x2 input, 5x5 kernel: exit 3 at layer 1
    err = error_doc(run("shape", "-i", "1x1x2x2", "conv:1,k=5", "--format", "json"), 3)
    assert (err["layer"], err["token"], err["hint"]) == (1, "conv:1,k=5", None)
    # an unknown key: exit 2 at layer 2
    err = error_doc(run("rf", "-i", "1x1x8x8", "relu", "conv:1,k=3,zz=1", "--format", "json"),
                    2)
    assert (err["layer"], err["token"]) == (2, "conv:1,k=3,zz=1")
    # the stack's input errors for check too (not its checks document)
    err = error_doc(run("check", "-i", "1x1x2x2", "conv:1,k=5", "--max-params", 1, "--format",
                        "json"), 3)
    assert err["layer"] == 1


@pytest.mark.parametrize("argv", [
    ["shape", "--bogus", "--format", "json", "relu"],          # unknown option, before --format
    ["shape", "-i", "1x1x8x8", "relu", "--format", "json", "--bogus"],
    ["shape", "-i", "1x1x8x8", "relu", "--format=json", "--seed", "x"],
    ["rf", "--format", "json", "-i", "1x1x8x8", "relu", "--at", "a,b"],
    ["check", "@mnist", "--max-params", "lots", "--format", "json"],  # bad value first
    ["check", "@mnist", "--format", "json"],                   # no assertion (in the body)
    ["shape", "--format", "json"],                             # no layers
    ["solve", "conv", "--format", "json"],                     # missing --in
    ["solve", "conv", "--in", "x", "--out", "3", "--format", "json"],
    ["solve", "sizes", "-i", "1x1x8x8", "relu", "--range", "ten", "--format", "json"],
    ["models", "--nope", "--format", "json"],
])
def test_usage_errors_print_the_document(argv):
    err = error_doc(run(*argv), 2)
    assert err["layer"] is None and err["token"] is None


@pytest.mark.parametrize("argv", [
    ["shape", "-i", "1x1x8x8", "add:nope"],                        # table: nothing on stdout
    ["shape", "-i", "1x1x8x8", "add:nope", "--format", "csv"],
    ["shape", "-i", "1x1x8x8", "add:nope", "--format", "json", "--format", "csv"],  # last wins
    ["shape", "-i", "--format", "json", "relu"],                    # --format is -i's value
    ["shape", "-i", "1x1x8x8", "--", "--format", "json"],           # after --: layer tokens
    ["shape", "--bogus", "--format", "JSON"],                       # not a format at all
])
def test_no_document_unless_json_was_asked_for(argv):
    r = run(*argv)
    assert r.exit_code == 2
    human_error(r)
    assert r.stdout == ""


def test_rank_mismatch_document_carries_the_hint():
    err = error_doc(run("shape", "-i", "1x28x28", "@mnist", "--format", "json"), 2)
    assert err["hint"] == "did you mean 1x1x28x28?"
    assert "1x28x28" in err["message"] and "1x1x28x28" in err["message"]


def test_solve_without_solution_prints_a_document():
    # tconv 4 → 100 with k=3 s=2: at most (4−1)·2 + 2 + 1 + 1 = 10 (p=0, op=1)
    r = run("solve", "tconv", "--in", 4, "--out", 100, "-k", 3, "-s", 2, "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["solutions"] == []
    assert (doc["kind"], doc["in"], doc["out"]) == ("tconv", 4, 100)
    assert "No tconv with those settings maps 4 to 100." in r.stderr
    r = run("solve", "tconv", "--in", 4, "--out", 100, "-k", 3, "-s", 2, "--format", "csv")
    assert r.exit_code == 1
    assert r.stdout.splitlines() == ["token,before,after,op,ceil"]
    # and with a solution: 8 → 4, k=2 s=2, no padding
    r = run("solve", "conv", "--in", 8, "--out", 4, "-k", 2, "-s", 2, "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["solutions"][0]["padding"] == [0, 0]


def test_solve_sizes_without_a_size_prints_a_document():
    # maxpool:2 at 3 → 1 reads 0..1 of 3 (never position 2): no size in 3..3
    r = run("solve", "sizes", "-i", "1x1x8x8", "maxpool:2", "--range", "3..3", "--format",
            "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["sizes"] == []
    r = run("solve", "sizes", "-i", "1x1x8x8", "maxpool:2", "--range", "3..4", "--format",
            "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["sizes"] == [4]


# ---------------------------------------------------------------------------
# 6. rank mismatch against the stack's declared input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["shape"], ["rf"], ["check", "--max-params", "1G"],
                                     ["solve", "sizes", "--range", "28..28"]])
def test_torchsummary_habit_is_refused(command):
    # -i 1x28x28 @mnist once ran a 1-D network (6,990 params)
    r = run(*command, "-i", "1x28x28", "@mnist")
    assert r.exit_code == 2
    first, hint = human_error(r)
    assert "1x28x28 (3-D)" in first and "1x1x28x28" in first and "@mnist" in first
    assert hint.strip() == "hint: did you mean 1x1x28x28?"
    assert r.stdout == ""


@pytest.mark.parametrize("given,declared,meant", [
    ("3x224x224", "@resnet18", "1x3x224x224"),  # C×H×W: the batch left out
    ("1x28x28", "@mnist", "1x1x28x28"),
    ("8x28x28", "@mnist", "8x1x28x28"),  # 8 is no channel count of @mnist: the batch
])
def test_rank_hint_inserts_a_one_where_it_fits(given, declared, meant):
    r = run("shape", "-i", given, declared)
    assert r.exit_code == 2
    assert human_error(r)[1].strip() == f"hint: did you mean {meant}?"
    assert run("shape", "-i", meant, declared).exit_code == 0  # and the hint works


def test_rank_mismatch_other_ranks_name_the_declared_shape():
    r = run("shape", "-i", "1x1x1x28x28", "@mnist")
    assert r.exit_code == 2
    first, hint = human_error(r)
    assert "1x1x1x28x28 (5-D)" in first and "4-D input 1x1x28x28" in first
    assert "1x1x28x28" in hint


def test_rank_mismatch_with_a_stack_file_input_line(tmp_path):
    stack = tmp_path / "net.stack"
    stack.write_text("# input: 1x3x32x32\nconv:8,k=3\n")
    r = run("shape", "-i", "3x32x32", "-f", stack)
    assert r.exit_code == 2
    first, hint = human_error(r)
    assert "3x32x32" in first and "1x3x32x32" in first and "# input:" in first
    assert hint.strip() == "hint: did you mean 1x3x32x32?"
    # stdin the same
    r = run("shape", "-i", "3x32x32", "-f", "-", input="# input: 1x3x32x32\nconv:8,k=3\n")
    assert r.exit_code == 2


def test_same_rank_or_no_declared_input_still_runs(tmp_path):
    # another size or batch at the declared rank is what -i is for
    assert run("shape", "-i", "4x1x32x32", "@mnist").exit_code == 0
    # a stack without a declared input takes any rank: conv k=3 at 28 → 26 (1-D)
    r = run("shape", "-i", "1x1x28", "conv:4,k=3", "--format", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["output_shape"] == [1, 4, 26]
    stack = tmp_path / "plain.stack"
    stack.write_text("conv:8,k=3\n")
    assert run("shape", "-i", "1x3x32", "-f", stack).exit_code == 0


# ---------------------------------------------------------------------------
# the README's CI script, run as a CI job would run it
# ---------------------------------------------------------------------------

def _readme_ci_script() -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- ci-script -->", 1)[1]
    return block.split("```bash\n", 1)[1].split("```", 1)[0]


MNIST = ("conv:10,k=5 maxpool:2 relu conv:20,k=5 maxpool:2 relu flatten linear:50 relu "
         "linear:10")


def _run_ci_script(tmp_path, stack):
    import shutil
    import subprocess
    import sys
    exe = Path(sys.executable).parent
    if shutil.which("convcalc", path=str(exe)) is None:
        pytest.skip("convcalc is not installed next to this Python")
    (tmp_path / "model.stack").write_text("# input: 1x1x28x28\n" + stack + "\n")
    env = {**os.environ, "PATH": f"{exe}{os.pathsep}{os.environ.get('PATH', '')}"}
    p = subprocess.run(["bash", "-c", _readme_ci_script()], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    return p, json.loads((tmp_path / "geometry.json").read_text())


def test_readme_ci_script_pass(tmp_path):
    # by hand: r = 5 → pool 6 (S 2) → conv5 14 → pool 16 (S 4) → conv3 24 ≥ 20;
    # 28 → 24 → 12 → 8 → 4 → 2, 20·2·2 = 80 → 10; params 260 + 5,020 + 3,620 + 810
    p, doc = _run_ci_script(tmp_path, "conv:10,k=5 maxpool:2 conv:20,k=5 maxpool:2 "
                                      "conv:20,k=3 flatten linear:10")
    assert p.returncode == 0, p.stderr
    assert doc["ok"] is True
    assert "ok   expect_output: limit [1, 10], actual [1, 10]" in p.stdout
    assert "ok   max_params: limit 26000000, actual 9710" in p.stdout
    assert "ok   min_rf: limit 20, actual {'size': [24, 24]" in p.stdout


def test_readme_ci_script_failed_check(tmp_path):
    # the MNIST net's field before the flatten is 16 (5 → 6 → 14 → 16) < 20
    p, doc = _run_ci_script(tmp_path, MNIST)
    assert p.returncode == 1
    assert doc["ok"] is False
    assert "ok   max_params: limit 26000000, actual 21840" in p.stdout
    assert "FAIL min_rf: limit 20, actual {'size': [16, 16]" in p.stdout


def test_readme_ci_script_syntax_error(tmp_path):
    p, doc = _run_ci_script(tmp_path, "conv:10,k=5 maxpool:2 conv:20")
    assert p.returncode == 1
    assert doc["error"]["code"] == 2 and doc["error"]["layer"] == 3
    assert "could not check the model (exit 2, layer 3): layer 3 (conv:20): k is required" \
        in p.stderr


def test_readme_ci_script_uncomputable(tmp_path):
    # 10·24·24 = 5,760 features reach a linear that declares 7
    p, doc = _run_ci_script(tmp_path, "conv:10,k=5 flatten linear:10,in=7")
    assert p.returncode == 1
    assert doc["error"]["code"] == 3 and doc["error"]["layer"] == 3
    assert "could not check the model (exit 3, layer 3)" in p.stderr
