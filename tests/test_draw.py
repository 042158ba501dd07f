"""`convcalc draw` (one layer's conv arithmetic) and `rf --erf --svg` (issue 16 items 2, 3).

Every SVG is rendered by a real renderer (rsvg-convert; skipped where it is
not installed) and parsed as XML.  What a picture highlights is read from
the SVG's geometry -- a highlight rect is matched to the input cell drawn at
the same place -- and compared with what is computed without the drawing
code: `rf --at` through the CLI (its JSON box and its `--show` grid), PyTorch
autograd (all-ones weights: no gradient cancels) or impulses (max pools),
and the seeds' worked examples by hand.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from convcalc.cli import cli
from convcalc.errors import ConvcalcError

NS = "{http://www.w3.org/2000/svg}"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def rendered(path) -> bytes:
    """The SVG at ``path`` rendered to PNG by rsvg-convert (the test skips without it)."""
    exe = shutil.which("rsvg-convert")
    if exe is None:
        pytest.skip("rsvg-convert (librsvg2-bin) is not installed")
    png = path.with_suffix(".png")
    done = subprocess.run([exe, str(path), "-o", str(png)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 500
    return data


def classes(el) -> set:
    return set((el.get("class") or "").split())


def parse_cells(text: str, cls="input"):
    """(x, y) of every cell rect of a class -> its element."""
    root = ET.fromstring(text)
    return root, {(float(r.get("x")), float(r.get("y"))): r for r in root.iter(NS + "rect")
                  if cls in classes(r) and "cell" in classes(r)}


def coords(text: str):
    return tuple(int(v) for v in text.split(","))


def svg_frames(text: str):
    """Per frame (its output position): the input cells its highlights cover,
    found by where they are drawn, and the grid cells its kernel taps sit in."""
    root, inputs = parse_cells(text)
    _, every = parse_cells(text, "cell")
    size = float(next(iter(every.values())).get("width"))
    out = {}
    for g in root.iter(NS + "g"):
        if "frame" not in classes(g):
            continue
        reads, taps = set(), set()
        for r in g.iter(NS + "rect"):
            x, y = float(r.get("x")), float(r.get("y"))
            if "read" in classes(r):
                cell = inputs[(x, y)]  # a highlight drawn exactly on an input cell
                assert r.get("data-cell") == cell.get("data-cell")
                reads.add(coords(cell.get("data-cell")))
            elif "tap" in classes(r):  # an inset square: the cell it lies in
                home = [c for (cx, cy), c in every.items()
                        if cx <= x < cx + size and cy <= y < cy + size]
                assert len(home) == 1
                taps.add(coords(home[0].get("data-grid")))
        out[coords(g.get("data-at"))] = (reads, taps, g)
    return root, out


# ---------------------------------------------------------------------------
# independent oracles: rf --at through the CLI, PyTorch
# ---------------------------------------------------------------------------

def rf_sets(token, shape, at):
    """rf --at's exact set for one layer, from its --show grid, and its JSON box."""
    spec = "x".join(map(str, shape))
    pos = ",".join(map(str, at))
    r = run("rf", "-i", spec, token, "--at", pos, "--format", "json")
    assert r.exit_code == 0, r.output
    box = json.loads(r.stdout)["region"]
    r = run("rf", "-i", spec, token, "--at", pos, "--show")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    n = len(shape) - 2
    where = next(i for i, line in enumerate(lines) if line.startswith(("y from", "x from")))
    nums = [int(v) for v in lines[where].split("(")[0].replace(",", " ").split()
            if v.lstrip("-").isdigit()]
    if n == 1:
        (x0, _), rows = nums, [lines[where - 1]]
        cells = {(x0 + c,) for c, ch in enumerate(rows[0]) if ch == "█"}
    else:
        y0, y1, x0, _ = nums
        rows = lines[where - (y1 - y0 + 1):where]
        cells = {(y0 + r_, x0 + c) for r_, row in enumerate(rows) for c, ch in enumerate(row)
                 if ch == "█"}
    return cells, box


def same_padding(i, k, s, d, lower=False):
    total = max((-(-i // s) - 1) * s + d * (k - 1) + 1 - i, 0)
    before = total // 2 if not lower else total - total // 2
    return before, total - before


def torch_op(case):
    """The case's layer in PyTorch with all-ones weights (run in float64)."""
    import torch
    F = torch.nn.functional
    n, kind, a = case["n"], case["kind"], case
    if kind == "conv":
        pairs = a["pairs"]
        flat = [v for pr in reversed(pairs) for v in pr]
        w = torch.ones((1, 1, *a["k"]), dtype=torch.float64)
        conv = getattr(F, f"conv{n}d")
        mode = {"zeros": "constant"}.get(a["pm"], a["pm"])
        return lambda x: conv(F.pad(x, flat, mode=mode), w, stride=a["s"], dilation=a["d"])
    if kind == "tconv":
        w = torch.ones((1, 1, *a["k"]), dtype=torch.float64)
        tconv = getattr(F, f"conv_transpose{n}d")
        return lambda x: tconv(x, w, stride=a["s"], padding=a["p"], output_padding=a["op"],
                               dilation=a["d"])
    if kind == "maxpool":
        pool = getattr(F, f"max_pool{n}d")
        return lambda x: pool(x, a["k"], a["s"], a["p"], a["d"], ceil_mode=a["ceil"])
    if kind == "avgpool":
        pool = getattr(F, f"avg_pool{n}d")
        return lambda x: pool(x, a["k"], a["s"], a["p"], ceil_mode=a["ceil"],
                              count_include_pad=a["cip"])
    kw = dict(size=a["size"]) if a["size"] else dict(scale_factor=a["scale"])
    if a["mode"] in ("linear", "bilinear", "bicubic"):
        kw["align_corners"] = a["align"]
    return lambda x: F.interpolate(x, mode=a["mode"], **kw)


def torch_dependencies(case, shape):
    """Per output position, {input position: gradient} with all-ones weights;
    a max pool by impulses (its gradient reaches only the argmax)."""
    import torch
    fn = torch_op(case)
    spatial = shape[2:]
    cells = list(__import__("itertools").product(*(range(v) for v in spatial)))
    # float64: float32's bilinear kernel computes its source index with a fused
    # multiply-add on some CPUs, giving a tap of weight 1.5e-8 where the exact
    # arithmetic (and float64) gives 0
    dtype = torch.float64
    if case["kind"] == "maxpool":
        x = torch.zeros((len(cells), 1, *spatial), dtype=dtype)
        for b, c in enumerate(cells):
            x[(b, 0, *c)] = 1
        y = fn(x)
        out = {}
        for o in __import__("itertools").product(*(range(v) for v in y.shape[2:])):
            out[o] = {c: None for b, c in enumerate(cells) if y[(b, 0, *o)] == 1}
        return out, (1, 1, *y.shape[2:])
    x = torch.ones((1, 1, *spatial), dtype=dtype)
    y = fn(x)
    jac = torch.autograd.functional.jacobian(lambda t: fn(t)[0, 0], x)
    out = {}
    for o in __import__("itertools").product(*(range(v) for v in y.shape[2:])):
        g = jac[o][0, 0]
        out[o] = {tuple(int(v) for v in c): float(g[tuple(c)]) for c in g.nonzero().tolist()}
    return out, tuple(y.shape)


# ---------------------------------------------------------------------------
# random configurations: every kind, padding mode, stride, dilation, ceil, mode
# ---------------------------------------------------------------------------

def dims(vals):
    return "x".join(map(str, vals))


def random_case(rng: random.Random, kind: str, n: int):
    size = [rng.randint(3, 8) for _ in range(n)]
    if kind == "conv":
        k = [rng.randint(1, 4) for _ in range(n)]
        s = [rng.randint(1, 3) for _ in range(n)]
        d = [rng.randint(1, 3) for _ in range(n)]
        pm = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
        style = rng.choice(["int", "pairs", "same", "same_lower", "valid", "full"])
        if style == "int":
            p = [rng.randint(0, 2) for _ in range(n)]
            pairs, ptext = [(v, v) for v in p], dims(p)
        elif style == "pairs":
            pairs = [(rng.randint(0, 2), rng.randint(0, 2)) for _ in range(n)]
            ptext = dims(f"{b}:{a_}" for b, a_ in pairs)
        elif style == "valid":
            pairs, ptext = [(0, 0)] * n, "valid"
        elif style == "full":
            pairs, ptext = [(dd * (kk - 1),) * 2 for kk, dd in zip(k, d)], "full"
        else:
            pairs = [same_padding(i, kk, ss, dd, style == "same_lower")
                     for i, kk, ss, dd in zip(size, k, s, d)]
            ptext = style
        if pm != "zeros" and any(max(pr) >= i for pr, i in zip(pairs, size)):
            pm = "replicate"  # reflect and circular need padding below the size
        token = f"conv:1,k={dims(k)},s={dims(s)},d={dims(d)},p={ptext},pm={pm}"
        return token, size, dict(kind=kind, n=n, k=k, s=s, d=d, pairs=pairs, pm=pm)
    if kind == "tconv":
        k = [rng.randint(1, 4) for _ in range(n)]
        s = [rng.randint(1, 3) for _ in range(n)]
        d = [rng.randint(1, 2) for _ in range(n)]
        p = [rng.randint(0, 2) for _ in range(n)]
        op = [rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d)]
        token = f"tconv:1,k={dims(k)},s={dims(s)},d={dims(d)},p={dims(p)},op={dims(op)}"
        return token, size, dict(kind=kind, n=n, k=k, s=s, d=d, p=p, op=op)
    if kind in ("maxpool", "avgpool"):
        k = [rng.randint(1, 4) for _ in range(n)]
        s = [rng.randint(1, 3) for _ in range(n)]
        p = [rng.randint(0, kk // 2) for kk in k]
        ceil = rng.random() < 0.6
        case = dict(kind=kind, n=n, k=k, s=s, p=p, ceil=ceil)
        token = f"{kind}:{dims(k)},s={dims(s)},p={dims(p)}" + (",ceil" if ceil else "")
        if kind == "maxpool":
            case["d"] = [rng.randint(1, 2) for _ in range(n)]
            token += f",d={dims(case['d'])}"
        else:
            case["cip"] = rng.random() < 0.5
            token += f",count_include_pad={'true' if case['cip'] else 'false'}"
        return token, size, case
    raise ValueError(kind)


def up_case(rng: random.Random, n: int, mode: str, align: bool, by_scale: bool):
    size = [rng.randint(3, 8) for _ in range(n)]
    if by_scale:
        scale, target = rng.choice([0.5, 0.75, 1.5, 2.0, 2.5, 3.0]), None
        head = f"up:{scale}"
    else:
        scale, target = None, [rng.randint(2, 12) for _ in range(n)]
        head = f"up:size={dims(target)}"
    token = f"{head},mode={mode}" + (",align_corners" if align else "")
    return token, size, dict(kind="up", n=n, mode=mode, align=align, scale=scale, size=target)


def conv_case(token, shape, k, s, d, pairs, pm="zeros"):
    return pytest.param(token, shape, dict(kind="conv", n=len(shape) - 2, k=k, s=s, d=d,
                                           pairs=pairs, pm=pm), id=f"{token}@{dims(shape)}")


# asymmetric padding, TF same at stride 2, padding copies, taps that meet one cell twice
FIXED = [
    conv_case("conv:1,k=3,s=2,p=0:2x1:0", (1, 1, 7, 6), [3, 3], [2, 2], [1, 1],
              [(0, 2), (1, 0)]),
    conv_case("conv:1,k=2x3,s=2,d=2x1,p=same", (1, 1, 8, 7), [2, 3], [2, 2], [2, 1],
              [same_padding(8, 2, 2, 2), same_padding(7, 3, 2, 1)]),
    conv_case("conv:1,k=3,p=2:1,pm=reflect", (1, 1, 6), [3], [1], [1], [(2, 1)], "reflect"),
    conv_case("conv:1,k=4,d=2,p=3,pm=circular", (1, 1, 4), [4], [1], [2], [(3, 3)], "circular"),
    conv_case("conv:1,k=3x2,p=1:2x0:1,pm=replicate", (1, 1, 4, 5), [3, 2], [1, 1], [1, 1],
              [(1, 2), (0, 1)], "replicate"),
]


def cases(count_per_kind=5):
    from convcalc.arithmetic import picture
    rng = random.Random(16)
    out = list(FIXED)

    def add(token, size, case):
        shape = (1, 1, *size)
        try:
            picture(token, shape)
        except ConvcalcError:
            return False  # a configuration this input cannot take
        out.append(pytest.param(token, shape, case, id=f"{token}@{dims(shape)}"))
        return True
    for kind in ("conv", "tconv", "maxpool", "avgpool"):
        for n in (1, 2):
            made = 0
            while made < count_per_kind:
                made += add(*random_case(rng, kind, n))
    for n, modes in ((1, ("nearest", "nearest-exact", "area", "linear")),
                     (2, ("nearest", "nearest-exact", "area", "bilinear", "bicubic"))):
        for mode in modes:
            for align in (False, True) if mode in ("linear", "bilinear", "bicubic") else (False,):
                for by_scale in (True, False):
                    while not add(*up_case(rng, n, mode, align, by_scale)):
                        pass
    return out


CASES = cases()


def draw_json(token, shape, *extra):
    r = run("draw", token, "-i", dims(shape), "--format", "json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize("token,shape,case", CASES)
def test_drawn_reads_equal_rf_at(token, shape, case, tmp_path):
    """The SVG renders, and for every output position the cells it highlights
    are rf --at's exact set (its --show grid) inside rf --at's JSON box."""
    out = tmp_path / "layer.svg"
    r = run("draw", token, "-i", dims(shape), "--svg", str(out))
    assert r.exit_code == 0, r.output
    rendered(out)
    text = out.read_text()
    _, frames = svg_frames(text)
    doc = draw_json(token, shape)
    assert len(frames) == doc["positions"] == math.prod(doc["output_shape"][2:])
    rng = random.Random(token)
    positions = sorted(frames)
    picked = {positions[0], positions[-1], *rng.sample(positions, min(4, len(positions)))}
    for at in picked:
        reads, _, _ = frames[at]
        cells, box = rf_sets(token, shape, at)
        assert reads == cells, (token, at)
        if reads:
            assert box == [[min(c[d] for c in reads), max(c[d] for c in reads)]
                           for d in range(len(at))]
        else:
            assert box is None
    for f in doc["frames"]:  # the JSON holds what the SVG draws
        assert {tuple(c) for c in f["reads"]} == frames[tuple(f["at"])][0]


@pytest.mark.parametrize("token,shape,case", CASES)
def test_drawn_reads_and_weights_equal_torch(token, shape, case):
    """The input cells read by every output position are those with a nonzero
    gradient (all-ones weights), and the weights drawn are the gradient's
    values: tap counts for convs, 1/divisor for average pools, the
    interpolation weights of each upsample mode."""
    pytest.importorskip("torch")
    deps, out_shape = torch_dependencies(case, shape)
    doc = draw_json(token, shape)
    assert tuple(doc["output_shape"]) == out_shape
    assert len(doc["frames"]) == len(deps)
    for f in doc["frames"]:
        want = deps[tuple(f["at"])]
        got = dict(zip((tuple(c) for c in f["reads"]), f["weights"]))
        assert set(got) == set(want), (token, f["at"])
        if case["kind"] == "maxpool":
            assert all(v is None for v in got.values())
            continue
        for c, w in want.items():
            assert got[c] == pytest.approx(w, rel=1e-5, abs=1e-6), (token, f["at"], c)


# ---------------------------------------------------------------------------
# the seeds' worked examples, by hand
# ---------------------------------------------------------------------------

def grid_columns(root, row_cells):
    """The drawn cells of one grid row, left to right: (type, data-cell)."""
    return [(next(c for c in ("input", "pad", "zero", "outside") if c in classes(r)),
             r.get("data-cell")) for r in sorted(row_cells, key=lambda r: float(r.get("x")))]


def drawn(tmp_path, token, shape):
    """The SVG of a draw, rendered, parsed: (root, frames, grid cell rects)."""
    out = tmp_path / "layer.svg"
    r = run("draw", token, "-i", shape, "--svg", str(out))
    assert r.exit_code == 0, r.output
    rendered(out)
    root, frames = svg_frames(out.read_text())
    return root, frames, [r_ for r_ in root.iter(NS + "rect") if "cell" in classes(r_)]


def test_tconv_drawn_as_zeros_inserted_and_implicit_padding(tmp_path):
    # s=2: one zero between inputs; k−1−p = 1 before; k−1−p+op = 2 after: 3 → 1+3+2+2 = 8
    root, frames, cells = drawn(tmp_path, "tconv:1,k=3,s=2,p=1,op=1", "1x1x3x3")
    ys = sorted({float(c.get("y")) for c in cells})
    assert len(ys) == 8 and len({float(c.get("x")) for c in cells}) == 8
    rows = [grid_columns(root, [c for c in cells if float(c.get("y")) == y]) for y in ys]
    P, Z = ("pad", None), ("zero", None)
    assert rows[1] == [P, ("input", "0,0"), Z, ("input", "0,1"), Z, ("input", "0,2"), P, P]
    assert rows[2] == [P, Z, Z, Z, Z, Z, P, P]
    assert rows[0] == rows[6] == rows[7] == [P] * 8
    assert [rw[1] for rw in rows] == [P, ("input", "0,0"), Z, ("input", "1,0"), Z,
                                      ("input", "2,0"), P, P]
    assert len(frames) == 36  # a 6x6 output
    # output (1, 1): the 3x3 window at grid 1..3 meets inputs 0 and 1 per dim
    reads, taps, _ = frames[(1, 1)]
    assert reads == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert taps == {(y, x) for y in (1, 2, 3) for x in (1, 2, 3)}
    # output (0, 0) sees input (0, 0) alone; (5, 5) the last input through the far padding
    assert frames[(0, 0)][0] == {(0, 0)} and frames[(5, 5)][0] == {(2, 2)}
    assert frames[(5, 5)][1] == {(y, x) for y in (5, 6, 7) for x in (5, 6, 7)}


def test_dilated_same_conv_footprint_has_holes(tmp_path):
    # k=3, d=2: taps every other cell, a 5x5 footprint; p=same pads 2 each side: 7 → 7
    _, frames, cells = drawn(tmp_path, "conv:1,k=3,d=2,p=same", "1x1x7x7")
    assert len(cells) == 11 * 11
    assert sum("input" in classes(c) for c in cells) == 49
    assert len(frames) == 49
    reads, taps, g = frames[(3, 3)]
    assert taps == {(y, x) for y in (3, 5, 7) for x in (3, 5, 7)}  # grid: input 0 is at 2
    assert reads == {(y, x) for y in (1, 3, 5) for x in (1, 3, 5)}
    box = next(r_ for r_ in g.iter(NS + "rect") if "footprint" in classes(r_))
    size = float(cells[0].get("width"))
    assert float(box.get("width")) == float(box.get("height")) == 5 * size
    # the corner output reads the four inputs its taps reach; the rest is padding
    assert frames[(0, 0)][0] == {(0, 0), (0, 2), (2, 0), (2, 2)}


def test_static_first_frame_and_animation(tmp_path):
    out = tmp_path / "a.svg"
    assert run("draw", "conv:1,k=2", "-i", "1x1x3x3", "--svg", str(out)).exit_code == 0
    root = ET.fromstring(out.read_text())
    groups = [g for g in root.iter(NS + "g") if "frame" in classes(g)]
    assert [g.get("visibility") for g in groups] == ["visible", "hidden", "hidden", "hidden"]
    for i, g in enumerate(groups):
        anim = g.find(NS + "animate")
        assert anim.get("repeatCount") == "indefinite" and anim.get("calcMode") == "discrete"
        values, times = anim.get("values").split(";"), anim.get("keyTimes").split(";")
        assert float(times[0]) == 0 and len(values) == len(times)
        shown = [float(t) for v, t in zip(values, times) if v == "visible"]
        assert shown == [i / 4]  # visible from its own quarter of the loop


def test_terminal_frames_and_limits():
    r = run("draw", "conv:1,k=2,d=3", "-i", "1x1x7")
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines()
    at1 = out.index(next(line for line in out if line.startswith("output 1 ")))
    cells = [out[at1 + 1][i:i + 2] for i in range(0, 14, 2)]
    assert [i for i, c in enumerate(cells) if c == "██"] == [1, 4]  # taps 1 and 1+3
    assert sum(line.startswith("output ") for line in out) == 4  # 7 − 3 = 4 positions
    r = run("draw", "conv:1,k=3", "-i", "1x1x12x12")  # 100 positions: 64 by default
    assert sum(line.startswith("output ") for line in r.stdout.splitlines()) == 64
    assert "the first 64 of 100 output positions" in r.stdout
    r = run("draw", "conv:1,k=3", "-i", "1x1x12x12", "--frames", "3", "--ascii")
    assert sum(line.startswith("output ") for line in r.stdout.splitlines()) == 3
    assert r.stdout.isascii() and "##" in r.stdout
    r = run("draw", "up:2,mode=linear", "-i", "1x1x4", "--at", "3")
    assert r.exit_code == 0
    # (3 + ½)/2 − ½ = 1.25: inputs 1 and 2 weigh 0.75 and 0.25
    assert "output 3 reads input x 1, 2 (2 positions), weights x 1 ×0.75, 2 ×0.25" in r.stdout
    doc = draw_json("avgpool:3,s=2,p=1,ceil,count_include_pad=false", (1, 1, 6))
    # windows −1..1, 1..3, 3..5, 5..7: divisors 2, 3, 3, 1 (no padding, ceil's extra window)
    assert [f["weights"] for f in doc["frames"]] == [[1 / 2] * 2, [1 / 3] * 3, [1 / 3] * 3, [1.0]]
    doc = draw_json("avgpool:3,s=2,p=1,ceil", (1, 1, 6))
    # with the padding: 3 each, but the last window 5..7 overhangs the padding (ends at 6): 2
    assert [f["weights"] for f in doc["frames"]] == [[1 / 3] * 2, [1 / 3] * 3, [1 / 3] * 3, [1 / 2]]
    assert [f["reads"] for f in doc["frames"]][-1] == [[5]]
    r = run("draw", "conv:1,k=3", "-i", "1x1x200x200")
    assert r.exit_code == 3 and "at most 80" in r.stderr
    doc = draw_json("conv:1,k=3", (1, 1, 200, 200), "--frames", "5")
    assert doc["positions"] == 198 * 198 and doc["shown"] == 5


def test_csv_rows_are_the_read_sets():
    r = run("draw", "maxpool:2", "-i", "1x1x4x4", "--format", "csv", "--at", "1,0")
    lines = r.stdout.splitlines()
    assert lines[0] == "at_y,at_x,in_y,in_x,weight"
    assert sorted(lines[1:]) == ["1,0,2,0,", "1,0,2,1,", "1,0,3,0,", "1,0,3,1,"]


@pytest.mark.parametrize("args,needle", [
    (["conv:1,k=0", "-i", "1x1x5x5"], "layer 1 (conv:1,k=0): k=0: must be at least 1"),
    (["conv:1,k=3", "relu", "-i", "1x1x5x5"], "draw takes one layer token, got 2"),
    (["conv:1,k=3"], "draw needs -i/--input SHAPE"),
    ([], "draw takes one layer token"),
    (["relu", "-i", "1x1x5x5"], "relu does not"),
    (["conv:1,k=3", "-i", "1x1x5x5x5"], "1-D and 2-D inputs"),
    (["tconv:1,k=3,size=skip", "-i", "1x1x5x5"], "size=skip names a tensor"),
])
def test_cli_errors_are_one_line_exit_2(args, needle):
    r = run("draw", *args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    assert needle in r.stderr and "Traceback" not in r.output
    r = run("draw", *args, "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["error"]["code"] == 2 and needle in doc["error"]["message"]


def test_draw_uncomputable_is_exit_3():
    r = run("draw", "conv:1,k=9", "-i", "1x1x5x5")
    assert r.exit_code == 3 and "larger than the padded input" in r.stderr
    r = run("draw", "conv:1,k=3", "-i", "1x1x5x5", "--at", "9,9")
    assert r.exit_code == 3 and "outside the output 3x3" in r.stderr


# ---------------------------------------------------------------------------
# rf --erf --svg
# ---------------------------------------------------------------------------

def erf_cells(text):
    root = ET.fromstring(text)
    cells = {coords(r.get("data-cell")): r for r in root.iter(NS + "rect")
             if "erf" in classes(r)}
    return root, cells


def covered(root, cells, cls):
    """The cells a box of class ``cls`` covers, by geometry."""
    box = next(r for r in root.iter(NS + "rect") if cls in classes(r))
    x0, y0 = float(box.get("x")), float(box.get("y"))
    x1, y1 = x0 + float(box.get("width")), y0 + float(box.get("height"))
    inside = set()
    for c, r in cells.items():
        cx = float(r.get("x")) + float(r.get("width")) / 2
        cy = float(r.get("y")) + float(r.get("height")) / 2
        if x0 < cx < x1 and y0 < cy < y1:
            inside.add(c)
    return inside


def test_erf_svg_values_equal_torch_and_boxes_match(tmp_path):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tokens = ["conv:1,k=3", "conv:1,k=3,d=2", "avgpool:2"]
    out = tmp_path / "erf.svg"
    r = run("rf", "-i", "1x1x14x12", *tokens, "--erf", "--at", "2,1", "--svg", str(out))
    assert r.exit_code == 0, r.output
    assert "Wrote" in r.stdout and "95% of the gradient mass" in r.stdout
    rendered(out)
    root, cells = erf_cells(out.read_text())
    assert len(cells) == 14 * 12
    x = torch.ones(1, 1, 14, 12, dtype=torch.float64, requires_grad=True)
    w = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    y = F.avg_pool2d(F.conv2d(F.conv2d(x, w), w, dilation=2), 2)
    y[0, 0, 2, 1].backward()
    g = x.grad[0, 0].abs()
    g = g / g.max()
    for (cy, cx), rect in cells.items():
        assert float(rect.get("data-value")) == pytest.approx(float(g[cy, cx]), abs=1e-5)
    doc = json.loads(run("rf", "-i", "1x1x14x12", *tokens, "--erf", "--at", "2,1",
                         "--format", "json").stdout)
    (ey0, ey1), (ex0, ex1) = doc["extent_95"]
    assert covered(root, cells, "extent") == {(a, b) for a in range(ey0, ey1 + 1)
                                              for b in range(ex0, ex1 + 1)}
    region = json.loads(run("rf", "-i", "1x1x14x12", *tokens, "--at", "2,1",
                            "--format", "json").stdout)["region"]
    (ry0, ry1), (rx0, rx1) = region
    assert covered(root, cells, "region") == {(a, b) for a in range(ry0, ry1 + 1)
                                              for b in range(rx0, rx1 + 1)}
    # every cell the gradient reaches lies in the theoretical region
    assert {c for c, r_ in cells.items() if float(r_.get("data-value")) > 0} <= \
        covered(root, cells, "region")


@pytest.mark.parametrize("args", [
    ["-i", "1x1x40", "conv:1,k=5", "maxpool:2", "conv:1,k=3"],
    ["@resnet18", "--layer", "20"],
    ["-i", "1x1x6x8x8", "conv:1,k=3", "conv:1,k=3"],
])
def test_erf_svg_renders_any_rank_and_size(args, tmp_path):
    out = tmp_path / "erf.svg"
    r = run("rf", *args, "--erf", "--svg", str(out))
    assert r.exit_code == 0, r.output
    rendered(out)
    root, cells = erf_cells(out.read_text())
    values = [float(r_.get("data-value")) for r_ in cells.values()]
    assert max(values) == 1.0 and min(values) >= 0
    assert any("scale" in classes(r_) for r_ in root.iter(NS + "rect"))


def test_erf_svg_errors(tmp_path):
    r = run("rf", "-i", "1x1x9", "conv:1,k=3", "--svg", str(tmp_path / "x.svg"))
    assert r.exit_code == 2 and "--svg goes with --erf" in r.stderr
    stack = tmp_path / "net.stack"
    stack.write_text("conv:1,k=3\n")
    r = run("rf", "-i", "1x1x9", "-f", str(stack), "--erf", "--svg", str(stack))
    assert r.exit_code == 2 and "refusing to overwrite" in r.stderr
    assert stack.read_text() == "conv:1,k=3\n"
