"""The ONNX route of the importer: an ``.onnx`` file as a convcalc stack.

One pass walks the graph in its (topological) order.  Initializers,
``Constant`` nodes and every node whose inputs are all constant — the shape
subgraphs exporters write around pads, resizes and reshapes
(Shape → Gather → Concat → Reshape → Slice → Cast …) — are evaluated with
ONNX's reference ops; the shape of every other tensor comes from ONNX's own
per-node shape inference with those constants known.  Each remaining node
maps through a table (``_MAP``) to a layer token, or to an error that names
why it has no twin.  Later passes fold the multi-node idioms exporters write
for one PyTorch layer (SiLU as Sigmoid + Mul, GELU as Div/Erf/Add/Mul,
GroupNorm as Reshape/InstanceNormalization/Reshape/Mul/Add, a linear's bias
Add, the Reshape/Transpose chains of flatten, channel shuffle and pixel
(un)shuffle), and :mod:`.graph` wires what is left.  Unsupported ops are
collected and refused in one message, never dropped.
"""
from __future__ import annotations

import ast
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import StackSyntaxError
from . import graph as G

Shape = Tuple[int, ...]

# nodes evaluated when all their inputs are constant (shape arithmetic)
_FOLDABLE = {
    "Constant", "Identity", "Shape", "Size", "Gather", "GatherElements", "Unsqueeze",
    "Squeeze", "Concat", "Slice", "Cast", "CastLike", "Reshape", "ConstantOfShape",
    "Transpose", "Range", "Add", "Sub", "Mul", "Div", "Mod", "Floor", "Ceil", "Neg",
    "Abs", "Sqrt", "Pow", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
    "Not", "And", "Or", "Where", "Expand", "Min", "Max", "ReduceProd", "ReduceSum",
    "ReduceMax", "ReduceMin", "Tile", "Flatten", "Split", "Sign", "Round", "Reciprocal",
}
# data-path reshapes: resolved as chains (flatten, permute, shuffle, pixel shuffle)
_RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}
_ACTS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "act:leaky_relu",
    "Elu": "act:elu", "Selu": "act:selu", "Celu": "act:celu", "Gelu": "gelu",
    "HardSigmoid": "act:hardsigmoid", "HardSwish": "act:hardswish",
    "Softplus": "act:softplus", "Mish": "act:mish",
}
_EXTRA = "pip install 'convcalc[onnx]'"


@dataclass
class _Entry:
    """One mapped node (or one output of a multi-output node)."""

    name: str
    op: str
    inputs: List[str]             # data (non-constant) tensor names, in order
    output: str
    tokens: List[str] = field(default_factory=list)  # [] with alias=True: dropped
    error: Optional[str] = None   # why it has no twin (None: mapped)
    alias: bool = False           # the identity: output is inputs[0]
    node: object = None
    const: Optional[str] = None   # the constant operand of a Mul/Add
    removed: bool = False
    secondary: bool = False       # an error only because an input's shape is unknown
    names: Optional[List[str]] = None  # one source name per token (else name)


def import_onnx(path_or_model, input_shape=None) -> Tuple[List[str], Shape]:
    """The stack tokens of an ONNX model (a path or a loaded ``ModelProto``)
    and its input shape.  ``input_shape`` is needed when the model's input has
    dynamic dims and overrides the declared shape when given."""
    try:
        import onnx  # noqa: F401
        from onnx import numpy_helper  # noqa: F401
    except ImportError:
        raise StackSyntaxError(f"reading ONNX files needs the onnx package: {_EXTRA}") from None
    model, base = _load(path_or_model)
    return _Importer(model, base, input_shape).run()


# ---------------------------------------------------------------- loading

def _load(obj):
    import onnx
    if isinstance(obj, onnx.ModelProto):
        return obj, None
    if isinstance(obj, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(obj)), None
        except Exception as e:
            raise StackSyntaxError(f"not a readable ONNX model ({_first_line(e)})") from None
    path = os.fspath(obj)
    if not os.path.isfile(path):
        raise StackSyntaxError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise StackSyntaxError(f"{path}: not a readable ONNX model, corrupt or truncated "
                               f"({_first_line(e)})") from None
    if not model.graph.node and not model.graph.output:
        raise StackSyntaxError(f"{path}: not a readable ONNX model (no graph)")
    base = os.path.dirname(os.path.abspath(path))
    # external data must be there (the dynamo exporter writes FILE.onnx.data)
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            where = os.path.join(base, info.get("location", ""))
            if not os.path.isfile(where):
                raise StackSyntaxError(f"{path}: its weights are in {info.get('location')!r}, "
                                       f"which is missing beside it")
            end = int(info.get("offset", 0)) + int(info.get("length", 0))
            if end > os.path.getsize(where):
                raise StackSyntaxError(f"{path}: its external data {info.get('location')!r} "
                                       f"is truncated ({os.path.getsize(where)} bytes, "
                                       f"needs {end})")
    return model, base


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


# ---------------------------------------------------------------- importer

class _Importer:
    def __init__(self, model, base: Optional[str], input_shape):
        import onnx
        self.onnx = onnx
        if model.functions:
            try:
                from onnx import inliner
                model = inliner.inline_local_functions(model)
            except Exception:
                pass
        self.model = model
        self.g = model.graph
        self.base = base
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 18))
        self.consts: Dict[str, object] = {}      # name -> TensorProto (lazy) or ndarray
        self.shapes: Dict[str, Optional[Shape]] = {}
        self.types: Dict[str, int] = {}
        self.entries: List[_Entry] = []
        self.producer: Dict[str, _Entry] = {}
        self.blocked: set = set()                # tensors downstream of an unknown shape
        for t in self.g.initializer:
            self.consts[t.name] = t
            self.shapes[t.name] = tuple(int(d) for d in t.dims)
            self.types[t.name] = t.data_type
        self.input_name, self.input_shape = self._input(input_shape)

    # ---- the input
    def _input(self, given) -> Tuple[str, Shape]:
        real = [i for i in self.g.input if i.name not in self.consts]
        if len(real) != 1:
            names = ", ".join(i.name for i in real) or "none"
            raise StackSyntaxError(f"ONNX import takes a model with one input; this one has "
                                   f"{len(real)} ({names})")
        inp = real[0]
        tt = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tt.shape.dim] if tt.HasField("shape") else None
        if given is not None:
            from ..language import parse_shape
            shape = tuple(parse_shape(given))
            if dims is not None and len(dims) != len(shape):
                raise StackSyntaxError(
                    f"input shape {'x'.join(map(str, shape))} is {len(shape)}-D; the model's "
                    f"input {inp.name!r} is {len(dims)}-D ({_dims_text(dims)})")
        else:
            if dims is None or any(d is None for d in dims):
                raise StackSyntaxError(
                    f"the model's input {inp.name!r} has dynamic dims ({_dims_text(dims)}); "
                    f"give the input shape (-i 1x3x224x224)")
            shape = tuple(dims)
        self.shapes[inp.name] = shape
        self.types[inp.name] = tt.elem_type or 1
        return inp.name, shape

    # ---- constants
    def is_const(self, name: str) -> bool:
        return name in self.consts

    def value(self, name: str):
        import numpy as np
        from onnx import numpy_helper
        v = self.consts[name]
        if not isinstance(v, np.ndarray):
            if v.data_location == self.onnx.TensorProto.EXTERNAL:
                from onnx.external_data_helper import load_external_data_for_tensor
                t = self.onnx.TensorProto()
                t.CopyFrom(v)
                load_external_data_for_tensor(t, self.base or ".")
                v = t
            v = numpy_helper.to_array(v)
            self.consts[name] = v
        return v

    def shape(self, name: str) -> Shape:
        return self.shapes[name]

    # ---- the walk
    def run(self) -> Tuple[List[str], Shape]:
        known = set(self.consts) | {self.input_name, ""}
        for i, node in enumerate(self.g.node):
            for t in node.input:
                if t not in known:
                    raise StackSyntaxError(
                        f"the ONNX graph is corrupt or truncated: node {node.name or node.op_type!r} "
                        f"reads {t!r}, which nothing produces")
            known.update(node.output)
            self._node(i, node)
        outs = [o.name for o in self.g.output]
        if not outs:
            raise StackSyntaxError("the ONNX graph has no output")
        for o in outs:
            if o not in known:
                raise StackSyntaxError(f"the ONNX graph is corrupt or truncated: its output {o!r} "
                                       f"is never produced")
        self.outputs = outs
        self._fold()
        self._refuse()
        return self._write(), self.input_shape

    def _node(self, i: int, node) -> None:
        op, dom = node.op_type, node.domain or ""
        name = self._source_name(i, node)
        ins = list(node.input)
        if dom not in ("", "ai.onnx"):
            self._unsupported(node, name, f"{dom}.{op}", "custom domain")
            return
        if op == "Constant":
            self._set_const(node.output[0], self._constant(node))
            return
        data_ins = [t for t in ins if t and not self.is_const(t)]
        if op in ("Shape", "Size") and ins[0] in self.shapes and self.shapes[ins[0]] is not None \
                and ins[0] not in self.blocked:
            self._fold_node(node)
            return
        if op in _FOLDABLE and not data_ins:
            self._fold_node(node)
            return
        if any(t in self.blocked or self.shapes.get(t) is None for t in data_ins):
            self.blocked.update(node.output)
            for o in node.output:
                self.shapes[o] = None
            e = self._add(_Entry(name, op, data_ins, node.output[0] if node.output else "",
                                 node=node, error="the shape of its input is unknown"))
            e.secondary = True
            return
        self._infer(node)
        fn = _MAP.get(op)
        if fn is None:
            self._unsupported(node, name, op, None)
            return
        try:
            fn(self, node, name, data_ins)
        except _NoTwin as e:
            self._unsupported(node, name, op, str(e))

    def _unsupported(self, node, name, op, reason) -> None:
        data_ins = [t for t in node.input if t and not self.is_const(t)]
        outs = [o for o in node.output if o]
        for k, o in enumerate(outs or [""]):
            e = _Entry(name, op, data_ins, o, error=reason or "", node=node)
            if k:
                e.removed = True  # one error per node
            self._add(e)
        for o in outs:
            if self.shapes.get(o) is None:
                self.blocked.add(o)

    def _add(self, e: _Entry) -> _Entry:
        self.entries.append(e)
        if e.output:
            self.producer[e.output] = e
        return e

    def emit(self, node, name, ins, tokens, output=None, **kw) -> _Entry:
        if isinstance(tokens, str):
            tokens = [tokens]
        return self._add(_Entry(name, node.op_type, list(ins), output or node.output[0],
                                tokens=list(tokens), node=node, **kw))

    def alias(self, node, name, src, output=None) -> _Entry:
        return self._add(_Entry(name, node.op_type, [src], output or node.output[0],
                                alias=True, node=node))

    def _source_name(self, i: int, node) -> str:
        md = {p.key: p.value for p in node.metadata_props}
        scopes = md.get("pkg.torch.onnx.name_scopes")
        if scopes:
            try:
                parts = ast.literal_eval(scopes)
                classes = ast.literal_eval(md.get("pkg.torch.onnx.class_hierarchy", "[]"))
            except (ValueError, SyntaxError):
                parts, classes = None, []
            if isinstance(parts, list) and parts:
                path = str(parts[-2]) if len(parts) >= 2 else ""
                leaf = str(parts[-1])
                parent = str(classes[-2]) if len(classes) >= 2 else ""
                is_leaf_module = parent.startswith("torch.nn.modules.") and \
                    not parent.startswith("torch.nn.modules.container.")
                if path and is_leaf_module:
                    return path
                return f"{path}.{leaf}" if path else leaf
        return node.name or f"{node.op_type}_{i}"

    # ---- constants and shapes
    def _constant(self, node):
        from onnx import numpy_helper
        import numpy as np
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
            if a.name == "value_float":
                return np.array(a.f, dtype=np.float32)
            if a.name == "value_floats":
                return np.array(list(a.floats), dtype=np.float32)
            if a.name == "value_int":
                return np.array(a.i, dtype=np.int64)
            if a.name == "value_ints":
                return np.array(list(a.ints), dtype=np.int64)
        raise StackSyntaxError(f"Constant node {node.name!r} has no value this importer reads")

    def _set_const(self, name: str, v) -> None:
        import numpy as np
        v = np.asarray(v)
        self.consts[name] = v
        self.shapes[name] = tuple(int(d) for d in v.shape)
        from onnx import helper
        self.types[name] = helper.np_dtype_to_tensor_dtype(v.dtype)

    def _fold_node(self, node) -> None:
        import numpy as np
        op = node.op_type
        if op == "Identity":
            self.consts[node.output[0]] = self.consts[node.input[0]]
            self.shapes[node.output[0]] = self.shapes[node.input[0]]
            self.types[node.output[0]] = self.types.get(node.input[0], 1)
            return
        if op in ("Shape", "Size"):
            shp = self.shapes[node.input[0]]
            if op == "Size":
                self._set_const(node.output[0], np.array(math.prod(shp), dtype=np.int64))
                return
            at = {a.name: a.i for a in node.attribute}
            r = len(shp)
            start, end = at.get("start", 0), at.get("end", r)
            start = max(0, min(r, start + r if start < 0 else start))
            end = max(0, min(r, end + r if end < 0 else end))
            self._set_const(node.output[0], np.array(shp[start:end], dtype=np.int64))
            return
        from onnx.reference import ReferenceEvaluator
        feeds = {t: self.value(t) for t in node.input if t}
        try:
            ev = ReferenceEvaluator(node, opsets={"": self.opset})
            outs = ev.run(None, feeds)
        except Exception as e:
            raise StackSyntaxError(f"cannot evaluate the constant {op} node "
                                   f"{node.name!r}: {_first_line(e)}") from None
        for o, v in zip(node.output, outs):
            if o:
                self._set_const(o, v)

    def _infer(self, node) -> None:
        from onnx import defs, helper, numpy_helper, shape_inference
        types, data = {}, {}
        for t in node.input:
            if not t:
                continue
            shp = self.shapes.get(t)
            types[t] = helper.make_tensor_type_proto(self.types.get(t, 1), list(shp))
            if self.is_const(t):
                n = math.prod(shp)
                if n <= 4096 or self.types.get(t) in (6, 7):
                    data[t] = numpy_helper.from_array(self.value(t), t)
        result = {}
        try:
            schema = defs.get_schema(node.op_type, max_inclusive_version=self.opset,
                                     domain=node.domain or "")
            result = shape_inference.infer_node_outputs(
                schema, node, types, data,
                opset_imports=[helper.make_opsetid(d, v) for d, v in self.opsets.items()])
        except Exception:
            result = {}
        for o in node.output:
            if not o:
                continue
            tp = result.get(o)
            shp = None
            if tp is not None and tp.HasField("tensor_type") and tp.tensor_type.HasField("shape"):
                dims = tp.tensor_type.shape.dim
                if all(d.HasField("dim_value") for d in dims):
                    shp = tuple(int(d.dim_value) for d in dims)
                self.types[o] = tp.tensor_type.elem_type or 1
            self.shapes[o] = shp

    # ---- attribute helpers
    def attrs(self, node) -> dict:
        from onnx import helper
        out = {}
        for a in node.attribute:
            v = helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def cval(self, node, idx: int):
        """The constant value of input idx, or None when absent."""
        if idx >= len(node.input) or not node.input[idx]:
            return None
        t = node.input[idx]
        if not self.is_const(t):
            raise _NoTwin(f"its input {t!r} is computed at run time")
        return self.value(t)

    # ---- folds of multi-node idioms
    def consumers(self) -> Dict[str, List[_Entry]]:
        c: Dict[str, List[_Entry]] = {}
        for e in self.entries:
            if e.removed:
                continue
            for t in e.inputs:
                c.setdefault(t, []).append(e)
        for o in self.outputs:
            c.setdefault(o, []).append(None)
        return c

    def _fold(self) -> None:
        self._fold_gated()
        self._fold_gelu()
        self._fold_groupnorm()
        self._fold_linear_bias()
        self._fold_reshapes()

    def _only(self, cons, t, e) -> bool:
        return cons.get(t, []) == [e]

    def _fold_gated(self) -> None:
        """x * sigmoid(x) → silu; x * hardsigmoid(x) → hardswish."""
        cons = self.consumers()
        for e in self.entries:
            if e.removed or e.op != "Mul" or e.tokens[:1] != ["mul"] or len(e.inputs) != 2:
                continue
            for a, b in (e.inputs, e.inputs[::-1]):
                p = self.producer.get(b)
                if p is not None and not p.removed and p.op in ("Sigmoid", "HardSigmoid") \
                        and p.inputs == [a] and self._only(cons, b, e):
                    if p.op == "HardSigmoid":
                        at = self.attrs(p.node)
                        if abs(at.get("alpha", 0.2) - 1 / 6) > 1e-4 or \
                                abs(at.get("beta", 0.5) - 0.5) > 1e-4:
                            continue
                    p.removed = True
                    e.tokens = ["act:silu" if p.op == "Sigmoid" else "act:hardswish"]
                    e.inputs = [a]
                    break

    def _scalar(self, e: _Entry) -> Optional[float]:
        if e.const is None:
            return None
        v = self.value(e.const)
        return float(v.reshape(-1)[0]) if v.size == 1 else None

    def _fold_gelu(self) -> None:
        """x·½·(1 + erf(x/√2)) in any of the orders exporters write → gelu."""
        cons = self.consumers()
        for erf in self.entries:
            if erf.removed or erf.op != "Erf":
                continue
            div = self.producer.get(erf.inputs[0])
            if div is None or div.removed or not self._only(cons, erf.inputs[0], erf):
                continue
            s = self._scalar(div)
            if s is None or not ((div.op == "Div" and abs(s - math.sqrt(2)) < 1e-3) or
                                 (div.op == "Mul" and abs(s - 1 / math.sqrt(2)) < 1e-3)):
                continue
            x = div.inputs[0]
            add = (cons.get(erf.output) or [None])[0]
            if add is None or add.op != "Add" or len(cons[erf.output]) != 1 or \
                    self._scalar(add) is None or abs(self._scalar(add) - 1) > 1e-6:
                continue
            nxt = cons.get(add.output, [])
            if len(nxt) != 1 or nxt[0] is None or nxt[0].op != "Mul":
                continue
            m1 = nxt[0]
            group = [div, erf, add, m1]
            if m1.const is not None:            # (1+erf)·½, then x·that
                if self._scalar(m1) is None or abs(self._scalar(m1) - 0.5) > 1e-6:
                    continue
                m2s = cons.get(m1.output, [])
                if len(m2s) != 1 or m2s[0] is None or m2s[0].op != "Mul" or \
                        sorted(m2s[0].inputs) != sorted([x, m1.output]):
                    continue
                last = m2s[0]
            elif sorted(m1.inputs) == sorted([x, add.output]):   # x·(1+erf), then ·½
                m2s = cons.get(m1.output, [])
                if len(m2s) != 1 or m2s[0] is None or m2s[0].op != "Mul" or \
                        self._scalar(m2s[0]) is None or abs(self._scalar(m2s[0]) - 0.5) > 1e-6:
                    continue
                last = m2s[0]
            else:                                   # (x·½)·(1+erf)
                half = self.producer.get(next((t for t in m1.inputs if t != add.output), ""))
                if half is None or half.op != "Mul" or half.inputs != [x] or \
                        self._scalar(half) is None or abs(self._scalar(half) - 0.5) > 1e-6 or \
                        not self._only(cons, half.output, m1):
                    continue
                group.append(half)
                last = m1
            for g in group:
                if g is not last:
                    g.removed = True
            last.tokens, last.inputs, last.error, last.alias = ["gelu"], [x], None, False
            last.name = last.name if last is not m1 else m1.name
            cons = self.consumers()

    def _fold_groupnorm(self) -> None:
        """Reshape(N,G,-1) → InstanceNormalization → Reshape back [→ Mul γ → Add β]
        (both exporters' GroupNorm) → gn:G."""
        cons = self.consumers()
        for inn in self.entries:
            if inn.removed or inn.op != "InstanceNormalization":
                continue
            r1 = self.producer.get(inn.inputs[0])
            if r1 is None or r1.op != "Reshape" or not self._only(cons, inn.inputs[0], inn):
                continue
            x = r1.inputs[0]
            xs, gs = self.shape(x), self.shape(inn.inputs[0])
            if len(gs) != 3 or gs[0] != xs[0] or len(xs) < 3:
                continue
            after = cons.get(inn.output, [])
            if len(after) != 1 or after[0] is None or after[0].op != "Reshape" or \
                    self.shape(after[0].output) != xs:
                continue
            r2 = after[0]
            group, last, affine = [r1, inn, r2], r2, False
            nxt = cons.get(r2.output, [])
            if len(nxt) == 1 and nxt[0] is not None and nxt[0].op == "Mul" and \
                    nxt[0].tokens == ["layerscale"]:
                mul = nxt[0]
                adds = cons.get(mul.output, [])
                if len(adds) == 1 and adds[0] is not None and adds[0].op == "Add" and \
                        adds[0].const is not None and \
                        _per_channel(self.shape(adds[0].const), xs):
                    group += [mul, adds[0]]
                    last, affine = adds[0], True
            for g in group:
                if g is not last:
                    g.removed = True
            last.tokens = [f"gn:{gs[1]}" + ("" if affine else ",affine=false")]
            last.inputs, last.error, last.alias, last.const = [x], None, False, None
            last.name = inn.name
            cons = self.consumers()

    def _fold_linear_bias(self) -> None:
        """MatMul(x, W) + b → linear with bias."""
        cons = self.consumers()
        for add in self.entries:
            if add.removed or add.op != "Add" or add.const is None or len(add.inputs) != 1:
                continue
            mm = self.producer.get(add.inputs[0])
            if mm is None or mm.removed or mm.op != "MatMul" or not mm.tokens or \
                    not self._only(cons, add.inputs[0], add):
                continue
            out = self.shape(mm.output)[-1]
            bs = self.shape(add.const)
            if math.prod(bs) != out or (bs and bs[-1] != out):
                continue
            mm.tokens = [mm.tokens[0].replace(",bias=false", "")]
            mm.removed = True
            add.tokens, add.inputs, add.error, add.alias = mm.tokens, mm.inputs, None, False
            add.name = mm.name
            cons = self.consumers()

    def _fold_reshapes(self) -> None:
        """Maximal chains of data-path Reshape/Transpose/Flatten/Squeeze/Unsqueeze,
        cut into the fewest consecutive pieces that each compute one layer
        (found by running the chain on an index tensor)."""
        cons = self.consumers()
        chained = [e for e in self.entries if not e.removed and e.op in _RESHAPES
                   and e.error == "chain"]
        for e in chained:
            if e.removed or e.error != "chain":
                continue  # already resolved as part of an earlier chain
            p = self.producer.get(e.inputs[0])
            if p is not None and not p.removed and p.error == "chain" and p.op in _RESHAPES \
                    and self._only(cons, e.inputs[0], e):
                continue  # not the start of a chain
            chain = [e]
            while True:
                nxt = cons.get(chain[-1].output, [])
                if len(nxt) == 1 and nxt[0] is not None and nxt[0].error == "chain" \
                        and not nxt[0].removed:
                    chain.append(nxt[0])
                else:
                    break
            found = self._resolve_chain(chain)
            x = e.inputs[0]
            last = chain[-1]
            for c in chain[:-1]:
                c.removed = True
            last.inputs, last.name = [x], chain[0].name
            if found is None:
                ops = "→".join(c.op for c in chain)
                last.op = chain[0].op
                last.error = (f"{ops} from {'x'.join(map(str, self.shape(x)))} to "
                              f"{'x'.join(map(str, self.shape(last.output)))} is no layer "
                              f"convcalc knows (flatten, permute, shuffle, pixelshuffle, "
                              f"pixelunshuffle)")
            elif not found:
                last.alias, last.error, last.tokens = True, None, []
            else:
                last.error = None
                last.tokens = [tok for tok, _ in found]
                last.names = [chain[max(k - 1, 0)].name for _, k in found]

    def _resolve_chain(self, chain) -> Optional[List[Tuple[str, int]]]:
        """The layers a chain of reshapes computes, as (token, k): the layer's
        output is the chain's tensor after its k-th node (a Reshape may hold
        the end of one layer and the start of the next, as exporters merge
        them).  Found by running the chain on an index tensor; [] is the
        identity, None when no sequence of layers does it."""
        import numpy as np
        src = self.shape(chain[0].inputs[0])
        F = [np.arange(math.prod(src), dtype=np.int64).reshape(src)]
        for c in chain:
            if c.op == "Transpose":
                F.append(F[-1].transpose(_perm(c) or list(range(F[-1].ndim))[::-1]))
            else:
                F.append(F[-1].reshape(self.shape(c.output)))
        n = len(chain)
        flat = [f.reshape(-1) for f in F]
        dims = {d for f in F for d in f.shape}
        same_after = [all(c.op != "Transpose" for c in chain[k:]) for k in range(n + 1)]

        def candidates(cur, pos):
            s = cur.shape
            for t in range(pos, n):           # the next transpose, on this very shape
                if chain[t].op == "Transpose":
                    if F[t].shape == s and np.array_equal(flat[t], cur.reshape(-1)):
                        perm = _perm(chain[t]) or list(range(len(s)))[::-1]
                        yield "permute:" + ",".join(map(str, perm)), cur.transpose(perm)
                    break
            if len(s) >= 3:
                N, C = s[0], s[1]
                for g in sorted(dims):
                    if 1 < g < C and C % g == 0:
                        yield f"shuffle:{g}", cur.reshape((N, g, C // g) + s[2:]) \
                            .swapaxes(1, 2).reshape(s)
            if len(s) == 4:
                N, C, H, W = s
                for r in sorted(dims):
                    if r > 1 and C % (r * r) == 0:
                        yield f"pixelshuffle:{r}", cur.reshape(N, C // (r * r), r, r, H, W) \
                            .transpose(0, 1, 4, 2, 5, 3).reshape(N, C // (r * r), H * r, W * r)
                    if r > 1 and H % r == 0 and W % r == 0:
                        yield f"pixelunshuffle:{r}", cur.reshape(N, C, H // r, r, W // r, r) \
                            .transpose(0, 1, 3, 5, 2, 4).reshape(N, C * r * r, H // r, W // r)

        def search(cur, pos, depth):
            if same_after[pos] and np.array_equal(cur.reshape(-1), flat[n]):
                out = F[n].shape
                if cur.shape == out:
                    return []
                if len(cur.shape) >= 2 and out == (cur.shape[0], math.prod(cur.shape[1:])):
                    return [("flatten", n)]
            if depth == 0:
                return None
            for tok, R in candidates(cur, pos):
                r = R.reshape(-1)
                for k in range(pos, n + 1):
                    if np.array_equal(flat[k], r):
                        rest = search(R, k, depth - 1)
                        if rest is not None:
                            return [(tok, k)] + rest
                        break
            return None

        return search(F[0], 0, n + 1)

    # ---- refusing
    def _refuse(self) -> None:
        bad: Dict[str, list] = {}
        errs = [e for e in self.entries if not e.removed and e.error is not None]
        if any(not e.secondary for e in errs):
            errs = [e for e in errs if not e.secondary]
        for e in errs:
            b = bad.setdefault(e.op, [0, e.name, e.error])
            b[0] += 1
        if not bad:
            return
        parts = []
        for op, (count, first, reason) in bad.items():
            parts.append(f"{op} ×{count} (first: {first}" + (f"; {reason}" if reason else "") + ")")
        raise StackSyntaxError(f"ONNX import: {len(bad)} op type{'s' if len(bad) > 1 else ''} "
                               f"with no convcalc twin: " + ", ".join(parts))

    # ---- writing
    def _write(self) -> List[str]:
        alias: Dict[str, str] = {}
        ids: Dict[str, str] = {self.input_name: G.INPUT}

        def tid(t: str) -> str:
            while t in alias:
                t = alias[t]
            if t not in ids:
                ids[t] = f"v{len(ids)}"
            return ids[t]

        nodes: List[G.Node] = []
        for e in self.entries:
            if e.removed:
                continue
            if e.alias:
                alias[e.output] = e.inputs[0]
                continue
            ins = [tid(t) for t in e.inputs]
            for k, tok in enumerate(e.tokens):
                last = k == len(e.tokens) - 1
                out = tid(e.output) if last else f"{tid(e.output)}_{k}"
                kind = tok.split(":", 1)[0]
                src = e.names[k] if e.names else e.name
                if kind in G.JOINS and ":" not in tok:
                    nodes.append(G.Node(src, kind, ins, out))
                else:
                    nodes.append(G.Node(src, tok, ins[:1] if k == 0 else ins, out))
                ins = [out]
        for t in self.outputs:
            if self.is_const(t):
                raise StackSyntaxError(f"the model's output {t!r} is a constant")
        return G.write(nodes, tid(self.outputs[0]))


class _NoTwin(Exception):
    """A known op used in a way no convcalc layer matches (the reason)."""


def _dims_text(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in (dims or []))


def _per_channel(cs: Shape, xs: Shape) -> bool:
    """A constant that holds one value per channel of a channels-first xs."""
    c = xs[1]
    if len(cs) == len(xs):
        return cs[0] == 1 and cs[1] == c and all(d == 1 for d in cs[2:])
    return len(cs) == len(xs) - 1 and cs[0] == c and all(d == 1 for d in cs[1:])


def _perm(e: _Entry):
    from onnx import helper
    for a in e.node.attribute:
        if a.name == "perm":
            return list(helper.get_attribute_value(a))
    return None


# ---------------------------------------------------------------- formatting

def _num(v) -> str:
    v = float(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _dims(vals) -> str:
    vals = [int(v) for v in vals]
    return str(vals[0]) if len(set(vals)) == 1 else "x".join(map(str, vals))


def _pads_text(pads: Sequence[int], rank: int) -> str:
    b, a = list(pads[:rank]), list(pads[rank:])
    if b == a:
        return _dims(b)
    return "x".join(f"{x}:{y}" if x != y else str(x) for x, y in zip(b, a))


def _kv(token: str, **kw) -> str:
    parts = [token]
    for k, v in kw.items():
        if v is None:
            continue
        parts.append(k if v is True else f"{k}={v}")
    head, rest = parts[0], parts[1:]
    if not rest:
        return head
    return head + ("," if ":" in head else ":") + ",".join(rest)


def _auto_pad(at, rank):
    mode = at.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = list(at.get("pads") or [0] * (2 * rank))
        return None if not any(pads) else _pads_text(pads, rank)
    return {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}.get(mode, mode)


def _pool_pads(at, rank, ins, k, s, d):
    """Explicit pads for a pool (auto_pad resolved at the input size)."""
    mode = at.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return list(at.get("pads") or [0] * (2 * rank))
    if mode == "VALID":
        return [0] * (2 * rank)
    before, after = [], []
    for i, kk, ss, dd in zip(ins, k, s, d):
        total = max((-(-i // ss) - 1) * ss + (kk - 1) * dd + 1 - i, 0)
        lo = total // 2 if mode == "SAME_UPPER" else total - total // 2
        before.append(lo)
        after.append(total - lo)
    return before + after


# ---------------------------------------------------------------- the table

def _conv_weights(im: _Importer, node):
    """(attributes, weight shape, spatial rank) of a Conv or ConvTranspose, whose
    weights must be in the file: a layer token has no run-time weights."""
    if not im.is_const(node.input[1]):
        raise _NoTwin("its weights are computed at run time")
    w = im.shape(node.input[1])
    return im.attrs(node), w, len(w) - 2


def _conv(im: _Importer, node, name, ins):
    at, w, rank = _conv_weights(im, node)
    k = at.get("kernel_shape") or w[2:]
    bias = len(node.input) > 2 and node.input[2] != ""
    tok = _kv(f"conv:{w[0]}", k=_dims(k),
              s=_dims(at["strides"]) if any(v != 1 for v in at.get("strides", [1])) else None,
              p=_auto_pad(at, rank),
              d=_dims(at["dilations"]) if any(v != 1 for v in at.get("dilations", [1])) else None,
              g=at["group"] if at.get("group", 1) != 1 else None,
              bias=None if bias else "false")
    im.emit(node, name, ins[:1], tok)


def _tconv(im: _Importer, node, name, ins):
    at, w, rank = _conv_weights(im, node)
    g = at.get("group", 1)
    k = list(at.get("kernel_shape") or w[2:])
    s = list(at.get("strides") or [1] * rank)
    d = list(at.get("dilations") or [1] * rank)
    op = list(at.get("output_padding") or [0] * rank)
    bias = len(node.input) > 2 and node.input[2] != ""
    xs = im.shape(ins[0])
    kw = dict(k=_dims(k), s=_dims(s) if any(v != 1 for v in s) else None)
    if at.get("output_shape"):
        want = list(at["output_shape"])[-rank:]
        full = [ss * (i - 1) + o + (kk - 1) * dd + 1
                for i, ss, o, kk, dd in zip(xs[2:], s, op, k, d)]
        total = [f - w_ for f, w_ in zip(full, want)]
        if all(t <= 0 and -t + o < max(ss, dd) for t, o, ss, dd in zip(total, op, s, d)):
            kw["size"] = "x".join(map(str, want))
        else:
            upper = at.get("auto_pad") == "SAME_UPPER"
            b = [t // 2 if upper else t - t // 2 for t in total]
            a = [t - x for t, x in zip(total, b)]
            if any(t < 0 for t in total):
                raise _NoTwin(f"output_shape {want} needs negative padding")
            kw["p"] = _pads_text(b + a, rank)
            kw["op"] = _dims(op) if any(op) else None
    else:
        kw["p"] = _auto_pad(at, rank)
        kw["op"] = _dims(op) if any(op) else None
    kw["d"] = _dims(d) if any(v != 1 for v in d) else None
    kw["g"] = g if g != 1 else None
    kw["bias"] = None if bias else "false"
    im.emit(node, name, ins[:1], _kv(f"tconv:{w[1] * g}", **kw))


def _pool(im: _Importer, node, name, ins):
    at = im.attrs(node)
    if len([o for o in node.output if o]) > 1:
        raise _NoTwin("its indices output has no twin")
    k = list(at["kernel_shape"])
    rank = len(k)
    s = list(at.get("strides") or [1] * rank)
    d = list(at.get("dilations") or [1] * rank)
    xs = im.shape(ins[0])
    pads = _pool_pads(at, rank, xs[2:], k, s, d)
    kind = "maxpool" if node.op_type == "MaxPool" else "avgpool"
    if kind == "avgpool" and any(v != 1 for v in d):
        raise _NoTwin("dilated average pooling has no PyTorch twin")
    kw = dict(s=_dims(s), p=_pads_text(pads, rank) if any(pads) else None,
              d=_dims(d) if any(v != 1 for v in d) else None,
              ceil=True if at.get("ceil_mode", 0) else None)
    if kind == "avgpool" and any(pads) and not at.get("count_include_pad", 0):
        kw["count_include_pad"] = "false"
    im.emit(node, name, ins[:1], _kv(f"{kind}:{_dims(k)}", **kw))


def _global(im: _Importer, node, name, ins):
    im.emit(node, name, ins[:1], "gap" if node.op_type == "GlobalAveragePool" else "amaxpool:1")


def _reduce(im: _Importer, node, name, ins):
    at = im.attrs(node)
    xs = im.shape(ins[0])
    r = len(xs)
    axes = at.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = [int(a) for a in im.cval(node, 1).reshape(-1)]
    if axes is None:
        raise _NoTwin("a reduction over every dim has no twin")
    axes = sorted(a % r for a in axes)
    if axes != list(range(2, r)) or r < 3:
        raise _NoTwin(f"a reduction over dims {axes} of a {r}-D tensor has no twin "
                      f"(only over every spatial dim: gap)")
    tok = "gap" if node.op_type == "ReduceMean" else "amaxpool:1"
    im.emit(node, name, ins[:1], [tok] if at.get("keepdims", 1) else [tok, "flatten"])


def _resize(im: _Importer, node, name, ins):
    at = im.attrs(node)
    xs = im.shape(ins[0])
    r = len(xs)
    if node.op_type == "Upsample":
        mode, ctm, nm = at.get("mode", "nearest"), "asymmetric", "floor"
        scales = at.get("scales")
        if scales is None:
            scales = im.cval(node, 1)
        sizes = None
    else:
        mode = at.get("mode", "nearest")
        ctm = at.get("coordinate_transformation_mode", "half_pixel")
        nm = at.get("nearest_mode", "round_prefer_floor")
        scales = im.cval(node, 2)
        sizes = im.cval(node, 3)
    if at.get("antialias", 0):
        raise _NoTwin("antialias has no twin in `up`")
    if ctm == "tf_crop_and_resize":
        raise _NoTwin("tf_crop_and_resize has no twin")
    if sizes is not None and sizes.size and at.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise _NoTwin(f"keep_aspect_ratio_policy={at['keep_aspect_ratio_policy']} has no twin")
    axes = at.get("axes")
    axes = [a % r for a in axes] if axes else list(range(r))

    def full(vals, fill):
        out = [fill(i) for i in range(r)]
        for a, v in zip(axes, vals):
            out[a] = v
        return out

    spatial = r - 2
    if spatial < 1:
        raise _NoTwin("resizing a tensor without spatial dims has no twin")
    if sizes is not None and sizes.size:
        sz = full([int(v) for v in sizes.reshape(-1)], lambda i: xs[i])
        if sz[:2] != list(xs[:2]):
            raise _NoTwin("resizing the batch or channel dim has no twin")
        by = dict(size="x".join(map(str, sz[2:])))
    elif scales is not None and scales.size:
        sc = full([float(v) for v in scales.reshape(-1)], lambda i: 1.0)
        if sc[:2] != [1.0, 1.0]:
            raise _NoTwin("scaling the batch or channel dim has no twin")
        vals = [_num(v) for v in sc[2:]]
        by = dict(scale=vals[0] if len(set(vals)) == 1 else "x".join(vals))
    else:
        raise _NoTwin("neither scales nor sizes is given")
    align = None
    if mode == "nearest":
        if ctm == "asymmetric" and nm == "floor":
            m = "nearest"
        elif (ctm == "half_pixel" and nm == "round_prefer_ceil") or \
                (ctm == "tf_half_pixel_for_nn" and nm == "floor"):
            m = "nearest-exact"
        else:
            raise _NoTwin(f"nearest with coordinate_transformation_mode={ctm}, "
                          f"nearest_mode={nm} has no PyTorch twin (nearest is asymmetric + floor, "
                          f"nearest-exact half_pixel + round_prefer_ceil)")
    elif mode in ("linear", "cubic"):
        if mode == "cubic":
            if abs(at.get("cubic_coeff_a", -0.75) + 0.75) > 1e-6 or at.get("exclude_outside", 0):
                raise _NoTwin("cubic with cubic_coeff_a other than -0.75 (or exclude_outside) "
                              "has no PyTorch twin")
            if spatial != 2:
                raise _NoTwin(f"bicubic resizing of {spatial} spatial dims has no PyTorch twin")
            m = "bicubic"
        else:
            m = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(spatial)
            if m is None:
                raise _NoTwin(f"linear resizing of {spatial} spatial dims has no PyTorch twin")
        if ctm == "align_corners":
            align = True
        elif ctm not in ("half_pixel", "pytorch_half_pixel"):
            raise _NoTwin(f"{mode} with coordinate_transformation_mode={ctm} has no PyTorch twin "
                          f"(half_pixel, or align_corners)")
    else:
        raise _NoTwin(f"mode={mode} has no twin")
    im.emit(node, name, ins[:1], _kv("up", **by, mode=m, align_corners=align))


def _bn(im: _Importer, node, name, ins):
    im.emit(node, name, ins[:1], "bn")


def _ln(im: _Importer, node, name, ins):
    at = im.attrs(node)
    r = len(im.shape(ins[0]))
    axis = at.get("axis", -1) % r
    if axis < 1:
        raise _NoTwin("a layer norm over the batch dim has no twin")
    bias = len(node.input) > 2 and node.input[2] != ""
    im.emit(node, name, ins[:1], _kv(f"ln:{r - axis}", bias=None if bias else "false"))


def _instnorm(im: _Importer, node, name, ins):
    im.emit(node, name, ins[:1], "instnorm:affine")


def _groupnorm(im: _Importer, node, name, ins):
    at = im.attrs(node)
    groups = at["num_groups"]
    c = im.shape(ins[0])[1]
    sc = im.shape(node.input[1])
    if math.prod(sc) != c:
        raise _NoTwin(f"a scale of {math.prod(sc)} values (one per group) for {c} channels "
                      f"has no twin (nn.GroupNorm has one per channel)")
    im.emit(node, name, ins[:1], f"gn:{groups}")


def _softmax(im: _Importer, node, name, ins):
    at = im.attrs(node)
    r = len(im.shape(ins[0]))
    axis = at.get("axis", -1 if im.opset >= 13 else 1) % r
    if im.opset < 13 and axis != r - 1:
        raise _NoTwin("softmax before opset 13 flattens the dims after axis")
    kind = "softmax" if node.op_type == "Softmax" else "logsoftmax"
    im.emit(node, name, ins[:1], f"{kind}:{axis}")


def _act(im: _Importer, node, name, ins):
    im.emit(node, name, ins[:1], _ACTS[node.op_type])


def _identity(im: _Importer, node, name, ins):
    im.alias(node, name, ins[0])


def _dropout(im: _Importer, node, name, ins):
    ratio = im.cval(node, 1)
    at = im.attrs(node)
    p = float(ratio) if ratio is not None else at.get("ratio", 0.5)
    im.emit(node, name, ins[:1], f"dropout:{_num(p)}")


def _clip(im: _Importer, node, name, ins):
    at = im.attrs(node)
    lo, hi = at.get("min"), at.get("max")
    if len(node.input) > 1:
        v = im.cval(node, 1)
        lo = None if v is None else float(v)
    if len(node.input) > 2:
        v = im.cval(node, 2)
        hi = None if v is None else float(v)
    if lo == 0 and hi == 6:
        tok = "act:relu6"
    elif lo == 0 and (hi is None or math.isinf(hi)):
        tok = "relu"
    elif lo == -1 and hi == 1:
        tok = "act:hardtanh"
    else:
        raise _NoTwin(f"Clip({lo}, {hi}) has no twin (relu6 is Clip(0, 6))")
    im.emit(node, name, ins[:1], tok)


def _binary(im: _Importer, node, name, ins):
    op = node.op_type
    consts = [t for t in node.input if t and im.is_const(t)]
    if len(ins) >= 2 and not consts:
        if op in ("Add", "Sum"):
            im.emit(node, name, ins, "add")
        elif op == "Mul":
            im.emit(node, name, ins, "mul")
        else:
            raise _NoTwin(f"{op} of two tensors has no twin (add and mul do)")
        return
    if len(ins) == 1 and op == "Sum":
        im.alias(node, name, ins[0])
        return
    if len(ins) != 1 or len(consts) != 1:
        raise _NoTwin("its operands are not one tensor and one constant")
    c = consts[0]
    v = im.value(c)
    xs, cs = im.shape(ins[0]), im.shape(c)
    out = im.shape(node.output[0])
    if out != xs:
        raise _NoTwin(f"broadcasting the constant {'x'.join(map(str, cs))} changes the shape")
    if op == "Mul" and _per_channel(cs, xs):
        # a learned per-channel scale, whatever its values (a fresh one is all ones)
        im.emit(node, name, ins, "layerscale", const=c)
        return
    if op in ("Add", "Sub") and not v.any():
        e = im.alias(node, name, ins[0])
        e.const = c  # a zero bias: dropped, unless a fold (GroupNorm, linear) owns it
        return
    if (op == "Mul" or (op == "Div" and node.input[0] == ins[0])) and (v == 1).all():
        im.alias(node, name, ins[0])
        return
    e = im._add(_Entry(name, op, list(ins), node.output[0], node=node, const=c,
                       error=f"{op} by a constant of shape {'x'.join(map(str, cs)) or 'scalar'} "
                             f"has no twin"))
    return e


def _concat(im: _Importer, node, name, ins):
    at = im.attrs(node)
    r = len(im.shape(node.output[0]))
    if any(im.is_const(t) for t in node.input if t):
        raise _NoTwin("concatenating a constant has no twin")
    if len(ins) == 1:
        im.alias(node, name, ins[0])
        return
    if at.get("axis", 1) % r != 1:
        raise _NoTwin(f"concatenation along dim {at.get('axis') % r} has no twin (channels only)")
    im.emit(node, name, ins, "concat")


def _chunk_n(C: int, sizes: Sequence[int]) -> Optional[int]:
    for n in range(1, C + 1):
        step = -(-C // n)
        got = [min(step, C - i) for i in range(0, C, step)]
        if got == list(sizes):
            return n
    return None


def _crop_pads(xs, axis, start, end) -> str:
    r = len(xs)
    b = [0] * (r - 2)
    a = [0] * (r - 2)
    b[axis - 2] = -start
    a[axis - 2] = -(xs[axis] - end)
    return "pad:" + _pads_text(b + a, r - 2)


def _split(im: _Importer, node, name, ins):
    at = im.attrs(node)
    xs = im.shape(ins[0])
    r = len(xs)
    axis = at.get("axis", 0) % r
    outs = list(node.output)
    sizes = [im.shape(o)[axis] for o in outs]
    if axis == 0:
        raise _NoTwin("splitting the batch has no twin")
    if axis == 1:
        n = _chunk_n(xs[1], sizes)
        if n is None:
            raise _NoTwin(f"a split of {xs[1]} channels into {sizes} is no x.chunk")
        for i, o in enumerate(outs):
            if o:
                im.emit(node, name, ins[:1], f"chunk:{n},i={i}", output=o)
        return
    start = 0
    for o, sz in zip(outs, sizes):
        if o:
            im.emit(node, name, ins[:1], _crop_pads(xs, axis, start, start + sz), output=o)
        start += sz


def _slice(im: _Importer, node, name, ins):
    xs = im.shape(ins[0])
    r = len(xs)
    at = im.attrs(node)
    if len(node.input) > 1:
        starts = [int(v) for v in im.cval(node, 1).reshape(-1)]
        ends = [int(v) for v in im.cval(node, 2).reshape(-1)]
        axes = im.cval(node, 3)
        axes = [int(v) for v in axes.reshape(-1)] if axes is not None else list(range(len(starts)))
        steps = im.cval(node, 4)
        steps = [int(v) for v in steps.reshape(-1)] if steps is not None else [1] * len(starts)
    else:
        starts, ends = list(at["starts"]), list(at["ends"])
        axes = list(at.get("axes") or range(len(starts)))
        steps = [1] * len(starts)
    tokens = []
    pads_b, pads_a = [0] * (r - 2), [0] * (r - 2)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax %= r
        n = xs[ax]
        if sp != 1:
            raise _NoTwin(f"a slice with step {sp} has no twin")
        st = max(0, min(n, st + n if st < 0 else st))
        en = max(0, min(n, en + n if en < 0 else en))
        if st == 0 and en == n:
            continue
        if ax == 0:
            raise _NoTwin("slicing the batch has no twin")
        if ax == 1:
            L = en - st
            ok = None
            for k in range(1, n + 1):
                step = -(-n // k)
                if step == L and st % step == 0 and min(st + step, n) == en:
                    ok = k
                    break
                if step < L:
                    break
            if ok is None:
                raise _NoTwin(f"channels {st}:{en} of {n} are no x.chunk")
            tokens.append(f"chunk:{ok},i={st // L}")
        else:
            pads_b[ax - 2] -= st
            pads_a[ax - 2] -= n - en
    if any(pads_b) or any(pads_a):
        tokens.append("pad:" + _pads_text(pads_b + pads_a, r - 2))
    if not tokens:
        im.alias(node, name, ins[0])
        return
    im.emit(node, name, ins[:1], tokens)


def _pad(im: _Importer, node, name, ins):
    at = im.attrs(node)
    xs = im.shape(ins[0])
    r = len(xs)
    if len(node.input) > 1 and node.input[1]:
        pads = [int(v) for v in im.cval(node, 1).reshape(-1)]
        value = im.cval(node, 2)
        value = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
        axes = im.cval(node, 3)
    else:
        pads = list(at.get("pads", []))
        value = at.get("value", 0.0)
        axes = None
    axes = [int(a) % r for a in axes.reshape(-1)] if axes is not None else list(range(r))
    k = len(axes)
    b, a = [0] * r, [0] * r
    for i, ax in enumerate(axes):
        b[ax], a[ax] = pads[i], pads[k + i]
    if b[0] or a[0] or b[1] or a[1]:
        raise _NoTwin("padding the batch or channel dim has no twin")
    mode = {"constant": "zeros", "reflect": "reflect", "edge": "replicate",
            "wrap": "circular"}.get(at.get("mode", "constant"))
    if mode is None:
        raise _NoTwin(f"mode={at.get('mode')} has no twin")
    if r < 3:
        raise _NoTwin("padding a tensor without spatial dims has no twin")
    if not any(b) and not any(a):
        im.alias(node, name, ins[0])
        return
    tok = _kv("pad:" + _pads_text(b[2:] + a[2:], r - 2),
              mode=None if mode == "zeros" else mode,
              value=_num(value) if mode == "zeros" and value != 0 else None)
    im.emit(node, name, ins[:1], tok)


def _gemm(im: _Importer, node, name, ins):
    at = im.attrs(node)
    if at.get("transA", 0):
        raise _NoTwin("transA has no twin")
    if not im.is_const(node.input[1]) or len(ins) != 1:
        raise _NoTwin("a product of two tensors has no twin (linear needs constant weights)")
    w = im.shape(node.input[1])
    if len(im.shape(ins[0])) != 2:
        raise _NoTwin("Gemm on a tensor that is not 2-D")
    out, inn = (w[0], w[1]) if at.get("transB", 0) else (w[1], w[0])
    bias = len(node.input) > 2 and node.input[2] != ""
    if bias and not im.is_const(node.input[2]):
        raise _NoTwin("its bias is computed at run time")
    im.emit(node, name, ins[:1], _kv(f"linear:{out}", **{"in": inn},
                                      bias=None if bias else "false"))


def _matmul(im: _Importer, node, name, ins):
    if len(ins) != 1 or ins[0] != node.input[0] or not im.is_const(node.input[1]):
        raise _NoTwin("a product of two tensors has no twin (linear needs constant weights)")
    w = im.shape(node.input[1])
    if len(w) != 2:
        raise _NoTwin(f"a product with a {len(w)}-D constant has no twin")
    im.emit(node, name, ins[:1], f"linear:{w[1]},in={w[0]},bias=false")


def _reshape(im: _Importer, node, name, ins):
    # resolved as a chain in _fold_reshapes; an unresolved one is refused there
    im._add(_Entry(name, node.op_type, ins[:1], node.output[0], node=node, error="chain"))


def _depth_to_space(im: _Importer, node, name, ins):
    at = im.attrs(node)
    r = at["blocksize"]
    xs = im.shape(ins[0])
    if len(xs) != 4:
        raise _NoTwin("only 4-D inputs")
    if at.get("mode", "DCR") != "CRD" and xs[1] // (r * r) != 1:
        raise _NoTwin("mode DCR orders channels unlike PyTorch's pixel_shuffle (CRD)")
    im.emit(node, name, ins[:1], f"pixelshuffle:{r}")


def _space_to_depth(im: _Importer, node, name, ins):
    at = im.attrs(node)
    r = at["blocksize"]
    xs = im.shape(ins[0])
    if len(xs) != 4:
        raise _NoTwin("only 4-D inputs")
    if xs[1] != 1:
        raise _NoTwin("SpaceToDepth orders channels unlike PyTorch's pixel_unshuffle "
                      "(they agree only on one channel)")
    im.emit(node, name, ins[:1], f"pixelunshuffle:{r}")


_MAP = {
    "Conv": _conv, "ConvTranspose": _tconv,
    "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _global, "GlobalMaxPool": _global,
    "ReduceMean": _reduce, "ReduceMax": _reduce,
    "Resize": _resize, "Upsample": _resize,
    "BatchNormalization": _bn, "LayerNormalization": _ln,
    "InstanceNormalization": _instnorm, "GroupNormalization": _groupnorm,
    "Softmax": _softmax, "LogSoftmax": _softmax,
    "Identity": _identity, "Dropout": _dropout, "Clip": _clip,
    "Add": _binary, "Mul": _binary, "Sub": _binary, "Div": _binary, "Sum": _binary,
    "Concat": _concat, "Split": _split, "Slice": _slice, "Pad": _pad,
    "Gemm": _gemm, "MatMul": _matmul,
    "DepthToSpace": _depth_to_space, "SpaceToDepth": _space_to_depth,
    **{op: _reshape for op in _RESHAPES},
    **{op: _act for op in _ACTS},
}
