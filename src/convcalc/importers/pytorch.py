"""Import a PyTorch ``nn.Module`` as a convcalc stack (SPEC §3c).

The module is traced with ``torch.fx.symbolic_trace`` (``torch.export`` where
fx cannot trace it) and run once, in eval mode under ``no_grad``, on a
random tensor of the input shape, so every node's value is known.  Each node
is then looked up in a table — ``call_module`` by module type first, then
``call_function`` / ``call_method`` (and ``torch.export``'s ATen ops) by the
function — whose entry returns our token; shape arithmetic (``x.size()``,
``x.shape[-2:]``) folds to constants, views that are flattens or channel
shuffles are recognised, and :mod:`.graph` wires the result with
``save``/``from``/``add``/``mul``/``concat``.

An op without a twin in the language is never dropped: the import fails with
one :class:`~convcalc.errors.StackSyntaxError` listing every such op, its
count and the first node that used it.  Only inference identities (dropout,
``Identity``, stochastic depth, ``contiguous``) may vanish.

torch is imported inside the functions: ``import convcalc`` never needs it.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import StackSyntaxError
from ..records import record
from .graph import INPUT, Node, write

Shape = Tuple[int, ...]

# a token may name a tensor by id before the writer has named it: up:size=<ref>
_REF = "\x00ref:{}\x00"
_REF_RE = re.compile("\x00ref:(.*?)\x00")


@record
class Imported:
    """What an import made: the stack, the model's output shape, and the
    nodes behind the tokens with each node's output shape as torch computed
    it (one node per row of the analysis, save and from aside)."""

    tokens: List[str]
    output_shape: Shape
    nodes: List[Node]
    shapes: List[Shape]
    tracer: str  # "fx" or "export"


def import_torch(module, input_shape: Sequence[int]) -> Tuple[List[str], Shape]:
    """The tokens of ``module`` (an ``nn.Module``) at ``input_shape`` (batch
    first), each labelled with its source name, and the output shape torch
    computes.  Raises :class:`StackSyntaxError` (exit 2) listing every op
    that has no convcalc twin."""
    got = trace_torch(module, input_shape)
    return got.tokens, got.output_shape


def trace_torch(module, input_shape: Sequence[int]) -> Imported:
    """:func:`import_torch` with the nodes and per-node shapes (for tests and
    tools that need to line rows up with the source graph)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise StackSyntaxError("importing a PyTorch module needs torch: pip install torch") \
            from None
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise StackSyntaxError(f"input shape {'x'.join(map(str, shape))}: batch and channels "
                               f"first, every size at least 1")
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            first = next((t for t in _tensors(module) if t.is_floating_point()), None)
            device = first.device if first is not None else torch.device("cpu")
            dtype = first.dtype if first is not None else torch.float32  # a .double() model
            if device.type == "meta":  # a module built on the meta device: shapes only
                x = torch.zeros(shape, device=device, dtype=dtype)
            else:
                x = torch.randn(shape, generator=torch.Generator().manual_seed(0),
                                dtype=dtype).to(device)
            try:
                walker = _trace_fx(torch, module, x)
                tracer = "fx"
            except _TraceFailed:
                walker = _trace_export(torch, module, x)
                tracer = "export"
            walker.walk()
    finally:
        for m, training in modes:
            m.training = training
    return walker.result(tracer)


def _tensors(module):
    yield from module.parameters()
    yield from module.buffers()


class _TraceFailed(Exception):
    pass


class _No(Exception):
    """This node has no twin; ``what`` refines the op's name."""

    def __init__(self, what: Optional[str] = None):
        super().__init__(what)
        self.what = what


# ---------------------------------------------------------------------------
# the values the walker keeps for each source node
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _T:
    """A tensor of the stack: the graph writer's id and torch's shape.
    ``perm`` is its layout after permutes (``x.permute(0,2,3,1)`` makes it
    (0, 2, 3, 1)); () is batch, channels, spatial…"""
    id: str
    shape: Shape
    perm: Tuple[int, ...] = ()


@dataclass(frozen=True)
class _Param:
    """A parameter, buffer or constant tensor read by the forward."""
    name: str
    shape: Shape


@dataclass(frozen=True)
class _Chunks:
    """``x.chunk(n, dim=1)`` (or an equal ``split``) before ``[i]`` picks one."""
    src: _T
    n: int
    sizes: Tuple[int, ...]


@dataclass(frozen=True)
class _Grouped:
    """A channel shuffle in progress: view(N, g, C/g, …), then transposed."""
    src: _T
    g: int
    transposed: bool


@dataclass(frozen=True)
class _First:
    """A tuple-valued op (max pool with indices, ATen batch norm): [0] is ``t``."""
    t: _T


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------

def _num(v) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _per_dim(v, n: int) -> Tuple:
    if isinstance(v, (list, tuple)):
        v = tuple(v)
        if len(v) == 1 and n > 1:
            v = v * n
        return v
    return (v,) * n


def _dims(v, n: int) -> str:
    vals = _per_dim(v, n)
    if len(set(vals)) == 1:
        return _num(vals[0])
    return "x".join(_num(x) for x in vals)


def _pairs(pairs: Sequence[Tuple[int, int]]) -> str:
    if all(b == a for b, a in pairs):
        return _dims(tuple(b for b, _ in pairs), len(pairs))
    if len(set(pairs)) == 1:
        return f"{pairs[0][0]}:{pairs[0][1]}"
    return "x".join(f"{b}:{a}" for b, a in pairs)


def _bool(v) -> str:
    return "true" if v else "false"


def _spatial(shape: Shape) -> int:
    return len(shape) - 2


# ---------------------------------------------------------------------------
# argument binding: "x, kernel_size, stride=None, …" in the source's order
# ---------------------------------------------------------------------------

class _Args(dict):
    __getattr__ = dict.__getitem__


def _params(text: str) -> List[Tuple[str, Any]]:
    import ast
    out = []
    for part in text.split(","):
        part = part.strip()
        if "=" in part:
            k, _, d = part.partition("=")
            out.append((k.strip(), ast.literal_eval(d.strip())))
        else:
            out.append((part, _REQUIRED))
    return out


_REQUIRED = object()


def _bind(params: List[Tuple[str, Any]], args: Sequence, kwargs: Dict) -> _Args:
    out = _Args()
    for (k, d), v in zip(params, args):
        out[k] = v
    for k, d in params[len(args):]:
        out[k] = kwargs.get(k, d)
        if out[k] is _REQUIRED:
            raise _No(f"missing argument {k}")
    return out


# ---------------------------------------------------------------------------
# tokens shared by modules, functions and ATen ops
# ---------------------------------------------------------------------------

def _conv(x: _T, w: Shape, bias: bool, stride, padding, dilation, groups,
          pm: str = "zeros") -> str:
    n = len(w) - 2
    k = tuple(w[2:])
    d = _per_dim(dilation, n)
    s = _per_dim(stride, n)
    if isinstance(padding, str):
        if padding == "valid":
            pairs = [(0, 0)] * n
        elif padding == "same":
            if any(v != 1 for v in s):
                raise _No("padding='same' with a stride")
            # PyTorch's 'same': the odd unit of padding at the end
            pairs = [((di * (ki - 1)) // 2, di * (ki - 1) - (di * (ki - 1)) // 2)
                     for ki, di in zip(k, d)]
        else:
            raise _No(f"padding={padding!r}")
    else:
        pairs = [(p, p) for p in _per_dim(padding, n)]
    if pm not in ("zeros", "reflect", "replicate", "circular"):
        raise _No(f"padding_mode={pm!r}")
    tok = f"conv:{w[0]},k={_dims(k, n)},s={_dims(s, n)},p={_pairs(pairs)}"
    if any(v != 1 for v in d):
        tok += f",d={_dims(d, n)}"
    if groups != 1:
        tok += f",g={groups}"
    tok += f",bias={_bool(bias)}"
    if pm != "zeros":
        tok += f",pm={pm}"
    return tok


def _tconv(x: _T, out_shape: Shape, w: Shape, bias: bool, stride, padding, dilation,
           groups, output_padding=None) -> str:
    n = len(w) - 2
    k = tuple(w[2:])
    s, d, p = (_per_dim(v, n) for v in (stride, dilation, padding))
    # the output padding from torch's own output size (also covers forward(output_size=…))
    op = tuple(o - ((i - 1) * si - 2 * pi + di * (ki - 1) + 1)
               for o, i, si, pi, di, ki in zip(out_shape[2:], x.shape[2:], s, p, d, k))
    if output_padding is not None and tuple(_per_dim(output_padding, n)) != op:
        raise _No("output_size")  # cannot happen; never guess
    tok = f"tconv:{w[1] * groups},k={_dims(k, n)},s={_dims(s, n)},p={_dims(p, n)}"
    if any(op):
        tok += f",op={_dims(op, n)}"
    if any(v != 1 for v in d):
        tok += f",d={_dims(d, n)}"
    if groups != 1:
        tok += f",g={groups}"
    return tok + f",bias={_bool(bias)}"


def _maxpool(x: _T, k, s, p, d, ceil) -> str:
    n = _spatial(x.shape)
    s = k if s is None or s == [] or s == () else s
    tok = f"maxpool:k={_dims(k, n)},s={_dims(s, n)},p={_dims(p, n)}"
    if any(v != 1 for v in _per_dim(d, n)):
        tok += f",d={_dims(d, n)}"
    return tok + (",ceil" if ceil else "")


def _avgpool(x: _T, k, s, p, ceil, count_include_pad, divisor_override) -> str:
    if divisor_override is not None:
        raise _No("divisor_override")
    n = _spatial(x.shape)
    s = k if s is None or s == [] or s == () else s
    tok = f"avgpool:k={_dims(k, n)},s={_dims(s, n)},p={_dims(p, n)}"
    tok += ",ceil" if ceil else ""
    return tok + ("" if count_include_pad else ",count_include_pad=false")


def _adaptive(kind: str, out_shape: Shape) -> str:
    return f"{kind}:{_dims(tuple(out_shape[2:]), _spatial(out_shape))}"


def _keys(kind: str, keys: Sequence[str]) -> str:
    return f"{kind}:{','.join(keys)}" if keys else kind


def _bn(affine: bool, eps, momentum) -> str:
    keys = [] if affine else ["affine=false"]
    if eps != 1e-5:
        keys.append(f"eps={_num(eps)}")
    if momentum is not None and momentum != 0.1:
        keys.append(f"momentum={_num(momentum)}")
    return _keys("bn", keys)


def _ln(x: _T, normalized_shape, weight: bool, bias: bool, eps) -> str:
    ns = tuple(_per_dim(normalized_shape, 1))
    if tuple(x.shape[len(x.shape) - len(ns):]) != ns:
        raise _No(f"normalized_shape {ns} on {x.shape}")
    if bias and not weight:
        raise _No("a bias without a weight")
    tok = f"ln:{len(ns)},eps={_num(eps)}"
    if not weight:
        return tok + ",affine=false"
    return tok + ("" if bias else ",bias=false")


def _pad(x: _T, pad: Sequence[int], mode: str, value) -> str:
    """F.pad's (last-dim-first) amounts as ``pad:`` in spatial order."""
    n = _spatial(x.shape)
    pad = tuple(int(v) for v in pad)
    if len(pad) % 2 or len(pad) // 2 > n:
        raise _No("padding beyond the spatial dims")
    last_first = [(pad[2 * j], pad[2 * j + 1]) for j in range(len(pad) // 2)]
    pairs = [(0, 0)] * (n - len(last_first)) + last_first[::-1]
    modes = {"constant": "zeros", "zeros": "zeros", "reflect": "reflect",
             "replicate": "replicate", "circular": "circular"}
    if mode not in modes:
        raise _No(f"mode={mode!r}")
    tok = f"pad:{_pairs(pairs)}"
    if modes[mode] != "zeros":
        tok += f",mode={modes[mode]}"
    elif value not in (None, 0, 0.0):
        tok += f",value={_num(value)}"
    return tok


_UP_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


def _up(x: _T, size, scale, mode: str, align_corners) -> str:
    n = _spatial(x.shape)
    if mode not in _UP_MODES:
        raise _No(f"mode={mode!r}")
    if size is not None:
        if isinstance(size, str):
            tok = f"up:size={size}"
        else:
            tok = f"up:size={_dims(size, n)}"
    elif scale is not None:
        tok = f"up:scale={_dims(scale, n)}"
    else:
        raise _No("neither size nor scale")
    if mode != "nearest":
        tok += f",mode={mode}"
    return tok + (",align_corners" if align_corners else "")


# kinds that act on a tensor in any layout (after a permute)
_ANY_LAYOUT = {"act", "dropout", "dropout1d", "dropout2d", "dropout3d", "alphadropout",
               "featurealphadropout", "droppath", "linear", "ln", "softmax", "logsoftmax",
               "add", "mul"}

# activations: module class / function name -> our name
_ACTS = {
    "ReLU": "relu", "ReLU6": "relu6", "LeakyReLU": "leaky_relu", "ELU": "elu", "SELU": "selu",
    "CELU": "celu", "GELU": "gelu", "SiLU": "silu", "Mish": "mish", "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid", "Hardtanh": "hardtanh", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "Softplus": "softplus", "Identity": "identity",
}
_ACT_FUNCS = {
    "relu": "relu", "relu_": "relu", "relu6": "relu6", "leaky_relu": "leaky_relu",
    "leaky_relu_": "leaky_relu", "elu": "elu", "elu_": "elu", "selu": "selu", "selu_": "selu",
    "celu": "celu", "celu_": "celu", "gelu": "gelu", "silu": "silu", "silu_": "silu",
    "mish": "mish", "mish_": "mish", "hardswish": "hardswish", "hardswish_": "hardswish",
    "hardsigmoid": "hardsigmoid", "hardsigmoid_": "hardsigmoid", "hardtanh": "hardtanh",
    "hardtanh_": "hardtanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh",
    "tanh_": "tanh", "softplus": "softplus",
}


def _act(name: str, inplace=False) -> str:
    return f"act:{name}" + (",inplace" if inplace else "")


# ---------------------------------------------------------------------------
# the walker
# ---------------------------------------------------------------------------

class _Walker:
    """Maps source nodes to :class:`Node` s.  Subclasses know their graph."""

    def __init__(self, torch, root):
        self.torch = torch
        self.root = root
        self.nodes: List[Node] = []
        self.shapes: List[Shape] = []
        self.env: Dict[Any, Any] = {}
        # where a folded size came from: (the tensor, its dims)
        self.provenance: Dict[Any, Tuple[_T, Tuple[int, ...]]] = {}
        self.unsupported: Dict[str, List] = {}
        self.output: Optional[_T] = None
        self.output_shape: Shape = ()
        self.ids = set()
        self.used_params = set()

    # -- emitting ----------------------------------------------------------
    def emit(self, name: str, token: str, inputs: Sequence[_T], shape: Shape,
             out_id: Optional[str] = None, perm: Optional[Tuple[int, ...]] = None) -> _T:
        """One node; the output's layout follows its inputs' for the kinds
        that act on any layout (activations, ``linear`` and ``ln`` on the last
        dims, joins), and every other kind needs batch, channels, spatial."""
        kind = token.split(":")[0].split(",")[0]
        perms = {t.perm for t in inputs}
        if perm is None:
            if kind == "flatten":
                perm = ()
            elif kind in _ANY_LAYOUT:
                if len(perms) > 1:
                    raise _No("of tensors in different layouts")
                perm = perms.pop() if perms else ()
            elif perms - {()}:
                raise _No("on a permuted layout")
            else:
                perm = ()
        out_id = out_id or name
        while out_id in self.ids or out_id == INPUT:
            out_id += "_"
        self.ids.add(out_id)
        self.nodes.append(Node(name, token, [t.id for t in inputs], out_id))
        self.shapes.append(tuple(shape))
        return _T(out_id, tuple(shape), perm)

    def fail(self, op: str, name: str):
        entry = self.unsupported.setdefault(op, [0, name])
        entry[0] += 1

    def result(self, tracer: str) -> Imported:
        if self.unsupported:
            total = sum(c for c, _ in self.unsupported.values())
            parts = [f"{op} ({c}×, first at {first!r})"
                     for op, (c, first) in self.unsupported.items()]
            raise StackSyntaxError(f"cannot import {total} op{'s' if total != 1 else ''}: "
                                   + ", ".join(parts))
        if self.output is None:
            raise StackSyntaxError("cannot import: the module returns no tensor")
        tokens = write(self.nodes, self.output.id)
        if any(_REF_RE.search(t) for t in tokens):
            tokens = _resolve_refs(tokens, self.nodes)
        return Imported(tokens, self.output_shape, self.nodes, self.shapes, tracer)

    # -- helpers for handlers ------------------------------------------------
    @staticmethod
    def tensor(v) -> _T:
        if not isinstance(v, _T):
            raise _No()
        return v

    def shape_ref(self, size_arg, node_arg, x: _T):
        """(size, tensor): a size argument that is a tensor's spatial size
        (``size=skip.shape[-2:]``) as a reference to that tensor, so the stack
        stays valid at any input; else (the numbers, None)."""
        src = None
        if node_arg is not None:
            if isinstance(node_arg, (list, tuple)):
                srcs = [self.provenance.get(a) for a in node_arg]
                if all(s is not None for s in srcs) and len({s[0].id for s in srcs}) == 1:
                    src = (srcs[0][0], tuple(d for s in srcs for d in s[1]))
            else:
                src = self.provenance.get(node_arg)
        if src is not None:
            ref, dims = src
            rank = len(ref.shape)
            if rank == len(x.shape) and dims == tuple(range(2, rank)):
                return _REF.format(ref.id), ref
        return size_arg, None

    def output_value(self, v):
        if isinstance(v, dict):
            v = v["out"] if "out" in v else (next(iter(v.values())) if len(v) == 1 else None)
        while isinstance(v, (list, tuple)) and v:
            v = v[0]
        if isinstance(v, _T):
            self.output = v
            self.output_shape = v.shape
        elif isinstance(v, _First):
            self.output = v.t
            self.output_shape = v.t.shape


def _resolve_refs(tokens: List[str], nodes: Sequence[Node]) -> List[str]:
    """Replace ``<ref:id>`` by the name the writer gave that tensor: it
    writes one token per node in order, each followed by ``save:NAME`` when
    it named the node's output."""
    names = {INPUT: "input"}
    i = 0
    for tok in tokens:
        if tok.startswith("save:"):
            names[nodes[i - 1].output] = tok[5:]
        elif not tok.startswith("from:"):
            i += 1
    out = []
    for tok in tokens:
        out.append(_REF_RE.sub(lambda m: names[m.group(1)], tok))
    return out


# ---------------------------------------------------------------------------
# torch.fx
# ---------------------------------------------------------------------------

# torchvision classes kept whole (their forward is permutes and F calls we
# would rather see as one token), recognised by class name: torchvision is
# never imported here
_LEAF_CLASSES = ("LayerNorm2d", "StochasticDepth", "Permute")


def _trace_fx(torch, module, x) -> "_FxWalker":
    import torch.fx as fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            if type(m).__name__ in _LEAF_CLASSES:
                return True
            return super().is_leaf_module(m, qualname)

    try:
        graph = Tracer().trace(module)
        gm = fx.GraphModule(module, graph)
    except Exception as e:  # data-dependent control flow, unsupported Python
        raise _TraceFailed(str(e)) from e

    values: Dict[Any, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            v = super().run_node(n)
            values[n] = v
            return v

    try:
        Recorder(gm).run(x)
    except Exception as e:  # tracing froze a branch this input does not take
        raise _TraceFailed(str(e)) from e
    return _FxWalker(torch, gm, values)


def _is_tensor(torch, v) -> bool:
    return isinstance(v, torch.Tensor)


def _has_tensor(torch, v) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_tensor(torch, e) for e in v)
    if isinstance(v, dict):
        return any(_has_tensor(torch, e) for e in v.values())
    return False


def _func_name(target) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or str(target)
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    if mod.startswith("torch.nn.functional") or mod == "torch._C._nn":
        return f"F.{name}"
    if mod.startswith("torch._ops") or type(target).__name__ == "OpOverload":
        return str(target).replace(".default", "")
    if mod in ("torch", "torch.functional", "torch._C._VariableFunctions") or mod == "":
        return f"torch.{name}"
    return f"{mod}.{name}"


class _FxWalker(_Walker):
    def __init__(self, torch, gm, values):
        super().__init__(torch, gm)
        self.gm = gm
        self.values = values
        self.funcs, self.methods = _fx_tables(torch)

    def walk(self):
        torch = self.torch
        first = True
        for node in self.gm.graph.nodes:
            if node.op == "output":
                self.output_value(torch.fx.node.map_arg(node.args[0], lambda a: self.env[a]))
                continue
            value = self.values.get(node)
            if node.op == "placeholder":
                if first:  # the input; later ones are defaulted extra arguments
                    self.env[node] = _T(INPUT, tuple(value.shape))
                    first = False
                else:
                    self.env[node] = value
                continue
            if node.op == "get_attr":
                if _is_tensor(torch, value):
                    self.env[node] = _Param(node.target, tuple(value.shape))
                else:
                    self.env[node] = value
                continue
            if not _has_tensor(torch, value) and node.op != "call_module":
                self.fold(node, value)
                continue
            self.visit(node, value)

    def fold(self, node, value):
        """Shape arithmetic: a constant, remembering where a size came from."""
        self.env[node] = value
        args = [self.env.get(a) if isinstance(a, self.torch.fx.Node) else a for a in node.args]
        src = args[0] if args else None
        if isinstance(src, _T):
            rank = len(src.shape)
            if (node.target is getattr and args[1] == "shape") or \
                    (node.op == "call_method" and node.target == "size" and len(args) == 1):
                self.provenance[node] = (src, tuple(range(rank)))
            elif node.op == "call_method" and node.target == "size":
                self.provenance[node] = (src, (args[1] % rank,))
        elif node.target is operator.getitem and node.args[0] in self.provenance:
            tid, dims = self.provenance[node.args[0]]
            idx = args[1]
            if isinstance(idx, slice):
                self.provenance[node] = (tid, dims[idx])
            elif isinstance(idx, int):
                self.provenance[node] = (tid, (dims[idx],))

    def visit(self, node, value):
        torch = self.torch
        args = torch.fx.node.map_arg(node.args, lambda a: self.env[a])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: self.env[a])
        if node.op == "call_module":
            m = self.gm.get_submodule(node.target)
            op = f"nn.{type(m).__name__}"
            name = node.target
            handler = _module_handler(m)
        elif node.op == "call_function":
            op = _func_name(node.target)
            name = node.name
            handler = self.funcs.get(node.target)
        else:
            op = _func_name(node.target)
            name = node.name
            handler = self.methods.get(node.target)
        def call():
            if handler is None:
                raise _No()
            if node.op == "call_module":
                self.check_shared([f"{node.target}.{n}" for n, _ in m.named_parameters()],
                                  "called")
                return handler(self, m, args, kwargs, name, value)
            self.check_shared(_param_names(args, kwargs), "used")
            return handler(self, args, kwargs, name, value, node)
        self.apply(node, op, name, value, call)

    def apply(self, node, op: str, name: str, value, call) -> None:
        """Map one node through its handler; an op with no twin is noted (every
        such op goes into one message) and stands in as a plain tensor."""
        try:
            got = call()
        except _No as e:
            self.fail(f"{op} ({e.what})" if e.what else op, name)
            got = _T(node.name, tuple(value.shape)) if _is_tensor(self.torch, value) else value
        self.env[node] = got

    # a token on the first tensor argument, with torch's output shape
    def one(self, name, token, x, value, out_id=None, perm=None):
        if isinstance(value, (tuple, list)):
            return _First(self.emit(name, token, [x], tuple(value[0].shape), out_id, perm))
        return self.emit(name, token, [x], tuple(value.shape), out_id, perm)

    def permute(self, name, x: _T, dims, value) -> _T:
        rank = len(x.shape)
        dims = [d % rank for d in dims]
        if dims == list(range(rank)):
            return x
        old = x.perm or tuple(range(rank))
        new = tuple(old[d] for d in dims)
        perm = () if new == tuple(range(rank)) else new
        return self.one(name, "permute:" + ",".join(map(str, dims)), x, value, perm=perm)

    def check_shared(self, names, what):
        """Parameters read by a second node would count twice in the stack."""
        names = set(names)
        if names & self.used_params:
            raise _No(f"{what} again: shared parameters")
        self.used_params |= names


# -- modules -----------------------------------------------------------------

def _module_handler(m) -> Optional[Callable]:
    cls = type(m).__name__
    if cls in _MODULES_BY_NAME:
        return _MODULES_BY_NAME[cls]
    for klass in type(m).__mro__:
        if klass.__module__.startswith("torch.nn") and klass.__name__ in _MODULES:
            return _MODULES[klass.__name__]
    return None


def _m_conv(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.one(name, _conv(x, tuple(m.weight.shape), m.bias is not None, m.stride, m.padding,
                             m.dilation, m.groups, m.padding_mode), x, value)


def _m_tconv(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    if m.padding_mode != "zeros":
        raise _No(f"padding_mode={m.padding_mode!r}")
    return w.one(name, _tconv(x, tuple(value.shape), tuple(m.weight.shape), m.bias is not None,
                              m.stride, m.padding, m.dilation, m.groups), x, value)


def _m_maxpool(w, m, args, kwargs, name, value):
    if m.return_indices:
        raise _No("return_indices")
    x = w.tensor(args[0])
    return w.one(name, _maxpool(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode),
                 x, value)


def _m_avgpool(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.one(name, _avgpool(x, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                m.count_include_pad, getattr(m, "divisor_override", None)),
                 x, value)


def _m_adaptive(kind):
    def h(w, m, args, kwargs, name, value):
        if getattr(m, "return_indices", False):
            raise _No("return_indices")
        x = w.tensor(args[0])
        return w.one(name, _adaptive(kind, tuple(value.shape)), x, value)
    return h


def _m_bn(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    if not m.track_running_stats:
        raise _No("track_running_stats=False")
    return w.one(name, _bn(m.affine, m.eps, m.momentum), x, value)


def _m_ln(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.one(name, _ln(x, m.normalized_shape, m.weight is not None,
                           getattr(m, "bias", None) is not None, m.eps), x, value)


def _m_ln2d(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    if tuple(m.normalized_shape) != (x.shape[1],) or len(x.shape) < 3:
        raise _No("normalized_shape")
    if m.elementwise_affine and getattr(m, "bias", None) is None:
        raise _No("bias=False")
    keys = [] if m.elementwise_affine else ["affine=false"]
    if m.eps != 1e-6:
        keys.append(f"eps={_num(m.eps)}")
    return w.one(name, _keys("ln2d", keys), x, value)


def _m_gn(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.one(name, f"gn:{m.num_groups},affine={_bool(m.affine)},eps={_num(m.eps)}", x, value)


def _m_instnorm(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    keys = [f"affine={_bool(m.affine)}", f"track={_bool(m.track_running_stats)}"]
    if m.eps != 1e-5:
        keys.append(f"eps={_num(m.eps)}")
    if m.momentum is not None and m.momentum != 0.1:
        keys.append(f"momentum={_num(m.momentum)}")
    return w.one(name, _keys("instnorm", keys), x, value)


def _m_act(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    act = _ACTS[type(m).__name__] if type(m).__name__ in _ACTS else next(
        _ACTS[k.__name__] for k in type(m).__mro__ if k.__name__ in _ACTS)
    if act == "hardtanh" and (m.min_val, m.max_val) == (0.0, 6.0):
        act = "relu6"
    return w.one(name, _act(act, getattr(m, "inplace", False)), x, value)


def _m_dropout(kind):
    def h(w, m, args, kwargs, name, value):
        x = w.tensor(args[0])
        return w.one(name, f"{kind}:{_num(m.p)}" + (",inplace" if m.inplace else ""), x, value)
    return h


def _m_droppath(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.one(name, f"droppath:{_num(m.p)},mode={m.mode}", x, value)


def _m_linear(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    o, i = m.weight.shape
    return w.one(name, f"linear:{o},in={i},bias={_bool(m.bias is not None)}", x, value)


def _m_flatten(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    if m.start_dim != 1 or m.end_dim not in (-1, len(x.shape) - 1):
        raise _No(f"start_dim={m.start_dim}, end_dim={m.end_dim}")
    return w.one(name, "flatten", x, value)


def _m_up(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    mode = m.mode
    align = m.align_corners
    if type(m).__name__ == "UpsamplingBilinear2d":
        mode, align = "bilinear", True
    return w.one(name, _up(x, m.size, m.scale_factor, mode, align), x, value)


def _m_pixelshuffle(kind, attr):
    def h(w, m, args, kwargs, name, value):
        x = w.tensor(args[0])
        if len(x.shape) != 4:
            raise _No("not 4-D")
        return w.one(name, f"{kind}:{getattr(m, attr)}", x, value)
    return h


def _m_shuffle(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.one(name, f"shuffle:{m.groups}", x, value)


def _m_pad(mode):
    def h(w, m, args, kwargs, name, value):
        x = w.tensor(args[0])
        return w.one(name, _pad(x, m.padding, mode, getattr(m, "value", 0)), x, value)
    return h


def _m_softmax(kind):
    def h(w, m, args, kwargs, name, value):
        x = w.tensor(args[0])
        dim = -3 if type(m).__name__ == "Softmax2d" else m.dim
        if dim is None:
            raise _No("dim=None")
        return w.one(name, f"{kind}:{dim}", x, value)
    return h


def _m_permute(w, m, args, kwargs, name, value):
    x = w.tensor(args[0])
    return w.permute(name, x, list(m.dims), value)


_MODULES: Dict[str, Callable] = {}
for _n in (1, 2, 3):
    _MODULES.update({
        f"Conv{_n}d": _m_conv, f"ConvTranspose{_n}d": _m_tconv, f"MaxPool{_n}d": _m_maxpool,
        f"AvgPool{_n}d": _m_avgpool, f"AdaptiveAvgPool{_n}d": _m_adaptive("aavgpool"),
        f"AdaptiveMaxPool{_n}d": _m_adaptive("amaxpool"), f"BatchNorm{_n}d": _m_bn,
        f"InstanceNorm{_n}d": _m_instnorm, f"Dropout{_n}d": _m_dropout(f"dropout{_n}d"),
        f"ZeroPad{_n}d": _m_pad("zeros"), f"ConstantPad{_n}d": _m_pad("constant"),
        f"ReflectionPad{_n}d": _m_pad("reflect"), f"ReplicationPad{_n}d": _m_pad("replicate"),
        f"CircularPad{_n}d": _m_pad("circular"),
    })
_MODULES.update({
    "SyncBatchNorm": _m_bn, "LayerNorm": _m_ln, "GroupNorm": _m_gn, "Linear": _m_linear,
    "Flatten": _m_flatten, "Dropout": _m_dropout("dropout"),
    "AlphaDropout": _m_dropout("alphadropout"),
    "FeatureAlphaDropout": _m_dropout("featurealphadropout"),
    "Upsample": _m_up, "UpsamplingNearest2d": _m_up, "UpsamplingBilinear2d": _m_up,
    "PixelShuffle": _m_pixelshuffle("pixelshuffle", "upscale_factor"),
    "PixelUnshuffle": _m_pixelshuffle("pixelunshuffle", "downscale_factor"),
    "ChannelShuffle": _m_shuffle, "Softmax": _m_softmax("softmax"),
    "Softmax2d": _m_softmax("softmax"), "LogSoftmax": _m_softmax("logsoftmax"),
})
_MODULES.update({cls: _m_act for cls in _ACTS})
# torchvision's own modules, by class name (kept whole by the tracer)
_MODULES_BY_NAME: Dict[str, Callable] = {
    "LayerNorm2d": _m_ln2d, "StochasticDepth": _m_droppath, "Permute": _m_permute,
}


# -- functions, methods and ATen ops -----------------------------------------

def _as_list(args) -> List:
    """``x.view(2, 3)`` and ``x.view((2, 3))`` alike: the arguments after self."""
    rest = list(args[1:])
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        return list(rest[0])
    return rest


def _fx_tables(torch):
    F = torch.nn.functional
    aten = torch.ops.aten
    funcs: Dict[Any, Callable] = {}
    methods: Dict[str, Callable] = {}

    def reg(targets, params, fn, method_names=()):
        ps = _params(params) if params else None

        def h(w, args, kwargs, name, value, node):
            a = _bind(ps, args, kwargs) if ps is not None else (args, kwargs)
            return fn(w, a, name, value, node)
        for t in targets:
            if isinstance(t, str):
                methods[t] = h
            else:
                funcs[t] = h
        for mname in method_names:
            methods[mname] = h

    def aten_ops(*names):
        out = []
        for n in names:
            packet = getattr(aten, n, None)
            if packet is not None:
                out.extend(getattr(packet, o) for o in packet.overloads())
        return out

    # joins ----------------------------------------------------------------
    def add(w, a, name, value, node):
        x, y = a.x, a.other
        if a.alpha != 1:
            raise _No("alpha")
        if isinstance(x, _T) and isinstance(y, _T):
            return w.emit(name, "add", [x, y], tuple(value.shape))
        t, other = (x, y) if isinstance(x, _T) else (y, x)
        if isinstance(t, _T) and isinstance(other, (int, float)) and other == 0:
            return t
        raise _No("with a scalar" if isinstance(other, (int, float)) else "with a parameter")
    reg([operator.add, operator.iadd, torch.add, "add", "add_", *aten_ops("add", "add_")],
        "x, other, alpha=1", add)

    def mul(w, a, name, value, node):
        x, y = a.x, a.other
        if isinstance(x, _T) and isinstance(y, _T):
            return w.emit(name, "mul", [x, y], tuple(value.shape))
        t, other = (x, y) if isinstance(x, _T) else (y, x)
        if not isinstance(t, _T):
            raise _No()
        if isinstance(other, (int, float)) and other == 1:
            return t
        if isinstance(other, _Param):
            c, rank = t.shape[1], len(t.shape)
            ones = (1,) * (rank - 2)
            if tuple(other.shape) in ((c,) + ones, (1, c) + ones) and \
                    tuple(value.shape) == t.shape:
                return w.emit(name, "layerscale", [t], t.shape)
            raise _No(f"by a parameter of shape {tuple(other.shape)}")
        raise _No("by a scalar")
    reg([operator.mul, operator.imul, torch.mul, "mul", "mul_", *aten_ops("mul", "mul_")],
        "x, other", mul)

    def cat(w, a, name, value, node):
        ts = list(a.tensors)
        if not all(isinstance(t, _T) for t in ts):
            raise _No()
        if a.dim % len(ts[0].shape) != 1:
            raise _No(f"dim={a.dim}")
        if len(ts) == 1:
            return ts[0]
        return w.emit(name, "concat", ts, tuple(value.shape))
    reg([torch.cat, getattr(torch, "concat", torch.cat), getattr(torch, "concatenate", torch.cat),
         *aten_ops("cat", "concat")], "tensors, dim=0", cat)

    # views ----------------------------------------------------------------
    def flatten(w, a, name, value, node):
        x = w.tensor(a.x)
        rank = len(x.shape)
        if a.start_dim % rank != 1 or a.end_dim % rank != rank - 1:
            raise _No(f"start_dim={a.start_dim}, end_dim={a.end_dim}")
        return w.one(name, "flatten", x, value)
    reg([torch.flatten, "flatten", *aten_ops("flatten")], "x, start_dim=0, end_dim=-1", flatten)

    def view(w, a, name, value, node):
        args, _ = a
        x = args[0]
        out = tuple(value.shape)
        if isinstance(x, _Grouped):
            if x.transposed and out == x.src.shape:
                return w.emit(name, f"shuffle:{x.g}", [x.src], out)
            raise _No("a reshape convcalc cannot follow")
        x = w.tensor(x)
        s = x.shape
        if out == s:
            return x
        if len(s) >= 3 and out == (s[0], math.prod(s[1:])):
            return w.one(name, "flatten", x, value)
        if len(s) >= 3 and len(out) == len(s) + 1 and out[0] == s[0] and \
                out[1] * out[2] == s[1] and out[3:] == s[2:] and out[1] > 1:
            return _Grouped(x, out[1], False)
        raise _No(f"{s} to {out}")
    reg(["view", "reshape", torch.reshape, *aten_ops("view", "reshape", "_unsafe_view")],
        None, view)

    def transpose(w, a, name, value, node):
        x = a.x
        if isinstance(x, _Grouped):
            rank = len(x.src.shape) + 1
            if not x.transposed and {a.dim0 % rank, a.dim1 % rank} == {1, 2}:
                return replace(x, transposed=True)
            raise _No()
        x = w.tensor(x)
        rank = len(x.shape)
        d0, d1 = a.dim0 % rank, a.dim1 % rank
        dims = list(range(rank))
        dims[d0], dims[d1] = d1, d0
        return w.permute(name, x, dims, value)
    reg([torch.transpose, "transpose", *aten_ops("transpose")], "x, dim0, dim1", transpose)

    def permute(w, a, name, value, node):
        args, _ = a
        x = w.tensor(args[0])
        dims = _as_list(args) if len(args) > 1 else list(a[1].get("dims", ()))
        return w.permute(name, x, dims, value)
    reg([torch.permute, "permute", *aten_ops("permute")], None, permute)

    def identity(w, a, name, value, node):
        args, _ = a
        x = args[0]
        if isinstance(x, (_T, _Grouped)):
            return x
        raise _No()
    reg(["contiguous", "clone", "detach", torch.clone, torch.detach,
         *aten_ops("contiguous", "clone", "alias", "detach", "lift_fresh_copy")],
        None, identity)

    def chunk(w, a, name, value, node):
        x = w.tensor(a.x)
        if a.dim % len(x.shape) != 1:
            raise _No(f"dim={a.dim}")
        return _Chunks(x, int(a.chunks), tuple(int(v.shape[1]) for v in value))
    reg([torch.chunk, "chunk", *aten_ops("chunk")], "x, chunks, dim=0", chunk)

    def split(w, a, name, value, node):
        x = w.tensor(a.x)
        if a.dim % len(x.shape) != 1:
            raise _No(f"dim={a.dim}")
        sizes = tuple(int(v.shape[1]) for v in value)
        c = x.shape[1]
        for n in range(1, c + 1):  # the chunk count whose sizes these are
            each = -(-c // n)
            want = tuple(min(each, c - i * each) for i in range(-(-c // each)))
            if want == sizes:
                return _Chunks(x, n, sizes)
        raise _No("unequal sizes")
    reg([torch.split, "split", *aten_ops("split")], "x, split_size_or_sections, dim=0", split)

    def getitem(w, a, name, value, node):
        args, _ = a
        src, idx = args
        if isinstance(src, _Chunks) and isinstance(idx, int):
            i = idx % len(src.sizes)
            return w.one(name, f"chunk:{src.n},i={i}", src.src, value)
        if isinstance(src, _First) and idx == 0:
            return src.t
        if isinstance(src, (list, tuple)) and isinstance(idx, int):
            return src[idx]
        if isinstance(src, dict):
            return src[idx]
        raise _No("an index or slice of a tensor" if isinstance(src, _T) else None)
    reg([operator.getitem], None, getitem)

    # reductions and pools ---------------------------------------------------
    def mean(w, a, name, value, node):
        x = w.tensor(a.x)
        rank = len(x.shape)
        dims = a.dim if isinstance(a.dim, (list, tuple)) else [a.dim]
        if a.dim is None or sorted(d % rank for d in dims) != list(range(2, rank)):
            raise _No(f"dim={a.dim}")
        pooled = x.shape[:2] + (1,) * (rank - 2)
        if a.keepdim:
            return w.emit(name, "gap", [x], pooled)
        g = w.emit(name, "gap", [x], pooled, out_id=name + "_gap")
        return w.emit(name, "flatten", [g], tuple(value.shape))
    reg([torch.mean, "mean", *aten_ops("mean")], "x, dim=None, keepdim=False", mean)

    def maxpool(w, a, name, value, node):
        x = w.tensor(a.x)
        if a.return_indices:
            raise _No("return_indices")
        return w.one(name, _maxpool(x, a.kernel_size, a.stride, a.padding, a.dilation,
                                    a.ceil_mode), x, value)
    mp = "x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, " \
         "return_indices=False"
    reg([F.max_pool1d, F.max_pool2d, F.max_pool3d, torch.max_pool1d, torch.max_pool2d,
         torch.max_pool3d, *aten_ops("max_pool1d", "max_pool2d", "max_pool3d")], mp, maxpool)

    def maxpool_indices(w, a, name, value, node):
        if not _only_first_used(node):
            raise _No("return_indices")
        return maxpool(w, _Args(a, return_indices=False), name, value, node)
    reg([F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices,
         *aten_ops("max_pool2d_with_indices", "max_pool3d_with_indices")],
        mp.replace("return_indices=False", "return_indices=True"), maxpool_indices)

    def avgpool(w, a, name, value, node):
        x = w.tensor(a.x)
        return w.one(name, _avgpool(x, a.kernel_size, a.stride, a.padding, a.ceil_mode,
                                    a.count_include_pad, a.divisor_override), x, value)
    reg([F.avg_pool2d, F.avg_pool3d, *aten_ops("avg_pool2d", "avg_pool3d")],
        "x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, "
        "divisor_override=None", avgpool)
    reg([F.avg_pool1d, *aten_ops("avg_pool1d")],
        "x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True",
        lambda w, a, name, value, node: avgpool(w, _Args(a, divisor_override=None), name,
                                                value, node))

    def adaptive(kind):
        def h(w, a, name, value, node):
            x = w.tensor(a.x)
            if isinstance(value, (tuple, list)) and not _only_first_used(node):
                raise _No("return_indices")
            return w.one(name, _adaptive(kind, tuple((value[0] if isinstance(
                value, (tuple, list)) else value).shape)), x, value)
        return h
    reg([F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
         torch.adaptive_avg_pool1d,
         *aten_ops("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                   "_adaptive_avg_pool2d", "_adaptive_avg_pool3d")],
        "x, output_size", adaptive("aavgpool"))
    reg([F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
         *aten_ops("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")],
        "x, output_size, return_indices=False", adaptive("amaxpool"))

    # convs and linear -----------------------------------------------------
    def conv(w, a, name, value, node):
        x = w.tensor(a.x)
        if not isinstance(a.weight, _Param):
            raise _No("a computed weight")
        return w.one(name, _conv(x, a.weight.shape, a.bias is not None, a.stride, a.padding,
                                 a.dilation, a.groups), x, value)
    reg([F.conv1d, F.conv2d, F.conv3d, *aten_ops("conv1d", "conv2d", "conv3d")],
        "x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1", conv)

    def tconv(w, a, name, value, node):
        x = w.tensor(a.x)
        if not isinstance(a.weight, _Param):
            raise _No("a computed weight")
        return w.one(name, _tconv(x, tuple(value.shape), a.weight.shape, a.bias is not None,
                                  a.stride, a.padding, a.dilation, a.groups), x, value)
    reg([F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d,
         *aten_ops("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")],
        "x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1",
        tconv)

    def convolution(w, a, name, value, node):
        return (tconv if a.transposed else conv)(w, a, name, value, node)
    reg(aten_ops("convolution", "_convolution"),
        "x, weight, bias, stride, padding, dilation, transposed, output_padding, groups",
        convolution)

    def linear(w, a, name, value, node):
        x = w.tensor(a.x)
        if not isinstance(a.weight, _Param):
            raise _No("a computed weight")
        o, i = a.weight.shape
        return w.one(name, f"linear:{o},in={i},bias={_bool(a.bias is not None)}", x, value)
    reg([F.linear, *aten_ops("linear")], "x, weight, bias=None", linear)

    # norms ------------------------------------------------------------------
    def batch_norm(w, a, name, value, node):
        x = w.tensor(a.x)
        if a.running_mean is None:
            raise _No("without running statistics")
        return w.one(name, _bn(a.weight is not None, a.eps, a.momentum), x, value)
    reg([F.batch_norm], "x, running_mean, running_var, weight=None, bias=None, training=False, "
        "momentum=0.1, eps=1e-05", batch_norm)
    reg(aten_ops("batch_norm"), "x, weight, bias, running_mean, running_var, training, "
        "momentum, eps, cudnn_enabled=True", batch_norm)
    reg(aten_ops("_native_batch_norm_legit_no_training"),
        "x, weight, bias, running_mean, running_var, momentum, eps", batch_norm)

    def layer_norm(w, a, name, value, node):
        x = w.tensor(a.x)
        return w.one(name, _ln(x, a.normalized_shape, a.weight is not None, a.bias is not None,
                               a.eps), x, value)
    reg([F.layer_norm, *aten_ops("layer_norm")],
        "x, normalized_shape, weight=None, bias=None, eps=1e-05", layer_norm)

    def group_norm(w, a, name, value, node):
        x = w.tensor(a.x)
        if (a.weight is None) != (a.bias is None):
            raise _No("a weight without a bias")
        return w.one(name, f"gn:{a.num_groups},affine={_bool(a.weight is not None)},"
                           f"eps={_num(a.eps)}", x, value)
    reg([F.group_norm, *aten_ops("group_norm")],
        "x, num_groups, weight=None, bias=None, eps=1e-05", group_norm)

    # activations ------------------------------------------------------------
    def act_fn(act, inplace_name):
        def h(w, a, name, value, node):
            args, kwargs = a
            x = w.tensor(args[0])
            inplace = inplace_name or bool(kwargs.get("inplace", False))
            if act == "hardtanh":
                lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
                hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
                if (lo, hi) == (0.0, 6.0):
                    return w.one(name, _act("relu6", inplace), x, value)
            return w.one(name, _act(act, inplace), x, value)
        return h
    for fname, act in _ACT_FUNCS.items():
        inplace = fname.endswith("_")
        targets = []
        for space in (F, torch, torch.special):
            f = getattr(space, fname, None)
            if f is not None and callable(f):
                targets.append(f)
        targets.append(fname)  # the Tensor method
        targets.extend(aten_ops(fname))
        reg(targets, None, act_fn(act, inplace))

    # dropout and friends ----------------------------------------------------
    def dropout(kind):
        def h(w, a, name, value, node):
            x = w.tensor(a.x)
            return w.one(name, f"{kind}:{_num(a.p)}" + (",inplace" if a.inplace else ""),
                         x, value)
        return h
    for fn, kind in ((F.dropout, "dropout"), (F.dropout1d, "dropout1d"),
                     (F.dropout2d, "dropout2d"), (F.dropout3d, "dropout3d"),
                     (F.alpha_dropout, "alphadropout"),
                     (F.feature_alpha_dropout, "featurealphadropout")):
        reg([fn], "x, p=0.5, training=True, inplace=False", dropout(kind))
    reg([torch.dropout, *aten_ops("dropout")], "x, p, train", lambda w, a, n, v, nd: dropout(
        "dropout")(w, _Args(a, inplace=False), n, v, nd))
    reg(aten_ops("feature_dropout"), "x, p, train", lambda w, a, n, v, nd: dropout(
        "dropout2d")(w, _Args(a, inplace=False), n, v, nd))

    def stochastic_depth(w, a, name, value, node):
        x = w.tensor(a.x)
        return w.one(name, f"droppath:{_num(a.p)},mode={a.mode}", x, value)
    try:  # torchvision.ops.stochastic_depth when a tracer sees it as a call
        import sys
        sd = getattr(sys.modules.get("torchvision.ops"), "stochastic_depth", None)
        if sd is not None:
            reg([sd], "x, p, mode, training=True", stochastic_depth)
    except Exception:  # pragma: no cover
        pass

    # the rest -------------------------------------------------------------
    def interpolate(w, a, name, value, node):
        x = w.tensor(a.x)
        if a.antialias:
            raise _No("antialias")
        size, ref = a.size, None
        if size is not None:
            node_arg = node.kwargs.get("size", node.args[1] if len(node.args) > 1 else None)
            size, ref = w.shape_ref(size, node_arg, x)
        align = bool(a.align_corners) and a.mode in ("linear", "bilinear", "bicubic", "trilinear")
        token = _up(x, size, a.scale_factor, a.mode, align)
        if ref is None:
            return w.one(name, token, x, value)
        # the reference is read twice so that the writer names (saves) it
        return w.emit(name, token, [x, ref, ref], tuple(value.shape))
    reg([F.interpolate, F.upsample], "x, size=None, scale_factor=None, mode='nearest', "
        "align_corners=None, recompute_scale_factor=None, antialias=False", interpolate)

    def aten_up(mode, with_align):
        def h(w, a, name, value, node):
            x = w.tensor(a.x)
            align = bool(a.align_corners) if with_align else False
            size = tuple(value.shape[2:])
            return w.one(name, _up(x, size, None, mode, align), x, value)
        return h
    for n, mode in (("upsample_nearest1d", "nearest"), ("upsample_nearest2d", "nearest"),
                    ("upsample_nearest3d", "nearest"),
                    ("_upsample_nearest_exact1d", "nearest-exact"),
                    ("_upsample_nearest_exact2d", "nearest-exact"),
                    ("_upsample_nearest_exact3d", "nearest-exact")):
        reg(aten_ops(n), "x, output_size, scale_factors=None", aten_up(mode, False))
    for n, mode in (("upsample_linear1d", "linear"), ("upsample_bilinear2d", "bilinear"),
                    ("upsample_bicubic2d", "bicubic"), ("upsample_trilinear3d", "trilinear")):
        reg(aten_ops(n), "x, output_size, align_corners, scale_factors=None",
            aten_up(mode, True))

    def pad(w, a, name, value, node):
        x = w.tensor(a.x)
        return w.one(name, _pad(x, a.pad, a.mode, a.value), x, value)
    reg([F.pad, *aten_ops("pad")], "x, pad, mode='constant', value=None", pad)
    reg(aten_ops("constant_pad_nd"), "x, pad, value=0",
        lambda w, a, n, v, nd: pad(w, _Args(a, mode="constant"), n, v, nd))
    for kind, mode in (("reflection", "reflect"), ("replication", "replicate")):
        for d in (1, 2, 3):
            reg(aten_ops(f"{kind}_pad{d}d"), "x, pad",
                lambda w, a, n, v, nd, mode=mode: pad(w, _Args(a, mode=mode, value=None),
                                                      n, v, nd))

    def pixel(kind):
        def h(w, a, name, value, node):
            x = w.tensor(a.x)
            if len(x.shape) != 4:
                raise _No("not 4-D")
            return w.one(name, f"{kind}:{a.r}", x, value)
        return h
    reg([F.pixel_shuffle, torch.pixel_shuffle, *aten_ops("pixel_shuffle")], "x, r",
        pixel("pixelshuffle"))
    reg([F.pixel_unshuffle, torch.pixel_unshuffle, *aten_ops("pixel_unshuffle")], "x, r",
        pixel("pixelunshuffle"))

    def channel_shuffle(w, a, name, value, node):
        x = w.tensor(a.x)
        return w.one(name, f"shuffle:{a.groups}", x, value)
    reg([getattr(F, "channel_shuffle", None), getattr(torch, "channel_shuffle", None),
         *aten_ops("channel_shuffle", "native_channel_shuffle")], "x, groups", channel_shuffle)

    def softmax(kind):
        def h(w, a, name, value, node):
            x = w.tensor(a.x)
            if a.dim is None:
                raise _No("dim=None")
            return w.one(name, f"{kind}:{a.dim}", x, value)
        return h
    for fns, kind in (((F.softmax, torch.softmax, "softmax", *aten_ops("softmax", "_softmax")),
                       "softmax"),
                      ((F.log_softmax, torch.log_softmax, "log_softmax",
                        *aten_ops("log_softmax", "_log_softmax")), "logsoftmax")):
        reg(list(fns), "x, dim=None", softmax(kind))

    funcs.pop(None, None)
    return funcs, methods


def _param_names(args, kwargs) -> List[str]:
    out: List[str] = []

    def walk(v):
        if isinstance(v, _Param):
            out.append(v.name)
        elif isinstance(v, (list, tuple)):
            for e in v:
                walk(e)
        elif isinstance(v, dict):
            for e in v.values():
                walk(e)
    walk(args)
    walk(kwargs)
    return out


def _only_first_used(node) -> bool:
    """Every reader of a tuple-valued node takes element 0."""
    return all(u.target is operator.getitem and u.args[1] == 0 for u in node.users)


# ---------------------------------------------------------------------------
# torch.export (where fx cannot trace)
# ---------------------------------------------------------------------------

def _trace_export(torch, module, x) -> "_ExportWalker":
    try:
        ep = torch.export.export(module, (x,))
    except Exception as e:
        raise StackSyntaxError(f"cannot trace the module with torch.fx or torch.export: "
                               f"{_first_line(e)}") from None
    return _ExportWalker(torch, module, ep)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


class _ExportWalker(_FxWalker):
    """The same tables over ``torch.export``'s ATen graph: parameters are
    placeholders, values are the graph's fake tensors, names come from the
    module stack."""

    def __init__(self, torch, module, ep):
        values = {n: n.meta.get("val") for n in ep.graph.nodes}
        _Walker.__init__(self, torch, module)
        self.gm = ep.graph_module
        self.ep = ep
        self.values = values
        self.funcs, self.methods = _fx_tables(torch)
        sig = ep.graph_signature
        self.user_inputs = set(sig.user_inputs)

    def walk(self):
        torch = self.torch
        from torch.utils import _pytree as pytree
        for node in self.gm.graph.nodes:
            value = self.values.get(node)
            if node.op == "placeholder":
                if node.name in self.user_inputs:
                    self.env[node] = _T(INPUT, tuple(value.shape))
                elif _is_tensor(torch, value):
                    self.env[node] = _Param(node.name, tuple(value.shape))
                else:
                    self.env[node] = value
                continue
            if node.op == "output":
                outs = torch.fx.node.map_arg(node.args[0], lambda a: self.env[a])
                try:
                    outs = pytree.tree_unflatten(list(outs), self.ep.call_spec.out_spec)
                except Exception:
                    pass
                self.output_value(outs)
                continue
            if node.op == "get_attr":
                self.env[node] = _Param(node.target, tuple(value.shape)) \
                    if _is_tensor(torch, value) else value
                continue
            if not _has_tensor(torch, value):
                self.fold(node, value)
                continue
            self.visit(node, value)

    def visit(self, node, value):
        stack = node.meta.get("nn_module_stack") or {}
        name = node.name
        if stack:
            path, cls = list(stack.values())[-1]
            cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__name__}"
            if cls.startswith("torch.nn.") and path:
                name = re.sub(r"^L\['self'\]\.?|^L__self___?", "", str(path)) or name
        torch = self.torch
        args = torch.fx.node.map_arg(node.args, lambda a: self.env[a])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: self.env[a])
        op = _func_name(node.target)
        handler = self.funcs.get(node.target) if node.op == "call_function" else None

        def call():
            if handler is None:
                raise _No()
            self.check_shared(_param_names(args, kwargs), "used")
            return handler(self, args, kwargs, name, value, node)
        self.apply(node, op, name, value, call)
