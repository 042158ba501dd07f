#!/usr/bin/env python
"""How long `--verify` takes on ResNet-50, against PyTorch's own forward pass.

    python bench/verify_vs_torch.py [--input 1x3x224x224] [--repeat 3]

Prints, from one run on this machine: convcalc's verify time (the whole
check: the NumPy forward pass, parameter tensors and the impulse responses),
PyTorch's CPU forward time of the same layers (eval mode, no_grad, best of
--repeat after a warm-up), and their ratio.  Goal: at most 3x.

Without torch installed it prints convcalc's time alone.
"""
from __future__ import annotations

import argparse
import time

import convcalc
from convcalc.verify import verify


def resnet50_stack():
    """ResNet-50 (torchvision v1.5 layout): @resnet50 when the zoo has it,
    else its main path (every layer of every block, no shortcut adds)."""
    if "resnet50" in convcalc.builtin_models():
        return ["@resnet50"]
    tokens = ["conv:64,k=7,s=2,p=3,bias=false", "bn", "relu", "maxpool:3,s=2,p=1"]
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            tokens += [f"conv:{width},k=1,bias=false", "bn", "relu",
                       f"conv:{width},k=3,s={s},p=1,bias=false", "bn", "relu",
                       f"conv:{4 * width},k=1,bias=false", "bn", "relu"]
    return tokens + ["gap", "flatten", "linear:1000"]


def torch_twin(a, torch):
    """The same rows as torch modules, run over the same graph (adds, concats)."""
    nn = torch.nn
    mods = []
    for r in a.layers:
        spec = convcalc.parse_token(r.spec, r.index)
        cin, cout = r.input_shape[1], r.output_shape[1]
        if r.kind == "conv":
            w = r.windows
            mods.append(nn.Conv2d(cin, cout, (w[0].k, w[1].k), (w[0].stride, w[1].stride),
                                  (w[0].pad, w[1].pad), groups=spec["g"], bias=spec["bias"]))
        elif r.kind == "bn":
            mods.append(nn.BatchNorm2d(cin))
        elif r.kind == "act":
            mods.append({"relu": nn.ReLU, "relu6": nn.ReLU6}[spec["name"]]())
        elif r.kind == "maxpool":
            w = r.windows[0]
            mods.append(nn.MaxPool2d(w.k, w.stride, w.pad))
        elif r.kind in ("gap", "aavgpool"):
            mods.append(nn.AdaptiveAvgPool2d(r.output_shape[2:]))
        elif r.kind == "flatten":
            mods.append(nn.Flatten(1))
        elif r.kind == "dropout":
            mods.append(nn.Dropout(spec["p"]))
        elif r.kind == "linear":
            mods.append(nn.Linear(r.input_shape[-1], cout))
        elif r.kind in ("save", "from", "add"):
            mods.append(None)
        else:
            raise SystemExit(f"bench: no torch twin for {r.spec}")
    layers = nn.ModuleList(m if m is not None else nn.Identity() for m in mods)

    def forward(x):
        outs = {-1: x}
        for pos, (r, m) in enumerate(zip(a.layers, layers)):
            ins = [outs[src] for src, _ in r.inputs]
            outs[pos] = sum(ins[1:], ins[0]) if r.kind == "add" else m(ins[0])
        return outs[len(a.layers) - 1]
    layers.eval()
    return forward


def best_of(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default="1x3x224x224")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    shape = convcalc.parse_shape(args.input)
    a = convcalc.analyze(resnet50_stack(), shape)
    print(f"ResNet-50 at {args.input}: {len(a.layers)} layers, {a.totals.params:,} params, "
          f"{a.totals.macs:,} MACs")
    ours = best_of(lambda: verify(a, max_memory=8 * 1024 ** 3), args.repeat)
    print(f"convcalc --verify:      {ours:.3f} s")
    try:
        import torch
    except ImportError:
        print("torch not installed: no ratio")
        return
    model = torch_twin(a, torch)
    x = torch.randn(*shape)

    def forward():
        with torch.no_grad():
            model(x)
    theirs = best_of(forward, args.repeat)
    print(f"torch {torch.__version__} forward: {theirs:.3f} s  (threads: {torch.get_num_threads()})")
    print(f"ratio verify / torch:   {ours / theirs:.2f}x  (goal <= 3x)")


if __name__ == "__main__":
    main()
