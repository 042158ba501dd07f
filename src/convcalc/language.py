"""The layer language: token text in, :class:`LayerSpec` out.

This module knows syntax, kinds, aliases, keys and their defaults, and the
range of each single value.  It knows nothing about arithmetic: whether a
layer fits its input is :mod:`convcalc.layers`' business.

A token is ``KIND`` or ``KIND:ARGS``; ARGS are comma separated, the first may
be positional, the others ``key=value``, and a bare key means true.  Per-dim
values are joined with ``x`` (``k=3x5``), asymmetric padding per dim is
``before:after`` (``p=0:1x0:1``).
"""
from __future__ import annotations

import math
import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import StackSyntaxError, quoted, shown
from .records import record

PAD_MODES = ("valid", "same", "same_lower", "full")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
UP_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
               "hardswish", "hardsigmoid", "hardtanh", "sigmoid", "tanh", "softplus", "identity")
DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}

# the largest integer any key accepts: big enough for any real layer, small
# enough that products of a few of them stay cheap
MAX_INT = 10 ** 12


# ---------------------------------------------------------------------------
# value readers: text -> value, or StackSyntaxError with what was expected
# ---------------------------------------------------------------------------

_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
MAX_DIMS = 3  # spatial dims convcalc handles


def _int(text: str, lo: int) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise StackSyntaxError(f"expected a whole number, got {quoted(text)}")
    if len(text.lstrip("+-").lstrip("0")) > len(str(MAX_INT)):  # before int(): 10^5 digits
        raise StackSyntaxError(f"{quoted(text)} is larger than convcalc accepts "
                               f"({MAX_INT:.0e})")
    v = int(text)
    if v < lo:
        raise StackSyntaxError(f"must be at least {lo}, got {v}")
    if v > MAX_INT:
        raise StackSyntaxError(f"{v} is larger than convcalc accepts ({MAX_INT:.0e})")
    return v


def _float(text: str) -> float:
    if not _FLOAT.fullmatch(text):
        raise StackSyntaxError(f"expected a finite number, got {quoted(text)}")
    v = float(text)
    if not math.isfinite(v):
        raise StackSyntaxError(f"expected a finite number, got {quoted(text)} (too large)")
    return v


def _dims(text: str) -> List[str]:
    parts = text.split("x")
    if any(p == "" for p in parts):
        raise StackSyntaxError(f"expected values joined by 'x' (like 3x5), got {quoted(text)}")
    if len(parts) > MAX_DIMS:
        raise StackSyntaxError(f"{quoted(text)} has {len(parts)} values; at most {MAX_DIMS}, one per "
                               f"spatial dim")
    return parts


def read_int(lo: int = 0) -> Callable[[str], int]:
    def read(text: str) -> int:
        return _int(text, lo)
    read.expects = "a whole number"
    return read


def read_dims(lo: int = 0) -> Callable[[str], Tuple[int, ...]]:
    """One int for every spatial dim, or one per dim joined by 'x'."""
    def read(text: str) -> Tuple[int, ...]:
        return tuple(_int(p, lo) for p in _dims(text))
    read.expects = "a whole number or one per dim like 3x5"
    return read


def read_scales(text: str) -> Tuple[float, ...]:
    vals = tuple(_float(p) for p in _dims(text))
    if any(v <= 0 for v in vals):
        raise StackSyntaxError(f"scale must be positive, got {quoted(text)}")
    return vals


read_scales.expects = "a positive number or one per dim like 2x1.5"


def read_padding(text: str):
    """A mode name, or a tuple of (before, after) pairs (one pair = every dim)."""
    if text in PAD_MODES:
        return text
    if re.fullmatch(r"[a-z_]+", text):
        raise StackSyntaxError(f"unknown padding {quoted(text)}{_suggest(text, PAD_MODES)}; "
                               f"use a number, per-dim 1x2, before:after pairs or one of "
                               f"{', '.join(PAD_MODES)}")
    pairs = []
    for part in _dims(text):
        if ":" in part:
            b, _, a = part.partition(":")
            pairs.append((_int(b, 0), _int(a, 0)))
        else:
            v = _int(part, 0)
            pairs.append((v, v))
    return tuple(pairs)


read_padding.expects = "a number, per-dim 1x2, before:after pairs or a mode"


class TrailingPairs(tuple):
    """``F.pad``'s own order, ``pad:(left, right, top, bottom)``: (before, after)
    pairs from the last dim backwards, for the trailing dims only (the rest
    unpadded).  Held in spatial order; the layer fills the leading dims."""


def read_signed_pairs(text: str):
    """``pad``'s amounts: per dim, one number or before:after; negative crops (F.pad).
    A PyTorch tuple ``(1, 1, 2, 2)`` is F.pad's order, last dim first."""
    if text.startswith("("):
        values = [_int(v, -MAX_INT) for v in text[1:-1].split(",")]
        if len(values) % 2:
            raise StackSyntaxError(f"F.pad's tuple holds (before, after) pairs, last dim first; "
                                   f"got {len(values)} values")
        if len(values) > 2 * MAX_DIMS:
            raise StackSyntaxError(f"{len(values)} values pad {len(values) // 2} dims; at most "
                                   f"{MAX_DIMS} spatial dims")
        pairs = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
        return TrailingPairs(reversed(pairs))
    pairs = []
    for part in _dims(text):
        b, colon, a = part.partition(":")
        lo = -MAX_INT
        pairs.append((_int(b, lo), _int(a, lo)) if colon else (_int(b, lo),) * 2)
    return tuple(pairs)


read_signed_pairs.expects = "a number (negative crops), per-dim 1x2 or before:after pairs"
read_signed_pairs.tuples = "raw"  # a PyTorch tuple here is F.pad's order, read above


def read_size_or_name(text: str):
    """A target size per dim, or the name of a tensor whose spatial size is the target."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        return text
    return read_dims(1)(text)


read_size_or_name.expects = "sizes like 64x48 or a tensor name"


def read_dim_list(text: str) -> Tuple[int, ...]:
    """``permute``'s dims, comma separated (negative counts from the end, as in PyTorch)."""
    dims = tuple(_int(t, -MAX_RANK) for t in text.split(","))
    if any(d >= MAX_RANK for d in dims):
        raise StackSyntaxError(f"dims must be below {MAX_RANK}, got {quoted(text)}")
    return dims


read_dim_list.tuples = ","  # permute:(0, 2, 3, 1) is permute:0,2,3,1
read_dim_list.expects = "dims like 0,2,3,1"


def read_signed_int(text: str) -> int:
    return _int(text, -MAX_INT)


read_signed_int.expects = "a whole number (negative counts from the end)"


def read_bool(text: str) -> bool:
    t = text.lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise StackSyntaxError(f"expected true or false, got {quoted(text)}")


read_bool.expects = "true or false"


def read_fraction(text: str) -> float:
    v = _float(text)
    if not 0 <= v <= 1:
        raise StackSyntaxError(f"must be between 0 and 1, got {quoted(text)}")
    return v


read_fraction.expects = "a number from 0 to 1"


def read_positive(text: str) -> float:
    v = _float(text)
    if v <= 0:
        raise StackSyntaxError(f"must be positive, got {quoted(text)}")
    return v


read_positive.expects = "a positive number"


def read_number(text: str) -> float:
    return _float(text)


read_number.expects = "a number"


def read_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise StackSyntaxError(f"{quoted(text)} is not a tensor name (letters, digits and _, "
                               f"not starting with a digit)")
    return text


read_name.expects = "a tensor name"


def read_names(text: str) -> Tuple[str, ...]:
    return tuple(read_name(t) for t in text.split("+"))


read_names.expects = "tensor names joined by +"


def read_choice(*options: str) -> Callable[[str], str]:
    def read(text: str) -> str:
        if text not in options:
            raise StackSyntaxError(f"unknown value {quoted(text)}{_suggest(text, options)}; "
                                   f"expected one of {', '.join(options)}")
        return text
    read.expects = "one of " + ", ".join(options)
    return read


def _suggest(word: str, options: Sequence[str]) -> str:
    import difflib  # only on the error path: start-up time is a feature
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------
# the table of kinds
# ---------------------------------------------------------------------------

REQUIRED = object()  # default of a key that must be given


@record
class Key:
    read: Callable[[str], object]
    default: object = None  # None: absent unless given; REQUIRED: must be given


@record
class KindSyntax:
    positional: Optional[str]
    keys: Mapping[str, Key]
    doc: str
    variadic: bool = False  # every bare argument belongs to the positional (permute:0,2,3,1)


_CONV_KEYS = {
    "out": Key(read_int(1), REQUIRED), "k": Key(read_dims(1), REQUIRED),
    "s": Key(read_dims(1), (1,)), "p": Key(read_padding, ((0, 0),)),
    "d": Key(read_dims(1), (1,)), "bias": Key(read_bool, True),
    "pm": Key(read_choice(*PADDING_MODES), "zeros"),
}
_ACT_KEYS = {"inplace": Key(read_bool, False)}
_POOL_KEYS = {
    "k": Key(read_dims(1), REQUIRED), "s": Key(read_dims(1)), "p": Key(read_padding, ((0, 0),)),
    "ceil": Key(read_bool, False),
}

KINDS: Dict[str, KindSyntax] = {
    "conv": KindSyntax("out", {**_CONV_KEYS, "g": Key(read_int(1), 1)},
                       "convolution (1-D/2-D/3-D by the input's rank)"),
    "tconv": KindSyntax("out", {**{k: v for k, v in _CONV_KEYS.items() if k != "pm"},
                                "g": Key(read_int(1), 1), "op": Key(read_dims(0)),
                                "size": Key(read_size_or_name)},
                        "transposed convolution"),
    "up": KindSyntax("scale", {"scale": Key(read_scales), "size": Key(read_size_or_name),
                               "mode": Key(read_choice(*UP_MODES), "nearest"),
                               "align_corners": Key(read_bool, False)},
                     "upsample / interpolate"),
    "maxpool": KindSyntax("k", {**_POOL_KEYS, "d": Key(read_dims(1), (1,))}, "max pool"),
    "avgpool": KindSyntax("k", {**_POOL_KEYS, "count_include_pad": Key(read_bool, True)},
                          "average pool"),
    "aavgpool": KindSyntax("size", {"size": Key(read_dims(1), REQUIRED)}, "adaptive average pool"),
    "amaxpool": KindSyntax("size", {"size": Key(read_dims(1), REQUIRED)}, "adaptive max pool"),
    "gap": KindSyntax(None, {}, "global average pool (1 per spatial dim)"),
    "sepconv": KindSyntax("out", {**_CONV_KEYS, "mult": Key(read_int(1), 1),
                                  "dbias": Key(read_bool, False)},
                          "depthwise (groups = in channels) + pointwise 1x1 conv"),
    "bn": KindSyntax(None, {"affine": Key(read_bool, True), "eps": Key(read_positive, 1e-5),
                            "momentum": Key(read_fraction, 0.1)},
                     "batch norm over channels"),
    "act": KindSyntax("name", {"name": Key(read_choice(*ACTIVATIONS), "relu"), **_ACT_KEYS},
                      "activation (shape-preserving)"),
    "dropout": KindSyntax("p", {"p": Key(read_fraction, 0.5), "inplace": Key(read_bool, False)},
                          "dropout (shape-preserving)"),
    "flatten": KindSyntax(None, {}, "flatten to N x features (a view)"),
    "linear": KindSyntax("out", {"out": Key(read_int(1), REQUIRED), "bias": Key(read_bool, True),
                                 "in": Key(read_int(1))},
                         "fully connected layer on the last dim (in= states its in-features)"),
    # the vocabulary of modern nets (SPEC §3b)
    "ln": KindSyntax("dims", {"dims": Key(read_int(1), 1), "affine": Key(read_bool, True),
                              "bias": Key(read_bool, True), "eps": Key(read_positive, 1e-5)},
                     "layer norm over the last dims dims (nn.LayerNorm(x.shape[-dims:]))"),
    "ln2d": KindSyntax(None, {"affine": Key(read_bool, True), "eps": Key(read_positive, 1e-6)},
                       "layer norm over the channels at every position (LayerNorm2d)"),
    "gn": KindSyntax("g", {"g": Key(read_int(1), REQUIRED),
                                "affine": Key(read_bool, True), "eps": Key(read_positive, 1e-5)},
                     "group norm (nn.GroupNorm(groups, C))"),
    "instnorm": KindSyntax(None, {"affine": Key(read_bool, False), "track": Key(read_bool, False),
                                  "eps": Key(read_positive, 1e-5),
                                  "momentum": Key(read_fraction, 0.1)},
                           "instance norm (nn.InstanceNorm1d/2d/3d)"),
    "permute": KindSyntax("dims", {"dims": Key(read_dim_list, REQUIRED)},
                          "reorder the dims (x.permute(0,2,3,1)); later layers act on the new "
                          "layout", variadic=True),
    "layerscale": KindSyntax(None, {}, "a learned per-channel multiplier (ConvNeXt's layer scale)"),
    "droppath": KindSyntax("p", {"p": Key(read_fraction, 0.5),
                                 "mode": Key(read_choice("row", "batch"), "row")},
                           "stochastic depth (identity at inference)"),
    "shuffle": KindSyntax("g", {"g": Key(read_int(1), REQUIRED)},
                          "ShuffleNet's channel shuffle"),
    "chunk": KindSyntax("n", {"n": Key(read_int(1), REQUIRED), "i": Key(read_signed_int, REQUIRED)},
                        "one of x.chunk(n, dim=1) (chunk:2,i=0)"),
    "pixelshuffle": KindSyntax("r", {"r": Key(read_int(1), REQUIRED)},
                               "sub-pixel upsampling: N x C·r² x H x W -> N x C x rH x rW"),
    "pixelunshuffle": KindSyntax("r", {"r": Key(read_int(1), REQUIRED)},
                                 "N x C x rH x rW -> N x C·r² x H x W"),
    "pad": KindSyntax("p", {"p": Key(read_signed_pairs, REQUIRED),
                            "mode": Key(read_choice(*PADDING_MODES), "zeros"),
                            "value": Key(read_number, 0.0)},
                      "pad the spatial dims (F.pad; negative values crop)"),
    "softmax": KindSyntax("dim", {"dim": Key(read_signed_int, 1)}, "softmax along dim"),
    "logsoftmax": KindSyntax("dim", {"dim": Key(read_signed_int, 1)}, "log-softmax along dim"),
    "dropout1d": KindSyntax("p", {"p": Key(read_fraction, 0.5), "inplace": Key(read_bool, False)},
                            "channel dropout (identity at inference)"),
    # graph operations: name tensors and join paths (residuals, U-Net skips)
    "save": KindSyntax("name", {"name": Key(read_name, REQUIRED)},
                       "name the current tensor (save:x1)"),
    "from": KindSyntax("name", {"name": Key(read_name, REQUIRED)},
                       "continue from a named tensor (from:x1; from:input is the network input)"),
    "add": KindSyntax("names", {"names": Key(read_names, REQUIRED)},
                      "sum the current tensor with named ones, broadcasting (add:x1)"),
    "mul": KindSyntax("names", {"names": Key(read_names, REQUIRED)},
                      "multiply the current tensor by named ones, broadcasting (the SE gate)"),
    "concat": KindSyntax("names", {"names": Key(read_names, REQUIRED),
                                   "crop": Key(read_bool, False)},
                         "join named tensors to the current one along channels (concat:x1); "
                         "crop center-crops them to its size first"),
    "crop": KindSyntax("name", {"name": Key(read_name, REQUIRED)},
                       "center-crop the current tensor to a named tensor's spatial size"),
}

for _name, _what in (("dropout2d", "channel dropout"), ("dropout3d", "channel dropout"),
                     ("alphadropout", "alpha dropout"),
                     ("featurealphadropout", "channel alpha dropout")):
    KINDS[_name] = KINDS["dropout1d"]._replace(doc=f"{_what} (identity at inference)")

# alias -> (kind, fixed arguments)
ALIASES: Dict[str, Tuple[str, Mapping[str, object]]] = {
    "deconv": ("tconv", {}), "upsample": ("up", {}), "fc": ("linear", {}), "cat": ("concat", {}),
    "relu": ("act", {"name": "relu"}), "gelu": ("act", {"name": "gelu"}),
    "sigmoid": ("act", {"name": "sigmoid"}), "tanh": ("act", {"name": "tanh"}),
    "layernorm": ("ln", {}), "groupnorm": ("gn", {}), "instancenorm": ("instnorm", {}),
    "stochastic_depth": ("droppath", {}),
}


def _torch_class_names() -> Dict[str, Tuple[str, Mapping[str, object], Tuple[int, ...]]]:
    """PyTorch's module class names as kinds: name -> (kind, fixed arguments,
    accepted input ranks; () for any).  Looked up case-insensitively."""
    out: Dict[str, Tuple[str, Mapping[str, object], Tuple[int, ...]]] = {}
    for n in (1, 2, 3):
        rank = (n + 2,)
        for cls, kind, fixed in (
                ("Conv", "conv", {}), ("ConvTranspose", "tconv", {}), ("MaxPool", "maxpool", {}),
                ("AvgPool", "avgpool", {}), ("AdaptiveAvgPool", "aavgpool", {}),
                ("AdaptiveMaxPool", "amaxpool", {}), ("BatchNorm", "bn", {}),
                ("InstanceNorm", "instnorm", {}), ("Dropout", f"dropout{n}d", {}),
                ("ZeroPad", "pad", {"mode": "zeros"}), ("ConstantPad", "pad", {"mode": "zeros"}),
                ("ReflectionPad", "pad", {"mode": "reflect"}),
                ("ReplicationPad", "pad", {"mode": "replicate"}),
                ("CircularPad", "pad", {"mode": "circular"})):
            out[f"{cls}{n}d"] = (kind, fixed, rank)
    out["BatchNorm1d"] = ("bn", {}, (2, 3))  # (N, C) or (N, C, L)
    out["UpsamplingNearest2d"] = ("up", {"mode": "nearest"}, (4,))
    out["UpsamplingBilinear2d"] = ("up", {"mode": "bilinear", "align_corners": True}, (4,))
    for cls, kind in (("Upsample", "up"), ("Linear", "linear"), ("Flatten", "flatten"),
                      ("Dropout", "dropout"), ("AlphaDropout", "alphadropout"),
                      ("FeatureAlphaDropout", "featurealphadropout"), ("LayerNorm", "ln"),
                      ("LayerNorm2d", "ln2d"), ("GroupNorm", "gn"), ("Softmax", "softmax"),
                      ("LogSoftmax", "logsoftmax"), ("ChannelShuffle", "shuffle"),
                      ("StochasticDepth", "droppath"), ("Permute", "permute")):
        out[cls] = (kind, {}, ())
    out["PixelShuffle"] = ("pixelshuffle", {}, (4,))
    out["PixelUnshuffle"] = ("pixelunshuffle", {}, (4,))
    for cls, act in (("ReLU", "relu"), ("ReLU6", "relu6"), ("GELU", "gelu"), ("SiLU", "silu"),
                     ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Hardswish", "hardswish"),
                     ("Hardsigmoid", "hardsigmoid"), ("LeakyReLU", "leaky_relu"), ("ELU", "elu"),
                     ("SELU", "selu"), ("CELU", "celu"), ("Mish", "mish"),
                     ("Softplus", "softplus"), ("Hardtanh", "hardtanh"),
                     ("Identity", "identity")):
        out[cls] = ("act", {"name": act}, ())
    return {name.lower(): (kind, fixed, ranks, name) for name, (kind, fixed, ranks) in out.items()}


# lower-cased class name -> (kind, fixed arguments, input ranks, the class name)
TORCH_CLASSES = _torch_class_names()

# PyTorch's argument names, accepted for the short keys
KEY_ALIASES = {
    "kernel": "k", "kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d",
    "groups": "g", "output_padding": "op", "padding_mode": "pm", "scale_factor": "scale",
    "ceil_mode": "ceil", "out_channels": "out", "out_features": "out", "output_size": "size",
}


@record
class LayerSpec:
    """One parsed token: its kind, every key with a value (defaults filled in)."""

    kind: str
    args: Mapping[str, object]
    text: str
    index: int
    given: Tuple[str, ...] = ()  # keys the user wrote (the rest are defaults)
    # a PyTorch class name bound to a rank (Conv2d): (the name, the input ranks it takes)
    rank_bound: Optional[Tuple[str, Tuple[int, ...]]] = None
    name: Optional[str] = None  # the source name of an imported layer (NAME=TOKEN)

    def __getitem__(self, key: str):
        return self.args.get(key)


# ``layer1.0.conv1=conv:64,k=3``: an imported layer's source name before the token
_LABEL = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.\-/]*)=(?=[A-Za-z@])")


def split_label(text: str) -> Tuple[Optional[str], str]:
    """(source name or None, the token proper)."""
    m = _LABEL.match(text)
    if m and ":" not in m.group(1):
        return m.group(1), text[m.end():]
    return None, text


def parse_token(text: str, index: int) -> LayerSpec:
    """Parse one token; errors carry the token's index and text."""
    name, body = split_label(text)
    try:
        spec = _parse_token(body, index)
    except StackSyntaxError as e:
        raise e.located(index, body)
    return spec._replace(name=name) if name else spec


def _parse_token(text: str, index: int) -> LayerSpec:
    if not text.strip():
        raise StackSyntaxError("empty token")
    if re.search(r"\s", text):
        raise StackSyntaxError("a token has no spaces inside (write conv:8,k=3)")
    name, sep, rest = text.partition(":")
    fixed: Mapping[str, object] = {}
    bound = None
    if name in ALIASES:
        kind, fixed = ALIASES[name]
    elif name in KINDS:
        kind = name
    elif name.lower() in TORCH_CLASSES:
        kind, fixed, ranks, cls = TORCH_CLASSES[name.lower()]
        bound = (cls, ranks) if ranks else None
    else:
        known = sorted(set(KINDS) | set(ALIASES))
        close = _suggest(name.lower(), known + sorted(TORCH_CLASSES))
        raise StackSyntaxError(f"unknown layer kind {quoted(name)}{close}; known kinds: "
                               f"{', '.join(known)} (and PyTorch class names like Conv2d)")
    syntax = KINDS[kind]
    raw: Dict[str, str] = {}
    items = _split_items(rest) if sep else []
    if sep and rest == "":
        raise StackSyntaxError(f"nothing after ':'; write {name} alone or {name}:ARGS")
    if syntax.variadic:  # permute:0,2,3,1 -- the bare arguments are one list
        bare = [item for item in items if "=" not in item]
        items = [",".join(bare)] * bool(bare) + [item for item in items if "=" in item]
    for pos, item in enumerate(items):
        if item == "" or item.startswith(",") or item.endswith(",") or ",," in item:
            raise StackSyntaxError("empty argument (two commas, or a comma at the end)")
        key, eq, value = item.partition("=")
        if not eq:
            positional = syntax.positional if syntax.positional not in fixed else None
            word = KEY_ALIASES.get(item, item)
            if _looks_like_key(item, syntax):
                value = "true"
            elif pos == 0 and positional:
                key, value = positional, item
            elif word in syntax.keys and word not in fixed:
                raise StackSyntaxError(f"{word} needs a value: {word}=...")
            elif pos == 0:
                raise StackSyntaxError(f"{name} takes no positional argument, got {quoted(item)}")
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", item):
                raise StackSyntaxError(_unknown_key(item, name, syntax, fixed))
            else:
                raise StackSyntaxError(f"only the first argument may be positional; "
                                       f"write key=value for {quoted(item)}")
        key = KEY_ALIASES.get(key, key)
        if key not in syntax.keys or key in fixed:
            raise StackSyntaxError(_unknown_key(key, name, syntax, fixed))
        if key in raw:
            raise StackSyntaxError(f"{key} is given twice")
        if value == "":
            raise StackSyntaxError(f"{key}= needs a value")
        raw[key] = _pytorch_value(value, syntax.keys[key].read)

    args: Dict[str, object] = dict(fixed)
    for key, spec in syntax.keys.items():
        if key in raw:
            try:
                args[key] = spec.read(raw[key])
            except StackSyntaxError as e:
                raise StackSyntaxError(f"{key}={shown(raw[key], 40)}: {e.reason}") from None
        elif key in fixed:
            continue
        elif spec.default is REQUIRED:
            hint = f"{name}:{'N,' if syntax.positional == 'out' else ''}{key}=..." \
                if key != syntax.positional else f"{name}:{key.upper()}"
            raise StackSyntaxError(f"{key} is required (write {hint})")
        elif spec.default is not None:
            args[key] = spec.default
    if name.lower() in TORCH_CLASSES:
        _torch_padding(TORCH_CLASSES[name.lower()][3], kind, args)
    return LayerSpec(kind, args, text, index, tuple(raw), bound)


def _torch_padding(cls: str, kind: str, args) -> None:
    """A PyTorch class name takes padding as PyTorch does: Conv takes 'valid'
    and 'same' (the latter at stride 1 only), ConvTranspose no mode at all.
    convcalc's own ``conv:…,p=same`` is TensorFlow's SAME, at any stride."""
    p = args.get("p")
    if not isinstance(p, str) or kind not in ("conv", "tconv"):
        return
    if kind == "tconv":
        raise StackSyntaxError(f"{cls} takes no padding mode (PyTorch: padding is a number or "
                               f"a tuple); tconv:…,p={p} is convcalc's own")
    if p not in ("valid", "same"):
        raise StackSyntaxError(f"{cls} takes padding 'valid' or 'same', not {p!r} (PyTorch); "
                               f"conv:…,p={p} is convcalc's own")
    if p == "same" and any(v != 1 for v in args["s"]):
        raise StackSyntaxError(f"{cls} refuses padding='same' with stride "
                               f"{'x'.join(map(str, args['s']))} (PyTorch: not supported for "
                               f"strided convolutions); conv:…,p=same is TensorFlow's SAME, "
                               f"which pads any stride")


def _split_items(rest: str) -> List[str]:
    """The arguments, split at the commas outside PyTorch's tuples (``k=(3, 3)``)."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(rest):
        if c in "([":
            depth += 1
            if depth > 1:
                raise StackSyntaxError("a tuple inside a tuple; write k=(3,3) or k=3x3")
        elif c in ")]":
            depth -= 1
            if depth < 0:
                raise StackSyntaxError(f"{c!r} closes nothing")
        elif c == "," and depth == 0:
            items.append(rest[start:i])
            start = i + 1
    if depth:
        raise StackSyntaxError("a tuple is not closed; write k=(3,3)")
    items.append(rest[start:])
    return items


def _pytorch_value(value: str, read) -> str:
    """PyTorch's spellings in the layer language: a tuple ``(3, 5)`` or
    ``[3, 5]`` is per-dim ``3x5`` (``(3,)`` is 3), a quoted ``'same'`` is same."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value[0] not in "([":
        return value
    if value[-1] != {"(": ")", "[": "]"}[value[0]]:
        raise StackSyntaxError(f"{shown(value, 40)}: a tuple ends where it began, "
                               f"like (3,3) or [3,3]")
    inner = [v for v in value[1:-1].split(",")]
    if inner and inner[-1] == "" and len(inner) > 1:  # (3,) is a tuple of one
        inner = inner[:-1]
    if any(v == "" for v in inner):
        raise StackSyntaxError(f"{shown(value, 40)}: an empty value in the tuple")
    how = getattr(read, "tuples", "x")
    if how == "raw":
        return "(" + ",".join(inner) + ")"
    return how.join(inner)


def _looks_like_key(item: str, syntax: KindSyntax) -> bool:
    """A bare word naming a boolean key (``ceil``, ``inplace``, ``align_corners``)."""
    key = KEY_ALIASES.get(item, item)
    return key in syntax.keys and syntax.keys[key].read is read_bool


def _unknown_key(key: str, name: str, syntax: KindSyntax, fixed) -> str:
    keys = [k for k in syntax.keys if k not in fixed]
    if not keys:
        return f"{name} takes no arguments, got {quoted(key)}"
    return f"unknown key {quoted(key)} for {name}{_suggest(key, keys)}; keys: {', '.join(keys)}"


# ---------------------------------------------------------------------------
# shapes, stack files and @NAME
# ---------------------------------------------------------------------------

MAX_RANK = 5


def parse_shape(shape) -> Tuple[int, ...]:
    """``1x3x224x224`` (or a sequence of ints) -> (1, 3, 224, 224): batch,
    channels and 0 to 3 spatial dims."""
    if isinstance(shape, str):
        text = shape
        t = shape.strip().replace(",", "x").replace("×", "x")
        parts = t.split("x")
        if not t or any(not re.fullmatch(r"[0-9]+", p) for p in parts):
            raise StackSyntaxError(f"input shape {quoted(text)} is not whole numbers joined by "
                                   f"'x' (like 1x3x224x224)")
        if any(len(p.lstrip("0")) > len(str(MAX_INT)) for p in parts):  # before int()
            raise StackSyntaxError(f"input shape {quoted(text)} has a dim larger than "
                                   f"{MAX_INT:.0e}")
        dims = tuple(int(p) for p in parts)
    else:
        dims = tuple(shape)
        text = "x".join(str(v) for v in dims)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in dims):
            raise StackSyntaxError(f"input shape {quoted(repr(dims))} must be whole numbers")
    if not 2 <= len(dims) <= MAX_RANK:
        raise StackSyntaxError(f"input shape {quoted(text)} has {len(dims)} dims; convcalc takes batch, "
                               f"channels and 0 to 3 spatial dims (2 to {MAX_RANK} dims)")
    if min(dims) < 1:
        raise StackSyntaxError(f"input shape {quoted(text)} has a zero-sized dim")
    if max(dims) > MAX_INT:
        raise StackSyntaxError(f"input shape {quoted(text)} has a dim larger than {MAX_INT:.0e}")
    return dims


@record
class StackText:
    """The tokens of a stack file and the default input its header names."""

    tokens: Tuple[str, ...]
    input_shape: Optional[Tuple[int, ...]] = None
    description: str = ""
    # the header's other ``# key: value`` lines (family; a generated file's totals)
    meta: Mapping[str, str] = {}


_INPUT_DIRECTIVE = re.compile(r"#\s*input\s*:\s*(\S+)")
_META = re.compile(r"#\s*(family|params|macs)\s*:\s*(.+?)\s*")


# bounds on what a stack may be: far beyond any real network, small enough
# that reading and parsing stay within seconds and a few hundred megabytes
MAX_STACK_BYTES = 8 * 2 ** 20
MAX_TOKENS = 10 ** 5
_BOM = "\ufeff"


class TooLarge(StackSyntaxError):
    """The whole stack is over a limit: no single layer is to blame."""


def too_many_tokens(source: Optional[str] = None) -> StackSyntaxError:
    where = f"{shown(source)}: " if source else ""
    return TooLarge(f"{where}the stack has more than {MAX_TOKENS:,} layer tokens, the "
                            f"most convcalc takes (@references repeated many times over?)")


def read_stack_bytes(stream, name: str) -> str:
    """A stack file's text from a binary stream, read with a limit: ``/dev/zero``,
    ``/dev/urandom`` or a 200 MB file are refused, not read whole."""
    data = stream.read(MAX_STACK_BYTES + 1)
    if len(data) > MAX_STACK_BYTES:
        raise StackSyntaxError(f"{shown(name)}: larger than {MAX_STACK_BYTES // 2 ** 20} MiB, "
                               f"the most convcalc reads as a stack file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StackSyntaxError(f"{shown(name)}: not a text file (not UTF-8 at byte "
                               f"{e.start:,})") from None
    return text[1:] if text.startswith(_BOM) else text  # an editor's byte-order mark


def read_stack_file(path: str) -> str:
    """A stack file's text by path (see :func:`read_stack_bytes`)."""
    try:
        with open(path, "rb") as f:
            return read_stack_bytes(f, path)
    except OSError as e:
        raise StackSyntaxError(f"cannot read stack file {shown(path)}: "
                               f"{e.strerror or e}") from None


def split_stack_text(text: str, source: str = "stack") -> StackText:
    """Whitespace-separated tokens; ``#`` comments to the end of a line.

    A comment line ``# input: 1x3x224x224`` names the default input shape and
    the first comment line is the stack's description.
    """
    tokens: List[str] = []
    shape = None
    description = ""
    meta: Dict[str, str] = {}
    for line in text.splitlines():
        body, hash_, comment = line.partition("#")
        tokens += body.split()
        if len(tokens) > MAX_TOKENS:  # stop splitting now: each token costs ~50 bytes
            raise too_many_tokens(source)
        if not hash_:
            continue
        m = _INPUT_DIRECTIVE.fullmatch(("#" + comment).strip())
        head = None if tokens else _META.fullmatch(("#" + comment).strip())
        if head:
            meta.setdefault(head.group(1), head.group(2))
        elif m and shape is None:
            try:
                shape = parse_shape(m.group(1))
            except StackSyntaxError as e:
                raise StackSyntaxError(f"{source}: {e.reason}") from None
        elif not description and not tokens and comment.strip():
            description = comment.strip()
    return StackText(tuple(tokens), shape, description, meta)


_SI = {"": 1, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
       "KI": 2 ** 10, "MI": 2 ** 20, "GI": 2 ** 30, "TI": 2 ** 40}


def parse_quantity(text: str) -> int:
    """``25M`` -> 25,000,000; ``4.1G``; ``2GiB`` -> 2·1024³; a trailing B is ignored."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kKmMgGtT]i?)?[bB]?\s*", text)
    if not m:
        raise StackSyntaxError(f"{quoted(text)} is not a number with an optional SI suffix "
                               f"(25M, 4.1G, 2GiB)")
    unit = (m.group(2) or "").upper()
    value = float(m.group(1)) * _SI[unit]
    if not value < 10 ** 30:  # also catches inf
        raise StackSyntaxError(f"{quoted(text)} is too large")
    return round(value)


MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def builtin_models() -> Dict[str, StackText]:
    """The stacks shipped in ``convcalc/models``, by name."""
    out = {}
    for entry in sorted(os.listdir(MODELS_DIR)):
        if entry.endswith(".stack"):
            with open(os.path.join(MODELS_DIR, entry), encoding="utf-8") as f:
                out[entry[:-6]] = split_stack_text(f.read(), entry)
    return out


def is_onnx(name: str) -> bool:
    return name.lower().endswith(".onnx")


_ONNX_CACHE: Dict[tuple, "StackText"] = {}


def read_onnx(path: str, input_shape=None) -> StackText:
    """An ONNX file as a stack (SPEC §3c): ``convcalc[onnx]``'s importer.  A
    command reads a file's default input and then its layers: import it once."""
    full = os.path.abspath(os.path.expanduser(path))
    try:
        st = os.stat(full)
    except OSError as e:
        raise StackSyntaxError(f"cannot read {path}: {e.strerror}") from None
    key = (full, st.st_mtime_ns, st.st_size, tuple(input_shape) if input_shape else None)
    if key not in _ONNX_CACHE:
        from .importers.onnxfile import import_onnx
        tokens, shape = import_onnx(full, input_shape)
        _ONNX_CACHE[key] = StackText(tuple(tokens), tuple(shape), f"imported from {path}")
    return _ONNX_CACHE[key]


def _is_builtin(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_]+", name)) and \
        os.path.isfile(os.path.join(MODELS_DIR, name + ".stack"))


def reference_path(name: str) -> Optional[str]:
    """The file an ``@NAME`` reads, or None for a built-in model."""
    return None if _is_builtin(name) else os.path.expanduser(name)


def read_reference(name: str, input_shape=None) -> StackText:
    """``@NAME``: a built-in model, else a stack file (or an ONNX file) at that path."""
    if _is_builtin(name):
        with open(os.path.join(MODELS_DIR, name + ".stack"), encoding="utf-8") as f:
            return split_stack_text(f.read(), name + ".stack")
    if is_onnx(name):
        return read_onnx(name, input_shape)
    path = os.path.expanduser(name)
    if os.path.isfile(path):
        return split_stack_text(read_stack_file(path), name)
    models = builtin_models()
    raise StackSyntaxError(f"not a built-in model{_suggest(name, list(models))} "
                           f"nor a file; built-in: {', '.join(models)}")


def anchor(tokens: Sequence[str], folder: str) -> List[str]:
    """A stack file's tokens with its relative ``@PATH`` references made
    relative to the file's own folder (SPEC §3: as ``#include`` resolves)."""
    out = []
    for tok in tokens:
        name = tok[1:]
        if tok.startswith("@") and name and not _is_builtin(name) and \
                not os.path.isabs(os.path.expanduser(name)):
            tok = "@" + os.path.normpath(os.path.join(folder, name))
        out.append(tok)
    return out


def expand(tokens: Sequence[str], _depth: int = 0, input_shape=None,
           sources: Optional[List[str]] = None, _read: Optional[dict] = None) -> List[str]:
    """Replace every ``@NAME`` by the tokens of its stack (nested up to 8 deep,
    at most MAX_TOKENS in all); ``input_shape`` is what an ONNX file with free
    dims is imported at; ``sources`` collects the paths of the files read."""
    out: List[str] = []
    read = {} if _read is None else _read  # a file referenced many times is read once
    for tok in tokens:
        if tok.startswith("@"):
            try:
                if _depth >= 8:
                    raise StackSyntaxError("stacks nested more than 8 deep (a loop?)")
                if tok not in read:
                    path = reference_path(tok[1:])
                    inner = read_reference(tok[1:], input_shape).tokens
                    if path is not None:
                        if sources is not None:
                            sources.append(path)
                        inner = anchor(inner, os.path.dirname(path))
                    read[tok] = inner
                out += expand(read[tok], _depth + 1, input_shape, sources, read)
            except TooLarge:
                raise
            except StackSyntaxError as e:
                raise e.located(len(out) + 1, tok)
        else:
            out.append(tok)
        if len(out) > MAX_TOKENS:
            raise too_many_tokens()
    return out


def default_input(tokens: Sequence[str]) -> Optional[Tuple[int, ...]]:
    """The input shape named by the first ``@NAME`` in a stack, if any."""
    for tok in tokens:
        if tok.startswith("@"):
            try:
                return read_reference(tok[1:]).input_shape
            except StackSyntaxError:
                return None  # parse_stack reports it, with the layer's position
        return None
    return None


def parse_stack(tokens: Sequence[str], input_shape=None,
                sources: Optional[List[str]] = None) -> List[LayerSpec]:
    """Expand ``@NAME`` references and parse every token (1-based indices);
    ``sources`` collects the paths of the files that ``@`` references read."""
    flat = expand(tokens, input_shape=input_shape, sources=sources)
    if not flat:
        raise StackSyntaxError("the stack is empty: give at least one layer")
    parsed: Dict[str, LayerSpec] = {}  # a stack repeats its tokens: parse each text once
    specs = []
    for i, tok in enumerate(flat, 1):
        known = parsed.get(tok)
        if known is None:
            known = parsed[tok] = parse_token(tok, i)
        specs.append(known if known.index == i else known._replace(index=i))
    return specs
