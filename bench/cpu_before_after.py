#!/usr/bin/env python
"""The engine's own work in CPU seconds, this checkout against another tree.

    python bench/cpu_before_after.py --before DIR [--rounds 5] [--repeat 4]
                                     [--venv DIR] [--before-venv DIR]

On a shared machine the wall-time ratios of the other benches wander by
30–50% within minutes, which hides a change of 10–30%.  This one times, in
each tree installed with `pip install .`, the library calls the other
benches spend their time in: `verify` of @resnet50 at 1x3x224x224 and
`solve_sizes` of @resnet50 and @unet over 32..1024 (the CLI's start-up
excluded).  Each process takes the least CPU time (time.process_time) of
--repeat calls after a warm-up, with one BLAS thread, so that the GEMM's
threads and the host's other load count for little; the two trees'
processes run in turns for --rounds, and the least of each is printed.
The last line is a whole `convcalc shape @resnet50 --format json` process
(the CPU seconds the child used, start-up included) beside `python -c
"import click"`, the least of 10 per round.
"""
from __future__ import annotations

import resource
import subprocess

from harness import arguments, install

TIMER = """
import sys, time
from convcalc import analyze, solve
from convcalc.verify import verify
import convcalc.cli  # imported as the CLI has it, outside the timing
what, repeat = sys.argv[1], int(sys.argv[2])
if what == "verify":
    a = analyze(["@resnet50"], "1x3x224x224")
    def once():
        assert verify(a, max_memory=8 * 1024 ** 3).ok
else:
    model, shape = what.split(":")
    shape = tuple(int(v) for v in shape.split("x"))
    def once():
        solve.solve_sizes([model], shape, 32, 1024)
times = []
for _ in range(repeat + 1):  # the first is the warm-up
    t = time.process_time()
    once()
    times.append(time.process_time() - t)
print(min(times[1:]))
"""

CASES = [("verify @resnet50 at 1x3x224x224", "verify"),
         ("solve_sizes @resnet50 32..1024", "@resnet50:1x3x224x224"),
         ("solve_sizes @unet 32..1024", "@unet:1x1x512x512")]

ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def main():
    ap = arguments(__doc__, 4)
    ap.add_argument("--before", required=True, help="the other convcalc source tree")
    ap.add_argument("--before-venv", help="install it into (or reuse) this venv")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    trees = [("before", install(args.before_venv, args.before)),
             ("after", install(args.venv, args.source))]
    print(f"{'CPU ms, one thread, least of ' + str(args.rounds) + ' rounds':<40}"
          f"{'before':>10}{'after':>10}{'after/before':>14}")
    for label, what in CASES:
        least = {}
        for _ in range(args.rounds):  # in turns: a burst of other load falls on both alike
            for name, inst in trees:
                out = subprocess.run([inst.python, "-c", TIMER, what, str(args.repeat)],
                                     check=True, text=True,
                                     stdout=subprocess.PIPE, env={**inst.env, **ONE_THREAD})
                _keep_least(least, name, float(out.stdout))
        b, a = least["before"] * 1000, least["after"] * 1000
        print(f"{label:<40}{b:10.1f}{a:10.1f}{a / b:14.2f}")
    least = {}
    json_run = ["shape", "-i", "1x3x224x224", "@resnet50", "--format", "json"]
    for _ in range(args.rounds):
        for _ in range(10):
            for name, inst in trees:
                _keep_least(least, name, _child_cpu([inst.convcalc, *json_run], inst.env))
            _keep_least(least, "floor",
                        _child_cpu([trees[1][1].python, "-c", "import click"], trees[1][1].env))
    b, a, f = (least[k] * 1000 for k in ("before", "after", "floor"))
    print(f"{'shape @resnet50 --format json, process':<40}{b:10.1f}{a:10.1f}{a / b:14.2f}"
          f"   (import click: {f:.1f})")


def _keep_least(least: dict, name: str, value: float) -> None:
    least[name] = min(least.get(name, float("inf")), value)


def _child_cpu(cmd, env) -> float:
    """CPU seconds (user + system) one child process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


if __name__ == "__main__":
    main()
