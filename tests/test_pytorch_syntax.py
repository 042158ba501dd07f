"""PyTorch's own spellings in the layer language (issue 13 item 7): tuples and
lists as per-dim values, quoted strings, F.pad's tuple order, and the class
names' padding rules (PyTorch refuses padding='same' at a stride above 1;
convcalc's own ``p=same`` is TensorFlow's SAME, and --explain says so).

Shapes are checked against the formula by hand and, where torch is
installed, against the PyTorch module built from the same arguments.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from convcalc import StackSyntaxError, analyze, parse_token
from convcalc.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def out_size(i, k, s=1, p=0, d=1):
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


# token with PyTorch spellings, the same layer in convcalc's own spelling
SAME_AS = [
    ("conv:8,k=(3,3)", "conv:8,k=3x3"),
    ("conv:8,k=[3,5]", "conv:8,k=3x5"),
    ("conv:8,kernel_size=(3,5),stride=(2,1),padding=(1,2)", "conv:8,k=3x5,s=2x1,p=1x2"),
    ("conv:8,k=(3,)", "conv:8,k=3"),
    ("conv:8,k=3,padding='same'", "conv:8,k=3,p=same"),
    ('conv:8,k=3,padding="valid"', "conv:8,k=3,p=valid"),
    ("maxpool:(2,2)", "maxpool:2x2"),
    ("maxpool:k=(3,3),s=(2,2),p=(1,1),ceil_mode=True", "maxpool:3x3,s=2x2,p=1x1,ceil"),
    ("up:size=(30,40)", "up:size=30x40"),
    ("up:scale_factor=(2,3),mode='bilinear',align_corners=False",
     "up:2x3,mode=bilinear"),
    ("tconv:4,k=(2,2),s=(2,2),output_padding=(1,0)", "tconv:4,k=2x2,s=2x2,op=1x0"),
    ("permute:(0,2,3,1)", "permute:0,2,3,1"),
]


@pytest.mark.parametrize("torchish, own", SAME_AS)
def test_pytorch_spelling_means_the_same_layer(torchish, own):
    a = parse_token(torchish, 1)
    b = parse_token(own, 1)
    assert (a.kind, a.args) == (b.kind, b.args)
    shape = (1, 3, 20, 20)
    assert analyze([torchish], shape).output_shape == analyze([own], shape).output_shape


def test_tuple_shapes_by_hand():
    a = analyze(["conv:8,k=(3,5),s=(2,1),p=(1,2)"], (1, 3, 20, 20))
    assert a.output_shape == (1, 8, out_size(20, 3, 2, 1), out_size(20, 5, 1, 2))
    assert a.output_shape == (1, 8, 10, 20)
    assert analyze(["up:size=(30,40)"], (1, 3, 20, 20)).output_shape == (1, 3, 30, 40)


def test_pad_tuple_is_fpad_order_last_dim_first():
    # F.pad(x, (1, 2, 3, 4)): x (the last dim) gets 1 before, 2 after; y 3 and 4
    a = analyze(["pad:(1,2,3,4)"], (1, 3, 20, 20))
    assert a.output_shape == (1, 3, 20 + 3 + 4, 20 + 1 + 2)
    assert a.layers[0].padding == ((3, 4), (1, 2))
    # F.pad(x, (1, 2)) on a 2-D input pads only x
    a = analyze(["pad:(1,2)"], (1, 3, 20, 20))
    assert a.output_shape == (1, 3, 20, 23)
    assert a.layers[0].padding == ((0, 0), (1, 2))
    # negative values crop, as in F.pad
    assert analyze(["pad:(-1,-1,0,0)"], (1, 3, 8, 8)).output_shape == (1, 3, 8, 6)


@pytest.mark.parametrize("token, words", [
    ("pad:(1,2,3)", "pairs"),
    ("conv:8,k=(3,3", "not closed"),
    ("conv:8,k=(3,(3))", "tuple inside a tuple"),
    ("conv:8,k=3)", "closes nothing"),
    ("conv:8,k=(3,,3)", "empty"),
    ("conv:8,k=(3,3]", "ends where it began"),
])
def test_malformed_tuples_are_syntax_errors(token, words):
    with pytest.raises(StackSyntaxError, match=words.replace("(", r"\(")):
        parse_token(token, 1)
    r = run("shape", "-i", "1x3x20x20", token)
    assert r.exit_code == 2
    assert words in r.stderr and "Traceback" not in r.output


def test_pad_tuple_longer_than_the_rank_is_refused():
    # PyTorch: "Padding length too large"
    r = run("shape", "-i", "1x3x20x20", "pad:(1,1,1,1,1,1)")
    assert r.exit_code == 3
    assert "pads 3 dims but the input has 2 spatial dims" in r.stderr


def test_class_names_refuse_same_at_a_stride_as_pytorch_does():
    r = run("shape", "-i", "1x3x20x20", "Conv2d:8,k=3,s=2,padding='same'")
    assert r.exit_code == 2
    assert "refuses padding='same' with stride 2" in r.stderr
    assert "TensorFlow" in r.stderr
    r = run("shape", "-i", "1x3x20x20", "Conv2d:8,k=3,p=full")
    assert r.exit_code == 2 and "'valid' or 'same'" in r.stderr
    r = run("shape", "-i", "1x3x20x20", "ConvTranspose2d:8,k=3,p=same")
    assert r.exit_code == 2 and "no padding mode" in r.stderr
    # stride 1 is PyTorch's own 'same': total d·(k−1) = 2 → 1 before, 1 after
    r = run("shape", "-i", "1x3x20x20", "Conv2d:8,k=3,p=same", "--format", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["layers"][0]["padding"] == [[1, 1], [1, 1]]


def test_explain_says_strided_same_is_tensorflows():
    r = run("shape", "-i", "1x3x20x20", "conv:8,k=3,s=2,p=same", "--explain")
    assert r.exit_code == 0
    assert "p=same at stride 2 is TensorFlow's SAME" in r.stdout
    assert "refuses strides other than 1" in r.stdout
    r = run("shape", "-i", "1x3x20x20", "conv:8,k=3,p=same", "--explain")
    assert "TensorFlow" not in r.stdout


def test_against_pytorch_modules():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    x = torch.zeros(1, 3, 20, 20)
    cases = [
        ("Conv2d:8,kernel_size=(3,5),stride=(2,1),padding=(1,2)",
         nn.Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))),
        ("Conv2d:8,k=(2,4),padding='same'", nn.Conv2d(3, 8, (2, 4), padding="same")),
        ("MaxPool2d:k=(3,3),s=(2,2),ceil_mode=True", nn.MaxPool2d((3, 3), (2, 2), ceil_mode=True)),
        ("ZeroPad2d:(1,2,3,4)", nn.ZeroPad2d((1, 2, 3, 4))),
        ("Upsample:size=(30,40),mode='nearest'", nn.Upsample(size=(30, 40))),
        ("ConvTranspose2d:4,k=(3,2),s=(2,3),p=(1,0),output_padding=(1,2)",
         nn.ConvTranspose2d(3, 4, (3, 2), (2, 3), (1, 0), output_padding=(1, 2))),
    ]
    for token, module in cases:
        a = analyze([token], (1, 3, 20, 20))
        assert a.output_shape == tuple(module(x).shape), token
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        nn.Conv2d(3, 8, 3, stride=2, padding="same")
