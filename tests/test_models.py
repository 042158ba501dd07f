"""The built-in model stacks (``src/convcalc/models/*.stack``).

Two kinds of test:

* torch-free: totals and shapes against published numbers and hand
  arithmetic (written out in the comments, never taken from convcalc);
* torch oracle (skipped without torch): each model built by hand from
  ``torch.nn`` modules, one module per token of the stack, run layer by layer
  on zeros; output shape, parameter count and FLOPs
  (``torch.utils.flop_counter``) compared row by row with convcalc.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import convcalc

MODELS_DIR = Path(__file__).resolve().parent.parent / "src" / "convcalc" / "models"

INPUTS = {
    "mnist": (1, 1, 28, 28),
    "alexnet": (1, 3, 224, 224),
    "vgg16": (1, 3, 224, 224),
    "dcgan": (1, 100, 1, 1),
}

# ---------------------------------------------------------------------------
# Hand arithmetic
# ---------------------------------------------------------------------------

# MNIST: conv1 1*10*5*5 + 10 = 260; conv2 10*20*5*5 + 20 = 5,020;
# fc1 320*50 + 50 = 16,050; fc2 50*10 + 10 = 510; total 21,840 (SPEC §7).
# MACs: conv1 10*24*24*1*25 = 144,000; conv2 20*8*8*10*25 = 320,000;
# fc1 320*50 = 16,000; fc2 50*10 = 500; total 480,500.
MNIST_PARAMS = 21_840
MNIST_MACS = 144_000 + 320_000 + 16_000 + 500

# AlexNet (torchvision): 61,100,840 params (published).
#   conv1 3*64*121 + 64 = 23,296       conv2 64*192*25 + 192 = 307,392
#   conv3 192*384*9 + 384 = 663,936    conv4 384*256*9 + 256 = 884,992
#   conv5 256*256*9 + 256 = 590,080    fc6 9216*4096 + 4096 = 37,752,832
#   fc7 4096*4096 + 4096 = 16,781,312  fc8 4096*1000 + 1000 = 4,097,000
# MACs at 224: conv1 64*55*55*3*121 = 70,276,800; conv2 192*27*27*64*25 =
# 223,948,800; conv3 384*13*13*192*9 = 112,140,288; conv4 256*13*13*384*9 =
# 149,520,384; conv5 256*13*13*256*9 = 99,680,256; fc 37,748,736 +
# 16,777,216 + 4,096,000; total 714,188,480 (the published 0.71 GMACs).
ALEXNET_PARAMS = 61_100_840
ALEXNET_MACS = (70_276_800 + 223_948_800 + 112_140_288 + 149_520_384
                + 99_680_256 + 37_748_736 + 16_777_216 + 4_096_000)

# VGG-16 (torchvision, no BN): published 138,357,544 params, 15.47 GMACs.
VGG16_PARAMS = 138_357_544
VGG16_MACS = 15_470_264_320

# DCGAN generator, transposed convs without bias: params Cin*Cout*k*k.
#   100*512*16 = 819,200   512*256*16 = 2,097,152   256*128*16 = 524,288
#   128*64*16 = 131,072    64*3*16 = 3,072          -> 3,574,784
#   batch norms 2*(512 + 256 + 128 + 64) = 1,920     -> 3,576,704 total
# MACs (PyTorch counts transposed conv from the input: N*Cin*prod(i)*Cout*k*k):
#   100*1*512*16 = 819,200; 512*16*256*16 = 33,554,432; 256*64*128*16 =
#   33,554,432; 128*256*64*16 = 33,554,432; 64*1024*3*16 = 3,145,728
DCGAN_PARAMS = 819_200 + 2_097_152 + 524_288 + 131_072 + 3_072 + 1_920
DCGAN_MACS = 819_200 + 3 * 33_554_432 + 3_145_728

EXPECTED = {
    # name: (params, macs, output shape, number of layers/tokens)
    "mnist": (MNIST_PARAMS, MNIST_MACS, (1, 10), 12),
    "alexnet": (ALEXNET_PARAMS, ALEXNET_MACS, (1, 1000), 22),
    "vgg16": (VGG16_PARAMS, VGG16_MACS, (1, 1000), 40),
    "dcgan": (DCGAN_PARAMS, DCGAN_MACS, (1, 3, 64, 64), 14),
}


def test_hand_arithmetic_constants():
    assert ALEXNET_MACS == 714_188_480
    assert DCGAN_PARAMS == 3_576_704
    assert DCGAN_MACS == 104_628_224
    assert MNIST_MACS == 480_500


# ---------------------------------------------------------------------------
# The files themselves
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(INPUTS))
def test_stack_file_header(name):
    lines = (MODELS_DIR / f"{name}.stack").read_text().splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 4, "first line: a description"
    m = re.fullmatch(r"#\s*input:\s*(\S+)", lines[1])
    assert m, "second line: '# input: SHAPE'"
    assert tuple(int(n) for n in m.group(1).split("x")) == INPUTS[name]


# ---------------------------------------------------------------------------
# Torch-free: totals and shapes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(INPUTS))
def test_model_totals(name):
    params, macs, out_shape, n_layers = EXPECTED[name]
    r = convcalc.analyze([f"@{name}"], INPUTS[name])
    assert r.totals.params == params
    assert r.totals.macs == macs
    assert r.totals.flops == 2 * macs
    assert tuple(r.output_shape) == out_shape
    assert len(r.layers) == n_layers
    assert tuple(r.layers[-1].output_shape) == out_shape


def test_mnist_layers():
    r = convcalc.analyze(["@mnist"], (1, 1, 28, 28))
    weighted = [(row.kind, row.params) for row in r.layers if row.params]
    assert weighted == [("conv", 260), ("conv", 5_020), ("linear", 16_050), ("linear", 510)]
    # conv1 -> 24, pool -> 12, conv2 -> 8, pool -> 4, flatten 20*4*4 = 320
    shapes = [tuple(row.output_shape) for row in r.layers]
    assert shapes == [
        (1, 10, 24, 24), (1, 10, 12, 12), (1, 10, 12, 12),
        (1, 20, 8, 8), (1, 20, 8, 8), (1, 20, 4, 4), (1, 20, 4, 4),
        (1, 320), (1, 50), (1, 50), (1, 50), (1, 10),
    ]
    assert [row.index for row in r.layers] == list(range(1, 13))


def test_mnist_matches_spelled_out_tokens():
    tokens = ("conv:10,k=5 maxpool:2 relu conv:20,k=5 dropout maxpool:2 relu "
              "flatten linear:50 relu dropout linear:10").split()
    a = convcalc.analyze(["@mnist"], (1, 1, 28, 28))
    b = convcalc.analyze(tokens, (1, 1, 28, 28))
    assert [(x.params, x.macs, tuple(x.output_shape)) for x in a.layers] == \
           [(x.params, x.macs, tuple(x.output_shape)) for x in b.layers]


def test_alexnet_shapes():
    r = convcalc.analyze(["@alexnet"], (1, 3, 224, 224))
    assert r.totals.params == 61_100_840
    convs = [tuple(row.output_shape) for row in r.layers if row.kind == "conv"]
    assert convs == [(1, 64, 55, 55), (1, 192, 27, 27), (1, 384, 13, 13),
                     (1, 256, 13, 13), (1, 256, 13, 13)]
    flat = [tuple(row.output_shape) for row in r.layers if row.kind == "flatten"]
    assert flat == [(1, 9216)]


def test_vgg16_shapes():
    r = convcalc.analyze(["@vgg16"], (1, 3, 224, 224))
    assert r.totals.params == 138_357_544
    assert r.totals.macs == 15_470_264_320
    pools = [tuple(row.output_shape) for row in r.layers if row.kind == "maxpool"]
    assert pools == [(1, 64, 112, 112), (1, 128, 56, 56), (1, 256, 28, 28),
                     (1, 512, 14, 14), (1, 512, 7, 7)]
    assert sum(row.kind == "conv" for row in r.layers) == 13
    flat = [tuple(row.output_shape) for row in r.layers if row.kind == "flatten"]
    assert flat == [(1, 25088)]


def test_dcgan_shapes():
    r = convcalc.analyze(["@dcgan"], (1, 100, 1, 1))
    assert r.totals.params == 3_576_704
    tconvs = [(tuple(row.output_shape), row.params) for row in r.layers if row.kind == "tconv"]
    assert tconvs == [((1, 512, 4, 4), 819_200), ((1, 256, 8, 8), 2_097_152),
                      ((1, 128, 16, 16), 524_288), ((1, 64, 32, 32), 131_072),
                      ((1, 3, 64, 64), 3_072)]
    bns = [row.params for row in r.layers if row.kind == "bn"]
    assert bns == [1024, 512, 256, 128]
    assert tuple(r.output_shape) == (1, 3, 64, 64)


def test_batch_scales_macs_not_params():
    r = convcalc.analyze(["@vgg16"], (4, 3, 224, 224))
    assert r.totals.params == VGG16_PARAMS
    assert r.totals.macs == 4 * VGG16_MACS
    assert tuple(r.output_shape) == (4, 1000)


# ---------------------------------------------------------------------------
# Torch oracle
# ---------------------------------------------------------------------------

def _torch_modules(name, nn):
    """The model as a flat list of torch.nn modules, one per stack token."""
    if name == "mnist":
        return [
            nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.Dropout(0.5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(1), nn.Linear(320, 50), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(50, 10),
        ]
    if name == "alexnet":
        # torchvision.models.alexnet: features, avgpool, flatten, classifier
        return [
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.AdaptiveAvgPool2d((6, 6)),
            nn.Flatten(1),
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 1000),
        ]
    if name == "vgg16":
        # torchvision.models.vgg16 (cfg "D", no batch norm)
        mods, cin = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                  512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                mods.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                mods += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        return mods + [
            nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(1),
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 1000),
        ]
    if name == "dcgan":
        # pytorch/examples dcgan Generator, nz=100, ngf=64, nc=3
        nz, ngf, nc = 100, 64, 3
        return [
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        ]
    raise KeyError(name)


def _torch_records(name):
    """[(module repr, output shape, params, flops)] per module, from torch."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    mods = _torch_modules(name, torch.nn)
    model = torch.nn.Sequential(*mods).eval()
    out = []
    with torch.no_grad():
        x = torch.zeros(INPUTS[name])
        for m in model:
            with FlopCounterMode(display=False) as fc:
                x = m(x)
            params = sum(p.numel() for p in m.parameters())
            out.append((repr(m), tuple(x.shape), params, fc.get_total_flops()))
    return out


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_against_torch(name):
    records = _torch_records(name)
    r = convcalc.analyze([f"@{name}"], INPUTS[name])
    assert len(r.layers) == len(records)
    bad = []
    for row, (mod, shape, params, flops) in zip(r.layers, records):
        mine = (tuple(row.output_shape), row.params, row.flops)
        if mine != (shape, params, flops):
            bad.append(f"layer {row.index} {row.kind} vs {mod}: convcalc {mine}, "
                       f"torch {(shape, params, flops)}")
    assert not bad, "\n".join(bad)
    assert r.totals.params == sum(rec[2] for rec in records)
    assert r.totals.flops == sum(rec[3] for rec in records)
    assert tuple(r.output_shape) == records[-1][1]
    # and the hand numbers agree with torch too
    params, macs, out_shape, _ = EXPECTED[name]
    assert sum(rec[2] for rec in records) == params
    assert sum(rec[3] for rec in records) == 2 * macs
    assert records[-1][1] == out_shape
