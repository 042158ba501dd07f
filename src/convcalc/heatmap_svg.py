"""The effective receptive field as an SVG heatmap (``rf --erf --svg FILE``).

It draws what :func:`convcalc.pictures.erf` computes (|∂y/∂x| over the
input, 1 at the peak) cell by cell on a colour scale, with the box holding
95% of the gradient mass (:func:`convcalc.pictures.erf_extent`), the
theoretical region ``rf --at`` gives, and a scale bar.
"""
from __future__ import annotations

import math
from html import escape
from typing import List, Optional, Sequence, Tuple

MAX_CELLS = 128  # cells per dim drawn; larger inputs are pooled by max, as the terminal's
# viridis, sampled: perceptually even, readable in grey
STOPS = ((0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
         (0.75, (94, 201, 98)), (1.0, (253, 231, 37)))


def colour(v: float) -> str:
    v = min(1.0, max(0.0, v))
    for (a, ca), (b, cb) in zip(STOPS, STOPS[1:]):
        if v <= b:
            t = (v - a) / (b - a)
            return "#%02x%02x%02x" % tuple(round(x + (y - x) * t) for x, y in zip(ca, cb))
    return "#%02x%02x%02x" % STOPS[-1][1]


def erf_svg(g, extent: Sequence[Tuple[int, int]], title: str,
            region: Optional[Sequence[Tuple[int, int]]] = None) -> str:
    """``g``: the ERF over the input's spatial dims (a 3-D one is shown as its
    maximum over depth); ``extent`` and ``region`` per dim, inclusive."""
    import numpy as np
    notes = []
    if g.ndim == 3:
        g = g.max(axis=0)
        extent, region = extent[1:], None if region is None else region[1:]
        notes.append("a 3-D input, drawn as its maximum over depth (z)")
    if g.ndim == 1:
        g = g[None, :]
        extent = [(0, 0), *extent]
        region = None if region is None else [(0, 0), *region]
    rows, cols = g.shape
    step = max(1, math.ceil(max(rows, cols) / MAX_CELLS))
    h, w = math.ceil(rows / step), math.ceil(cols / step)
    pooled = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            pooled[y, x] = g[y * step:(y + 1) * step, x * step:(x + 1) * step].max()
    if step > 1:
        notes.append(f"each cell is {step}x{step} input positions, the largest of them")
    C = max(3, min(24, 520 // max(h, w)))
    left, top = 46, 60
    bar_x = left + w * C + 30
    width = max(bar_x + 90, 520, left + round(len(title) * 8.5))
    bar_h = max(h * C, 120)
    height = top + bar_h + 40 + 16 * (len(notes) + 2)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
           '<g class="heatmap">']
    for y in range(h):
        for x in range(w):
            v = float(pooled[y, x])
            cell = f"{y * step},{x * step}" if rows > 1 else f"{x * step}"
            out.append(f'<rect class="erf" data-cell="{cell}" data-value="{v:.6g}" '
                       f'x="{left + x * C}" y="{top + y * C}" width="{C}" height="{C}" '
                       f'fill="{colour(v)}"/>')
    out.append('</g>')

    def box(span_y, span_x, cls, stroke, dash, label):
        (y0, y1), (x0, x1) = span_y, span_x
        bx, by = left + x0 / step * C, top + y0 / step * C
        bw, bh = (x1 - x0 + 1) / step * C, (y1 - y0 + 1) / step * C
        return [f'<rect class="{cls}" x="{bx:.2f}" y="{by:.2f}" width="{bw:.2f}" '
                f'height="{bh:.2f}" fill="none" stroke="{stroke}" stroke-width="2" '
                f'stroke-dasharray="{dash}"><title>{escape(label)}</title></rect>']
    if region is not None:
        out += box(region[0], region[1], "region", "#ff6f61", "2,3",
                   "the theoretical region (rf --at)")
    if extent[1][1] >= extent[1][0]:
        out += box(extent[0], extent[1], "extent", "#ffffff", "6,3",
                   "95% of the gradient mass")
    # axis marks: the first, last and a few positions between
    for i in _ticks(cols):
        out.append(f'<text x="{left + (i // step + 0.5) * C:.1f}" y="{top - 6}" '
                   f'text-anchor="middle" font-size="9">{i}</text>')
    if rows > 1:
        for i in _ticks(rows):
            out.append(f'<text x="{left - 6}" y="{top + (i // step + 0.5) * C + 3:.1f}" '
                       f'text-anchor="end" font-size="9">{i}</text>')
    # the scale bar
    out.append('<defs><linearGradient id="scale" x1="0" y1="1" x2="0" y2="0">'
               + "".join(f'<stop offset="{a}" stop-color="{colour(a)}"/>' for a, _ in STOPS)
               + '</linearGradient></defs>')
    out.append(f'<rect class="scale" x="{bar_x}" y="{top}" width="14" height="{bar_h}" '
               f'fill="url(#scale)" stroke="#333333"/>')
    for q in (0, 0.25, 0.5, 0.75, 1):
        y = top + (1 - q) * bar_h
        out.append(f'<text x="{bar_x + 20}" y="{y + 4:.1f}" font-size="10">{int(q * 100)}%</text>')
    out.append(f'<text x="{bar_x}" y="{top - 8}" font-size="10">of the peak</text>')
    y = top + bar_h + 24
    legend = ["white dashes: 95% of the gradient mass"]
    if region is not None:
        legend.append("red dots: the theoretical region (rf --at)")
    for line in ["; ".join(legend), *notes]:
        out.append(f'<text x="{left}" y="{y}">{escape(line)}</text>')
        y += 16
    out.append('</svg>')
    return "\n".join(out) + "\n"


def _ticks(n: int) -> List[int]:
    """About six positions from 0 to n − 1, the last not crowding its neighbour."""
    every = max(1, round(n / 6))
    marks = [i for i in range(0, n, every) if n - 1 - i >= every / 2 or i == 0]
    return marks + ([n - 1] if marks[-1] != n - 1 else [])
