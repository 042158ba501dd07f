#!/usr/bin/env python
"""Start-up of convcalc as people use it, as ratios measured in one run.

    python bench/cold_start.py [--repeat 15] [--venv DIR]

Each line is a fresh `convcalc` process (installed with `pip install .`,
byte-compiled) divided by `python -c "import click"` in the same venv (the
floor for any Click tool):

* the default table of `shape -i 1x3x224x224 @resnet50`, stdout to a pipe
  and to a terminal (a pty 120 columns wide)   goal <= 2.0
* the same with `--format json`                  goal <= 1.6
* `rf @resnet50` (table) and `models` (table)    goal <= 2.0

When torch and torchinfo are installed, torchinfo's summary of the same
ResNet-50 (a fresh process) divided by convcalc's JSON time (goal >= 15).
Times are the best of --repeat rounds, each round running every case once
(the least disturbed by other load, which falls on all cases alike).
"""
from __future__ import annotations

import subprocess
import sys

from harness import HERE, arguments, best, best_interleaved, install, ratio_line

CASES = [
    ("shape @resnet50 (table, pipe)", ["shape", "-i", "1x3x224x224", "@resnet50"], 0, "<= 2.0"),
    ("shape @resnet50 (table, terminal)", ["shape", "-i", "1x3x224x224", "@resnet50"], 120,
     "<= 2.0"),
    ("shape @resnet50 --format json", ["shape", "-i", "1x3x224x224", "@resnet50", "--format",
                                       "json"], 0, "<= 1.6"),
    ("rf @resnet50 (table, pipe)", ["rf", "@resnet50"], 0, "<= 2.0"),
    ("rf @resnet50 (table, terminal)", ["rf", "@resnet50"], 120, "<= 2.0"),
    ("models (table, pipe)", ["models"], 0, "<= 2.0"),
]


def torchinfo_script() -> str:
    """A fresh process that builds ResNet-50 in torch and lets torchinfo summarize it."""
    return f"""
import sys
sys.path.insert(0, {HERE!r})
import torch, torchinfo
from resnet50_torch import resnet50
torchinfo.summary(resnet50(), input_size=(1, 3, 224, 224), verbose=0)
"""


def main():
    ap = arguments(__doc__, 15)
    args = ap.parse_args()
    inst = install(args.venv, args.source)
    runs = [([inst.python, "-c", "import click"], 0)] + \
        [([inst.convcalc, *argv], columns) for _, argv, columns, _ in CASES]
    floor, *spent = best_interleaved(runs, args.repeat, inst.env)
    floor_label = 'python -c "import click" (the floor)'
    print(f"{floor_label:<44} {floor:8.3f} s")
    times = {}
    for (label, _, _, goal), t in zip(CASES, spent):
        times[label] = t
        print(ratio_line(label, t, floor, goal))
    ours = times["shape @resnet50 --format json"]
    probe = subprocess.run([sys.executable, "-c", "import torch, torchinfo"],
                           capture_output=True)
    if probe.returncode:
        print("torchinfo or torch not installed: no torchinfo ratio")
        return
    theirs = best([sys.executable, "-c", torchinfo_script()], max(3, args.repeat // 2))
    print(f"torchinfo.summary(ResNet-50) in a fresh process: {theirs:.3f} s")
    print(f"ratio torchinfo / convcalc json: {theirs / ours:.1f}  (goal >= 15)")


if __name__ == "__main__":
    main()
