"""Walk a stack from an input shape: one row per PyTorch layer, and the totals.

:func:`analyze` is the engine's front door.  It returns plain frozen
dataclasses; :meth:`Analysis.to_dict` is the JSON contract of SPEC.md §5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from . import receptive as rfmath
from .errors import ConvcalcError, ShapeError, StackSyntaxError
from .language import DTYPES, LayerSpec, parse_shape, parse_stack
from .layers import GraphLayer, Pairs, Shape, Window, build, fmt_shape
from .receptive import PathState, ReceptiveField

MIB = 1024 ** 2


@dataclass(frozen=True)
class Row:
    """One PyTorch layer: a token, or one half of a ``sepconv``."""

    index: int  # 1-based position of the token in the (expanded) stack
    kind: str
    spec: str
    part: Optional[str]  # "depthwise" / "pointwise" for sepconv, else None
    input_shape: Shape
    output_shape: Shape
    padding: Optional[Pairs]
    params: int
    buffers: int
    macs: int
    activation_bytes: int
    receptive_field: Optional[ReceptiveField]
    windows: Optional[Tuple[Window, ...]] = None  # how it indexes its input; None mixes all
    explain: Tuple[str, ...] = ()  # the formulas with numbers (analyze(explain=True))
    # the tensors it reads: (row position, or −1 for the network input; windows)
    inputs: Tuple[Tuple[int, Optional[Tuple[Window, ...]]], ...] = ()
    receptive_note: Optional[str] = None  # why there is no receptive field, if not "global"
    counted_flops: Optional[int] = None  # FLOPs as another tool counts them (--count)
    count_note: Optional[str] = None  # what that tool counted for this row

    @property
    def flops(self) -> int:
        return 2 * self.macs if self.counted_flops is None else self.counted_flops


class Totals(NamedTuple):
    params: int
    trainable_params: int
    buffers: int
    macs: int
    flops: int
    activation_bytes: int
    param_bytes: int


class Memory(NamedTuple):
    """torchsummary's four lines, in bytes (it prints MiB).

    The forward/backward pass is twice the activation bytes (outputs and
    their gradients), over every layer given except views and in-place ops.
    """

    input_bytes: int
    forward_backward_bytes: int
    param_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.input_bytes + self.forward_backward_bytes + self.param_bytes


@dataclass(frozen=True)
class Analysis:
    input_shape: Shape
    output_shape: Shape
    dtype: str
    layers: Tuple[Row, ...]
    totals: Totals
    memory: Memory
    receptive_field: Optional[ReceptiveField]
    receptive_note: Optional[str] = None
    count: str = "torch"  # whose MAC/FLOP convention the numbers follow

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "dtype": self.dtype,
            "layers": [row_dict(r) for r in self.layers],
            "totals": {"params": self.totals.params,
                       "trainable_params": self.totals.trainable_params,
                       "buffers": self.totals.buffers,
                       "macs": self.totals.macs, "flops": self.totals.flops,
                       "activation_bytes": self.totals.activation_bytes,
                       "param_bytes": self.totals.param_bytes},
            "memory": {"input_bytes": self.memory.input_bytes,
                       "forward_backward_bytes": self.memory.forward_backward_bytes,
                       "param_bytes": self.memory.param_bytes,
                       "total_bytes": self.memory.total_bytes},
            "receptive_field": rf_dict(self.receptive_field),
            **({"count": self.count} if self.count != "torch" else {}),
        }

    def rf_dict(self) -> dict:
        """The ``convcalc rf --format json`` document."""
        def layer(r: Row) -> dict:
            d = {"index": r.index, "kind": r.kind, "spec": r.spec}
            if r.part:
                d["part"] = r.part
            d.update(output_shape=list(r.output_shape),
                     receptive_field=rf_dict(r.receptive_field, full=True))
            return d
        return {"input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "layers": [layer(r) for r in self.layers],
                "receptive_field": rf_dict(self.receptive_field, full=True)}


def number(v: Fraction) -> Union[int, float]:
    """A Fraction as a JSON number: an int when whole."""
    return int(v) if v.denominator == 1 else float(v)


def rf_dict(rf: Optional[ReceptiveField], full: bool = False) -> Optional[dict]:
    """size, stride, padding (SPEC §5); with ``full`` also start and center."""
    if rf is None:
        return None
    d = {"size": list(rf.size), "stride": [number(s) for s in rf.stride],
         "padding": [number(p) for p in rf.padding]}
    if full:
        d.update(start=[number(v) for v in rf.start], center=[number(v) for v in rf.center])
    return d


def row_dict(r: Row) -> dict:
    """One layer of the JSON document (``explain`` only when it was asked for)."""
    d = {"index": r.index, "kind": r.kind, "spec": r.spec}
    if r.part:
        d["part"] = r.part
    d.update({"input_shape": list(r.input_shape), "output_shape": list(r.output_shape),
              "padding": None if r.padding is None else [list(p) for p in r.padding],
              "params": r.params, "buffers": r.buffers, "macs": r.macs, "flops": r.flops,
              "activation_bytes": r.activation_bytes,
              "receptive_field": rf_dict(r.receptive_field)})
    if r.receptive_note:
        d["receptive_field_note"] = r.receptive_note
    if r.count_note:
        d["count_note"] = r.count_note
    if r.explain:
        d["explain"] = list(r.explain)
    return d


def analyze(stack: Sequence[Union[str, LayerSpec]], input_shape: Union[str, Sequence[int]],
            dtype: str = "float32", explain: bool = False, receptive: bool = True) -> Analysis:
    """Every layer's shape, padding, params, MACs, memory and receptive field.

    ``stack`` is token texts (``@NAME`` references allowed) or parsed specs;
    ``input_shape`` a tuple or text like ``1x3x224x224``.  With ``explain``
    every row carries its formulas with the numbers substituted; without
    ``receptive`` no receptive field is computed (faster).  Raises
    :class:`ConvcalcError` naming the layer that cannot be computed.
    """
    if dtype not in DTYPES:
        raise StackSyntaxError(f"unknown dtype {dtype!r}; one of {', '.join(DTYPES)}")
    width = DTYPES[dtype]
    shape = parse_shape(input_shape)
    specs = [s if isinstance(s, LayerSpec) else None for s in stack]
    if any(s is None for s in specs):
        specs = parse_stack([s.text if isinstance(s, LayerSpec) else s for s in stack])
    layers = [build(s) for s in specs]

    graph = _Graph(shape, receptive)
    for spec, layer in zip(specs, layers):
        try:
            if isinstance(layer, GraphLayer):
                steps = layer.graph_steps(graph)
                notes = [layer.explain_graph(graph, st) for st in steps] if explain \
                    else [()] * len(steps)
            else:
                steps = layer.steps(graph.shape(graph.cur))
                notes = layer.explain(graph.shape(graph.cur)) if explain else [()] * len(steps)
        except ConvcalcError as e:
            raise e.located(spec.index, spec.text)
        for st, lines in zip(steps, notes):
            inputs = st.inputs or ((graph.cur, st.windows),)
            befores = [graph.states[src] for src, _ in inputs]
            paths = [b.then(w) for b, (_, w) in zip(befores, inputs)]
            path = paths[0] if len(paths) == 1 else PathState.merge(paths)
            if explain:
                lines = (*lines, *(rfmath.explain_step(befores[0], inputs[0][1], path)
                                   if len(paths) == 1 else rfmath.explain_merge(paths, path)))
            act = math.prod(st.output_shape) * width if st.allocates else 0
            graph.add(Row(spec.index, spec.kind, spec.text, st.part, st.input_shape,
                          st.output_shape, st.padding, st.params, st.buffers, st.macs, act,
                          path.field(), inputs[0][1], tuple(lines), inputs, path.note), path)
        if spec.kind == "save":
            graph.names[spec["name"]] = graph.cur
    rows = graph.rows

    params = sum(r.params for r in rows)
    macs = sum(r.macs for r in rows)
    act_bytes = sum(r.activation_bytes for r in rows)
    totals = Totals(params, params, sum(r.buffers for r in rows), macs, 2 * macs, act_bytes,
                    params * width)
    memory = Memory(math.prod(shape) * width, 2 * act_bytes, params * width)
    last = graph.states[graph.cur]
    return Analysis(shape, graph.shape(graph.cur), dtype, tuple(rows), totals, memory,
                    last.field(), last.note)


class _Graph:
    """The rows so far as a graph: shapes, receptive states and names by position."""

    def __init__(self, shape: Shape, receptive: bool = True):
        self.rows: List[Row] = []
        self.states = {-1: PathState.start(len(shape) - 2) if receptive else PathState(None)}
        self.input_shape = shape
        self.names = {"input": -1}
        self.cur = -1

    def add(self, row: Row, state: PathState) -> None:
        self.rows.append(row)
        self.cur = len(self.rows) - 1
        self.states[self.cur] = state

    def shape(self, pos: int) -> Shape:
        return self.input_shape if pos < 0 else self.rows[pos].output_shape

    def lookup(self, name: str) -> int:
        if name not in self.names:
            known = ", ".join(self.names)
            raise StackSyntaxError(f"no tensor is named {name!r} here; named so far: {known} "
                                   f"(name one with save:{name})")
        return self.names[name]

    def label(self, pos: int) -> str:
        if pos < 0:
            return "the input"
        names = [n for n, p in self.names.items() if p == pos]
        r = self.rows[pos]
        what = f"layer {r.index} ({r.spec})"
        return f"'{names[0]}', {what}" if names else what

    def path(self, pos: int) -> List[int]:
        """Row positions from the input to ``pos`` along first inputs."""
        out = []
        while pos >= 0:
            out.append(pos)
            pos = self.rows[pos].inputs[0][0]
        return out[::-1]

    def drift(self, a: int, b: int) -> Optional[str]:
        """Why two tensors that should line up do not: the first layer on
        either path that drops a remainder, and the input size's divisibility."""
        shared = set(self.path(a)) & set(self.path(b))
        for pos in self.path(a) + self.path(b):
            if pos in shared:
                continue
            r = self.rows[pos]
            lost = inexact(r)
            if lost:
                hint = f"layer {r.index} ({r.spec}) {lost}"
                steps = _downsampling(self, max(a, b))
                size = "x".join(map(str, self.input_shape[2:]))
                need = [(d, n) for d, (i, n) in enumerate(zip(self.input_shape[2:], steps))
                        if n > 1 and i % n]
                if need:
                    by = str(steps[0]) if len(set(steps)) == 1 else \
                        ", ".join(f"{n} in dim {d + 1}" for d, n in need)
                    hint += f"; the input size {size} is not divisible by {by}"
                return hint
        return None


def inexact(r: Row) -> Optional[str]:
    """What a layer loses to rounding, if anything: a conv or pool whose last
    window stops short of the last input positions, or an upsample whose
    scale lands between sizes."""
    if not r.windows:
        return None
    for d, w in enumerate(r.windows):
        if w.kind == "conv" and r.kind in ("conv", "sepconv", "maxpool", "avgpool"):
            # positions the next window would read, had the size not been rounded down
            # (a stride larger than the kernel skips positions everywhere: not a loss)
            b = r.padding[d][0] if r.padding else 0
            end = (w.out_size - 1) * w.stride - b + w.dilation * (w.k - 1)
            start = w.out_size * w.stride - b
            first = max(0, (end - start) // w.dilation + 1)  # taps j past the last window
            last = min(w.k - 1, (w.in_size - 1 - start) // w.dilation)  # and inside the input
            lost = max(0, last - first + 1)
            if lost:
                return (f"never reads the last {lost} input position{'s' if lost > 1 else ''} "
                        f"of {w.in_size} (dim {d + 1}: {w.out_size} "
                        f"window{'s' if w.out_size > 1 else ''} of stride {w.stride})")
        elif r.kind == "up" and w.scale_factor is not None:
            exact = w.in_size * Fraction(repr(w.scale_factor))
            if exact.denominator != 1:
                return f"rounds {w.in_size}·{w.scale_factor:g} = {float(exact):g} down to {w.out_size}"
    return None


def _downsampling(graph: "_Graph", pos: int) -> Tuple[int, ...]:
    """Per spatial dim, the largest whole stride product reached on the path
    to ``pos``: what the input size must be divisible by."""
    n = len(graph.input_shape) - 2
    peak, running = [1] * n, [Fraction(1)] * n
    for p in graph.path(pos):
        for d, w in enumerate(graph.rows[p].windows or ()):
            if w.kind == "conv":
                running[d] *= w.stride
            elif w.kind == "tconv":
                running[d] /= w.stride
            else:
                running[d] *= w.ratio
            if running[d].denominator == 1:
                peak[d] = max(peak[d], int(running[d]))
    return tuple(peak)


class Region(NamedTuple):
    """The input region one output position depends on (SPEC §5, ``rf --at``)."""

    at: Tuple[int, ...]
    index: int  # the layer whose output position it is
    region: Optional[Tuple[Tuple[int, int], ...]]  # clipped to the input; None: reads no input
    unclipped: Optional[Tuple[Tuple[int, int], ...]]
    # the exact sets behind the boxes (unions of per-dim products), for pictures
    positions: Tuple = ()
    positions_unclipped: Tuple = ()

    def to_dict(self) -> dict:
        def boxes(b):
            return None if b is None else [list(p) for p in b]
        return {"at": list(self.at), "layer": self.index, "region": boxes(self.region),
                "unclipped": boxes(self.unclipped)}


def region_at(a: Analysis, at: Sequence[int], layer: Optional[int] = None) -> Region:
    """Exact input region of output position ``at`` of ``layer`` (default: the last).

    Index intervals are propagated backwards through every layer, so the
    region is the bounding box of the true dependency set: clipped, of the
    real input positions with a nonzero weight; unclipped, of the index
    arithmetic on an input extended without end.
    """
    if layer is None:
        upto = len(a.layers)
    else:
        hits = [i for i, r in enumerate(a.layers) if r.index == layer]
        if not hits:
            raise StackSyntaxError(f"--layer {layer}: the stack has layers 1 to "
                                   f"{a.layers[-1].index}")
        upto = hits[-1] + 1
    rows = a.layers[:upto]
    target = rows[-1]
    out = target.output_shape[2:]
    if len(at) != len(out):
        raise StackSyntaxError(f"--at needs {len(out)} coordinate{'s' if len(out) != 1 else ''} "
                               f"(one per spatial dim of {'x'.join(map(str, target.output_shape))}), "
                               f"got {len(at)}")
    if any(not 0 <= u < n for u, n in zip(at, out)):
        raise ShapeError(f"--at {','.join(map(str, at))} is outside the output "
                         f"{'x'.join(map(str, out))} of layer {target.index} ({target.spec})")
    sets = rfmath.region_sets(rows, len(rows) - 1, at, clip=True)
    sets_unclipped = rfmath.region_sets(rows, len(rows) - 1, at, clip=False)

    def box(products):
        if not products:
            return None
        return tuple((min(rfmath._lo(p[d]) for p in products),
                      max(rfmath._hi(p[d]) for p in products)) for d in range(len(at)))
    return Region(tuple(at), target.index, box(sets), box(sets_unclipped), tuple(sets),
                  tuple(sets_unclipped))
