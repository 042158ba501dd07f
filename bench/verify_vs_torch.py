#!/usr/bin/env python
"""How long `--verify` takes on ResNet-50, against PyTorch's own forward pass.

    python bench/verify_vs_torch.py [--input 1x3x224x224] [--repeat 3] [--rounds 5]
                                    [--threads N] [--venv DIR]

Two separate processes with the same thread count (OMP/OpenBLAS/MKL
variables and torch.set_num_threads): convcalc, installed with `pip install
.`, times its whole verify of @resnet50 (the NumPy forward pass with weights
drawn, parameter tensors and the impulse responses); the bench's own
interpreter times torch's CPU forward of the same network (torchvision's
layout, eval mode, no_grad).  Each is the best of --repeat after a warm-up,
in --rounds processes of each taken in turns.
Goal: ratio at most 2.0.  Without torch it prints convcalc's time alone.
"""
from __future__ import annotations

import os
import subprocess
import sys

from harness import HERE, arguments, in_venv, install

TIMER = """
import sys, time
from convcalc import analyze
from convcalc.verify import verify
a = analyze(["@resnet50"], sys.argv[1])
times = []
for _ in range(int(sys.argv[2]) + 1):  # the first is the warm-up
    t = time.perf_counter()
    v = verify(a, max_memory=8 * 1024 ** 3)
    times.append(time.perf_counter() - t)
    assert v.ok, v.failures
print(len(a.layers), a.totals.params, min(times[1:]))
"""

TORCH = """
import sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[4]))
from resnet50_torch import resnet50
shape = [int(v) for v in sys.argv[2].split("x")]
model = resnet50(num_classes=1000)
x = torch.randn(*shape)
times = []
with torch.no_grad():
    for _ in range(int(sys.argv[3]) + 1):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
print(torch.__version__, torch.get_num_threads(), min(times[1:]))
"""


def main():
    ap = arguments(__doc__, 3)
    ap.add_argument("--input", default="1x3x224x224")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=5,
                    help="processes of each, taken in turns (the best counts)")
    args = ap.parse_args()
    inst = install(args.venv, args.source)
    threads = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                              "MKL_NUM_THREADS")}
    inst.env.update(threads)
    env = {**os.environ, **threads}
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    ours = theirs = float("inf")
    version = torch_threads = None
    for _ in range(args.rounds):  # in turns: a burst of other load falls on both alike
        rows, params, t = in_venv(inst, TIMER, args.input, str(args.repeat)).split()
        ours = min(ours, float(t))
        if probe.returncode:
            continue
        out = subprocess.run([sys.executable, "-c", TORCH, HERE, args.input, str(args.repeat),
                              str(args.threads)], env=env, check=True, capture_output=True,
                             text=True).stdout.split()
        version, torch_threads, theirs = out[0], out[1], min(theirs, float(out[2]))
    print(f"ResNet-50 at {args.input}: {rows} rows, {int(params):,} params; "
          f"threads {args.threads}")
    print(f"convcalc verify (whole check):  {ours:.3f} s")
    if probe.returncode:
        print("torch not installed: no ratio")
        return
    print(f"torch {version} forward:   {theirs:.3f} s  (threads: {torch_threads})")
    print(f"ratio verify / torch forward:   {ours / theirs:.2f}  (goal <= 2.0)")


if __name__ == "__main__":
    main()
