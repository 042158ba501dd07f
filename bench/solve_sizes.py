#!/usr/bin/env python
"""`solve sizes` against one analysis, as a ratio of fresh processes.

    python bench/solve_sizes.py [--repeat 9] [--venv DIR]

`convcalc solve sizes @resnet50 --range 32..1024 --format json` divided by
`convcalc shape @resnet50 --format json` (both installed with `pip install
.`, best of --repeat rounds, each running both in turn).  Goal: at most 5.
Also @unet over the same range, a stack whose joins decide which sizes work.
"""
from __future__ import annotations


from harness import arguments, best_interleaved, install, ratio_line


def main():
    ap = arguments(__doc__, 9)
    args = ap.parse_args()
    inst = install(args.venv, args.source)
    for model, size in (("@resnet50", "1x3x224x224"), ("@unet", "1x1x512x512")):
        one_cmd = [inst.convcalc, "shape", "-i", size, model, "--format", "json"]
        sizes_cmd = [inst.convcalc, "solve", "sizes", model, "--range", "32..1024", "--format",
                     "json"]
        # taken in turns, so that a burst of other load falls on both alike
        one, sizes = best_interleaved([(one_cmd, 0), (sizes_cmd, 0)], args.repeat, inst.env)
        print(f"{'shape ' + model + ' --format json':<44} {one:8.3f} s")
        print(ratio_line(f"solve sizes {model} --range 32..1024", sizes, one, "<= 5"))


if __name__ == "__main__":
    main()
