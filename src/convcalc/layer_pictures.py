"""``convcalc draw``'s pictures of one layer: text frames and an animated SVG.

Both draw a :class:`~convcalc.arithmetic.Picture`: the working grid (the
input with its padding cells, a transposed conv's inserted zeros), the
kernel's footprint with its dilation holes, the output grid, and per output
position the input cells it reads.  Plain text and plain SVG (SMIL
``<animate>``), no dependency.
"""
from __future__ import annotations

from html import escape
from typing import Dict, List, Optional, Sequence, Tuple

from .arithmetic import INPUT, OUTSIDE, ZERO, Frame, Picture, weight_text
from .errors import ShapeError
from .layers import fmt_shape
from .pictures import MAX_GRID

# two characters a cell, so that cells look square in a terminal
GLYPHS = {
    "read": ("██", "##"), "input": (" ·", " ."), "pad": ("░░", "::"),
    "pad_read": ("▒▒", "++"), "copy_read": ("▓▓", "%%"), "zero": (" ∘", " o"),
    "zero_read": ("▒▒", "++"), "outside": ("  ", "  "), "outside_read": ("××", "xx"),
    "out": (" ·", " ."), "out_now": ("██", "##"),
}
LEGEND = ("{read} input it reads   {input} other input   {pad_read} zero it multiplies "
          "(padding or inserted zero)   {copy_read} padding copying an input   {pad} padding   "
          "{zero} inserted zero   {outside_read} window past the padding (not read)")


def check_size(pic: Picture) -> None:
    """Pictures of at most MAX_GRID cells per dim (the numbers work at any size)."""
    big = [len(d.cells) for d in pic.dims] + list(pic.out_sizes)
    if max(big) > MAX_GRID:
        raise ShapeError(f"draw pictures grids of at most {MAX_GRID} cells per dim; "
                         f"{pic.token} on {fmt_shape(pic.input_shape)} needs "
                         f"{'x'.join(str(len(d.cells)) for d in pic.dims)} → "
                         f"{fmt_shape(pic.out_sizes)} (the arithmetic is the same on a smaller "
                         f"input; --format json has no limit)",
                         hint="draw it on a smaller input, e.g. -i 1x1x9x9")


def _rows(pic: Picture):
    """(row cells, column cells) of the grid: a 1-D grid is one row."""
    dims = pic.dims
    return (None, dims[0]) if len(dims) == 1 else (dims[0], dims[1])


def _grid_cells(pic: Picture, frame: Frame) -> Dict[Tuple[int, ...], str]:
    """The glyph name of every grid cell for one frame."""
    tapped = {g for g, _ in frame.taps}
    read = set(frame.reads)
    out: Dict[Tuple[int, ...], str] = {}
    for g in _all_cells(pic):
        cells = [d.cells[i] for d, i in zip(pic.dims, g)]
        types = {c.type for c in cells}
        if pic.family == "resample":
            out[g] = "read" if tuple(c.source for c in cells) in read else "input"
            continue
        if types == {INPUT}:
            out[g] = "read" if tuple(c.source for c in cells) in read else "input"
        elif OUTSIDE in types:
            out[g] = "outside_read" if g in tapped else "outside"
        elif ZERO in types:
            out[g] = "zero_read" if g in tapped else ("zero" if types <= {ZERO, INPUT}
                                                      else "pad")
        else:  # padding in some dim
            copy = all(c.source is not None for c in cells)
            out[g] = ("copy_read" if copy else "pad_read") if g in tapped else "pad"
    return out


def _all_cells(pic: Picture):
    import itertools
    return itertools.product(*(range(len(d.cells)) for d in pic.dims))


def _span(xs: Sequence[int]) -> str:
    xs = sorted(set(xs))
    if len(xs) > 2 and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}..{xs[-1]}"
    return ", ".join(map(str, xs))


def describe(pic: Picture, frame: Frame) -> str:
    """One line: which inputs an output position reads, with the weights."""
    names = ("y", "x") if len(pic.dims) == 2 else ("x",)
    at = ",".join(map(str, frame.at))
    if not frame.reads:
        return f"output {at} reads no input (its window lies in the padding and zeros)"
    per = [d.frames[u] for d, u in zip(pic.dims, frame.at)]
    where = "; ".join(f"{n} {_span([x for x, _ in f.reads])}" for n, f in zip(names, per))
    text = f"output {at} reads input {where} ({len(frame.reads)} position" \
           f"{'s' if len(frame.reads) > 1 else ''})"
    if pic.kind in ("maxpool", "amaxpool"):
        return text + ": the largest of them"
    if not pic.weighted:
        return text
    weights = set(frame.reads.values())
    if len(weights) == 1:
        return text + f", each weighing {weight_text(weights.pop())}"
    each = "; ".join(f"{n} " + ", ".join(f"{x} ×{weight_text(w)}" for x, w in f.reads)
                     for n, f in zip(names, per))
    return text + f", weights {each}" + (" (multiplied)" if len(per) > 1 else "")


def frame_lines(pic: Picture, frame: Frame, ascii: bool = False) -> List[str]:
    """One output position as text: the grid beside the output."""
    g = 1 if ascii else 0
    kinds = _grid_cells(pic, frame)
    rows_dim, cols_dim = _rows(pic)
    n_rows = 1 if rows_dim is None else len(rows_dim.cells)
    n_cols = len(cols_dim.cells)
    out_rows = 1 if len(pic.dims) == 1 else pic.out_sizes[0]
    out_cols = pic.out_sizes[-1]

    def key(r, c):
        return (c,) if rows_dim is None else (r, c)
    left = ["".join(GLYPHS[kinds[key(r, c)]][g] for c in range(n_cols)) for r in range(n_rows)]
    right = ["".join(GLYPHS["out_now" if key(r, c) == frame.at else "out"][g]
                     for c in range(out_cols)) for r in range(out_rows)]
    width = 2 * n_cols
    lines = [describe(pic, frame)]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else " " * width
        b = right[i] if i < len(right) else ""
        lines.append(f"{a}   {'->' if ascii else '→'} {b}".rstrip() if i == 0 else
                     f"{a}      {b}".rstrip())
    return lines


def header_lines(pic: Picture) -> List[str]:
    kind = pic.family
    grid = "x".join(str(len(d.cells)) for d in pic.dims)
    what = {"window": "the input with its padding", "tconv": "the input with zeros inserted "
            "and padded, as a stride-1 conv sees it", "resample": "the input"}[kind]
    return [f"{pic.token}: {fmt_shape(pic.input_shape)} → {fmt_shape(pic.output_shape)}",
            *[f"  {n}" for n in pic.notes],
            f"Left: {what} ({grid} cells); right: the output "
            f"({fmt_shape(pic.out_sizes)}), the current position marked."]


def legend_line(ascii: bool) -> str:
    g = 1 if ascii else 0
    return LEGEND.format(**{k: v[g].strip() or v[g] for k, v in GLYPHS.items()})


ASCII = {"→": "->", "−": "-", "·": "*", "½": "1/2", "⌊": "floor(", "⌋": ")", "⌈": "ceil(",
         "⌉": ")", "×": "x", "…": "...", "∘": "o"}


def text(pic: Picture, frames: Sequence[Frame], ascii: bool = False,
         cut: Optional[str] = None) -> List[str]:
    check_size(pic)
    lines = header_lines(pic) + [""]
    for f in frames:
        lines += frame_lines(pic, f, ascii) + [""]
    if cut:
        lines.append(cut)
    lines.append(legend_line(ascii))
    if not ascii:
        return lines
    table = str.maketrans(ASCII)
    return [line.translate(table).encode("ascii", "replace").decode() for line in lines]


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------

FILL = {"input": "#dbe9f6", "pad": "#e6e6e6", "zero": "#ffffff", "outside": "none",
        "out": "#fde8d0"}
STROKE = {"input": "#4e79a7", "pad": "#9a9a9a", "zero": "#b0b0b0", "outside": "#c8c8c8",
          "out": "#e8a060"}
READ = "#e15759"
SECONDS = 0.7  # per frame


def _cell_type(pic: Picture, g: Tuple[int, ...]) -> str:
    types = {d.cells[i].type for d, i in zip(pic.dims, g)}
    if types == {INPUT}:
        return "input"
    if OUTSIDE in types:
        return "outside"
    if ZERO in types and types <= {ZERO, INPUT}:
        return "zero"
    return "pad"


def _layout(pic: Picture):
    rows_dim, cols_dim = _rows(pic)
    n_rows = 1 if rows_dim is None else len(rows_dim.cells)
    n_cols = len(cols_dim.cells)
    out_rows = 1 if len(pic.dims) == 1 else pic.out_sizes[0]
    out_cols = pic.out_sizes[-1]
    size = max(10, min(28, 560 // max(n_rows, n_cols, out_rows, out_cols)))
    return n_rows, n_cols, out_rows, out_cols, size


def svg(pic: Picture, frames: Sequence[Frame], cut: Optional[str] = None) -> str:
    """An animated SVG: one frame per output position in ``frames``, looping;
    the first frame is drawn without animation too (static viewers show it)."""
    check_size(pic)
    n_rows, n_cols, out_rows, out_cols, C = _layout(pic)
    one_d = len(pic.dims) == 1
    left, top = 34, 86
    gx0, gy0 = left, top
    if one_d:  # the output below the input, as 1-D tutorials draw it
        ox0, oy0 = left, top + C + 64
    else:
        ox0, oy0 = left + n_cols * C + 70, top
    body_bottom = max(gy0 + n_rows * C, oy0 + out_rows * C)
    width = max(max(ox0 + out_cols * C, gx0 + n_cols * C) + 30, 640)
    notes = [part for line in [*pic.notes] + ([cut] if cut else [])
             for part in _wrap(line, (width - 2 * left) // 6)]
    legend_y = body_bottom + 26
    height = legend_y + 30 + 16 * len(notes)

    def gxy(g) -> Tuple[float, float]:
        r, c = (0, g[0]) if one_d else g
        return gx0 + c * C, gy0 + r * C

    def oxy(at) -> Tuple[float, float]:
        r, c = (0, at[0]) if one_d else at
        return ox0 + c * C, oy0 + r * C

    index = [{c.source: i for i, c in enumerate(d.cells) if c.type == INPUT} for d in pic.dims]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">'
           f'{escape(pic.token)}: {fmt_shape(pic.input_shape)} → '
           f'{fmt_shape(pic.output_shape)}</text>']
    what = {"window": "input with its padding", "tconv": "input, zeros inserted, padded",
            "resample": "input"}[pic.family]
    out.append(f'<text x="{gx0}" y="{gy0 - 30}" font-size="12">{what} '
               f'({"x".join(str(len(d.cells)) for d in pic.dims)})</text>')
    out.append(f'<text x="{ox0}" y="{oy0 - 30}" font-size="12">output '
               f'({fmt_shape(pic.out_sizes)})</text>')
    # the grid
    out.append('<g class="grid">')
    for g in _all_cells(pic):
        x, y = gxy(g)
        t = _cell_type(pic, g)
        attrs = f'class="cell {t}" data-grid="{",".join(map(str, g))}"'
        if t == "input":
            attrs += f' data-cell="{",".join(str(d.cells[i].source) for d, i in zip(pic.dims, g))}"'
        dash = ' stroke-dasharray="2,2"' if t in ("pad", "outside") else ""
        out.append(f'<rect {attrs} x="{x}" y="{y}" width="{C}" height="{C}" fill="{FILL[t]}" '
                   f'stroke="{STROKE[t]}" stroke-width="1"{dash}/>')
        if t == "zero" and C >= 14:
            out.append(f'<text x="{x + C / 2}" y="{y + C / 2 + 4}" text-anchor="middle" '
                       f'fill="#aaaaaa" font-size="{C // 2}">0</text>')
    out.append('</g>')
    # the padded input's outline (a transposed conv's grid may crop inputs)
    (p0, p1) = pic.dims[-1].padded
    q0, q1 = (0, 0) if one_d else pic.dims[0].padded
    x, y = gxy((p0,) if one_d else (q0, p0))
    out.append(f'<rect class="padded" x="{x}" y="{y}" width="{(p1 - p0 + 1) * C}" '
               f'height="{(q1 - q0 + 1) * C}" fill="none" stroke="#555555" stroke-width="1.5"/>')
    # input indices along the top (and the left)
    font = max(7, min(11, C // 2))
    for i, c in enumerate(pic.dims[-1].cells):
        if c.type == INPUT:
            x, _ = gxy((i,) if one_d else (0, i))
            out.append(f'<text x="{x + C / 2}" y="{gy0 - 6}" text-anchor="middle" '
                       f'font-size="{font}" fill="#4e79a7">{c.source}</text>')
    if not one_d:
        for i, c in enumerate(pic.dims[0].cells):
            if c.type == INPUT:
                _, y = gxy((i, 0))
                out.append(f'<text x="{gx0 - 6}" y="{y + C / 2 + 4}" text-anchor="end" '
                           f'font-size="{font}" fill="#4e79a7">{c.source}</text>')
    # the output grid
    out.append('<g class="output">')
    for at in pic.positions():
        x, y = oxy(at)
        out.append(f'<rect class="out-cell" data-at="{",".join(map(str, at))}" x="{x}" y="{y}" '
                   f'width="{C}" height="{C}" fill="{FILL["out"]}" stroke="{STROKE["out"]}"/>')
    out.append('</g>')
    # the frames
    total = len(frames) * SECONDS
    for k, f in enumerate(frames):
        out += _frame_svg(pic, f, k, len(frames), total, C, gxy, oxy, index)
    # legend and notes
    present = {_cell_type(pic, g) for g in _all_cells(pic)}
    out += _legend(left, legend_y, present, bool(pic.dims[0].frames[0].taps))
    for i, line in enumerate(notes):
        out.append(f'<text x="{left}" y="{legend_y + 30 + 16 * i}">{escape(line)}</text>')
    out.append('</svg>')
    return "\n".join(out) + "\n"


def _frame_svg(pic, f: Frame, k: int, n: int, total: float, C: int, gxy, oxy, index
               ) -> List[str]:
    at = ",".join(map(str, f.at))
    vis = "visible" if k == 0 else "hidden"
    out = [f'<g class="frame" data-at="{at}" visibility="{vis}">']
    if n > 1:
        if k == 0:
            values, times = "visible;hidden", f"0;{1 / n:.6f}"
        elif k == n - 1:
            values, times = "hidden;visible", f"0;{k / n:.6f}"
        else:
            values, times = "hidden;visible;hidden", f"0;{k / n:.6f};{(k + 1) / n:.6f}"
        out.append(f'<animate attributeName="visibility" calcMode="discrete" values="{values}" '
                   f'keyTimes="{times}" dur="{total:.2f}s" repeatCount="indefinite"/>')
    for cell, w in sorted(f.reads.items()):
        g = tuple(ix[x] for ix, x in zip(index, cell))
        x, y = gxy(g)
        opacity = 0.75 if w is None or not pic.weighted else \
            0.25 + 0.6 * min(1.0, abs(float(w)) / max(abs(float(v)) for v in f.reads.values()))
        out.append(f'<rect class="read" data-cell="{",".join(map(str, cell))}" x="{x}" y="{y}" '
                   f'width="{C}" height="{C}" fill="{READ}" fill-opacity="{opacity:.2f}"/>')
        if pic.weighted and C >= 18:
            label = _short(w)
            size = max(6, min(10, int(C * 1.7 / max(3, len(label)))))
            out.append(f'<text x="{x + C / 2}" y="{y + C - 3}" text-anchor="middle" '
                       f'font-size="{size}" fill="#222222">{label}</text>')
    if f.taps:  # the kernel's footprint: its bounding box and a dot per tap
        xs = [gxy(g) for g, _ in f.taps]
        x0, y0 = min(p[0] for p in xs), min(p[1] for p in xs)
        x1, y1 = max(p[0] for p in xs) + C, max(p[1] for p in xs) + C
        out.append(f'<rect class="footprint" x="{x0}" y="{y0}" width="{x1 - x0}" '
                   f'height="{y1 - y0}" fill="none" stroke="#222222" stroke-width="2"/>')
        inset = max(2.0, C * 0.12)
        for (g, j), (x, y) in zip(f.taps, xs):  # a tap: an inset outline, so holes show
            out.append(f'<rect class="tap" data-grid="{",".join(map(str, g))}" '
                       f'data-kernel="{",".join(map(str, j))}" x="{x + inset:.1f}" '
                       f'y="{y + inset:.1f}" width="{C - 2 * inset:.1f}" '
                       f'height="{C - 2 * inset:.1f}" fill="none" stroke="#222222" '
                       f'stroke-width="{max(1.5, C / 12):.1f}"/>')
    if f.samples and all(v is not None for v in f.samples):
        # where interpolation samples: input position p is the middle of its cell
        x, y = gxy((0,) * len(f.samples))
        cx = x + (float(f.samples[-1]) + 0.5) * C
        cy = y + (C / 2 if len(f.samples) == 1 else (float(f.samples[0]) + 0.5) * C)
        out.append(f'<circle class="sample" cx="{cx:.1f}" cy="{cy:.1f}" r="{C * 0.12:.1f}" '
                   f'fill="#222222"/>')
    x, y = oxy(f.at)
    out.append(f'<rect class="current" data-at="{at}" x="{x}" y="{y}" width="{C}" height="{C}" '
               f'fill="{READ}" fill-opacity="0.8" stroke="#222222" stroke-width="2"/>')
    out.append('</g>')
    return out


def _short(w) -> str:
    """A weight in a cell: exact fractions as they are, others to two decimals."""
    if isinstance(w, float):
        text = f"{w:.2f}"
        return text.replace("0.", ".", 1) if abs(w) < 1 else text
    return weight_text(w)


def _legend(x: float, y: float, present, taps: bool) -> List[str]:
    items = [("input", FILL["input"], STROKE["input"])]
    items += [("padding", FILL["pad"], STROKE["pad"])] if "pad" in present else []
    items += [("inserted zero", FILL["zero"], STROKE["zero"])] if "zero" in present else []
    items += [("past the padding", "#ffffff", STROKE["outside"])] if "outside" in present else []
    items += [("read", READ, READ)]
    items += [("kernel tap", "#ffffff", "#222222")] if taps else []
    items += [("output", FILL["out"], STROKE["out"])]
    out = ['<g class="legend">']
    for name, fill, stroke in items:
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="{2 if name == "kernel tap" else 1}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{name}</text>')
        x += 26 + 7 * len(name)
    out.append('</g>')
    return out


def _wrap(line: str, width: int) -> List[str]:
    """A note in lines of at most ``width`` characters, broken at spaces."""
    out, cur = [], ""
    for word in line.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return out + ([cur] if cur else [])
