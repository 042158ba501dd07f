"""The work of an analysis and of every rendering is linear in the rows.

Not timed (benchmarks live in bench/scaling.py): the Python function calls
made are counted for stacks of n, 2n and 3n repeated blocks.  Linear work adds
the same number of calls for each further n blocks; any scan of all rows per
row, or a walk that grows with the depth, makes the second difference
positive.
"""
import sys

import pytest

import convcalc
from convcalc import render

BLOCK = ["conv:8,k=3,p=1", "bn", "relu", "save:a", "conv:8,k=3,p=1", "add:a"]

RENDERINGS = {
    "analyze": lambda tokens: convcalc.analyze(tokens, (1, 8, 16, 16)),
    "table": lambda tokens: render.table_lines(render.shape_report(
        convcalc.analyze(tokens, (1, 8, 16, 16))), None, False),
    "json": lambda tokens: render.dump_json(convcalc.analyze(tokens, (1, 8, 16, 16)).to_dict()),
    "csv": lambda tokens: render.shape_csv(convcalc.analyze(tokens, (1, 8, 16, 16))),
    "markdown": lambda tokens: render.markdown(render.shape_report(
        convcalc.analyze(tokens, (1, 8, 16, 16)))),
    "rf": lambda tokens: render.table_lines(render.rf_report(
        convcalc.analyze(tokens, (1, 8, 16, 16))), None, False),
}


def calls(fn, tokens) -> int:
    """Python function calls made by fn(tokens)."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1
    fn(tokens)  # warm: imports and first-use caches are not the stack's work
    sys.setprofile(profile)
    try:
        fn(tokens)
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("what", sorted(RENDERINGS))
def test_calls_grow_linearly_with_rows(what):
    n = 40
    c1, c2, c3 = (calls(RENDERINGS[what], BLOCK * (k * n)) for k in (1, 2, 3))
    per_block = (c2 - c1) / n
    assert per_block > 0
    # the same calls for the third n blocks as for the second: no per-row cost
    # that grows with the stack
    assert c3 - c2 == pytest.approx(c2 - c1, rel=0.01), (c1, c2, c3)


def test_steps_worked_out_once_per_token_and_shape(monkeypatch):
    """A stack repeating a token at one input shape computes its steps once."""
    from convcalc import layers
    counted = []
    real = layers.Conv.steps

    def steps(self, shape):
        counted.append(shape)
        return real(self, shape)
    monkeypatch.setattr(layers.Conv, "steps", steps)
    a = convcalc.analyze(["conv:8,k=3,p=1", "relu"] * 500 + ["conv:8,k=3,s=2,p=1"] * 3,
                         (1, 8, 16, 16))
    # 16 → 16 a thousand times: one conv text at one shape; then 16 → 8 → 4 → 2
    assert counted == [(1, 8, 16, 16), (1, 8, 16, 16), (1, 8, 8, 8), (1, 8, 4, 4)]
    assert [r.output_shape for r in a.layers[-3:]] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2)]
    # the receptive field still grows by k − 1 = 2 per stride-1 conv (REFERENCE.md)
    assert a.layers[999].receptive_field.size == (1 + 2 * 500,) * 2
