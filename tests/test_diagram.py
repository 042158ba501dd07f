"""The architecture diagram of ``shape --svg``: rendered by a real SVG
renderer, and its geometry read back from the SVG and checked against what
the networks are — levels counted by hand from the pools and transposed convs,
sizes from the JSON report, stages from the papers — not against the drawing
code's own arithmetic."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest
from click.testing import CliRunner

from convcalc.cli import cli

NS = "{http://www.w3.org/2000/svg}"
RSVG = shutil.which("rsvg-convert")


def draw(tmp_path, *args):
    """(svg root, JSON document) of ``convcalc shape ARGS --svg``, rendered
    to PNG by rsvg-convert where it is installed."""
    out = tmp_path / "net.svg"
    r = CliRunner().invoke(cli, ["shape", *args, "--svg", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    root = ET.fromstring(text)  # valid XML
    if RSVG is not None:
        png = tmp_path / "net.png"
        done = subprocess.run([RSVG, str(out), "-o", str(png)], capture_output=True)
        assert done.returncode == 0, done.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    return root, json.loads(r.stdout)


def test_renderer_available_or_skipped(tmp_path):
    if RSVG is None:
        pytest.skip("rsvg-convert is not installed (librsvg2-bin): pictures are not rendered")
    draw(tmp_path, "@mnist")


class Block:
    def __init__(self, g):
        self.ordinal = int(g.get("data-block"))
        self.index = int(g.get("data-index"))
        self.kind = g.get("data-kind")
        self.layers = [int(v) for v in g.get("data-layers").split()]
        rect = g.find(f"{NS}rect")
        self.x, self.y = float(rect.get("x")), float(rect.get("y"))
        self.w, self.h = float(rect.get("width")), float(rect.get("height"))
        self.cy = self.y + self.h / 2
        self.title = g.find(f"{NS}title").text


def blocks(root):
    return [Block(g) for g in root.iter(f"{NS}g") if g.get("class") == "block"]


def connectors(root):
    return {(int(p.get("data-from")), int(p.get("data-to")))
            for p in root.iter(f"{NS}path") if p.get("data-from") is not None}


def layer(doc, index):
    """The JSON row of a layer index (the last of a sepconv's two)."""
    return [r for r in doc["layers"] if r["index"] == index][-1]


def spatial(doc, index):
    shape = layer(doc, index)["output_shape"] if index else doc["input_shape"]
    return tuple(shape[2:])


def text_boxes(root):
    """Every text's box, generously: 0.6 em a character (DejaVu Sans Mono
    advances 0.602), from one em above the baseline to 0.3 below."""
    size = float(root.get("font-size"))
    out = []
    for t in root.iter(f"{NS}text"):
        fs = float(t.get("font-size", size))
        w = len(t.text) * 0.6 * fs
        x, y = float(t.get("x")), float(t.get("y"))
        x0 = x - w / 2 if t.get("text-anchor") == "middle" else x
        out.append((x0, y - fs, x0 + w, y + 0.3 * fs, t.text))
    return out


def assert_labels_apart(root):
    boxes = text_boxes(root)
    rects = [(b.x, b.y, b.x + b.w, b.y + b.h) for b in blocks(root)]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
        for r in rects:
            assert not (a[0] < r[2] and r[0] < a[2] and a[1] < r[3] and r[1] < a[3]), (a, r)
    width, height = float(root.get("width")), float(root.get("height"))
    assert all(0 <= a[0] and a[2] <= width and 0 <= a[1] and a[3] <= height for a in boxes)


def assert_joins_connected(root, doc):
    """Every add/concat/mul draws a connector from the block holding the
    tensor it names (its save: row) to its own block."""
    by_layer = {}
    for b in blocks(root):
        for i in b.layers:
            by_layer.setdefault(i, b.ordinal)
    lines = connectors(root)
    saved = {"input": 0}
    checked = 0
    for row in doc["layers"]:
        spec = row["spec"]
        if row["kind"] == "save":
            saved[spec.split(":", 1)[1]] = row["index"]
        if row["kind"] in ("add", "concat", "mul"):
            for name in spec.split(":", 1)[1].split(",")[0].split("+"):
                a, b = by_layer[saved[name]], by_layer[row["index"]]
                if a != b:
                    assert (a, b) in lines, (spec, a, b)
                    checked += 1
    return checked


def levels_by_hand(doc):
    """Each layer's level counted from the stack: +1 per stride-2 pool or
    conv, −1 per stride-2 transposed conv (the U-Net and DCGAN)."""
    level, out = 0, {0: 0}
    for row in doc["layers"]:
        spec = row["spec"]
        if row["kind"] == "maxpool" or (row["kind"] == "conv" and ",s=2" in spec):
            level += 1
        if row["kind"] == "tconv" and ",s=2" in spec:
            level -= 1
        out[row["index"]] = level
    return out


# ---------------------------------------------------------------- the networks

def test_unet_valid_draws_a_u(tmp_path):
    root, doc = draw(tmp_path, "@unet_valid")
    bs = blocks(root)
    hand = levels_by_hand(doc)
    y_of = defaultdict(set)
    for b in bs:
        y_of[hand[b.index]].add(round(b.cy, 2))
    # the decoder's blocks sit at the y of the encoder blocks of their level ...
    assert all(len(ys) == 1 for ys in y_of.values()), y_of
    ys = [y_of[lv].pop() for lv in sorted(y_of)]
    assert ys == sorted(ys) and len(set(ys)) == 5  # ... one row per level, deeper lower
    # ... both sides of every level hold blocks: a U, not a staircase
    bottleneck = [b for b in bs if b.kind == "conv"
                  and layer(doc, b.index)["output_shape"][1] == 1024]
    assert len(bottleneck) == 2
    lowest = max(b.cy for b in bs)
    assert all(b.cy == lowest for b in bottleneck)
    first_1024 = min(b.x for b in bottleneck)
    for lv in range(4):
        xs = [b.x for b in bs if hand[b.index] == lv]
        assert min(xs) < first_1024 < max(xs)
    # height by spatial size, width by channels, both monotone and visible
    data = [(spatial(doc, b.index), layer(doc, b.index)["output_shape"][1] if b.index else 1, b)
            for b in bs]
    for s1, c1, b1 in data:
        for s2, c2, b2 in data:
            if s1[0] > s2[0]:
                assert b1.h > b2.h
            if c1 > c2:
                assert b1.w > b2.w
    h572 = next(b.h for s, _, b in data if s == (572, 572))
    h28 = next(b.h for s, _, b in data if s == (28, 28))
    assert h572 >= 5 * h28
    assert assert_joins_connected(root, doc) == 4
    assert_labels_apart(root)
    legend = {t.text for t in root.iter(f"{NS}text")}
    assert {"conv", "pool", "transposed conv", "add / concat / mul"} <= legend


def test_padded_unet_at_512(tmp_path):
    root, doc = draw(tmp_path, "@unet", "-i", "1x3x512x512")
    hand = levels_by_hand(doc)
    y_of = defaultdict(set)
    for b in blocks(root):
        y_of[hand[b.index]].add(round(b.cy, 2))
    assert all(len(ys) == 1 for ys in y_of.values())
    assert [min(y_of[lv]) for lv in sorted(y_of)] == sorted(min(v) for v in y_of.values())
    assert assert_joins_connected(root, doc) == 4
    assert_labels_apart(root)


def test_resnet50_four_stages_of_bottlenecks(tmp_path):
    root, doc = draw(tmp_path, "@resnet50")
    bs = blocks(root)
    groups = [b for b in bs if b.kind == "group"]
    by_size = defaultdict(list)
    for b in groups:
        by_size[spatial(doc, b.index)].append(b)
    # torchvision's ResNet-50: 3, 4, 6 and 3 bottlenecks at 56, 28, 14 and 7
    assert {s: len(v) for s, v in by_size.items()} == \
        {(56, 56): 3, (28, 28): 4, (14, 14): 6, (7, 7): 3}
    ys = []
    for size in [(56, 56), (28, 28), (14, 14), (7, 7)]:
        stage = {round(b.cy, 2) for b in by_size[size]}
        assert len(stage) == 1
        ys.append(stage.pop())
        xs = [b.x for b in by_size[size]]
        assert xs == sorted(xs)
    assert ys == sorted(ys) and len(set(ys)) == 4  # descending, stage by stage
    # every row of the network is in exactly one block
    held = sorted(i for b in bs for i in b.layers)
    assert held == [0] + [r["index"] for r in doc["layers"]]
    # the head (pool, flatten, fc) below the last stage
    fc = next(b for b in bs if b.kind == "linear")
    assert fc.cy > ys[-1]
    for b in bs:  # hover: the layer and its output shape
        assert "x".join(map(str, layer(doc, b.index)["output_shape"] if b.index
                            else doc["input_shape"])) in b.title
    assert_labels_apart(root)


def test_resnet18_drawn_whole_with_its_skips(tmp_path):
    root, doc = draw(tmp_path, "@resnet18")
    bs = blocks(root)
    assert not any(b.kind == "group" for b in bs)
    convs = [r for r in doc["layers"] if r["kind"] == "conv"]
    assert sum(1 for b in bs if b.kind == "conv") == len(convs) == 20
    frames = [r for r in root.iter(f"{NS}rect") if r.get("class") == "frame"]
    assert len(frames) == 8  # the basic blocks, framed
    assert assert_joins_connected(root, doc) == 8
    assert_labels_apart(root)


def test_dcgan_a_widening_pyramid(tmp_path):
    root, doc = draw(tmp_path, "@dcgan")
    tconvs = sorted((b for b in blocks(root) if b.kind == "tconv"), key=lambda b: b.x)
    sizes = [spatial(doc, b.index)[0] for b in tconvs]
    assert sizes == [4, 8, 16, 32, 64]
    assert all(a.h < b.h for a, b in zip(tconvs, tconvs[1:]))  # taller as it grows
    assert all(a.cy > b.cy for a, b in zip(tconvs[1:], tconvs[2:]))  # rising level by level
    assert all(a.w > b.w for a, b in zip(tconvs, tconvs[1:]))  # 512 down to 3 channels
    assert_labels_apart(root)


DENSE = ("conv:16,k=3,p=1 "
         + " ".join(f"save:t{i} bn relu conv:8,k=3,p=1 save:n{i} from:t{i} concat:n{i}"
                    for i in range(3))
         + " conv:16,k=1 avgpool:2 "
         + " ".join(f"save:u{i} bn relu conv:8,k=3,p=1 save:m{i} from:u{i} concat:m{i}"
                    for i in range(2))
         + " gap flatten linear:10")


def test_dense_concats_framed_and_connected(tmp_path):
    root, doc = draw(tmp_path, "-i", "1x3x32x32", *DENSE.split())
    frames = [r for r in root.iter(f"{NS}rect") if r.get("class") == "frame"]
    assert len(frames) == 5  # one per dense layer
    assert assert_joins_connected(root, doc) == 5
    bs = blocks(root)
    cats = [b for b in bs if b.kind == "concat"]
    assert len({round(b.cy, 2) for b in cats[:3]}) == 1
    assert len({round(b.cy, 2) for b in cats[3:]}) == 1 and cats[3].cy > cats[0].cy
    assert_labels_apart(root)


def test_densenet121_dense_blocks_descend(tmp_path):
    root, doc = draw(tmp_path, "@densenet121")
    groups = [b for b in blocks(root) if b.kind == "group"]
    # torchvision's DenseNet-121: dense blocks of 6, 12, 24, 16 layers at 56 .. 7
    assert [spatial(doc, b.index) for b in groups] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [len([i for i in b.layers if layer(doc, i)["kind"] == "concat"]) for b in groups] == \
        [6, 12, 24, 16]
    assert all(a.cy < b.cy for a, b in zip(groups, groups[1:]))
    labels = {t.text for t in root.iter(f"{NS}text")}
    assert any(t.startswith("denseblock1.denselayer1") for t in labels)
    assert_labels_apart(root)


def test_imported_onnx_model_grouped_by_its_names(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(s, c):
            super().__init__()
            s.conv1 = nn.Conv2d(c, c, 3, padding=1)
            s.conv2 = nn.Conv2d(c, c, 3, padding=1)

        def forward(s, x):
            return torch.relu(x + s.conv2(torch.relu(s.conv1(x))))

    class Net(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(3, 16, 3, 2, 1)
            s.layer1 = nn.Sequential(Block(16), Block(16))
            s.down = nn.Conv2d(16, 32, 3, 2, 1)
            s.layer2 = nn.Sequential(Block(32), Block(32))
            s.fc = nn.Linear(32, 10)

        def forward(s, x):
            x = s.layer2(s.down(s.layer1(s.stem(x))))
            return s.fc(x.mean((2, 3)))

    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    root, doc = draw(tmp_path, str(path))
    frames = [t.text for t in root.iter(f"{NS}text")]
    assert {"layer1.0", "layer1.1", "layer2.0", "layer2.1"} <= set(frames)
    bs = blocks(root)
    y16 = {round(b.cy, 2) for b in bs if b.kind == "add" and spatial(doc, b.index) == (16, 16)}
    y8 = {round(b.cy, 2) for b in bs if b.kind == "add" and spatial(doc, b.index) == (8, 8)}
    assert len(y16) == len(y8) == 1 and y16.pop() < y8.pop()
    assert assert_joins_connected(root, doc) == 4
    assert_labels_apart(root)


@pytest.mark.parametrize("args", [
    ["@resnet152"], ["@densenet201"],
    ["-i", "1x8x16x16"] + ["conv:8,k=3,p=1", "relu"] * 5000,
    ["-i", "1x8x16x16"] + ["save:x", "conv:8,k=3,p=1", "relu", "add:x"] * 2500,
    ["-i", "1x8x64x64"] + ["maxpool:2", "up:2", "conv:8,k=3,p=1"] * 3334,
], ids=["resnet152", "densenet201", "chain", "residuals", "zigzag"])
def test_large_graphs_stay_readable(tmp_path, args):
    root, doc = draw(tmp_path, *args)
    bs = blocks(root)
    assert len(bs) <= 80
    assert float(root.get("width")) <= 8000 and float(root.get("height")) <= 4000
    held = sorted(i for b in bs for i in b.layers)
    assert held == [0] + [r["index"] for r in doc["layers"]]
    assert_labels_apart(root)


@pytest.mark.parametrize("model", ["efficientnet_b0", "mobilenet_v3_large", "regnet_y_800mf",
                                   "vgg16"])
def test_classifiers_descend_by_size(tmp_path, model):
    """Squeeze-excitation gates (a global pool inside every block) do not
    pull a block into the head: the y of every block is set by its output
    size alone, lower for smaller, and the head (no positions left) is last."""
    root, doc = draw(tmp_path, f"@{model}")
    y_of = defaultdict(set)
    head = []
    for b in blocks(root):
        size = spatial(doc, b.index)
        if math.prod(size) <= 1:
            head.append(b)
        else:
            y_of[size].add(round(b.cy, 2))
    assert all(len(ys) == 1 for ys in y_of.values()), y_of
    by_size = sorted(((s, ys.pop()) for s, ys in y_of.items()), reverse=True)
    assert [y for _, y in by_size] == sorted(y for _, y in by_size)
    assert len({y for _, y in by_size}) == len(by_size) >= 5
    assert head and all(b.cy > by_size[-1][1] for b in head)
    assert_labels_apart(root)
