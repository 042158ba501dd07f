"""Walk a stack from an input shape: one row per PyTorch layer, and the totals.

:func:`analyze` is the engine's front door.  It returns plain named tuples
(immutable; ``row._replace(macs=…)`` derives another); :meth:`Analysis.to_dict`
is the JSON contract of SPEC.md §5.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

from . import receptive as rfmath
from .bignum import fraction, fraction_text
from .collector import paused
from .errors import ConvcalcError, ShapeError, StackSyntaxError, quoted, shown
from .language import DTYPES, LayerSpec, default_input, parse_shape, parse_stack
from .layers import DIM_NAMES, GraphLayer, Pairs, Shape, Step, Window, build
from .receptive import PathState, ReceptiveField
from .records import record

if TYPE_CHECKING:
    from fractions import Fraction

MIB = 1024 ** 2


@record
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
    # once positions are mixed (receptive_field None): where, and the field
    # through the paths that keep positions (SPEC §3b)
    mixed_by: Optional[str] = None
    local_receptive_field: Optional[ReceptiveField] = None
    # what each output dim is: "N", "C" or a spatial dim's number (0 = first);
    # () for the usual N x C x spatial… order
    axes: Tuple = ()
    mixes: Tuple[int, ...] = ()  # spatial dims whose positions this row mixes (norm statistics)
    name: Optional[str] = None  # an imported layer's source name (module path, ONNX node)

    @property
    def spatial_sizes(self) -> Tuple[int, ...]:
        """The output's spatial sizes in spatial-dim order, wherever permute put them."""
        if not self.axes:
            return tuple(self.output_shape[2:])
        return spatial_sizes(self.output_shape, self.axes)

    @property
    def flops(self) -> int:
        return 2 * self.macs if self.counted_flops is None else self.counted_flops


@record
class Totals:
    params: int
    trainable_params: int
    buffers: int
    macs: int
    flops: int
    activation_bytes: int
    param_bytes: int


@record
class Memory:
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


@record
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
    mixed_by: Optional[str] = None
    local_receptive_field: Optional[ReceptiveField] = None

    @paused
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
            **_mixed_dict(self),
            **self._before_mixing(),
            **({"count": self.count} if self.count != "torch" else {}),
        }

    def _before_mixing(self) -> dict:
        """A classifier's output mixes every position: its field is the last one
        before that (the table's "last before mixing"), exact or local."""
        if self.receptive_field is not None or self.receptive_note:
            return {}
        last = last_field_row(self)
        if last is None or last is self.layers[-1]:
            return {}
        rf = last.receptive_field or last.local_receptive_field
        return {"receptive_field_before_mixing": {
            "layer": last.index, **({"name": last.name} if last.name else {}),
            "local": last.receptive_field is None, **rf_dict(rf)}}

    @paused
    def rf_dict(self) -> dict:
        """The ``convcalc rf --format json`` document."""
        def layer(r: Row) -> dict:
            d = {"index": r.index, "kind": r.kind, "spec": r.spec}
            if r.part:
                d["part"] = r.part
            d.update(output_shape=list(r.output_shape),
                     receptive_field=rf_dict(r.receptive_field, full=True),
                     **_mixed_dict(r, full=True))
            return d
        return {"input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "layers": [layer(r) for r in self.layers],
                "receptive_field": rf_dict(self.receptive_field, full=True),
                **_mixed_dict(self, full=True)}


def _mixed_dict(x, full: bool = False) -> dict:
    """Where positions were mixed and the local field (SPEC §3b), when they were."""
    if x.receptive_field is not None or x.mixed_by is None:
        return {}
    return {"receptive_field_note": f"global from {x.mixed_by}",
            "local_receptive_field": rf_dict(x.local_receptive_field, full)}


def number(v: Fraction) -> Union[int, float]:
    """A Fraction as a JSON number: an int when whole."""
    return int(v) if v.denominator == 1 else float(v)


def rf_dict(rf: Optional[ReceptiveField], full: bool = False) -> Optional[dict]:
    """size, stride, padding (SPEC §5); with ``full`` also start and center."""
    if rf is None:
        return None
    d = {"size": list(rf.size), "stride": [number(s) for s in rf.stride],
         "padding": [number(p) for p in rf.padding]}
    if rf.offset:
        d["misaligned_by"] = [number(v) for v in rf.offset]
    if full:
        d.update(start=[number(v) for v in rf.start], center=[number(v) for v in rf.center])
    return d


def row_dict(r: Row) -> dict:
    """One layer of the JSON document (``explain`` only when it was asked for)."""
    d = {"index": r.index, "kind": r.kind, "spec": r.spec}
    if r.name:
        d["name"] = r.name
    if r.part:
        d["part"] = r.part
    d.update({"input_shape": list(r.input_shape), "output_shape": list(r.output_shape),
              "padding": None if r.padding is None else [list(p) for p in r.padding],
              "params": r.params, "buffers": r.buffers, "macs": r.macs, "flops": r.flops,
              "activation_bytes": r.activation_bytes,
              "receptive_field": rf_dict(r.receptive_field)})
    if r.receptive_note:
        d["receptive_field_note"] = r.receptive_note
    d.update(_mixed_dict(r))
    if r.count_note:
        d["count_note"] = r.count_note
    if r.explain:
        d["explain"] = list(r.explain)
    return d


@paused
def analyze(stack: Sequence[Union[str, LayerSpec]],
            input_shape: Union[str, Sequence[int], None] = None, dtype: str = "float32",
            explain: bool = False, receptive: bool = True) -> Analysis:
    """Every layer's shape, padding, params, MACs, memory and receptive field.

    ``stack`` is token texts (``@NAME`` references allowed) or parsed specs;
    ``input_shape`` a tuple or text like ``1x3x224x224`` (by default the input
    the first ``@NAME`` stack names, as the CLI does).  With ``explain``
    every row carries its formulas with the numbers substituted; without
    ``receptive`` no receptive field is computed (faster).  Raises
    :class:`ConvcalcError` naming the layer that cannot be computed.
    """
    if dtype not in DTYPES:
        raise StackSyntaxError(f"unknown dtype {dtype!r}; one of {', '.join(DTYPES)}")
    width = DTYPES[dtype]
    if input_shape is None:
        input_shape = default_input([s for s in stack if isinstance(s, str)])
        if input_shape is None:
            raise StackSyntaxError("no input shape: give one (1x3x224x224), or start the "
                                   "stack with an @NAME whose file names its input")
    shape = parse_shape(input_shape)
    specs = [s if isinstance(s, LayerSpec) else None for s in stack]
    if any(s is None for s in specs):
        specs = parse_stack([s.text if isinstance(s, LayerSpec) else s for s in stack])
    layers = [build(s) for s in specs]
    graph = _walk(specs, layers, shape, width, explain, receptive)
    return _analysis(graph, shape, width, dtype)


class _Rounded(Exception):
    """The walk stopped at a row that rounds input away: (row, what it loses)."""


class _Settled(Exception):
    """The walk reached a state whose outcome another shape already found."""


def _referenced(spec: LayerSpec) -> set:
    """Every text among a spec's values: a superset of the tensor names it reads."""
    out = set()
    for v in spec.args.values():
        for x in (v if isinstance(v, (tuple, list)) else (v,)):
            if isinstance(x, str):
                out.add(x)
    return out


def rounding_free(specs: Sequence[LayerSpec], layers, shapes: Sequence[Shape]) -> List[bool]:
    """For each shape, whether the stack goes through it without an error or a
    row that rounds input away (:func:`inexact`).  ``layers`` are the built
    ``specs``.  Raises the first syntax error (exit 2).

    What is left of the walk from layer L depends only on the tensors read
    from L on (shapes and layouts): once two input shapes reach the same such
    state (32 input sizes meet at each size of ResNet's stride-32 tail), the
    second takes the first's outcome instead of walking on."""
    names_after: List[set] = [set()] * (len(specs) + 1)
    for L in range(len(specs) - 1, -1, -1):
        names_after[L] = names_after[L + 1] | _referenced(specs[L])
    read_after = [sorted(names) for names in names_after]
    known: dict = {}
    out = []
    for shape in shapes:
        visited: List[tuple] = []

        def at_layer(graph: "_Graph", L: int) -> None:
            names = graph.names
            key = (L, graph.shape(graph.cur), graph.axes[graph.cur],
                   *((n, graph.shape(names[n]), graph.axes[names[n]])
                     for n in read_after[L] if n in names))
            if key in known:
                raise _Settled(known[key])
            visited.append(key)
        try:
            _walk(specs, layers, shape, 4, False, False, stop=inexact, at_layer=at_layer)
            ok = True
        except _Rounded:
            ok = False
        except _Settled as settled:
            ok = settled.args[0]
        except ConvcalcError as e:
            if e.exit_code == 2:
                raise
            ok = False
        for key in visited:
            known[key] = ok
        out.append(ok)
    return out


def _walk(specs, layers, shape: Shape, width: int, explain: bool, receptive: bool,
          stop=None, at_layer=None) -> "_Graph":
    """The rows of the stack at ``shape``; ``stop`` a test of each new row that
    ends the walk (raising _Rounded) at the first row it names a reason for;
    ``at_layer(graph, L)`` is called before each spec L."""
    graph = _Graph(shape, receptive)
    graph.width = width

    def shape_of(name: str) -> Shape:
        return graph.shape(graph.lookup(name))
    # a layer's steps depend on its values and its input shape only: a stack that
    # repeats a token at one shape (10^5 conv/relu pairs) works each out once
    # (specs of one token text share their args, see parse_stack)
    known_steps: dict = {}
    merges = True  # whether two states that differ before spec L may be one at L
    for L, (spec, layer) in enumerate(zip(specs, layers)):
        if at_layer is not None and merges:
            at_layer(graph, L)
        try:
            if isinstance(layer, GraphLayer):
                steps = layer.graph_steps(graph)
                notes = [layer.explain_graph(graph, st) for st in steps] if explain \
                    else [()] * len(steps)
                merges = True
            else:
                here = graph.shape(graph.cur)
                layer.check_rank(here)
                if layer.binds:  # size=NAME: a value read from the graph
                    layer = layer.bind(shape_of)
                    steps, merges = layer.steps(here), True
                else:
                    key = (spec.kind, id(spec.args), here)
                    known = known_steps.get(key)
                    if known is None:
                        steps = layer.steps(here)
                        # one that keeps its input's shape and layout maps
                        # different states to different states: nothing new can
                        # be met after it (a check skipped costs a longer walk)
                        known = known_steps[key] = (steps, any(
                            st.output_shape != st.input_shape or st.permutation is not None
                            for st in steps))
                    steps, merges = known
                notes = layer.explain(here) if explain else [()] * len(steps)
        except ConvcalcError as e:
            raise e.located(spec.index, spec.text)
        for st, lines in zip(steps, notes):
            graph.step(spec, st, lines, explain)
            why = stop and stop(graph.rows[-1])
            if why:
                raise _Rounded(graph.rows[-1], why)
        if spec.kind == "save":
            graph.names[spec["name"]] = graph.cur
    return graph


def _analysis(graph: "_Graph", shape: Shape, width: int, dtype: str) -> Analysis:
    rows = graph.rows

    params = sum(r.params for r in rows)
    macs = sum(r.macs for r in rows)
    act_bytes = sum(r.activation_bytes for r in rows)
    totals = Totals(params, params, sum(r.buffers for r in rows), macs, 2 * macs, act_bytes,
                    params * width)
    memory = Memory(math.prod(shape) * width, 2 * act_bytes, params * width)
    last = rows[-1] if rows else None
    return Analysis(shape, graph.shape(graph.cur), dtype, tuple(rows), totals, memory,
                    graph.states[graph.cur].field(), graph.states[graph.cur].note,
                    mixed_by=last.mixed_by if last else None,
                    local_receptive_field=last.local_receptive_field if last else None)


def name_parts(name: str) -> List[str]:
    """A source name's path: ``layer1.0.conv1`` (ONNX's ``/layer1/...`` too)."""
    return [p for p in re.split(r"[./]", name) if p]


def group_by_depth(a: Analysis, depth: int) -> Analysis:
    """Rows grouped by the first ``depth`` parts of their source names, as
    torchinfo's ``depth`` does: params, buffers, MACs and memory summed, the
    group's first input and last output shape and field.  Rows without a name
    (the graph tokens an import adds) join the group before them."""
    groups: List[List[Row]] = []
    keys: List[Optional[str]] = []
    for r in a.layers:
        key = ".".join(name_parts(r.name)[:depth]) if r.name else None
        if groups and (key is None or key == keys[-1]):
            groups[-1].append(r)
            continue
        groups.append([r])
        keys.append(key)
    rows = []
    for key, g in zip(keys, groups):
        last = g[-1]
        if len(g) == 1:
            rows.append(last)
            continue
        counted = [r.counted_flops for r in g if r.counted_flops is not None]
        rows.append(last._replace(
            index=g[0].index, kind="group", spec=f"{len(g)} layers", part=None,
            input_shape=g[0].input_shape, padding=None, params=sum(r.params for r in g),
            buffers=sum(r.buffers for r in g), macs=sum(r.macs for r in g),
            activation_bytes=sum(r.activation_bytes for r in g), explain=(),
            counted_flops=sum(counted) if counted else None, count_note=None,
            name=key or last.name))
    return a._replace(layers=tuple(rows))


def last_field_row(a: Analysis) -> Optional[Row]:
    """The last row with a receptive field, exact or local: what a classifier's
    field is, before its global pool mixes every position."""
    return next((r for r in reversed(a.layers)
                 if r.receptive_field is not None or r.local_receptive_field is not None), None)


def spatial_sizes(shape: Shape, axes: Tuple) -> Tuple[int, ...]:
    """Spatial sizes in spatial-dim order under a layout (see :attr:`Row.axes`)."""
    where = {a: j for j, a in enumerate(axes) if isinstance(a, int)}
    return tuple(shape[where[d]] for d in sorted(where))  # a conv may have used one up


def _standard(rank: int) -> Tuple:
    axes = _STANDARD.get(rank)
    if axes is None:  # every row asks: one tuple per rank
        axes = _STANDARD[rank] = ("N", "C", *range(rank - 2))
    return axes


_STANDARD: dict = {}


def _spatial_windows(windows, axes: Tuple, shape: Shape, n: int):
    """A step's windows (one per shape dim from 2 on) as one per spatial dim,
    under a layout that permute changed: a spatial dim keeps its window
    wherever it sits, dims that are not spatial drop theirs."""
    if not windows:
        return windows
    by_dim: List[Optional[Window]] = [None] * n
    for j, w in enumerate(windows):
        a = axes[j + 2]
        if isinstance(a, int):
            by_dim[a] = w
    sizes = spatial_sizes(shape, axes) if len(axes) == len(shape) else ()
    return tuple(w if w is not None else Window("conv", sizes[d], sizes[d])
                 for d, w in enumerate(by_dim))


def _keeps_local(windows) -> bool:
    """A joined input read at position 0 along some spatial dim (a broadcast
    from size 1: the SE gate) keeps no positions of its own."""
    return windows is not None and not any(w.stride == 0 for w in windows)


_NO_FIELD = PathState(None)


class _Graph:
    """The rows so far as a graph: shapes, receptive states and names by position.

    Every tensor has two receptive states: the exact one (global once any
    path mixes positions) and the local one, through the paths that keep
    positions (the same object until something mixes)."""

    def __init__(self, shape: Shape, receptive: bool = True):
        self.rows: List[Row] = []
        start = PathState.start(len(shape) - 2) if receptive else PathState(None)
        self.receptive = receptive
        self.states = {-1: start}
        self.local = {-1: start}
        self.axes = {-1: _standard(len(shape))}
        self.input_shape = shape
        self.n = len(shape) - 2
        self.names = {"input": -1}
        self.cur = -1
        self._last_field = (None, None)

    def _field(self, state: PathState) -> Optional[ReceptiveField]:
        """A state's field; a row that passes its input's state on (an
        activation, a save) shares the field its input row computed."""
        last, field = self._last_field
        if state is not last:
            field = state.field()
            self._last_field = (state, field)
        return field

    def step(self, spec: LayerSpec, st: Step, lines, explain: bool) -> None:
        """Add the row for one step: map its windows to spatial dims, carry both
        receptive states, label where positions mix."""
        graph_op = st.inputs is not None
        raw = st.inputs or ((self.cur, st.windows),)
        if graph_op and len(raw) > 1:  # the output takes the layout of its widest input
            in_axes = max((self.axes[src] for src, _ in raw), key=len)
        else:
            in_axes = self.axes[raw[0][0]]
        rank = len(in_axes)
        standard = in_axes is _STANDARD.get(rank) or in_axes == _standard(rank)
        if st.permutation is not None:
            out_axes = tuple(in_axes[d] for d in st.permutation)
        elif len(st.output_shape) == rank:
            out_axes = in_axes
        else:
            out_axes = _standard(len(st.output_shape))
        if standard:
            inputs = raw
        else:
            inputs = tuple((src, _spatial_windows(w, in_axes, st.output_shape if graph_op
                                                  else self.shape(src), self.n))
                           for src, w in raw)
        mixed = sorted({in_axes[j] for j in st.mixes if isinstance(in_axes[j], int)}) \
            if st.mixes else []
        local = st.local
        if st.grouped is not None and isinstance(in_axes[st.grouped], int):
            # group norm of a permuted tensor: its groups are blocks of a spatial dim;
            # no (r, S, P) says that, so the field is global with no local part
            local = False
        if mixed and not local:  # it sums over a spatial dim: no position survives
            inputs = tuple((src, None) for src, _ in inputs)
        if self.receptive:
            path, local_state, lines = self._fields(spec, st, lines, explain, inputs, mixed,
                                                    local)
            field = self._field(path)
            local_field = local_state.field() if path.dims is None else None
        else:  # shapes and counts only (solve sizes, models)
            path = local_state = _NO_FIELD
            field = local_field = None
        width = self.width
        act = math.prod(st.output_shape) * width if st.allocates else 0
        # every field in order, none by keyword: a row is made per layer per
        # size in solve sizes, and keywords double the cost of making it
        self.rows.append(Row(
            spec.index, spec.kind, spec.text, st.part, st.input_shape, st.output_shape,
            st.padding, st.params, st.buffers, st.macs, act, field, inputs[0][1],
            tuple(lines), inputs, path.note, None, None, path.mixed and path.mixed[1],
            local_field,
            () if out_axes is in_axes and standard or out_axes == _standard(len(out_axes))
            else out_axes,
            tuple(mixed) if local else (), spec.name))
        self.cur = len(self.rows) - 1
        self.states[self.cur] = path
        self.local[self.cur] = local_state
        self.axes[self.cur] = out_axes

    def _fields(self, spec: LayerSpec, st: Step, lines, explain: bool, inputs, mixed, local):
        """(the exact receptive state, the local one, the explanation lines) of a new row."""
        befores = [self.states[src] for src, _ in inputs]
        paths = [b.then(w) for b, (_, w) in zip(befores, inputs)]
        path = paths[0] if len(paths) == 1 else PathState.merge(paths)
        if mixed:
            path = PathState(None)
        if path.dims is not None:
            local_state = path
        elif mixed and not local:
            local_state = PathState(None)
        else:
            local_state = self._local(inputs, paths)
        if path.dims is None and path.note is None and path.mixed is None:
            # a join with a path that keeps positions but was mixed already says where
            # that began; one that meets a pooled gate is where the mixing happens
            began = [p.mixed for p, (src, _) in zip(paths, inputs)
                     if p.mixed and self.local[src].dims is not None]
            path = path._replace(mixed=began[0] if began and not mixed
                                 else self._mixed_where(spec, st, befores, mixed, inputs))
        if explain:
            lines = (*lines, *(rfmath.explain_step(befores[0], inputs[0][1], path)
                               if len(paths) == 1 else rfmath.explain_merge(paths, path)))
            if path.dims is None and path.mixed:
                lines = (*lines[:-1], f"receptive field: global from {path.mixed[1]}")
                field = local_state.field()
                if field is not None:
                    lines += (f"local receptive field (the paths that keep positions): "
                              f"r = {'x'.join(map(str, field.size))}, S = "
                              f"{'x'.join(map(fraction_text, field.stride))}, P = "
                              f"{'x'.join(map(fraction_text, field.padding))}",)
        return path, local_state, lines

    width = 4

    def _local(self, inputs, paths) -> PathState:
        """The field through the paths that keep positions: a norm's own
        position, not a broadcast gate, nothing after a global pool."""
        live = []
        for (src, w), p in zip(inputs, paths):
            if not _keeps_local(w):
                continue
            before = self.local[src]
            p = p if before is self.states[src] else before.then(w)
            if p.dims is not None or p.note:
                live.append(p)
        if not live:
            return PathState(None)
        return live[0] if len(live) == 1 else PathState.merge(live)

    def _mixed_where(self, spec, st: Step, befores, mixed, inputs) -> Tuple[str, str]:
        """(the layer that first mixed positions, how this one came to be global)."""
        label = f"layer {spec.index} ({spec.text})"
        if mixed:
            names = ", ".join(DIM_NAMES[self.n][d] for d in mixed)
            what = "its statistics span" if st.local else "it sums over"
            return label, f"{label}: {what} every position along {names}"
        for (src, _), b in zip(inputs, befores):
            if b.dims is None and b.mixed:
                names = [n for n, p in self.names.items() if p == src]
                who = f"'{names[0]}'" if names else f"layer {self.rows[src].index}"
                return b.mixed[0], f"{label}: {who} depends on every position since {b.mixed[0]}"
        return label, f"{label}: it mixes every position"

    def shape(self, pos: int) -> Shape:
        return self.input_shape if pos < 0 else self.rows[pos].output_shape

    def lookup(self, name: str) -> int:
        if name not in self.names:
            known = shown(", ".join(self.names), 200)
            raise StackSyntaxError(f"no tensor is named {quoted(name)} here; named so far: "
                                   f"{known} (name one with save:{shown(name, 60)})")
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
            exact = w.in_size * fraction(repr(w.scale_factor))
            if exact.denominator != 1:
                return f"rounds {w.in_size}·{w.scale_factor:g} = {float(exact):g} down to {w.out_size}"
    return None


def _downsampling(graph: "_Graph", pos: int) -> Tuple[int, ...]:
    """Per spatial dim, the largest whole stride product reached on the path
    to ``pos``: what the input size must be divisible by."""
    n = len(graph.input_shape) - 2
    peak, running = [1] * n, [fraction(1)] * n
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


@record
class Region:
    """The input region one output position depends on (SPEC §5, ``rf --at``)."""

    at: Tuple[int, ...]
    index: int  # the layer whose output position it is
    region: Optional[Tuple[Tuple[int, int], ...]]  # clipped to the input; None: reads no input
    unclipped: Optional[Tuple[Tuple[int, int], ...]]
    # the exact sets behind the boxes (unions of per-dim products), for pictures
    positions: Tuple = ()
    positions_unclipped: Tuple = ()
    # once positions are mixed on the way (SPEC §3b): where, and the region
    # through the paths that keep positions
    mixed_by: Optional[str] = None
    local_region: Optional[Tuple[Tuple[int, int], ...]] = None
    local_unclipped: Optional[Tuple[Tuple[int, int], ...]] = None

    def to_dict(self) -> dict:
        def boxes(b):
            return None if b is None else [list(p) for p in b]
        d = {"at": list(self.at), "layer": self.index, "region": boxes(self.region),
             "unclipped": boxes(self.unclipped)}
        if self.mixed_by:
            d.update(mixed_by=self.mixed_by, local_region=boxes(self.local_region),
                     local_unclipped=boxes(self.local_unclipped))
        return d


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
    out = target.spatial_sizes
    if len(at) != len(out):
        raise StackSyntaxError(f"--at needs {len(out)} coordinate{'s' if len(out) != 1 else ''} "
                               f"(one per spatial dim of {'x'.join(map(str, target.output_shape))}), "
                               f"got {len(at)}")
    if any(not 0 <= u < n for u, n in zip(at, out)):
        raise ShapeError(f"--at {','.join(map(str, at))} is outside the output "
                         f"{'x'.join(map(str, out))} of layer {target.index} ({target.spec})")
    sizes = a.input_shape[2:]
    sets = rfmath.region_sets(rows, len(rows) - 1, at, True, sizes)
    sets_unclipped = rfmath.region_sets(rows, len(rows) - 1, at, False, sizes)

    def box(products):
        if not products:
            return None
        return tuple((min(rfmath._lo(p[d]) for p in products),
                      max(rfmath._hi(p[d]) for p in products)) for d in range(len(at)))
    if target.mixed_by is None:
        return Region(tuple(at), target.index, box(sets), box(sets_unclipped), tuple(sets),
                      tuple(sets_unclipped))
    local = rfmath.region_sets(rows, len(rows) - 1, at, True, sizes, local=True)
    local_unclipped = rfmath.region_sets(rows, len(rows) - 1, at, False, sizes, local=True)
    return Region(tuple(at), target.index, box(sets), box(sets_unclipped), tuple(sets),
                  tuple(sets_unclipped), target.mixed_by, box(local), box(local_unclipped))
