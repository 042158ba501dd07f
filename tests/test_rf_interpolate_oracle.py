"""rf --at through every interpolating mode, with and without align_corners,
against PyTorch autograd (issue 13 item 16: the index map of align_corners,
(in−1)/(out−1), was checked by one non-torch test only)."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

import convcalc  # noqa: E402
from convcalc.analysis import region_at  # noqa: E402

MODES = [("linear", 1), ("bilinear", 2), ("bicubic", 2), ("trilinear", 3)]


def _box(x, y, pos):
    x.grad = None
    y[(0, slice(None), *pos)].sum().backward(retain_graph=True)
    g = x.grad[0].abs().sum(0)
    nz = g.nonzero()
    if not len(nz):
        return None
    return tuple((int(nz[:, d].min()), int(nz[:, d].max())) for d in range(g.dim()))


def cases():
    rng = random.Random(5)
    out = []
    for mode, n in MODES:
        for align in (False, True):
            for by_scale in (False, True):
                for _ in range(4):
                    size = [rng.randint(3, 9 if n < 3 else 5) for _ in range(n)]
                    scale = rng.choice([1.5, 2.0, 2.5, 3.0, 0.75])
                    target = [max(1, rng.randint(2, 14 if n < 3 else 7)) for _ in range(n)]
                    out.append((mode, n, align, by_scale, size, scale, target, rng.random()))
    return out


@pytest.mark.parametrize("mode,n,align,by_scale,size,scale,target,seed", cases())
def test_rf_at_through_interpolation_equals_autograd(mode, n, align, by_scale, size, scale,
                                                     target, seed):
    k = 3
    up = (f"up:{scale},mode={mode}" if by_scale else
          f"up:size={'x'.join(map(str, target)) },mode={mode}") + (",align_corners" if align
                                                                    else "")
    tokens = ["conv:2,k=3,p=1", up, "conv:2,k=2"]
    shape = (1, 1, *size)
    try:
        a = convcalc.analyze(tokens, shape)
    except convcalc.ConvcalcError:
        pytest.skip("a size the stack cannot take")
    torch.manual_seed(int(seed * 1e6))
    conv = getattr(torch.nn, f"Conv{n}d")
    c1, c2 = conv(1, 2, k, padding=1).double(), conv(2, 2, 2).double()
    kw = dict(scale_factor=scale) if by_scale else dict(size=tuple(target))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    y = c2(torch.nn.functional.interpolate(c1(x), mode=mode, align_corners=align, **kw))
    assert tuple(y.shape) == a.output_shape
    rng = random.Random(seed)
    positions = {tuple(0 for _ in range(n)), tuple(s - 1 for s in y.shape[2:])} | {
        tuple(rng.randrange(s) for s in y.shape[2:]) for _ in range(3)}
    for pos in positions:
        assert region_at(a, pos).region == _box(x, y, pos), (tokens, shape, pos)
