#!/usr/bin/env python
"""Start-up and scaling of convcalc, as ratios measured in one run.

    python bench/cold_start.py [--repeat 7]

1. Wall time of `convcalc shape @resnet50 --format json` (a fresh process)
   divided by `python -c "import click"` (the floor for any Click tool).
   Goal: at most 2.0.
2. When torch and torchinfo are installed: torchinfo's summary of the same
   ResNet-50 (a fresh process that builds the model and summarizes it)
   divided by convcalc's time above.  Goal: at least 15.
3. Cost against stack length: in-process analysis of 10, 100, 1,000 and
   10,000-layer stacks, and the time per layer (it should stay flat).

Times are the best of --repeat runs (the least disturbed by other load).
The package is byte-compiled first, as `pip install` does, and the runs
ignore PYTHONDONTWRITEBYTECODE: an install without .pyc files compiles every
module at every start, which no real installation does.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

def best(cmd, repeat, env=None):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t)
    return min(times)


def convcalc_cmd():
    exe = shutil.which("convcalc") or os.path.join(os.path.dirname(sys.executable), "convcalc")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "convcalc"]


def torchinfo_script() -> str:
    """A fresh process that builds ResNet-50 in torch and lets torchinfo summarize it."""
    return f"""
import sys
sys.path.insert(0, {HERE!r})
import torch, torchinfo
from resnet50_torch import resnet50
torchinfo.summary(resnet50(), input_size=(1, 3, 224, 224), verbose=0)
"""


def scaling(repeat):
    import convcalc
    print("layers  seconds   µs per layer")
    for n in (10, 100, 1000, 10000):
        tokens = ["conv:8,k=3,p=1", "relu"] * (n // 2)
        times = []
        for _ in range(max(1, repeat // 2)):
            t = time.perf_counter()
            convcalc.analyze(tokens, (1, 8, 32, 32))
            times.append(time.perf_counter() - t)
        t = min(times)
        print(f"{n:6d}  {t:8.4f}  {1e6 * t / n:10.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    import compileall

    import convcalc
    compileall.compile_dir(os.path.dirname(convcalc.__file__), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    ours = best(convcalc_cmd() + ["shape", "@resnet50", "--format", "json"], args.repeat, env)
    floor = best([sys.executable, "-c", "import click"], args.repeat, env)
    print(f"convcalc shape @resnet50 --format json: {ours:.3f} s")
    print(f'python -c "import click":              {floor:.3f} s')
    print(f"ratio: {ours / floor:.2f}  (goal <= 2.0)")
    try:
        import torchinfo  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print("torchinfo or torch not installed: no torchinfo ratio")
    else:
        theirs = best([sys.executable, "-c", torchinfo_script()], max(3, args.repeat // 2))
        print(f"torchinfo.summary(ResNet-50) in a fresh process: {theirs:.3f} s")
        print(f"ratio torchinfo / convcalc: {theirs / ours:.1f}  (goal >= 15)")
    scaling(args.repeat)


if __name__ == "__main__":
    main()
