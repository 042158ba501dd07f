"""Shell completions: the committed scripts are what the Click app generates."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from convcalc.cli import cli, complete_layer

COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"
REGENERATE = ("for sh in bash zsh fish; do _CONVCALC_COMPLETE=${sh}_source convcalc "
              "> completions/convcalc.$sh; done")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_is_fresh(shell):
    r = CliRunner().invoke(cli, [], prog_name="convcalc",
                           env={"_CONVCALC_COMPLETE": f"{shell}_source"})
    assert r.exit_code == 0
    committed = (COMPLETIONS / f"convcalc.{shell}").read_text()
    assert r.output.rstrip("\n") == committed.rstrip("\n"), \
        f"completions/convcalc.{shell} is stale; regenerate: {REGENERATE}"
    assert "_CONVCALC_COMPLETE" in committed


def values(incomplete):
    return [item.value for item in complete_layer(None, None, incomplete)]


def test_completes_model_names_after_at():
    assert "@resnet50" in values("@res") and "@resnet18" in values("@res")
    assert all(v.startswith("@res") for v in values("@res"))
    assert values("@nosuch") == []


def test_completes_kinds_and_keys():
    assert {"conv", "concat"} <= set(values("co"))
    assert "conv:64,k=3,p=" in values("conv:64,k=3,p")
    assert "conv:64,k=3,pm=" in values("conv:64,k=3,p")
    assert "maxpool:ceil=" in values("maxpool:c")
    assert values("nosuch:k") == []
