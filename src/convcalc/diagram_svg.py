"""The architecture diagram as SVG (``shape --svg``): one band per resolution
level, top to bottom from the finest, so an encoder-decoder draws as a U, a
classifier as a descending staircase and a generator as a rising pyramid.

Block height follows the spatial size on a log scale spanning the network's
own smallest to largest size; width follows the square root of the channels.
Labels are monospace, so their extent is known and the layout keeps them
apart: each level has two label rows, and a block moves right until one of
them has room.
"""
from __future__ import annotations

import math
from collections import defaultdict
from html import escape
from typing import Dict, List, Optional, Tuple

from .analysis import Analysis
from .diagram import HEAD, Block, build

FONT = 10
CHAR = 0.62 * FONT  # layout width of a monospace character (DejaVu Sans Mono: 0.602 em)
LINE = 14  # baseline to baseline
H_MIN, H_MAX = 12.0, 120.0
W_MIN, W_MAX = 8.0, 40.0
GAP = 12
LANE = 7
MARGIN = 16

FAMILIES = (  # legend entry, colour, kinds
    ("conv", "#4e79a7", ("conv", "sepconv")),
    ("transposed conv", "#f28e2b", ("tconv",)),
    ("pool", "#76b7b2", ("maxpool", "avgpool", "aavgpool", "amaxpool", "gap", "pixelunshuffle")),
    ("upsample", "#e15759", ("up", "pixelshuffle")),
    ("linear", "#59a14f", ("linear",)),
    ("add / concat / mul", "#edc948", ("add", "concat", "mul")),
    ("group of layers", "#b07aa1", ("group",)),
    ("input", "#ffffff", ("input",)),
)
OTHER = ("other", "#bab0ac")


def _family(kind: str) -> Tuple[str, str]:
    for name, colour, kinds in FAMILIES:
        if kind in kinds:
            return name, colour
    return OTHER


def _x(vals) -> str:
    return "×".join(str(v) for v in vals)


def _one(vals) -> str:
    """Per-dim values, once when they agree: a stride 2, a stride 2×1."""
    vals = list(vals)
    return str(vals[0]) if len(set(vals)) == 1 else _x(vals)


def _layer_label(r) -> str:
    """A row as a few characters: kind, kernel, stride, dilation, scale."""
    wins = r.inputs[0][1] if r.inputs else None
    kind = r.kind
    if kind == "sepconv":
        kind = "dw conv" if r.part == "depthwise" else "pw conv"
    if not wins:
        return kind
    if r.kind in ("conv", "sepconv", "tconv", "maxpool", "avgpool"):
        text = f"{kind} {_x(w.k for w in wins)}"
        if any(w.stride != 1 for w in wins):
            text += f" s{_one(w.stride for w in wins)}"
        if any(w.dilation != 1 for w in wins):
            text += f" d{_one(w.dilation for w in wins)}"
        return text
    if r.kind == "up":
        scales = {round(w.out_size / w.in_size, 2) for w in wins}
        return f"up ×{_x(sorted(scales))} {wins[0].kind}"
    if r.kind in ("aavgpool", "amaxpool"):
        return f"{kind} →{_x(w.out_size for w in wins)}"
    return kind


def _tail(first: str, last: str) -> str:
    """``layer1.1`` and ``layer1.2`` as ``layer1.1–2``."""
    if not last or last == first:
        return first
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    while n > 0 and first[n - 1].isdigit():  # keep whole numbers
        n -= 1
    return f"{first}–{last[n:]}"


class _Box:
    """A block's drawing: shape, size, labels and, once laid out, position."""

    def __init__(self, a: Analysis, b: Block):
        rows = a.layers
        if b.main < 0:
            shape, spatial, axes = a.input_shape, a.input_shape[2:], ()
            self.line1 = "input"
        else:
            r = rows[b.main]
            shape, spatial, axes = r.output_shape, r.spatial_sizes, r.axes
            self.line1 = _tail(b.label, b.last_label) if b.label else _layer_label(r)
        self.shape = shape
        self.size = math.prod(spatial) ** (1 / len(spatial)) if spatial else None
        if axes and "C" in axes:
            self.channels = shape[axes.index("C")]
        else:
            self.channels = shape[1] if len(shape) > 1 else 1
        self.line2 = (f"×{b.count} " if b.count > 1 else "") + _x(shape[1:])
        self.block = b
        self.w = self.h = self.cx = self.cy = 0.0
        self.row = 0

    @property
    def label_width(self) -> float:
        return max(len(self.line1), len(self.line2)) * CHAR


def _band_name(level: Optional[int]) -> str:
    if level is HEAD:
        return "head"
    return f"stride {2 ** level}" if level >= 0 else f"stride 1/{2 ** -level}"


def svg(a: Analysis) -> str:
    """The diagram of an analysed stack as an SVG document."""
    d = build(a)
    boxes = [_Box(a, b) for b in d.blocks]
    sizes = [b.size for b in boxes if b.size is not None]
    lo, hi = (math.log(min(sizes)), math.log(max(sizes))) if sizes else (0.0, 0.0)
    cmax = max(b.channels for b in boxes)
    for b in boxes:
        if b.size is None:
            b.h = H_MIN
        else:
            share = (math.log(b.size) - lo) / (hi - lo) if hi > lo else 0.5
            b.h = H_MIN + (H_MAX - H_MIN) * share
        b.w = round(W_MIN + (W_MAX - W_MIN) * math.sqrt(b.channels / cmax), 1)
        b.h = round(b.h, 1)  # tenths, so that y + h/2 is the level's line exactly
    levels = sorted({b.block.level for b in boxes if b.block.level is not HEAD})
    if any(b.block.level is HEAD for b in boxes):
        levels.append(HEAD)
    band = {lv: i for i, lv in enumerate(levels)}
    bands = [band[b.block.level] for b in boxes]
    guide = max(len(_band_name(lv)) for lv in levels) * CHAR + MARGIN + 8

    # left to right; a block moves right until one of its level's two label rows has room
    frame_first = {f: (l, label) for f, l, label in d.groups}
    frame_at: Dict[int, Tuple[float, float, int, int, str]] = {}
    label_right: Dict[Tuple[int, int], float] = defaultdict(lambda: guide)
    right = guide
    open_frame = None
    for i, b in enumerate(boxes):
        lw = b.label_width
        x_min = right + GAP
        if i and bands[i] > bands[i - 1]:  # the step down runs past the last block's labels
            prev = boxes[i - 1]
            x_min = max(x_min, prev.cx + prev.label_width / 2 + CHAR - b.w / 2)
        elif i and bands[i] < bands[i - 1]:  # the step up runs left of this block's labels
            x_min = max(x_min, boxes[i - 1].cx + lw / 2 + CHAR - b.w / 2)
        cx, row = min((max(x_min + b.w / 2, label_right[bands[i], k] + CHAR + lw / 2), k)
                      for k in (0, 1))
        b.cx, b.row = cx, row
        label_right[bands[i], row] = cx + lw / 2
        right = cx + b.w / 2
        if i in frame_first:
            open_frame = (i, cx - b.w / 2 - 4, *frame_first[i])
        if open_frame is not None and open_frame[2] == i:
            first, x0, last, label = open_frame
            x1 = max(right + 4, x0 + len(label) * CHAR + 4)
            frame_at[first] = (x0, x1, first, last, label)
            right = max(right, x1)
            open_frame = None

    # connectors: along a level when nothing between is that high, else in a lane above
    lanes: Dict[int, List[Tuple[float, float]]] = defaultdict(list)
    lane_of: Dict[Tuple[int, int], Tuple[int, int]] = {}
    straight = set()
    for s, t in d.edges:
        if t == s + 1:
            continue
        between = bands[s + 1:t]
        if bands[s] == bands[t] and all(v > bands[s] for v in between):
            straight.add((s, t))
            continue
        top = min(bands[s:t + 1])
        span = (boxes[s].cx - 2, boxes[t].cx + 2)
        k = 0
        while any(span[0] < e and b0 < span[1] for b0, e in lanes[(top, k)]):
            k += 1
        lanes[(top, k)].append(span)
        lane_of[(s, t)] = (top, k)
    n_lanes = defaultdict(int)
    for (top, k) in lanes:
        n_lanes[top] = max(n_lanes[top], k + 1)

    # top to bottom: frame labels, lanes, blocks, two label rows of two lines
    framed_top = {min(bands[f:l + 1]) for (_, _, f, l, _) in frame_at.values()}
    header = MARGIN + 2 * LINE + 8
    title = (f"{len(a.layers)} layers: input {_x(a.input_shape)} → output {_x(a.output_shape)}"
             + ("; groups of layers drawn as one block" if d.collapsed else ""))
    width = max(max(right, *label_right.values()) + MARGIN, 420,
                len(title) * CHAR + 2 * MARGIN)
    legend = _legend(boxes, width)
    header += legend[1]
    y = header
    band_top, band_bottom, lane_y, label_y = [], [], {}, []
    for i in range(len(levels)):
        band_top.append(y)
        y += (LINE + 4) if i in framed_top else 0
        lanes_h = n_lanes[i] * LANE + (6 if n_lanes[i] else 0)
        for k in range(n_lanes[i]):
            lane_y[(i, k)] = y + lanes_h - 4 - k * LANE
        y += lanes_h + 8
        members = [b for b, v in zip(boxes, bands) if v == i]
        tallest = max(b.h for b in members)
        for b in members:
            b.cy = round((y + tallest / 2) * 20) / 20
        y += tallest + 4
        label_y.append(y)
        rows_used = 1 + any(b.row for b in members)
        y += rows_used * 2 * LINE + 6
        band_bottom.append(y)
    height = y + MARGIN

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, monospace" '
           f'font-size="{FONT}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
           'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
           '</defs>',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    for i, lv in enumerate(levels):
        if i % 2 == 0:
            out.append(f'<rect class="band" x="0" y="{band_top[i]:.1f}" width="{width:.0f}" '
                       f'height="{band_bottom[i] - band_top[i]:.1f}" fill="#f6f6f6"/>')
    texts: List[Tuple[float, float, str, str]] = []  # x, baseline, anchor, text
    texts.append((MARGIN, MARGIN + FONT, "start", title))
    out += legend[0]
    for i, lv in enumerate(levels):
        cy = next(b.cy for b, v in zip(boxes, bands) if v == i)
        texts.append((MARGIN, cy + FONT / 3, "start", _band_name(lv)))
    for x0, x1, first, last, label in frame_at.values():
        top = min(bands[first:last + 1])
        bottom = max(bands[first:last + 1])
        y0 = band_top[top] + LINE + 6
        out.append(f'<rect class="frame" data-first="{first}" data-last="{last}" '
                   f'x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" '
                   f'height="{band_bottom[bottom] - 4 - y0:.1f}" fill="#f1ebf5" '
                   f'stroke="#b07aa1" stroke-dasharray="4,2" rx="4"/>')
        texts.append((x0, y0 - 3, "start", label))
    for s, t in d.edges:
        out.append(_connector(boxes, s, t, (s, t) in straight, lane_y.get(lane_of.get((s, t)))))
    for b in boxes:
        blk = b.block
        fam = _family(blk.kind)
        idx = 0 if blk.main < 0 else a.layers[blk.main].index
        layers = " ".join(str(0 if p < 0 else a.layers[p].index) for p in sorted(blk.rows))
        out.append(f'<g class="block" data-block="{boxes.index(b)}" data-index="{idx}" '
                   f'data-kind="{blk.kind}" data-level="{_band_name(blk.level)}" '
                   f'data-layers="{layers}" data-shape="{"x".join(map(str, b.shape))}">'
                   f'<title>{escape(_hover(a, blk))}</title>'
                   f'<rect x="{b.cx - b.w / 2:.2f}" y="{b.cy - b.h / 2:.2f}" width="{b.w:.1f}" '
                   f'height="{b.h:.1f}" fill="{fam[1]}" stroke="#333" stroke-width="0.8"/></g>')
    for b, v in zip(boxes, bands):
        base = label_y[v] + FONT + b.row * 2 * LINE
        texts.append((b.cx, base, "middle", b.line1))
        texts.append((b.cx, base + LINE, "middle", b.line2))
    for x, base, anchor, text in texts:
        out.append(f'<text x="{x:.1f}" y="{base:.1f}" text-anchor="{anchor}">'
                   f'{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(boxes: List[_Box], width: float) -> Tuple[List[str], float]:
    """A swatch and name per kind family drawn, wrapped to the width."""
    seen = []
    for b in boxes:
        fam = _family(b.block.kind)
        if fam not in seen:
            seen.append(fam)
    out, x, y = [], MARGIN, MARGIN + LINE + 8
    for name, colour in seen:
        w = 14 + len(name) * CHAR + 18
        if x + w > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + LINE
        out.append(f'<rect class="swatch" x="{x:.1f}" y="{y:.1f}" width="10" height="10" '
                   f'fill="{colour}" stroke="#333" stroke-width="0.8"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{y + 9:.1f}" text-anchor="start">'
                   f'{escape(name)}</text>')
        x += w
    return out, y - (MARGIN + LINE + 8) + LINE


def _hover(a: Analysis, b: Block, most: int = 40) -> str:
    lines = []
    for p in sorted(b.rows)[:most]:
        if p < 0:
            lines.append(f"input {'x'.join(map(str, a.input_shape))}")
            continue
        r = a.layers[p]
        lines.append(f"{r.index} {r.spec}" + (f" ({r.part})" if r.part else "")
                     + (f" [{r.name}]" if r.name else "")
                     + f": {'x'.join(map(str, r.output_shape))}")
    if len(b.rows) > most:
        lines.append(f"… and {len(b.rows) - most} more")
    return "\n".join(lines)


def _connector(boxes: List[_Box], s: int, t: int, straight: bool, lane: Optional[float]) -> str:
    a, b = boxes[s], boxes[t]
    kind = "flow" if t == s + 1 else "skip"
    if kind == "flow" and a.cy < b.cy:  # down: along the level, then into the top
        d = f"M{a.cx + a.w / 2:.1f},{a.cy:.1f} H{b.cx:.1f} V{b.cy - b.h / 2:.1f}"
    elif kind == "flow" and a.cy > b.cy:  # up: out of the top, then along the level
        d = f"M{a.cx:.1f},{a.cy - a.h / 2:.1f} V{b.cy:.1f} H{b.cx - b.w / 2:.1f}"
    elif kind == "flow":
        d = f"M{a.cx + a.w / 2:.1f},{a.cy:.1f} H{b.cx - b.w / 2:.1f}"
    elif straight:
        d = f"M{a.cx + a.w / 2:.1f},{a.cy:.1f} H{b.cx - b.w / 2:.1f}"
    else:
        d = (f"M{a.cx:.1f},{a.cy - a.h / 2:.1f} V{lane:.1f} H{b.cx:.1f} "
             f"V{b.cy - b.h / 2:.1f}")
    colour = "#555" if kind == "flow" else "#8c6bb1"
    return (f'<path class="{kind}" data-from="{s}" data-to="{t}" d="{d}" fill="none" '
            f'stroke="{colour}" stroke-width="{1 if kind == "flow" else 1.4}" '
            f'marker-end="url(#arrow)"/>')
