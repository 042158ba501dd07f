"""NumPy twins of the ``torch.nn.functional`` operations convcalc needs.

Every function here is named and called like its ``torch.nn.functional``
counterpart and computes the same numbers (same index arithmetic, same
output sizes, same edge rules), on NumPy arrays in PyTorch's N-first layout
(``N x C x spatial...``).  They are what ``convcalc shape --verify`` runs.

* Only NumPy and the standard library are imported; PyTorch is never needed.
* float32 and float64 inputs give results of the same dtype; any other input
  (integers, nested lists) is computed in float64.  Weights, biases and
  statistics are converted to the input's dtype.
* Everything is vectorised: convolutions are one im2col copy (a strided view)
  followed by one batched matrix product per call; pools, adaptive pools and
  interpolation are separable per spatial dimension, with one strided view or
  gather per dimension.  No Python loop runs over pixels or output positions.
* Invalid arguments raise ``ValueError`` (PyTorch raises ``RuntimeError`` or
  ``ValueError``) with a message close to PyTorch's.

Besides the fixed-rank twins (``conv2d``, ``max_pool3d``, ...) there are
generic functions for any number of spatial dimensions -- :func:`conv`,
:func:`conv_transpose`, :func:`max_pool`, :func:`avg_pool`,
:func:`adaptive_avg_pool`, :func:`adaptive_max_pool` -- which also accept
asymmetric padding written per spatial dimension as ``(before, after)`` pairs,
e.g. ``padding=((0, 1), (0, 1))``.

The modern layer kinds have their twins too: ``layer_norm``, ``group_norm``,
``instance_norm``, ``pixel_shuffle`` / ``pixel_unshuffle`` (any rank >= 3),
``channel_shuffle``, the dropout family (``dropout1d/2d/3d``,
``alpha_dropout``, ``feature_alpha_dropout``; identity unless
``training=True``, then drawn from ``rng``) and torchvision's
``stochastic_depth``.  ``pad`` keeps ``F.pad``'s rank and size rules for
every mode (see :func:`pad` and :func:`_pad_pairs`).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

__all__ = [
    # convolutions
    "conv", "conv1d", "conv2d", "conv3d",
    "conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    # padding
    "pad",
    # pools
    "max_pool", "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    # resampling
    "interpolate", "upsample",
    # normalisation
    "batch_norm", "layer_norm", "group_norm", "instance_norm",
    # dense and shape
    "linear", "flatten", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
    # dropout family (identity in inference)
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "stochastic_depth",
    # activations
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "hardswish", "hardsigmoid", "hardtanh", "sigmoid", "tanh", "softplus",
    "softmax", "log_softmax", "identity", "erf",
]

IntOrSeq = Union[int, Sequence[int]]

# ---------------------------------------------------------------------------
# argument helpers
# ---------------------------------------------------------------------------


def _as_float(x) -> np.ndarray:
    """The input as an array of float32 or float64 (others become float64)."""
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a


def _like(v, x: np.ndarray) -> Optional[np.ndarray]:
    """A parameter array converted to the dtype of ``x`` (None stays None)."""
    if v is None:
        return None
    return np.asarray(v, dtype=x.dtype)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _ntuple(v, n: int, name: str) -> Tuple[int, ...]:
    """An int or a length-n sequence of ints as an n-tuple of ints."""
    if _is_int(v):
        return (int(v),) * n
    try:
        t = tuple(v)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {v!r}") from None
    if len(t) == 1 and n != 1:
        t = t * n
    if len(t) != n or not all(_is_int(e) for e in t):
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {v!r}")
    return tuple(int(e) for e in t)


def _pairs(padding, n: int, name: str = "padding") -> Tuple[Tuple[int, int], ...]:
    """Padding as ``n`` (before, after) pairs.

    Accepts an int (all sides), a length-n sequence whose items are ints
    (symmetric) or (before, after) pairs (asymmetric).
    """
    if _is_int(padding):
        p = int(padding)
        return ((p, p),) * n
    try:
        items = list(padding)
    except TypeError:
        raise ValueError(f"{name} must be an int, a sequence of {n} ints or of "
                         f"{n} (before, after) pairs, got {padding!r}") from None
    if len(items) == 1 and n != 1:
        items = items * n
    if len(items) != n:
        raise ValueError(f"{name} must have one entry per spatial dimension ({n}), got {padding!r}")
    out = []
    for it in items:
        if _is_int(it):
            out.append((int(it), int(it)))
            continue
        try:
            b, a = it
        except (TypeError, ValueError):
            raise ValueError(f"{name} entries must be ints or (before, after) pairs, got {it!r}") from None
        if not (_is_int(b) and _is_int(a)):
            raise ValueError(f"{name} entries must be ints or (before, after) pairs, got {it!r}")
        out.append((int(b), int(a)))
    return tuple(out)


def _check_rank(x: np.ndarray, nd: Optional[int], fname: str) -> int:
    """Number of spatial dims; require batch+channel+nd dims when nd is given."""
    if nd is not None:
        if x.ndim != nd + 2:
            raise ValueError(f"{fname}: expected a {nd + 2}-D input (N, C, {nd} spatial dims), "
                             f"got an array of shape {tuple(x.shape)}")
        return nd
    if x.ndim < 3:
        raise ValueError(f"{fname}: expected an input of shape (N, C, spatial...), "
                         f"got an array of shape {tuple(x.shape)}")
    return x.ndim - 2


def _fmt(t) -> str:
    return " x ".join(str(int(v)) for v in t)


# ---------------------------------------------------------------------------
# padding
# ---------------------------------------------------------------------------


def _pad_axis_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source indices of one padded axis for reflect/replicate/circular.

    Reflect and replicate index the whole input (a negative amount only drops
    output positions, as PyTorch's kernels do); circular first crops the
    negative sides, then wraps within what is left.
    """
    j = np.arange(-before, n + after)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(j)
        period = 2 * (n - 1)
        j = np.abs(j) % period
        return np.where(j >= n, period - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "circular":
        lo, hi = max(-before, 0), n - max(-after, 0)
        return lo + (j - lo) % (hi - lo)
    raise ValueError(f"unknown padding mode {mode!r}")


_AXIS_LETTERS = ("D", "H", "W")


def _too_small(sizes, outs) -> str:
    """PyTorch's 'input (H: .., W: ..) is too small' message for 1-3 padded dims."""
    names = _AXIS_LETTERS[-len(sizes):] if len(sizes) <= 3 else tuple(f"d{k}" for k in range(len(sizes)))
    ins = ", ".join(f"{c}: {n}" for c, n in zip(names, sizes))
    got = " ".join(f"{c}: {o}" for c, o in zip(names, outs))
    return f"input ({ins}) is too small. Calculated output {got}"


def _pad_pairs(x: np.ndarray, pairs, mode: str = "constant", value: float = 0.0) -> np.ndarray:
    """Pad the trailing ``len(pairs)`` axes by (before, after); negative crops.

    The edge rules are PyTorch's (``constant_pad_nd``, ``reflection_pad*d``,
    ``replication_pad*d``, ``_pad_circular``), for any number of padded axes:

    * constant: crop the negative sides, then fill; a crop larger than the
      axis is an error, an empty result is allowed;
    * reflect: every amount (signed) must be less than the axis size;
      replicate: no limit.  Both index the whole input, so an amount of
      ``-n`` or less is fine as long as the other side brings the output back;
      the output may be empty along some padded axis but not along all of
      them (PyTorch checks ``out_w >= 1 || out_h >= 1 ...``);
    * circular: every amount at most the axis size, no negative output size;
      the positive amounts must fit in what the negative ones leave (PyTorch
      fails on overlapping memory there, or returns uninitialised memory
      when nothing is left); an empty output is returned as such.
    """
    nd = len(pairs)
    if all(b == 0 and a == 0 for b, a in pairs):
        return x
    lead = x.ndim - nd
    sizes = x.shape[lead:]
    outs = tuple(n + b + a for n, (b, a) in zip(sizes, pairs))
    if mode in ("constant", "zeros"):
        for k, (n, (b, a)) in enumerate(zip(sizes, pairs)):
            if n + b + a < 0 or n - max(-b, 0) - max(-a, 0) < 0:
                raise ValueError(f"The input size {n}, plus negative padding {b} and {a} resulted in a "
                                 f"negative output size, which is invalid. Check dimension {lead + k} "
                                 f"of your input.")
        # crop first (negative amounts), then place into a filled buffer
        crop = [slice(None)] * lead
        for n, (b, a) in zip(sizes, pairs):
            crop.append(slice(max(-b, 0), n - max(-a, 0)))
        x = x[tuple(crop)]
        shape = list(x.shape[:lead])
        place = [slice(None)] * lead
        for n, (b, a) in zip(x.shape[lead:], pairs):
            bb, aa = max(b, 0), max(a, 0)
            shape.append(n + bb + aa)
            place.append(slice(bb, bb + n))
        out = np.full(shape, value, dtype=x.dtype)
        out[tuple(place)] = x
        return out
    if mode == "circular":
        for k, (n, (b, a)) in enumerate(zip(sizes, pairs)):
            if b > n or a > n:
                raise ValueError("Padding value causes wrapping around more than once.")
            if n + b + a < 0:
                raise ValueError("Negative padding value is resulting in an empty dimension")
        if 0 in x.shape[:lead] or 0 in outs:
            # nothing to write, but PyTorch still copies the cropped input into
            # the output's interior: slices with a negative end wrap around
            for k, (n, (b, a), o) in enumerate(zip(sizes, pairs, outs)):
                got = len(range(n)[max(-b, 0):n - max(-a, 0)])
                room = len(range(o)[max(b, 0):o - max(a, 0)])
                if got != room and got != 1:
                    raise ValueError(f"The size of tensor a ({room}) must match the size of tensor b "
                                     f"({got}) at non-singleton dimension {lead + k}")
            return np.zeros(x.shape[:lead] + outs, dtype=x.dtype)
        for k, (n, (b, a)) in enumerate(zip(sizes, pairs)):
            kept = n - max(-b, 0) - max(-a, 0)
            if b > kept or a > kept:
                raise ValueError(
                    f"Padding value causes wrapping around more than once: circular padding ({b}, {a}) "
                    f"at dimension {lead + k} wraps the {max(kept, 0)} entries left after cropping "
                    f"(PyTorch fails on overlapping memory here or returns uninitialised values)")
    elif mode in ("reflect", "replicate"):
        for k, (n, (b, a)) in enumerate(zip(sizes, pairs)):
            if mode == "reflect" and (b >= n or a >= n):
                raise ValueError(
                    f"Padding size should be less than the corresponding input dimension, "
                    f"but got: padding ({b}, {a}) at dimension {lead + k} of input {list(x.shape)}")
            if n == 0:
                raise ValueError(f"{mode} padding needs a non-empty input dimension, got input "
                                 f"{list(x.shape)}")
        if not any(o >= 1 for o in outs):
            raise ValueError(_too_small(sizes, outs))
        if any(o < 0 for o in outs):
            raise ValueError(f"Trying to create tensor with negative dimension {min(outs)}: "
                             f"{list(x.shape[:lead] + outs)}")
    else:
        raise ValueError(f"unknown padding mode {mode!r}; expected constant, reflect, "
                         f"replicate or circular")
    for k, (n, (b, a)) in enumerate(zip(sizes, pairs)):
        if b or a:
            x = np.take(x, _pad_axis_index(n, b, a, mode), axis=lead + k)
    return x


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> np.ndarray:
    """Like ``F.pad``: ``pad`` lists (before, after) amounts starting from the LAST
    dimension: ``(left, right, top, bottom, front, back)``.

    Modes ``constant`` (fill ``value``, default 0), ``reflect`` (mirror without
    repeating the edge), ``replicate`` (repeat the edge) and ``circular``
    (wrap around).  Negative amounts crop.

    PyTorch's rules are kept, in its order: an even number of amounts, at
    most two per input dim; ``constant`` pads any rank; the other modes pad
    the last 1, 2 or 3 dims of an input with 1 or 2 more dims (2-D..5-D:
    ``len(pad) == 2`` needs a 2-D or 3-D input, 4 a 3-D or 4-D, 6 a 4-D or
    5-D) and take no ``value`` other than 0; reflect and replicate refuse a
    zero-size dim other than the batch dim of a batched input.  The per-dim
    limits are those of :func:`_pad_pairs`.
    """
    x = _as_float(input)
    p = list(pad)
    if not all(_is_int(v) for v in p):
        raise ValueError(f"pad(): argument 'pad' must be a sequence of ints, got {pad!r}")
    if len(p) % 2:
        raise ValueError("Padding length must be divisible by 2")
    if len(p) > 2 * x.ndim:
        raise ValueError(f"Padding length should be less than or equal to two times the input dimension "
                         f"but got padding length {len(p)} and input of dimension {x.ndim}")
    nd = len(p) // 2
    pairs = [(int(p[2 * k]), int(p[2 * k + 1])) for k in range(nd)][::-1]
    if mode == "constant":
        return _pad_pairs(x, pairs, mode, 0.0 if value is None else value)
    if mode not in _PAD_MODES:
        raise ValueError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise ValueError(f"Padding mode \"{mode}\" doesn't take in value argument")
    if not (1 <= nd <= 3 and x.ndim in (nd + 1, nd + 2)):
        raise ValueError(f"Padding size {len(p)} is not supported for {x.ndim}D input tensor.")
    if mode != "circular":
        inner = x.shape[1:] if x.ndim == nd + 2 else x.shape
        if 0 in inner:
            raise ValueError(f"Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with possibly 0 batch "
                             f"size and other non-zero dimensions for input, but got: {list(x.shape)}")
    return _pad_pairs(x, pairs, mode)


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------


def _im2col(x: np.ndarray, ks, stride, dilation, out_sz) -> np.ndarray:
    """(C * prod(k), N * prod(o)) matrix of input patches, rows ordered c, k..."""
    N, C = x.shape[:2]
    sN, sC = x.strides[:2]
    ss = x.strides[2:]
    shape = (C, *ks, N, *out_sz)
    strides = (sC, *(s * d for s, d in zip(ss, dilation)), sN, *(s * st for s, st in zip(ss, stride)))
    view = as_strided(x, shape=shape, strides=strides, writeable=False)
    return np.ascontiguousarray(view).reshape(C * int(np.prod(ks)), N * int(np.prod(out_sz)))


def _conv_core(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], stride, dilation,
               groups: int, fname: str) -> np.ndarray:
    """Valid (unpadded) convolution of an already padded input."""
    nd = x.ndim - 2
    N, C = x.shape[:2]
    Cout, Cg = w.shape[:2]
    ks = w.shape[2:]
    if groups < 1:
        raise ValueError(f"{fname}: non-positive groups is not supported")
    if Cout % groups:
        raise ValueError(f"{fname}: out_channels ({Cout}) must be divisible by groups ({groups})")
    if Cg * groups != C:
        raise ValueError(f"{fname}: Given groups={groups}, weight of size {list(w.shape)}, expected "
                         f"input{list(x.shape)} to have {Cg * groups} channels, but got {C} channels instead")
    eff = [d * (k - 1) + 1 for k, d in zip(ks, dilation)]
    if any(i < e for i, e in zip(x.shape[2:], eff)):
        raise ValueError(f"{fname}: Calculated padded input size per channel: ({_fmt(x.shape[2:])}). "
                         f"Kernel size: ({_fmt(eff)}). Kernel size can't be greater than actual input size")
    out_sz = tuple((i - e) // s + 1 for i, e, s in zip(x.shape[2:], eff, stride))
    K = int(np.prod(ks))
    O = int(np.prod(out_sz))
    if N * O == 0 or C == 0:
        out = np.zeros((N, Cout, *out_sz), dtype=x.dtype)
    else:
        if all(k == 1 for k in ks) and all(s == 1 for s in stride):
            # 1x1 stride-1: the input is the patch matrix, channels first (a view
            # for one image or one channel)
            col = np.moveaxis(x, 1, 0).reshape(C, N * O)
        else:
            col = _im2col(x, ks, stride, dilation, out_sz)
        col = col.reshape(groups, Cg * K, N * O)
        wm = w.reshape(groups, Cout // groups, Cg * K)
        out = np.matmul(wm, col)  # (g, Cout/g, N*O)
        out = out.reshape(Cout, N, *out_sz)
        out = np.ascontiguousarray(np.swapaxes(out, 0, 1))
    if b is not None:
        out += b.reshape((1, Cout) + (1,) * nd)
    return out


def conv(input, weight, bias=None, stride: IntOrSeq = 1, padding=0, dilation: IntOrSeq = 1,
         groups: int = 1, padding_mode: str = "zeros") -> np.ndarray:
    """N-d convolution (cross-correlation) like ``F.conv{1,2,3}d``.

    ``weight`` is ``(C_out, C_in / groups, *kernel)``.  ``padding`` is an int,
    one int per spatial dim, one ``(before, after)`` pair per spatial dim, or
    the string ``'valid'`` / ``'same'`` (PyTorch's: total ``d*(k-1)``, the odd
    unit at the end, stride 1 only).  ``padding_mode`` is ``'zeros'``,
    ``'reflect'``, ``'replicate'`` or ``'circular'`` as in ``nn.Conv*d``.
    """
    x = _as_float(input)
    w = _like(weight, x)
    b = _like(bias, x)
    fname = "conv"
    nd = _check_rank(x, None, fname)
    if w.ndim != nd + 2:
        raise ValueError(f"{fname}: weight must be {nd + 2}-D (C_out, C_in/groups, *kernel) for a "
                         f"{nd + 2}-D input, got shape {tuple(w.shape)}")
    ks = w.shape[2:]
    stride = _ntuple(stride, nd, "stride")
    dilation = _ntuple(dilation, nd, "dilation")
    if any(s < 1 for s in stride):
        raise ValueError(f"{fname}: non-positive stride is not supported")
    if any(d < 1 for d in dilation):
        raise ValueError(f"{fname}: dilation should be greater than zero")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"{fname}: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
    if isinstance(padding, str):
        if padding == "valid":
            pairs = ((0, 0),) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pairs = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                          for k, d in zip(ks, dilation))
        else:
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
    else:
        pairs = _pairs(padding, nd)
        if any(v < 0 for pr in pairs for v in pr):
            raise ValueError(f"{fname}: negative padding is not supported")
    mode = {"zeros": "constant"}.get(padding_mode, padding_mode)
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"padding_mode must be one of 'zeros', 'reflect', 'replicate' or "
                         f"'circular', got {padding_mode!r}")
    xp = _pad_pairs(x, pairs, mode)
    return _conv_core(xp, w, b, stride, dilation, int(groups), fname)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Like ``F.conv1d``: input (N, C, L), weight (C_out, C_in/groups, k)."""
    _check_rank(_as_float(input), 1, "conv1d")
    return conv(input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Like ``F.conv2d``: input (N, C, H, W), weight (C_out, C_in/groups, kh, kw)."""
    _check_rank(_as_float(input), 2, "conv2d")
    return conv(input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Like ``F.conv3d``: input (N, C, D, H, W), weight (C_out, C_in/groups, kd, kh, kw)."""
    _check_rank(_as_float(input), 3, "conv3d")
    return conv(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose(input, weight, bias=None, stride: IntOrSeq = 1, padding=0,
                   output_padding: IntOrSeq = 0, groups: int = 1, dilation: IntOrSeq = 1,
                   output_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """N-d transposed convolution like ``F.conv_transpose{1,2,3}d`` (same argument order).

    ``weight`` is ``(C_in, C_out / groups, *kernel)``.  Output size per dim:
    ``(i-1)*s - before - after + d*(k-1) + output_padding + 1``.  ``padding``
    may be ``(before, after)`` pairs: the amounts cropped from each end of the
    full output.  ``output_size`` (spatial sizes, or a full shape) chooses
    ``output_padding`` like ``nn.ConvTranspose*d.forward(output_size=...)``,
    which accepts sizes from the minimum up to minimum + stride - 1 only
    (even where dilation would allow a larger ``output_padding``).

    Implementation: insert ``s-1`` zeros between input samples, pad by
    ``d*(k-1) - before`` / ``d*(k-1) - after + output_padding`` (negative
    amounts crop) and run an ordinary convolution with the spatially flipped
    kernel whose in/out channel axes are swapped within each group.
    """
    x = _as_float(input)
    w = _like(weight, x)
    b = _like(bias, x)
    fname = "conv_transpose"
    nd = _check_rank(x, None, fname)
    if w.ndim != nd + 2:
        raise ValueError(f"{fname}: weight must be {nd + 2}-D (C_in, C_out/groups, *kernel), "
                         f"got shape {tuple(w.shape)}")
    groups = int(groups)
    N, Cin = x.shape[:2]
    if w.shape[0] != Cin:
        raise ValueError(f"{fname}: Given transposed=1, weight of size {list(w.shape)}, expected "
                         f"input{list(x.shape)} to have {w.shape[0]} channels, but got {Cin} channels instead")
    if groups < 1 or Cin % groups:
        raise ValueError(f"{fname}: in_channels ({Cin}) must be divisible by groups ({groups})")
    ks = w.shape[2:]
    cout_g = w.shape[1]
    Cout = cout_g * groups
    if b is not None and b.shape != (Cout,):
        raise ValueError(f"{fname}: bias must have shape ({Cout},), got {tuple(b.shape)}")
    stride = _ntuple(stride, nd, "stride")
    dilation = _ntuple(dilation, nd, "dilation")
    if any(s < 1 for s in stride):
        raise ValueError(f"{fname}: non-positive stride is not supported")
    if any(d < 1 for d in dilation):
        raise ValueError(f"{fname}: dilation should be greater than zero")
    pairs = _pairs(padding, nd)
    if any(v < 0 for pr in pairs for v in pr):
        raise ValueError(f"{fname}: negative padding is not supported")
    spatial = x.shape[2:]
    base = [(i - 1) * s - pb - pa + d * (k - 1) + 1
            for i, s, (pb, pa), d, k in zip(spatial, stride, pairs, dilation, ks)]
    if output_size is not None:
        osz = list(output_size)
        if len(osz) == nd + 2:
            osz = osz[2:]
        if len(osz) != nd:
            raise ValueError(f"output_size must have {nd} or {nd + 2} elements (got {len(osz)})")
        # like nn.ConvTranspose*d._output_padding: sizes in [min, min + stride - 1]
        # (stride only -- narrower than the functional's op < max(stride, dilation))
        top = [m + s - 1 for m, s in zip(base, stride)]
        op = []
        for o, lo, hi in zip(osz, base, top):
            if not lo <= o <= hi:
                raise ValueError(f"requested an output size of {list(osz)}, but valid sizes range "
                                 f"from {base} to {top} (for an input of {list(spatial)})")
            op.append(o - lo)
        output_padding = tuple(op)
    op = _ntuple(output_padding, nd, "output_padding")
    for o, s, d in zip(op, stride, dilation):
        if o < 0 or o >= max(s, d):
            raise ValueError("output padding must be smaller than either stride or dilation, "
                             f"but got output_padding: {_fmt(op)}, stride: {_fmt(stride)}, "
                             f"dilation: {_fmt(dilation)}")
    out_sz = [o + p for o, p in zip(base, op)]
    if any(o < 1 for o in out_sz):
        raise ValueError(f"{fname}: Given input size per channel: ({_fmt(spatial)}). Calculated output "
                         f"size per channel: ({_fmt(out_sz)}). Output size is too small")
    # zero-insert and pad (negative pads crop) in one buffer
    before = [d * (k - 1) - pb for d, k, (pb, pa) in zip(dilation, ks, pairs)]
    after = [d * (k - 1) - pa + o for d, k, (pb, pa), o in zip(dilation, ks, pairs, op)]
    up = [(i - 1) * s + 1 for i, s in zip(spatial, stride)]
    buf_shape = (N, Cin) + tuple(u + max(bf, 0) + max(af, 0) for u, bf, af in zip(up, before, after))
    buf = np.zeros(buf_shape, dtype=x.dtype)
    place = (slice(None), slice(None)) + tuple(
        slice(max(bf, 0), max(bf, 0) + u, s) for u, bf, s in zip(up, before, stride))
    buf[place] = x
    crop = (slice(None), slice(None)) + tuple(
        slice(max(-bf, 0), n - max(-af, 0)) for n, bf, af in zip(buf_shape[2:], before, after))
    buf = buf[crop]
    # (C_in, C_out/g, k) -> (C_out, C_in/g, k), flipped
    wt = w.reshape((groups, Cin // groups, cout_g) + ks).swapaxes(1, 2)
    wt = wt.reshape((Cout, Cin // groups) + ks)
    wt = np.ascontiguousarray(wt[(slice(None), slice(None)) + (slice(None, None, -1),) * nd])
    return _conv_core(buf, wt, b, (1,) * nd, dilation, groups, fname)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1) -> np.ndarray:
    """Like ``F.conv_transpose1d``: weight (C_in, C_out/groups, k)."""
    _check_rank(_as_float(input), 1, "conv_transpose1d")
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1) -> np.ndarray:
    """Like ``F.conv_transpose2d``: weight (C_in, C_out/groups, kh, kw)."""
    _check_rank(_as_float(input), 2, "conv_transpose2d")
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1) -> np.ndarray:
    """Like ``F.conv_transpose3d``: weight (C_in, C_out/groups, kd, kh, kw)."""
    _check_rank(_as_float(input), 3, "conv_transpose3d")
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------


def _pool_out(i: int, k: int, s: int, pb: int, pa: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape_pad_lr."""
    num = i + pb + pa - d * (k - 1) - 1
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= i + pb:
        o -= 1
    return o


def _pool_setup(x, kernel_size, stride, padding, dilation, ceil_mode, fname, nd):
    nd = _check_rank(x, nd, fname)
    ks = _ntuple(kernel_size, nd, "kernel_size")
    st = ks if stride is None or (not _is_int(stride) and len(tuple(stride)) == 0) \
        else _ntuple(stride, nd, "stride")
    dl = _ntuple(dilation, nd, "dilation")
    pairs = _pairs(padding, nd)
    if any(k < 1 for k in ks):
        raise ValueError(f"{fname}: kernel_size must be greater than zero, but got {ks}")
    if any(s < 1 for s in st):
        raise ValueError(f"{fname}: stride must be greater than zero, but got {st}")
    if any(d < 1 for d in dl):
        raise ValueError(f"{fname}: dilation must be greater than zero, but got {dl}")
    if any(v < 0 for pr in pairs for v in pr):
        raise ValueError(f"{fname}: pad must be non-negative, but got {padding!r}")
    if any(pb > k // 2 or pa > k // 2 for (pb, pa), k in zip(pairs, ks)):
        raise ValueError(f"{fname}: pad should be at most half of effective kernel size, but got "
                         f"pad={padding!r}, kernel_size={_fmt(ks)}")
    out = tuple(_pool_out(i, k, s, pb, pa, d, bool(ceil_mode))
                for i, k, s, (pb, pa), d in zip(x.shape[2:], ks, st, pairs, dl))
    if any(o < 1 for o in out):
        raise ValueError(f"{fname}: Given input size: ({_fmt(x.shape[1:])}). Calculated output size: "
                         f"({_fmt((x.shape[1],) + out)}). Output size is too small")
    return nd, ks, st, dl, pairs, out


TAPS_IN_TURN = 32  # pool windows up to this many taps are reduced tap by tap


def _window_reduce(x: np.ndarray, ax: int, k: int, s: int, d: int, pb: int, o: int,
                   fill: float, reducer) -> np.ndarray:
    """Reduce windows along one axis with the ufunc ``reducer`` (np.maximum,
    np.add): window j covers padded taps j*s + t*d, t < k."""
    n = x.shape[ax]
    need = (o - 1) * s + d * (k - 1) + 1  # padded length actually read
    pa = need - n - pb
    pairs = [(0, 0)] * (x.ndim - 2)
    pairs[ax - 2] = (pb, pa)
    xp = _pad_pairs(x, pairs, "constant", fill)
    if k <= TAPS_IN_TURN:
        # tap by tap, each a strided slice of the outputs' length: NumPy's
        # reduce over a strided window axis is several times slower
        def tap(t):
            at = [slice(None)] * xp.ndim
            at[ax] = slice(t * d, t * d + (o - 1) * s + 1, s)
            return xp[tuple(at)]
        acc = np.array(tap(0))
        for t in range(1, k):
            reducer(acc, tap(t), out=acc)
        return acc
    span = d * (k - 1) + 1
    win = sliding_window_view(xp, span, axis=ax)  # window axis appended last
    idx = [slice(None)] * win.ndim
    idx[ax] = slice(0, (o - 1) * s + 1, s)
    idx[-1] = slice(None, None, d)
    return reducer.reduce(win[tuple(idx)], axis=-1)


def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
             return_indices: bool = False, _nd: Optional[int] = None, _fname: str = "max_pool"):
    """N-d max pooling like ``F.max_pool{1,2,3}d`` (padding counts as -inf).

    ``padding`` may be ``(before, after)`` pairs; ceil mode then uses the
    same rule as PyTorch's ``pooling_output_shape_pad_lr``: the output size
    is rounded up, but the last window must start inside the input or the
    left padding.
    """
    if return_indices:
        raise NotImplementedError("return_indices is not supported by convcalc.ops")
    x = _as_float(input)
    nd, ks, st, dl, pairs, out = _pool_setup(x, kernel_size, stride, padding, dilation,
                                             ceil_mode, _fname, _nd)
    for j in range(nd):
        x = _window_reduce(x, 2 + j, ks[j], st[j], dl[j], pairs[j][0], out[j], -np.inf, np.maximum)
    return np.ascontiguousarray(x)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Like ``F.max_pool1d``."""
    return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Like ``F.max_pool2d``."""
    return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Like ``F.max_pool3d``."""
    return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3, "max_pool3d")


def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
             count_include_pad: bool = True, divisor_override: Optional[int] = None,
             _nd: Optional[int] = None, _fname: str = "avg_pool") -> np.ndarray:
    """N-d average pooling like ``F.avg_pool{1,2,3}d``.

    The sum runs over the window with zero padding.  The divisor, per
    PyTorch: with ``count_include_pad`` the window clipped to
    [-pad_before, input + pad_after) (so a ceil-mode window hanging past the
    right padding is not charged for the overhang); without it, the window
    clipped to the input.  ``divisor_override`` replaces both.  With three
    spatial dims, the unpadded input must be at least the kernel in every dim
    (PyTorch's avg_pool3d check; max_pool3d and 1-D/2-D pools have none).
    """
    x = _as_float(input)
    nd, ks, st, _, pairs, out = _pool_setup(x, kernel_size, stride, padding, 1,
                                            ceil_mode, _fname, _nd)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor must be not zero")
    spatial = x.shape[2:]
    if nd == 3 and any(i < k for i, k in zip(spatial, ks)):
        # PyTorch's avg_pool3d (only the 3-D one) wants the UNPADDED input to
        # be at least the kernel in every dim, whatever the padding
        raise ValueError(f"{_fname}: input image (T: {spatial[0]} H: {spatial[1]} W: {spatial[2]}) "
                         f"smaller than kernel size (kT: {ks[0]} kH: {ks[1]} kW: {ks[2]})")
    for j in range(nd):
        x = _window_reduce(x, 2 + j, ks[j], st[j], 1, pairs[j][0], out[j], 0.0, np.add)
    if divisor_override is not None:
        return np.ascontiguousarray(x / x.dtype.type(divisor_override))
    div = np.ones((), dtype=np.int64)
    for j in range(nd):
        i, k, s, (pb, pa), o = spatial[j], ks[j], st[j], pairs[j], out[j]
        start = np.arange(o) * s - pb
        end = np.minimum(start + k, i + pa)
        if count_include_pad:
            cnt = end - start
        else:
            cnt = np.minimum(end, i) - np.maximum(start, 0)
        div = np.multiply.outer(div, cnt)
    return np.ascontiguousarray(x / div.astype(x.dtype))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Like ``F.avg_pool1d``."""
    return avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Like ``F.avg_pool2d``."""
    return avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    divisor_override, 2, "avg_pool2d")


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Like ``F.avg_pool3d``."""
    return avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    divisor_override, 3, "avg_pool3d")


# ---------------------------------------------------------------------------
# adaptive pooling
# ---------------------------------------------------------------------------


def _adaptive_windows(i: int, o: int):
    """Window j = [floor(j*i/o), ceil((j+1)*i/o)) as a padded index table."""
    j = np.arange(o)
    start = (j * i) // o
    end = ((j + 1) * i + o - 1) // o
    length = end - start
    L = int(length.max()) if o else 0
    idx = start[:, None] + np.arange(L)[None, :]
    mask = idx < end[:, None]
    return np.minimum(idx, i - 1), mask, length


def _adaptive_sizes(x: np.ndarray, output_size, nd: int, fname: str) -> Tuple[int, ...]:
    if output_size is None or _is_int(output_size):
        sizes = [output_size] * nd
    else:
        sizes = list(output_size)
        if len(sizes) == 1 and nd != 1:
            sizes = sizes * nd
        if len(sizes) != nd:
            raise ValueError(f"{fname}: output_size must have {nd} elements, got {output_size!r}")
    out = tuple(x.shape[2 + k] if s is None else int(s) for k, s in enumerate(sizes))
    if any(o < 0 for o in out):
        raise ValueError(f"{fname}: elements of output_size must be greater than or equal to 0 "
                         f"but received {output_size!r}")
    if any(n == 0 for n in x.shape[2:]):
        raise ValueError(f"{fname}: Expected input to have non-zero size for non-batch dimensions, "
                         f"but input has sizes {list(x.shape)}")
    return out


def _adaptive(x: np.ndarray, out: Sequence[int], kind: str) -> np.ndarray:
    for k, o in enumerate(out):
        ax = 2 + k
        i = x.shape[ax]
        if o == i:
            continue
        if o > 0 and i % o == 0:  # uniform windows: a reshape does it
            shp = x.shape[:ax] + (o, i // o) + x.shape[ax + 1:]
            r = x.reshape(shp)
            x = r.max(axis=ax + 1) if kind == "max" else r.sum(axis=ax + 1) / x.dtype.type(i // o)
            continue
        idx, mask, length = _adaptive_windows(i, o)
        t = np.take(x, idx, axis=ax)  # (..., o, L, ...)
        m = mask.reshape(mask.shape + (1,) * (x.ndim - ax - 1))
        if kind == "max":
            x = np.where(m, t, -np.inf).astype(x.dtype, copy=False).max(axis=ax + 1)
        else:
            s = np.where(m, t, 0).astype(x.dtype, copy=False).sum(axis=ax + 1)
            x = s / length.astype(x.dtype).reshape((o,) + (1,) * (x.ndim - ax - 1))
    return np.ascontiguousarray(x)


def adaptive_avg_pool(input, output_size, _nd: Optional[int] = None,
                      _fname: str = "adaptive_avg_pool") -> np.ndarray:
    """N-d adaptive average pool: output window j of a dim spans
    ``[floor(j*i/o), ceil((j+1)*i/o))``.  ``None`` in output_size keeps that dim."""
    x = _as_float(input)
    nd = _check_rank(x, _nd, _fname)
    return _adaptive(x, _adaptive_sizes(x, output_size, nd, _fname), "avg")


def adaptive_max_pool(input, output_size, return_indices: bool = False, _nd: Optional[int] = None,
                      _fname: str = "adaptive_max_pool") -> np.ndarray:
    """N-d adaptive max pool, windows as in :func:`adaptive_avg_pool`."""
    if return_indices:
        raise NotImplementedError("return_indices is not supported by convcalc.ops")
    x = _as_float(input)
    nd = _check_rank(x, _nd, _fname)
    return _adaptive(x, _adaptive_sizes(x, output_size, nd, _fname), "max")


def adaptive_avg_pool1d(input, output_size):
    """Like ``F.adaptive_avg_pool1d``."""
    return adaptive_avg_pool(input, output_size, 1, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input, output_size):
    """Like ``F.adaptive_avg_pool2d``."""
    return adaptive_avg_pool(input, output_size, 2, "adaptive_avg_pool2d")


def adaptive_avg_pool3d(input, output_size):
    """Like ``F.adaptive_avg_pool3d``."""
    return adaptive_avg_pool(input, output_size, 3, "adaptive_avg_pool3d")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Like ``F.adaptive_max_pool1d``."""
    return adaptive_max_pool(input, output_size, return_indices, 1, "adaptive_max_pool1d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Like ``F.adaptive_max_pool2d``."""
    return adaptive_max_pool(input, output_size, return_indices, 2, "adaptive_max_pool2d")


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Like ``F.adaptive_max_pool3d``."""
    return adaptive_max_pool(input, output_size, return_indices, 3, "adaptive_max_pool3d")


# ---------------------------------------------------------------------------
# interpolation
# ---------------------------------------------------------------------------

_INTERP_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_MODE_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_CUBIC_A = -0.75


def _interp_scale(i: int, o: int, align_corners: bool, sf: Optional[float], ft):
    """PyTorch's area_pixel_compute_scale, in the op's math type ``ft``."""
    if align_corners:
        return ft(i - 1) / ft(o - 1) if o > 1 else ft(0)
    if sf is not None and sf > 0:
        return ft(1.0 / sf)
    return ft(i) / ft(o)


def _source_index(scale, o: int, align_corners: bool, cubic: bool, ft) -> np.ndarray:
    """PyTorch's area_pixel_compute_source_index for dst = 0..o-1."""
    dst = np.arange(o).astype(ft)
    if align_corners:
        return scale * dst
    src = scale * (dst + ft(0.5)) - ft(0.5)
    return src if cubic else np.maximum(src, ft(0))


def _cubic_coeffs(t: np.ndarray):
    A = t.dtype.type(_CUBIC_A)

    def cc1(v):  # |v| <= 1
        return ((A + 2) * v - (A + 3)) * v * v + 1

    def cc2(v):  # 1 < |v| < 2
        return ((A * v - 5 * A) * v + 8 * A) * v - 4 * A

    return [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)]


def _axis_taps(i: int, o: int, mode: str, align_corners: bool, sf: Optional[float], ft,
               nearest_shortcuts: bool = False):
    """(index arrays, weight arrays or None) of one axis."""
    # PyTorch rounds the source coordinate with floorf(): computed in the op's
    # math type, then converted to float32 before taking the floor.  For
    # float32, the compiled kernel fuses scale*(dst+0.5)-0.5 into one FMA; the
    # exact float64 product emulates it.
    if mode == "nearest":
        if nearest_shortcuts and o == i:
            return [np.arange(o)], [None]
        if nearest_shortcuts and o == 2 * i:
            return [np.arange(o) >> 1], [None]
        scale = _interp_scale(i, o, False, sf, ft)
        src = (scale * np.arange(o).astype(ft)).astype(np.float32)
        return [np.minimum(np.floor(src).astype(np.int64), i - 1)], [None]
    if mode == "nearest-exact":
        scale = _interp_scale(i, o, False, sf, ft)
        dst = np.arange(o, dtype=np.float64) + 0.5
        src = (np.float64(scale) * dst - 0.5).astype(ft)
        src = np.maximum(src, ft(0)) + ft(0.5)
        return [np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), i - 1)], [None]
    if mode in ("linear", "bilinear", "trilinear"):
        if o == i:  # PyTorch copies when the size is unchanged, whatever the scale
            return [np.arange(o)], [None]
        scale = _interp_scale(i, o, align_corners, sf, ft)
        src = _source_index(scale, o, align_corners, False, ft)
        i0 = np.minimum(np.floor(src).astype(np.int64), i - 1)
        l1 = np.clip(src - i0.astype(ft), ft(0), ft(1)).astype(ft)
        i1 = i0 + (i0 < i - 1)
        return [i0, i1], [ft(1) - l1, l1]
    if mode == "bicubic":
        scale = _interp_scale(i, o, align_corners, sf, ft)
        src = _source_index(scale, o, align_corners, True, ft)
        fl = np.floor(src)
        t = (src - fl).astype(ft)
        i0 = fl.astype(np.int64)
        idx = [np.clip(i0 - 1 + m, 0, i - 1) for m in range(4)]
        return idx, _cubic_coeffs(t)
    raise ValueError(f"unknown interpolation mode {mode!r}")


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None,
                antialias: bool = False) -> np.ndarray:
    """Like ``F.interpolate`` (modes nearest, nearest-exact, linear, bilinear,
    bicubic, trilinear, area), with PyTorch's CPU index arithmetic:

    * output size = ``size``, or ``floor(i * scale_factor)``;
    * the source scale is ``1/scale_factor`` when a scale factor is given (and
      not recomputed), else ``in/out``; with ``align_corners`` it is
      ``(in-1)/(out-1)``;
    * nearest reads ``floor(dst*scale)`` (in 2-D only: a copy when the size is
      unchanged and ``dst // 2`` when it doubles, as PyTorch's 2-D kernel
      does); nearest-exact
      ``floor(max((dst+0.5)*scale - 0.5, 0) + 0.5)`` (both floors taken in
      float32, as PyTorch's ``floorf``); linear modes the two neighbours
      of ``max((dst+0.5)*scale - 0.5, 0)`` (a plain copy when the size does
      not change); bicubic the four neighbours (A = -0.75), indices clamped
      to the border; area is adaptive average pooling.

    Index math runs in float32 for float32 input and float64 for float64, as
    PyTorch's ``opmath`` does.
    """
    x = _as_float(input)
    if mode not in _INTERP_MODES:
        raise ValueError(f"interpolate: unknown mode {mode!r}; expected one of {', '.join(_INTERP_MODES)}")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
        align = False
    else:
        align = bool(align_corners) if align_corners is not None else False
    if antialias:
        raise NotImplementedError("antialias is not supported by convcalc.ops")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) "
                         f"for the modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
                         f"(got {mode})")
    nd = x.ndim - 2
    need = _MODE_RANK.get(mode)
    if need is not None and need != nd:
        raise ValueError(f"Got {x.ndim}D input, but {mode} mode needs {need + 2}D input")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    spatial = x.shape[2:]
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        if _is_int(size):
            out = (int(size),) * nd
        else:
            out = tuple(size)
            if len(out) != nd:
                raise ValueError(f"Input and output must have the same number of spatial dimensions, but got "
                                 f"input with spatial dimensions of {list(spatial)} and output size of {list(out)}.")
            if not all(_is_int(v) for v in out):
                raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(v) for v in out]}")
            out = tuple(int(v) for v in out)
        scales = (None,) * nd
    elif scale_factor is not None:
        if isinstance(scale_factor, (int, float, np.integer, np.floating)):
            sfs = (float(scale_factor),) * nd
        else:
            sfs = tuple(float(v) for v in scale_factor)
            if len(sfs) != nd:
                raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but "
                                 f"got input with spatial dimensions of {list(spatial)} and scale_factor of "
                                 f"shape {list(sfs)}.")
        out = tuple(math.floor(float(i) * s) for i, s in zip(spatial, sfs))
        scales = (None,) * nd if (recompute_scale_factor or mode == "area") else sfs
    else:
        raise ValueError("either size or scale_factor should be defined")
    if any(o <= 0 for o in out) or any(i <= 0 for i in spatial):
        raise ValueError(f"Input and output sizes should be greater than 0, but got input "
                         f"({_fmt(spatial)}) output ({_fmt(out)})")
    if mode == "area":
        return _adaptive(x, out, "avg")
    ft = x.dtype.type
    # PyTorch's 2-D nearest kernel (only that one) copies a dim whose size is
    # unchanged and maps dst -> dst // 2 when it exactly doubles, whatever the
    # scale factor says; 1-D and 3-D use floor(dst * scale) throughout.
    shortcuts = mode == "nearest" and nd == 2
    for k in range(nd):
        ax = 2 + k
        idxs, ws = _axis_taps(spatial[k], out[k], mode, align, scales[k], ft, shortcuts)
        if len(idxs) == 1 and ws[0] is None:
            if not (out[k] == spatial[k] and np.array_equal(idxs[0], np.arange(out[k]))):
                x = np.take(x, idxs[0], axis=ax)
            continue
        wshape = (-1,) + (1,) * (x.ndim - ax - 1)
        acc = None
        for idx, w in zip(idxs, ws):
            term = np.take(x, idx, axis=ax) * np.asarray(w, dtype=x.dtype).reshape(wshape)
            acc = term if acc is None else acc + term
        x = acc
    return np.ascontiguousarray(x)


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """Like the deprecated ``F.upsample``: :func:`interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)


# ---------------------------------------------------------------------------
# normalisation, dense and shape ops
# ---------------------------------------------------------------------------


def _normalized(x: np.ndarray, mean, var, eps: float, w, b) -> np.ndarray:
    """(x − mean)/√(var + eps), then the affine weight and bias (the norms' last
    step), computed as PyTorch's CPU kernel does: per channel α = w/√(var + eps)
    and β = b − mean·α, then x·α + β (two passes over x, not four)."""
    alpha = 1 / np.sqrt(var + x.dtype.type(eps))
    if w is not None:
        alpha = alpha * w
    beta = -mean * alpha if b is None else b - mean * alpha
    y = x * alpha
    # in place when nothing widens: the same arithmetic without a temporary
    fits = np.result_type(y, beta) == y.dtype and \
        np.broadcast_shapes(y.shape, np.shape(beta)) == y.shape
    y = np.add(y, beta, out=y) if fits else y + beta
    return y.astype(x.dtype, copy=False)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> np.ndarray:
    """Like ``F.batch_norm`` over dim 1 of an (N, C, ...) input.

    Eval mode normalises with the running statistics.  ``training=True``
    normalises with the batch's mean and biased variance and, like PyTorch,
    updates ``running_mean`` / ``running_var`` in place (unbiased variance)
    when they are given as float arrays.
    """
    x = _as_float(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of at least 2 dims (N, C, ...), got {tuple(x.shape)}")
    C = x.shape[1]
    shp = (1, C) + (1,) * (x.ndim - 2)

    def vec(v, name):
        if v is None:
            return None
        a = np.asarray(v, dtype=x.dtype)
        if a.shape != (C,):
            raise ValueError(f"batch_norm: {name} should contain {C} elements not {a.size}")
        return a.reshape(shp)

    w = vec(weight, "weight")
    b = vec(bias, "bias")
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        n = x.size // max(C, 1)
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        for buf, stat in ((running_mean, mean), (running_var, var * (n / (n - 1)))):
            if isinstance(buf, np.ndarray) and buf.dtype.kind == "f":
                buf *= (1 - momentum)
                buf += momentum * stat.reshape(C).astype(buf.dtype)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var must be defined in evaluation mode")
        mean = vec(running_mean, "running_mean")
        var = vec(running_var, "running_var")
    return _normalized(x, mean, var, eps, w, b)


def _shape_list(v) -> list:
    return list(np.shape(v))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> np.ndarray:
    """Like ``F.layer_norm``: normalise over the last ``len(normalized_shape)``
    dims with their mean and biased variance, then scale by ``weight`` and
    shift by ``bias`` (both of shape ``normalized_shape``).  An int
    ``normalized_shape`` means one dim (as ``nn.LayerNorm`` accepts)."""
    x = _as_float(input)
    shape = (normalized_shape,) if _is_int(normalized_shape) else tuple(normalized_shape)
    if not all(_is_int(v) for v in shape):
        raise ValueError(f"layer_norm: normalized_shape must be a sequence of ints, got {normalized_shape!r}")
    shape = tuple(int(v) for v in shape)
    if not shape:
        raise ValueError("Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
                         "least one element, but got normalized_shape = []")
    k = len(shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size{list(x.shape)}")
    w, b = _like(weight, x), _like(bias, x)
    for name, v in (("weight", w), ("bias", b)):
        if v is not None and tuple(v.shape) != shape:
            raise ValueError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
                             f"shape {_shape_list(v)} and normalized_shape = {list(shape)}")
    if x.size == 0:
        return x.copy()
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    var = (d * d).mean(axis=axes, keepdims=True)
    y = d * (1 / np.sqrt(var + x.dtype.type(eps)))
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(x.dtype, copy=False)


def _channel_vec(v, x: np.ndarray, C: int, msg) -> Optional[np.ndarray]:
    """A per-channel parameter as a (1, C, 1, ...) array of x's dtype."""
    if v is None:
        return None
    a = np.asarray(v, dtype=x.dtype)
    if a.ndim != 1 or a.shape[0] != C:
        raise ValueError(msg(a))
    return a.reshape((1, C) + (1,) * (x.ndim - 2))


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> np.ndarray:
    """Like ``F.group_norm``: split the C channels of an (N, C, ...) input into
    ``num_groups`` groups of consecutive channels and normalise each sample's
    group with its mean and biased variance (over the group's channels and
    all spatial positions), then apply the per-channel ``weight``/``bias``.

    Raises like PyTorch when C is not divisible by ``num_groups`` and, as
    ``F.group_norm`` does, when ``N * C / num_groups * prod(spatial)`` is 1.
    """
    x = _as_float(input)
    if x.ndim < 2:
        raise ValueError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    if not _is_int(num_groups):
        raise ValueError(f"group_norm: num_groups must be an int, got {num_groups!r}")
    G = int(num_groups)
    N, C = x.shape[:2]
    if G <= 0:
        raise ValueError(f"Expected num groups to be greater than 0, got {G}")
    spatial = tuple(x.shape[2:])
    check = [N * C // G, G, *spatial]
    if math.prod(check[:1] + check[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {check}")
    if C % G:
        raise ValueError(f"Expected number of channels in input to be divisible by num_groups, but got "
                         f"input of shape {list(x.shape)} and num_groups={G}")

    def vec(v, name):
        return _channel_vec(v, x, C, lambda a: (
            f"Expected {name} to be a vector of size equal to the number of channels in input, but got "
            f"{name} of shape {_shape_list(a)} and input of shape {list(x.shape)}"))

    w, b = vec(weight, "weight"), vec(bias, "bias")
    if x.size == 0:
        return x.copy()
    g = x.reshape(N, G, (C // G) * math.prod(spatial))
    mean = g.mean(axis=2, keepdims=True)
    d = g - mean
    var = (d * d).mean(axis=2, keepdims=True)
    y = (d * (1 / np.sqrt(var + x.dtype.type(eps)))).reshape(x.shape)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(x.dtype, copy=False)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> np.ndarray:
    """Like ``F.instance_norm`` on an (N, C, spatial...) input.

    With ``use_input_stats`` (the default, and what ``nn.InstanceNorm*d`` does
    without ``track_running_stats`` even in eval) each sample's channel is
    normalised with its own mean and biased variance over the spatial dims;
    given running statistics are then updated in place like PyTorch does
    (``(1 - momentum) * old + momentum * batch-average`` of the per-instance
    mean and unbiased variance).  Otherwise the running statistics are used.
    """
    x = _as_float(input)
    if use_input_stats and math.prod(x.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{list(x.shape)}")
    if x.ndim < 2:
        raise ValueError(f"instance_norm: expected an input of at least 2 dims (N, C, ...), got "
                         f"{list(x.shape)}")
    N, C = x.shape[:2]
    if use_input_stats and (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")

    def vec(v, name):  # PyTorch repeats it N times and checks against N * C
        return _channel_vec(v, x, C, lambda a: f"{name} should contain {N * C} elements not {N * a.size}")

    w, b = vec(weight, "weight"), vec(bias, "bias")
    rm, rv = vec(running_mean, "running_mean"), vec(running_var, "running_var")
    if x.size == 0:
        return x.copy()
    if use_input_stats:
        axes = tuple(range(2, x.ndim))
        n = math.prod(x.shape[2:])
        mean = x.mean(axis=axes, keepdims=True)
        d = x - mean
        var = (d * d).mean(axis=axes, keepdims=True)
        for buf, stat in ((running_mean, mean), (running_var, var * (n / (n - 1)))):
            if isinstance(buf, np.ndarray) and buf.dtype.kind == "f":
                buf *= (1 - momentum)
                buf += momentum * stat.reshape(N, C).mean(axis=0).astype(buf.dtype)
    else:
        if rm is None or rv is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats "
                             "is false")
        mean, var = rm, rv
    return _normalized(x, mean, var, eps, w, b)


def linear(input, weight, bias=None) -> np.ndarray:
    """Like ``F.linear``: ``input @ weight.T + bias`` over the last dim."""
    x = _as_float(input)
    w = _like(weight, x)
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"mat1 and mat2 shapes cannot be multiplied "
                         f"({int(np.prod(x.shape[:-1]))}x{x.shape[-1]} and {w.shape[-1]}x{w.shape[0]})")
    y = x @ w.T
    if bias is not None:
        y += _like(bias, x)
    return y


def flatten(input, start_dim: int = 1, end_dim: int = -1) -> np.ndarray:
    """Flatten dims start_dim..end_dim (default: all but the batch dim, like ``nn.Flatten``)."""
    x = _as_float(input)
    nd = max(x.ndim, 1)
    s = start_dim % nd
    e = end_dim % nd
    if s > e:
        raise ValueError("flatten() has invalid args: start_dim cannot come after end_dim")
    return x.reshape(x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:])


def _factor(r, fname: str, what: str) -> int:
    if not _is_int(r):
        raise ValueError(f"{fname}(): argument '{what}' must be int, not {type(r).__name__}")
    if r <= 0:
        raise ValueError(f"{fname} expects a positive {what}, but got {int(r)}")
    return int(r)


def pixel_shuffle(input, upscale_factor: int) -> np.ndarray:
    """Like ``F.pixel_shuffle``: (*, C*r*r, H, W) -> (*, C, H*r, W*r), with
    ``out[..., c, h*r + i, w*r + j] = in[..., c*r*r + i*r + j, h, w]``.
    Any rank >= 3 is accepted; the dims before the last three are batch dims."""
    x = _as_float(input)
    r = _factor(upscale_factor, "pixel_shuffle", "upscale_factor")
    if x.ndim < 3:
        raise ValueError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input "
                         f"with {x.ndim} dimension(s)")
    *lead, C, H, W = x.shape
    if C % (r * r):
        raise ValueError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
                         f"square of upscale_factor, but input.size(-3)={C} is not divisible by {r * r}")
    k = len(lead)
    y = x.reshape(*lead, C // (r * r), r, r, H, W)
    y = y.transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)  # c, h, i, w, j
    return np.ascontiguousarray(y).reshape(*lead, C // (r * r), H * r, W * r)


def pixel_unshuffle(input, downscale_factor: int) -> np.ndarray:
    """Like ``F.pixel_unshuffle``, the inverse of :func:`pixel_shuffle`:
    (*, C, H*r, W*r) -> (*, C*r*r, H, W).  Any rank >= 3 is accepted.

    PyTorch quirk kept: on CPU an input with no elements comes back
    unchanged, shape included (``(0, 1, 2, 2)`` stays ``(0, 1, 2, 2)`` with
    r = 2; the meta device says ``(0, 4, 1, 1)``)."""
    x = _as_float(input)
    r = _factor(downscale_factor, "pixel_unshuffle", "downscale_factor")
    if x.ndim < 3:
        raise ValueError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input "
                         f"with {x.ndim} dimension(s)")
    *lead, C, H, W = x.shape
    if H % r:
        raise ValueError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but "
                         f"input.size(-2)={H} is not divisible by {r}")
    if W % r:
        raise ValueError(f"pixel_unshuffle expects width to be divisible by downscale_factor, but "
                         f"input.size(-1)={W} is not divisible by {r}")
    if x.size == 0:
        return x.copy()
    k = len(lead)
    y = x.reshape(*lead, C, H // r, r, W // r, r)
    y = y.transpose(*range(k), k, k + 2, k + 4, k + 1, k + 3)  # c, i, j, h, w
    return np.ascontiguousarray(y).reshape(*lead, C * r * r, H // r, W // r)


def channel_shuffle(input, groups: int) -> np.ndarray:
    """Like ``F.channel_shuffle`` / ``nn.ChannelShuffle`` (ShuffleNet): view the
    C channels of an (N, C, *) input as (groups, C/groups), transpose, flatten
    back -- output channel ``j * groups + i`` is input channel ``i * C/groups + j``."""
    x = _as_float(input)
    if x.ndim <= 2:
        raise ValueError(f"channel_shuffle expects input with > 2 dims, but got input with sizes "
                         f"{list(x.shape)}")
    if not _is_int(groups):
        raise ValueError(f"channel_shuffle(): argument 'groups' must be int, not {type(groups).__name__}")
    g = int(groups)
    if g <= 0:
        raise ValueError(f"Number of groups to divide channels in must be positive. Value of groups:{g}")
    N, C = x.shape[:2]
    if C % g:
        raise ValueError(f"Number of channels must be divisible by groups. Got {C} channels and {g} groups.")
    y = x.reshape(N, g, C // g, *x.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(y).reshape(x.shape)


def _check_p(p: float) -> None:
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


_ALPHA_DROPOUT = 1.7580993408473766  # -SELU alpha * scale: SELU's negative saturation value


def _dropout_impl(x: np.ndarray, p: float, training: bool, rng, feature: bool = False,
                  alpha: bool = False, noise_shape=None) -> np.ndarray:
    """PyTorch's ``_dropout_impl``: identity unless training with 0 < p; p == 1
    multiplies by 0 (NaN and inf stay NaN); otherwise one Bernoulli(1 - p)
    draw per element, or per (sample, channel) for feature dropout."""
    if not training or p == 0 or x.size == 0:
        return x
    t = x.dtype.type
    if p == 1:
        with np.errstate(invalid="ignore"):
            return x * t(0)
    if noise_shape is None:
        if feature:
            if x.ndim < 2:
                raise ValueError("Feature dropout requires at least 2 dimensions in the input")
            noise_shape = x.shape[:2] + (1,) * (x.ndim - 2)
        else:
            noise_shape = x.shape
    rng = np.random.default_rng() if rng is None else rng
    keep = (np.asarray(rng.random(noise_shape)) >= p).astype(x.dtype)
    if not alpha:
        return x * (keep * t(1 / (1 - p)))
    a = 1.0 / math.sqrt((_ALPHA_DROPOUT ** 2 * p + 1) * (1 - p))
    shift = (keep - t(1)) * t(_ALPHA_DROPOUT * a) + t(_ALPHA_DROPOUT * a * p)
    return x * (keep * t(a)) + shift


def dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False,
            rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Identity unless ``training`` (note: ``F.dropout`` defaults to training=True;
    here the default is inference).  In training, zeroes elements with
    probability ``p`` and scales the rest by ``1/(1-p)``; ``rng`` (a NumPy
    Generator, default a fresh one) draws the mask."""
    _check_p(p)
    return _dropout_impl(_as_float(input), p, training, rng)


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False,
                  rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Like ``F.alpha_dropout``: identity unless ``training``; in training a
    dropped element becomes SELU's saturation value and everything is
    rescaled to keep mean 0 / variance 1: kept ``a*x + alpha*a*p``, dropped
    ``-alpha*a*(1-p)`` with ``alpha = 1.7581`` and
    ``a = 1/sqrt((alpha^2 p + 1)(1 - p))``."""
    _check_p(p)
    return _dropout_impl(_as_float(input), p, training, rng, alpha=True)


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False,
                          rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Like ``F.feature_alpha_dropout``: :func:`alpha_dropout` with one draw per
    (sample, channel) of an (N, C, ...) input (no unbatched reading)."""
    _check_p(p)
    return _dropout_impl(_as_float(input), p, training, rng, feature=True, alpha=True)


def dropout1d(input, p: float = 0.5, training: bool = False, inplace: bool = False,
              rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Like ``F.dropout1d`` (default inference: identity): channel-wise dropout
    of an (N, C, L) or unbatched (C, L) input; other ranks raise, even in eval."""
    _check_p(p)
    x = _as_float(input)
    if x.ndim not in (2, 3):
        raise ValueError(f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input. Note that "
                         f"dropout1d exists to provide channel-wise dropout on inputs with 1 spatial "
                         f"dimension, a channel dimension, and an optional batch dimension (i.e. 2D or "
                         f"3D inputs).")
    shape = x.shape[:2] + (1,) if x.ndim == 3 else (x.shape[0], 1)
    return _dropout_impl(x, p, training, rng, feature=True, noise_shape=shape)


def dropout2d(input, p: float = 0.5, training: bool = False, inplace: bool = False,
              rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Like ``F.dropout2d`` (default inference: identity): one draw per
    (dim 0, dim 1) pair whatever the rank -- PyTorch (with a deprecation
    warning) reads a 3-D input as (N, C, L), not as unbatched (C, H, W),
    and needs at least 2 dims in training."""
    _check_p(p)
    return _dropout_impl(_as_float(input), p, training, rng, feature=True)


def dropout3d(input, p: float = 0.5, training: bool = False, inplace: bool = False,
              rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Like ``F.dropout3d`` (default inference: identity): one draw per
    (N, C) of a 5-D input; any other rank is read as unbatched, one draw
    per entry of dim 0 (PyTorch unsqueezes a batch dim, with a warning
    unless the input is 4-D)."""
    _check_p(p)
    x = _as_float(input)
    if x.ndim == 5:
        shape = x.shape[:2] + (1, 1, 1)
    elif x.ndim >= 1:
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    else:
        shape = None  # 0-d: unsqueezed to 1-D, which feature dropout refuses
    if shape is None and training and 0 < p < 1:
        raise ValueError("Feature dropout requires at least 2 dimensions in the input")
    return _dropout_impl(x, p, training, rng, feature=True, noise_shape=shape)


def stochastic_depth(input, p: float, mode: str, training: bool = True,
                     rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Like ``torchvision.ops.stochastic_depth`` (note: its default is
    training=True, kept here): identity when not training or ``p == 0``;
    otherwise zero the whole input (``mode='batch'``) or each sample
    (``mode='row'``) with probability ``p`` and scale survivors by
    ``1/(1-p)``."""
    if p < 0 or p > 1:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    x = _as_float(input)
    if not training or p == 0:
        return x
    if mode == "row":
        if x.ndim == 0:
            raise ValueError("stochastic_depth: mode 'row' needs an input with a batch dimension")
        size = (x.shape[0],) + (1,) * (x.ndim - 1)
    else:
        size = (1,) * x.ndim
    rng = np.random.default_rng() if rng is None else rng
    noise = (np.asarray(rng.random(size)) >= p).astype(x.dtype)
    if p < 1:
        noise = noise / x.dtype.type(1 - p)
    return x * noise


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

_SQRT1_2 = math.sqrt(0.5)
_2_SQRTPI = 2.0 / math.sqrt(math.pi)
_1_SQRTPI = 1.0 / math.sqrt(math.pi)


def _erfc_pos_f64(z: np.ndarray) -> np.ndarray:
    """erfc(z) for z >= 0 in float64, relative error ~1e-15."""
    out = np.empty_like(z)
    small = z < 2.0
    zs = z[small]
    if zs.size:  # erf series with positive terms: e^{-z^2} sum (2z^2)^n z / (2n+1)!!
        z2 = zs * zs
        term = zs.copy()
        acc = zs.copy()
        for n in range(1, 42):
            term *= (2.0 * z2) / (2 * n + 1)
            acc += term
        out[small] = 1.0 - _2_SQRTPI * np.exp(-z2) * acc
    zl = z[~small]
    if zl.size:  # continued fraction, evaluated backwards from a fixed depth
        f = zl.copy()
        for n in range(64, 0, -1):
            f = zl + (0.5 * n) / f
        out[~small] = _1_SQRTPI * np.exp(-zl * zl) / f
    return out


def _erfc_cheb_f64(z: np.ndarray) -> np.ndarray:
    """erfc(z) for z >= 0, Chebyshev fit (Numerical Recipes), relative error < 1.2e-7."""
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    return t * np.exp(-z * z + poly)


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc in the dtype of x (float32: ~1e-7 relative; float64: ~1e-15)."""
    z = np.abs(x.astype(np.float64))
    r = _erfc_cheb_f64(z) if x.dtype == np.float32 else _erfc_pos_f64(z)
    r = np.where(x < 0, 2.0 - r, r)
    return r.astype(x.dtype, copy=False)


def erf(input) -> np.ndarray:
    """Vectorised error function (float32 to ~1e-7, float64 to ~1e-15)."""
    x = _as_float(input)
    z = np.abs(x.astype(np.float64))
    if x.dtype == np.float32:
        r = 1.0 - _erfc_cheb_f64(z)
    else:
        r = np.empty_like(z)
        small = z < 0.5  # avoid cancellation in 1 - erfc near 0: plain series
        zs = z[small]
        z2 = zs * zs
        term = zs.copy()
        acc = zs.copy()
        for n in range(1, 30):
            term *= -z2 / n
            acc += term / (2 * n + 1)
        r[small] = _2_SQRTPI * acc
        r[~small] = 1.0 - _erfc_pos_f64(z[~small])
    return np.copysign(r, x).astype(x.dtype, copy=False)


def identity(input, *args, **kwargs) -> np.ndarray:
    """The input, unchanged."""
    return _as_float(input)


def relu(input, inplace: bool = False) -> np.ndarray:
    """max(x, 0), like ``F.relu``."""
    x = _as_float(input)
    return np.maximum(x, x.dtype.type(0))


def relu6(input, inplace: bool = False) -> np.ndarray:
    """min(max(x, 0), 6), like ``F.relu6``."""
    x = _as_float(input)
    return np.clip(x, x.dtype.type(0), x.dtype.type(6))


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> np.ndarray:
    """x clipped to [min_val, max_val], like ``F.hardtanh``."""
    x = _as_float(input)
    return np.clip(x, x.dtype.type(min_val), x.dtype.type(max_val))


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> np.ndarray:
    """x if x > 0 else negative_slope * x, like ``F.leaky_relu``."""
    x = _as_float(input)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def elu(input, alpha: float = 1.0, inplace: bool = False) -> np.ndarray:
    """x if x > 0 else alpha * (exp(x) - 1), like ``F.elu``."""
    x = _as_float(input)
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


def celu(input, alpha: float = 1.0, inplace: bool = False) -> np.ndarray:
    """x if x > 0 else alpha * (exp(x / alpha) - 1), like ``F.celu``."""
    x = _as_float(input)
    a = x.dtype.type(alpha)
    return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0) / a))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace: bool = False) -> np.ndarray:
    """scale * elu(x, alpha) with the fixed SELU constants, like ``F.selu``."""
    x = _as_float(input)
    t = x.dtype.type
    return t(_SELU_SCALE) * np.where(x > 0, x, t(_SELU_ALPHA) * np.expm1(np.minimum(x, 0)))


def gelu(input, approximate: str = "none") -> np.ndarray:
    """GELU: exact ``x * Phi(x)`` via erfc, or ``approximate='tanh'``."""
    x = _as_float(input)
    t = x.dtype.type
    if approximate == "tanh":
        inner = t(math.sqrt(2.0 / math.pi)) * (x + t(0.044715) * x * x * x)
        return t(0.5) * x * (t(1) + np.tanh(inner))
    if approximate != "none":
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    # 1 + erf(x/sqrt2) == erfc(-x/sqrt2): accurate in the left tail too
    return t(0.5) * x * _erfc(-(x * t(_SQRT1_2)))


def sigmoid(input) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow, like ``torch.sigmoid``."""
    x = _as_float(input)
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def tanh(input) -> np.ndarray:
    """tanh(x), like ``torch.tanh``."""
    return np.tanh(_as_float(input))


def silu(input, inplace: bool = False) -> np.ndarray:
    """x * sigmoid(x) (swish), like ``F.silu``."""
    x = _as_float(input)
    return x * sigmoid(x)


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """``log(1 + exp(beta*x)) / beta``, linear where ``beta*x > threshold``."""
    x = _as_float(input)
    t = x.dtype.type
    bx = x * t(beta)
    soft = np.logaddexp(t(0), bx) / t(beta)
    return np.where(bx > t(threshold), x, soft)


def mish(input, inplace: bool = False) -> np.ndarray:
    """x * tanh(softplus(x)), like ``F.mish``."""
    x = _as_float(input)
    return x * np.tanh(np.logaddexp(x.dtype.type(0), x))


def hardsigmoid(input, inplace: bool = False) -> np.ndarray:
    """relu6(x + 3) / 6, like ``F.hardsigmoid``."""
    x = _as_float(input)
    t = x.dtype.type
    return np.clip(x + t(3), t(0), t(6)) / t(6)


def hardswish(input, inplace: bool = False) -> np.ndarray:
    """x * relu6(x + 3) / 6, like ``F.hardswish``."""
    x = _as_float(input)
    t = x.dtype.type
    return x * np.clip(x + t(3), t(0), t(6)) / t(6)


def _dim(dim, ndim: int) -> int:
    """A possibly negative dim index, checked like PyTorch (a 0-d tensor has dims -1 and 0)."""
    n = max(ndim, 1)
    if not _is_int(dim) or not -n <= dim < n:
        raise ValueError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return int(dim) % n


def softmax(input, dim: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``dim``, like ``F.softmax``
    (``dim`` may be negative; a row with NaN or +inf, or of only -inf, is NaN)."""
    x = _as_float(input)
    d = _dim(dim, x.ndim)
    if x.ndim == 0:
        return softmax(x.reshape(1), 0).reshape(())
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, as in PyTorch
        e = np.exp(x - np.max(x, axis=d, keepdims=True, initial=-np.inf))
        return e / e.sum(axis=d, keepdims=True)


def log_softmax(input, dim: int = -1) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along ``dim``, like ``F.log_softmax``."""
    x = _as_float(input)
    d = _dim(dim, x.ndim)
    if x.ndim == 0:
        return log_softmax(x.reshape(1), 0).reshape(())
    with np.errstate(invalid="ignore"):
        s = x - np.max(x, axis=d, keepdims=True, initial=-np.inf)
        return s - np.log(np.exp(s).sum(axis=d, keepdims=True))
