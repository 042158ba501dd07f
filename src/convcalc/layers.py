"""One class per layer kind: output shape, applied padding, params, MACs.

Each class takes a parsed :class:`~convcalc.language.LayerSpec` and, given an
input shape, returns one :class:`Step` per PyTorch module it stands for
(``sepconv`` is two).  Every rule PyTorch enforces lives in the class that
owns it, stated once.  Rules no input could satisfy raise
:class:`StackSyntaxError` (exit 2); rules that fail at this input size raise
:class:`ShapeError` (exit 3).

MACs follow ``torch.utils.flop_counter``: conv = N·Cout·∏o·(Cin/g)·∏k,
transposed conv = N·Cin·∏i·(Cout/g)·∏k (every input element meets every
tap), linear = rows·in·out; bias and every other layer count 0.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Type

from .bignum import fraction
from .errors import ShapeError, StackSyntaxError
from .language import MAX_INT, LayerSpec, TrailingPairs
from .records import record

if TYPE_CHECKING:
    from fractions import Fraction

Shape = Tuple[int, ...]
Pairs = Tuple[Tuple[int, int], ...]


@record
class Window:
    """How one spatial dim of an output reads its input, for receptive fields.

    ``kind`` is ``conv`` (taps o·stride − pad + j·dilation, j < k: convs and
    pools), ``tconv`` (input x feeds output x·stride − pad + j·dilation), or
    a resampling ``mode`` of :data:`RESAMPLE_MODES` with ``ratio``, the
    input-per-output scale PyTorch uses (1/scale_factor, in/out, or
    (in−1)/(out−1) with align_corners).  ``area`` is also the adaptive pools.
    """

    kind: str
    in_size: int
    out_size: int
    k: int = 1
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    ratio: Fraction = 1  # an int while whole (no fractions import for whole stacks)
    align_corners: bool = False
    scale_factor: Optional[float] = None  # as given (PyTorch computes with 1/it in float32)
    copy: bool = False  # PyTorch's kernel copies or halves instead of computing indices
    padding_mode: str = "zeros"  # reflect/replicate/circular padding copies real positions
    # circular F.pad crops first, then wraps within what is left: (first, size) of it
    wrap: Optional[Tuple[int, int]] = None


@record
class Step:
    """One row of a report: a layer (or half of a sepconv) at one input shape."""

    input_shape: Shape
    output_shape: Shape
    padding: Optional[Pairs] = None
    params: int = 0
    buffers: int = 0
    macs: int = 0
    allocates: bool = True  # False for views and in-place ops
    windows: Optional[Tuple[Window, ...]] = ()  # () keeps positions; None mixes them all
    part: Optional[str] = None
    # graph operations read other tensors: (row position, windows) per input;
    # None means the current tensor through ``windows``
    inputs: Optional[Tuple[Tuple[int, Tuple[Window, ...]], ...]] = None
    # input dims (positions in the shape) that every output reads whole: a norm's
    # statistics, a softmax's sum, the channels a conv sums over.  Where one of
    # them is a spatial dim the exact field is global from here on; ``local``
    # says whether each output still reads its own position (a norm does, a
    # conv that takes a spatial dim for channels does not)
    mixes: Tuple[int, ...] = ()
    local: bool = True
    permutation: Optional[Tuple[int, ...]] = None  # permute: output dim j is input dim perm[j]
    grouped: Optional[int] = None  # a dim it mixes only within groups (group norm's channels)


def fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


# --- formula text for --explain ------------------------------------------------

DIM_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


def per_dim_lines(texts: Sequence[str]) -> List[str]:
    """One line for all spatial dims when they agree, else one per dim."""
    names = DIM_NAMES[len(texts)]
    if len(set(texts)) == 1:
        return [f"{', '.join(names)}: {texts[0]}"]
    return [f"{name}: {t}" for name, t in zip(names, texts)]


def _dot(vals) -> str:
    return "·".join(str(v) for v in vals)



def padding_lines(p, sizes, ks, ss, ds, pairs) -> List[str]:
    """How a padding mode became the (before, after) actually applied."""
    if not isinstance(p, str):
        return []
    if p == "valid":
        return ["p=valid: no padding"]
    if p == "full":
        return [f"p=full: {t}" for t in per_dim_lines(
            [f"d·(k−1) = {d}·({k}−1) = {d * (k - 1)} on both sides" for k, d in zip(ks, ds)])]
    odd = "end" if p == "same" else "start"
    texts = []
    for i, k, s, d, (b, a) in zip(sizes, ks, ss, ds, pairs):
        texts.append(f"total = max((⌈i/s⌉−1)·s + d·(k−1) + 1 − i, 0) = "
                     f"max((⌈{i}/{s}⌉−1)·{s} + {d}·({k}−1) + 1 − {i}, 0) = {b + a} "
                     f"→ {b} before, {a} after")
    lines = [f"p={p} (odd unit at the {odd}): {t}" for t in per_dim_lines(texts)]
    if any(s != 1 for s in ss):  # where the two frameworks part ways
        shown = str(ss[0]) if len(set(ss)) == 1 else 'x'.join(map(str, ss))
        lines.append(f"p={p} at stride {shown} is TensorFlow's "
                     f"{p.upper()}: PyTorch's padding='same' refuses strides other than 1")
    return lines


def conv_output_lines(sizes, ks, ss, ds, pairs, outs, ceil: bool = False) -> List[str]:
    """o = ⌊(i + pb + pa − d·(k−1) − 1)/s⌋ + 1, with the numbers in."""
    lo, hi = ("⌈", "⌉") if ceil else ("⌊", "⌋")
    texts = []
    for i, k, s, d, (b, a), o in zip(sizes, ks, ss, ds, pairs, outs):
        raw = (i + b + a - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
        text = (f"o = {lo}(i + pb + pa − d·(k−1) − 1)/s{hi} + 1 = "
                f"{lo}({i} + {b} + {a} − {d}·({k}−1) − 1)/{s}{hi} + 1 = {raw}")
        if raw != o:
            text += (f"; (o−1)·s = {(raw - 1) * s} ≥ i + pb = {i + b}: the last window would "
                     f"start in the right padding, so o = {o}")
        texts.append(text)
    return per_dim_lines(texts)


class Layer:
    """Base: holds the spec; subclasses implement :meth:`steps`."""

    kind = ""

    def __init__(self, spec: LayerSpec):
        self.spec = spec
        self.binds = isinstance(spec["size"], str)  # size=NAME: see bind
        lengths = {len(v) for v in spec.args.values() if isinstance(v, tuple) and len(v) > 1}
        if len(lengths) > 1:
            raise StackSyntaxError(f"per-dim values disagree on the number of dims "
                                   f"({' vs '.join(map(str, sorted(lengths)))})")
        self.check()

    def check(self) -> None:
        """Rules on the token's own values (exit 2)."""

    def bind(self, shape_of) -> "Layer":
        """The layer with ``size=NAME`` replaced by that tensor's spatial size
        (``shape_of(name)`` gives a named tensor's shape)."""
        if not self.binds:
            return self
        size = self.spec["size"]
        target = shape_of(size)
        if len(target) < 3:
            raise ShapeError(f"size={size}: {fmt_shape(target)} has no spatial dims")
        args = {**self.spec.args, "size": tuple(target[2:])}
        return type(self)(self.spec._replace(args=args))

    def check_rank(self, shape: Shape) -> None:
        """A PyTorch class name bound to a rank (Conv2d) takes only that rank."""
        bound = self.spec.rank_bound
        if bound and len(shape) not in bound[1]:
            cls, ranks = bound
            want = " or ".join(f"{r}-D" for r in ranks)
            raise StackSyntaxError(f"{cls} takes a {want} input (batch and channels first), "
                                   f"got {fmt_shape(shape)} ({len(shape)}-D)")

    def steps(self, shape: Shape) -> List[Step]:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, shape: Shape) -> List[List[str]]:
        """Each step's formulas with this input's numbers substituted."""
        return [[f"shape unchanged: {fmt_shape(st.output_shape)}"]
                + ([] if st.allocates else ["in place: allocates nothing"])
                for st in self.steps(shape)]

    # -- helpers shared by the spatial kinds ---------------------------------

    def spatial(self, shape: Shape) -> int:
        n = len(shape) - 2
        if n < 1:
            raise ShapeError(f"{self.kind} needs spatial dims, but its input {fmt_shape(shape)} "
                             f"has none (batch x features)")
        return n

    def per_dim(self, key: str, n: int) -> tuple:
        """A key's value with one entry per spatial dim (a single entry repeats)."""
        v = self.spec[key]
        if len(v) == 1:
            return tuple(v) * n
        if len(v) != n:
            raise ShapeError(f"{key} has {len(v)} values but the input has {n} spatial "
                             f"dim{'s' if n != 1 else ''}")
        return tuple(v)

    def static_per_dim(self, *keys: str) -> List[tuple]:
        """The keys' values broadcast to a common length (checked in __init__),
        so :meth:`check` can test rules between keys before the rank is known."""
        return _broadcast(*(self.spec[k] for k in keys))


def _broadcast(*vals) -> List[tuple]:
    n = max(len(v) for v in vals)
    return [tuple(v) * n if len(v) == 1 else tuple(v) for v in vals]


# ---------------------------------------------------------------------------
# padding resolution (convs and pools)
# ---------------------------------------------------------------------------

def resolve_padding(p, sizes, ks, ss, ds) -> Pairs:
    """Padding as (before, after) per dim; modes resolved at these input sizes.

    ``same`` is TensorFlow/ONNX SAME_UPPER: o = ⌈i/s⌉ and the odd unit after;
    for stride 1 it equals PyTorch's ``padding='same'``.
    """
    if not isinstance(p, str):
        return tuple(p) if len(p) == len(sizes) else tuple(p) * len(sizes)
    out = []
    for i, k, s, d in zip(sizes, ks, ss, ds):
        span = d * (k - 1)
        if p == "valid":
            out.append((0, 0))
        elif p == "full":
            out.append((span, span))
        else:
            total = max((-(-i // s) - 1) * s + span + 1 - i, 0)
            before = total // 2 if p == "same" else total - total // 2
            out.append((before, total - before))
    return tuple(out)


def _pad_text(pairs: Pairs) -> str:
    return fmt_shape(f"{b}:{a}" if b != a else str(b) for b, a in pairs)


# ---------------------------------------------------------------------------
# convolutions
# ---------------------------------------------------------------------------

def conv_step(shape: Shape, out: int, ks, ss, pairs: Pairs, ds, groups: int, bias: bool,
              pm: str, part: Optional[str] = None) -> Step:
    """One convolution, PyTorch's rules in PyTorch's order (padding mode, groups, kernel)."""
    N, C, sizes = shape[0], shape[1], shape[2:]
    for j, ((b, a), i) in enumerate(zip(pairs, sizes)):
        if pm == "reflect" and (b >= i or a >= i):
            raise ShapeError(f"reflect padding {_pad_text(pairs)} must be smaller than the input "
                             f"size {i} (dim {j + 1} of {fmt_shape(shape)})")
        if pm == "circular" and (b > i or a > i):
            raise ShapeError(f"circular padding {_pad_text(pairs)} wraps around more than once: "
                             f"it may be at most the input size {i} (dim {j + 1} of "
                             f"{fmt_shape(shape)})")
    if C % groups:
        raise ShapeError(f"in channels {C} are not divisible by groups {groups}")
    outs = []
    for (b, a), i, k, s, d in zip(pairs, sizes, ks, ss, ds):
        eff = d * (k - 1) + 1
        if i + b + a < eff:
            raise ShapeError(f"kernel {fmt_shape(d * (k - 1) + 1 for k, d in zip(ks, ds))} "
                             f"(dilated) is larger than the padded input "
                             f"{fmt_shape(i + b + a for (b, a), i in zip(pairs, sizes))}")
        outs.append((i + b + a - eff) // s + 1)
    params = out * (C // groups) * math.prod(ks) + (out if bias else 0)
    macs = N * out * math.prod(outs) * (C // groups) * math.prod(ks)
    windows = tuple(Window("conv", i, o, k, s, b, d, padding_mode=pm)
                    for i, o, k, s, (b, _), d in zip(sizes, outs, ks, ss, pairs, ds))
    return Step(shape, (N, out, *outs), pairs, params, 0, macs, windows=windows, part=part,
                mixes=() if groups == C == out else (1,), local=False)


def conv_lines(st: Step, ks, ss, ds, groups: int, bias: bool) -> List[str]:
    N, C, sizes = st.input_shape[0], st.input_shape[1], st.input_shape[2:]
    out, outs = st.output_shape[1], st.output_shape[2:]
    lines = conv_output_lines(sizes, ks, ss, ds, st.padding, outs)
    lines.append(f"params = Cout·(Cin/g)·∏k{' + Cout' if bias else ''} = "
                 f"{out}·({C}/{groups})·{_dot(ks)}{f' + {out}' if bias else ''} = {st.params:,}")
    lines.append(f"MACs = N·Cout·∏o·(Cin/g)·∏k = {N}·{out}·{_dot(outs)}·{C // groups}·{_dot(ks)} "
                 f"= {st.macs:,}")
    return lines


class Conv(Layer):
    kind = "conv"

    def check(self):
        out, g = self.spec["out"], self.spec["g"]
        if out % g:
            raise StackSyntaxError(f"out channels {out} are not divisible by groups {g}")

    def geometry(self, shape: Shape):
        n = self.spatial(shape)
        ks, ss, ds = (self.per_dim(key, n) for key in ("k", "s", "d"))
        p = self.spec["p"]
        if not isinstance(p, str):
            p = self.per_dim("p", n)
        return ks, ss, ds, resolve_padding(p, shape[2:], ks, ss, ds)

    def steps(self, shape):
        ks, ss, ds, pairs = self.geometry(shape)
        sp = self.spec
        return [conv_step(shape, sp["out"], ks, ss, pairs, ds, sp["g"], sp["bias"], sp["pm"])]

    def explain(self, shape):
        ks, ss, ds, pairs = self.geometry(shape)
        (st,) = self.steps(shape)
        return [padding_lines(self.spec["p"], shape[2:], ks, ss, ds, pairs)
                + conv_lines(st, ks, ss, ds, self.spec["g"], self.spec["bias"])]


class SepConv(Conv):
    """Depthwise conv (groups = in channels, no bias, ``mult`` per channel),
    then a pointwise 1x1 conv to ``out`` channels with ``bias``."""

    kind = "sepconv"

    def check(self):
        pass

    def steps(self, shape):
        ks, ss, ds, pairs = self.geometry(shape)
        sp = self.spec
        C = shape[1]
        dw = conv_step(shape, C * sp["mult"], ks, ss, pairs, ds, C, sp["dbias"], sp["pm"],
                       "depthwise")
        n = len(ks)
        pw = conv_step(dw.output_shape, sp["out"], (1,) * n, (1,) * n, ((0, 0),) * n, (1,) * n, 1,
                       sp["bias"], "zeros", "pointwise")
        return [dw, pw]

    def explain(self, shape):
        ks, ss, ds, pairs = self.geometry(shape)
        dw, pw = self.steps(shape)
        n = len(ks)
        return [["depthwise: groups = in channels = " + str(shape[1])]
                + padding_lines(self.spec["p"], shape[2:], ks, ss, ds, pairs)
                + conv_lines(dw, ks, ss, ds, shape[1], self.spec["dbias"]),
                ["pointwise: a 1x1 conv"]
                + conv_lines(pw, (1,) * n, (1,) * n, (1,) * n, 1, self.spec["bias"])]


class TConv(Layer):
    """Transposed convolution: o = (i−1)·s − pb − pa + d·(k−1) + op + 1."""

    kind = "tconv"

    def check(self):
        sp = self.spec
        out, g = sp["out"], sp["g"]
        if out % g:
            raise StackSyntaxError(f"out channels {out} are not divisible by groups {g}")
        if sp["size"] is not None and sp["op"] is not None:
            raise StackSyntaxError("give either size= or op=, not both: size= picks op")
        if sp["size"] is not None and isinstance(sp["p"], str):
            raise StackSyntaxError(f"size= needs numeric padding, not p={sp['p']}")
        if sp["op"] is not None and sp["p"] in ("same", "same_lower"):
            raise StackSyntaxError(f"p={sp['p']} already sets the output to input·stride; drop op")
        if sp["op"] is not None:
            self._check_op(*self.static_per_dim("op", "s", "d"))

    @staticmethod
    def _check_op(ops, ss, ds):
        for op, s, d in zip(ops, ss, ds):
            if op >= max(s, d):
                raise StackSyntaxError(f"output padding {op} must be smaller than stride {s} "
                                       f"or dilation {d}")

    def geometry(self, shape):
        """(k, s, d, crop pairs, output padding, minimum sizes, output sizes) per dim."""
        n = self.spatial(shape)
        sp = self.spec
        C, sizes = shape[1], shape[2:]
        ks, ss, ds = (self.per_dim(key, n) for key in ("k", "s", "d"))
        p = sp["p"]
        if isinstance(p, str):
            pairs, ops = self._mode_padding(p, ks, ss, ds)
        else:
            pairs = self.per_dim("p", n)
            ops = self.per_dim("op", n) if sp["op"] is not None else (0,) * n
        self._check_op(ops, ss, ds)
        if C % sp["g"]:
            raise ShapeError(f"in channels {C} are not divisible by groups {sp['g']}")
        lows = [(i - 1) * s - b - a + d * (k - 1) + 1
                for i, s, (b, a), d, k in zip(sizes, ss, pairs, ds, ks)]
        if sp["size"] is not None:
            # PyTorch's forward(output_size=): op = target − minimum, 0 ≤ op < stride
            target = self.per_dim("size", n)
            if any(not lo <= t <= lo + s - 1 for t, lo, s in zip(target, lows, ss)):
                raise ShapeError(f"size={fmt_shape(target)} cannot be reached: valid sizes range from "
                                 f"{fmt_shape(lows)} to {fmt_shape(lo + s - 1 for lo, s in zip(lows, ss))} "
                                 f"for an input of {fmt_shape(sizes)}")
            ops = tuple(t - lo for t, lo in zip(target, lows))
        outs = [lo + op for lo, op in zip(lows, ops)]
        if min(outs) < 1:
            raise ShapeError(f"output size {fmt_shape(outs)} is less than 1 (input {fmt_shape(sizes)}, "
                             f"padding {_pad_text(pairs)})")
        return ks, ss, ds, pairs, ops, lows, outs

    def steps(self, shape):
        ks, ss, ds, pairs, ops, lows, outs = self.geometry(shape)
        sp = self.spec
        N, C, sizes = shape[0], shape[1], shape[2:]
        out, g = sp["out"], sp["g"]
        params = C * (out // g) * math.prod(ks) + (out if sp["bias"] else 0)
        macs = N * C * math.prod(sizes) * (out // g) * math.prod(ks)
        windows = tuple(Window("tconv", i, o, k, s, b, d)
                        for i, o, k, s, (b, _), d in zip(sizes, outs, ks, ss, pairs, ds))
        return [Step(shape, (N, out, *outs), pairs, params, 0, macs, windows=windows,
                     mixes=() if g == C == out else (1,), local=False)]

    def explain(self, shape):
        ks, ss, ds, pairs, ops, lows, outs = self.geometry(shape)
        (st,) = self.steps(shape)
        sp = self.spec
        N, C, sizes = shape[0], shape[1], shape[2:]
        lines = []
        if isinstance(sp["p"], str) and sp["p"] != "valid":
            lines += [f"p={sp['p']}: crop {_pad_text(pairs)}, output padding {fmt_shape(ops)}"]
        if sp["size"] is not None:
            lines += per_dim_lines([f"size={t}: op = size − o_min = {t} − {lo} = {t - lo} "
                                    f"(valid: 0 ≤ op < s = {s})"
                                    for t, lo, s in zip(outs, lows, ss)])
        lines += per_dim_lines([
            f"o = (i−1)·s − pb − pa + d·(k−1) + op + 1 = ({i}−1)·{s} − {b} − {a} + {d}·({k}−1) "
            f"+ {op} + 1 = {o}"
            for i, s, (b, a), d, k, op, o in zip(sizes, ss, pairs, ds, ks, ops, outs)])
        out, g = sp["out"], sp["g"]
        bias = sp["bias"]
        lines.append(f"params = Cin·(Cout/g)·∏k{' + Cout' if bias else ''} = "
                     f"{C}·({out}/{g})·{_dot(ks)}{f' + {out}' if bias else ''} = {st.params:,}")
        lines.append(f"MACs = N·Cin·∏i·(Cout/g)·∏k = {N}·{C}·{_dot(sizes)}·{out // g}·{_dot(ks)} "
                     f"= {st.macs:,} (every input element meets every tap)")
        return [lines]

    @staticmethod
    def _mode_padding(p, ks, ss, ds):
        """valid: no crop; full: crop d·(k−1) both sides; same: output = input·stride."""
        pairs, ops = [], []
        for k, s, d in zip(ks, ss, ds):
            span = d * (k - 1)
            if p == "valid":
                pairs.append((0, 0)), ops.append(0)
            elif p == "full":
                pairs.append((span, span)), ops.append(0)
            else:
                extra = span + 1 - s  # what (i−1)·s + span + 1 has beyond i·s
                if extra >= 0:
                    b = extra // 2 if p == "same" else extra - extra // 2
                    pairs.append((b, extra - b)), ops.append(0)
                else:
                    pairs.append((0, 0)), ops.append(-extra)
        return tuple(pairs), tuple(ops)


# ---------------------------------------------------------------------------
# upsample
# ---------------------------------------------------------------------------

INTERPOLATING = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def resample_window(mode: str, i: int, o: int, scale: Optional[float], align_corners: bool,
                    n_spatial: int) -> Window:
    """How an upsample reads one dim, with PyTorch's kernel shortcuts.

    ``ratio`` is the input positions per output position: 1/scale_factor when
    a scale is given (PyTorch uses it as such, not i/o) except for ``area``
    (an adaptive average pool to the output size), (i−1)/(o−1) with
    align_corners, else i/o.  PyTorch's linear kernels copy a dim whose size
    is unchanged, and its 2-D nearest kernel copies an unchanged dim and maps
    o to ⌊o/2⌋ when the size exactly doubles, whatever the scale says.
    """
    if (mode in INTERPOLATING and mode != "bicubic" and o == i) or \
            (mode == "nearest" and n_spatial == 2 and o in (i, 2 * i)):
        return Window(mode, i, o, ratio=fraction(i, o), copy=True)
    if align_corners:
        ratio = fraction(i - 1, o - 1) if o > 1 else fraction(0)
    elif scale is not None and mode != "area":
        ratio = 1 / fraction(repr(scale))
    else:
        ratio = fraction(i, o)
    return Window(mode, i, o, ratio=ratio, align_corners=align_corners,
                  scale_factor=None if mode == "area" else scale)


class Up(Layer):
    kind = "up"

    def check(self):
        sp = self.spec
        if (sp["scale"] is None) == (sp["size"] is None):
            raise StackSyntaxError("give exactly one of scale (up:2, scale=2x1.5) or size= "
                                   "(size=64x48)")
        if sp["align_corners"] and sp["mode"] not in INTERPOLATING:
            raise StackSyntaxError(f"align_corners only goes with the interpolating modes "
                                   f"({', '.join(INTERPOLATING)}), not mode={sp['mode']}")

    def steps(self, shape):
        n = self.spatial(shape)
        sp = self.spec
        mode = sp["mode"]
        if INTERPOLATING.get(mode, n) != n:
            want = INTERPOLATING[mode]
            raise ShapeError(f"mode={mode} needs {want} spatial dim{'s' if want > 1 else ''} "
                             f"({want + 2}-D input), but the input {fmt_shape(shape)} has {n}")
        sizes = shape[2:]
        if sp["size"] is not None:
            outs = self.per_dim("size", n)
            scales = (None,) * n
        else:
            scales = self.per_dim("scale", n)
            # PyTorch: ⌊i·scale⌋ in float arithmetic (25·1.16 = 28.999… → 28)
            exact = [float(i) * s for i, s in zip(sizes, scales)]
            if max(exact) > MAX_INT:
                raise ShapeError(f"output size {fmt_shape(f'{v:.3g}' for v in exact)} is larger "
                                 f"than {MAX_INT:.0e}")
            outs = tuple(math.floor(v) for v in exact)
            if min(outs) < 1:
                raise ShapeError(f"output size {fmt_shape(outs)} = ⌊{fmt_shape(sizes)} · "
                                 f"{fmt_shape(f'{s:g}' for s in scales)}⌋ is less than 1")
        windows = tuple(resample_window(mode, i, o, s, sp["align_corners"], n)
                        for i, o, s in zip(sizes, outs, scales))
        return [Step(shape, (*shape[:2], *outs), windows=windows)]

    def explain(self, shape):
        (st,) = self.steps(shape)
        sizes, outs = shape[2:], st.output_shape[2:]
        if self.spec["size"] is not None:
            return [per_dim_lines([f"o = size = {o}" for o in outs])]
        scales = self.per_dim("scale", len(sizes))
        return [per_dim_lines([f"o = ⌊i·scale⌋ = ⌊{i}·{s:g}⌋ = {o}"
                               for i, s, o in zip(sizes, scales, outs)])]


# ---------------------------------------------------------------------------
# pools
# ---------------------------------------------------------------------------

class Pool(Layer):
    """Max and average pools: o = ⌊(i + pb + pa − d·(k−1) − 1)/s⌋ + 1, or with ceil."""

    def check(self):
        p = self.spec["p"]
        if not isinstance(p, str):
            self._check_pad(*self.static_per_dim("p", "k"))
            return
        # full, and same at stride 1, pad d·(k−1) in total whatever the input
        sp = self.spec
        ks, ss, ds = _broadcast(sp["k"], sp["s"] or sp["k"], sp["d"] or (1,))
        if p == "full" or (p != "valid" and all(s == 1 for s in ss)):
            n = len(ks)
            self._check_pad(resolve_padding(p, (1,) * n, ks, (1,) * n, ds), ks)

    @staticmethod
    def _check_pad(pairs, ks, error=StackSyntaxError):
        # PyTorch: "pad should be smaller than or equal to half of kernel size"
        # (the raw kernel, dilation or not)
        for (b, a), k in zip(pairs, ks):
            if 2 * max(b, a) > k:
                raise error(f"padding {_pad_text(pairs)} is more than half the kernel {fmt_shape(ks)}")

    def geometry(self, shape):
        n = self.spatial(shape)
        sp = self.spec
        sizes = shape[2:]
        ks = self.per_dim("k", n)
        ss = self.per_dim("s", n) if sp["s"] is not None else ks
        ds = self.per_dim("d", n) if sp["d"] is not None else (1,) * n
        p = sp["p"]
        if isinstance(p, str):
            pairs = resolve_padding(p, sizes, ks, ss, ds)
            self._check_pad(pairs, ks, ShapeError)
        else:
            pairs = self.per_dim("p", n)
            self._check_pad(pairs, ks)
        # PyTorch's avg_pool3d alone checks its input against the kernel: the unpadded
        # input, or, where asymmetric padding needs an F.pad first, the padded one
        seen = sizes if all(b == a for b, a in pairs) else \
            tuple(i + b + a for i, (b, a) in zip(sizes, pairs))
        if self.kind == "avgpool" and n == 3 and any(i < k for i, k in zip(seen, ks)):
            raise ShapeError(f"input {fmt_shape(seen)} is smaller than the kernel {fmt_shape(ks)} "
                             f"(3-D average pooling does not count padding here)"
                             if seen == sizes else
                             f"input {fmt_shape(sizes)} padded to {fmt_shape(seen)} is smaller than "
                             f"the kernel {fmt_shape(ks)} (3-D average pooling)")
        outs = []
        for i, k, s, (b, a), d in zip(sizes, ks, ss, pairs, ds):
            room = i + b + a - d * (k - 1) - 1
            o = (room + (s - 1 if sp["ceil"] else 0)) // s + 1
            # PyTorch, ceil_mode: the last window may not start in the right padding
            if sp["ceil"] and (o - 1) * s >= i + b:
                o -= 1
            outs.append(o)
        if min(outs) < 1:
            raise ShapeError(f"output size {fmt_shape(outs)} is less than 1: the window "
                             f"{fmt_shape(d * (k - 1) + 1 for k, d in zip(ks, ds))} does not fit the "
                             f"padded input {fmt_shape(i + b + a for i, (b, a) in zip(sizes, pairs))}")
        return ks, ss, ds, pairs, outs

    def steps(self, shape):
        ks, ss, ds, pairs, outs = self.geometry(shape)
        windows = tuple(Window("conv", i, o, k, s, b, d)
                        for i, o, k, s, (b, _), d in zip(shape[2:], outs, ks, ss, pairs, ds))
        return [Step(shape, (*shape[:2], *outs), pairs, windows=windows)]

    def explain(self, shape):
        ks, ss, ds, pairs, outs = self.geometry(shape)
        lines = [] if self.spec["s"] is not None else [f"s = k = {fmt_shape(ks)} (the default)"]
        return [lines + padding_lines(self.spec["p"], shape[2:], ks, ss, ds, pairs)
                + conv_output_lines(shape[2:], ks, ss, ds, pairs, outs, self.spec["ceil"])]


class MaxPool(Pool):
    kind = "maxpool"


class AvgPool(Pool):
    kind = "avgpool"


class AdaptivePool(Layer):
    """Adaptive pools: the output size is asked for; window j spans
    [⌊j·i/o⌋, ⌈(j+1)·i/o⌉)."""

    def steps(self, shape):
        n = self.spatial(shape)
        outs = self.per_dim("size", n) if self.kind != "gap" else (1,) * n
        # an output of one position per dim mixes every input position
        windows = None if max(outs) == 1 else tuple(
            Window("area", i, o, ratio=fraction(i, o)) for i, o in zip(shape[2:], outs))
        return [Step(shape, (*shape[:2], *outs), windows=windows)]

    def explain(self, shape):
        (st,) = self.steps(shape)
        return [per_dim_lines([f"o = {o} (asked for); window j spans [⌊j·{i}/{o}⌋, "
                               f"⌈(j+1)·{i}/{o}⌉)" for i, o in zip(shape[2:], st.output_shape[2:])])]


class AdaptiveAvgPool(AdaptivePool):
    kind = "aavgpool"


class AdaptiveMaxPool(AdaptivePool):
    kind = "amaxpool"


class GlobalAvgPool(AdaptivePool):
    kind = "gap"


# ---------------------------------------------------------------------------
# the small layers
# ---------------------------------------------------------------------------

class BatchNorm(Layer):
    """Parameters 2C (weight, bias) when affine; buffers 2C + 1 (running mean and
    var, and the num_batches_tracked counter)."""

    kind = "bn"

    def steps(self, shape):
        C = shape[1]
        # running mean, running var and num_batches_tracked, as model.buffers() counts them
        return [Step(shape, shape, params=2 * C if self.spec["affine"] else 0,
                     buffers=2 * C + 1)]

    def explain(self, shape):
        C = shape[1]
        params = f"params = 2·C = 2·{C} = {2 * C} (weight, bias)" if self.spec["affine"] \
            else "params = 0 (affine=false)"
        return [[params, f"buffers = 2·C + 1 = {2 * C + 1} (running mean, running var, "
                         f"num_batches_tracked)"]]


class Activation(Layer):
    kind = "act"

    def steps(self, shape):
        return [Step(shape, shape, allocates=not self.spec["inplace"])]


class Dropout(Activation):
    kind = "dropout"


class Flatten(Layer):
    """``nn.Flatten(1)``: N x (all the rest), a view that allocates nothing."""

    kind = "flatten"

    def steps(self, shape):
        return [Step(shape, (shape[0], math.prod(shape[1:])), allocates=False, windows=None)]

    def explain(self, shape):
        return [[f"N x (C·∏spatial) = {shape[0]} x ({_dot(shape[1:])}) = {shape[0]}x"
                 f"{math.prod(shape[1:])}, a view: allocates nothing"]]


class Linear(Layer):
    """``nn.Linear``: acts on the last dim, like PyTorch (flatten first for a classifier)."""

    kind = "linear"

    def steps(self, shape):
        fin, out = shape[-1], self.spec["out"]
        if self.spec["in"] is not None and self.spec["in"] != fin:
            raise ShapeError(f"in={self.spec['in']:,} features, but the input "
                             f"{fmt_shape(shape)} has {fin:,} in its last dim")
        params = fin * out + (out if self.spec["bias"] else 0)
        rows = math.prod(shape[:-1])
        # it sums over the last dim: positions are kept unless that dim is spatial
        return [Step(shape, (*shape[:-1], out), params=params, macs=rows * fin * out,
                     mixes=(len(shape) - 1,), local=False)]

    def explain(self, shape):
        (st,) = self.steps(shape)
        fin, out, bias = shape[-1], self.spec["out"], self.spec["bias"]
        return [[f"in = last dim = {fin}",
                 f"params = in·out{' + out' if bias else ''} = {fin}·{out}"
                 f"{f' + {out}' if bias else ''} = {st.params:,}",
                 f"MACs = rows·in·out = {math.prod(shape[:-1])}·{fin}·{out} = {st.macs:,}"]]


# ---------------------------------------------------------------------------
# the vocabulary of modern nets (SPEC §3b)
# ---------------------------------------------------------------------------

def _axis(dim: int, shape: Shape, what: str) -> int:
    """A PyTorch dim argument (negative counts from the end) as a position."""
    rank = len(shape)
    if not -rank <= dim < rank:
        raise ShapeError(f"{what} {dim} is out of range for the {rank}-D input "
                         f"{fmt_shape(shape)} (valid: {-rank} to {rank - 1})")
    return dim % rank


class LayerNorm(Layer):
    """``nn.LayerNorm(x.shape[-dims:])``: statistics over the last ``dims`` dims."""

    kind = "ln"

    def steps(self, shape):
        dims = self.spec["dims"]
        if dims > len(shape):
            raise ShapeError(f"layer norm over the last {dims} dims, but the input "
                             f"{fmt_shape(shape)} has {len(shape)}")
        n = math.prod(shape[-dims:])
        params = n * (2 if self.spec["bias"] else 1) if self.spec["affine"] else 0
        return [Step(shape, shape, params=params,
                     mixes=tuple(range(len(shape) - dims, len(shape))))]

    def explain(self, shape):
        dims, sp = self.spec["dims"], self.spec
        norm = shape[-dims:]
        lines = [f"normalized shape = last {dims} dim{'s' if dims > 1 else ''} = {fmt_shape(norm)}"]
        if sp["affine"]:
            lines.append(f"params = {'2·' if sp['bias'] else ''}∏normalized = "
                         f"{'2·' if sp['bias'] else ''}{_dot(norm)} = "
                         f"{math.prod(norm) * (2 if sp['bias'] else 1):,} "
                         f"(weight{', bias' if sp['bias'] else ''})")
        else:
            lines.append("params = 0 (affine=false)")
        return [lines]


class LayerNorm2d(Layer):
    """torchvision's ``LayerNorm2d``: a layer norm over the channels at every position."""

    kind = "ln2d"

    def steps(self, shape):
        if len(shape) < 3:
            raise ShapeError(f"ln2d normalizes the channels of a spatial tensor, got "
                             f"{fmt_shape(shape)}")
        return [Step(shape, shape, params=2 * shape[1] if self.spec["affine"] else 0, mixes=(1,))]

    def explain(self, shape):
        C = shape[1]
        return [[f"over the {C} channels at every position; params = 2·C = {2 * C}"
                 if self.spec["affine"] else "params = 0 (affine=false)"]]


class GroupNorm(Layer):
    """``nn.GroupNorm(G, C)``: statistics over each group's channels and every position."""

    kind = "gn"

    def steps(self, shape):
        C, G = shape[1], self.spec["g"]
        if C % G:
            raise ShapeError(f"{C} channels are not divisible by {G} groups")
        if shape[0] * (C // G) * math.prod(shape[2:]) == 1:
            # PyTorch checks N·(C/G)·∏spatial > 1 even at inference ("Expected more than
            # 1 value per channel when training")
            raise ShapeError(f"each of the {G} groups of {fmt_shape(shape)} holds a single "
                             f"value: no statistics to take")
        return [Step(shape, shape, params=2 * C if self.spec["affine"] else 0,
                     mixes=tuple(range(1, len(shape))), grouped=1)]

    def explain(self, shape):
        C, G = shape[1], self.spec["g"]
        return [[f"{G} groups of C/G = {C}/{G} = {C // G} channels, statistics over every "
                 f"position", f"params = 2·C = {2 * C}" if self.spec["affine"]
                 else "params = 0 (affine=false)"]]


class InstanceNorm(Layer):
    """``nn.InstanceNorm{1,2,3}d``: per-sample, per-channel statistics over the
    positions -- also in eval unless ``track`` (then the running stats)."""

    kind = "instnorm"

    def steps(self, shape):
        n = self.spatial(shape)
        C, sp = shape[1], self.spec
        if not sp["track"] and math.prod(shape[2:]) == 1:
            # PyTorch: "Expected more than 1 spatial element when training"
            raise ShapeError(f"instance norm needs more than 1 position to take statistics "
                             f"over, got {fmt_shape(shape)}")
        return [Step(shape, shape, params=2 * C if sp["affine"] else 0,
                     buffers=2 * C + 1 if sp["track"] else 0,
                     mixes=() if sp["track"] else tuple(range(2, 2 + n)))]

    def explain(self, shape):
        C, sp = shape[1], self.spec
        return [[("running statistics at inference (track=true): positions stay apart"
                  if sp["track"] else "statistics over every position of each sample and "
                                      "channel (also at inference)"),
                 f"params = {f'2·C = {2 * C}' if sp['affine'] else '0 (affine=false)'}; "
                 f"buffers = {f'2·C + 1 = {2 * C + 1}' if sp['track'] else '0'}"]]


class Permute(Layer):
    """``x.permute(*dims)``: later layers act on the new layout, as in PyTorch."""

    kind = "permute"

    def steps(self, shape):
        dims = self.spec["dims"]
        rank = len(shape)
        if len(dims) != rank:
            raise ShapeError(f"permute names {len(dims)} dims, but the input {fmt_shape(shape)} "
                             f"has {rank}")
        perm = tuple(_axis(d, shape, "dim") for d in dims)
        if len(set(perm)) != rank:
            raise ShapeError(f"permute:{','.join(map(str, dims))} repeats a dim")
        return [Step(shape, tuple(shape[d] for d in perm), allocates=False, permutation=perm)]

    def explain(self, shape):
        (st,) = self.steps(shape)
        return [[f"dims ({', '.join(map(str, st.permutation))}): {fmt_shape(shape)} → "
                 f"{fmt_shape(st.output_shape)} (a view: allocates nothing)"]]


class LayerScale(Layer):
    """A learned per-channel multiplier of shape C x 1 … 1 (ConvNeXt)."""

    kind = "layerscale"

    def steps(self, shape):
        return [Step(shape, shape, params=shape[1])]

    def explain(self, shape):
        return [[f"params = C = {shape[1]} (one scale per channel)"]]


class DropPath(Layer):
    """Stochastic depth and the dropout family: identity at inference."""

    kind = "droppath"

    def steps(self, shape):
        # torchvision's stochastic_depth returns its input itself at inference
        return [Step(shape, shape, allocates=False)]

    def explain(self, shape):
        return [[f"identity at inference: {fmt_shape(shape)}"]]


class ChannelDropout(DropPath):
    kind = "dropout1d"

    def steps(self, shape):
        # PyTorch: "dropout1d: Expected 2D or 3D input" (dropout2d/3d only warn)
        if self.spec.kind == "dropout1d" and len(shape) not in (2, 3):
            raise ShapeError(f"dropout1d takes a 2-D or 3-D input, got {fmt_shape(shape)}")
        return [Step(shape, shape, allocates=not self.spec["inplace"])]


class ChannelShuffle(Layer):
    """ShuffleNet's channel shuffle: view(N, g, C/g, …), transpose(1, 2), view back."""

    kind = "shuffle"

    def steps(self, shape):
        C, g = shape[1], self.spec["g"]
        if len(shape) < 3:
            raise ShapeError(f"channel shuffle needs a spatial tensor, got {fmt_shape(shape)}")
        if C % g:
            raise ShapeError(f"{C} channels are not divisible by {g} groups")
        return [Step(shape, shape, mixes=(1,))]

    def explain(self, shape):
        C, g = shape[1], self.spec["g"]
        return [[f"{g} groups of {C // g} channels interleaved: shape unchanged"]]


class Chunk(Layer):
    """``x.chunk(n, dim=1)[i]``: chunks of ⌈C/n⌉ channels, the last smaller, and
    fewer than n chunks where ⌈C/n⌉ covers C sooner (5 in 4: 2, 2, 1)."""

    kind = "chunk"

    def sizes(self, C: int) -> List[int]:
        size = -(-C // self.spec["n"])
        return [min(size, C - start) for start in range(0, C, size)]

    def steps(self, shape):
        if len(shape) < 2:
            raise ShapeError(f"chunk splits dim 1, but the input {fmt_shape(shape)} has none")
        sizes, i = self.sizes(shape[1]), self.spec["i"]
        if not -len(sizes) <= i < len(sizes):
            raise ShapeError(f"chunk i={i} does not exist: {shape[1]} channels in "
                             f"{self.spec['n']} chunks make {len(sizes)} "
                             f"({', '.join(map(str, sizes))})")
        return [Step(shape, (shape[0], sizes[i], *shape[2:]), allocates=False, mixes=(1,))]

    def explain(self, shape):
        sizes = self.sizes(shape[1])
        C, n = shape[1], self.spec["n"]
        return [[f"chunks of ⌈C/n⌉ = ⌈{C}/{n}⌉ = {sizes[0]}: {', '.join(map(str, sizes))}; "
                 f"chunk {self.spec['i']} has {sizes[self.spec['i']]} (a view)"]]


class PixelShuffle(Layer):
    """``nn.PixelShuffle(r)``: N x C·r² x H x W → N x C x rH x rW.  PyTorch
    reads any other rank's leading dims as batch, which is not this layout."""

    kind = "pixelshuffle"

    def _check(self, shape):
        if len(shape) != 4:
            raise ShapeError(f"{self.kind} works on 2-D spatial inputs (N x C x H x W); "
                             f"{fmt_shape(shape)} has {len(shape) - 2} spatial dims (PyTorch "
                             f"would read the extra dims as batch)")

    def steps(self, shape):
        self._check(shape)
        N, C, H, W = shape
        r = self.spec["r"]
        if C % (r * r):
            raise ShapeError(f"{C} channels are not divisible by r² = {r * r}")
        windows = tuple(Window("tconv", i, i * r, k=r, stride=r) for i in (H, W))
        return [Step(shape, (N, C // (r * r), H * r, W * r), windows=windows, mixes=(1,))]

    def explain(self, shape):
        (st,) = self.steps(shape)
        r = self.spec["r"]
        return [[f"C/r² = {shape[1]}/{r * r} = {st.output_shape[1]}; H·r, W·r = "
                 f"{shape[2]}·{r}, {shape[3]}·{r} = {st.output_shape[2]}, {st.output_shape[3]}",
                 f"output position o reads input ⌊o/{r}⌋ (one position)"]]


class PixelUnshuffle(PixelShuffle):
    kind = "pixelunshuffle"

    def steps(self, shape):
        self._check(shape)
        N, C, H, W = shape
        r = self.spec["r"]
        if H % r or W % r:
            raise ShapeError(f"spatial size {H}x{W} is not divisible by r = {r}")
        windows = tuple(Window("conv", i, i // r, k=r, stride=r) for i in (H, W))
        return [Step(shape, (N, C * r * r, H // r, W // r), windows=windows, mixes=(1,))]

    def explain(self, shape):
        (st,) = self.steps(shape)
        r = self.spec["r"]
        return [[f"C·r² = {shape[1]}·{r * r} = {st.output_shape[1]}; H/r, W/r = "
                 f"{shape[2]}/{r}, {shape[3]}/{r} = {st.output_shape[2]}, {st.output_shape[3]}",
                 f"output position o reads inputs o·{r} … o·{r} + {r - 1}"]]


class Pad(Layer):
    """``F.pad``: before/after per spatial dim, negative values crop; reflect,
    replicate and circular fill the border with copies of real positions."""

    kind = "pad"

    def check(self):
        # PyTorch: 'Padding mode "reflect" doesn't take in value argument' (0 passes)
        if self.spec["value"] and self.spec["mode"] != "zeros":
            raise StackSyntaxError(f"value= only goes with mode=zeros; mode={self.spec['mode']} "
                                   f"fills the border with copies of the input")

    def steps(self, shape):
        n = self.spatial(shape)
        pairs = self._pairs(n)
        mode = self.spec["mode"]
        sizes = shape[2:]
        windows = []
        for j, ((b, a), i) in enumerate(zip(pairs, sizes)):
            where = f"(dim {j + 1} of {fmt_shape(shape)})"
            kept = i + min(b, 0) + min(a, 0)  # zeros and circular crop the negatives first
            if kept < 0 and mode in ("zeros", "circular"):
                raise ShapeError(f"padding {_pad_text(pairs)} crops {-min(b, 0) - min(a, 0)} "
                                 f"of the input size {i} {where}")
            # PyTorch: reflect needs pad < size, circular pad <= the size left after cropping
            if mode == "reflect" and max(b, a) >= i:
                raise ShapeError(f"reflect padding {_pad_text(pairs)} must be smaller than the "
                                 f"input size {i} {where}")
            if mode == "circular" and kept == 0 and max(b, a) > 0:
                # PyTorch 2.13 accepts this and returns uninitialized memory
                raise ShapeError(f"circular padding {_pad_text(pairs)} crops the whole input "
                                 f"size {i}: nothing is left to wrap {where}")
            if mode == "circular" and max(b, a) > kept:
                raise ShapeError(f"circular padding {_pad_text(pairs)} wraps around more than "
                                 f"once: at most the size {kept} it wraps {where}")
            if i + b + a < 1:
                raise ShapeError(f"padding {_pad_text(pairs)} leaves {i + b + a} of the input "
                                 f"size {i} {where}")
            wrap = (-min(b, 0), kept) if mode == "circular" and min(b, a) < 0 else None
            windows.append(Window("conv", i, i + b + a, pad=b, padding_mode=mode, wrap=wrap))
        outs = tuple(w.out_size for w in windows)
        windows = tuple(windows)
        return [Step(shape, (*shape[:2], *outs), pairs, windows=windows)]

    def _pairs(self, n: int) -> tuple:
        p = self.spec["p"]
        if not isinstance(p, TrailingPairs):
            return self.per_dim("p", n)
        if len(p) > n:  # PyTorch: "Padding length too large"
            raise ShapeError(f"F.pad's tuple pads {len(p)} dims but the input has {n} spatial "
                             f"dim{'s' if n != 1 else ''}")
        return ((0, 0),) * (n - len(p)) + tuple(p)

    def explain(self, shape):
        (st,) = self.steps(shape)
        texts = [f"o = i + pb + pa = {i} + {b} + {a} = {o}"
                 for i, (b, a), o in zip(shape[2:], st.padding, st.output_shape[2:])]
        mode = self.spec["mode"]
        fill = {"zeros": f"the border holds {self.spec['value']:g}",
                "reflect": "the border mirrors the input (edge not repeated)",
                "replicate": "the border repeats the edge", "circular": "the border wraps around"}
        return [per_dim_lines(texts) + [f"mode={mode}: {fill[mode]}"]]


class Softmax(Layer):
    """``nn.Softmax(dim)`` / ``nn.LogSoftmax(dim)``: every output reads the whole of ``dim``."""

    kind = "softmax"

    def steps(self, shape):
        return [Step(shape, shape, mixes=(_axis(self.spec["dim"], shape, "dim"),))]

    def explain(self, shape):
        d = _axis(self.spec["dim"], shape, "dim")
        return [[f"normalizes along dim {d} ({shape[d]} values); shape unchanged"]]


class LogSoftmax(Softmax):
    kind = "logsoftmax"


# ---------------------------------------------------------------------------
# graph operations
# ---------------------------------------------------------------------------

class GraphLayer(Layer):
    """A token that names tensors or joins paths.  ``graph`` (from the
    analysis) knows the current position, every row's shape and the names:
    ``graph.cur``, ``graph.shape(pos)``, ``graph.lookup(name)``,
    ``graph.label(pos)`` and ``graph.drift(a, b)`` (why two shapes differ)."""

    def steps(self, shape):  # pragma: no cover - graph layers need the graph
        raise NotImplementedError

    def graph_steps(self, graph) -> List[Step]:
        raise NotImplementedError

    def explain_graph(self, graph, st: Step) -> List[str]:
        return []


def crop_windows(sizes, target) -> Tuple[Window, ...]:
    """A center crop as index maps: output o reads input o + ⌊(i − t)/2⌋."""
    return tuple(Window("conv", i, t, pad=-((i - t) // 2)) for i, t in zip(sizes, target))


class Save(GraphLayer):
    kind = "save"

    def graph_steps(self, graph):
        shape = graph.shape(graph.cur)
        return [Step(shape, shape, allocates=False, inputs=((graph.cur, ()),))]

    def explain_graph(self, graph, st):
        return [f"names {fmt_shape(st.output_shape)} '{self.spec['name']}'"]


class From(GraphLayer):
    kind = "from"

    def graph_steps(self, graph):
        src = graph.lookup(self.spec["name"])
        shape = graph.shape(src)
        return [Step(shape, shape, allocates=False, inputs=((src, ()),))]

    def explain_graph(self, graph, st):
        return [f"continues from {graph.label(st.inputs[0][0])}: {fmt_shape(st.output_shape)}"]


def broadcast_shape(a: Shape, b: Shape) -> Optional[Shape]:
    """PyTorch's broadcasting: dims aligned from the right, each pair equal or one
    of them 1; None when the shapes cannot broadcast."""
    if a == b:  # a residual: every dim equal
        return a
    out = []
    for j in range(1, max(len(a), len(b)) + 1):
        x = a[-j] if j <= len(a) else 1
        y = b[-j] if j <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out[::-1])


def broadcast_windows(shape: Shape, out: Shape) -> Tuple[Window, ...]:
    """How a broadcast input is read along the output's spatial dims: a dim it
    has whole keeps positions; a size-1 (or missing) dim is read at 0 by every
    output (stride 0).  () when it keeps every position."""
    if shape == out:
        return ()
    lead = len(out) - len(shape)
    windows = []
    for j in range(2, len(out)):
        size = shape[j - lead] if j >= lead else 1
        windows.append(Window("conv", size, out[j]) if size == out[j]
                       else Window("conv", 1, out[j], stride=0))
    return () if all(w.stride == 1 for w in windows) and lead == 0 else tuple(windows)


class Elementwise(GraphLayer):
    """``x + a`` / ``x * a``: broadcasting as PyTorch does (a residual, an SE gate)."""

    kind = "add"
    symbol = "+"

    def graph_steps(self, graph):
        cur = graph.cur
        first = graph.shape(cur)
        shape = first
        srcs = [cur] + [graph.lookup(name) for name in self.spec["names"]]
        for src in srcs[1:]:
            other = graph.shape(src)
            joined = broadcast_shape(shape, other)
            if joined is None:
                raise ShapeError(f"{self.kind}: {fmt_shape(shape)} (the current tensor) vs "
                                 f"{fmt_shape(other)} ({graph.label(src)}) cannot broadcast",
                                 hint=graph.drift(cur, src))
            shape = joined
        inputs = tuple((src, broadcast_windows(graph.shape(src), shape)) for src in srcs)
        return [Step(first, shape, inputs=inputs)]

    def explain_graph(self, graph, st):
        return [f" {self.symbol} ".join(fmt_shape(graph.shape(p)) for p, _ in st.inputs)
                + f" = {fmt_shape(st.output_shape)} (elementwise, broadcasting; no MACs counted)"]


class Add(Elementwise):
    kind = "add"


class Mul(Elementwise):
    kind = "mul"
    symbol = "·"


class Concat(GraphLayer):
    """Channel concatenation [current, named…]; ``crop`` center-crops the
    named tensors to the current spatial size first (the U-Net of 2015)."""

    kind = "concat"

    def graph_steps(self, graph):
        cur = graph.cur
        shape = graph.shape(cur)
        if len(shape) < 3:
            raise ShapeError(f"concat joins along channels of spatial tensors, got "
                             f"{fmt_shape(shape)}")
        inputs = [(cur, ())]
        channels = shape[1]
        for name in self.spec["names"]:
            src = graph.lookup(name)
            other = graph.shape(src)
            windows: Tuple[Window, ...] = ()
            if len(other) != len(shape) or other[0] != shape[0]:
                raise ShapeError(f"concat: {fmt_shape(shape)} (the current tensor) vs "
                                 f"{fmt_shape(other)} ({graph.label(src)}): batch and rank must "
                                 f"agree")
            if self.spec["crop"]:
                if any(o < t for o, t in zip(other[2:], shape[2:])):
                    raise ShapeError(f"concat: cannot crop {fmt_shape(other)} "
                                     f"({graph.label(src)}) to the smaller current "
                                     f"{fmt_shape(shape)}", hint=graph.drift(cur, src))
                windows = crop_windows(other[2:], shape[2:])
            elif other[2:] != shape[2:]:
                raise ShapeError(f"concat: {fmt_shape(shape)} (the current tensor) vs "
                                 f"{fmt_shape(other)} ({graph.label(src)})",
                                 hint=graph.drift(cur, src))
            channels += other[1]
            inputs.append((src, windows))
        out = (shape[0], channels, *shape[2:])
        return [Step(shape, out, inputs=tuple(inputs))]

    def explain_graph(self, graph, st):
        lines = ["channels " + " + ".join(str(graph.shape(p)[1]) for p, _ in st.inputs)
                 + f" = {st.output_shape[1]}"]
        for p, w in st.inputs[1:]:
            if w:
                lines.append(f"crop {graph.label(p)} {fmt_shape(graph.shape(p)[2:])} → "
                             f"{fmt_shape(st.output_shape[2:])}: offset ⌊(i − t)/2⌋ = "
                             f"{fmt_shape(-x.pad for x in w)}")
        return lines


class Crop(GraphLayer):
    kind = "crop"

    def graph_steps(self, graph):
        cur = graph.cur
        shape = graph.shape(cur)
        src = graph.lookup(self.spec["name"])
        target = graph.shape(src)
        if len(target) != len(shape) or len(shape) < 3:
            raise ShapeError(f"crop: {fmt_shape(shape)} and {fmt_shape(target)} "
                             f"({graph.label(src)}) need the same spatial rank")
        if any(i < t for i, t in zip(shape[2:], target[2:])):
            raise ShapeError(f"crop: the current {fmt_shape(shape)} is smaller than "
                             f"{fmt_shape(target)} ({graph.label(src)})")
        out = (*shape[:2], *target[2:])
        return [Step(shape, out, allocates=False,
                     inputs=((cur, crop_windows(shape[2:], target[2:])),))]

    def explain_graph(self, graph, st):
        w = st.inputs[0][1]
        return [f"center crop {fmt_shape(st.input_shape[2:])} → {fmt_shape(st.output_shape[2:])}: "
                f"offset ⌊(i − t)/2⌋ = {fmt_shape(-x.pad for x in w)} (a view: allocates nothing)"]


LAYER_CLASSES: Dict[str, Type[Layer]] = {
    cls.kind: cls for cls in (Conv, SepConv, TConv, Up, MaxPool, AvgPool, AdaptiveAvgPool,
                              AdaptiveMaxPool, GlobalAvgPool, BatchNorm, Activation, Dropout,
                              Flatten, Linear, LayerNorm, LayerNorm2d, GroupNorm, InstanceNorm,
                              Permute, LayerScale, DropPath, ChannelDropout, ChannelShuffle,
                              Chunk, PixelShuffle, PixelUnshuffle, Pad, Softmax, LogSoftmax,
                              Save, From, Add, Mul, Concat, Crop)
}
# the rest of the dropout family: one class, identity at inference
LAYER_CLASSES.update(dict.fromkeys(("dropout2d", "dropout3d", "alphadropout",
                                    "featurealphadropout"), ChannelDropout))


def build(spec: LayerSpec) -> Layer:
    """The layer object for a parsed token; static rule errors carry its position."""
    try:
        return LAYER_CLASSES[spec.kind](spec)
    except StackSyntaxError as e:
        raise e.located(spec.index, spec.text)
