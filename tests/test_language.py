"""The layer language of SPEC.md §3, table by table.

Parsing only: token text -> LayerSpec (kinds, aliases, keys and defaults,
per-dim values, padding modes, bare booleans, PyTorch key names), stack file
text, input shapes, ``@NAME`` references, and every malformed form with the
error it must give (type and exit code, 1-based layer index, the token in the
message, and a keyword saying what is wrong).
"""
from __future__ import annotations

import re

import pytest

import convcalc
from convcalc import ConvcalcError, ShapeError, StackSyntaxError, parse_shape, parse_stack, parse_token
from convcalc.language import default_input, split_stack_text


# ---------------------------------------------------------------------------
# kinds and aliases
# ---------------------------------------------------------------------------

KIND_CASES = [
    # token, kind after alias resolution, fixed args it implies
    ("conv:16,k=3", "conv", {}),
    ("tconv:16,k=3", "tconv", {}),
    ("deconv:16,k=3", "tconv", {}),
    ("up:2", "up", {}),
    ("upsample:2", "up", {}),
    ("maxpool:2", "maxpool", {}),
    ("avgpool:2", "avgpool", {}),
    ("aavgpool:7", "aavgpool", {}),
    ("amaxpool:7", "amaxpool", {}),
    ("gap", "gap", {}),
    ("sepconv:32,k=3", "sepconv", {}),
    ("bn", "bn", {}),
    ("relu", "act", {"name": "relu"}),
    ("gelu", "act", {"name": "gelu"}),
    ("sigmoid", "act", {"name": "sigmoid"}),
    ("tanh", "act", {"name": "tanh"}),
    ("act:silu", "act", {"name": "silu"}),
    ("act:gelu", "act", {"name": "gelu"}),
    ("act:name=tanh", "act", {"name": "tanh"}),
    ("dropout", "dropout", {}),
    ("flatten", "flatten", {}),
    ("linear:10", "linear", {}),
    ("fc:10", "linear", {}),
]


@pytest.mark.parametrize("text,kind,fixed", KIND_CASES, ids=[c[0] for c in KIND_CASES])
def test_kinds_and_aliases(text, kind, fixed):
    spec = parse_token(text, 1)
    assert spec.kind == kind
    assert spec.text == text
    assert spec.index == 1
    for key, value in fixed.items():
        assert spec[key] == value


def test_alias_parses_like_its_kind():
    assert parse_token("deconv:8,k=4,s=2", 1).args == parse_token("tconv:8,k=4,s=2", 1).args
    assert parse_token("upsample:scale=2", 1).args == parse_token("up:2", 1).args
    assert parse_token("fc:10,bias=false", 1).args == parse_token("linear:10,bias=false", 1).args


def test_index_is_kept():
    assert parse_token("relu", 7).index == 7
    specs = parse_stack(["conv:8,k=3", "relu", "maxpool:2"])
    assert [s.index for s in specs] == [1, 2, 3]
    assert [s.kind for s in specs] == ["conv", "act", "maxpool"]


# ---------------------------------------------------------------------------
# every key with its default
# ---------------------------------------------------------------------------

DEFAULT_CASES = [
    # conv: out positional, k required, s=1, p=0, d=1, g=1, bias=true, pm=zeros
    ("conv:16,k=3", "out", 16),
    ("conv:16,k=3", "k", (3,)),
    ("conv:16,k=3", "s", (1,)),
    ("conv:16,k=3", "p", ((0, 0),)),
    ("conv:16,k=3", "d", (1,)),
    ("conv:16,k=3", "g", 1),
    ("conv:16,k=3", "bias", True),
    ("conv:16,k=3", "pm", "zeros"),
    # tconv: as conv without pm, plus op and size
    ("tconv:16,k=3", "out", 16),
    ("tconv:16,k=3", "k", (3,)),
    ("tconv:16,k=3", "s", (1,)),
    ("tconv:16,k=3", "p", ((0, 0),)),
    ("tconv:16,k=3", "d", (1,)),
    ("tconv:16,k=3", "g", 1),
    ("tconv:16,k=3", "bias", True),
    ("tconv:16,k=3", "size", None),
    # up: scale or size, mode=nearest, align_corners=false
    ("up:2", "scale", (2.0,)),
    ("up:2", "size", None),
    ("up:2", "mode", "nearest"),
    ("up:2", "align_corners", False),
    ("up:size=8", "size", (8,)),
    ("up:size=8", "scale", None),
    # maxpool: k positional, s=k (absent), p=0, d=1, ceil=false
    ("maxpool:3", "k", (3,)),
    ("maxpool:3", "p", ((0, 0),)),
    ("maxpool:3", "d", (1,)),
    ("maxpool:3", "ceil", False),
    # avgpool: k, s=k, p=0, ceil=false, count_include_pad=true
    ("avgpool:2", "k", (2,)),
    ("avgpool:2", "p", ((0, 0),)),
    ("avgpool:2", "ceil", False),
    ("avgpool:2", "count_include_pad", True),
    # adaptive pools: output size positional
    ("aavgpool:7", "size", (7,)),
    ("amaxpool:4x2", "size", (4, 2)),
    # sepconv: conv keys, depthwise multiplier 1
    ("sepconv:32,k=3", "out", 32),
    ("sepconv:32,k=3", "k", (3,)),
    ("sepconv:32,k=3", "s", (1,)),
    ("sepconv:32,k=3", "p", ((0, 0),)),
    ("sepconv:32,k=3", "d", (1,)),
    ("sepconv:32,k=3", "bias", True),
    ("sepconv:32,k=3", "pm", "zeros"),
    ("sepconv:32,k=3", "mult", 1),
    # bn
    ("bn", "affine", True),
    ("bn", "eps", 1e-5),
    ("bn", "momentum", 0.1),
    # activations: inplace=false
    ("relu", "inplace", False),
    ("gelu", "inplace", False),
    ("act:silu", "inplace", False),
    # dropout: p=0.5
    ("dropout", "p", 0.5),
    ("dropout", "inplace", False),
    ("dropout:0.1", "p", 0.1),
    # linear: out positional, bias=true
    ("linear:10", "out", 10),
    ("linear:10", "bias", True),
    ("fc:10", "bias", True),
]


@pytest.mark.parametrize("text,key,value", DEFAULT_CASES,
                         ids=[f"{c[0]}[{c[1]}]" for c in DEFAULT_CASES])
def test_defaults(text, key, value):
    assert parse_token(text, 1)[key] == value


def test_pool_stride_defaults_to_kernel():
    # absent (None) means "= k"; either representation is the documented default
    assert parse_token("maxpool:3", 1)["s"] in (None, (3,))
    assert parse_token("avgpool:2", 1)["s"] in (None, (2,))


def test_tconv_output_padding_defaults_to_zero():
    assert parse_token("tconv:16,k=3", 1)["op"] in (None, 0, (0,))


def test_given_keys_are_recorded():
    spec = parse_token("conv:16,k=3,s=2", 1)
    assert set(spec.given) == {"out", "k", "s"}


EXPLICIT_CASES = [
    ("conv:16,k=3,s=2,p=1,d=2,g=4,bias=false,pm=reflect",
     {"out": 16, "k": (3,), "s": (2,), "p": ((1, 1),), "d": (2,), "g": 4, "bias": False,
      "pm": "reflect"}),
    ("conv:16,k=3,pm=replicate", {"pm": "replicate"}),
    ("conv:16,k=3,pm=circular", {"pm": "circular"}),
    ("tconv:8,k=4,s=2,p=1,op=1,d=1,g=2,bias=false",
     {"out": 8, "k": (4,), "s": (2,), "p": ((1, 1),), "op": (1,), "g": 2, "bias": False}),
    ("tconv:8,k=3,s=2,p=1,size=32", {"size": (32,)}),
    ("up:scale=2x1.5,mode=bilinear", {"scale": (2.0, 1.5), "mode": "bilinear"}),
    ("up:0.5", {"scale": (0.5,)}),
    ("up:2,mode=nearest-exact", {"mode": "nearest-exact"}),
    ("up:2,mode=linear", {"mode": "linear"}),
    ("up:2,mode=bicubic", {"mode": "bicubic"}),
    ("up:2,mode=trilinear", {"mode": "trilinear"}),
    ("up:2,mode=area", {"mode": "area"}),
    ("maxpool:k=3,s=2,p=1,d=2,ceil=true", {"k": (3,), "s": (2,), "p": ((1, 1),), "d": (2,),
                                          "ceil": True}),
    ("avgpool:3,s=1,p=1,count_include_pad=false", {"s": (1,), "count_include_pad": False}),
    ("sepconv:32,k=3,mult=2,bias=false", {"mult": 2, "bias": False}),
    ("bn:affine=false", {"affine": False}),
    ("dropout:p=0.25", {"p": 0.25}),
    ("dropout:0", {"p": 0.0}),
    ("dropout:1", {"p": 1.0}),
    ("linear:out=5,bias=0", {"out": 5, "bias": False}),
    ("conv:4,k=3,bias=yes", {"bias": True}),
    ("conv:4,k=3,bias=off", {"bias": False}),
    ("conv:4,k=3,bias=TRUE", {"bias": True}),
    ("conv:4,k=+3", {"k": (3,)}),
]


@pytest.mark.parametrize("text,expected", EXPLICIT_CASES, ids=[c[0] for c in EXPLICIT_CASES])
def test_explicit_values(text, expected):
    spec = parse_token(text, 1)
    for key, value in expected.items():
        assert spec[key] == value, key


# ---------------------------------------------------------------------------
# per-dim tuples, asymmetric padding, padding modes
# ---------------------------------------------------------------------------

PERDIM_CASES = [
    ("conv:8,k=3x5", "k", (3, 5)),
    ("conv:8,k=3x5x7", "k", (3, 5, 7)),
    ("conv:8,k=3,s=2x1", "s", (2, 1)),
    ("conv:8,k=3,d=1x2", "d", (1, 2)),
    ("conv:8,k=3,p=1x2", "p", ((1, 1), (2, 2))),
    ("conv:8,k=3,p=2", "p", ((2, 2),)),
    ("conv:8,k=3,p=0:1x0:1", "p", ((0, 1), (0, 1))),
    ("conv:8,k=3,p=1:2", "p", ((1, 2),)),
    ("conv:8,k=3,p=1:2x3", "p", ((1, 2), (3, 3))),
    ("conv:8,k=3,p=valid", "p", "valid"),
    ("conv:8,k=3,p=same", "p", "same"),
    ("conv:8,k=3,p=same_lower", "p", "same_lower"),
    ("conv:8,k=3,p=full", "p", "full"),
    ("maxpool:3,p=same", "p", "same"),
    ("avgpool:2x3", "k", (2, 3)),
    ("tconv:8,k=4,s=2,op=1x0", "op", (1, 0)),
    ("up:size=64x48", "size", (64, 48)),
    ("aavgpool:1x1", "size", (1, 1)),
]


@pytest.mark.parametrize("text,key,value", PERDIM_CASES, ids=[c[0] for c in PERDIM_CASES])
def test_per_dim_values_and_padding(text, key, value):
    assert parse_token(text, 1)[key] == value


# ---------------------------------------------------------------------------
# bare boolean keys and PyTorch key names
# ---------------------------------------------------------------------------

BARE_CASES = [
    ("maxpool:3,s=2,ceil", "ceil", True),
    ("maxpool:k=3,s=2,ceil", "ceil", True),
    ("avgpool:3,ceil", "ceil", True),
    ("avgpool:3,count_include_pad", "count_include_pad", True),
    ("up:2,mode=bilinear,align_corners", "align_corners", True),
    ("relu:inplace", "inplace", True),
    ("gelu:inplace", "inplace", True),
    ("act:gelu,inplace", "inplace", True),
    ("dropout:0.2,inplace", "inplace", True),
    ("conv:8,k=3,bias", "bias", True),
    ("maxpool:3,ceil_mode", "ceil", True),
    ("bn:affine", "affine", True),
]


@pytest.mark.parametrize("text,key,value", BARE_CASES, ids=[c[0] for c in BARE_CASES])
def test_bare_boolean_keys(text, key, value):
    assert parse_token(text, 1)[key] == value


def test_bare_positional_act_name_is_not_a_boolean():
    # relu:inplace -> the bare key, not a positional activation name "inplace"
    spec = parse_token("relu:inplace", 1)
    assert spec["name"] == "relu" and spec["inplace"] is True


TORCH_NAME_CASES = [
    ("conv:out_channels=16,kernel_size=3", {"out": 16, "k": (3,)}),
    ("conv:16,kernel=3", {"k": (3,)}),
    ("conv:16,kernel_size=3x5,stride=2,padding=1,dilation=2,groups=2,padding_mode=reflect",
     {"k": (3, 5), "s": (2,), "p": ((1, 1),), "d": (2,), "g": 2, "pm": "reflect"}),
    ("tconv:8,kernel_size=4,stride=2,padding=1,output_padding=1",
     {"k": (4,), "s": (2,), "p": ((1, 1),), "op": (1,)}),
    ("up:scale_factor=2", {"scale": (2.0,)}),
    ("up:output_size=8x8", {"size": (8, 8)}),
    ("maxpool:kernel_size=3,stride=2,padding=1,ceil_mode=true",
     {"k": (3,), "s": (2,), "p": ((1, 1),), "ceil": True}),
    ("aavgpool:output_size=7", {"size": (7,)}),
    ("linear:out_features=10", {"out": 10}),
    ("fc:out_features=10,bias=false", {"out": 10, "bias": False}),
]


@pytest.mark.parametrize("text,expected", TORCH_NAME_CASES, ids=[c[0] for c in TORCH_NAME_CASES])
def test_pytorch_key_names(text, expected):
    spec = parse_token(text, 1)
    for key, value in expected.items():
        assert spec[key] == value, key


# ---------------------------------------------------------------------------
# stack file text, input shapes, @NAME
# ---------------------------------------------------------------------------

STACK_TEXT = """\
# A tiny test net
# input: 1x3x32x32

conv:8,k=3,p=1   # first conv
relu
# a comment between layers
maxpool:2  conv:16,k=3
   flatten
linear:10# no space before the comment
"""


def test_split_stack_text():
    st = split_stack_text(STACK_TEXT)
    assert st.tokens == ("conv:8,k=3,p=1", "relu", "maxpool:2", "conv:16,k=3", "flatten",
                         "linear:10")
    assert st.input_shape == (1, 3, 32, 32)
    assert st.description == "A tiny test net"


def test_split_stack_text_without_header():
    st = split_stack_text("conv:8,k=3\n\nrelu\n")
    assert st.tokens == ("conv:8,k=3", "relu")
    assert st.input_shape is None
    assert st.description == ""


def test_split_stack_text_directive_variants():
    assert split_stack_text("#input:1x1x28x28\nrelu").input_shape == (1, 1, 28, 28)
    assert split_stack_text("#  input :  8x1x16000\nrelu").input_shape == (8, 1, 16000)


def test_split_stack_text_bad_directive():
    with pytest.raises(StackSyntaxError) as ei:
        split_stack_text("# input: 1xQ\nrelu", "net.stack")
    assert ei.value.exit_code == 2
    assert "net.stack" in str(ei.value)
    assert "1xQ" in str(ei.value)


def test_comment_after_tokens_is_not_the_description():
    st = split_stack_text("relu  # not a description\n# nor this\n")
    assert st.description == ""


SHAPE_OK = [
    ("1x3", (1, 3)),
    ("8x1x16000", (8, 1, 16000)),
    ("1x3x224x224", (1, 3, 224, 224)),
    ("1x1x32x64x64", (1, 1, 32, 64, 64)),
    ("1,3,8,8", (1, 3, 8, 8)),
    ((2, 3, 4), (2, 3, 4)),
    ([1, 3, 5, 5], (1, 3, 5, 5)),
]


@pytest.mark.parametrize("text,dims", SHAPE_OK, ids=[str(c[0]) for c in SHAPE_OK])
def test_parse_shape_valid(text, dims):
    assert parse_shape(text) == dims


SHAPE_BAD = [
    ("abc", r"whole numbers"),
    ("1x0x4", r"zero"),
    ("1", r"dims"),
    ("1x1x2x2x2x2", r"dims"),
    ("", r"whole numbers"),
    ("1x3x", r"whole numbers"),
    ("1x-3x4", r"whole numbers"),
    ("1x3x2.5", r"whole numbers"),
    ((1, 0, 4), r"zero"),
    ((1, 3, 4.0), r"whole numbers"),
    ("1x3x" + "9" * 30, r"larger"),
]


@pytest.mark.parametrize("text,keyword", SHAPE_BAD, ids=[str(c[0])[:20] for c in SHAPE_BAD])
def test_parse_shape_invalid(text, keyword):
    with pytest.raises(StackSyntaxError) as ei:
        parse_shape(text)
    assert ei.value.exit_code == 2
    assert re.search(keyword, str(ei.value), re.I), str(ei.value)


def test_analyze_rejects_bad_input_shape():
    with pytest.raises(StackSyntaxError) as ei:
        convcalc.analyze(["relu"], "1x0x4")
    assert ei.value.exit_code == 2


MNIST_TOKENS = ["conv:10,k=5", "maxpool:2", "relu", "conv:20,k=5", "dropout", "maxpool:2",
                "relu", "flatten", "linear:50", "relu", "dropout", "linear:10"]


def test_at_builtin_model():
    specs = parse_stack(["@mnist"])
    assert [s.text for s in specs] == MNIST_TOKENS
    assert [s.index for s in specs] == list(range(1, 13))
    assert default_input(["@mnist"]) == (1, 1, 28, 28)
    assert "mnist" in convcalc.builtin_models()


def test_at_builtin_model_in_the_middle():
    specs = parse_stack(["bn", "@mnist", "relu"])
    assert len(specs) == 14
    assert specs[0].text == "bn" and specs[1].text == "conv:10,k=5"
    assert specs[-1].text == "relu" and specs[-1].index == 14


def test_at_path(tmp_path):
    f = tmp_path / "tiny.stack"
    f.write_text("# tiny\n# input: 1x3x16x16\nconv:4,k=3  # c\nrelu\n\ngap flatten linear:2\n")
    specs = parse_stack([f"@{f}"])
    assert [s.text for s in specs] == ["conv:4,k=3", "relu", "gap", "flatten", "linear:2"]
    assert default_input([f"@{f}"]) == (1, 3, 16, 16)
    r = convcalc.analyze([f"@{f}"], (1, 3, 16, 16))
    assert r.output_shape == (1, 2)


def test_at_path_nested(tmp_path):
    inner = tmp_path / "inner.stack"
    inner.write_text("conv:4,k=3\nrelu\n")
    outer = tmp_path / "outer.stack"
    outer.write_text(f"@{inner}\nmaxpool:2\n")
    assert [s.text for s in parse_stack([f"@{outer}"])] == ["conv:4,k=3", "relu", "maxpool:2"]


def test_at_path_error_index_counts_expanded_tokens(tmp_path):
    f = tmp_path / "bad.stack"
    f.write_text("relu\nconv:8,k=3,q=1\n")
    with pytest.raises(StackSyntaxError) as ei:
        parse_stack(["bn", "bn", f"@{f}"])
    e = ei.value
    # bn=1, bn=2, relu=3, the bad conv=4
    assert e.layer == 4
    assert e.token == "conv:8,k=3,q=1"
    assert "conv:8,k=3,q=1" in str(e)


def test_at_unknown_name():
    with pytest.raises(StackSyntaxError) as ei:
        parse_stack(["@mnsit"])
    assert ei.value.exit_code == 2
    assert "mnsit" in str(ei.value)
    assert re.search(r"did you mean 'mnist'", str(ei.value))


def test_at_self_loop(tmp_path):
    f = tmp_path / "loop.stack"
    f.write_text(f"relu @{f}\n")
    with pytest.raises(StackSyntaxError) as ei:
        parse_stack([f"@{f}"])
    assert re.search(r"nested|loop", str(ei.value))


def test_empty_stack():
    with pytest.raises(StackSyntaxError) as ei:
        parse_stack([])
    assert re.search(r"empty", str(ei.value))


# ---------------------------------------------------------------------------
# malformed tokens: type, exit code, layer index, token text, keyword
# ---------------------------------------------------------------------------

# (bad token, keyword the message must contain); every one is exit 2: the
# text itself is wrong, or the value is one no input could make valid.
SYNTAX_ERRORS = [
    # unknown kind, with a did-you-mean
    ("cnov:8,k=3", r"unknown layer kind.*did you mean 'conv'"),
    ("maxpol:2", r"unknown layer kind.*did you mean 'maxpool'"),
    ("dropot", r"unknown layer kind.*did you mean 'dropout'"),
    ("pool:2", r"unknown layer kind"),
    # unknown key
    ("conv:8,k=3,q=1", r"unknown key 'q'"),
    ("maxpool:2,g=2", r"unknown key 'g'"),
    ("relu:name=gelu", r"unknown key 'name'"),
    ("conv:8,k=3,op=1", r"unknown key 'op'"),
    ("linear:10,k=3", r"unknown key 'k'"),
    ("avgpool:2,d=2", r"unknown key 'd'"),
    ("gap:size=1", r"no arguments|unknown key"),
    # duplicate key (also through an alias or the positional)
    ("conv:8,k=3,k=5", r"twice"),
    ("conv:8,k=3,kernel_size=5", r"twice"),
    ("conv:8,k=3,out=4", r"twice"),
    ("maxpool:2,k=3", r"twice"),
    ("maxpool:2,ceil,ceil=false", r"twice"),
    # empty value, empty argument, nothing after ':'
    ("conv:8,k=", r"needs a value"),
    ("conv:8,k=3,s=", r"needs a value"),
    ("conv:8,,k=3", r"empty argument"),
    ("conv:8,k=3,", r"empty argument"),
    ("conv:", r"nothing after"),
    # positional on a kind without one, a second positional
    ("bn:3", r"no positional"),
    ("flatten:2", r"no positional|no arguments"),
    ("gap:1", r"no positional|no arguments"),
    ("conv:8,3", r"only the first argument may be positional"),
    ("maxpool:2,2", r"only the first argument may be positional"),
    # floats where ints belong
    ("conv:8,k=2.5", r"whole number"),
    ("conv:8.5,k=3", r"whole number"),
    ("maxpool:2.5", r"whole number"),
    ("conv:8,k=3,p=0.5", r"whole number"),
    ("linear:1e3", r"whole number"),
    ("conv:8,k=3x2.5", r"whole number"),
    # negative numbers (and zero where at least 1 is needed)
    ("conv:-8,k=3", r"at least 1"),
    ("conv:8,k=-3", r"at least 1"),
    ("conv:8,k=3,s=0", r"at least 1"),
    ("conv:8,k=3,p=-1", r"at least 0"),
    ("conv:8,k=3,p=-1:1", r"at least 0"),
    ("tconv:8,k=3,s=2,op=-1", r"at least 0"),
    ("aavgpool:0", r"at least 1"),
    # huge numbers
    ("conv:8,k=" + str(10 ** 30), r"larger than"),
    (f"linear:{10 ** 30}", r"larger than"),
    # nan / inf / non-positive scales
    ("up:nan", r"finite"),
    ("up:scale=inf", r"finite"),
    ("up:scale=2xnan", r"finite"),
    ("up:1e400", r"finite"),
    ("up:-2", r"positive"),
    ("up:0", r"positive"),
    ("up:two", r"number"),
    # fractions
    ("dropout:1.5", r"between 0 and 1"),
    ("dropout:-0.1", r"between 0 and 1"),
    ("dropout:nan", r"finite"),
    # up: exactly one of scale and size; align_corners only when interpolating
    ("up:2,size=4", r"exactly one"),
    ("up", r"exactly one"),
    ("up:mode=bilinear", r"exactly one"),
    ("up:2,align_corners", r"align_corners"),
    ("up:2,mode=area,align_corners=true", r"align_corners"),
    ("up:2,mode=nearest-exact,align_corners", r"align_corners"),
    ("up:2,mode=cubic", r"unknown value.*did you mean 'bicubic'"),
    # tconv: op >= max(s, d); size and op together
    ("tconv:8,k=3,s=2,op=2", r"output padding"),
    ("tconv:8,k=3,op=1", r"output padding"),
    ("tconv:8,k=3,s=2,d=3,op=3", r"output padding"),
    ("tconv:8,k=3,s=2,op=1,size=16", r"size.*op|op.*size"),
    # groups must divide the out channels
    ("conv:10,k=3,g=3", r"divisible"),
    ("tconv:10,k=3,g=4", r"divisible"),
    # pool padding more than half the kernel
    ("maxpool:k=3,p=2", r"half"),
    ("maxpool:2,p=2", r"half"),
    ("avgpool:3,p=2", r"half"),
    ("maxpool:3,d=2,p=2", r"half"),
    # required keys
    ("conv:8", r"k is required"),
    ("conv:k=3", r"out is required"),
    ("linear", r"out is required"),
    ("maxpool", r"k is required"),
    ("aavgpool", r"size is required"),
    # bad words
    ("conv:8,k=3,bias=maybe", r"true or false"),
    ("maxpool:3,ceil=maybe", r"true or false"),
    ("conv:8,k=3,pm=mirror", r"unknown value 'mirror'"),
    ("conv:8,k=3,p=sme", r"unknown padding.*did you mean 'same'"),
    ("act:swish", r"unknown value 'swish'"),
    ("conv:8,k=3x", r"joined by 'x'"),
    ("conv:8,k=x3", r"joined by 'x'"),
]


def _analyze_with_bad_at(bad: str, position: int):
    """Put ``bad`` at 1-based ``position`` of a valid 4-token stack and analyze."""
    good = ["conv:8,k=3,p=1", "relu", "maxpool:2", "bn"]
    tokens = good[:position - 1] + [bad] + good[position - 1:3]
    return tokens, lambda: convcalc.analyze(tokens, (1, 3, 32, 32))


@pytest.mark.parametrize("bad,keyword", SYNTAX_ERRORS, ids=[c[0][:40] for c in SYNTAX_ERRORS])
def test_syntax_errors(bad, keyword):
    position = 1 + sum(map(ord, bad)) % 4  # spread the bad token over positions 1..4
    tokens, run = _analyze_with_bad_at(bad, position)
    assert tokens[position - 1] == bad and len(tokens) == 4
    with pytest.raises(ConvcalcError) as ei:
        run()
    e = ei.value
    assert isinstance(e, StackSyntaxError), type(e)
    assert e.exit_code == 2
    assert e.layer == position
    assert e.token == bad
    assert bad in str(e)
    assert re.search(keyword, str(e), re.I), str(e)


@pytest.mark.parametrize("bad,keyword", SYNTAX_ERRORS[:30], ids=[c[0][:40] for c in SYNTAX_ERRORS[:30]])
def test_syntax_errors_from_parse_token(bad, keyword):
    # the pure parser errors carry the index given to parse_token
    with pytest.raises(StackSyntaxError) as ei:
        parse_token(bad, 5)
    assert ei.value.layer == 5 and ei.value.token == bad
    assert re.search(keyword, str(ei.value), re.I)


def test_error_message_shape():
    with pytest.raises(StackSyntaxError) as ei:
        convcalc.analyze(["relu", "cnov:8,k=3"], (1, 3, 8, 8))
    msg = str(ei.value)
    assert msg.startswith("layer 2 (cnov:8,k=3):")
    assert len(msg.strip().splitlines()) <= 2


def test_unknown_dtype():
    with pytest.raises(StackSyntaxError) as ei:
        convcalc.analyze(["relu"], (1, 3, 8, 8), dtype="float13")
    assert ei.value.exit_code == 2


def test_token_with_spaces_or_empty():
    for bad in ("", " relu", "relu "):
        with pytest.raises(StackSyntaxError) as ei:
            parse_token(bad, 1)
        assert ei.value.exit_code == 2 and ei.value.layer == 1


# ---------------------------------------------------------------------------
# engine bugs found while writing these tests (fixed)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["conv:8,k=3,ceil", "linear:10,inplace"])
def test_bug_bare_foreign_boolean_is_unknown_key(bad):
    with pytest.raises(StackSyntaxError) as ei:
        parse_token(bad, 1)
    assert re.search(r"unknown key", str(ei.value))


@pytest.mark.parametrize("bad", ["relu:gelu", "sigmoid:0.5"])
def test_bug_positional_on_activation_alias(bad):
    with pytest.raises(StackSyntaxError) as ei:
        parse_token(bad, 1)
    assert re.search(r"positional|no arguments", str(ei.value))
    assert "'name'" not in str(ei.value)
