"""Conv arithmetic of one layer, position by position: what ``convcalc draw`` pictures.

Every layer that moves positions is separable: output (o_y, o_x) reads the
product of what o_y reads along y and o_x along x, with the product of the
per-dim weights.  So the picture is built per dim (:class:`DimPicture`) on
the layer's own :class:`~convcalc.layers.Window` and padding, and a
:class:`Frame` for an N-D output position is the product of the dims'.

Per dim the input is laid out on a *working grid*, the tutorials' picture of
the layer:

* conv and pools: the input with its padding cells (``pad``); a ceil-mode
  pool's last window may hang past the padding (``outside``: not read);
* transposed conv, as a stride-1 conv: s − 1 zeros inserted between inputs
  (``zero``), d·(k−1) − p implicit padding before and d·(k−1) − p + op after
  (negative padding crops), then the flipped kernel slides with stride 1;
* upsample and adaptive pools: the input itself, each output reading its
  source positions with their interpolation weights.

The read sets are cross-checked against :func:`convcalc.receptive.tap_set`,
the map ``rf --at`` propagates, so the picture cannot drift from it.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import ConvcalcError, ShapeError, StackSyntaxError
from .language import parse_shape, parse_token
from .layers import DIM_NAMES, Window, build, fmt_shape
from .receptive import _padded_source, tap_set

Weight = Optional[Union[Fraction, float]]  # None: a max (no weight)

DRAWABLE = ("conv", "sepconv", "tconv", "maxpool", "avgpool", "aavgpool", "amaxpool", "gap",
            "up")
INPUT, PAD, ZERO, OUTSIDE = "input", "pad", "zero", "outside"
MAX_FRAMES = 4096  # frames an SVG or a JSON document holds unless --frames says otherwise


@dataclass(frozen=True)
class Cell:
    """One cell of the working grid along one dim."""

    type: str  # INPUT, PAD, ZERO (inserted by a transposed conv) or OUTSIDE
    source: Optional[int] = None  # the real input position it holds (a copy for reflect…)


@dataclass(frozen=True)
class DimFrame:
    """What one output position reads along one dim."""

    taps: Tuple[Tuple[int, int], ...]  # (grid cell, kernel tap) of the footprint; () resampling
    reads: Tuple[Tuple[int, Weight], ...]  # (input position, weight), ascending
    sample: Optional[Fraction] = None  # where an interpolation samples, in input positions


@dataclass(frozen=True)
class DimPicture:
    cells: Tuple[Cell, ...]
    frames: Tuple[DimFrame, ...]  # one per output position
    padded: Tuple[int, int]  # grid cells of the padded input (first, last), inclusive
    note: str  # how this dim is built, in words with the numbers

    def grid_of(self, x: int) -> int:
        return next(g for g, c in enumerate(self.cells) if c.type == INPUT and c.source == x)


@dataclass(frozen=True)
class Frame:
    """One output position: the kernel footprint on the grid and the inputs it reads."""

    at: Tuple[int, ...]
    taps: Tuple[Tuple[Tuple[int, ...], Tuple[int, ...]], ...]  # (grid cell, kernel tap)
    reads: Dict[Tuple[int, ...], Weight]  # input position -> weight
    samples: Tuple[Optional[Fraction], ...]


@dataclass(frozen=True)
class Picture:
    token: str
    kind: str
    family: str  # "window" (conv, pools), "tconv" or "resample"
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    padding: Optional[Tuple[Tuple[int, int], ...]]
    dims: Tuple[DimPicture, ...]
    notes: Tuple[str, ...]
    weighted: bool  # whether the weights say something (avg, interpolation, repeated taps)

    @property
    def in_sizes(self) -> Tuple[int, ...]:
        return tuple(self.input_shape[2:])

    @property
    def out_sizes(self) -> Tuple[int, ...]:
        return tuple(self.output_shape[2:])

    @property
    def count(self) -> int:
        return math.prod(self.out_sizes)

    def positions(self) -> Iterator[Tuple[int, ...]]:
        return itertools.product(*(range(n) for n in self.out_sizes))

    def frame(self, at: Sequence[int]) -> Frame:
        at = tuple(at)
        if len(at) != len(self.dims):
            raise StackSyntaxError(f"--at needs {len(self.dims)} coordinate"
                                   f"{'s' if len(self.dims) > 1 else ''} (one per spatial dim of "
                                   f"{fmt_shape(self.output_shape)}), got {len(at)}")
        if any(not 0 <= u < n for u, n in zip(at, self.out_sizes)):
            raise ShapeError(f"--at {','.join(map(str, at))} is outside the output "
                             f"{fmt_shape(self.out_sizes)} of {self.token}")
        per = [d.frames[u] for d, u in zip(self.dims, at)]
        taps = tuple((tuple(g for g, _ in combo), tuple(j for _, j in combo))
                     for combo in itertools.product(*(f.taps for f in per)))
        reads: Dict[Tuple[int, ...], Weight] = {}
        for combo in itertools.product(*(f.reads for f in per)):
            ws = [w for _, w in combo]
            reads[tuple(x for x, _ in combo)] = None if None in ws else math.prod(ws)
        return Frame(at, taps, reads, tuple(f.sample for f in per))


def picture(token: str, input_shape) -> Picture:
    """The picture of one layer token at one input shape."""
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    spec = parse_token(token, 1)
    if spec.kind not in DRAWABLE:
        raise StackSyntaxError(f"draw pictures a layer that moves positions ({', '.join(DRAWABLE)}); "
                               f"{spec.text.partition(':')[0]} does not", layer=1, token=token)
    n = len(shape) - 2
    if n not in (1, 2):
        raise StackSyntaxError(
            f"draw pictures 1-D and 2-D inputs, got {fmt_shape(shape)} ({n} spatial dims)"
            + ("; every dim is computed alike, so draw two of them (1x1xHxW)" if n == 3 else ""),
            layer=1, token=token)
    if isinstance(spec["size"], str):
        raise StackSyntaxError(f"size={spec['size']} names a tensor, and draw has only this "
                               f"layer: give the size (size=16x16)", layer=1, token=token)
    layer = build(spec)
    try:
        layer.check_rank(shape)
        steps = layer.steps(shape)
    except ConvcalcError as e:
        raise e.located(1, token)
    st = steps[0]  # a sepconv's depthwise half: its pointwise half is 1x1
    windows = st.windows
    if windows is None:  # a pool to one position: one window over everything
        windows = tuple(Window("area", i, 1, ratio=Fraction(i)) for i in shape[2:])
    pairs = st.padding
    notes: List[str] = []
    if spec.kind == "sepconv":
        notes.append("the depthwise half of the sepconv (its pointwise half is 1x1)")
    if spec.kind == "tconv":
        dims = tuple(_tconv_dim(w, pb, pa) for w, (pb, pa) in zip(windows, pairs))
        family = "tconv"
    elif windows[0].kind == "conv":
        avg = spec.kind == "avgpool"
        dims = tuple(_window_dim(w, pb, pa, spec.kind, avg and spec["count_include_pad"])
                     for w, (pb, pa) in zip(windows, pairs))
        family = "window"
    else:
        dims = tuple(_resample_dim(w, spec.kind) for w in windows)
        family = "resample"
    names = DIM_NAMES[n]
    if len({d.note for d in dims}) == 1:
        notes.append(f"{', '.join(names)}: {dims[0].note}")
    else:
        notes += [f"{name}: {d.note}" for name, d in zip(names, dims)]
    weighted = spec.kind in ("avgpool", "aavgpool", "gap", "up") or any(
        w not in (None, 1) for d in dims for f in d.frames for _, w in f.reads)
    return Picture(spec.text, spec.kind, family, tuple(st.input_shape), tuple(st.output_shape),
                   pairs if spec.kind != "up" else None, dims, tuple(notes), weighted)


def _check(w: Window, o: int, reads) -> None:
    """The picture's read set is the engine's (what rf --at propagates)."""
    engine = set(tap_set(w, o))
    if engine != {x for x, _ in reads}:  # pragma: no cover - a bug, said plainly
        raise ShapeError(f"internal: the picture of output {o} reads {sorted(x for x, _ in reads)} "
                         f"but the receptive-field map says {sorted(engine)}")


def _window_dim(w: Window, pb: int, pa: int, kind: str, include_pad: bool) -> DimPicture:
    """conv and pools: taps o·s − pb + j·d on the input padded by pb before and pa after."""
    n, d = w.in_size, w.dilation
    last_tap = (w.out_size - 1) * w.stride - pb + d * (w.k - 1)
    lo, hi = min(0, -pb), max(n - 1 + pa, last_tap, n - 1)
    cells = []
    for t in range(lo, hi + 1):
        if 0 <= t < n:
            cells.append(Cell(INPUT, t))
        elif -pb <= t < n + pa:
            cells.append(Cell(PAD, _padded_source(t, n, w.padding_mode, w.wrap)))
        else:
            cells.append(Cell(OUTSIDE))
    frames = []
    for o in range(w.out_size):
        start = o * w.stride - pb
        taps = tuple((start + j * d - lo, j) for j in range(w.k))
        counts: Dict[int, int] = {}
        for g, _ in taps:
            c = cells[g]
            if c.type in (INPUT, PAD) and c.source is not None:
                counts[c.source] = counts.get(c.source, 0) + 1
        if kind == "maxpool":
            reads = tuple((x, None) for x in sorted(counts))
        elif kind == "avgpool":
            # PyTorch's divisor: the window clipped to the padded input, or to the input
            end = min(start + w.k, n + pa)
            div = end - start if include_pad else min(end, n) - max(start, 0)
            reads = tuple((x, Fraction(c, div)) for x, c in sorted(counts.items()))
        else:
            reads = tuple((x, Fraction(c)) for x, c in sorted(counts.items()))
        _check(w, o, reads)
        frames.append(DimFrame(taps, reads))
    span = d * (w.k - 1) + 1
    parts = [f"input {n} padded {pb}:{pa}" if pb != pa else f"input {n} padded {pb}"]
    if w.padding_mode != "zeros":
        parts[0] += f" ({w.padding_mode})"
    parts.append(f"kernel {w.k}" + (f" dilated by {d} spans {span} (holes between taps)"
                                    if d > 1 else ""))
    parts.append(f"stride {w.stride}")
    if last_tap > n - 1 + pa:
        parts.append(f"the last window hangs {last_tap - (n - 1 + pa)} past the padding "
                     f"(ceil mode; not read)")
    if kind == "avgpool":
        parts.append("dividing by the window " + ("with its padding" if include_pad
                                                  else "without padding"))
    parts.append(f"output {w.out_size}")
    return DimPicture(tuple(cells), tuple(frames), (-pb - lo, n - 1 + pa - lo), ", ".join(parts))


def _tconv_dim(w: Window, pb: int, pa: int) -> DimPicture:
    """A transposed conv as the tutorials draw it: a stride-1 conv over the input
    with s − 1 zeros between positions and d·(k−1) − p implicit padding."""
    n, s, d, k = w.in_size, w.stride, w.dilation, w.k
    D = d * (k - 1)
    before = D - pb
    op = w.out_size - ((n - 1) * s - pb - pa + D + 1)
    after = D - pa + op
    length = (n - 1) * s + 1 + before + after  # the padded, zero-stretched grid
    first, last = before, before + (n - 1) * s  # where inputs 0 and n−1 sit on it
    lo, hi = min(0, first), max(length - 1, last)
    cells = []
    for q in range(lo, hi + 1):
        if first <= q <= last and (q - first) % s == 0:
            cells.append(Cell(INPUT, (q - first) // s))
        elif first < q < last:
            cells.append(Cell(ZERO))
        elif 0 <= q < length:
            cells.append(Cell(PAD))
        else:
            cells.append(Cell(OUTSIDE))
    frames = []
    for o in range(w.out_size):
        # the flipped kernel: grid cell o + j·d meets tap k − 1 − j
        taps = tuple((o + j * d - lo, k - 1 - j) for j in range(k))
        reads = tuple((cells[g].source, Fraction(1)) for g, _ in taps
                      if cells[g].type == INPUT)
        _check(w, o, reads)
        frames.append(DimFrame(taps, reads))
    note = (f"input {n} with s−1 = {s - 1} zero{'s' if s != 2 else ''} between positions, "
            f"implicit padding d·(k−1)−p = {before} before and d·(k−1)−p+op = {after} after "
            f"(p {pb}:{pa}, op {op}): a grid of {length}, then the flipped kernel {k}"
            + (f" dilated by {d}" if d > 1 else "") + f" at stride 1: output {w.out_size}")
    if before < 0 or after < 0:
        note += " (negative padding crops the grid)"
    return DimPicture(tuple(cells), tuple(frames), (-lo, length - 1 - lo), note)


def _resample_dim(w: Window, kind: str) -> DimPicture:
    """upsample and adaptive pools: the input positions each output reads, weighted."""
    from .pictures import _weights  # PyTorch's interpolation weights, as --erf uses them
    n = w.in_size
    frames = []
    for o in range(w.out_size):
        ts = sorted(tap_set(w, o))
        if w.kind == "area":
            weight: Dict[int, Weight] = {x: (None if kind == "amaxpool" else Fraction(1, len(ts)))
                                         for x in ts}
            sample = None
        elif w.kind in ("nearest", "nearest-exact"):
            weight, sample = {x: Fraction(1) for x in ts}, None
        else:
            got = _weights(w, o)
            weight = {x: got.get(x, 0.0) for x in ts}
            sample = _source(w, o)
        reads = tuple((x, weight[x]) for x in ts)
        _check(w, o, reads)
        frames.append(DimFrame((), reads, sample))
    if w.kind == "area":
        note = (f"input {n}: output j averages" if kind != "amaxpool" else
                f"input {n}: output j takes the max of") + \
            f" positions ⌊j·{n}/{w.out_size}⌋ … ⌈(j+1)·{n}/{w.out_size}⌉−1: output {w.out_size}"
    else:
        how = {"nearest": "⌊o·r⌋", "nearest-exact": "⌊(o+½)·r⌋"}.get(
            w.kind, "o·r" if w.align_corners else "(o+½)·r − ½")
        note = (f"input {n}, mode {w.kind}{', align_corners' if w.align_corners else ''}: "
                f"output o samples input {how}, r = {_ratio(w)}: output {w.out_size}")
        if w.copy:
            note += " (PyTorch's kernel copies this dim)"
    return DimPicture(tuple(Cell(INPUT, x) for x in range(n)), tuple(frames), (0, n - 1), note)


def _ratio(w: Window) -> str:
    r = w.ratio
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


def _source(w: Window, o: int) -> Fraction:
    """Where interpolation samples output o, in input positions (clamped at 0
    as PyTorch's linear kernels clamp; bicubic is not clamped)."""
    src = o * w.ratio if w.align_corners else (o + Fraction(1, 2)) * w.ratio - Fraction(1, 2)
    return src if w.kind == "bicubic" or src >= 0 else Fraction(0)


def weight_text(v: Weight) -> str:
    """A weight as people read it: exact fractions as 1/9, interpolation as 0.375."""
    if v is None:
        return "max"
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    return f"{v:.4g}"


def weight_number(v: Weight) -> Optional[float]:
    return None if v is None else float(v)


def to_dict(pic: Picture, frames: Sequence[Frame]) -> dict:
    """The JSON document of ``draw --format json``: per output position the
    input cells it reads (and their weights), the kernel's taps on the grid."""
    return {
        "layer": pic.token, "kind": pic.kind,
        "input_shape": list(pic.input_shape), "output_shape": list(pic.output_shape),
        "padding": None if pic.padding is None else [list(p) for p in pic.padding],
        "grid": {"size": [len(d.cells) for d in pic.dims],
                 "padded": [list(d.padded) for d in pic.dims],
                 "input_at": [d.grid_of(0) for d in pic.dims]},
        "notes": list(pic.notes),
        "positions": pic.count, "shown": len(frames),
        "frames": [{"at": list(f.at),
                    "reads": [list(x) for x in sorted(f.reads)],
                    "weights": [weight_number(f.reads[x]) for x in sorted(f.reads)],
                    "taps": [{"grid": list(g), "kernel": list(j)} for g, j in f.taps]}
                   for f in frames],
    }
