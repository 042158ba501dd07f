"""The PyTorch importer (SPEC §3c): ``import_torch(module, input_shape)``.

Every test is a round trip against torch itself: a module is imported, the
stack analyzed by ``convcalc.analyze``, and the output shape, the params
(``sum(p.numel())``), the MACs (``FlopCounterMode`` total // 2) and every
row's output shape (the traced node's, as torch computed it) must equal
torch's.  First hand-built modules covering every kind the importer maps,
then every torchvision classification model but the transformers, and four
segmentation models.  Unsupported ops fail with one message naming them all.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import convcalc  # noqa: E402
from convcalc.errors import StackSyntaxError  # noqa: E402
from convcalc.importers.pytorch import import_torch, trace_torch  # noqa: E402

from torch_compat import build_on_meta as _build_on_meta, torchvision_or_skip  # noqa: E402


def torch_truth(module, shape, device="cpu"):
    """(output shape, params, MACs) as torch computes them, in eval mode."""
    module.eval()
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            out = module(torch.zeros(shape, device=device))
    if isinstance(out, dict):
        out = out["out"]
    params = sum(p.numel() for p in module.parameters())
    return tuple(out.shape), params, counter.get_total_flops() // 2


def round_trip(module, shape, device="cpu"):
    """Import, analyze and compare with torch; returns the imported stack."""
    want_shape, want_params, want_macs = torch_truth(module, shape, device)
    got = trace_torch(module, shape)
    result = convcalc.analyze(got.tokens, shape, receptive=False)
    assert result.output_shape == want_shape == got.output_shape, got.tokens
    assert result.totals.params == want_params, got.tokens
    assert result.totals.macs == want_macs, got.tokens
    rows = [r for r in result.layers if r.kind not in ("save", "from")]
    assert len(rows) == len(got.nodes)
    for row, node, shape_ in zip(rows, got.nodes, got.shapes):
        assert row.output_shape == shape_, (row.name, row.spec, node)
    return got


def kinds(tokens):
    return [t.split("=", 1)[1].split(":")[0].split(",")[0] if "=" in t.split(":")[0] else
            t.split(":")[0] for t in tokens]


# ---------------------------------------------------------------------------
# hand-built modules, one family of kinds each
# ---------------------------------------------------------------------------

class Seq(nn.Sequential):
    pass


def test_convs_of_every_rank():
    round_trip(nn.Sequential(
        nn.Conv1d(2, 8, 5, stride=2, padding=2, bias=False), nn.ReLU(),
        nn.Conv1d(8, 8, 4, padding="same", dilation=3, groups=4),
        nn.Conv1d(8, 6, 3, padding="valid", padding_mode="reflect"),
        nn.Conv1d(6, 6, 3, padding=2, padding_mode="circular")), (2, 2, 40))
    got = round_trip(nn.Sequential(
        nn.Conv2d(3, 16, (3, 5), stride=(2, 1), padding=(1, 2)), nn.BatchNorm2d(16),
        nn.Conv2d(16, 16, 4, padding="same", groups=16, bias=False),
        nn.Conv2d(16, 8, 3, padding=1, padding_mode="replicate", dilation=2),
        nn.Conv2d(8, 8, 2, padding="same", dilation=(1, 2))), (1, 3, 33, 30))
    assert got.tokens[0] == "0=conv:16,k=3x5,s=2x1,p=1x2,bias=true"
    assert got.tokens[2] == "2=conv:16,k=4,s=1,p=1:2,g=16,bias=false"  # odd unit last
    round_trip(nn.Sequential(
        nn.Conv3d(1, 4, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(4), nn.ReLU6(),
        nn.Conv3d(4, 4, (1, 3, 3), padding="same")), (1, 1, 6, 20, 18))


def test_functional_convs_and_linear():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 3, 3, 3))
            self.b = nn.Parameter(torch.randn(8))
            self.wt = nn.Parameter(torch.randn(8, 4, 2, 2))
            self.fc = nn.Parameter(torch.randn(10, 4 * 15 * 15))

        def forward(self, x):
            x = F.conv2d(x, self.w, self.b, stride=2, padding=1)
            x = F.conv_transpose2d(x, self.wt, None, stride=2, output_padding=1)
            return F.linear(x.view(x.size(0), -1), self.fc)
    round_trip(M(), (2, 3, 14, 14))


def test_transposed_convs_with_output_padding():
    round_trip(nn.Sequential(
        nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose1d(6, 4, 4, stride=3, dilation=2, groups=2, bias=False)), (1, 4, 9))
    got = round_trip(nn.Sequential(
        nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(4, 4, (4, 3), stride=(2, 3), padding=(1, 0),
                           output_padding=(0, 2))), (1, 8, 7, 5))
    assert got.tokens[0] == "0=tconv:4,k=3,s=2,p=1,op=1,bias=true"
    round_trip(nn.ConvTranspose3d(2, 3, 3, stride=2, output_padding=(1, 0, 1)), (1, 2, 3, 4, 5))

    class Sized(nn.Module):  # forward(output_size=...) solves the output padding
        def __init__(self):
            super().__init__()
            self.down = nn.Conv2d(3, 3, 3, stride=2, padding=1)
            self.up = nn.ConvTranspose2d(3, 3, 3, stride=2, padding=1)

        def forward(self, x):
            return self.up(self.down(x), output_size=x.shape)
    round_trip(Sized(), (1, 3, 16, 15))


@pytest.mark.parametrize("mode,align,shape", [
    ("nearest", None, (1, 2, 5, 7)), ("nearest-exact", None, (1, 2, 5, 7)),
    ("bilinear", False, (1, 2, 5, 7)), ("bilinear", True, (1, 2, 5, 7)),
    ("bicubic", True, (1, 2, 5, 7)), ("bicubic", False, (1, 2, 5, 7)),
    ("area", None, (1, 2, 6, 8)), ("linear", True, (1, 2, 9)), ("linear", False, (1, 2, 9)),
    ("trilinear", False, (1, 2, 3, 4, 5)), ("nearest", None, (1, 2, 3, 4, 5)),
])
def test_every_upsample_mode(mode, align, shape):
    n = len(shape) - 2
    round_trip(nn.Sequential(nn.Upsample(scale_factor=2, mode=mode, align_corners=align),
                             nn.Upsample(size=(11,) * n, mode=mode, align_corners=align),
                             nn.Upsample(scale_factor=1.3, mode=mode, align_corners=align)),
               shape)

    class Functional(nn.Module):
        def forward(self, x):
            y = F.interpolate(x, scale_factor=0.5, mode=mode, align_corners=align)
            return F.interpolate(y, size=x.shape[2:], mode=mode, align_corners=align)
    got = round_trip(Functional(), shape)
    assert got.tokens[-1].startswith("interpolate_1=up:size=input")


def test_upsample_classes_and_size_of_a_skip():
    round_trip(nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2),
                             nn.UpsamplingBilinear2d(size=(9, 13))), (1, 3, 4, 5))

    class Skip(nn.Module):  # the segmentation heads' F.interpolate(x, size=skip.shape[-2:])
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, stride=2)

        def forward(self, x):
            skip = self.a(x)
            y = self.b(skip)
            return F.interpolate(y, size=skip.shape[-2:], mode="bilinear") + skip
    got = round_trip(Skip(), (1, 3, 17, 20))
    saved = [t for t in got.tokens if t.startswith("save:")][0][5:]
    assert f"interpolate=up:size={saved},mode=bilinear" in got.tokens

    class LastMade(nn.Module):  # the size's tensor is made right before, read by nobody else
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, stride=4)
            self.b = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            a = self.a(x)
            return F.interpolate(a, size=self.b(x).shape[2:], mode="nearest")
    got = round_trip(LastMade(), (1, 3, 12, 13))
    assert got.tokens == ["a=conv:4,k=3,s=4,p=0,bias=true", "save:t1", "from:input",
                          "b=conv:4,k=3,s=1,p=1,bias=true", "save:t2", "from:t1",
                          "interpolate=up:size=t2"]


def test_pools_with_ceil_and_adaptive():
    round_trip(nn.Sequential(
        nn.MaxPool2d(3, stride=2, ceil_mode=True), nn.MaxPool2d(2, padding=1, dilation=2),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d((2, 1)), nn.AdaptiveAvgPool2d((5, None)), nn.AdaptiveMaxPool2d(3)),
        (1, 4, 40, 33))
    round_trip(nn.Sequential(nn.MaxPool1d(3, 2, ceil_mode=True), nn.AvgPool1d(2, ceil_mode=True),
                             nn.AdaptiveAvgPool1d(4), nn.AdaptiveMaxPool1d(2)), (1, 3, 30))
    round_trip(nn.Sequential(nn.MaxPool3d(2, ceil_mode=True), nn.AvgPool3d(2, 1, 1),
                             nn.AdaptiveAvgPool3d(1)), (1, 2, 5, 7, 9))

    class Functional(nn.Module):
        def forward(self, x):
            x = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
            x = F.avg_pool2d(x, kernel_size=2, ceil_mode=True)
            x = F.adaptive_avg_pool2d(x, (2, 3))
            x = F.adaptive_max_pool2d(x, 1)
            return torch.flatten(x, 1)
    round_trip(Functional(), (1, 3, 23, 31))


def test_squeeze_excitation_gate():
    class SE(nn.Module):
        def __init__(self, c=16, r=4):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(c, c // r, 1)
            self.fc2 = nn.Conv2d(c // r, c, 1)
            self.act = nn.SiLU()
            self.gate = nn.Hardsigmoid()

        def forward(self, x):
            x = self.conv(x)
            s = self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))
            return s * x
    got = round_trip(SE(), (2, 3, 12, 12))
    assert got.tokens[-1].startswith("mul=mul:")


def test_norms():
    class LayerNorm2d(nn.LayerNorm):  # torchvision's, recognised by its name
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)
    got = round_trip(nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, eps=1e-3, momentum=0.01), nn.GroupNorm(4, 8),
        nn.GroupNorm(2, 8, affine=False), nn.InstanceNorm2d(8),
        nn.InstanceNorm2d(8, affine=True, track_running_stats=True),
        LayerNorm2d(8, eps=1e-6), nn.BatchNorm2d(8, affine=False),
        nn.LayerNorm([8, 8]), nn.LayerNorm(8, elementwise_affine=False),
        nn.LayerNorm(8, bias=False)), (2, 3, 10, 10))
    assert kinds(got.tokens) == ["conv", "bn", "gn", "gn", "instnorm", "instnorm", "ln2d", "bn",
                                 "ln", "ln", "ln"]
    round_trip(nn.Sequential(nn.Conv1d(2, 4, 1), nn.BatchNorm1d(4), nn.InstanceNorm1d(4),
                             nn.Flatten(), nn.Linear(4 * 7, 5), nn.BatchNorm1d(5)), (3, 2, 7))

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.gn = nn.GroupNorm(3, 3)

        def forward(self, x):
            x = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, self.bn.weight,
                             self.bn.bias)
            x = F.group_norm(x, 3, self.gn.weight, self.gn.bias)
            return F.layer_norm(x, x.shape[-1:])
    round_trip(Functional(), (1, 3, 5, 6))


def test_every_activation_and_identity():
    acts = [nn.ReLU(inplace=True), nn.ReLU6(), nn.LeakyReLU(0.2), nn.ELU(), nn.SELU(), nn.CELU(),
            nn.GELU(), nn.SiLU(), nn.Mish(), nn.Hardswish(), nn.Hardsigmoid(), nn.Hardtanh(),
            nn.Sigmoid(), nn.Tanh(), nn.Softplus(), nn.Identity(), nn.Softmax(dim=1),
            nn.LogSoftmax(dim=-1), nn.Softmax2d()]
    got = round_trip(nn.Sequential(*acts), (1, 3, 4, 4))
    assert got.tokens[0] == "0=act:relu,inplace"
    assert got.tokens[1] == "1=act:relu6"

    class Functional(nn.Module):
        def forward(self, x):
            x = F.relu(x, inplace=True)
            x = torch.sigmoid(F.silu(F.gelu(F.hardswish(x))))
            x = x.relu().tanh()
            x = F.relu6(F.leaky_relu(F.elu(x)))
            x = F.hardtanh(F.hardsigmoid(F.mish(x)), 0.0, 6.0)
            return F.softmax(x, dim=1).log_softmax(1)
    got = round_trip(Functional(), (1, 3, 4, 4))
    assert "hardtanh=act:relu6" in got.tokens


def test_dropouts_are_kept_as_identities():
    class Functional(nn.Module):
        def forward(self, x):
            return F.dropout(F.dropout2d(x, 0.1, training=self.training), 0.3, self.training)
    got = round_trip(nn.Sequential(nn.Dropout(0.2), nn.Dropout2d(0.1),
                                   nn.AlphaDropout(), nn.FeatureAlphaDropout(0.3), Functional(),
                                   nn.Identity()), (1, 3, 4, 4))
    assert kinds(got.tokens) == ["dropout", "dropout2d", "alphadropout",
                                 "featurealphadropout", "dropout2d", "dropout", "act"]
    got = round_trip(nn.Sequential(nn.Dropout1d(0.1), nn.Conv1d(3, 3, 1)), (1, 3, 5))
    assert got.tokens[0] == "0=dropout1d:0.1"
    got = round_trip(nn.Sequential(nn.Dropout3d(), nn.Conv3d(3, 3, 1)), (1, 3, 2, 2, 2))
    assert got.tokens[0] == "0=dropout3d:0.5"


def test_pixel_shuffle_channel_shuffle_and_pad():
    class Shuffle(nn.Module):  # ShuffleNetV2's channel_shuffle
        def forward(self, x):
            n, c, h, w = x.size()
            x = x.view(n, 4, c // 4, h, w)
            x = torch.transpose(x, 1, 2).contiguous()
            return x.view(n, -1, h, w)
    got = round_trip(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.PixelShuffle(2), nn.PixelUnshuffle(2), Shuffle(),
        nn.ChannelShuffle(2), nn.ZeroPad2d((1, 2, 3, 4)), nn.ReflectionPad2d(2),
        nn.ReplicationPad2d((0, 1, 1, 0)), nn.CircularPad2d(1), nn.ConstantPad2d(1, 0.5)),
        (1, 3, 6, 6))
    assert got.tokens[3] == "view_1=shuffle:4"
    assert got.tokens[5] == "5=pad:3:4x1:2"  # y then x, before:after
    round_trip(nn.Sequential(nn.ReflectionPad1d((1, 3)), nn.ConstantPad1d(2, 0.0)), (1, 2, 8))
    round_trip(nn.Sequential(nn.ReplicationPad3d(1), nn.ZeroPad3d((1, 0, 0, 2, 1, 1))),
               (1, 2, 3, 4, 5))

    class Functional(nn.Module):
        def forward(self, x):
            x = F.pad(x, (1, 1))  # the last dim only
            x = F.pad(x, (-1, 0, 2, -1), mode="constant")  # crops
            x = F.pad(x, (1, 1, 1, 1), mode="reflect")
            return F.pixel_shuffle(x, 1)
    got = round_trip(Functional(), (1, 3, 6, 6))
    assert got.tokens[0] == "pad=pad:0x1"


def test_concat_add_and_chunk_graphs():
    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.layers = nn.ModuleList(nn.Conv2d(8 + 4 * i, 4, 3, padding=1) for i in range(3))
            self.proj = nn.Conv2d(20, 20, 1)

        def forward(self, x):
            feats = [self.stem(x)]
            for layer in self.layers:
                feats.append(F.relu(layer(torch.cat(feats, 1))))
            y = torch.cat(feats, dim=1)
            a, b = y.chunk(2, dim=1)
            c = torch.cat((b, a), 1)
            return self.proj(c) + c + y
    got = round_trip(Dense(), (1, 3, 8, 8))
    assert any(t.startswith("chunk=chunk:2,i=0") or "chunk:2,i=1" in t for t in got.tokens)

    class Split(nn.Module):
        def forward(self, x):
            a, b, c = torch.split(x, 4, dim=1)
            return torch.cat([c, a + b], 1)
    round_trip(Split(), (1, 10, 3, 3))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            y += x
            return torch.add(y, y) + 0
    round_trip(Residual(), (2, 4, 5, 5))

    class Shared(nn.Module):  # one conv twice: its params would count twice in a stack
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.relu = nn.ReLU()  # no parameters: reusing it is fine

        def forward(self, x):
            return self.relu(self.conv(self.relu(self.conv(x))))
    with pytest.raises(StackSyntaxError, match=r"nn.Conv2d \(called again: shared parameters"
                                               r"\) \(1×, first at 'conv'\)"):
        import_torch(Shared(), (1, 4, 5, 5))


def test_permute_layernorm_linear_and_layer_scale():
    class Block(nn.Module):  # ConvNeXt's CNBlock, with the F calls torchvision makes
        def __init__(self, c=8):
            super().__init__()
            self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
            self.norm = nn.LayerNorm(c, eps=1e-6)
            self.fc1 = nn.Linear(c, 4 * c)
            self.fc2 = nn.Linear(4 * c, c)
            self.layer_scale = nn.Parameter(torch.ones(c, 1, 1) * 1e-6)

        def forward(self, x):
            y = self.dw(x).permute(0, 2, 3, 1)
            y = self.fc2(F.gelu(self.fc1(self.norm(y))))
            y = self.layer_scale * y.permute(0, 3, 1, 2)
            return x + y
    got = round_trip(Block(), (1, 8, 9, 9))
    assert "mul=layerscale" in got.tokens
    assert got.tokens[1] == "permute=permute:0,2,3,1"

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            x = x.transpose(1, -1)
            return self.fc(x).mean((2, 3))  # over H and the features: not our gap
    with pytest.raises(StackSyntaxError, match=r"Tensor.mean \(on a permuted layout\)"):
        import_torch(Head(), (1, 6, 4, 5))


def test_flattens_means_and_views():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            x = self.conv(x)
            a = x.mean((2, 3))
            b = x.mean([-2, -1], keepdim=True).flatten(1)
            c = F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1)
            return self.fc(a + b + c)
    got = round_trip(M(), (2, 3, 7, 7))
    assert "mean=gap" in got.tokens and "mean=flatten" in got.tokens


def test_one_dimensional_audio_net():
    round_trip(nn.Sequential(
        nn.Conv1d(1, 16, 80, stride=16), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(4),
        nn.Conv1d(16, 32, 3, padding="same"), nn.GroupNorm(4, 32), nn.GELU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 10), nn.LogSoftmax(-1)),
        (4, 1, 8000))


def test_names_are_module_paths_and_function_nodes():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv1(x) + x)
    model = nn.Sequential(nn.Sequential(Block(), Block()), nn.Flatten())
    tokens, shape = import_torch(model, (1, 3, 4, 4))
    assert shape == (1, 48)
    assert tokens == ["0.0.conv1=conv:3,k=3,s=1,p=1,bias=true", "add=add:input",
                      "0.0.relu=act:relu", "save:t1", "0.1.conv1=conv:3,k=3,s=1,p=1,bias=true",
                      "add_1=add:t1", "0.1.relu=act:relu", "1=flatten"]
    rows = convcalc.analyze(tokens, (1, 3, 4, 4)).layers
    assert rows[0].name == "0.0.conv1"


def test_dict_and_tuple_outputs_take_out_and_the_first():
    class Seg(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 5, 3, stride=2, padding=1)
            self.aux = nn.Conv2d(5, 2, 1)

        def forward(self, x):
            y = self.body(x)
            return {"aux": self.aux(y), "out": F.interpolate(y, size=x.shape[-2:])}
    tokens, shape = import_torch(Seg(), (1, 3, 10, 10))
    assert shape == (1, 5, 10, 10)
    assert convcalc.analyze(tokens, (1, 3, 10, 10)).output_shape == shape
    assert tokens[-1] == "interpolate=up:size=input"  # the aux branch stays in the stack

    class Pair(nn.Module):
        def forward(self, x):
            return F.relu(x), torch.sigmoid(x)
    tokens, shape = import_torch(Pair(), (1, 2, 3, 3))
    assert convcalc.analyze(tokens, (1, 2, 3, 3)).output_shape == shape == (1, 2, 3, 3)


def test_export_fallback_where_fx_cannot_trace():
    class Branchy(nn.Module):  # Python control flow on a shape: fx cannot trace it
        def __init__(self):
            super().__init__()
            self.small = nn.Conv2d(3, 8, 3, padding=1)
            self.big = nn.Conv2d(3, 8, 5, stride=2, padding=2)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            y = self.small(x) if x.shape[-1] < 16 else self.big(x)
            y = F.relu(self.bn(y)) + 1 * 0
            y = F.max_pool2d(y, 2, ceil_mode=True)
            y = torch.cat([y, y], 1).chunk(2, 1)[0]
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))
    model = Branchy()
    want = torch_truth(model, (2, 3, 20, 20))
    got = trace_torch(model, (2, 3, 20, 20))
    assert got.tracer == "export"
    result = convcalc.analyze(got.tokens, (2, 3, 20, 20))
    assert (result.output_shape, result.totals.params, result.totals.macs) == \
        (want[0], want[1] - 3 * 3 * 3 * 8 - 8, want[2])  # the unused small conv is not a row
    assert got.tokens[0] == "big=conv:8,k=5,s=2,p=2,bias=true"


def test_meta_device_modules_import_without_memory():
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten(),
                              nn.Linear(64 * 30 * 30, 10))
    tokens, shape = import_torch(model, (1, 3, 32, 32))
    assert shape == (1, 10)
    assert convcalc.analyze(tokens, (1, 3, 32, 32)).totals.params == \
        sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# never silently wrong
# ---------------------------------------------------------------------------

def test_unsupported_ops_fail_once_naming_every_op():
    class Shifty(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.prelu = nn.PReLU()

        def forward(self, x):
            x = torch.roll(self.conv(x), 1, 2)
            x = self.prelu(torch.roll(x, -1, 3))
            return x * 2.0 + x[:, :1]
    with pytest.raises(StackSyntaxError) as e:
        import_torch(Shifty(), (1, 3, 8, 8))
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert msg.startswith("cannot import 5 ops: ")
    assert "torch.roll (2×, first at 'roll')" in msg
    assert "nn.PReLU (1×, first at 'prelu')" in msg
    assert "operator.mul (by a scalar) (1×, first at 'mul')" in msg
    assert "operator.getitem (an index or slice of a tensor) (1×, first at 'getitem" in msg
    assert "\n" not in msg


def test_unsupported_ops_through_the_export_fallback():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            if x.shape[-1] > 2:  # fx cannot trace this; torch.export can
                x = torch.roll(self.conv(x), 1, 2)
            return torch.roll(x, 1, 3) - x
    with pytest.raises(StackSyntaxError) as e:
        import_torch(Branchy(), (1, 3, 4, 4))
    assert str(e.value) == ("cannot import 3 ops: aten.roll (2×, first at 'roll'), "
                            "aten.sub.Tensor (1×, first at 'sub')")


def test_unsupported_shapes_of_known_ops_are_refused():
    class Cat0(nn.Module):
        def forward(self, x):
            return torch.cat([x, x], 0)
    with pytest.raises(StackSyntaxError, match=r"torch.cat \(dim=0\)"):
        import_torch(Cat0(), (1, 2, 3, 3))
    with pytest.raises(StackSyntaxError, match=r"nn.Flatten \(start_dim=2"):
        import_torch(nn.Sequential(nn.Flatten(2)), (1, 2, 3, 3))
    with pytest.raises(StackSyntaxError, match=r"nn.Bilinear"):
        import_torch(_TwoInput(), (1, 4))


class _TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.bil = nn.Bilinear(4, 4, 2)

    def forward(self, x):
        return self.bil(x, x)


# ---------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------

def _classification_models():
    try:
        tv = torchvision_or_skip()
    except pytest.skip.Exception:
        return []
    return [n for n in tv.models.list_models(module=tv.models)
            if not n.startswith(("vit_", "swin_", "maxvit_"))]


@pytest.mark.parametrize("name", _classification_models() or ["torchvision-missing"])
def test_torchvision_classification(name):
    tv = torchvision_or_skip()
    kw = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") \
        else {}
    shape = (1, 3, 299, 299) if name == "inception_v3" else (1, 3, 224, 224)
    model = _build_on_meta(lambda: tv.models.get_model(name, weights=None, **kw))
    round_trip(model, shape, device="meta")


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50",
                                  "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_torchvision_segmentation(name):
    torchvision_or_skip()
    from torchvision.models import segmentation
    kw = {} if name.startswith("lraspp") else {"aux_loss": False}
    model = _build_on_meta(lambda: getattr(segmentation, name)(weights=None,
                                                               weights_backbone=None, **kw))
    got = round_trip(model, (1, 3, 224, 224), device="meta")
    assert any("up:size=" in t for t in got.tokens)


def test_the_module_keeps_its_mode_and_bad_shapes_are_refused():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout())
    model.train()
    model[1].eval()
    import_torch(model, (1, 3, 4, 4))
    assert model.training and model[0].training and not model[1].training
    with pytest.raises(StackSyntaxError, match="input shape 1x0x4"):
        import_torch(model, (1, 0, 4))
