#!/usr/bin/env python
"""How convcalc's cost grows with the stack, measured in one run.

    python bench/scaling.py [--repeat 3] [--max-rows 100000] [--venv DIR]

1. Rows: stacks of 10 to 10^5 rows (conv:8,k=3,p=1 and relu alternating)
   analyzed and rendered in every format, in one process of the installed
   convcalc; µs per row should stay flat.
2. Joins: DenseNet-like stacks where layer i concatenates every earlier
   layer's output; µs per join input should stay flat.
3. Whole processes (issue 14): 10^5-token stack files (conv/relu, and
   conv/bn/relu/save/conv/add blocks) in every format and as `rf`, and
   280 `up:1.1` in a row (exact scale factors), in seconds.
"""
from __future__ import annotations

import os
import tempfile
import time

from harness import arguments, in_venv, install

ROWS = """
import contextlib, io, sys, time
import convcalc
from convcalc import render
from convcalc.cli import emit  # what the command prints, in every version

PARTS = {"table": lambda a: (render.shape_report(a), None, None),
         "json": lambda a: (None, a.to_dict(), None),
         "csv": lambda a: (None, None, render.shape_csv(a)),
         "markdown": lambda a: (render.shape_report(a), None, None)}

def printed(fmt, a):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        emit(fmt, *PARTS[fmt](a))
    return out.getvalue()

FORMATS = {f: (lambda a, f=f: printed(f, a)) for f in PARTS}
repeat, top = int(sys.argv[1]), int(sys.argv[2])
print("   rows " + "".join(f"{f + ' µs/row':>18}" for f in FORMATS))
n = 10
while n <= top:
    tokens = ["conv:8,k=3,p=1", "relu"] * (n // 2)
    cells = []
    for name, fmt in FORMATS.items():
        best = float("inf")
        for _ in range(repeat if n < 10 ** 5 else 1):
            t = time.perf_counter()
            fmt(convcalc.analyze(tokens, (1, 8, 32, 32)))
            best = min(best, time.perf_counter() - t)
        cells.append(1e6 * best / n)
    print(f"{n:7d} " + "".join(f"{c:18.1f}" for c in cells), flush=True)
    n *= 10
"""

JOINS = """
import sys, time
import convcalc
repeat = int(sys.argv[1])
print(" layers  join inputs   seconds  µs per join input")
for k in (10, 30, 100, 300):
    tokens = []
    for i in range(1, k + 1):
        tokens += ["conv:4,k=3,p=1", f"save:t{i}"]
        if i > 1:
            tokens.append("concat:" + "+".join(f"t{j}" for j in range(1, i)))
    inputs = sum(range(1, k))  # concat i joins i-1 saved tensors and the current one
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        convcalc.analyze(tokens, (1, 4, 16, 16))
        best = min(best, time.perf_counter() - t)
    print(f"{k:7d} {inputs:12d} {best:9.3f} {1e6 * best / inputs:18.1f}", flush=True)
"""


STACKS = {"conv/relu": ["conv:8,k=3,p=1", "relu"],
          "resblocks": ["conv:8,k=3,p=1", "bn", "relu", "save:a", "conv:8,k=3,p=1", "add:a"]}
COMMANDS = [("shape", f) for f in ("table", "json", "csv", "markdown")] + \
    [("rf", f) for f in ("table", "json")]


def timed(inst, args):
    t = time.perf_counter()
    inst.run(args, check=True, stdout=open(os.devnull, "w"))
    return time.perf_counter() - t


def main():
    ap = arguments(__doc__, 3)
    ap.add_argument("--max-rows", type=int, default=10 ** 5)
    args = ap.parse_args()
    inst = install(args.venv, args.source)
    print("1. analysis and rendering per row, in one process")
    print(in_venv(inst, ROWS, str(args.repeat), str(args.max_rows)), end="")
    print("2. DenseNet-like joins (layer i concatenates all earlier ones)")
    print(in_venv(inst, JOINS, str(args.repeat)), end="")
    print("3. whole processes")
    for label, block in STACKS.items():
        with tempfile.NamedTemporaryFile("w", suffix=".stack", delete=False) as f:
            f.write("\n".join(block * (args.max_rows // len(block))) + "\n")
        for cmd, fmt in COMMANDS:
            t = timed(inst, [cmd, "-i", "1x8x32x32", "-f", f.name, "--format", fmt])
            print(f"  {args.max_rows:,} tokens {label:<10} {cmd:<5} --format {fmt:<9} {t:8.2f} s")
        os.unlink(f.name)
    for fmt in ("table", "json"):
        t = timed(inst, ["shape", "-i", "1x1x4x4", *["up:1.1"] * 280, "--format", fmt])
        print(f"  280 x up:1.1, --format {fmt:<15} {t:8.2f} s")


if __name__ == "__main__":
    main()
