"""What every bench shares: convcalc installed as a user installs it, and
best-of-N wall times of fresh processes (to a pipe or to a terminal).

The project is installed with ``pip install .`` into a temporary venv (pip
byte-compiles it, as every real installation is); ``--venv DIR`` reuses or
creates one there instead.  The baselines run in the same venv's Python
(``import click``) or, for torch, in the interpreter running the bench.
"""
from __future__ import annotations

import os
import pty
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench")


class Install:
    """A venv holding convcalc from this checkout: its python and its convcalc."""

    def __init__(self, venv: str):
        self.venv = venv
        self.python = os.path.join(venv, "bin", "python")
        self.convcalc = os.path.join(venv, "bin", "convcalc")
        # .pyc files are used and written, as in any installation
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "VIRTUAL_ENV")}

    def run(self, args, **kw):
        return subprocess.run([self.convcalc, *args], env=self.env, **kw)


def install(venv: str = None, source: str = ROOT) -> Install:
    """``pip install .`` of ``source`` (this checkout) into ``venv`` (a fresh
    temporary one by default)."""
    venv = venv or tempfile.mkdtemp(prefix="convcalc-bench-")
    fresh = not os.path.exists(os.path.join(venv, "bin", "python"))
    if fresh:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    inst = Install(venv)
    # a reused venv has the dependencies: only this checkout is put in again
    again = [] if fresh else ["--force-reinstall", "--no-deps"]
    subprocess.run([inst.python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *again, source], check=True, env=inst.env, stdout=subprocess.DEVNULL)
    print(f"convcalc from {source} installed with pip into {venv}")
    return inst


def arguments(doc: str, repeat: int):
    """A bench's options: --repeat, and where convcalc is installed from and to."""
    import argparse
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--venv", help="install into (or reuse) this venv instead of a fresh one")
    ap.add_argument("--source", default=ROOT,
                    help="the convcalc source tree to install (default: this checkout)")
    return ap


def _to_pty(cmd, env, columns):
    """Run cmd with stdout on a pseudo-terminal ``columns`` wide, draining it."""
    import fcntl
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))

    def drain():
        try:
            while os.read(master, 65536):
                pass
        except OSError:  # the other end closed
            pass
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {**env, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    proc = subprocess.run(cmd, stdout=slave, env=env, check=True)
    os.close(slave)
    reader.join()
    os.close(master)
    return proc


def _once(cmd, env=None, terminal: int = 0) -> float:
    t = time.perf_counter()
    if terminal:
        _to_pty(cmd, env or os.environ, terminal)
    else:
        subprocess.run(cmd, check=True, stdout=subprocess.PIPE, env=env)
    return time.perf_counter() - t


def best(cmd, repeat: int, env=None, terminal: int = 0) -> float:
    """Least wall time of ``repeat`` fresh runs (the least disturbed by other
    load); stdout to a pipe, or with ``terminal`` to a pty that many columns wide."""
    return min(_once(cmd, env, terminal) for _ in range(repeat))


def best_interleaved(runs, repeat: int, env=None):
    """:func:`best` of several ``(cmd, terminal)`` runs taken in turns, round
    after round, so that a burst of other load falls on all of them alike and
    their ratios stay fair on a shared machine."""
    times = [[] for _ in runs]
    for _ in range(repeat):
        for spent, (cmd, terminal) in zip(times, runs):
            spent.append(_once(cmd, env, terminal))
    return [min(spent) for spent in times]


def in_venv(inst: Install, script: str, *args: str) -> str:
    """A Python script run in the venv (convcalc as installed); its stdout."""
    out = subprocess.run([inst.python, "-c", script, *args], env=inst.env, check=True,
                         stdout=subprocess.PIPE, text=True)
    return out.stdout


def ratio_line(label: str, ours: float, base: float, goal: str) -> str:
    return f"{label:<44} {ours:8.3f} s  ratio {ours / base:5.2f}  (goal {goal})"


def which(name: str) -> str:
    return shutil.which(name) or name
