"""The imported torchvision zoo against torch's own numbers, without torch.

``tests/make_zoo.py`` writes ``src/convcalc/models/<name>.stack`` through the
importer and ``tests/golden/zoo.json`` from torch alone (eval-graph params,
FlopCounterMode MACs, output shape, every traced node's shape).  Here every
committed stack is analyzed and compared with those numbers, layer by layer.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import convcalc
from convcalc.language import read_reference

GOLDEN = Path(__file__).resolve().parent / "golden" / "zoo.json"
ZOO = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def test_the_zoo_is_there():
    """Every torchvision conv-net family is in (the golden file lists 70+ models)."""
    assert len(ZOO) >= 60, sorted(ZOO)
    families = {v["family"] for v in ZOO.values()}
    assert {"ResNet", "EfficientNet", "MobileNet", "RegNet", "ConvNeXt", "ShuffleNet",
            "DenseNet", "segmentation"} <= families


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_matches_torch(name):
    want = ZOO[name]
    stack = read_reference(name)
    assert list(stack.input_shape) == want["input"]
    assert stack.meta["family"] == want["family"]
    a = convcalc.analyze(stack.tokens, stack.input_shape, receptive=False)
    assert list(a.output_shape) == want["output"]
    assert a.totals.params == want["params"] == int(stack.meta["params"])
    assert a.totals.macs == want["macs"] == int(stack.meta["macs"])
    rows = [list(r.output_shape) for r in a.layers if r.kind not in ("save", "from")]
    assert rows == want["shapes"]
