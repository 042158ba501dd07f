"""The graph model zoo: ResNet-18/50, MobileNetV2 and the two U-Nets
(``src/convcalc/models/*.stack`` written with save/from/add/concat).

Two kinds of test:

* torch-free: published numbers and hand arithmetic (never taken from
  convcalc): parameter counts, output shapes, the U-Net that cannot run at
  572x572;
* torch oracle (skipped without torch): each network written by hand in
  ``torch.nn``, mirroring torchvision's definitions (no torchvision import),
  run on zeros in eval / no_grad under ``FlopCounterMode``; total params,
  FLOPs and output shape compared with convcalc, and every conv / tconv /
  linear / bn row compared with its module in forward order.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import convcalc

MODELS_DIR = Path(__file__).resolve().parent.parent / "src" / "convcalc" / "models"

# default inputs (the `# input:` line of each stack)
INPUTS = {
    "resnet18": (1, 3, 224, 224),
    "resnet50": (1, 3, 224, 224),
    "mobilenet_v2": (1, 3, 224, 224),
    "unet": (1, 1, 572, 572),
    "unet_valid": (1, 1, 572, 572),
}

# ---------------------------------------------------------------------------
# Published numbers and hand arithmetic
# ---------------------------------------------------------------------------

# torchvision model cards: resnet18 11,689,512 params, 1.81 GFLOPS (= GMACs);
# resnet50 25,557,032; mobilenet_v2 3,504,872.
RESNET18_PARAMS = 11_689_512
RESNET50_PARAMS = 25_557_032
MOBILENET_V2_PARAMS = 3_504_872

# ResNet-18 MACs at 224, by hand (output positions x Cin x Cout x k x k):
#   conv1 112*112 * 3*64*49                            = 118,013,952
#   layer1: 4 convs 56*56 * 64*64*9 each               = 4 * 115,605,504
#   layer2: 28*28 * (64*128*9 + 3 * 128*128*9)         + 1x1 28*28*64*128
#   layer3: 14*14 * (128*256*9 + 3 * 256*256*9)        + 1x1 14*14*128*256
#   layer4:  7*7  * (256*512*9 + 3 * 512*512*9)        + 1x1 7*7*256*512
#   fc 512*1000                                        = 512,000
# Each stage after the first costs the same: 28*28*(73,728 + 442,368) + 6,422,528
# = 404,619,264 + 6,422,528 = 411,041,792.
RESNET18_MACS = 118_013_952 + 4 * 115_605_504 + 3 * 411_041_792 + 512_000

# ResNet-18 params by hand: conv1 3*64*49 = 9,408; bn 2*C each;
#   layer1 4 * 64*64*9 = 147,456 + 4 bn(64) 512
#   layer2 64*128*9 + 3*128*128*9 + 64*128 = 73,728 + 442,368 + 8,192; 5 bn(128) 1,280
#   layer3 128*256*9 + 3*256*256*9 + 128*256 = 294,912 + 1,769,472 + 32,768; 5 bn(256) 2,560
#   layer4 256*512*9 + 3*512*512*9 + 256*512 = 1,179,648 + 7,077,888 + 131,072; 5 bn(512) 5,120
#   fc 512*1000 + 1000 = 513,000
RESNET18_HAND_PARAMS = (9_408 + 128 + 147_456 + 512 + 73_728 + 442_368 + 8_192 + 1_280
                        + 294_912 + 1_769_472 + 32_768 + 2_560
                        + 1_179_648 + 7_077_888 + 131_072 + 5_120 + 513_000)

# Original U-Net (Ronneberger et al. 2015, Fig. 1): a 572x572 tile gives a
# 388x388 segmentation map with 2 classes. Sizes, by hand:
#   572 -> 570 -> 568 | 284 -> 282 -> 280 | 140 -> 138 -> 136 | 68 -> 66 -> 64 |
#   32 -> 30 -> 28; up: 56 -> 54 -> 52; 104 -> 102 -> 100; 200 -> 198 -> 196;
#   392 -> 390 -> 388.
UNET_VALID_OUT = (1, 2, 388, 388)
# Its params by hand (3x3 convs with bias: 9*Cin*Cout + Cout):
#   enc  1->64->64: 640 + 36,928;  64->128->128: 73,856 + 147,584;
#        128->256->256: 295,168 + 590,080;  256->512->512: 1,180,160 + 2,359,808;
#        512->1024->1024: 4,719,616 + 9,438,208
#   up tconv 2x2 (4*Cin*Cout + Cout): 1024->512 2,097,664; 512->256 524,544;
#        256->128 131,200; 128->64 32,832
#   dec  1024->512->512: 4,719,104 + 2,359,808;  512->256->256: 1,179,904 + 590,080;
#        256->128->128: 295,040 + 147,584;  128->64->64: 73,792 + 36,928
#   out 64*2 + 2 = 130
UNET_VALID_PARAMS = (640 + 36_928 + 73_856 + 147_584 + 295_168 + 590_080
                     + 1_180_160 + 2_359_808 + 4_719_616 + 9_438_208
                     + 2_097_664 + 524_544 + 131_200 + 32_832
                     + 4_719_104 + 2_359_808 + 1_179_904 + 590_080
                     + 295_040 + 147_584 + 73_792 + 36_928 + 130)


PUBLISHED_PARAMS = {"resnet18": RESNET18_PARAMS, "resnet50": RESNET50_PARAMS,
                    "mobilenet_v2": MOBILENET_V2_PARAMS}


def test_hand_arithmetic_constants():
    assert RESNET18_HAND_PARAMS == RESNET18_PARAMS
    assert RESNET18_MACS == 1_814_073_344
    assert UNET_VALID_PARAMS == 31_030_658


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


def test_unet_description_says_divisible_by_16():
    first = (MODELS_DIR / "unet.stack").read_text().splitlines()[0]
    assert "16" in first and "divisible" in first


# ---------------------------------------------------------------------------
# Torch-free
# ---------------------------------------------------------------------------

def test_resnet18():
    r = convcalc.analyze(["@resnet18"], (1, 3, 224, 224))
    assert r.totals.params == RESNET18_PARAMS
    assert r.totals.macs == RESNET18_MACS
    assert r.totals.flops == 2 * RESNET18_MACS
    assert tuple(r.output_shape) == (1, 1000)
    # 20 convs (17 + 3 downsample), 20 bn, 1 fc; 8 residual adds
    kinds = [row.kind for row in r.layers]
    assert kinds.count("conv") == 20 and kinds.count("bn") == 20
    assert kinds.count("add") == 8 and kinds.count("linear") == 1
    # stage outputs 56, 28, 14, 7
    adds = [tuple(row.output_shape) for row in r.layers if row.kind == "add"]
    assert adds == [(1, 64, 56, 56)] * 2 + [(1, 128, 28, 28)] * 2 + \
                   [(1, 256, 14, 14)] * 2 + [(1, 512, 7, 7)] * 2


def test_resnet50():
    r = convcalc.analyze(["@resnet50"], (1, 3, 224, 224))
    assert r.totals.params == RESNET50_PARAMS
    assert tuple(r.output_shape) == (1, 1000)
    kinds = [row.kind for row in r.layers]
    # 1 stem + 16 blocks * 3 + 4 downsample = 53 convs, 16 residual adds
    assert kinds.count("conv") == 53 and kinds.count("bn") == 53
    assert kinds.count("add") == 16
    adds = [tuple(row.output_shape) for row in r.layers if row.kind == "add"]
    assert adds == [(1, 256, 56, 56)] * 3 + [(1, 512, 28, 28)] * 4 + \
                   [(1, 1024, 14, 14)] * 6 + [(1, 2048, 7, 7)] * 3


def test_resnet_params_do_not_depend_on_input():
    r = convcalc.analyze(["@resnet50"], (2, 3, 320, 256))
    assert r.totals.params == RESNET50_PARAMS
    assert tuple(r.output_shape) == (2, 1000)


def test_mobilenet_v2():
    r = convcalc.analyze(["@mobilenet_v2"], (1, 3, 224, 224))
    assert r.totals.params == MOBILENET_V2_PARAMS
    assert tuple(r.output_shape) == (1, 1000)
    kinds = [row.kind for row in r.layers]
    # 17 inverted residual blocks, 10 of them with stride 1 and in == out
    assert kinds.count("add") == 10
    # 1 stem + 1 (t=1 block: dw + project) + 16 * 3 + last 1x1 = 52 convs
    assert kinds.count("conv") == 52
    depthwise = [row for row in r.layers if row.kind == "conv" and ",g=" in row.spec]
    assert len(depthwise) == 17
    last_conv = [tuple(row.output_shape) for row in r.layers if row.kind == "conv"][-1]
    assert last_conv == (1, 1280, 7, 7)


def test_unet_valid_paper_shapes():
    r = convcalc.analyze(["@unet_valid"], (1, 1, 572, 572))
    assert tuple(r.output_shape) == UNET_VALID_OUT
    assert r.totals.params == UNET_VALID_PARAMS
    concats = [tuple(row.output_shape) for row in r.layers if row.kind == "concat"]
    assert concats == [(1, 1024, 56, 56), (1, 512, 104, 104),
                       (1, 256, 200, 200), (1, 128, 392, 392)]


def test_unet_padded_at_512():
    r = convcalc.analyze(["@unet"], (1, 1, 512, 512))
    assert tuple(r.output_shape) == (1, 2, 512, 512)
    # every size divisible by 16 works, and keeps H x W
    r = convcalc.analyze(["@unet"], (2, 1, 96, 160))
    assert tuple(r.output_shape) == (2, 2, 96, 160)


def test_unet_padded_fails_at_572():
    # 572 -> 286 -> 143 -> 71 -> 35; 35 * 2 = 70 cannot meet the 71x71 skip e4
    with pytest.raises(convcalc.ConvcalcError) as info:
        convcalc.analyze(["@unet"], (1, 1, 572, 572))
    e = info.value
    assert e.exit_code == 3
    assert "concat" in str(e)


# ---------------------------------------------------------------------------
# Torch oracle: the networks by hand, mirroring torchvision
# ---------------------------------------------------------------------------

def _torch_nets(nn, torch):
    F = nn.functional

    class BasicBlock(nn.Module):  # torchvision.models.resnet.BasicBlock
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            return self.relu(out + identity)

    class Bottleneck(nn.Module):  # torchvision.models.resnet.Bottleneck (v1.5)
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            width = planes
            self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            return self.relu(out + identity)

    class ResNet(nn.Module):  # torchvision.models.resnet.ResNet
        def __init__(self, block, layers, num_classes=1000):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, 64, layers[0])
            self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
            self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
            self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * block.expansion, num_classes)

        def _make_layer(self, block, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            layers = [block(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = torch.flatten(self.avgpool(x), 1)
            return self.fc(x)

    def conv_bn_act(cin, cout, k=3, stride=1, groups=1):  # Conv2dNormActivation
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                                       bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):  # torchvision.models.mobilenetv2
        def __init__(self, inp, oup, stride, expand_ratio):
            super().__init__()
            hidden = int(round(inp * expand_ratio))
            self.use_res_connect = stride == 1 and inp == oup
            layers = []
            if expand_ratio != 1:
                layers.append(conv_bn_act(inp, hidden, k=1))
            layers += [conv_bn_act(hidden, hidden, stride=stride, groups=hidden),
                       nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res_connect else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, num_classes=1000):
            super().__init__()
            cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                   (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            cin = 32  # _make_divisible(32 * 1.0, 8)
            features = [conv_bn_act(3, cin, stride=2)]
            for t, c, n, s in cfg:
                for i in range(n):
                    features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            features.append(conv_bn_act(cin, 1280, k=1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(1280, num_classes))

        def forward(self, x):
            x = self.features(x)
            x = F.adaptive_avg_pool2d(x, (1, 1))
            return self.classifier(torch.flatten(x, 1))

    def double_conv(cin, cout, padded):
        if padded:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True))
        return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3), nn.ReLU(inplace=True))

    def center_crop(t, size):
        dy, dx = (t.shape[2] - size[0]) // 2, (t.shape[3] - size[1]) // 2
        return t[:, :, dy:dy + size[0], dx:dx + size[1]]

    class UNet(nn.Module):
        """padded=True: the common same-size U-Net (bn, concat needs equal
        sizes); padded=False: Ronneberger et al. 2015 (cropped skips)."""

        def __init__(self, padded, in_ch=1, classes=2):
            super().__init__()
            self.padded = padded
            chans = [64, 128, 256, 512, 1024]
            self.down = nn.ModuleList()
            cin = in_ch
            for c in chans:
                self.down.append(double_conv(cin, c, padded))
                cin = c
            self.pool = nn.MaxPool2d(2)
            self.ups = nn.ModuleList()
            self.dec = nn.ModuleList()
            for c in reversed(chans[:-1]):
                self.ups.append(nn.ConvTranspose2d(2 * c, c, kernel_size=2, stride=2))
                self.dec.append(double_conv(2 * c, c, padded))
            self.out = nn.Conv2d(64, classes, kernel_size=1)

        def forward(self, x):
            skips = []
            for i, block in enumerate(self.down):
                x = block(x)
                if i < 4:
                    skips.append(x)
                    x = self.pool(x)
            for up, dec, skip in zip(self.ups, self.dec, reversed(skips)):
                x = up(x)
                if not self.padded:
                    skip = center_crop(skip, x.shape[2:])
                x = dec(torch.cat([x, skip], dim=1))
            return self.out(x)

    return {
        "resnet18": lambda: ResNet(BasicBlock, [2, 2, 2, 2]),
        "resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3]),
        "mobilenet_v2": MobileNetV2,
        "unet": lambda: UNet(padded=True),
        "unet_valid": lambda: UNet(padded=False),
    }


_KIND_OF = {"Conv2d": "conv", "ConvTranspose2d": "tconv", "Linear": "linear",
            "BatchNorm2d": "bn"}


def _torch_run(name, shape):
    """Run the hand-written net on zeros: (params, flops, output shape,
    [(kind, output shape, params, flops)] per weighted module in forward order)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = _torch_nets(torch.nn, torch)[name]().eval()
    rows = []
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        def pre(module, args):
            module._flops_before = fc.get_total_flops()

        def post(module, args, out):
            rows.append((_KIND_OF[type(module).__name__], tuple(out.shape),
                         sum(p.numel() for p in module.parameters()),
                         fc.get_total_flops() - module._flops_before))

        for m in model.modules():
            if type(m).__name__ in _KIND_OF:
                m.register_forward_pre_hook(pre)
                m.register_forward_hook(post)
        out = model(torch.zeros(shape))
    params = sum(p.numel() for p in model.parameters())
    return params, fc.get_total_flops(), tuple(out.shape), rows


ORACLE_CASES = [
    ("resnet18", (1, 3, 224, 224)),
    ("resnet50", (1, 3, 224, 224)),
    ("mobilenet_v2", (1, 3, 224, 224)),
    ("resnet18", (2, 3, 193, 161)),  # odd sizes through the stride-2 stages
    ("mobilenet_v2", (1, 3, 97, 130)),
    ("unet", (1, 1, 64, 96)),
    ("unet_valid", (1, 1, 188, 188)),  # 184, 88, 40, 16, 4 -> up 8 ... -> 4x4 output
]


@pytest.mark.parametrize("name,shape", ORACLE_CASES,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in ORACLE_CASES])
def test_against_torch(name, shape):
    params, flops, out_shape, rows = _torch_run(name, shape)
    r = convcalc.analyze([f"@{name}"], shape)
    mine = [(row.kind, tuple(row.output_shape), row.params, row.flops)
            for row in r.layers if row.kind in _KIND_OF.values()]
    bad = [f"#{i}: convcalc {a} vs torch {b}"
           for i, (a, b) in enumerate(zip(mine, rows), 1) if a != b]
    assert rows and len(mine) == len(rows), (len(mine), len(rows))
    assert not bad, "\n".join(bad[:10])
    assert r.totals.params == params
    assert r.totals.flops == flops
    assert tuple(r.output_shape) == out_shape
    # and torch agrees with the published / hand numbers
    if shape == INPUTS[name] and name in PUBLISHED_PARAMS:
        assert params == PUBLISHED_PARAMS[name]
        assert out_shape == (1, 1000)
    if name == "resnet18" and shape == INPUTS[name]:
        assert flops == 2 * RESNET18_MACS


@pytest.mark.parametrize("size", [572, 72])
def test_unet_torch_fails_where_convcalc_does(size):
    """572 (on the meta device) and 72 = 8 * 9 (real zeros): the pools floor
    to an odd size at H/8 (71, 9), so the first concat sees 70 vs 71, 8 vs 9."""
    torch = pytest.importorskip("torch")
    device = "meta" if size == 572 else "cpu"
    with torch.device(device):
        model = _torch_nets(torch.nn, torch)["unet"]().eval()
        x = torch.zeros(1, 1, size, size)
    with torch.no_grad(), pytest.raises(RuntimeError, match="[Ss]izes of tensors must match"):
        model(x)
    with pytest.raises(convcalc.ConvcalcError) as info:
        convcalc.analyze(["@unet"], (1, 1, size, size))
    assert info.value.exit_code == 3 and "concat" in str(info.value)


@pytest.mark.parametrize("name,shape", [("unet", (1, 1, 512, 512)),
                                        ("unet_valid", (1, 1, 572, 572))])
def test_unets_full_size_against_torch_meta(name, shape):
    """The full-size U-Nets on the meta device (shapes and FLOPs without the
    ~0.3-0.4 TFLOPs of real arithmetic)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _torch_nets(torch.nn, torch)[name]().eval()
        x = torch.zeros(shape)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = model(x)
    r = convcalc.analyze([f"@{name}"], shape)
    assert r.totals.params == sum(p.numel() for p in model.parameters())
    assert r.totals.flops == fc.get_total_flops()
    assert tuple(r.output_shape) == tuple(out.shape)
