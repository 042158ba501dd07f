"""The fast paths of issue 15 give what the slow ones gave.

* solve sizes shares the walk between sizes that reach the same tensors: its
  answer must be what analyzing every size on its own says;
* receptive fields with whole strides are ints: they must equal the
  classic recursion in exact Fractions (Araujo et al.), worked out here;
* a repeated token is parsed once: every spec equals its own parse;
* analysis switches the garbage collector off only while it runs;
* an impulse's spread through a zero-padded conv, worked out from the
  sources' side for --verify, is the set of outputs whose taps meet them.
"""
from __future__ import annotations

import gc
import random
from fractions import Fraction

import pytest

from convcalc import analyze
from convcalc.analysis import inexact, rounding_free
from convcalc.errors import ConvcalcError
from convcalc.language import parse_stack, parse_token
from convcalc.layers import Window, build
from convcalc.receptive import forward_set
from convcalc.solve import solve_sizes

UNET2 = ["conv:4,k=3,p=1", "save:e1", "maxpool:2", "conv:8,k=3,p=1", "save:e2", "maxpool:2",
         "conv:8,k=3,p=1", "tconv:8,k=2,s=2", "concat:e2", "conv:4,k=3,p=1",
         "tconv:4,k=2,s=2", "concat:e1", "conv:2,k=1"]


def one_by_one(tokens, template, sizes):
    """Every size analyzed on its own: goes through, and no row rounds input away."""
    out = []
    for n in sizes:
        shape = (*template[:2], *([n] * (len(template) - 2)))
        try:
            a = analyze(tokens, shape, receptive=False)
        except ConvcalcError:
            out.append(False)
            continue
        out.append(not any(inexact(r) for r in a.layers))
    return out


@pytest.mark.parametrize("tokens,template,sizes", [
    (UNET2, (1, 1, 8, 8), range(1, 130)),
    (["@resnet18"], (1, 3, 8, 8), range(1, 200)),
    (["@densenet121"], (1, 3, 8, 8), range(20, 90)),
    (["conv:4,k=3,s=3", "up:1.5", "save:a", "conv:4,k=3,p=1", "add:a", "maxpool:2"],
     (1, 4, 8), range(1, 120)),
    (["conv:4,k=5,s=2,p=2", "save:a", "avgpool:3,s=3", "up:size=a", "add:a"],
     (1, 4, 8, 8), range(1, 100)),
])
def test_shared_walk_matches_every_size_on_its_own(tokens, template, sizes):
    specs = parse_stack(tokens)
    shapes = [(*template[:2], *([n] * (len(template) - 2))) for n in sizes]
    got = rounding_free(specs, [build(s) for s in specs], shapes)
    want = one_by_one(tokens, template, sizes)
    assert got == want
    assert any(want) and (not all(want) or tokens == ["@resnet18"])  # sizes told apart
    res = solve_sizes(tokens, template, sizes[0], sizes[-1])
    assert list(res.sizes) == [n for n, ok in zip(sizes, want) if ok]


def test_integer_strides_match_the_fraction_recursion():
    tokens = ["conv:8,k=7,s=2,p=3", "maxpool:3,s=2,p=1", "conv:8,k=3,d=2,p=2",
              "conv:8,k=3,s=2,p=1", "conv:8,k=1"]
    geometry = [(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 2, 2), (3, 2, 1, 1), (1, 1, 0, 1)]
    a = analyze(tokens, (1, 8, 64, 64))
    r, S, P = 1, Fraction(1), Fraction(0)
    for row, (k, s, p, d) in zip(a.layers, geometry):
        r, P, S = r + d * (k - 1) * S, P + p * S, S * s
        field = row.receptive_field
        assert field.size == (r, r) and field.stride == (S, S) and field.padding == (P, P)
    # a transposed conv makes the stride a fraction, and it stays exact
    a = analyze(tokens + ["tconv:8,k=2,s=2", "tconv:8,k=2,s=2", "tconv:8,k=2,s=3"],
                (1, 8, 64, 64))
    assert a.receptive_field.stride == (Fraction(8, 12),) * 2


def test_a_repeated_token_is_its_own_parse():
    tokens = ["conv:8,k=3,p=1", "relu", "l1.c=conv:8,k=3,p=1", "relu", "conv:8,k=3,p=1"]
    specs = parse_stack(tokens)
    assert specs == [parse_token(t, i) for i, t in enumerate(tokens, 1)]
    assert [s.index for s in specs] == [1, 2, 3, 4, 5]


def test_the_collector_is_back_after_analysis():
    assert gc.isenabled()
    analyze(["conv:8,k=3"], (1, 3, 8, 8))
    assert gc.isenabled()
    with pytest.raises(ConvcalcError):
        analyze(["conv:8,k=30"], (1, 3, 8, 8))
    assert gc.isenabled()
    gc.disable()
    try:
        analyze(["conv:8,k=3"], (1, 3, 8, 8))
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()


def test_a_conv_impulse_spreads_to_the_outputs_whose_taps_meet_it():
    rng = random.Random(15)
    checked = 0
    for _ in range(3000):
        k, s, d, n = rng.randint(1, 9), rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 30)
        p = rng.randint(0, k * d)
        out = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            continue
        sources = rng.sample(range(-3, n + 3), rng.randint(0, min(10, n + 6)))
        # by the definition: output o reads o·s − p + j·d for j < k, inside [0, n)
        want = [o for o in range(out)
                if any(0 <= o * s - p + j * d < n and o * s - p + j * d in sources
                       for j in range(k))]
        assert forward_set(Window("conv", n, out, k, s, p, d), sources) == want
        checked += 1
    assert checked > 2000
