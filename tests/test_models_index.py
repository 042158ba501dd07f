"""``models/index.json``: what ``convcalc models`` lists without reading every stack."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from convcalc import model_index
from convcalc.cli import cli
from convcalc.language import builtin_models

REGENERATE = "python tests/make_models_index.py"


def test_the_committed_index_is_fresh():
    with open(model_index.INDEX, encoding="utf-8") as f:
        committed = f.read()
    assert committed == model_index.index_text(), f"models/index.json is stale; run {REGENERATE}"


def test_the_index_lists_every_stack_with_its_header():
    entries = {e["name"]: e for e in model_index.model_entries()}
    stacks = builtin_models()
    assert set(entries) == set(stacks)
    for name, stack in stacks.items():
        assert entries[name]["layers"] == len(stack.tokens)
        assert entries[name]["input"] == list(stack.input_shape)
        assert entries[name]["description"] == stack.description


def test_models_json_numbers_by_hand():
    doc = json.loads(CliRunner().invoke(cli, ["models", "--format", "json"]).output)
    mnist = next(e for e in doc if e["name"] == "mnist")
    # conv1 10·25 + 10 = 260, conv2 20·10·25 + 20 = 5,020, fc1 320·50 + 50 = 16,050,
    # fc2 50·10 + 10 = 510; MACs 10·25·24² + 20·250·8² + 16,000 + 500
    assert (mnist["params"], mnist["macs"]) == (21840, 480500)


@pytest.mark.parametrize("broken", ["stale", "garbage", "missing"])
def test_a_stale_or_broken_index_is_not_believed(tmp_path, monkeypatch, broken):
    index = tmp_path / "index.json"
    doc = json.loads(model_index.index_text())
    doc["models"][0]["params"] = -1  # a lie the sizes must expose
    if broken == "stale":
        doc["sizes"][doc["models"][0]["name"]] += 1
        index.write_text(json.dumps(doc))
    elif broken == "garbage":
        index.write_text('{"sizes": ')
    monkeypatch.setattr(model_index, "INDEX", str(index))
    entries = model_index.model_entries()
    assert entries == model_index.compute_entries() and entries[0]["params"] != -1
    # and a fresh index is believed as it stands (the same lie comes back)
    doc["sizes"] = json.loads(model_index.index_text())["sizes"]
    index.write_text(json.dumps(doc))
    assert model_index.model_entries()[0]["params"] == -1
