"""Solving for geometry: the paddings that map one size to another, and the
input sizes a whole stack takes without rounding anything away.

:func:`solve_layer` enumerates, for a conv, pool or transposed conv, every
(kernel, stride, padding, output padding) within small bounds that turns an
input size into a target size; :func:`solve_sizes` tries every input size in
a range through the full analysis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from .analysis import analyze, inexact, rounding_free
from .collector import paused
from .errors import ConvcalcError, StackSyntaxError
from .language import MAX_INT, LayerSpec, parse_stack
from .layers import build

SOLVABLE = ("conv", "maxpool", "avgpool", "tconv")
KERNELS = range(1, 12)  # searched when -k is not given
STRIDES = range(1, 5)  # searched when -s is not given
MAX_SOLUTIONS = 200
MAX_SIZES = 5000  # sizes one `solve sizes` tries
SHOWN_FAILURES = 5  # failing sizes whose reasons are reported


@dataclass(frozen=True)
class LayerSolution:
    kind: str
    k: int
    s: int
    d: int
    padding: Tuple[int, int]  # before, after (a transposed conv: cropped)
    op: int  # output padding (transposed conv)
    size_in: int = 0
    ceil: bool = False  # a pool in ceil mode

    @property
    def token(self) -> str:
        b, a = self.padding
        parts = [f"k={self.k}"]
        if self.kind != "conv" and self.kind != "tconv":
            parts = [str(self.k)]
        if self.s != (self.k if self.kind in ("maxpool", "avgpool") else 1):
            parts.append(f"s={self.s}")
        if b or a:
            parts.append(f"p={b}" if b == a else f"p={b}:{a}")
        if self.d != 1:
            parts.append(f"d={self.d}")
        if self.op:
            parts.append(f"op={self.op}")
        if self.ceil:
            parts.append("ceil")
        head = {"conv": "conv:C,", "tconv": "tconv:C,"}.get(self.kind, f"{self.kind}:")
        return head + ",".join(parts)

    @property
    def size_out(self) -> int:
        b, a = self.padding
        if self.kind == "tconv":
            return (self.size_in - 1) * self.s - b - a + self.d * (self.k - 1) + self.op + 1
        return _pool_out(self.size_in, self.k, self.s, self.d, b, a, self.ceil)

    def formula(self, i: int) -> str:
        b, a = self.padding
        if self.kind == "tconv":
            o = (i - 1) * self.s - b - a + self.d * (self.k - 1) + self.op + 1
            return (f"({i}−1)·{self.s} − {b} − {a} + {self.d}·({self.k}−1) + {self.op} + 1 "
                    f"= {o}")
        if self.ceil:
            return (f"⌈({i} + {b} + {a} − {self.d}·({self.k}−1) − 1)/{self.s}⌉ + 1 "
                    f"= {self.size_out}")
        o = (i + b + a - self.d * (self.k - 1) - 1) // self.s + 1
        return f"⌊({i} + {b} + {a} − {self.d}·({self.k}−1) − 1)/{self.s}⌋ + 1 = {o}"

    # -- how a designer ranks them ------------------------------------------

    @property
    def in_pytorch(self) -> bool:
        """Writable as the nn module's own arguments: one padding for both
        sides (pools: at most half the kernel); else an F.pad comes first."""
        b, a = self.padding
        return b == a and (self.kind in ("conv", "tconv") or 2 * b <= self.k)

    @property
    def wasted(self) -> bool:
        """Some output window reads padding only (k=1, s=3, p=55)."""
        if self.kind == "tconv":
            return False
        b, _ = self.padding
        i, o = self.size_in, self.size_out
        return not (_reads_input(-b, self.d, self.k, i)
                    and _reads_input((o - 1) * self.s - b, self.d, self.k, i))

    @property
    def loses(self) -> bool:
        """Some input position is read by no window (a stride past the kernel,
        or the last positions left over)."""
        if self.kind == "tconv":
            return False
        b, _ = self.padding
        span = self.d * (self.k - 1)
        # the taps j·d (j < k) hit every residue mod s only when gcd(d, s) = 1
        # and k ≥ s: the multiples of d mod s cycle through s / gcd(d, s) values
        covers = math.gcd(self.d, self.s) == 1 and self.k >= self.s
        return not covers or \
            (self.size_out - 1) * self.s - b + span < self.size_in - 1

    def rank(self) -> tuple:
        return (self.wasted, not self.in_pytorch, self.ceil, self.loses,
                sum(self.padding), self.op, self.k, self.s)

    def to_dict(self) -> dict:
        return {"token": self.token, "k": self.k, "s": self.s, "d": self.d,
                "padding": list(self.padding), "op": self.op, "ceil": self.ceil,
                "in_pytorch": self.in_pytorch, "wasted": self.wasted, "loses": self.loses}


def _reads_input(start: int, d: int, k: int, i: int) -> bool:
    """Whether the taps start, start + d, …, start + d·(k−1) meet [0, i)."""
    first = max(0, -(-(-start) // d))  # the first tap at or past 0
    return first < k and start + first * d < i


def _pool_out(i: int, k: int, s: int, d: int, b: int, a: int, ceil: bool) -> int:
    """PyTorch's pooling output size (floor, or ceil with its rule that the
    last window starts inside the input or the left padding)."""
    top = i + b + a - d * (k - 1) - 1
    if top < 0:
        return 0
    o = (top + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= i + b:
        o -= 1
    return o


def solve_layer(kind: str, size_in: int, size_out: int, k: Optional[int] = None,
                s: Optional[int] = None, d: int = 1) -> List[LayerSolution]:
    """Every geometry of ``kind`` mapping ``size_in`` to ``size_out`` in one dim,
    best first: no window reading padding only, writable in the nn module
    (symmetric padding), floor before ceil mode, every input read, then the
    smallest padding, output padding, kernel and stride.

    Paddings are listed as (before, after) with the odd unit after (the
    TensorFlow 'SAME' convention) when the total is odd; pools keep PyTorch's
    rule that each side is at most k/2, and are also tried in ceil mode; a
    transposed conv pads symmetrically (as PyTorch does) and takes output
    padding below max(stride, dilation).
    """
    if kind not in SOLVABLE:
        raise StackSyntaxError(f"solve knows {', '.join(SOLVABLE)}, not {kind!r}")
    if kind == "avgpool" and d != 1:
        raise StackSyntaxError("avgpool has no dilation (PyTorch's AvgPool has none)")
    if min(size_in, size_out) < 1 or (k is not None and k < 1) or (s is not None and s < 1) \
            or d < 1:
        raise StackSyntaxError("sizes, kernel, stride and dilation must be at least 1")
    if max(size_in, size_out, k or 1, s or 1, d) > MAX_INT:
        raise StackSyntaxError(f"sizes, kernel, stride and dilation must be at most "
                               f"{MAX_INT:.0e}")
    found: List[LayerSolution] = []
    count = 0  # every solution, though only the first few of each range are listed
    # a range's best are its smallest paddings, and half of those are
    # asymmetric: listing 2·MAX + 1 of each keeps the global best MAX exact
    listed = 2 * MAX_SOLUTIONS + 1

    def add(kk, ss, pads, op=0, ceil=False):
        found.append(LayerSolution(kind, kk, ss, d, pads, op, size_in, ceil))

    for kk in ([k] if k else KERNELS):
        for ss in ([s] if s else STRIDES):
            span = d * (kk - 1)
            if kind == "tconv":
                # o = (i−1)s − 2p + span + op + 1 with 0 ≤ op < max(s, d): p in a range
                base = (size_in - 1) * ss + span + 1 - size_out  # op = 2p − base
                lo, hi = max(0, -(-base // 2)), min(span, (base + max(ss, d) - 1) // 2)
                count += max(0, hi - lo + 1)
                for p in range(lo, min(hi, lo + listed - 1) + 1):
                    add(kk, ss, (p, p), 2 * p - base)
                continue
            # floor((i + T − span − 1)/s) + 1 = o  ⇔  T in [(o−1)s + span + 1 − i, … + s − 1]
            low = max(0, (size_out - 1) * ss + span + 1 - size_in)
            top = (size_out - 1) * ss + span - size_in + ss
            if kind != "conv":  # PyTorch: pool padding at most half the kernel a side
                top = min(top, 2 * (kk // 2))
            count += max(0, top - low + 1)
            for total in range(low, min(top, low + listed - 1) + 1):
                add(kk, ss, (total // 2, total - total // 2))
            if kind != "conv":  # ceil mode, where it gives another size than floor
                # (symmetric padding only: an F.pad before a ceil-mode pool moves
                # the rule's "inside the input or the left padding")
                def out(p, ceil, kk=kk, ss=ss):
                    return _pool_out(size_in, kk, ss, d, p, p, ceil)
                # both sizes grow with p and ceil's is floor's or one more, so the
                # p where ceil gives o and floor does not are one run at the start
                first = _first(kk // 2, lambda p: out(p, True) >= size_out)
                last = min(_first(kk // 2, lambda p: out(p, True) > size_out),
                           _first(kk // 2, lambda p: out(p, False) >= size_out)) - 1
                count += max(0, last - first + 1)
                for p in range(first, min(last, first + listed - 1) + 1):
                    add(kk, ss, (p, p), ceil=True)
    found.sort(key=LayerSolution.rank)
    return LayerSolutions(found[:MAX_SOLUTIONS], count)


def _first(high: int, grown: Callable[[int], bool]) -> int:
    """The least p in [0, high] where the monotone ``grown`` holds, else high + 1."""
    lo, hi = 0, high + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if grown(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class LayerSolutions(list):
    """The best solutions (at most MAX_SOLUTIONS), and how many there are."""

    def __init__(self, best, total: int):
        super().__init__(best)
        self.total = total


@dataclass(frozen=True)
class SizesResult:
    low: int
    high: int
    sizes: Tuple[int, ...]
    # why the first few other sizes fail: (size, message)
    failures: Tuple[Tuple[int, str], ...]

    @property
    def step(self) -> Optional[int]:
        """The common difference when the sizes are every N-th number."""
        if len(self.sizes) < 2:
            return None
        gaps = {b - a for a, b in zip(self.sizes, self.sizes[1:])}
        return gaps.pop() if len(gaps) == 1 else None

    def to_dict(self) -> dict:
        return {"range": [self.low, self.high], "sizes": list(self.sizes), "step": self.step,
                "failures": [{"size": n, "reason": why} for n, why in self.failures]}


@paused  # a walk per size: 26,000 rows for ResNet-50 at 993 sizes, and no cycles
def solve_sizes(tokens: Sequence, template: Sequence[int], low: int, high: int
                ) -> SizesResult:
    """The input sizes in [low, high] (every spatial dim set to it) at which the
    stack analyzes and no layer rounds input away or lands between sizes."""
    if len(template) < 3:
        raise StackSyntaxError("solve sizes needs an input with spatial dims")
    if low < 1:
        raise StackSyntaxError(f"--range {low}..{high}: sizes start at 1")
    if low > high:
        raise StackSyntaxError(f"--range {low}..{high} is empty")
    if high - low >= MAX_SIZES:
        raise StackSyntaxError(f"--range spans more than {MAX_SIZES:,} sizes; narrow it")
    specs = parse_stack([t.text if isinstance(t, LayerSpec) else t for t in tokens])
    layers = [build(s) for s in specs]  # parsed and built once, walked at every size
    sizes = range(low, high + 1)
    shapes = [(*template[:2], *([n] * (len(template) - 2))) for n in sizes]
    good, failures = [], []
    for n, shape, ok in zip(sizes, shapes, rounding_free(specs, layers, shapes)):
        if ok:
            good.append(n)
        elif len(failures) < SHOWN_FAILURES:
            failures.append((n, _why(specs, shape)))
    return SizesResult(low, high, tuple(good), tuple(failures))


def _why(specs, shape) -> str:
    """Why the stack does not go through exactly at ``shape``, as the analysis says."""
    try:
        a = analyze(specs, shape, receptive=False)
    except ConvcalcError as e:
        return e.message
    r, why = next((r, why) for r in a.layers if (why := inexact(r)))
    return f"layer {r.index} ({r.spec}) {why}"
