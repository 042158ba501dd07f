"""``convcalc check``: assertions on a stack, for CI.

Each assertion compares one number of the analysis with a limit and says
what it found; the CLI exits 1 when any fails.  A :class:`Check` carries the
values twice: as plain JSON values for scripts (``limit``, ``actual``: SPEC
§5) and as display strings for the table (``expected``, ``shown``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

from .analysis import Analysis, analyze, inexact, last_field_row, rf_dict
from .errors import ConvcalcError
from .render import offset_text

JOINS = ("add", "mul", "concat", "cat", "crop")

# the machine names (SPEC §5) and the labels the table shows for them
LABELS = {"expect_output": "output shape", "max_params": "params", "max_macs": "MACs",
          "min_rf": "receptive field", "divisible_by": "divisible by"}


@dataclass(frozen=True)
class Check:
    """One assertion: ``name`` is the machine name (``max_params``, …);
    ``limit`` and ``actual`` are JSON values (numbers, shapes as lists, a
    receptive field as ``{"size", "stride", "padding"}``, None when there is
    nothing to report); ``expected`` and ``shown`` are what the table prints;
    ``note`` is human context (why it failed, where the value was taken)."""
    name: str
    limit: Any
    actual: Any
    passed: bool
    expected: str
    shown: str
    note: Optional[str] = None
    layer: Optional[int] = None  # the layer the value was taken at / that failed, if any

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    def to_dict(self) -> dict:
        d = {"name": self.name, "limit": self.limit, "actual": self.actual, "ok": self.passed}
        if self.layer is not None:
            d["layer"] = self.layer
        if self.note:
            d["note"] = self.note
        return d

    def csv_row(self) -> list:
        """name, limit, actual, ok, note: plain values (shapes and field sizes
        as 1x1000, a list of sizes space separated, nothing for None)."""
        sep = " " if self.name == "divisible_by" else "x"  # sizes, not a shape
        return [self.name, csv_value(self.limit, sep), csv_value(self.actual, sep),
                "true" if self.passed else "false", self.note or ""]


CSV_HEADER = ("name", "limit", "actual", "ok", "note")


def csv_value(v, sep: str = "x") -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):  # a receptive field: its size
        return csv_value(v.get("size"))
    if isinstance(v, (list, tuple)):
        return sep.join(map(str, v))
    return str(v)


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
        out.append(Check("expect_output", list(expect_output), list(a.output_shape),
                         tuple(expect_output) == tuple(a.output_shape),
                         _shape(expect_output), _shape(a.output_shape)))
    if max_params is not None:
        out.append(Check("max_params", max_params, a.totals.params,
                         a.totals.params <= max_params,
                         f"≤ {max_params:,}", f"{a.totals.params:,}"))
    if max_macs is not None:
        out.append(Check("max_macs", max_macs, a.totals.macs, a.totals.macs <= max_macs,
                         f"≤ {max_macs:,}", f"{a.totals.macs:,}"))
    if min_rf is not None:
        out.append(_min_rf(a, min_rf))
    if divisible_by is not None:
        out.append(_divisible(a, tokens, divisible_by))
    return out


def _min_rf(a: Analysis, n: int) -> Check:
    expected = f"≥ {n} in every dim"
    rf, where = network_rf(a)
    if rf is None:
        note = a.receptive_note or "none (no spatial dims)"
        return Check("min_rf", n, None, False, expected, note, note)
    shown = note = "x".join(map(str, rf.size))
    layer = None
    if where == "local":
        note = "local: through the paths that keep positions"
    elif where is not None:
        layer = where.index
        note = f"at layer {where.index}, before positions mix"
    else:
        note = None
    if rf.offset:  # the size bounds every path; how far apart they lie is a remark
        note = f"{note}; {offset_text(rf)}" if note else offset_text(rf)
    if note:
        shown += f" ({note})"
    return Check("min_rf", n, rf_dict(rf), min(rf.size) >= n, expected, shown, note, layer)


def _divisible(a: Analysis, tokens: Sequence, n: int) -> Check:
    """Every input size that is a multiple of n, up to this input's, must work
    exactly (no layer rounds input away, every add/concat lines up).

    ``actual`` is the list of sizes checked when it passes, the first size
    that fails when it does (None: no spatial dims; []: no multiple fits)."""
    spatial = a.input_shape[2:]
    expected = f"every input size divisible by {n} works exactly"

    def failed(actual, why, layer=None):
        return Check("divisible_by", n, actual, False, expected, why, why, layer)

    if not spatial:
        return failed(None, "the input has no spatial dims")
    bad = [v for v in spatial if v % n]
    if bad:
        return failed(bad[0], f"the input {_shape(spatial)} is not divisible by {n}")
    top = max(spatial)
    count = top // n  # the multiples of n up to this input: n, 2n, …, top
    # at most 16 sizes: all the multiples, or 15 spread evenly and this input
    picks = range(count) if count <= 16 else [i * (count - 1) // 15 for i in range(15)]
    sizes = [n * (1 + i) for i in picks] + [top]
    checked = []
    for m in sorted(set(sizes)):
        shape = (*a.input_shape[:2], *([m] * len(spatial)))
        try:
            b = analyze(tokens, shape, receptive=False)
        except ConvcalcError as e:
            if (e.token or "").split(":")[0] in JOINS:
                return failed(m, f"fails at {m}: {e.message}", e.layer)
            continue  # too small for the stack at all: not a divisibility question
        for r in b.layers:
            why = inexact(r)
            if why:
                return failed(m, f"at {m}: layer {r.index} ({r.spec}) {why}", r.index)
        checked.append(m)
    if not checked:
        return failed([], f"no multiple of {n} up to {top} fits the stack")
    shown = f"checked {len(checked)} sizes from {checked[0]} to {checked[-1]}"
    return Check("divisible_by", n, checked, True, expected, shown, shown)
