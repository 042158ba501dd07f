"""Pictures: the region one output sees as a character grid and the effective
receptive field as a heatmap (the stack's SVG diagram: diagram_svg).

Plain text and plain SVG, no new dependency; numpy only for the heatmap.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

from .analysis import Analysis, Region
from .errors import ShapeError
from .layers import DIM_NAMES, Window
from .receptive import _padded_source, tap_set

MAX_GRID = 80  # positions per dim that --show draws
MARGIN = 8  # padding positions --show draws beyond each border
MAX_ERF = 4096  # positions per dim that --erf computes
SHADES = " ░▒▓█"

LEGEND = "█ input it depends on   · other input   ▒ padding it reads   (rows: y, columns: x)"


def _member(products, point) -> bool:
    return any(all(v in s for v, s in zip(point, prod)) for prod in products)


def region_grid(a: Analysis, reg: Region) -> List[str]:
    """The input (and the padding the window reaches into) as characters."""
    spatial = a.input_shape[2:]
    if max(spatial) > MAX_GRID:
        raise ShapeError(f"--show draws inputs of at most {MAX_GRID} positions per dim; this "
                         f"one is {'x'.join(map(str, spatial))} (use the region numbers)")
    n = len(spatial)
    # the padding the window reads, up to MARGIN positions past each border: a
    # deep net's unclipped window can reach hundreds of positions out
    reach_lo = [min([0, *(min(p[d]) for p in reg.positions_unclipped)]) for d in range(n)]
    reach_hi = [max([s - 1, *(max(p[d]) for p in reg.positions_unclipped)])
                for d, s in enumerate(spatial)]
    lo = [max(v, -MARGIN) for v in reach_lo]
    hi = [min(v, s - 1 + MARGIN) for v, s in zip(reach_hi, spatial)]
    cut = lo != reach_lo or hi != reach_hi

    def cell(point) -> str:
        inside = all(0 <= v < s for v, s in zip(point, spatial))
        if inside:
            return "█" if _member(reg.positions, point) else "·"
        return "▒" if _member(reg.positions_unclipped, point) else " "

    lines: List[str] = []
    if n == 1:
        lines.append("".join(cell((x,)) for x in range(lo[0], hi[0] + 1)))
        lines.append(f"x from {lo[0]} to {hi[0]} (input 0..{spatial[0] - 1})"
                     + _beyond(cut, reach_lo, reach_hi))
        return lines + ["█ input it depends on   · other input   ▒ padding it reads"]
    depth = range(lo[0], hi[0] + 1) if n == 3 else [None]
    for z in depth:
        if z is not None:
            if not any(_member(reg.positions_unclipped, (z, y, x))
                       for y in range(lo[1], hi[1] + 1) for x in range(lo[2], hi[2] + 1)):
                continue
            lines.append(f"z = {z}{'' if 0 <= z < spatial[0] else ' (padding)'}:")
        for y in range(lo[-2], hi[-2] + 1):
            pre = () if z is None else (z,)
            lines.append("".join(cell((*pre, y, x)) for x in range(lo[-1], hi[-1] + 1)))
    lines.append(f"y from {lo[-2]} to {hi[-2]}, x from {lo[-1]} to {hi[-1]} "
                 f"(input 0..{spatial[-2] - 1} x 0..{spatial[-1] - 1})"
                 + _beyond(cut, reach_lo, reach_hi))
    return lines + [LEGEND]


def _beyond(cut: bool, lo, hi) -> str:
    if not cut:
        return ""
    reach = " x ".join(f"{a}..{b}" for a, b in zip(lo, hi))
    return f"; the padding it reads reaches {reach}, drawn up to {MARGIN} past the border"


# ---------------------------------------------------------------------------
# effective receptive field (Luo et al., 2016)
# ---------------------------------------------------------------------------

def _weights(w: Window, o: int) -> Dict[int, float]:
    """Input position -> weight that output o gives it: every kernel tap 1/k
    (uniform weights; a tap in zero padding adds nothing), an area window
    1/size, interpolation its own weights."""
    if w.kind in ("conv", "tconv", "area", "nearest", "nearest-exact") or w.copy:
        taps: Dict[int, float] = {}
        if w.kind == "conv":
            start = o * w.stride - w.pad
            lo, size = w.wrap or (0, w.in_size)
            for j in range(w.k):
                t = start + j * w.dilation
                if not lo <= t < lo + size:
                    t = _padded_source(t, w.in_size, w.padding_mode, w.wrap)
                if t is not None:
                    taps[t] = taps.get(t, 0.0) + 1.0 / w.k
        else:
            ts = list(tap_set(w, o))
            each = 1.0 / (w.k if w.kind == "tconv" else len(ts) if ts else 1)
            taps = {t: each for t in ts}
        return taps
    # linear family and bicubic: PyTorch's source index, its two or four weights
    r = w.ratio
    src = o * r if w.align_corners else (o + Fraction(1, 2)) * r - Fraction(1, 2)
    cubic = w.kind == "bicubic"
    if not cubic and src < 0:
        src = Fraction(0)
    i0 = math.floor(src)
    t = float(src - i0)
    last = w.in_size - 1
    if cubic:
        A = -0.75
        coeff = [((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A,
                 ((A + 2) * t - (A + 3)) * t * t + 1,
                 ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1,
                 ((A * (2 - t) - 5 * A) * (2 - t) + 8 * A) * (2 - t) - 4 * A]
        out: Dict[int, float] = {}
        for m, c in enumerate(coeff):
            x = min(max(i0 - 1 + m, 0), last)
            out[x] = out.get(x, 0.0) + c
        return out
    i0 = min(i0, last)
    i1 = i0 + (1 if i0 < last else 0)
    return {i0: 1 - t, i1: t} if i1 != i0 else {i0: 1.0}


def _matrix(np, w: Window):
    m = np.zeros((w.out_size, w.in_size))
    for o in range(w.out_size):
        for x, v in _weights(w, o).items():
            m[o, x] += v
    return m


def erf_bytes(a: Analysis, target: int) -> int:
    """An upper bound on the memory :func:`erf` holds at once (float64): the
    gradients still to be propagated, and for the row being propagated its
    gradient, each per-dim matrix and the tensordot intermediates."""
    from .verify import MARGIN, OVERHEAD
    rows = a.layers
    spatial = [math.prod(r.spatial_sizes) for r in rows]
    pending = {target: spatial[target]}
    peak = 0
    for pos in range(target, -1, -1):
        g = pending.pop(pos, None)
        if g is None:
            continue
        work = 0
        for src, windows in rows[pos].inputs:
            ins = math.prod(a.input_shape[2:]) if src < 0 else spatial[src]
            widest = math.prod(max(w.in_size, w.out_size) for w in windows or ())
            matrices = sum(w.in_size * w.out_size for w in windows or ())
            work = max(work, 3 * max(widest, ins, g) + matrices + 2 * ins)
            pending[src] = ins
        peak = max(peak, sum(pending.values()) + g + work)
    return int(8 * peak * MARGIN) + OVERHEAD


def _channels(a: Analysis, src: int) -> int:
    return (a.input_shape if src < 0 else a.layers[src].output_shape)[1]


def _share(a: Analysis, pos: int, src: int) -> float:
    """The part of a join's gradient that reaches one input.  The gradient is
    carried summed over channels; in a uniform-weight network every channel
    of a tensor gets the same (a conv spreads it evenly over its inputs), so
    a concat passes each input its share of the channels, and an add (or a
    broadcast) passes each the whole."""
    row = a.layers[pos]
    if row.kind != "concat":
        return 1.0
    return _channels(a, src) / row.output_shape[1]


def erf(a: Analysis, at: Sequence[int], target: int, max_memory: Optional[int] = None):
    """|∂ Σ_c output(c, at) / ∂ input| with uniform weights (Luo et al. 2016),
    exact backpropagation over every path, summed over channels; an array
    over the input's spatial dims.  Refused (exit 3) when its estimated peak
    is over ``max_memory`` bytes."""
    rows = a.layers
    if any(s > MAX_ERF for r in rows[:target + 1] for s in r.spatial_sizes):
        raise ShapeError(f"--erf computes inputs of at most {MAX_ERF} positions per dim")
    if max_memory is not None:
        need = erf_bytes(a, target)
        if need > max_memory:
            from .verify import over_budget
            raise over_budget("--erf", need, max_memory)
    import numpy as np
    start = np.zeros(rows[target].spatial_sizes)
    start[tuple(at)] = 1.0
    grads = {target: start}
    for pos in range(target, -1, -1):
        g = grads.pop(pos, None)
        if g is None:
            continue
        for src, windows in rows[pos].inputs:
            if windows is None:
                r = rows[pos]
                raise ShapeError(f"layer {r.index} ({r.spec}) mixes every position; pick an "
                                 f"earlier layer with --layer")
            if any(w.stride == 0 for w in windows):
                continue  # a broadcast gate: the local paths carry the positions
            h = g * _share(a, pos, src)
            for axis, w in enumerate(windows or ()):
                h = np.moveaxis(np.tensordot(h, _matrix(np, w), axes=([axis], [0])), -1, axis)
            grads[src] = grads[src] + h if src in grads else h
    g = np.abs(grads.get(-1, np.zeros(a.input_shape[2:])))
    return g / g.max() if g.max() > 0 else g


def erf_extent(g, share: float = 0.95) -> Tuple[Tuple[int, int], ...]:
    """Per dim, the smallest window around the peak holding ``share`` of the
    gradient's marginal mass: grown from the peak (the middle of a flat top)
    toward the larger neighbour, and both ways when they are equal, so a
    symmetric field gives a symmetric window."""
    import numpy as np
    out = []
    for axis in range(g.ndim):
        marg = g.sum(axis=tuple(a for a in range(g.ndim) if a != axis))
        total = marg.sum()
        if total <= 0:
            out.append((0, -1))
            continue
        tol = 1e-9 * float(marg.max())  # equal up to rounding: sums taken in other orders
        peak = int(np.argmax(marg))
        top = marg[peak] - tol
        end = peak
        while end + 1 < len(marg) and marg[end + 1] >= top:
            end += 1
        lo, hi = (peak + end) // 2, (peak + end + 1) // 2  # the middle one or two
        mass = marg[lo:hi + 1].sum()
        while mass < share * total - tol:
            left = marg[lo - 1] if lo > 0 else -1.0
            right = marg[hi + 1] if hi + 1 < len(marg) else -1.0
            if abs(left - right) <= tol and left >= 0:
                lo, hi = lo - 1, hi + 1
                mass += left + right
            elif right > left:
                hi += 1
                mass += right
            else:
                lo -= 1
                mass += left
        out.append((lo, hi))
    return tuple(out)


def heatmap(g, width: int = 64) -> List[str]:
    """Shade characters, pooled (by max) to at most ``width`` columns."""
    import numpy as np
    if g.ndim == 3:
        g = g.max(axis=0)
    if g.ndim == 1:
        g = g[None, :]
    step = max(1, math.ceil(max(g.shape[1] / width, g.shape[0] / (width // 2))))
    h = math.ceil(g.shape[0] / step)
    w = math.ceil(g.shape[1] / step)
    pooled = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            pooled[y, x] = g[y * step:(y + 1) * step, x * step:(x + 1) * step].max()
    # blank under 1% of the peak, then quarters of it
    levels = np.searchsorted(np.array([0.01, 0.25, 0.5, 0.75]), pooled, side="right")
    return ["".join(SHADES[v] for v in row) for row in levels] + \
        ([f"(each character is {step}x{step} input positions, the largest of them)"]
         if step > 1 else [])


def erf_lines(a: Analysis, at: Sequence[int], target: int, g) -> List[str]:
    row = a.layers[target]
    ext = erf_extent(g)
    names = DIM_NAMES[g.ndim]
    rf = row.receptive_field
    lines = [f"Effective receptive field of output {','.join(map(str, at))} of layer {row.index} "
             f"({row.spec}): |∂y/∂x| with uniform weights (Luo et al. 2016); "
             f"░ ≥ 1%, ▒ ≥ 25%, ▓ ≥ 50%, █ ≥ 75% of the peak:"]
    lines += heatmap(g)
    spans = ", ".join(f"{n} {lo}..{hi} ({hi - lo + 1})" for n, (lo, hi) in zip(names, ext))
    lines.append(f"95% of the gradient mass lies within {spans}"
                 + (f"; the theoretical receptive field is {'x'.join(map(str, rf.size))}"
                    if rf else ""))
    return lines
