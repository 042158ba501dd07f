"""Test helper: import torchvision without its compiled ``_C`` extension.

The torchvision wheel the tests pin is a CUDA build whose ``_C`` cannot load
on a CPU-only torch; importing it then fails registering fake kernels for
ops whose schemas ``_C`` would have defined.  Defining those schemas first
is enough for ``torchvision.models`` (no detection op is ever run).  This
lives with the tests only: the product never imports torchvision.
"""
from __future__ import annotations

_LIB = None  # the Library must stay referenced, or its definitions go away


def import_torchvision():
    """``torchvision`` with the workaround, or None where torch or torchvision is
    missing.  Packages that import torchvision themselves (ptflops) need this
    to have run first."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    try:
        return _import_torchvision()
    except ImportError:
        return None


def torchvision_or_skip():
    """``torchvision``, or skip the calling test when it is not installed."""
    import pytest
    pytest.importorskip("torch")
    try:
        return _import_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed")


def _import_torchvision():
    global _LIB
    import torch
    try:
        import torchvision  # noqa: F401  (a CPU build, or a second call)
        return torchvision
    except RuntimeError:
        pass
    if _LIB is None:
        _LIB = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import sys
    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[mod]  # a half-initialised first attempt
    import torchvision
    return torchvision


def build_on_meta(build):
    """The model with its parameters on the meta device: shapes without
    memory or arithmetic (RegNet-Y 128GF is 2.6 GB of weights).  A builder
    that computes with tensors (RegNet's widths) is built on the CPU with
    initialisation skipped, then moved."""
    import torch
    try:
        with torch.device("meta"):
            return build()
    except (NotImplementedError, RuntimeError):
        pass
    init = torch.nn.init
    saved = {n: getattr(init, n) for n in dir(init) if n.endswith("_") and not n.startswith("_")}
    try:
        for n in saved:
            setattr(init, n, lambda t, *a, **k: t)
        model = build()
    finally:
        for n, f in saved.items():
            setattr(init, n, f)
    return model.to_empty(device="meta")
