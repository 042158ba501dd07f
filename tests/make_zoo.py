#!/usr/bin/env python
"""Regenerate the torchvision zoo in ``src/convcalc/models/`` and its golden file.

    python tests/make_zoo.py [--only NAME ...] [--check]

Needs torch 2.13.0 and torchvision 0.28 (the test helper ``torch_compat``
makes the CUDA wheel import on the CPU torch).  Every torchvision conv net
that SPEC §3b expresses -- the classification models but the ViT, Swin and
MaxViT transformers, and the segmentation models fcn/deeplabv3 resnet50/101,
deeplabv3_mobilenet_v3_large and lraspp_mobilenet_v3_large -- is built
without weights, traced through convcalc's own importer, and written as a
stack file.  The golden file ``tests/golden/zoo.json`` holds torch's numbers
for each, taken from torch alone: the parameters the eval-mode graph uses
(``torch.fx`` keeps only what forward touches, so the inception aux heads
are left out), ``FlopCounterMode`` MACs, the output shape and every traced
node's output shape.  ``tests/test_zoo_golden.py`` checks the committed
stacks against it without torch.

The hand-written zoo entries (resnet18, resnet50, vgg16, alexnet,
mobilenet_v2, …) keep their files; the imported models take the other names.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = HERE.parent / "src" / "convcalc" / "models"
GOLDEN = HERE / "golden" / "zoo.json"

HAND_WRITTEN = {"resnet18", "resnet50", "vgg16", "alexnet", "mobilenet_v2"}
SKIP = re.compile(r"^(vit_|swin_|maxvit_)")
SEGMENTATION = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
INPUT = {"inception_v3": (1, 3, 299, 299), "segmentation": (1, 3, 520, 520)}
FAMILIES = [("resne", "ResNet"), ("wide_resnet", "ResNet"), ("vgg", "VGG"),
            ("densenet", "DenseNet"), ("efficientnet", "EfficientNet"),
            ("mobilenet", "MobileNet"), ("mnasnet", "MnasNet"), ("regnet", "RegNet"),
            ("shufflenet", "ShuffleNet"), ("squeezenet", "SqueezeNet"), ("convnext", "ConvNeXt"),
            ("googlenet", "Inception"), ("inception", "Inception"), ("alexnet", "AlexNet")]


def family(name: str) -> str:
    if name in SEGMENTATION:
        return "segmentation"
    return next((f for prefix, f in FAMILIES if name.startswith(prefix)), "other")


def zoo_names(tv):
    names = [n for n in tv.models.list_models(module=tv.models) if not SKIP.match(n)]
    return sorted(n for n in names if n not in HAND_WRITTEN) + SEGMENTATION


def build(tv, name):
    """The model without weights, on the meta device (shapes, no memory).
    googlenet's and inception_v3's aux heads never run in eval: built without
    them, the model holds just the params its eval forward uses."""
    from torch_compat import build_on_meta
    if name in SEGMENTATION:
        kwargs = {"weights_backbone": None} if name.startswith("lraspp") \
            else {"weights_backbone": None, "aux_loss": False}
    elif name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": False}
    else:
        kwargs = {}
    return build_on_meta(lambda: tv.models.get_model(name, weights=None, **kwargs))


def torch_numbers(torch, model, shape):
    """torch's own count, independent of convcalc: params of the traced eval
    graph, FLOP-counter MACs, the output shape."""
    from torch.utils.flop_counter import FlopCounterMode
    model.eval()
    gm = torch.fx.symbolic_trace(model)
    params = sum(p.numel() for p in gm.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = model(torch.zeros(shape, device="meta"))
    if isinstance(y, dict):
        y = y["out"]
    return params, fc.get_total_flops() // 2, list(y.shape)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="regenerate just these models")
    args = ap.parse_args(argv)
    import torch
    from torch_compat import torchvision_or_skip

    from convcalc.importers.graph import stack_text
    from convcalc.importers.pytorch import trace_torch
    try:
        tv = torchvision_or_skip()
    except BaseException as e:  # pytest.skip outside pytest
        sys.exit(f"torchvision is needed: {e}")
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    names = args.only or zoo_names(tv)
    for name in names:
        t0 = time.time()
        shape = INPUT.get(name, INPUT["segmentation"] if name in SEGMENTATION else (1, 3, 224, 224))
        model = build(tv, name).eval()
        params, macs, out = torch_numbers(torch, model, shape)
        got = trace_torch(model, shape)
        text = stack_text(got.tokens, shape, name, f"torchvision.models.{name}")
        head, _, body = text.partition("\n\n")
        text = (f"{head}\n# family: {family(name)}\n# params: {params}\n# macs: {macs}\n"
                f"# imported from torchvision 0.28 by tests/make_zoo.py (torch's numbers "
                f"above)\n\n{body}")
        (MODELS / f"{name}.stack").write_text(text)
        golden[name] = {"input": list(shape), "output": out, "params": params, "macs": macs,
                        "family": family(name), "tracer": got.tracer,
                        "shapes": [list(s) for s in got.shapes]}
        print(f"{name:32s} {params:>12,} params {macs:>16,} MACs {time.time() - t0:5.1f} s",
              flush=True)
    GOLDEN.write_text("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(golden[k])}"
                                         for k in sorted(golden)) + "\n}\n")
    import make_models_index  # `convcalc models` reads the index: rewrite it too
    make_models_index.main()


if __name__ == "__main__":
    main()
