"""Imported models keep exact receptive fields: ``rf --at`` on a U-Net-like
network with transposed convs, bilinear upsampling and skips, imported from
PyTorch and from its ONNX export, equals the bounding box of PyTorch autograd's
nonzero gradient (float64, random weights: nothing cancels to exactly zero)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import convcalc  # noqa: E402
from convcalc.analysis import region_at  # noqa: E402


class TinyUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
        self.enc3 = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.up3 = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
        self.dec2 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1, dilation=1), nn.ReLU())
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.dec1 = nn.Conv2d(12, 2, 3, padding=1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self.up3(e3), e2], 1))
        return self.dec1(torch.cat([self.up2(d2), e1], 1))


POSITIONS = [(0, 0), (5, 9), (12, 3), (15, 15), (7, 8)]


def autograd_box(model, shape, pos):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    y = model(x)
    y[0, :, pos[0], pos[1]].sum().backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    return tuple((int(nz[:, d].min()), int(nz[:, d].max())) for d in range(2))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TinyUNet().double().eval()


def check(a, model, shape):
    assert a.output_shape == (1, 2, 16, 16)
    for pos in POSITIONS:
        assert region_at(a, pos).region == autograd_box(model, shape, pos), pos


def test_rf_at_of_a_torch_import_equals_autograd(model):
    check(convcalc.from_torch(model, (1, 1, 16, 16)), model, (1, 1, 16, 16))


def test_rf_at_of_an_onnx_export_equals_autograd(model, tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "unet.onnx"
    torch.onnx.export(model.float(), torch.zeros(1, 1, 16, 16), str(path), dynamo=False,
                      opset_version=17)
    model.double()
    a = convcalc.from_onnx(str(path))
    check(a, model, (1, 1, 16, 16))
    # the ONNX file keeps the names of the module paths
    assert any(r.name and "up3" in r.name for r in a.layers)
