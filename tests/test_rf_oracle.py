"""``region_at`` against PyTorch autograd: the exactness proof of ``rf --at``.

For each of at least 500 random stacks (deterministic seeds) mixing convs
(random kernel, stride, dilation, integer / asymmetric ``b:a`` / ``same`` /
``same_lower`` / ``valid`` / ``full`` padding), average pools (ceil mode,
count_include_pad), transposed convs and nearest / nearest-exact upsampling,
on 1-D and 2-D inputs, this module builds the same stack in PyTorch itself
(float64, every weight in [0.5, 1.5], no bias; padding pairs computed here
from the SPEC/REFERENCE formulas and applied with ``F.pad`` before a
padding-0 conv), picks 1-3 output positions and backpropagates
``y[0, :, *pos].sum()``.  With positive weights no gradient cancels, so the
input positions with a nonzero gradient are exactly the positions the output
depends on; their bounding box is the true region.

The checks:

* convcalc's shapes equal torch's at every layer, and convcalc accepts every
  stack torch accepts;
* ``region_at(...).region`` equals the autograd bounding box (``None`` when
  no input position reaches the output) -- the exactness claim;
* the region equals what propagating a *bounding box* back one layer at a
  time gives, each step measured by autograd through that one layer alone
  (this pins every layer's tap arithmetic exactly, independently of the
  whole-stack claim);
* the region always contains the autograd box (never misses a dependency);
* the clipped region lies inside the unclipped one;
* for stacks of integer-stride convs and pools only, the unclipped region of
  u is [u·S − P, u·S − P + r − 1] from the last row's receptive field.

The cases are computed once (module cache) and shared by the tests.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, Optional, Tuple

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import convcalc  # noqa: E402
from convcalc.analysis import region_at  # noqa: E402

N_STACKS = 500          # checked (non-skipped) stacks required
MAX_ATTEMPTS = 4000     # seeds tried at most
MAX_ELEMENTS = 60_000   # skip stacks whose activations grow larger than this

Box = Optional[Tuple[Tuple[int, int], ...]]


# ---------------------------------------------------------------------------
# random stacks: one dict per layer, rendered both as a token and as torch ops
# ---------------------------------------------------------------------------

def _dims_text(vals) -> str:
    return str(vals[0]) if len(set(vals)) == 1 else "x".join(map(str, vals))


def _pad_text(p) -> str:
    if isinstance(p, str):
        return p
    parts = [str(b) if b == a else f"{b}:{a}" for b, a in p]
    return parts[0] if len(set(parts)) == 1 else "x".join(parts)


def _per_dim(rng: random.Random, n: int, pick) -> tuple:
    """One value for every dim, or (sometimes, in 2-D) one per dim."""
    if n > 1 and rng.random() < 0.3:
        return tuple(pick() for _ in range(n))
    return (pick(),) * n


def gen_layer(rng: random.Random, n: int) -> dict:
    kind = rng.choices(["conv", "dconv", "avgpool", "tconv", "up"], [30, 15, 20, 20, 15])[0]
    if kind in ("conv", "dconv"):
        k = _per_dim(rng, n, lambda: rng.randint(1, 5))
        s = _per_dim(rng, n, lambda: rng.randint(1, 3))
        if kind == "dconv":
            d = _per_dim(rng, n, lambda: rng.randint(2, 3))
        else:
            d = _per_dim(rng, n, lambda: rng.choice([1, 1, 1, 2, 3]))
        style = rng.choice(["int", "int", "pair", "pair", "same", "same_lower", "valid", "full"])
        if style == "int":
            p = tuple((v, v) for v in _per_dim(rng, n, lambda: rng.randint(0, 3)))
        elif style == "pair":
            p = tuple(_per_dim(rng, n, lambda: (rng.randint(0, 3), rng.randint(0, 3))))
        else:
            p = style
        return dict(kind="conv", out=rng.randint(1, 3), k=k, s=s, d=d, p=p)
    if kind == "avgpool":
        k = _per_dim(rng, n, lambda: rng.randint(1, 4))
        s = _per_dim(rng, n, lambda: rng.randint(1, 3))
        p = tuple(rng.randint(0, kk // 2) for kk in k) if rng.random() < 0.7 else (0,) * n
        return dict(kind="avgpool", k=k, s=s, p=p, ceil=rng.random() < 0.4,
                    cip=rng.random() < 0.5)
    if kind == "tconv":
        k = _per_dim(rng, n, lambda: rng.randint(1, 5))
        s = _per_dim(rng, n, lambda: rng.randint(1, 3))
        d = _per_dim(rng, n, lambda: rng.choice([1, 1, 2, 3]))
        p = tuple(rng.randint(0, dd * (kk - 1) + 1) for kk, dd in zip(k, d))
        op = tuple(rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d))
        return dict(kind="tconv", out=rng.randint(1, 3), k=k, s=s, d=d, p=p, op=op)
    mode = rng.choice(["nearest", "nearest", "nearest-exact"])
    how = rng.choices(["2", "3", "size", "1.5"], [35, 20, 35, 10])[0]
    if how == "size":
        return dict(kind="up", mode=mode, size=_per_dim(rng, n, lambda: rng.randint(1, 30)))
    return dict(kind="up", mode=mode, scale=how)


def token(L: dict) -> str:
    kind = L["kind"]
    if kind == "conv":
        return (f"conv:{L['out']},k={_dims_text(L['k'])},s={_dims_text(L['s'])},"
                f"p={_pad_text(L['p'])},d={_dims_text(L['d'])}")
    if kind == "avgpool":
        t = f"avgpool:{_dims_text(L['k'])},s={_dims_text(L['s'])},p={_dims_text(L['p'])}"
        if L["ceil"]:
            t += ",ceil"
        if not L["cip"]:
            t += ",count_include_pad=false"
        return t
    if kind == "tconv":
        return (f"tconv:{L['out']},k={_dims_text(L['k'])},s={_dims_text(L['s'])},"
                f"p={_dims_text(L['p'])},op={_dims_text(L['op'])},d={_dims_text(L['d'])}")
    head = f"up:{L['scale']}" if "scale" in L else f"up:size={_dims_text(L['size'])}"
    return head if L["mode"] == "nearest" else f"{head},mode={L['mode']}"


def gen_stack(seed: int):
    rng = random.Random(seed)
    n = rng.choice([1, 2])
    shape = (1, rng.randint(1, 3)) + tuple(rng.randint(4, 24) for _ in range(n))
    layers = [gen_layer(rng, n) for _ in range(rng.randint(1, 5))]
    positions_rng = random.Random(seed * 7919 + 1)
    return shape, layers, positions_rng


# ---------------------------------------------------------------------------
# the same stack in torch, built from the formulas (not from convcalc)
# ---------------------------------------------------------------------------

def conv_pairs(p, sizes, k, s, d) -> List[Tuple[int, int]]:
    """(before, after) per dim: SPEC §3 / REFERENCE 'Output sizes'."""
    if not isinstance(p, str):
        return list(p)
    out = []
    for i, kk, ss, dd in zip(sizes, k, s, d):
        span = dd * (kk - 1)
        if p == "valid":
            out.append((0, 0))
        elif p == "full":
            out.append((span, span))
        else:  # TF SAME: o = ⌈i/s⌉, total = max((o−1)·s + d·(k−1) + 1 − i, 0)
            o = -(-i // ss)
            total = max((o - 1) * ss + span + 1 - i, 0)
            before = total // 2 if p == "same" else total - total // 2
            out.append((before, total - before))
    return out


def _fpad(pairs) -> list:
    flat = []
    for b, a in reversed(pairs):  # F.pad: last dim first
        flat += [b, a]
    return flat


def make_op(L: dict, x_shape, gen: torch.Generator):
    """A function x -> y for this layer at this input shape (weights drawn now)."""
    n = len(x_shape) - 2
    C, sizes = x_shape[1], x_shape[2:]
    kind = L["kind"]
    if kind == "conv":
        pairs = conv_pairs(L["p"], sizes, L["k"], L["s"], L["d"])
        w = torch.rand((L["out"], C) + tuple(L["k"]), generator=gen, dtype=torch.float64) + 0.5
        conv = (F.conv1d, F.conv2d)[n - 1]
        return lambda x: conv(F.pad(x, _fpad(pairs)), w, None, L["s"], 0, L["d"], 1)
    if kind == "avgpool":
        pool = (F.avg_pool1d, F.avg_pool2d)[n - 1]
        return lambda x: pool(x, L["k"], L["s"], L["p"], L["ceil"], L["cip"])
    if kind == "tconv":
        w = torch.rand((C, L["out"]) + tuple(L["k"]), generator=gen, dtype=torch.float64) + 0.5
        tconv = (F.conv_transpose1d, F.conv_transpose2d)[n - 1]
        return lambda x: tconv(x, w, None, L["s"], L["p"], L["op"], 1, L["d"])
    if "scale" in L:
        scale = float(L["scale"]) if "." in L["scale"] else int(L["scale"])
        up = torch.nn.Upsample(scale_factor=scale, mode=L["mode"])
    else:
        up = torch.nn.Upsample(size=tuple(L["size"]), mode=L["mode"])
    return up


def nonzero_box(grad) -> Box:
    """Bounding box of grad != 0 over the spatial dims (batch and channels folded)."""
    mask = grad.abs().sum(dim=(0, 1)) > 0
    if not bool(mask.any()):
        return None
    box = []
    for dim in range(mask.dim()):
        other = tuple(j for j in range(mask.dim()) if j != dim)
        idx = torch.nonzero(mask.any(dim=other) if other else mask).flatten()
        box.append((int(idx.min()), int(idx.max())))
    return tuple(box)


def backprop_box(op, x_in, box) -> Box:
    """Input box of the outputs in ``box`` (all channels) through ``op`` alone."""
    x = x_in.detach().clone().requires_grad_(True)
    y = op(x)
    sl = (0, slice(None)) + tuple(slice(a, b + 1) for a, b in box)
    y[sl].sum().backward()
    return nonzero_box(x.grad)


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------

@dataclass
class Case:
    seed: int
    shape: tuple
    tokens: List[str]
    integer_only: bool
    positions: List[tuple] = field(default_factory=list)
    autograd: List[Box] = field(default_factory=list)      # whole-stack truth
    region: List[Box] = field(default_factory=list)        # convcalc, clipped
    unclipped: List[Box] = field(default_factory=list)     # convcalc, unclipped
    formula: List[Box] = field(default_factory=list)       # [u·S − P, u·S − P + r − 1]
    single: List[tuple] = field(default_factory=list)      # (token, in shape, pos, ours, torch)
    shape_mismatch: Optional[str] = None

    def label(self) -> str:
        return f"seed {self.seed}: -i {'x'.join(map(str, self.shape))} " + " ".join(self.tokens)


@lru_cache(maxsize=1)
def collect():
    """Run seeds until N_STACKS stacks are checked; returns (cases, skips)."""
    torch.set_grad_enabled(True)
    cases: List[Case] = []
    skips = {"torch rejects": 0, "empty output": 0, "too large": 0}
    rejected_by_convcalc: List[str] = []
    for seed in range(MAX_ATTEMPTS):
        if len(cases) >= N_STACKS:
            break
        shape, layers, prng = gen_stack(seed)
        tokens = [token(L) for L in layers]
        gen = torch.Generator().manual_seed(seed)
        # forward in torch, keeping every layer's input and op
        x = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
        ops, inputs, skip = [], [], None
        try:
            h = x
            for L in layers:
                op = make_op(L, tuple(h.shape), gen)
                inputs.append(h)
                h = op(h)
                ops.append(op)
                if h.numel() == 0:
                    skip = "empty output"
                    break
                if h.numel() > MAX_ELEMENTS:
                    skip = "too large"
                    break
        except (RuntimeError, ValueError):
            skip = "torch rejects"
        if skip:
            skips[skip] += 1
            continue
        shapes = [tuple(t.shape) for t in inputs[1:]] + [tuple(h.shape)]
        try:
            a = convcalc.analyze(tokens, shape)
        except convcalc.ConvcalcError as e:
            rejected_by_convcalc.append(f"seed {seed}: -i {'x'.join(map(str, shape))} "
                                        f"{' '.join(tokens)}: {e}")
            continue
        case = Case(seed, shape, tokens,
                    integer_only=all(L["kind"] in ("conv", "avgpool") for L in layers))
        ours = [tuple(r.output_shape) for r in a.layers]
        if ours != shapes:
            case.shape_mismatch = f"convcalc {ours} vs torch {shapes}"
            cases.append(case)
            continue
        # every layer alone, at its real input shape, near both borders and inside
        for tok, op, inp in zip(tokens, ops, inputs):
            in_shape = tuple(inp.shape)
            one = convcalc.analyze([tok], in_shape)
            sizes = one.output_shape[2:]
            picks = [sorted({u for u in (0, 1, n - 2, n - 1, prng.randrange(n), prng.randrange(n))
                             if 0 <= u < n}) for n in sizes]
            if len(sizes) == 1:
                points = [(u,) for u in picks[0]]
            else:
                points = [(prng.choice(picks[0]), prng.choice(picks[1])) for _ in range(5)]
            for pos in points:
                ours = region_at(one, pos).region
                theirs = backprop_box(op, inp, tuple((u, u) for u in pos))
                case.single.append((tok, in_shape, pos, ours, theirs))
        out_sizes = shapes[-1][2:]
        for _ in range(prng.randint(1, 3)):
            pos = tuple(prng.randrange(n) for n in out_sizes)
            xg = x.detach().clone().requires_grad_(True)
            hh = xg
            for op in ops:
                hh = op(hh)
            hh[(0, slice(None)) + pos].sum().backward()
            truth = nonzero_box(xg.grad)
            reg = region_at(a, pos)
            case.positions.append(pos)
            case.autograd.append(truth)
            case.region.append(reg.region)
            case.unclipped.append(reg.unclipped)
            if case.integer_only:
                S, P, r = closed_form(layers, [tuple(t.shape) for t in inputs])
                case.formula.append(tuple(
                    (u * s - p, u * s - p + rr - 1) for u, s, p, rr in zip(pos, S, P, r)))
        cases.append(case)
    return cases, skips, rejected_by_convcalc


def closed_form(layers, in_shapes):
    """(S, P, r) per dim by the recursions of REFERENCE (Araujo et al.), from the
    layer dicts and the padding the formulas apply -- not from convcalc:
    r += d·(k−1)·S, P += pb·S, S *= s."""
    n = len(in_shapes[0]) - 2
    S, P, r = [1] * n, [0] * n, [1] * n
    for L, shape in zip(layers, in_shapes):
        if L["kind"] == "conv":
            pairs = conv_pairs(L["p"], shape[2:], L["k"], L["s"], L["d"])
            k, s, d, pb = L["k"], L["s"], L["d"], [b for b, _ in pairs]
        else:  # avgpool: symmetric padding, no dilation
            k, s, d, pb = L["k"], L["s"], (1,) * n, L["p"]
        for j in range(n):
            r[j] += d[j] * (k[j] - 1) * S[j]
            P[j] += pb[j] * S[j]
            S[j] *= s[j]
    return S, P, r


def _fmt(case: Case, i: int, *pairs) -> str:
    extra = ", ".join(f"{name} {val}" for name, val in pairs)
    return f"{case.label()}  --at {','.join(map(str, case.positions[i]))}: {extra}"


def _fail_if(bad: List[str], what: str) -> None:
    # pytest.fail, not `assert not bad`: the assertion rewriter's rendering of
    # a long list of long strings costs tens of seconds
    if bad:
        pytest.fail(f"{len(bad)} {what}:\n  " + "\n  ".join(bad[:15]), pytrace=False)


def _inside(inner: Box, outer: Box) -> bool:
    return outer is not None and all(lo <= a and b <= hi
                                     for (lo, hi), (a, b) in zip(outer, inner))


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------

def test_enough_stacks_checked_and_shapes_agree():
    cases, skips, rejected = collect()
    kinds = {t.split(":")[0] for c in cases for t in c.tokens}
    assert len(cases) >= N_STACKS, f"only {len(cases)} stacks checked (skipped: {skips})"
    assert kinds == {"conv", "avgpool", "tconv", "up"}
    assert sum(len(c.shape) == 3 for c in cases) >= 100
    assert sum(len(c.shape) == 4 for c in cases) >= 100
    assert sum(len(c.positions) for c in cases) >= N_STACKS
    _fail_if(rejected, "stacks torch accepts but convcalc rejects")
    _fail_if([f"{c.label()}: {c.shape_mismatch}" for c in cases if c.shape_mismatch],
             "shape disagreements")


def test_single_layer_regions_exact():
    """Every layer alone: region_at of one output position (borders included)
    equals autograd's box through that layer."""
    cases, _, _ = collect()
    checks = [t for c in cases for t in c.single]
    assert len(checks) >= 4 * N_STACKS
    _fail_if([f"-i {'x'.join(map(str, shape))} {tok}  --at {','.join(map(str, pos))}: "
              f"convcalc {ours}, autograd {theirs}"
              for tok, shape, pos, ours, theirs in checks if ours != theirs],
             "single-layer disagreements")


def test_region_equals_autograd_box():
    """The exactness claim of `rf --at`: region == bounding box of the true
    dependency set (None when the position depends on no input position)."""
    cases, _, _ = collect()
    _fail_if([_fmt(c, i, ("convcalc", c.region[i]), ("autograd", c.autograd[i]))
              for c in cases for i in range(len(c.positions)) if c.region[i] != c.autograd[i]],
             "disagreements with autograd")


def test_region_contains_every_dependency():
    """Whatever the definition of the box, it must never miss a dependency."""
    cases, _, _ = collect()
    _fail_if([_fmt(c, i, ("convcalc", reg), ("autograd", truth))
              for c in cases for i, (reg, truth) in enumerate(zip(c.region, c.autograd))
              if truth is not None and not _inside(truth, reg)],
             "regions that miss input positions the output depends on")


def _autograd_1d(layers, n, pos):
    """Box of the inputs of a 1-D stack of (conv|tconv, kwargs) that output pos reads."""
    x = torch.rand(1, 1, n, dtype=torch.float64, requires_grad=True)
    h = x
    for fn, kw in layers:
        h = fn(h, torch.ones(1, 1, kw.pop("k"), dtype=torch.float64), **kw)
    h[0, :, pos].sum().backward()
    return nonzero_box(x.grad)


def test_minimal_early_stop_case():
    # conv:1,k=3,d=2,p=2 on 3 positions: output o reads o−2, o, o+2, so o=1
    # reads only input 1 and o=2 reads inputs 0 and 2.  conv:1,k=2 output 1
    # reads layer-1 outputs 1 and 2: inputs 0..2.  (A search that stopped
    # after o=1 for the left end said (1, 2).)
    tokens, shape = ["conv:1,k=3,d=2,p=2", "conv:1,k=2"], (1, 1, 3)
    truth = _autograd_1d([(F.conv1d, dict(k=3, dilation=2, padding=2)), (F.conv1d, dict(k=2))],
                         3, 1)
    assert truth == ((0, 2),)
    assert region_at(convcalc.analyze(tokens, shape), (1,)).region == truth


def test_minimal_hole_case():
    # conv:1,k=2,p=2 on 2 positions: output o reads inputs o−2, o−1, so o=0
    # and o=4 read only padding, o=1 reads 0, o=2 reads 0..1, o=3 reads 1.
    # conv:1,k=2,d=3 output 0 reads layer-1 outputs 0 and 3 (not 1, 2): it
    # depends on input 1 alone (a box [0, 3] carried back gave (0, 1)).
    # With d=4 output 0 reads layer-1 outputs 0 and 4: no input at all.
    shape = (1, 1, 2)
    for d, truth in ((3, ((1, 1),)), (4, None)):
        got = _autograd_1d([(F.conv1d, dict(k=2, padding=2)), (F.conv1d, dict(k=2, dilation=d))],
                           2, 0)
        assert got == truth
    for d, truth in ((3, ((1, 1),)), (4, None)):
        a = convcalc.analyze(["conv:1,k=2,p=2", f"conv:1,k=2,d={d}"], shape)
        assert region_at(a, (0,)).region == truth, f"d={d}"


def test_clipped_region_inside_unclipped():
    cases, _, _ = collect()
    _fail_if([_fmt(c, i, ("region", reg), ("unclipped", unc))
              for c in cases for i, (reg, unc) in enumerate(zip(c.region, c.unclipped))
              if reg is not None and not _inside(reg, unc)],
             "clipped regions outside the unclipped ones")


def test_integer_stride_unclipped_is_the_closed_form():
    cases, _, _ = collect()
    checked = [c for c in cases if c.integer_only and c.positions]
    assert len(checked) >= 50, f"only {len(checked)} integer-stride stacks"
    _fail_if([_fmt(c, i, ("unclipped", c.unclipped[i]), ("u·S − P + [0, r−1]", c.formula[i]))
              for c in checked for i in range(len(c.positions))
              if c.unclipped[i] != c.formula[i]],
             "unclipped regions off the closed form")
