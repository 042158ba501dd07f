"""Receptive fields, exact through every layer kind.

Per spatial dim, every layer maps an output position o to the input
positions it reads (:func:`taps`).  Two readings of that map:

* **unclipped** -- the layer's index arithmetic on an input extended without
  end (padding positions count as positions; upsampling does not clamp at the
  border).  It is periodic: moving o by ``period`` moves the taps by
  ``shift``, so the effective stride S = ∏ shift/period is an exact fraction.
* **clipped** -- only real input positions with a nonzero weight: what an
  impulse response or a gradient shows.

For a single path the classic recursions (Araujo et al., Distill 2019) are
the special case of integer strides:  S_l = S_{l−1}·s_l,
r_l = r_{l−1} + d_l·(k_l − 1)·S_{l−1},  P_l = P_{l−1} + p_l·S_{l−1}, and
output u sees [u·S − P, u·S − P + r − 1].

Where the stride is a fraction (after a transposed conv or an upsample) the
window depends on the phase of u.  convcalc then reports, over the positions
of one period of the whole map (which repeats exactly from there on):
``size`` r = the largest number of input positions any output position
spans, and ``padding`` P = the largest u·S − start(u), so that u·S − P is the
leftmost start; ``rf --at`` gives the exact region of any single position.
"""
from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from .bignum import fraction, fraction_text
from .errors import ShapeError
from .layers import Window
from .records import record

if TYPE_CHECKING:
    from fractions import Fraction

Interval = Optional[Tuple[int, int]]  # inclusive; None: no input position at all

# The longest period a composed map may have before convcalc stops tabulating
# it whole (then r and P are taken over the first MAX_PERIOD positions).
MAX_PERIOD = 4096


# ---------------------------------------------------------------------------
# one layer, one output position
# ---------------------------------------------------------------------------

def period(w: Window) -> Tuple[int, int]:
    """(period, shift): taps(o + period) = taps(o) + shift."""
    if w.kind == "conv":
        return 1, w.stride
    if w.kind == "tconv":
        return w.stride, 1
    return w.ratio.denominator, w.ratio.numerator


def taps(w: Window, o: int, clip: bool) -> Interval:
    """Smallest and largest input position that output ``o`` reads."""
    if w.kind == "conv":
        return _conv_taps(w, o, clip)
    if w.kind == "tconv":
        return _tconv_taps(w, o, clip)
    return _resample_taps(w, o, clip)


def _conv_taps(w: Window, o: int, clip: bool) -> Interval:
    start = o * w.stride - w.pad
    if not clip:
        return start, start + w.dilation * (w.k - 1)
    ts = conv_tap_set(w, o)  # zeros padding: a range, whose ends cost nothing
    if not ts:
        return None  # the window lies in the padding
    return (ts[0], ts[-1]) if isinstance(ts, range) else (min(ts), max(ts))


def _padded_source(t: int, n: int, mode: str, wrap=None) -> Optional[int]:
    """The real position a padding position copies (F.pad's modes), None for zeros.
    ``wrap`` (first, size): circular F.pad wraps within what its crops leave."""
    if mode == "reflect":
        return -t if t < 0 else 2 * (n - 1) - t
    if mode == "replicate":
        return 0 if t < 0 else n - 1
    if mode == "circular":
        first, size = wrap or (0, n)
        return first + (t - first) % size
    return None


def _real_span(w: Window) -> Tuple[int, int]:
    """The input positions a window can read: the whole input, or what a
    circular F.pad's crop left (first, size)."""
    return (w.wrap[0], w.wrap[0] + w.wrap[1] - 1) if w.wrap else (0, w.in_size - 1)


def conv_tap_set(w: Window, o: int):
    """The real input positions a conv or pool output reads (padding modes included)."""
    start, d, n = o * w.stride - w.pad, w.dilation, w.in_size
    if w.padding_mode != "zeros" and w.k > MAX_REGION_POSITIONS:
        raise ShapeError(f"a {w.k:,}-tap window with {w.padding_mode} padding: too many "
                         f"positions to enumerate")
    lo, hi = _real_span(w)
    j0 = max(0, -(-(lo - start) // d))
    j1 = min(w.k - 1, (hi - start) // d)
    inside = range(start + j0 * d, start + j1 * d + 1, d) if j0 <= j1 else range(0)
    if w.padding_mode == "zeros":
        return inside
    outside = [start + j * d for j in range(0, min(j0, w.k))] + \
              [start + j * d for j in range(max(j1 + 1, 0), w.k)]
    return set(inside) | {_padded_source(t, n, w.padding_mode, w.wrap) for t in outside}


def _tconv_taps(w: Window, o: int, clip: bool) -> Interval:
    # input x feeds output x·s − pad + j·d: x = (o + pad − j·d)/s for the taps j
    # with j·d ≡ o + pad (mod s)
    s, d, t = w.stride, w.dilation, o + w.pad
    g = math.gcd(d, s)
    if t % g:
        return None
    m = s // g
    j_first = (t // g) * pow(d // g, -1, m) % m if m > 1 else 0
    lo_j, hi_j = 0, w.k - 1
    if clip:  # 0 ≤ x ≤ in − 1
        lo_j = max(lo_j, -(-(t - (w.in_size - 1) * s) // d))
        hi_j = min(hi_j, t // d) if t >= 0 else -1
    j_min = j_first + -(-(lo_j - j_first) // m) * m
    j_max = j_first + ((hi_j - j_first) // m) * m
    if j_min > j_max:
        return None
    return (t - j_max * d) // s, (t - j_min * d) // s


def _floor(v: Fraction) -> int:
    return v.numerator // v.denominator


def _f32(v: float) -> float:
    """v rounded to float32, as PyTorch's kernels compute source indices."""
    return struct.unpack("f", struct.pack("f", v))[0]


def _resample_taps(w: Window, o: int, clip: bool) -> Interval:
    if w.kind == "area":  # adaptive pooling window [⌊o·i/out⌋, ⌈(o+1)·i/out⌉)
        return _floor(o * w.ratio), -_floor(-(o + 1) * w.ratio) - 1
    if clip and not w.copy:
        return _torch_taps(w, o)
    r = w.ratio
    if w.kind in ("nearest", "nearest-exact"):
        src = _floor((o + fraction(1, 2)) * r if w.kind == "nearest-exact" else o * r)
        return src, src
    src = o * r if w.align_corners else (o + fraction(1, 2)) * r - fraction(1, 2)
    i0 = _floor(src)
    if src == i0:  # the other taps have weight exactly 0
        return i0, i0
    return (i0 - 1, i0 + 2) if w.kind == "bicubic" else (i0, i0 + 1)


def _torch_taps(w: Window, o: int) -> Interval:
    """The taps PyTorch's CPU kernels read for float32, with a nonzero weight
    (the index arithmetic of :mod:`convcalc.ops`, in float32)."""
    last = w.in_size - 1
    if w.align_corners:
        scale = _f32((w.in_size - 1) / (w.out_size - 1)) if w.out_size > 1 else 0.0
    elif w.scale_factor is not None:
        scale = _f32(1.0 / w.scale_factor)
    else:
        scale = _f32(_f32(w.in_size) / _f32(w.out_size))
    dst = _f32(o)
    if w.kind == "nearest":
        src = min(math.floor(_f32(scale * dst)), last)
        return src, src
    if w.kind == "nearest-exact":
        src = _f32(max(_f32(scale * (o + 0.5) - 0.5), 0.0) + 0.5)
        src = min(math.floor(src), last)
        return src, src
    src = _f32(scale * dst) if w.align_corners else \
        _f32(_f32(scale * _f32(dst + 0.5)) - 0.5)
    if w.kind == "bicubic":
        i0 = math.floor(src)
        if _f32(src - i0) == 0:
            return (min(max(i0, 0), last),) * 2
        return min(max(i0 - 1, 0), last), min(max(i0 + 2, 0), last)
    src = max(src, 0.0)
    i0 = min(math.floor(src), last)
    if i0 == last or _f32(src - i0) <= 0:
        return i0, i0
    return i0, i0 + 1


def tap_set(w: Window, o: int, clip: bool = True):
    """Every input position output ``o`` reads (clipped: real positions with a
    nonzero weight, what an impulse response shows), as a range or a set."""
    if w.kind == "conv":
        if clip:
            return conv_tap_set(w, o)
        start = o * w.stride - w.pad
        return range(start, start + w.dilation * (w.k - 1) + 1, w.dilation)
    box = taps(w, o, clip)
    if box is None:
        return range(0)
    if w.kind == "tconv":
        # the taps j that hit an input step by s/g, so the inputs step by d/g
        return range(box[0], box[1] + 1, w.dilation // math.gcd(w.dilation, w.stride))
    return range(box[0], box[1] + 1)  # resampling reads contiguous positions


def forward_set(w: Window, sources) -> List[int]:
    """The output positions that read any of ``sources`` (an impulse's spread)."""
    if w.kind == "conv" and w.padding_mode == "zeros":
        return _conv_forward_set(w, sources)
    src = set(sources)
    hit = []
    for o in range(w.out_size):
        ts = tap_set(w, o)
        if isinstance(ts, range) and len(ts) > len(src):
            if any(x in ts for x in src):
                hit.append(o)
        elif any(x in src for x in ts):
            hit.append(o)
    return hit


def _conv_forward_set(w: Window, sources) -> List[int]:
    """:func:`forward_set` of a zero-padded conv or pool, from the sources'
    side: input x is tap j of output o = (x + pad − j·d)/s where that is whole
    and in range, so only the taps that can land in [0, out) are tried (for
    each source, fewer than out·s/d + 1 of them)."""
    s, d, p, out = w.stride, w.dilation, w.pad, w.out_size
    lo, hi = _real_span(w)
    hit = set()
    for x in sources:
        if not lo <= x <= hi:
            continue  # padding or cropped away: no output reads it
        t = x + p  # = o·s + j·d
        j0 = max(0, -(-(t - (out - 1) * s) // d))
        j1 = min(w.k - 1, t // d)
        for j in range(j0, j1 + 1):
            o, r = divmod(t - j * d, s)
            if not r:
                hit.add(o)
    return sorted(hit)


# ---------------------------------------------------------------------------
# a whole path
# ---------------------------------------------------------------------------

@record
class ReceptiveField:
    """Per spatial dim: size r, effective stride S and effective padding P.

    Output u sees input [u·S − P, u·S − P + r − 1]; ``start`` is −P, where
    output 0's window begins, and ``center`` that window's middle.
    """

    size: Tuple[int, ...]
    stride: Tuple[Fraction, ...]
    padding: Tuple[Fraction, ...]
    # joined paths whose windows are not centered alike (a transposed-conv decoder
    # beside its skip): per dim, how far apart their centers lie, in input
    # positions; the size is then the bounding box over every path
    offset: Optional[Tuple[Fraction, ...]] = None

    @property
    def start(self) -> Tuple[Fraction, ...]:
        return tuple(-p for p in self.padding)

    @property
    def center(self) -> Tuple[Fraction, ...]:
        # an int where whole: a Fraction per row and dim was most of `rf`'s table
        return tuple((r - 1) // 2 - p if r % 2 else fraction(r - 1, 2) - p
                     for r, p in zip(self.size, self.padding))


class _DimMap:
    """One dim of the composed unclipped map: for u = q·T + t,
    lo(u) = lo[t] + q·T·S, hi likewise (None where u reads nothing)."""

    __slots__ = ("stride", "lo", "hi", "T", "_shift")

    def __init__(self, stride, lo: Tuple[Optional[int], ...], hi: Tuple[Optional[int], ...]):
        self.stride, self.lo, self.hi, self.T = stride, lo, hi, len(lo)
        step = stride * self.T  # a whole number by construction of T
        # once per map: a stride after 280 upsamplings is a Fraction of 300-digit numbers
        self._shift = step.numerator // step.denominator

    def __eq__(self, other) -> bool:
        return isinstance(other, _DimMap) and (self.stride, self.lo, self.hi) == \
            (other.stride, other.lo, other.hi)

    __hash__ = None

    def at(self, u: int) -> Interval:
        q, t = divmod(u, self.T)
        lo = self.lo[t]
        if lo is None:
            return None
        shift = q * self._shift
        return lo + shift, self.hi[t] + shift

    def over(self, a: int, b: int) -> Interval:
        """Bounding box of at(u) for u in a..b (one period from each end)."""
        los = [v[0] for v in map(self.at, range(a, min(b, a + self.T - 1) + 1)) if v]
        his = [v[1] for v in map(self.at, range(max(a, b - self.T + 1), b + 1)) if v]
        if not los:  # a whole period reads nothing: so does every period
            return None
        return min(los), max(his)

    def then(self, w: Window) -> "_DimMap":
        if self.T == 1 and w.kind == "conv" and type(self.stride) is int:
            # the common case, one position a period: the box of the window's
            # two end taps, without building one period of tap ranges
            lo, hi, step = self.lo[0], self.hi[0], self._shift
            if lo is not None:
                first = -w.pad
                return _DimMap(self.stride * w.stride, (lo + first * step,),
                               (hi + (first + w.dilation * (w.k - 1)) * step,))
        p, shift = period(w)
        stride = _whole(self.stride * shift if p == 1 else self.stride * fraction(shift, p))
        # the new period: a multiple of the layer's, moving this map by whole periods
        T = p * (self.T // math.gcd(self.T, shift)) if shift else p
        T = min(T, MAX_PERIOD)
        # the layer's taps over one of its own periods; the rest are those shifted
        # (one Fraction-free sum each instead of a resampling formula per position)
        base = [tap_set(w, t, clip=False) for t in range(min(p, T))]
        lo, hi = [], []
        for t in range(T):
            q, r = divmod(t, p)
            taps_t = base[r]
            if q:
                taps_t = range(taps_t.start + q * shift, taps_t.stop + q * shift, taps_t.step)
            box = self.union(taps_t)
            lo.append(None if box is None else box[0])
            hi.append(None if box is None else box[1])
        return _DimMap(stride, tuple(lo), tuple(hi))

    def union(self, positions) -> Interval:
        """Bounding box of what the given positions read: the extremes of their
        boxes (exact, as the box of a union is the extremes of the boxes).

        Along a progression of positions the boxes repeat every ``T`` terms,
        shifted right, so the leftmost is among the first T and the
        rightmost among the last T (a dilated kernel of 10^9 taps costs 2T).
        """
        T = self.T
        if isinstance(positions, range) and len(positions) > 2 * T:
            positions = [*positions[:T], *positions[-T:]]
        los, his, shift = self.lo, self.hi, self._shift
        first = last = None  # at() inlined: a chain of upsamplings calls this 10^6 times
        for u in positions:
            q, t = divmod(u, T)
            lo = los[t]
            if lo is None:
                continue
            lo += q * shift
            hi = his[t] + q * shift
            if first is None or lo < first:
                first = lo
            if last is None or hi > last:
                last = hi
        return None if first is None else (first, last)

    def summary(self) -> Tuple[int, Fraction, Fraction]:
        """(r, S, P) over one period."""
        if self.T == 1 and type(self.stride) is int and self.lo[0] is not None:
            return self.hi[0] - self.lo[0] + 1, self.stride, -self.lo[0]
        spans = [(t, lo, hi) for t, (lo, hi) in enumerate(zip(self.lo, self.hi)) if lo is not None]
        if not spans:
            return 0, self.stride, 0
        a, b = self.stride.numerator, self.stride.denominator
        # max of t·a/b − lo over one numerator: ints, not one Fraction per position
        P = max(t * a - lo * b for t, lo, _ in spans)
        r = max(hi - lo + 1 for _, lo, hi in spans)
        return r, self.stride, _whole(fraction(P, b)) if b > 1 else P


    @staticmethod
    def join(maps: Sequence["_DimMap"]) -> "_DimMap":
        """Maps of the same stride joined: per position, the box of both."""
        T = min(math.lcm(*(m.T for m in maps)), MAX_PERIOD)
        lo, hi = [], []
        for t in range(T):
            boxes = [b for b in (m.at(t) for m in maps) if b is not None]
            lo.append(min(b[0] for b in boxes) if boxes else None)
            hi.append(max(b[1] for b in boxes) if boxes else None)
        return _DimMap(maps[0].stride, tuple(lo), tuple(hi))


def _whole(v):
    """A stride as an int when it is whole: int arithmetic costs a tenth of
    Fraction's, and ints carry numerator and denominator too."""
    return v.numerator if v.denominator == 1 else v


IDENTITY = _DimMap(1, (0,), (0,))


@record
class PathState:
    """The composed map up to a tensor.  ``dims`` None: no receptive field,
    because positions were mixed (``note`` None: "global") or because joined
    paths disagree (``note`` says how)."""

    dims: Optional[Tuple[_DimMap, ...]]
    note: Optional[str] = None
    # where positions were mixed (dims None, note None): (the first layer to mix, how)
    mixed: Optional[Tuple[str, str]] = None
    # joined paths centered apart: per dim, the largest spread of their centers
    offset: Optional[Tuple[Fraction, ...]] = None

    @classmethod
    def start(cls, n_spatial: int) -> "PathState":
        return cls((IDENTITY,) * n_spatial if n_spatial else None)

    def then(self, windows: Optional[Sequence[Window]]) -> "PathState":
        if self.dims is None or windows is None:
            return self if (self.note or self.mixed or self.dims is None) else PathState(None)
        if not windows:
            return self
        return PathState(tuple(m.then(w) for m, w in zip(self.dims, windows)),
                         offset=self.offset)

    @staticmethod
    def merge(states: Sequence["PathState"]) -> "PathState":
        """Joined paths (add, concat): per position, the box of every path's
        window.  With one effective stride that is a receptive field; when
        the paths are not centered alike (Araujo et al.'s alignment) it is
        still their bounding box, marked with how far apart the centers lie.
        Different strides give no number, and a note saying why."""
        for st in states:
            if st.note:
                return st
        if any(st.dims is None for st in states):
            return PathState(None)  # the caller says where
        dims, offset = [], []
        for d, maps in enumerate(zip(*(st.dims for st in states))):
            strides = sorted({m.stride for m in maps})
            if len(strides) > 1:
                return PathState(None, f"joined paths have different effective strides "
                                       f"({' vs '.join(fraction_text(v) for v in strides)}, dim {d + 1})")
            joined = _DimMap.join(maps)
            spread = max((st.offset[d] for st in states if st.offset), default=0)
            for t in range(joined.T):
                # centers as lo + hi, twice the center: ints, one Fraction at most
                twice = [lo + hi for lo, hi in
                         (b for b in (m.at(t) for m in maps) if b is not None)]
                if twice and max(twice) != min(twice):
                    spread = max(spread, fraction(max(twice) - min(twice), 2))
            dims.append(joined)
            offset.append(spread)
        return PathState(tuple(dims), offset=tuple(offset) if any(offset) else None)

    def field(self) -> Optional[ReceptiveField]:
        if self.dims is None:
            return None
        if not self.dims:
            return ReceptiveField((), (), (), self.offset)
        size, stride, padding = zip(*[m.summary() for m in self.dims])
        return ReceptiveField(size, stride, padding, self.offset)


# ---------------------------------------------------------------------------
# exact position sets through a graph
# ---------------------------------------------------------------------------

# A set of N-D positions as a union of products of per-dim sets: joined paths
# reach different boxes, and a box that is empty in one dim is empty whole.
Product = Tuple[object, ...]  # per dim: a range (contiguous positions) or a frozenset

# enumerating more positions than this for one --at query is refused
MAX_REGION_POSITIONS = 2 * 10 ** 6
# contiguous sets larger than this are carried as ranges, not enumerated
CONTIGUOUS = 64


def _lo(s) -> int:
    return s[0] if isinstance(s, range) else min(s)


def _hi(s) -> int:
    return s[-1] if isinstance(s, range) else max(s)


def _subset(a, b) -> bool:
    if isinstance(b, range):
        return b.start <= _lo(a) and _hi(a) < b.stop
    if isinstance(a, range):
        return len(a) <= len(b) and all(x in b for x in a)
    return a <= b


def _compact(positions: set):
    """A set as a range when it is contiguous (cheap to carry and compare)."""
    if positions and max(positions) - min(positions) + 1 == len(positions):
        return range(min(positions), max(positions) + 1)
    return frozenset(positions)


def _canon(positions):
    """One form per set of positions (a range when contiguous), so that equal
    sets compare equal whichever way they were built."""
    if isinstance(positions, range):
        return positions
    return _compact(positions)


def _simplify(products: List[Product]) -> List[Product]:
    """Drop empty products, repeats and those inside another one."""
    live = list({tuple(_canon(s) for s in p) for p in products if all(len(s) for s in p)})
    return [p for i, p in enumerate(live)
            if not any(j != i and all(_subset(a, b) for a, b in zip(p, q))
                       for j, q in enumerate(live))]


def _gapless(w: Window, clip: bool) -> bool:
    """Whether consecutive outputs read touching or overlapping input runs, with
    no hole inside one output's taps: then a run of outputs reads one run."""
    if w.kind == "conv":
        return w.dilation == 1 and w.k >= w.stride and (not clip or w.padding_mode == "zeros")
    if w.kind == "tconv":
        return w.dilation == 1 and w.k >= w.stride
    return w.kind == "area" or w.copy or w.ratio <= 1


def _back_dim(positions, w: Window, clip: bool):
    if isinstance(positions, range) and len(positions) > CONTIGUOUS and _gapless(w, clip):
        first = next((t for t in (taps(w, o, clip) for o in positions) if t), None)
        if first is None:
            return range(0)
        last = next(t for t in (taps(w, o, clip) for o in reversed(positions)) if t)
        return range(first[0], last[1] + 1)
    reached, runs = set(), []
    for o in positions:
        ts = tap_set(w, o, clip)
        if isinstance(ts, range) and ts.step == 1 and len(ts) > CONTIGUOUS:
            runs.append(ts)  # an adaptive-pool window may span 10^8 positions
            continue
        if len(ts) > MAX_REGION_POSITIONS:  # a dilated window of 10^9 taps
            raise ShapeError(f"--at: one window reads {len(ts):,} separate positions; too many "
                             f"to enumerate")
        reached.update(ts)
        if len(reached) > MAX_REGION_POSITIONS:
            raise ShapeError(f"--at: the region has over {MAX_REGION_POSITIONS:,} positions "
                             f"per dim; too many to enumerate")
    if not runs:
        return _compact(reached)
    runs.sort(key=lambda r: r.start)
    merged = [runs[0]]
    for r in runs[1:]:
        if r.start <= merged[-1].stop:
            merged[-1] = range(merged[-1].start, max(merged[-1].stop, r.stop))
        else:
            merged.append(r)
    if len(merged) == 1 and all(merged[0].start - 1 <= x <= merged[0].stop for x in reached):
        lo = min(merged[0].start, *reached) if reached else merged[0].start
        hi = max(merged[0].stop - 1, *reached) if reached else merged[0].stop - 1
        return range(lo, hi + 1)
    if sum(len(r) for r in merged) + len(reached) > MAX_REGION_POSITIONS:
        raise ShapeError(f"--at: the region has over {MAX_REGION_POSITIONS:,} positions per dim "
                         f"in separate runs; too many to enumerate")
    for r in merged:
        reached.update(r)
    return _compact(reached)


def backward(products: List[Product], windows: Sequence[Window], clip: bool) -> List[Product]:
    """The input positions read by outputs in ``products``, through one layer."""
    if not windows:
        return products
    return _simplify([tuple(_back_dim(positions, w, clip) for positions, w in zip(prod, windows))
                      for prod in products])


def forward(products: List[Product], windows: Sequence[Window]) -> List[Product]:
    """The output positions that read any position in ``products`` (clipped)."""
    if not windows:
        return products
    return _simplify([tuple(frozenset(forward_set(w, positions))
                            for positions, w in zip(prod, windows)) for prod in products])


def region_sets(rows, target: int, at: Sequence[int], clip: bool, input_sizes=(),
                local: bool = False) -> List[Product]:
    """The input positions output ``at`` of row ``target`` depends on, exactly,
    as a union of products of per-dim sets (empty: it reads only padding).

    ``rows`` have ``inputs``: (row position or −1 for the network input,
    windows) pairs.  The exact sets are carried backwards through every path
    (a box would take in positions in the holes a dilation or a stride
    leaves, and those may read inputs the true set does not).  A row that
    mixes positions (windows None: every position; ``mixes``: a norm's
    statistics along some dims) reads its input whole there.  With ``local``
    only the paths that keep positions are followed (SPEC §3b): a norm reads
    its own position, a broadcast gate and a pooled tensor nothing.
    """
    def sizes(src):
        return tuple(input_sizes) if src < 0 else rows[src].spatial_sizes

    pending = {target: [tuple(frozenset([u]) for u in at)]}
    for pos in range(target, -1, -1):
        products = pending.pop(pos, None)
        if not products:
            continue
        row = rows[pos]
        for src, windows in row.inputs:
            if local and (windows is None or any(w.stride == 0 for w in windows)):
                continue
            if windows is None:
                whole = sizes(src)
                if not whole:
                    raise ShapeError(f"layer {row.index} ({row.spec}) mixes every position of "
                                     f"an input without spatial dims; pick an earlier layer "
                                     f"with --layer")
                reached = [tuple(range(n) for n in whole)]
            else:
                reached = backward(products, windows, clip)
                if row.mixes and not local:
                    whole = sizes(src)
                    reached = [tuple(range(whole[d]) if d in row.mixes else s
                                     for d, s in enumerate(p)) for p in reached]
            pending[src] = _simplify(pending.get(src, []) + reached)
    return pending.get(-1, [])


def region(rows, target: int, at: Sequence[int], clip: bool
           ) -> Optional[List[Tuple[int, int]]]:
    """Bounding box, per dim, of :func:`region_sets`; None when it is empty."""
    products = region_sets(rows, target, at, clip)
    if not products:
        return None
    return [(min(_lo(p[d]) for p in products), max(_hi(p[d]) for p in products))
            for d in range(len(at))]


def explain_merge(paths: Sequence[PathState], after: PathState) -> List[str]:
    """The receptive field where paths join."""
    if after.note:
        return [f"receptive field: none ({after.note})"]
    if after.dims is None:
        return ["receptive field: global"]
    field = after.field()
    how = "the same stride and centers" if field.offset is None else \
        f"the same stride, centers up to {'x'.join(map(fraction_text, field.offset))} apart"
    return [f"receptive field: union of {len(paths)} paths with {how}: "
            f"r = {'x'.join(map(str, field.size))} (their bounding box), "
            f"P = {'x'.join(fraction_text(p) for p in field.padding)}"]


def explain_step(before: PathState, windows: Optional[Sequence[Window]], after: PathState
                 ) -> List[str]:
    """The receptive-field recursion of one layer with its numbers."""
    from .layers import per_dim_lines
    if after.dims is None:
        return ["receptive field: global (every output position mixes every input position)"
                if before.dims is not None else "receptive field: global"]
    if not windows:
        return ["receptive field: unchanged"]
    texts = []
    for m0, m1, w in zip(before.dims, after.dims, windows):
        r0, S0, P0 = m0.summary()
        r, S, P = m1.summary()
        if w.kind == "conv" and m0.T == 1 and S0.denominator == 1:
            texts.append(f"r = r₀ + d·(k−1)·S₀ = {fraction_text(r0)} + {w.dilation}·({w.k}−1)·{fraction_text(S0)} = "
                         f"{fraction_text(r)}; "
                         f"S = S₀·s = {fraction_text(S0)}·{w.stride} = {fraction_text(S)}; "
                         f"P = P₀ + pb·S₀ = {fraction_text(P0)} + {w.pad}·{fraction_text(S0)} = {fraction_text(P)}")
        else:
            step = fraction_text(fraction(*period(w)[::-1]))  # the layer's stride: shift per period
            step = f"({step})" if "/" in step else step
            texts.append(f"S = S₀·{step} = {fraction_text(S0)}·{step} = {fraction_text(S)}; "
                         f"over the {m1.T} phase{'s' if m1.T > 1 else ''} of the output: "
                         f"largest r = {fraction_text(r)}, P = {fraction_text(P)}")
    return [f"receptive field {t}" for t in per_dim_lines(texts)]
