"""Receptive fields of the modern kinds (SPEC §3b) against PyTorch autograd.

Random stacks (deterministic seeds) mix the new kinds with the old: SE
gates (``gap`` → 1x1 convs → ``mul``), a broadcast ``add`` of a pooled
tensor, ``gn``, ``instnorm`` with and without ``track``, ``ln`` over spatial
dims, ``ln2d``, ``softmax``/``logsoftmax`` over channels and over a spatial
dim, ``pixelshuffle``/``pixelunshuffle``, ``pad`` in every mode with
asymmetric and negative (cropping) values, ``permute``+``linear``/``ln``/
``softmax``+``permute`` sandwiches (and a spatial transpose around a conv),
``shuffle``, ``chunk`` (alone and as ShuffleNet's split/concat), ``layerscale``,
``droppath``, ``dropout2d``, residual adds and spatial (local) gates, between
convs (integer / asymmetric padding, dilation, groups, padding modes), average
pools and batch norms, on 1-D and 2-D inputs.

The truth never comes from convcalc.  Each token is run as its PyTorch op
(float64, random inputs and weights in eval mode); the dependency set of one
output position is the set of input positions whose gradient of a random
channel combination ``(y[0, :, pos] * w).sum()`` is nonzero.  Random weights
make cancellation a measure-zero accident (a plain channel sum would cancel
exactly after a norm over channels: the normalized values sum to 0).  The
*local* truth (the field through the position-keeping paths) is the same
gradient with every mixing statistic detached: a norm's mean and variance, a
softmax's normalizer, a pooled gate.

Checked:

* convcalc's shapes equal torch's at every row, convcalc accepts every stack
  torch accepts, and rejects (exit 2 or 3) every single token torch rejects at
  that shape;
* stacks without a mixing layer: a finite ``receptive_field``, no
  ``mixed_by``, and ``region_at`` gives exactly the autograd set (the
  products of per-dim sets, not only their bounding box);
* stacks with one: ``receptive_field`` None and ``mixed_by`` naming a mixing
  layer; the exact region (what ``rf --at`` answers) equals the autograd set
  and the local region the detached-statistics autograd set;
* fixed small stacks: a mixing layer after a full-coverage prefix makes every
  input position a dependency (autograd), and convcalc says global.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import List

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import convcalc  # noqa: E402
from convcalc.analysis import region_at  # noqa: E402

N_STACKS = 400          # checked stacks required
MAX_ATTEMPTS = 3000     # seeds tried at most
MAX_ELEMENTS = 20_000   # per activation
DT = torch.float64


# ---------------------------------------------------------------------------
# tokens as torch ops.  An op is a dict: "tok" (the token), "fn" (env, local)
# -> None acting on env["cur"] (and env names), "mix" (it mixes positions)
# ---------------------------------------------------------------------------

class Env(dict):
    """The current tensor ("cur") and the named ones (save/from)."""


def _rand(gen, *shape, scale=1.0):
    return torch.randn(shape, generator=gen, dtype=DT) * scale


def _pos(gen, *shape):
    return torch.rand(shape, generator=gen, dtype=DT) + 0.5


def _fpad(pairs) -> list:
    flat = []
    for b, a in reversed(pairs):  # F.pad: last dim first
        flat += [b, a]
    return flat


def _dims_text(vals) -> str:
    return str(vals[0]) if len(set(vals)) == 1 else "x".join(map(str, vals))


def _pairs_text(pairs) -> str:
    parts = [str(b) if b == a else f"{b}:{a}" for b, a in pairs]
    return parts[0] if len(set(parts)) == 1 else "x".join(parts)


def _normalize(x, dims, local, eps):
    """(x - mean) / sqrt(var + eps) over ``dims``; statistics detached when local."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    if local:
        mean, var = mean.detach(), var.detach()
    return (x - mean) / torch.sqrt(var + eps)


def _log_softmax(x, dim, local):
    lse = torch.logsumexp(x, dim=dim, keepdim=True)
    return x - (lse.detach() if local else lse)


class Gen:
    """Draws ops that fit the current tensor; weights are drawn once, lazily."""

    def __init__(self, rng: random.Random, tgen: torch.Generator):
        self.rng, self.tgen = rng, tgen
        self.names = 0
        # a zero-valued pad times a gate is 0 whatever the gate reads: the
        # stacks with zero-valued pads have no mul (a dependency no-one means)
        self.zero_pads = rng.random() < 0.5

    def name(self, stem):
        self.names += 1
        return f"{stem}{self.names}"

    # -- plain ops ----------------------------------------------------------

    def simple(self, tok, f, mix=False):
        def fn(env, local):
            env["cur"] = f(env["cur"], local)
        return dict(tok=tok, fn=fn, mix=mix)

    def conv(self, shape, out=None, k=None, s=None, p=None, d=None, g=1, pm="zeros"):
        rng, n, C = self.rng, len(shape) - 2, shape[1]
        if out is None and rng.random() < 0.2:  # depthwise
            out, g = C * rng.choice([1, 2]), C
        if p is None and rng.random() < 0.2:
            pm = rng.choice(["reflect", "replicate", "circular"])
        out = out or rng.choice([1, 2, 3, 4, 8, 9])
        k = k or self.per_dim(n, lambda: rng.randint(1, 4))
        s = s or self.per_dim(n, lambda: rng.choice([1, 1, 1, 2]))
        d = d or self.per_dim(n, lambda: rng.choice([1, 1, 1, 2]))
        if p is None:
            p = tuple(self.per_dim(n, lambda: (rng.randint(0, 2), rng.randint(0, 2))))
        w = _rand(self.tgen, out, C // g, *k, scale=1 / math.sqrt(max(1, C // g * math.prod(k))))
        b = _rand(self.tgen, out, scale=0.1)
        conv = (F.conv1d, F.conv2d)[n - 1]
        mode = {"zeros": "constant"}.get(pm, pm)
        tok = (f"conv:{out},k={_dims_text(k)},s={_dims_text(s)},p={_pairs_text(p)},"
               f"d={_dims_text(d)}" + (f",g={g}" if g != 1 else "")
               + (f",pm={pm}" if pm != "zeros" else ""))
        return self.simple(tok, lambda x, local: conv(F.pad(x, _fpad(p), mode=mode), w, b, s, 0,
                                                      d, g))

    def per_dim(self, n, pick):
        if n > 1 and self.rng.random() < 0.35:
            return tuple(pick() for _ in range(n))
        return (pick(),) * n

    def avgpool(self, shape):
        rng, n = self.rng, len(shape) - 2
        k = self.per_dim(n, lambda: rng.randint(1, 3))
        s = self.per_dim(n, lambda: rng.randint(1, 2))
        p = tuple(rng.randint(0, kk // 2) for kk in k)
        ceil, cip = rng.random() < 0.3, rng.random() < 0.5
        pool = (F.avg_pool1d, F.avg_pool2d)[n - 1]
        tok = f"avgpool:{_dims_text(k)},s={_dims_text(s)},p={_dims_text(p)}"
        tok += (",ceil" if ceil else "") + ("" if cip else ",count_include_pad=false")
        return self.simple(tok, lambda x, local: pool(x, k, s, p, ceil, cip))

    def bn(self, shape):
        # written out: torch 2.13's batch_norm (eval) backward puts the gradient
        # at the wrong positions for some grad_output strides (e.g. (6, 1, 48, 6)
        # on 1x6x7x8, what a reshape after a permute hands back): the oracle
        # keeps to elementwise arithmetic for every norm
        C, n = shape[1], len(shape) - 2
        view = (1, C) + (1,) * n
        rm, rv = _rand(self.tgen, C).reshape(view), _pos(self.tgen, C).reshape(view)
        w, b = _rand(self.tgen, C).reshape(view), _rand(self.tgen, C).reshape(view)
        return self.simple("bn", lambda x, local: (x - rm) / torch.sqrt(rv + 1e-5) * w + b)

    def act(self, shape):
        name = self.rng.choice(["silu", "gelu", "tanh", "sigmoid", "mish"])
        f = dict(silu=F.silu, gelu=F.gelu, tanh=torch.tanh, sigmoid=torch.sigmoid,
                 mish=F.mish)[name]
        return self.simple(f"act:{name}", lambda x, local: f(x))

    def pad(self, shape):
        rng, n = self.rng, len(shape) - 2
        mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
        pairs = tuple(self.per_dim(n, lambda: (rng.randint(-2, 3), rng.randint(-2, 3))))
        if mode == "circular" and any(min(p) < 0 and max(p) > size + min(p)
                                      for p, size in zip(pairs, shape[2:])):
            # torch crops first and wraps over the cropped size; a wrap longer
            # than that is a memory-overlap error or, for some shapes, garbage
            mode = "zeros"
        value = rng.choice([0.5, -1.5] + [0, 0] * self.zero_pads) if mode == "zeros" else 0
        tok = f"pad:{_pairs_text(pairs)}" + (f",mode={mode}" if mode != "zeros" else "")
        tok += f",value={value}" if value else ""
        tmode = {"zeros": "constant"}.get(mode, mode)
        kw = {"value": float(value)} if tmode == "constant" else {}
        return self.simple(tok, lambda x, local: F.pad(x, _fpad(pairs), mode=tmode, **kw))

    def pixelshuffle(self, shape):
        fits = [r for r in (2, 3) if shape[1] % (r * r) == 0]
        r = self.rng.choice(fits if fits and self.rng.random() < 0.85 else [2, 3])
        return self.simple(f"pixelshuffle:{r}", lambda x, local: F.pixel_shuffle(x, r))

    def pixelunshuffle(self, shape):
        fits = [r for r in (2, 3) if all(n % r == 0 for n in shape[2:])]
        r = self.rng.choice(fits if fits and self.rng.random() < 0.85 else [2, 3])
        return self.simple(f"pixelunshuffle:{r}", lambda x, local: F.pixel_unshuffle(x, r))

    def shuffle(self, shape):
        C = shape[1]
        g = self.rng.choice([d for d in range(2, C + 1) if C % d == 0] or [1])

        def f(x, local):
            n, c = x.shape[:2]
            rest = x.shape[2:]
            return x.reshape(n, g, c // g, *rest).transpose(1, 2).reshape(n, c, *rest)
        return self.simple(f"shuffle:{g}", f)

    def chunk(self, shape):
        C = shape[1]
        n = self.rng.randint(1, max(1, min(C, 4)))
        count = len(torch.zeros(C).chunk(n))  # chunks that exist (REFERENCE: maybe < n)
        i = self.rng.randrange(count)
        if self.rng.random() < 0.3:
            i -= count
        return self.simple(f"chunk:{n},i={i}", lambda x, local: x.chunk(n, dim=1)[i])

    def ln2d(self, shape):
        C = shape[1]
        w, b = _rand(self.tgen, C), _rand(self.tgen, C)

        view = (1, C) + (1,) * (len(shape) - 2)

        def f(x, local):  # LayerNorm2d: over the channels at each position
            return _normalize(x, (1,), False, 1e-6) * w.reshape(view) + b.reshape(view)
        return self.simple("ln2d", f)

    def layerscale(self, shape):
        n = len(shape) - 2
        gamma = _rand(self.tgen, shape[1], *([1] * n))
        return self.simple("layerscale", lambda x, local: gamma * x)

    def identity(self, shape):
        tok = self.rng.choice(["droppath", "droppath:0.3", "dropout", "dropout:0"]
                              + (["dropout2d"] if len(shape) == 4 else ["dropout1d"]))
        return self.simple(tok, lambda x, local: x)

    def instnorm_track(self, shape):
        # InstanceNorm with running statistics in eval: (x - rm) / sqrt(rv + eps),
        # written out (F.instance_norm(use_input_stats=False) has the batch_norm
        # backward bug: a permuted grad_output lands at the wrong positions)
        C, n = shape[1], len(shape) - 2
        view = (1, C) + (1,) * n
        rm, rv = _rand(self.tgen, C).reshape(view), _pos(self.tgen, C).reshape(view)
        return self.simple("instnorm:track", lambda x, local: (x - rm) / torch.sqrt(rv + 1e-5))

    def softmax_channels(self, shape):
        tok, dim = self.rng.choice([("softmax", 1), ("softmax:1", 1), ("logsoftmax:1", 1),
                                    (f"logsoftmax:{1 - len(shape)}", 1)])
        if tok.startswith("log"):
            return self.simple(tok, lambda x, local: _log_softmax(x, dim, False))
        return self.simple(tok, lambda x, local: torch.softmax(x, dim))

    # -- mixing ops ----------------------------------------------------------

    def gn(self, shape):
        C = shape[1]
        g = self.rng.choice([d for d in range(1, C + 1) if C % d == 0])
        w, b = _rand(self.tgen, C), _rand(self.tgen, C)
        view = (1,) + (C,) + (1,) * (len(shape) - 2)

        def f(x, local):
            n = x.shape[0]
            y = _normalize(x.reshape(n, g, -1), (2,), local, 1e-5).reshape(x.shape)
            return y * w.reshape(view) + b.reshape(view)
        return self.simple(f"gn:{g}", f, mix=True)

    def instnorm(self, shape):
        affine = self.rng.random() < 0.5
        C, n = shape[1], len(shape) - 2
        w, b = _rand(self.tgen, C, *([1] * n)), _rand(self.tgen, C, *([1] * n))

        def f(x, local):
            y = _normalize(x, tuple(range(2, x.dim())), local, 1e-5)
            return y * w + b if affine else y
        return self.simple("instnorm:affine" if affine else "instnorm", f, mix=True)

    def ln_spatial(self, shape):
        # the last `dims` dims: W, (H, W), (C, H, W); more than one element
        dims = self.rng.choice([d for d in range(1, len(shape)) if math.prod(shape[-d:]) >= 2])
        norm = tuple(range(len(shape) - dims, len(shape)))
        w, b = _rand(self.tgen, *shape[-dims:]), _rand(self.tgen, *shape[-dims:])
        return self.simple("ln" if dims == 1 else f"ln:{dims}",
                           lambda x, local: _normalize(x, norm, local, 1e-5) * w + b, mix=True)

    def softmax_spatial(self, shape):
        rank = len(shape)
        dim = self.rng.choice([d for d in list(range(2, rank)) + list(range(-rank + 2, 0))
                               if shape[d] >= 2])
        log = self.rng.random() < 0.5
        tok = f"{'log' if log else ''}softmax:{dim}"
        if log:
            return self.simple(tok, lambda x, local: _log_softmax(x, dim, local), mix=True)
        return self.simple(tok, lambda x, local: torch.exp(_log_softmax(x, dim, local)),
                           mix=True)

    # -- graph units (several tokens) ----------------------------------------

    def graph_ops(self, toks_fns):
        return [dict(tok=t, fn=f, mix=m) for t, f, m in toks_fns]

    @staticmethod
    def _save(name):
        def fn(env, local):
            env[name] = env["cur"]
        return fn

    @staticmethod
    def _from(name):
        def fn(env, local):
            env["cur"] = env[name]
        return fn

    def se_gate(self, shape, add=False):
        """save:a gap conv act conv sigmoid save:g from:a mul:g (or add:g)."""
        C, n = shape[1], len(shape) - 2
        sq = self.rng.randint(1, 4)
        a, g = self.name("a"), self.name("g")
        w1 = _rand(self.tgen, sq, C, *([1] * n), scale=1 / math.sqrt(C))
        w2 = _rand(self.tgen, C, sq, *([1] * n), scale=1 / math.sqrt(sq))
        conv = (F.conv1d, F.conv2d)[n - 1]
        gap = (lambda x: F.adaptive_avg_pool1d(x, 1), lambda x: F.adaptive_avg_pool2d(x, 1))[n - 1]
        ops = [(f"save:{a}", self._save(a), False),
               ("gap", self._apply(lambda x: gap(x)), False)]
        if not add:
            ops += [(f"conv:{sq},k=1", self._apply(lambda x: conv(x, w1)), False),
                    ("act:silu", self._apply(F.silu), False),
                    (f"conv:{C},k=1", self._apply(lambda x: conv(x, w2)), False),
                    ("act:sigmoid", self._apply(torch.sigmoid), False)]
        ops += [(f"save:{g}", self._save(g), False), (f"from:{a}", self._from(a), False)]

        def join(env, local):
            gate = env[g].detach() if local else env[g]
            env["cur"] = env["cur"] + gate if add else env["cur"] * gate
        ops.append((f"{'add' if add else 'mul'}:{g}", join, True))
        return self.graph_ops(ops)

    @staticmethod
    def _apply(f):
        def fn(env, local):
            env["cur"] = f(env["cur"])
        return fn

    def residual(self, shape):
        """save:r, a shape-keeping conv (and maybe an act), add:r."""
        n, C = len(shape) - 2, shape[1]
        r = self.name("r")
        k = self.rng.choice([1, 3])
        d = self.rng.choice([1, 2]) if k == 3 else 1
        c = self.conv(shape, out=C, k=(k,) * n, s=(1,) * n, d=(d,) * n,
                      p=(((k - 1) // 2 * d,) * 2,) * n)
        ops = [dict(tok=f"save:{r}", fn=self._save(r), mix=False), c]

        def add(env, local):
            env["cur"] = env["cur"] + env[r]
        return ops + [dict(tok=f"add:{r}", fn=add, mix=False)]

    def spatial_gate(self, shape):
        """save:a conv:C,k=3,p=1 sigmoid save:g from:a mul:g (positions kept)."""
        n, C = len(shape) - 2, shape[1]
        a, g = self.name("a"), self.name("g")
        c = self.conv(shape, out=self.rng.choice([1, C]), k=(3,) * n, s=(1,) * n, d=(1,) * n,
                      p=((1, 1),) * n)

        def mul(env, local):
            env["cur"] = env["cur"] * env[g]
        return [dict(tok=f"save:{a}", fn=self._save(a), mix=False), c,
                self.simple("act:sigmoid", lambda x, local: torch.sigmoid(x)),
                dict(tok=f"save:{g}", fn=self._save(g), mix=False),
                dict(tok=f"from:{a}", fn=self._from(a), mix=False),
                dict(tok=f"mul:{g}", fn=mul, mix=False)]

    def split_concat(self, shape):
        """ShuffleNet's split: chunk:2,i=0 | chunk:2,i=1 conv, concat."""
        n, C = len(shape) - 2, shape[1]
        x, a, b = self.name("x"), self.name("a"), self.name("b")
        half = len(torch.zeros(C).chunk(2)[1])
        c = self.conv((1, half) + tuple(shape[2:]), out=self.rng.randint(1, 3), k=(3,) * n,
                      s=(1,) * n, d=(1,) * n, p=((1, 1),) * n)

        def cat(env, local):
            env["cur"] = torch.cat([env["cur"], env[b]], dim=1)
        return [dict(tok=f"save:{x}", fn=self._save(x), mix=False),
                self.simple("chunk:2,i=0", lambda t, local: t.chunk(2, dim=1)[0]),
                dict(tok=f"save:{a}", fn=self._save(a), mix=False),
                dict(tok=f"from:{x}", fn=self._from(x), mix=False),
                self.simple("chunk:2,i=1", lambda t, local: t.chunk(2, dim=1)[1]), c,
                dict(tok=f"save:{b}", fn=self._save(b), mix=False),
                dict(tok=f"from:{a}", fn=self._from(a), mix=False),
                dict(tok=f"concat:{b}", fn=cat, mix=False)]

    def channels_last(self, shape):
        """permute to channels-last, linear / ln / softmax over channels (or ln:2,
        mixing the last spatial dim), permute back."""
        rank, C = len(shape), shape[1]
        to = (0,) + tuple(range(2, rank)) + (1,)
        back = (0, rank - 1) + tuple(range(1, rank - 1))
        inner = self.rng.choice(["linear", "linear", "ln", "softmax", "gelu", "ln2"])
        ops = [self.simple("permute:" + ",".join(map(str, to)),
                           lambda x, local: x.permute(*to))]
        if inner == "linear":
            out = self.rng.randint(1, 6)
            w = _rand(self.tgen, out, C, scale=1 / math.sqrt(C))
            b = _rand(self.tgen, out)
            ops.append(self.simple(f"linear:{out}", lambda x, local: F.linear(x, w, b)))
        elif inner == "ln":
            w, b = _rand(self.tgen, C), _rand(self.tgen, C)
            ops.append(self.simple("ln", lambda x, local: _normalize(x, (-1,), False, 1e-5)
                                   * w + b))
        elif inner == "softmax":
            ops.append(self.simple("softmax:-1", lambda x, local: torch.softmax(x, -1)))
        elif inner == "gelu":
            ops.append(self.simple("gelu", lambda x, local: F.gelu(x)))
        else:  # ln:2 over (last spatial, C): mixes along the last spatial dim
            last = shape[-1]
            w, b = _rand(self.tgen, last, C), _rand(self.tgen, last, C)
            ops.append(self.simple("ln:2", lambda x, local: _normalize(
                x, (rank - 2, rank - 1), local, 1e-5) * w + b, mix=True))
        ops.append(self.simple("permute:" + ",".join(map(str, back)),
                               lambda x, local: x.permute(*back)))
        return ops

    def transpose_conv(self, shape):
        """permute:0,1,3,2, a conv on the transposed tensor, permute:0,1,3,2."""
        t = (shape[0], shape[1], shape[3], shape[2])
        return [self.simple("permute:0,1,3,2", lambda x, local: x.transpose(2, 3)),
                self.conv(t),
                self.simple("permute:0,1,3,2", lambda x, local: x.transpose(2, 3))]


LOCAL_UNITS = {  # name: (weight, ranks)
    "conv": (14, (3, 4)), "avgpool": (4, (3, 4)), "bn": (3, (3, 4)), "act": (3, (3, 4)),
    "pad": (12, (3, 4)), "pixelshuffle": (12, (4,)), "pixelunshuffle": (6, (4,)),
    "shuffle": (4, (3, 4)), "chunk": (3, (3, 4)), "ln2d": (4, (3, 4)), "layerscale": (2, (3, 4)),
    "identity": (2, (3, 4)), "instnorm_track": (3, (3, 4)), "softmax_channels": (3, (3, 4)),
    "residual": (4, (3, 4)), "spatial_gate": (3, (3, 4)), "split_concat": (3, (3, 4)),
    "channels_last": (7, (3, 4)), "transpose_conv": (4, (4,)),
}
MIXING_UNITS = {
    "gn": (5, (3, 4)), "instnorm": (4, (3, 4)), "ln_spatial": (4, (3, 4)),
    "softmax_spatial": (5, (3, 4)), "se_gate": (5, (3, 4)), "se_add": (2, (3, 4)),
}


def _unit(g: Gen, name: str, shape):
    if name == "se_add":
        ops = g.se_gate(shape, add=True)
    else:
        ops = getattr(g, name)(shape)
    return ops if isinstance(ops, list) else [ops]


def _fits(g, name: str, shape) -> bool:
    C, sp = shape[1], shape[2:]
    if name == "pixelshuffle":
        return C % 4 == 0 or C % 9 == 0
    if name == "pixelunshuffle":
        return all(s % 2 == 0 for s in sp) or all(s % 3 == 0 for s in sp)
    if name == "split_concat":
        return C >= 2
    if name in ("spatial_gate", "se_gate") and g.zero_pads:
        return False
    # a normalized group of one element is a constant (depends on nothing):
    # kept out of the random stacks (see test_one_element_norms)
    if name in ("gn", "instnorm", "ln_spatial"):
        return math.prod(sp) >= 2
    if name == "softmax_spatial":
        return max(sp) >= 2
    if name in ("ln2d", "softmax_channels", "channels_last"):
        return C >= 2
    return True


def run(ops, x, local=False):
    env = Env(cur=x, input=x)
    for op in ops:
        op["fn"](env, local)
    return env["cur"]


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------

@dataclass
class Case:
    seed: int
    shape: tuple
    tokens: List[str]
    mixing: List[int]          # 1-based token positions of mixing layers
    problems: List[str] = field(default_factory=list)
    missed: List[str] = field(default_factory=list)  # positions convcalc's set leaves out
    checked_positions: int = 0

    @property
    def channel_select(self) -> bool:
        """Where the dependency set depends on *which channels* are read: a
        chunk after a concat (the chunk's channels may come from one path only)
        or a pixelshuffle after a pixelunshuffle (the channel index holds the
        sub-position, so unshuffle then shuffle is the identity)."""
        def after(first, then):
            at = [i for i, t in enumerate(self.tokens) if t.startswith(first)]
            return bool(at) and any(t.startswith(then) for t in self.tokens[at[0]:])
        return after("concat:", "chunk:") or after("concat:", "pixelshuffle:") or \
            after("pixelunshuffle:", "pixelshuffle:")

    def label(self) -> str:
        return f"seed {self.seed}: -i {'x'.join(map(str, self.shape))} " + " ".join(self.tokens)


def gen_case(seed: int):
    """(shape, ops, torch-rejected single tokens) or None when the stack fails."""
    rng = random.Random(seed)
    tgen = torch.Generator().manual_seed(seed)
    g = Gen(rng, tgen)
    rank = rng.choice([3, 4, 4, 4])
    shape = (1, rng.choice([1, 2, 3, 4, 6, 8])) + tuple(rng.randint(3, 14)
                                                         for _ in range(rank - 2))
    x = _rand(tgen, *shape)
    want_mix = rng.random() < 0.5
    n_units = rng.randint(1, 5)
    mix_at = rng.randrange(n_units) if want_mix else -1
    ops, rejected, h = [], [], x
    for u in range(n_units):
        pool = MIXING_UNITS if u == mix_at else LOCAL_UNITS
        names = [n for n, (w, ranks) in pool.items() if rank in ranks and _fits(g, n, h.shape)]
        for _attempt in range(8):
            name = rng.choices(names, [pool[n][0] for n in names])[0]
            unit = _unit(g, name, tuple(h.shape))
            env_shape = tuple(h.shape)
            try:
                hh = run(ops + unit, x)
            except (RuntimeError, ValueError, IndexError) as e:
                if len(unit) == 1:
                    rejected.append((unit[0]["tok"], env_shape, str(e).splitlines()[0]))
                continue
            if hh.numel() == 0 or hh.numel() > MAX_ELEMENTS:
                continue
            ops += unit
            h = hh
            break
    return shape, x, ops, rejected


def _products_to_set(products) -> set:
    out = set()
    for p in products:
        out.update(itertools.product(*[list(s) for s in p]))
    return out


def _autograd_set(ops, x, pos, w, local) -> set:
    xg = x.detach().clone().requires_grad_(True)
    y = run(ops, xg, local)
    (y[(0, slice(None)) + pos] * w).sum().backward()
    mask = xg.grad.abs().sum(dim=(0, 1)) != 0
    return {tuple(int(v) for v in idx) for idx in torch.nonzero(mask)}


def _box(s: set):
    if not s:
        return None
    return tuple((min(p[d] for p in s), max(p[d] for p in s)) for d in range(len(next(iter(s)))))


# region_at(a, at) gives both: .region / .positions, the exact set (what
# `rf --at` answers: a mixing layer reads its input whole along the dims it
# mixes), and, once positions were mixed on the way (.mixed_by), .local_region,
# the box through the position-keeping paths.


@lru_cache(maxsize=1)
def collect():
    torch.set_grad_enabled(True)
    cases: List[Case] = []
    rejections: List[tuple] = []
    skipped = 0
    for seed in range(MAX_ATTEMPTS):
        if len(cases) >= N_STACKS:
            break
        shape, x, ops, rejected = gen_case(seed)
        rejections += rejected
        if not ops:
            skipped += 1
            continue
        tokens = [op["tok"] for op in ops]
        mixing = [i for i, op in enumerate(ops, 1) if op["mix"]]
        case = Case(seed, shape, tokens, mixing)
        cases.append(case)
        # torch shapes per token
        env = Env(cur=x, input=x)
        shapes = []
        with torch.no_grad():
            for op in ops:
                op["fn"](env, False)
                shapes.append(tuple(env["cur"].shape))
        try:
            a = convcalc.analyze(tokens, shape)
        except convcalc.ConvcalcError as e:
            case.problems.append(f"convcalc rejects what torch accepts: {e}")
            continue
        ours = [tuple(r.output_shape) for r in a.layers]
        if ours != shapes:
            bad = next(i for i, (p, q) in enumerate(zip(ours, shapes)) if p != q)
            case.problems.append(f"shape at token {bad + 1} ({tokens[bad]}): convcalc "
                                 f"{ours[bad]} vs torch {shapes[bad]}")
            continue
        last = a.layers[-1]
        if mixing:
            if last.receptive_field is not None:
                case.problems.append(f"mixing layer(s) {mixing} but receptive_field "
                                     f"{last.receptive_field}")
            named = [f"layer {i} ({tokens[i - 1]})" for i in mixing] + \
                [f"layer {i} (gap)" for i, t in enumerate(tokens, 1) if t == "gap"]
            if not last.mixed_by or not any(n in last.mixed_by for n in named):
                case.problems.append(f"mixed_by {last.mixed_by!r} names none of {named}")
        else:
            if last.receptive_field is None and last.receptive_note is None:
                case.problems.append("no mixing layer but receptive_field None "
                                     f"(mixed_by {last.mixed_by!r})")
            if last.mixed_by is not None:
                case.problems.append(f"no mixing layer but mixed_by {last.mixed_by!r}")
        prng = random.Random(seed * 7919 + 1)
        out_sp = shapes[-1][2:]
        C_out = shapes[-1][1]
        for _ in range(prng.randint(1, 3)):
            pos = tuple(prng.randrange(n) for n in out_sp)
            w = torch.randn(C_out, generator=torch.Generator().manual_seed(seed + 17), dtype=DT)
            truth = _autograd_set(ops, x, pos, w, local=False)
            where = f"--at {','.join(map(str, pos))}"
            try:
                reg = region_at(a, pos)
            except convcalc.ConvcalcError as e:
                case.problems.append(f"{where}: exact region refused: {e}")
                case.checked_positions += 1
                continue
            got = _products_to_set(reg.positions)
            if reg.region != _box(truth) or got != truth:
                extra = sorted(got - truth)[:4], sorted(truth - got)[:4]
                case.problems.append(f"{where}: exact region {reg.region} vs autograd "
                                     f"{_box(truth)} (extra, missing: {extra})")
                if truth - got:
                    case.missed.append(where)
            if mixing:
                local_truth = _autograd_set(ops, x, pos, w, local=True)
                if not reg.mixed_by:
                    case.problems.append(f"{where}: local region: region_at has no mixed_by")
                elif reg.local_region != _box(local_truth):
                    case.problems.append(f"{where}: local region {reg.local_region} vs "
                                         f"autograd (statistics detached) {_box(local_truth)}")
            elif reg.mixed_by:
                case.problems.append(f"{where}: exact region: mixed_by {reg.mixed_by!r} "
                                     f"without a mixing layer")
            case.checked_positions += 1
    return cases, rejections, skipped


def _fail_if(bad: List[str], what: str) -> None:
    if bad:
        pytest.fail(f"{len(bad)} {what}:\n  " + "\n  ".join(bad[:20]), pytrace=False)


# ---------------------------------------------------------------------------
# tests on the random stacks
# ---------------------------------------------------------------------------

def test_enough_cases():
    cases, rejections, skipped = collect()
    assert len(cases) == N_STACKS, (len(cases), skipped)
    assert sum(c.checked_positions for c in cases) >= N_STACKS
    mixing = [c for c in cases if c.mixing]
    assert len(mixing) >= N_STACKS // 4 and len(cases) - len(mixing) >= N_STACKS // 4
    kinds = {t.split(":")[0].split(",")[0] for c in cases for t in c.tokens}
    assert kinds >= {"conv", "avgpool", "bn", "act", "pad", "pixelshuffle", "pixelunshuffle",
                     "shuffle", "chunk", "ln2d", "layerscale", "instnorm", "softmax",
                     "logsoftmax", "gn", "ln", "permute", "linear", "mul", "add", "gap",
                     "concat", "save", "from"}, kinds
    pads = [t for c in cases for t in c.tokens if t.startswith("pad:")]
    for mode in ("reflect", "replicate", "circular"):
        assert any(f"mode={mode}" in t for t in pads), mode
    assert any("-" in t.split(",")[0] for t in pads), "no negative (cropping) pad"
    assert sum(len(c.shape) == 3 for c in cases) >= N_STACKS // 10


def test_shapes_and_acceptance():
    cases, _, _ = collect()
    _fail_if([f"{c.label()}: {p}" for c in cases for p in c.problems
              if p.startswith(("shape", "convcalc rejects"))],
             "shape / acceptance disagreements")


def test_global_verdict():
    cases, _, _ = collect()
    _fail_if([f"{c.label()}: {p}" for c in cases for p in c.problems
              if "receptive_field" in p or "mixed_by" in p],
             "wrong global / local verdicts")


def test_exact_regions_finite_stacks():
    cases, _, _ = collect()
    _fail_if([f"{c.label()}  {p}" for c in cases if not c.mixing and not c.channel_select
              for p in c.problems if "exact region" in p],
             "disagreements with autograd (no mixing layer)")


def test_exact_regions_mixing_stacks():
    cases, _, _ = collect()
    _fail_if([f"{c.label()}  {p}" for c in cases if c.mixing and not c.channel_select
              for p in c.problems if "exact region" in p],
             "disagreements with autograd (mixing layer)")


def test_local_regions_mixing_stacks():
    cases, _, _ = collect()
    _fail_if([f"{c.label()}  {p}" for c in cases if c.mixing and not c.channel_select
              for p in c.problems if "local region" in p],
             "local-region disagreements with autograd")


def test_channel_selection_after_concat():
    """A layer that picks channels of a concat (chunk, or pixelshuffle's
    sub-positions): convcalc's sets are per position over every channel, so
    they hold the autograd set and may hold more (README: a known limit) --
    never less."""
    cases, _, _ = collect()
    selecting = [c for c in cases if c.channel_select]
    assert len(selecting) >= 3
    _fail_if([f"{c.label()}  {w}" for c in selecting for w in c.missed],
             "positions autograd depends on that convcalc leaves out after a channel selection")


def test_torch_rejections_are_convcalc_rejections():
    _, rejections, _ = collect()
    assert rejections, "the generator never hit a torch rejection"
    bad = []
    for tok, shape, why in rejections:
        try:
            convcalc.analyze([tok], shape)
        except convcalc.ConvcalcError as e:
            if e.exit_code not in (2, 3):
                bad.append(f"-i {'x'.join(map(str, shape))} {tok}: exit {e.exit_code}")
            continue
        bad.append(f"-i {'x'.join(map(str, shape))} {tok}: torch says {why!r}, convcalc accepts")
    _fail_if(bad, "tokens torch rejects but convcalc accepts")


# ---------------------------------------------------------------------------
# fixed stacks: global vs finite, by autograd alone
# ---------------------------------------------------------------------------

def _fixed(tokens_ops, shape, seed=0):
    tgen = torch.Generator().manual_seed(seed)
    g = Gen(random.Random(seed), tgen)
    x = _rand(tgen, *shape)
    ops, h = [], x
    for make in tokens_ops:
        unit = make(g, tuple(h.shape))
        ops += unit if isinstance(unit, list) else [unit]
        h = run(ops, x)
    return x, ops, tuple(h.shape)


def _c3(g, s):
    n = len(s) - 2
    return g.conv(s, out=4, k=(3,) * n, s=(1,) * n, d=(1,) * n, p=((1, 1),) * n)


GLOBAL_MIDDLES = {
    "gn:2": lambda g, s: g.simple("gn:2", lambda x, local: _normalize(
        x.reshape(1, 2, -1), (2,), False, 1e-5).reshape(x.shape)),
    "instnorm": lambda g, s: g.simple("instnorm", lambda x, local: _normalize(
        x, (2, 3), False, 1e-5)),
    "ln:2": lambda g, s: g.simple("ln:2", lambda x, local: _normalize(x, (2, 3), False, 1e-5)),
    "se": lambda g, s: g.se_gate(s),
    "se-add": lambda g, s: g.se_gate(s, add=True),
    "softmax:2,3": lambda g, s: [g.simple("softmax:2", lambda x, local: torch.softmax(x, 2)),
                                 g.simple("logsoftmax:-1",
                                          lambda x, local: torch.log_softmax(x, -1))],
}


@pytest.mark.parametrize("middle", sorted(GLOBAL_MIDDLES))
def test_global_kinds_read_every_position(middle):
    shape = (1, 3, 9, 11)
    x, ops, out = _fixed([_c3, GLOBAL_MIDDLES[middle], _c3], shape)
    tokens = [op["tok"] for op in ops]
    a = convcalc.analyze(tokens, shape)
    assert tuple(a.output_shape) == out
    every = {(i, j) for i in range(9) for j in range(11)}
    w = torch.randn(out[1], dtype=DT, generator=torch.Generator().manual_seed(1))
    for pos in [(0, 0), (4, 5), (8, 10)]:
        assert _autograd_set(ops, x, pos, w, local=False) == every, (middle, pos)
    last = a.layers[-1]
    assert last.receptive_field is None, tokens
    assert a.receptive_field is None
    assert last.mixed_by, tokens
    assert last.local_receptive_field is not None
    # locally: conv 3x3, (per position), conv 3x3 -> 5x5
    assert tuple(last.local_receptive_field.size) == (5, 5)
    doc = a.to_dict()
    assert doc["receptive_field"] is None and doc["layers"][-1]["receptive_field"] is None
    assert "local_receptive_field" in doc["layers"][-1]


FINITE_MIDDLES = {
    "bn": (lambda g, s: g.bn(s), 5),
    "ln2d": (lambda g, s: g.ln2d(s), 5),
    "instnorm:track": (lambda g, s: g.instnorm_track(s), 5),
    "softmax (channels)": (lambda g, s: g.simple("softmax", lambda x, l: torch.softmax(x, 1)),
                           5),
    "pad:1,mode=reflect": (lambda g, s: g.simple(
        "pad:1,mode=reflect", lambda x, l: F.pad(x, [1] * 4, mode="reflect")), 5),
    "channels-last linear": (lambda g, s: [
        g.simple("permute:0,2,3,1", lambda x, l: x.permute(0, 2, 3, 1)),
        g.simple("ln", lambda x, l: _normalize(x, (-1,), False, 1e-5)),
        g.simple("permute:0,3,1,2", lambda x, l: x.permute(0, 3, 1, 2))], 5),
}


@pytest.mark.parametrize("middle", sorted(FINITE_MIDDLES))
def test_position_keeping_kinds_have_a_field(middle):
    make, size = FINITE_MIDDLES[middle]
    shape = (1, 3, 12, 12)
    x, ops, out = _fixed([_c3, make, _c3], shape)
    tokens = [op["tok"] for op in ops]
    a = convcalc.analyze(tokens, shape)
    last = a.layers[-1]
    assert last.receptive_field is not None, (tokens, last.mixed_by)
    assert tuple(last.receptive_field.size) == (size, size)
    assert last.mixed_by is None
    w = torch.randn(out[1], dtype=DT, generator=torch.Generator().manual_seed(1))
    for pos in [(0, 0), (6, 6), (out[2] - 1, out[3] - 1)]:
        truth = _autograd_set(ops, x, pos, w, local=False)
        reg = region_at(a, pos)
        assert reg.region == _box(truth), (tokens, pos)
        assert _products_to_set(reg.positions) == truth


def test_pixelshuffle_reads_one_position_unshuffle_r():
    # pixelshuffle:2: output o reads input o // 2; pixelunshuffle:2: o reads 2o, 2o + 1
    x = torch.randn(1, 4, 6, 6, dtype=DT, requires_grad=True)
    F.pixel_shuffle(x, 2)[0, :, 5, 2].sum().backward()
    assert _box({tuple(map(int, i)) for i in torch.nonzero(x.grad.abs().sum((0, 1)))}) == \
        ((2, 2), (1, 1))
    a = convcalc.analyze(["pixelshuffle:2"], (1, 4, 6, 6))
    assert region_at(a, (5, 2)).region == ((2, 2), (1, 1))
    assert tuple(a.layers[-1].receptive_field.size) == (1, 1)
    a = convcalc.analyze(["pixelunshuffle:2"], (1, 1, 6, 6))
    assert region_at(a, (1, 2)).region == ((2, 3), (4, 5))
    assert tuple(a.layers[-1].receptive_field.size) == (2, 2)
