"""``convcalc check``: assertions on a stack, for CI.

Each assertion compares one number of the analysis with a limit and says
what it found; the CLI exits 1 when any fails.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

from .analysis import Analysis, analyze, inexact, last_field_row
from .errors import ConvcalcError

JOINS = ("add", "mul", "concat", "cat", "crop")


@dataclass(frozen=True)
class Check:
    name: str
    expected: str
    actual: str
    passed: bool

    def to_dict(self) -> dict:
        return {"check": self.name, "expected": self.expected, "actual": self.actual,
                "passed": self.passed}


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def network_rf(a: Analysis):
    """The output's receptive field, or the last one before positions mix
    (none when joined paths disagree: then there is no number to trust)."""
    if a.receptive_field is not None or a.receptive_note:
        return a.receptive_field, None
    if a.local_receptive_field is not None:  # SPEC §3b: --min-rf tests the local field
        return a.local_receptive_field, "local"
    last = last_field_row(a)
    return (last.receptive_field or last.local_receptive_field, last) if last else (None, None)


def run_checks(a: Analysis, tokens: Sequence, expect_output: Optional[Sequence[int]] = None,
               max_params: Optional[int] = None, max_macs: Optional[int] = None,
               min_rf: Optional[int] = None, divisible_by: Optional[int] = None) -> List[Check]:
    out: List[Check] = []
    if expect_output is not None:
        out.append(Check("output shape", _shape(expect_output), _shape(a.output_shape),
                         tuple(expect_output) == tuple(a.output_shape)))
    if max_params is not None:
        out.append(Check("params", f"≤ {max_params:,}", f"{a.totals.params:,}",
                         a.totals.params <= max_params))
    if max_macs is not None:
        out.append(Check("MACs", f"≤ {max_macs:,}", f"{a.totals.macs:,}",
                         a.totals.macs <= max_macs))
    if min_rf is not None:
        rf, where = network_rf(a)
        if rf is None:
            actual, ok = (a.receptive_note or "none (no spatial dims)"), False
        else:
            actual = "x".join(map(str, rf.size))
            if where == "local":
                actual += " (local: through the paths that keep positions)"
            elif where is not None:
                actual += f" (at layer {where.index}, before positions mix)"
            ok = min(rf.size) >= min_rf
        out.append(Check("receptive field", f"≥ {min_rf} in every dim", actual, ok))
    if divisible_by is not None:
        out.append(_divisible(a, tokens, divisible_by))
    return out


def _divisible(a: Analysis, tokens: Sequence, n: int) -> Check:
    """Every input size that is a multiple of n, up to this input's, must work
    exactly (no layer rounds input away, every add/concat lines up)."""
    spatial = a.input_shape[2:]
    expected = f"every input size divisible by {n} works exactly"
    if not spatial:
        return Check("divisible by", expected, "the input has no spatial dims", False)
    if any(v % n for v in spatial):
        return Check("divisible by", expected,
                     f"the input {_shape(spatial)} is not divisible by {n}", False)
    top = max(spatial)
    count = top // n  # the multiples of n up to this input: n, 2n, …, top
    step = -(-count // 16)  # at most 16 of them, spread evenly, and this input
    sizes = [n * (1 + i) for i in range(0, count, step)] + [top]
    checked = []
    for m in sorted(set(sizes)):
        shape = (*a.input_shape[:2], *([m] * len(spatial)))
        try:
            b = analyze(tokens, shape, receptive=False)
        except ConvcalcError as e:
            if (e.token or "").split(":")[0] in JOINS:
                return Check("divisible by", expected, f"fails at {m}: {e.message}", False)
            continue  # too small for the stack at all: not a divisibility question
        for r in b.layers:
            why = inexact(r)
            if why:
                return Check("divisible by", expected,
                             f"at {m}: layer {r.index} ({r.spec}) {why}", False)
        checked.append(m)
    if not checked:
        return Check("divisible by", expected, f"no multiple of {n} up to {top} fits the stack",
                     False)
    return Check("divisible by", expected, f"checked {len(checked)} sizes from {checked[0]} to "
                                           f"{checked[-1]}", True)
