"""``--verify``: run the real ops on NumPy and confirm what the analysis says.

Three checks, layer by layer:

* **shapes** -- the stack runs on seeded random data through
  :mod:`convcalc.ops` (PyTorch's ops, re-implemented on NumPy) and every
  output shape must equal the analysis row's;
* **params** -- the weight, bias and affine tensors the ops are given are
  built from the layer's definition, and their sizes must add up to the
  row's params;
* **receptive field** -- an impulse response: a one-channel input that is 0
  everywhere but one position runs through every layer with all weights 1
  (positive: nothing cancels), and the set of output positions that become
  nonzero must equal the set the analysis' exact index maps predict.
  Position-wise layers (norms, activations, dropout) cannot move an impulse,
  so the mask passes them unchanged.

numpy is imported here and nowhere else the CLI loads without ``--verify``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from . import receptive
from .analysis import Analysis, Row, _keeps_local, _standard
from .errors import ShapeError
from .language import parse_token
from .layers import Layer, build

DEFAULT_MAX_MEMORY = 2 * 1024 ** 3
GRAPH_KINDS = ("save", "from", "add", "mul", "concat", "crop")
# layers that never move a position (the mask passes them unchanged)
POSITIONWISE = ("bn", "act", "dropout", "flatten", "linear", "ln", "ln2d", "gn", "instnorm",
                "permute", "layerscale", "droppath", "dropout1d", "dropout2d", "dropout3d",
                "alphadropout", "featurealphadropout", "shuffle", "chunk", "softmax",
                "logsoftmax", "save", "from", "add", "mul", "concat")


def _crop(x, windows):
    """A tensor through crop windows (output o reads o + offset); () keeps it."""
    if not windows:
        return x
    idx = (slice(None), slice(None)) + tuple(slice(-w.pad, -w.pad + w.out_size) for w in windows)
    return x[idx]


@dataclass
class Verification:
    shapes: bool = True
    params: bool = True
    receptive_field: bool = True
    seconds: float = 0.0
    layers: int = 0  # rows run
    tensors: int = 0  # parameter tensors built
    impulses: int = 0  # impulse positions traced
    dependencies: int = 0  # statistics layers whose dependency claim was checked on the op
    dependency_runs: int = 0  # of those, the distinct ones run (the others are their twins)
    rf_layers: int = 0  # rows whose impulse response was compared
    failures: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # findings that are not disagreements

    @property
    def ok(self) -> bool:
        return self.shapes and self.params and self.receptive_field

    def to_dict(self) -> dict:
        d = {"shapes": self.shapes, "params": self.params,
             "receptive_field": self.receptive_field, "seconds": round(self.seconds, 3)}
        if self.failures:
            d["failures"] = list(self.failures)
        if self.notes:
            d["notes"] = list(self.notes)
        return d

    def fail(self, what: str, row: Row, message: str) -> None:
        setattr(self, what, False)
        self.failures.append(f"layer {row.index} ({row.spec}{f', {row.part}' if row.part else ''})"
                             f": {message}")


# ---------------------------------------------------------------------------
# memory guard
# ---------------------------------------------------------------------------

DATA, MASK = 4, 8  # bytes per element: the data runs in float32, the impulse masks in float64


def _padded(row: Row) -> Tuple[int, ...]:
    """The spatial sizes a windowed layer reads, its padding included (the
    largest of input, padded input and output per dim)."""
    pads = row.padding or ((0, 0),) * len(row.input_shape[2:])
    ins = row.input_shape[2:]
    outs = row.output_shape[2:] if len(row.output_shape) == len(row.input_shape) else ins
    return tuple(max(i + b + a, o) for i, (b, a), o in zip(ins, pads, outs))


def _working(row: Row) -> Tuple[int, int]:
    """(bytes the data run of ``row`` allocates beyond its inputs, bytes the
    impulse run allocates per start beyond its input mask), from how :mod:`convcalc.ops`
    computes it: a convolution's padded input, im2col matrix and two copies
    of its output; a transposed conv's zero-inserted buffer; a pool's or an
    interpolation's per-axis intermediates (bicubic: four taps); a
    statistics layer's two float64 reruns for the dependency check."""
    ins, outs = math.prod(row.input_shape), math.prod(row.output_shape)
    N, C = row.input_shape[:2]
    spatial_out = math.prod(row.output_shape[2:]) if len(row.output_shape) > 2 else 1
    widest = math.prod(_padded(row)) if len(row.input_shape) > 2 else 1
    kind = row.kind
    taps = math.prod(w.k for w in row.windows) if row.windows else 1
    if kind in ("conv", "sepconv") and row.part != "pointwise":
        data = N * C * widest + C * taps * N * spatial_out + 2 * outs
        return DATA * data, MASK * (widest + taps * spatial_out + 3 * spatial_out)
    if kind in ("conv", "sepconv"):  # the pointwise half: a 1x1 conv
        return DATA * (2 * ins + 2 * outs), MASK * 3 * spatial_out
    if kind == "tconv":
        strides = math.prod(w.stride for w in row.windows) if row.windows else 1
        buf = math.prod(row.input_shape[2:]) * strides + widest  # zero-inserted and padded
        data = 2 * N * C * buf + C * taps * N * spatial_out + 2 * outs
        return DATA * data, MASK * (2 * buf + taps * spatial_out + 3 * spatial_out)
    if kind in ("maxpool", "avgpool", "up", "aavgpool", "amaxpool", "gap"):
        steps = 6 if kind in ("up", "aavgpool", "amaxpool") else 4  # bicubic's four taps
        return DATA * (steps * N * C * widest + outs), MASK * ((steps + 3) * widest)
    if kind in STATISTICS:  # the op, then the dependency check's float64 copies and reruns
        return DATA * 6 * outs + MASK * 14 * ins, MASK * 3 * spatial_out
    if kind == "pixelshuffle":
        return DATA * 3 * outs, MASK * (3 * spatial_out + taps * spatial_out)
    if kind == "act":  # gelu's erf, mish, softplus: float64 temporaries
        return DATA * 14 * outs, MASK * 3 * spatial_out
    return DATA * 3 * max(ins, outs), MASK * 3 * spatial_out


def _held(shape, impulses: int) -> int:
    """Bytes a row's output keeps while later rows read it: the data and the
    impulse masks (one channel each)."""
    spatial = math.prod(shape[2:]) if len(shape) > 2 else 0
    return DATA * math.prod(shape) + impulses * MASK * spatial


# what the counts above leave out (index arrays, the impulse predictions'
# position sets, the interpreter's own objects): a share and a constant
MARGIN, OVERHEAD = 1.25, 4 * 2 ** 20
POOL = 2 ** 20 - 1  # the weights' pool of draws (odd: tensors rarely start at the same value)
TILES = 4  # the pool laid end to end this often, for weights read in place


def peak_bytes(a: Analysis) -> int:
    """The most memory a --verify run holds at once, an upper bound: every
    output still to be read by a later row (``save:``/``from:`` keep theirs
    alive) with its impulse masks, plus the working memory of the row that
    runs (:func:`_working`), with a margin.  The tests measure the real peak
    against it."""
    impulses = len(impulse_positions(a.input_shape)) if len(a.input_shape) > 2 else 0
    last_use = {src: pos for pos, row in enumerate(a.layers) for src, _ in row.inputs}
    # the input is drawn in float64 and converted: 12 bytes an element at the start
    live = {-1: _held(a.input_shape, impulses)}
    pool = DATA * POOL * (1 + TILES)  # the weights' pool, and laid end to end
    peak = live[-1] + (DATA + MASK) * math.prod(a.input_shape) + pool
    held = live[-1] + pool  # they live through the run
    for pos, row in enumerate(a.layers):
        data, mask = _working(row)
        out = _held(row.output_shape, impulses)
        params = DATA * (row.params + row.buffers)
        # the impulse run takes every start at once, along the batch dim
        peak = max(peak, held + params + max(data, DATA * math.prod(row.output_shape)
                                                 + max(impulses, 1) * mask))
        live[pos] = out
        held += out
        for src in {s for s, _ in row.inputs} | {pos}:
            if last_use.get(src, -2) <= pos and src in live:
                held -= live.pop(src)
        peak = max(peak, held)
    return int(peak * MARGIN) + OVERHEAD


# ---------------------------------------------------------------------------
# running one row
# ---------------------------------------------------------------------------

def _scaled(y, scale: float):
    """An op's fresh output times the 1/√fan-in its weights were not given."""
    if scale != 1.0:
        y *= y.dtype.type(scale)
    return y


class _Runner:
    """Runs one analysis row with :mod:`convcalc.ops`; builds its parameters."""

    def __init__(self, np, ops, rng):
        self.np, self.ops, self.rng = np, ops, rng
        self.pool, self.offset, self.tiled = None, 0, None

    def _take(self, shape) -> Tuple[int, int, float]:
        """(where the next tensor starts in the pool, its size, 1/√fan-in)."""
        np = self.np
        if self.pool is None:
            # rng.random(POOL, dtype=float32) * 2 - 1, value for value, in half
            # its time: NumPy makes each float32 of the top 24 bits of a 32-bit
            # word, the low half of each 64-bit draw first
            raw = self.rng.bit_generator.random_raw((POOL + 1) // 2)
            bits = np.ascontiguousarray(raw, dtype="<u8").view("<u4")[:POOL]
            self.pool = (bits >> 8).astype(np.float32)
            self.pool *= np.float32(2 ** -23)
            self.pool -= 1
        n = math.prod(shape)
        scale = 1 / math.sqrt(math.prod(shape[1:])) if len(shape) > 1 else 1.0
        start = self.offset
        self.offset = (start + n) % POOL
        return start, n, scale

    def weights(self, *shape):
        """Uniform weights scaled by 1/√fan-in, so activations keep their size
        through deep stacks instead of overflowing float32.

        The values come from one seeded pool of POOL uniform draws in [-1, 1),
        read from a running offset (wrapping round): the check needs tensors
        of the right shapes holding varied data, and drawing ResNet-50's
        25.6 M values afresh took a third of the whole --verify."""
        start, n, scale = self._take(shape)
        return self._copy(start, n, scale).reshape(shape)

    def _copy(self, start: int, n: int, scale: float):
        np = self.np
        w = np.empty(n, dtype=np.float32)
        done = 0
        while done < n:  # scaled straight into place: one pass, however often it wraps
            take = min(n - done, POOL - start)
            np.multiply(self.pool[start:start + take], np.float32(scale), out=w[done:done + take])
            done, start = done + take, 0
        return w

    def raw(self, *shape):
        """(the weights :meth:`weights` would give, unscaled, and their scale)
        for a layer that applies the scale to its output instead: a read-only
        view of the pool laid TILES times end to end, so that no tensor up to
        (TILES − 1)·POOL values is copied (ResNet-50's 25.6 M weights were a
        tenth of its --verify; its output is smaller), else a copy."""
        np = self.np
        start, n, scale = self._take(shape)
        if start + n > TILES * POOL:
            return self._copy(start, n, 1.0).reshape(shape), scale
        if self.tiled is None:
            self.tiled = np.tile(self.pool, TILES)
            self.tiled.flags.writeable = False
        return self.tiled[start:start + n].reshape(shape), scale

    def layer_weights(self, row: Row, shape, bias: int):
        """(weight, bias or None, the factor the output still needs) for a
        conv, transposed conv or linear row: the 1/√fan-in goes on the
        smaller of the weight (a scaled copy) and the row's output (the weight
        read in place, the output scaled after the op)."""
        w, scale = self.raw(*shape)
        b = self.raw(bias)[0] if bias else None
        if w.size > math.prod(row.output_shape):
            return w, b, scale
        f = self.np.float32(scale)
        return w * f, (None if b is None else b * f), 1.0

    def run(self, row: Row, layer: Layer, xs) -> Tuple[object, List[object]]:
        """(output, parameter tensors) of one row on its inputs."""
        sp = layer.spec
        kind = row.kind
        ops = self.ops
        if kind in GRAPH_KINDS:
            return self.join(row, xs), []
        x = xs[0]
        n = x.ndim - 2
        if kind in NEW_RUNNERS:
            return NEW_RUNNERS[kind](self, row, layer, xs)
        if kind in ("conv", "sepconv"):
            ks, ss, ds, pairs = layer.geometry(row.input_shape)
            C = x.shape[1]
            if row.part == "pointwise":
                w, b, scale = self.layer_weights(row, (sp["out"], C, *(1,) * n),
                                                 sp["out"] if sp["bias"] else 0)
                return _scaled(ops.conv(x, w, b), scale), [t for t in (w, b) if t is not None]
            if kind == "sepconv":
                out, groups, bias = C * sp["mult"], C, sp["dbias"]
            else:
                out, groups, bias = sp["out"], sp["g"], sp["bias"]
            w, b, scale = self.layer_weights(row, (out, C // groups, *ks), out if bias else 0)
            y = ops.conv(x, w, b, ss, pairs, ds, groups, sp["pm"])
            return _scaled(y, scale), [t for t in (w, b) if t is not None]
        if kind == "tconv":
            layer = layer.bind(lambda _: row.output_shape)
            ks, ss, ds, pairs, opad, _, _ = layer.geometry(row.input_shape)
            w, b, scale = self.layer_weights(row, (x.shape[1], sp["out"] // sp["g"], *ks),
                                             sp["out"] if sp["bias"] else 0)
            y = ops.conv_transpose(x, w, b, ss, pairs, opad, sp["g"], ds)
            return _scaled(y, scale), [t for t in (w, b) if t is not None]
        if kind == "up":
            ac = sp["align_corners"] if sp["mode"] in ("linear", "bilinear", "bicubic",
                                                       "trilinear") else None
            if sp["size"] is not None:
                y = ops.interpolate(x, size=tuple(row.output_shape[2:]), mode=sp["mode"],
                                    align_corners=ac)
            else:
                y = ops.interpolate(x, scale_factor=layer.per_dim("scale", n), mode=sp["mode"],
                                    align_corners=ac)
            return y, []
        if kind in ("maxpool", "avgpool"):
            ks, ss, ds, pairs, _ = layer.geometry(row.input_shape)
            if kind == "maxpool":
                return ops.max_pool(x, ks, ss, pairs, ds, sp["ceil"]), []
            return ops.avg_pool(x, ks, ss, pairs, sp["ceil"], sp["count_include_pad"]), []
        if kind in ("aavgpool", "gap"):
            return ops.adaptive_avg_pool(x, tuple(row.output_shape[2:])), []
        if kind == "amaxpool":
            return ops.adaptive_max_pool(x, tuple(row.output_shape[2:])), []
        if kind == "act":
            return getattr(ops, sp["name"])(x), []
        if kind == "dropout":
            return ops.dropout(x, sp["p"], training=False), []
        if kind == "flatten":
            return ops.flatten(x, 1), []
        if kind == "linear":
            w, b, scale = self.layer_weights(row, (sp["out"], x.shape[-1]),
                                             sp["out"] if sp["bias"] else 0)
            return _scaled(ops.linear(x, w, b), scale), [t for t in (w, b) if t is not None]
        raise ValueError(f"no runner for {kind}")  # pragma: no cover

    def join(self, row: Row, xs):
        """Graph rows: name, continue, add and multiply (broadcasting),
        concatenate (cropping), crop."""
        if row.kind in ("add", "mul"):
            out = xs[0]
            for x in xs[1:]:
                out = out + x if row.kind == "add" else out * x
            return out
        parts = [_crop(x, w) for x, (_, w) in zip(xs, row.inputs)]
        if row.kind == "concat":
            return self.np.concatenate(parts, axis=1)
        return parts[0]

    def impulse(self, row: Row, layer: Layer, ms):
        """The same layer on one-channel nonnegative masks, every weight 1.
        ``ms`` holds the masks of the inputs that keep positions (None for the
        others: a broadcast gate, a globally pooled tensor)."""
        ops, np = self.ops, self.np
        sp, kind = layer.spec, row.kind
        if kind in GRAPH_KINDS:  # channels of a concat share positions: add the masks
            parts = [_crop(m, w) for m, (_, w) in zip(ms, row.inputs) if m is not None]
            return sum(parts[1:], parts[0])
        m = ms[0]
        if kind == "pixelshuffle":
            r = sp["r"]
            return ops.pixel_shuffle(np.repeat(m, r * r, axis=1), r)
        if kind == "pixelunshuffle":
            return ops.pixel_unshuffle(m, sp["r"]).sum(axis=1, keepdims=True)
        if kind == "pad":
            return ops.pad(m, _fpad(row.padding), _PAD_MODE[sp["mode"]])
        if kind in ("conv", "sepconv"):
            if row.part == "pointwise":
                return m
            ks, ss, ds, pairs = layer.geometry(row.input_shape)
            if all(k == 1 for k in ks) and all(s == 1 for s in ss) and not any(map(any, pairs)):
                return m  # one tap of weight 1 at every position: the mask itself
            return ops.conv(m, np.ones((1, 1, *ks)), None, ss, pairs, ds, 1, sp["pm"])
        if kind == "tconv":
            layer = layer.bind(lambda _: row.output_shape)
            ks, ss, ds, pairs, opad, _, _ = layer.geometry(row.input_shape)
            return ops.conv_transpose(m, np.ones((1, 1, *ks)), None, ss, pairs, opad, 1, ds)
        if kind in ("maxpool", "avgpool", "up", "aavgpool", "amaxpool"):
            y, _ = self.run(row, layer, [m])
            # a dilated max-pool window that lies wholly in the padding gives −inf,
            # which no input reaches; bicubic weights can be negative
            return np.where(np.isfinite(y), np.abs(y), 0.0)
        return m  # position-wise layers


# ---------------------------------------------------------------------------
# the kinds of SPEC §3b
# ---------------------------------------------------------------------------

_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
             "circular": "circular"}


def _fpad(pairs) -> List[int]:
    """(before, after) per spatial dim, in F.pad's order: the last dim first."""
    return [v for b, a in reversed(pairs) for v in (b, a)]


def _statistic(fn):
    """A runner for a layer whose outputs read statistics over some dims: it
    keeps the op (same weights) so the dependency check can run it again."""
    def run(self, row, layer, xs):
        op, tensors = fn(self, layer.spec, xs[0])
        self.last_op = op
        return op(xs[0]), tensors
    return run


def _affine(self, shape, on: bool):
    return (self.weights(*shape), self.weights(*shape)) if on else (None, None)


@_statistic
def _run_ln(self, sp, x):
    norm = x.shape[x.ndim - sp["dims"]:]
    w, b = _affine(self, norm, sp["affine"])
    if not sp["bias"]:
        b = None
    return (lambda v: self.ops.layer_norm(v, norm, w, b, sp["eps"])), [t for t in (w, b)
                                                                       if t is not None]


@_statistic
def _run_ln2d(self, sp, x):
    np = self.np
    w, b = _affine(self, (x.shape[1],), sp["affine"])

    def op(v):
        last = np.moveaxis(v, 1, -1)
        return np.moveaxis(self.ops.layer_norm(last, (v.shape[1],), w, b, sp["eps"]), -1, 1)
    return op, [t for t in (w, b) if t is not None]


@_statistic
def _run_gn(self, sp, x):
    w, b = _affine(self, (x.shape[1],), sp["affine"])
    return (lambda v: self.ops.group_norm(v, sp["g"], w, b, sp["eps"])), \
        [t for t in (w, b) if t is not None]


@_statistic
def _run_instnorm(self, sp, x):
    np = self.np
    C = x.shape[1]
    w, b = _affine(self, (C,), sp["affine"])
    mean, var = (np.zeros(C, np.float32), np.ones(C, np.float32)) if sp["track"] else (None, None)
    op = (lambda v: self.ops.instance_norm(v, mean, var, w, b, not sp["track"], sp["momentum"],
                                           sp["eps"]))
    return op, [t for t in (w, b) if t is not None]


@_statistic
def _run_softmax(self, sp, x):
    f = self.ops.softmax if sp.kind == "softmax" else self.ops.log_softmax
    return (lambda v: f(v, sp["dim"])), []


@_statistic
def _run_bn(self, sp, x):
    np = self.np
    C = x.shape[1]
    w, b = _affine(self, (C,), sp["affine"])
    mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)
    return (lambda v: self.ops.batch_norm(v, mean, var, w, b, False, sp["momentum"], sp["eps"])), \
        [t for t in (w, b) if t is not None]


def _run_layerscale(self, row, layer, xs):
    x = xs[0]
    gamma = self.weights(x.shape[1], *(1,) * (x.ndim - 2))
    return x * gamma, [gamma]


def _run_chunk(self, row, layer, xs):
    x = xs[0]
    sizes = layer.sizes(x.shape[1])
    i = layer.spec["i"] % len(sizes)
    start = sum(sizes[:i])
    return x[:, start:start + sizes[i]], []


NEW_RUNNERS = {
    "ln": _run_ln, "ln2d": _run_ln2d, "gn": _run_gn, "instnorm": _run_instnorm,
    "softmax": _run_softmax, "logsoftmax": _run_softmax, "bn": _run_bn,
    "layerscale": _run_layerscale, "chunk": _run_chunk,
    "permute": lambda self, row, layer, xs: (self.np.transpose(xs[0], row_permutation(layer, xs[0])),
                                             []),
    "shuffle": lambda self, row, layer, xs: (self.ops.channel_shuffle(xs[0], layer.spec["g"]), []),
    "pixelshuffle": lambda self, row, layer, xs: (self.ops.pixel_shuffle(xs[0], layer.spec["r"]),
                                                  []),
    "pixelunshuffle": lambda self, row, layer, xs: (
        self.ops.pixel_unshuffle(xs[0], layer.spec["r"]), []),
    "pad": lambda self, row, layer, xs: (
        self.ops.pad(xs[0], _fpad(row.padding), _PAD_MODE[layer.spec["mode"]],
                     layer.spec["value"] if layer.spec["mode"] == "zeros" else None), []),
    **{k: (lambda self, row, layer, xs: (xs[0], []))
       for k in ("droppath", "dropout1d", "dropout2d", "dropout3d", "alphadropout",
                 "featurealphadropout")},
}
NEIGHBOURS = 5  # the dependency check's window along the dims a layer does not mix
STATISTICS = ("bn", "ln", "ln2d", "gn", "instnorm", "softmax", "logsoftmax")


def row_permutation(layer: Layer, x) -> Tuple[int, ...]:
    return tuple(d % x.ndim for d in layer.spec["dims"])


def _moved(np, op, x, spatial):
    """Which outputs of ``op`` change when ``x`` changes at the center of its
    ``spatial`` axes, in every channel (float64, so a change in a mean over
    many positions still shows)."""
    # one memory layout for both runs: NumPy's sums round differently per layout
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    idx = tuple(x.shape[j] // 2 if j in spatial else slice(None) for j in range(x.ndim))
    bumped = x64.copy()
    # a different change per channel: norms and softmax ignore a uniform shift
    bumped[idx] += 1.0 + np.arange(bumped[idx].size).reshape(bumped[idx].shape)
    return op(bumped) != op(x64)


def _claimed(np, op, x, row: Row, spatial):
    """(the spatial positions that moved, those the row's claim allows, the
    changed position) for ``op`` on ``x``; None when nothing moved (a
    normalized group of one value: the output is a constant)."""
    moved = _moved(np, op, x, [j for j, _ in spatial])
    if not moved.any():
        return None
    center = {j: moved.shape[j] // 2 for j, _ in spatial}
    other = tuple(j for j in range(x.ndim) if j not in center)
    got = moved.any(axis=other)  # over the spatial dims, in layout order
    order = [a for _, a in spatial]
    got = np.transpose(got, np.argsort(order))
    want = np.ones(got.shape, dtype=bool)
    for d in range(got.ndim):
        if d not in row.mixes:
            sel = np.zeros(got.shape[d], dtype=bool)
            sel[center[spatial[order.index(d)][0]]] = True
            want &= sel.reshape([-1 if k == d else 1 for k in range(got.ndim)])
    return got, want, center


def _dependency(np, runner: "_Runner", result: "Verification", row: Row, x, y,
                in_axes: Tuple) -> bool:
    """Prove a statistics layer's dependency claim on the real op: change the
    input at one position (every channel) and see which outputs move (float64,
    so a change in a mean over many positions still shows).  A mixing layer
    must move every position along the dims it mixes; the others, only the
    changed position.  False when the layer could not be checked."""
    spatial = [(j, a) for j, a in enumerate(in_axes) if isinstance(a, int)]
    if not spatial:
        return False
    # along a dim the claim says is not mixed, a window of NEIGHBOURS around
    # the changed position shows any leak as well as the whole dim does, at a
    # fraction of the cost (ResNet-50's 53 batch norms ran at full size); a
    # disagreement is measured again on the whole input for the message
    crop = tuple(slice(None) if not (isinstance(a, int) and a not in row.mixes)
                 or x.shape[j] <= NEIGHBOURS
                 else slice(x.shape[j] // 2 - NEIGHBOURS // 2,
                            x.shape[j] // 2 - NEIGHBOURS // 2 + NEIGHBOURS)
                 for j, a in enumerate(in_axes))
    whole = (slice(None),) * x.ndim
    found = None
    for window in [crop] + ([whole] if crop != whole else []):
        try:
            found = _claimed(np, runner.last_op, x[window], row, spatial)
        except ValueError:  # an op whose parameters are shaped by a dim it was said not to mix
            continue
        if found is not None and np.array_equal(found[0], found[1]):
            return True
    if found is None:
        return False
    got, want, center = found
    claim = "every position along the dims it mixes" if row.mixes else "only that position"
    result.fail("receptive_field", row,
                f"changing input position {','.join(str(center[j]) for j, _ in spatial)} "
                f"moved {int(got.sum()):,} output positions; the analysis claims {claim} "
                f"({int(want.sum()):,})")
    return True


# ---------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------

def impulse_positions(shape) -> List[Tuple[int, ...]]:
    """The input's center and its first corner (the border is where padding bites)."""
    spatial = shape[2:]
    center = tuple(n // 2 for n in spatial)
    corner = tuple(0 for _ in spatial)
    return [center] if center == corner else [center, corner]


def verify(a: Analysis, seed: int = 0, max_memory: int = DEFAULT_MAX_MEMORY) -> Verification:
    """Run the stack on NumPy and compare shapes, params and receptive fields."""
    need = peak_bytes(a)
    if need > max_memory:
        raise over_budget("--verify", need, max_memory)
    import numpy as np

    from . import ops
    t0 = time.perf_counter()
    result = Verification()
    runner = _Runner(np, ops, np.random.default_rng(seed))

    values = {-1: runner.rng.standard_normal(a.input_shape).astype(np.float32)}
    axes = {-1: _standard(len(a.input_shape))}
    starts = impulse_positions(a.input_shape) if len(a.input_shape) > 2 else []
    # one mask per start along the batch dim: every row runs once for all of them
    masks, predicted = {}, []
    if starts:
        masks[-1] = np.zeros((len(starts), 1, *a.input_shape[2:]))
    for j, p in enumerate(starts):
        masks[-1][(j, 0) + p] = 1.0
        predicted.append({-1: [tuple(frozenset([u]) for u in p)]})
    result.impulses = len(starts)
    overflowed = False
    with np.errstate(all="ignore"):  # overflow is a finding (notes), never a warning line
        _run_rows(np, a, runner, result, values, axes, starts, masks, predicted, overflowed)
    result.seconds = time.perf_counter() - t0
    return result


def _run_rows(np, a, runner, result, values, axes, starts, masks, predicted, overflowed):
    # one layer per token text: the analysis has parsed every token already,
    # so the index (there for error messages) cannot matter here
    layers: Dict[str, Layer] = {}
    proven: Dict[tuple, bool] = {}  # dependency claims checked, by layer and input shape
    finite_at = {-1: True}  # whether each live tensor is free of inf and nan
    last_use = {src: pos for pos, row in enumerate(a.layers) for src, _ in row.inputs}
    for pos, row in enumerate(a.layers):
        if row.spec not in layers:
            layers[row.spec] = build(parse_token(row.spec, row.index))
        layer = layers[row.spec]
        xs = [values[src] for src, _ in row.inputs]
        y, tensors = runner.run(row, layer, xs)
        result.layers += 1
        result.tensors += len(tensors)
        if tuple(y.shape) != tuple(row.output_shape):
            result.fail("shapes", row, f"analysis says {_shape(row.output_shape)}, the op gave "
                                       f"{_shape(y.shape)}")
            break  # later layers would run on the wrong shape
        count = sum(int(t.size) for t in tensors)
        if count != row.params:
            result.fail("params", row, f"analysis says {row.params:,} params, the op's tensors "
                                       f"hold {count:,}")
        values[pos] = y
        # a layer that cannot make a finite tensor infinite need not be scanned
        # (46 M values through ResNet-50: a tenth of the whole check)
        finite = all(finite_at[src] for src, _ in row.inputs) and _keeps_finite(row, layer) \
            or bool(np.isfinite(y).all())
        finite_at[pos] = finite
        if not finite and not overflowed:
            overflowed = True
            result.notes.append(f"layer {row.index} ({row.spec}): the random data overflows "
                                f"float32 here (inf or nan from this layer on); shapes, params "
                                f"and receptive fields are still checked")
        in_axes = axes[row.inputs[0][0]]
        if row.kind in STATISTICS and len(row.input_shape) > 2 and finite and \
                all(w is not None for _, w in row.inputs):
            # which outputs move is the op's structure at that shape, whatever
            # the random data: a layer like one already proven is that proof
            twin = (row.spec, tuple(row.input_shape), in_axes, row.mixes)
            if twin not in proven:
                proven[twin] = _dependency(np, runner, result, row, xs[0], y, in_axes)
                result.dependency_runs += proven[twin]
            result.dependencies += proven[twin]
        axes[pos] = row.axes or _standard(y.ndim)
        # the masks follow the local field: the inputs that keep positions, a
        # norm's own position (its statistics are checked above)
        keep = [src if _keeps_local(w) else None for src, w in row.inputs]
        windowed = row.kind not in POSITIONWISE
        ins = [masks.get(src) if src is not None else None for src in keep]
        traced = bool(starts) and not (
            all(m is None for m in ins) or (windowed and in_axes != _standard(len(in_axes)))
            or any(w is None for _, w in row.inputs)  # no position-keeping path from here on
            or (ins[0] is None and row.kind not in GRAPH_KINDS))
        if traced:
            m = runner.impulse(row, layer, ins)
            # the input's own mask (a position-wise layer, a 1x1 window) is
            # scaled already; a new one is scaled to a top of 1 per start:
            # finite numbers, and zeros stay zeros
            same = m is ins[0]
            if same:
                masks[pos] = m
            else:
                top = m.reshape(len(m), -1).max(axis=1) if m.size else np.zeros(len(m))
                masks[pos] = m / np.where(top > 0, top, 1).reshape((-1,) + (1,) * (m.ndim - 1))
            fed = [(src, w) for (src, w), m_in in zip(row.inputs, ins) if m_in is not None]
            for j, pj in enumerate(predicted):
                # one input's prediction is simplified already (a join's union is not)
                pj[pos] = receptive.forward(pj[fed[0][0]], fed[0][1]) if len(fed) == 1 else \
                    receptive._simplify([prod for src, w in fed
                                         for prod in receptive.forward(pj[src], w)])
                # the same mask against the same prediction was compared where
                # it was made (the input's impulses are their prediction)
                if not (same and pj[pos] == pj[row.inputs[0][0]]):
                    _compare_impulse(np, result, row, starts[j], masks[pos][j, 0], pj[pos])
        result.rf_layers += traced
        for src in [s for s, _ in row.inputs] + [pos]:  # free what no later row reads
            if last_use.get(src, -2) <= pos:
                values.pop(src, None)
                masks.pop(src, None)
                finite_at.pop(src, None)
                for pj in predicted:
                    pj.pop(src, None)
        xs = y = ins = m = None  # nothing of this row outlives what the dicts keep


# finite in, finite out, whatever the values (leaky_relu's slope or selu's
# scale can overflow, a max-pool window of padding only is −inf)
KEEPS_FINITE = ("dropout", "flatten", "save", "from", "permute", "chunk", "shuffle", "crop",
                "pixelshuffle", "pixelunshuffle", "droppath", "dropout1d", "dropout2d",
                "dropout3d", "alphadropout", "featurealphadropout")
BOUNDED_ACTS = ("relu", "relu6", "hardtanh", "hardsigmoid", "sigmoid", "tanh", "identity")


def _keeps_finite(row: Row, layer: Layer) -> bool:
    # the check's batch norms have mean 0, variance 1 and |weight|, |bias| < 1:
    # |y| <= |x| + 1, which no finite float32 overflows (1 is below its ulp there)
    return row.kind in KEEPS_FINITE or row.kind == "bn" or \
        (row.kind == "act" and layer.spec["name"] in BOUNDED_ACTS)


def _compare_impulse(np, result: Verification, row: Row, start, mask, products) -> None:
    got = mask != 0
    if _is_box(np, got, products):
        return
    want = np.zeros(got.shape, dtype=bool)
    nd = got.ndim
    for prod in products:  # a product of per-dim sets: the outer AND of their masks
        box = True
        for d, (positions, n) in enumerate(zip(prod, got.shape)):
            box = box & _line(np, positions, n).reshape([n if k == d else 1 for k in range(nd)])
        want |= box
    if not np.array_equal(got, want):
        result.fail("receptive_field", row,
                    f"an impulse at input {','.join(map(str, start))} reaches "
                    f"{int(got.sum()):,} output positions (box {_box(np, got)}); the analysis "
                    f"predicts {int(want.sum()):,} (box {_box(np, want)})")


def _line(np, positions, n: int):
    line = np.zeros(n, dtype=bool)
    line[np.fromiter(positions, dtype=np.int64, count=len(positions))] = True
    return line


def _is_box(np, got, products) -> bool:
    """Whether ``got`` is exactly the one product predicted, without building
    it: its shadow on each dim is that dim's set, and it holds as many
    positions as the product (a subset of the box its shadows span, that
    large, is the box)."""
    if len(products) != 1 or got.ndim != len(products[0]):
        return False
    prod = products[0]
    if int(np.count_nonzero(got)) != math.prod(len(p) for p in prod):
        return False
    for d, (positions, n) in enumerate(zip(prod, got.shape)):
        others = tuple(k for k in range(got.ndim) if k != d)
        if not np.array_equal(got.any(axis=others) if others else got, _line(np, positions, n)):
            return False
    return True


def _box(np, b) -> str:
    idx = np.nonzero(b)
    if not idx[0].size:
        return "none"
    return " x ".join(f"{int(i.min())}..{int(i.max())}" for i in idx)


def _shape(shape) -> str:
    return "x".join(str(int(v)) for v in shape)


def over_budget(option: str, need: int, budget: int) -> ShapeError:
    """The refusal of a run whose estimated peak is over --max-memory."""
    return ShapeError(f"{option} would need about {_gib(need)} at its peak, over the "
                      f"--max-memory budget of {_gib(budget)}; raise the budget or use a "
                      f"smaller input")


def _gib(n: int) -> str:
    return f"{n / 1024 ** 3:.2f} GiB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.1f} MiB"

