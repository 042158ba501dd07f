"""Reliability (issue 14): bounded work on any input, guards that hold, and
nothing a user owns ever lost (SPEC §6).

A case per defect found, each a real ``python -m convcalc`` process under a
time limit (``timeout=``) and an address-space limit (RLIMIT_AS, set in the
child before it starts), so that a regression fails the test instead of
hanging CI or exhausting the runner.  The expected values come from the
limits as SPEC and README state them and from arithmetic done here (10^12
to the 400th is 10^4800), never from convcalc's own output.
"""
from __future__ import annotations

import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
import xml.etree.ElementTree as ET

import pytest

from convcalc.analysis import analyze
from convcalc.language import parse_stack
from convcalc.verify import peak_bytes, verify

MiB, GiB = 2 ** 20, 2 ** 30
SMALL = 1 * GiB  # address space for a run that never loads numpy
NUMPY = 3 * GiB  # numpy (and its BLAS) reserves address space at import
BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Run:
    def __init__(self, code: int, stdout: bytes, stderr: str, seconds: float):
        self.code, self.stdout_bytes, self.stderr, self.seconds = code, stdout, stderr, seconds

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def lines(self):
        return self.stderr.strip("\n").splitlines()


def convcalc(*args, stdin=None, stdout=subprocess.PIPE, mem: int = SMALL, timeout: float = 20,
             env=None, cwd=None, close_stdout: bool = False, fsize=None) -> Run:
    """One bounded process.  ``fsize`` caps the size of files it may write
    (a full disk, as the process sees it); ``close_stdout`` starts it with fd
    1 closed (``>&-``)."""
    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if close_stdout:
            os.close(1)
    full_env = {**os.environ, **BLAS, **(env or {})}
    full_env.pop("PYTHONWARNINGS", None)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "convcalc", *map(str, args)], input=stdin,
                       stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                       preexec_fn=limits, env=full_env, cwd=cwd)
    return Run(p.returncode, p.stdout or b"", p.stderr.decode("utf-8", "replace"),
               time.monotonic() - t0)


def one_line_error(r: Run, code: int, *needles: str) -> None:
    """SPEC §6: the exit code, one line on stderr that says why, no traceback."""
    assert r.code == code, (r.code, r.stderr[:500])
    assert len(r.lines) == 1 or (len(r.lines) == 2 and r.lines[1].startswith(("Try ", "  hint"))), \
        r.stderr[:1000]
    assert r.lines[0].startswith("Error: "), r.stderr[:300]
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[:500]
    for n in needles:
        assert n in r.stderr, (n, r.stderr[:500])


# ---------------------------------------------------------------------------
# bounded input (items 1-6)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["/dev/zero", "-zero", "/dev/urandom", "big"])
def test_1_stack_files_are_read_with_a_limit(source, tmp_path):
    stdin = None
    if source == "-zero":
        source, stdin = "-", b"\0" * (9 * MiB)  # what `-f - < /dev/zero` feeds it first
    elif source == "big":
        path = tmp_path / "big.stack"
        path.write_bytes(b"relu " * (40 * MiB // 5))  # 40 MiB of valid tokens
        source = str(path)
    r = convcalc("shape", "-i", "1x3x8x8", "-f", source, stdin=stdin, timeout=10)
    one_line_error(r, 2, "8 MiB")


def test_1_a_file_at_the_limit_is_read(tmp_path):
    # 8 MiB exactly (the README's limit): read, not refused; one byte more is refused
    path = tmp_path / "edge.stack"
    head = "# input: 1x3x8x8\nconv:4,k=3\n#"
    path.write_text(head + "c" * (8 * MiB - len(head) - 1) + "\n")
    assert path.stat().st_size == 8 * MiB
    r = convcalc("shape", "-f", path, "--format", "json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["output_shape"] == [1, 4, 6, 6]
    with open(path, "a") as f:
        f.write("\n")
    one_line_error(convcalc("shape", "-f", path), 2, "8 MiB")


def test_1_more_than_the_token_cap_is_refused_while_splitting(tmp_path):
    path = tmp_path / "many.stack"
    path.write_text("relu\n" * (10 ** 5 + 1))
    one_line_error(convcalc("shape", "-i", "1x3x8x8", "-f", path), 2, "100,000 layer tokens")


def _fan_out(folder, levels: int, fan: int) -> str:
    """``levels`` files, each with a few tokens and ``fan`` references to the next."""
    for i in range(levels):
        refs = " ".join([f"@f{i + 1}.stack"] * fan) if i + 1 < levels else ""
        (folder / f"f{i}.stack").write_text(f"relu relu {refs}\n")
    return str(folder / "f0.stack")


def test_2_includes_that_multiply_are_capped(tmp_path):
    # seven files, each including the next ten times: 10^6 tokens after expansion
    top = _fan_out(tmp_path, 7, 10)
    for fmt in ("table", "json"):
        r = convcalc("shape", "-i", "1x3x8x8", "@" + top, "--format", fmt, timeout=20)
        one_line_error(r, 2, "100,000 layer tokens")
        if fmt == "json":
            assert json.loads(r.stdout)["error"]["code"] == 2


def test_2_includes_under_the_cap_expand_exactly(tmp_path):
    # 3 levels, fan 4: 2 + 4·(2 + 4·2) = 42 relus
    top = _fan_out(tmp_path, 3, 4)
    r = convcalc("shape", "-i", "1x3x8x8", "@" + top, "--format", "json")
    assert r.code == 0, r.stderr
    assert len(json.loads(r.stdout)["layers"]) == 2 + 4 * (2 + 4 * 2)


def test_3_a_huge_token_is_parsed_quickly_in_bounded_memory(tmp_path):
    path = tmp_path / "line.stack"
    path.write_text("conv:" + "9" * (7 * MiB) + "\n")
    r = convcalc("shape", "-i", "1x3x8x8", "-f", path, timeout=10, mem=SMALL)
    one_line_error(r, 2, "layer 1")


LONG = "1" * 100_000


@pytest.mark.parametrize("args", [
    ["shape", "-i", "1x3x8x8", "conv:" + LONG + ",k=3"],
    ["shape", "-i", "1x3x8x8", "from:a" + LONG],
    ["shape", "-i", "1x3x8x8", "-f", "-"],  # a 1 MB token on stdin (too long for argv)
    ["shape", "-i", "1x3x8x8", "relu", "--verify", "--seed", LONG],
    ["rf", "-i", "1x3x8x8", "relu", "--at", LONG],
    ["rf", "-i", "1x3x8x8", "relu", "--at", "1,1", "--layer", LONG],
    ["solve", "conv", "--in", LONG, "--out", "3"],
    ["check", "-i", "1x3x8x8", "relu", "--divisible-by", LONG],
    ["check", "-i", "1x3x8x8", "relu", "--expect-output", "1x3x" + LONG],
    ["solve", "sizes", "-i", "1x3x8x8", "relu", "--range", "1.." + LONG],
    ["shape", "-i", "1x3x" + LONG, "relu"],
], ids=["token-int", "token-name", "token-1MB", "seed", "at", "layer", "in", "divisible-by",
        "expect-output", "range", "input"])
def test_4_and_5_error_lines_are_bounded_and_big_numbers_are_syntax(args):
    stdin = b"x" * 1_000_000 if "-" in args else None
    r = convcalc(*args, "--format", "json", stdin=stdin) \
        if args[0] != "solve" or args[1] == "sizes" else convcalc(*args)
    one_line_error(r, 2)  # 10^5 digits: bad syntax (exit 2), not an internal error (exit 3)
    # the longest honest line lists the known kinds (~700 characters); the
    # values here are 10^5 to 10^6 characters
    assert max(len(line) for line in r.lines) < 1100, [len(x) for x in r.lines]
    if "--format" in args or args[0] != "solve" or args[1] == "sizes":
        if r.stdout.strip():  # the JSON error document is bounded too
            assert len(r.stdout) < 2000
            json.loads(r.stdout)


def test_5_a_stride_over_ten_to_the_4300_prints_in_every_format(tmp_path):
    path = tmp_path / "strides.stack"
    path.write_text(" ".join(["conv:1,k=1,s=1000000000000"] * 400) + "\n")
    want = f"1.00000e+{12 * 400}"  # (10^12)^400
    for command, fmt in (("shape", "table"), ("shape", "json"), ("shape", "csv"),
                         ("shape", "markdown"), ("rf", "json")):
        r = convcalc(command, "-i", "1x1x8", "-f", path, "--format", fmt,
                     *(["--explain"] if fmt == "table" else []), timeout=30)
        assert r.code == 0, (command, fmt, r.stderr[:300])
        assert want in r.stdout, (command, fmt)
        if fmt == "table":  # the explanation's S = S0*s line
            assert f"= {want}; P" in r.stdout
        if fmt == "json":
            doc = json.loads(r.stdout)  # valid JSON: a number too large for a float
            assert doc["receptive_field"]["stride"] == [math.inf]


def test_6_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.stack"
    path.write_bytes("\ufeff# input: 1x3x8x8\nconv:4,k=3\n".encode("utf-8"))
    for args in (["-f", path], ["@" + str(path)]):
        r = convcalc("shape", *args, "--format", "json")
        assert r.code == 0, r.stderr
        # the '# input:' line still counts: 8 - 3 + 1 = 6
        assert json.loads(r.stdout)["output_shape"] == [1, 4, 6, 6]


def test_6_nested_includes_resolve_against_the_including_file(tmp_path):
    (tmp_path / "net" / "parts").mkdir(parents=True)
    (tmp_path / "net" / "top.stack").write_text("@parts/block.stack relu\n")
    (tmp_path / "net" / "parts" / "block.stack").write_text("conv:4,k=3 @tail.stack\n")
    (tmp_path / "net" / "parts" / "tail.stack").write_text("maxpool:2\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    for args in (["@../net/top.stack"], ["-f", "../net/top.stack"]):
        r = convcalc("shape", "-i", "1x3x10x10", *args, "--format", "json", cwd=elsewhere)
        assert r.code == 0, r.stderr
        # conv k=3: 10 -> 8, maxpool 2: 8 -> 4, relu
        assert [x["kind"] for x in json.loads(r.stdout)["layers"]] == ["conv", "maxpool", "act"]
        assert json.loads(r.stdout)["output_shape"] == [1, 4, 4, 4]


@pytest.mark.parametrize("args", [
    ["shape", "-i", "\u0661x3x8x8", "relu"],           # Arabic-Indic 1
    ["shape", "-i", "1x3x8x8", "conv:\u0664,k=3"],     # in a token
    ["shape", "-i", "1x3x8x8", "relu", "--verify", "--seed", "\u0663"],
    ["shape", "-i", "1x3x8x8", "relu", "--verify", "--seed", "3_0"],  # int() would take it
    ["rf", "-i", "1x3x8x8", "relu", "--at", "\u0663,\u0663"],
    ["rf", "-i", "1x3x8x8", "relu", "--at", "1,1", "--layer", "\u0661"],
    ["check", "-i", "1x3x8x8", "relu", "--min-rf", "\u0663"],
    ["check", "-i", "1x3x8x8", "relu", "--divisible-by", "\uff18"],  # fullwidth 8
    ["solve", "conv", "--in", "\u0666\u0664", "--out", "32"],
    ["solve", "sizes", "-i", "1x3x8x8", "relu", "--range", "\u0661..\u0669"],
], ids=["input", "token", "seed", "seed-underscore", "at", "layer", "min-rf", "divisible-by",
        "solve-in", "range"])
def test_6_ascii_digits_only_everywhere(args):
    one_line_error(convcalc(*args), 2)


# ---------------------------------------------------------------------------
# guards that hold (items 7-10)
# ---------------------------------------------------------------------------

EIGHT_SAVES = ("save:a relu save:b relu save:c relu save:d relu save:e relu save:f relu save:g "
               "relu save:h relu add:a+b+c+d+e+f+g+h")


def _measured_peak(stack: str, shape) -> int:
    """The most bytes --verify's arrays hold at once (tracemalloc sees NumPy's)."""
    import numpy  # noqa: F401 - imported before measuring: its import is not the run
    a = analyze(parse_stack(stack.split()), shape)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        v = verify(a, 0, 1 << 50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert v.ok, v.failures
    return peak


@pytest.mark.parametrize("shape,stack", [
    ((1, 1, 400, 400), EIGHT_SAVES),
    ((1, 1, 300, 300), "conv:1,k=7,p=3"),
    ((1, 3, 120, 120), "conv:16,k=7,s=2,p=3"),
    ((1, 2, 100, 100), "up:3,mode=bicubic"),
    ((1, 4, 64, 64), "tconv:4,k=4,s=2,p=1"),
    ((1, 2, 20, 20, 20), "up:2,mode=trilinear"),
    ((1, 4, 100, 100), "amaxpool:13 avgpool:3,s=1,p=1"),
    ((1, 8, 64, 64), "act:gelu gn:4 softmax:2"),
    ((1, 8, 48, 48), "save:a conv:8,k=3,p=1 concat:a pad:3,mode=reflect"),
    ((1, 3, 64, 64), "@resnet18"),
], ids=["8-saves", "conv-k7", "conv-s2", "bicubic", "tconv", "trilinear", "pools", "stats",
        "concat-pad", "resnet18"])
def test_7_the_verify_estimate_bounds_the_real_peak(shape, stack):
    a = analyze(parse_stack(stack.split()), shape)
    estimate = peak_bytes(a)
    assert _measured_peak(stack, shape) <= estimate


def test_7_saved_tensors_are_counted():
    # eight saves stay alive until the add: at least 8 float32 copies of the
    # input and their two float64 impulse masks, whatever else is counted
    n = 6000 * 6000
    a = analyze(parse_stack(EIGHT_SAVES.split()), (1, 1, 6000, 6000))
    assert peak_bytes(a) >= 8 * (4 * n + 2 * 8 * n)
    r = convcalc("shape", "-i", "1x1x6000x6000", *EIGHT_SAVES.split(), "--verify", mem=NUMPY,
                 timeout=20)
    one_line_error(r, 3, "--verify would need about", "--max-memory")


def test_8_erf_is_guarded_by_max_memory():
    # 512^3 positions in float64 is 1 GiB for one gradient alone
    r = convcalc("rf", "-i", "1x1x512x512x512", "conv:1,k=3,p=1", "--erf", "--max-memory", "1MiB",
                 timeout=10, mem=NUMPY)
    one_line_error(r, 3, "--erf would need about", "--max-memory")
    # under the budget it runs: a 3x3 conv's field at the center of 9x9 is 3 wide
    r = convcalc("rf", "-i", "1x1x9x9", "conv:1,k=3,p=1", "--erf", "--format", "json",
                 mem=NUMPY)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["extent_95"] == [[3, 5], [3, 5]]


def test_8_erf_estimate_bounds_the_real_peak():
    from convcalc.pictures import erf, erf_bytes
    import numpy  # noqa: F401
    for shape, stack in (((1, 1, 48, 48, 48), "conv:1,k=3,p=1 conv:1,k=3,p=1"),
                         ((1, 1, 2000), "conv:1,k=9 maxpool:3"),
                         ((1, 1, 150, 150), "save:a conv:1,k=3,p=1 add:a tconv:1,k=4,s=2,p=1")):
        a = analyze(parse_stack(stack.split()), shape)
        target = len(a.layers) - 1
        at = tuple(n // 2 for n in a.layers[target].spatial_sizes)
        tracemalloc.start()
        try:
            erf(a, at, target)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= erf_bytes(a, target), stack


def test_9_show_with_huge_padding_finishes():
    r = convcalc("rf", "-i", "1x1x80x80", "conv:1,k=1,p=1000000000", "--at", "5,5", "--show",
                 timeout=10)
    assert r.code == 0, r.stderr
    # output position 5 reads input 5 - 10^9: padding only
    assert "reads only padding" in r.stdout


def test_10_overflow_is_a_finding_not_a_warning():
    stack = ["save:a", "relu", "add:a"] * 200  # doubles 200 times: past float32's 3.4e38
    r = convcalc("shape", "-i", "1x1x8x8", *stack, "--verify", "--format", "json", mem=NUMPY,
                 timeout=30)
    assert r.code == 0, r.stderr
    assert r.stderr == ""  # no RuntimeWarning line
    notes = json.loads(r.stdout)["verify"]["notes"]
    assert len(notes) == 1 and "overflows float32" in notes[0] and "(add:a)" in notes[0]
    # 2^128 > float32's max: overflow comes by the 129th doubling at the latest (index 3·129)
    layer = int(notes[0].split()[1])
    assert layer % 3 == 0 and layer <= 3 * 129


# ---------------------------------------------------------------------------
# nothing lost (items 11-15)
# ---------------------------------------------------------------------------

def _valid_svg(path) -> bool:
    try:
        return ET.parse(path).getroot().tag.endswith("svg")
    except ET.ParseError:
        return False


def test_11_a_failed_svg_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "net.svg"
    target.write_text("the old diagram\n")
    r = convcalc("shape", "@resnet18", "--svg", target, fsize=4096)  # a disk with 4 KiB free
    one_line_error(r, 3, "--svg")
    assert target.read_text() == "the old diagram\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.svg"]  # no temporary left


def test_11_concurrent_svg_writers_leave_one_whole_file(tmp_path):
    target = tmp_path / "net.svg"
    env = {**os.environ, **BLAS}
    procs = [subprocess.Popen([sys.executable, "-m", "convcalc", "shape", "@resnet18",
                               "--svg", str(target)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env) for _ in range(8)]
    codes = [p.wait(timeout=60) for p in procs]
    for p in procs:
        p.stderr.close()
    assert codes == [0] * 8
    assert _valid_svg(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.svg"]


@pytest.mark.parametrize("where,code", [("dir", 3), ("missing", 3), ("empty", 2)])
def test_11_svg_to_a_path_that_cannot_be_a_file(tmp_path, where, code):
    path = {"dir": str(tmp_path), "missing": str(tmp_path / "no" / "x.svg"), "empty": ""}[where]
    one_line_error(convcalc("shape", "-i", "1x3x8x8", "relu", "--svg", path), code, "--svg")


def test_12_never_overwrite_an_input(tmp_path):
    mine = tmp_path / "mine.stack"
    mine.write_text("conv:8,k=3\nrelu\n")
    (tmp_path / "inner.stack").write_text("relu\n")
    top = tmp_path / "top.stack"
    top.write_text("@inner.stack\n")
    for args, victim in ((["-f", mine, "--svg", mine], mine),
                         (["@" + str(top), "--svg", tmp_path / "inner.stack"],
                          tmp_path / "inner.stack"),
                         (["-f", top, "--svg", str(tmp_path / "." / "inner.stack")],
                          tmp_path / "inner.stack")):
        before = victim.read_bytes()
        r = convcalc("shape", "-i", "1x3x8x8", *args)
        one_line_error(r, 2, "input")
        assert victim.read_bytes() == before


@pytest.mark.parametrize("args", [["--help"], ["--version"], [], ["solve"], ["models"],
                                  ["shape", "-i", "1x3x8x8", "relu"],
                                  ["shape", "-i", "1x3x8x8", "relu", "--format", "json"],
                                  ["solve", "conv", "--in", "64", "--out", "32", "-k", "4",
                                   "-s", "2"]],
                         ids=["help", "version", "bare", "solve", "models", "shape", "json",
                              "solve-conv"])
def test_13_a_full_stdout_is_exit_3_in_one_line(args):
    with open("/dev/full", "wb") as full:
        r = convcalc(*args, stdout=full)
    one_line_error(r, 3, "No space left on device")


@pytest.mark.parametrize("args", [["--help"], ["shape", "-i", "1x3x8x8", "relu"],
                                  ["check", "-i", "1x3x8x8", "relu", "--max-params", "1"]])
def test_13_a_closed_stdout_is_exit_3(args):
    r = convcalc(*args, stdout=None, close_stdout=True)
    one_line_error(r, 3, "stdout is closed")


def test_13_a_reader_that_left_early_is_silence():
    p = subprocess.Popen([sys.executable, "-m", "convcalc", "shape", "@vgg16", *["relu"] * 3000,
                          "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, **BLAS})
    p.stdout.read(10)  # `| head -c 10`
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=30) == 0
    assert err == ""
    # a failed check still says so (on stderr, exit 1) when its reader left
    p = subprocess.Popen([sys.executable, "-m", "convcalc", "check", "@vgg16", *["relu"] * 3000,
                          "--max-params", "1", "--format", "json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**os.environ, **BLAS})
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=30) == 1
    assert err.startswith("Error: check failed: params") and "Traceback" not in err


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"},
                                 {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
                                  "PYTHONIOENCODING": ""}], ids=["ascii", "C-locale"])
def test_14_a_non_utf8_stream_gets_ascii(env):
    runs = {
        "models": convcalc("models", env=env),
        "check": convcalc("check", "@mnist", "--max-params", "25K", "--expect-output", "1x10",
                          env=env),
        "explain": convcalc("shape", "-i", "1x1x8x8", "conv:1,k=3", "--explain", env=env),
        "tconv": convcalc("rf", "-i", "1x1x4x4", "tconv:1,k=3,s=2", "--explain", env=env),
        "help": convcalc("rf", "--help", env=env),
    }
    for name, r in runs.items():
        assert r.code == 0, (name, r.stderr[:300])
        r.stdout_bytes.decode("ascii")  # nothing but ASCII
        assert "Traceback" not in r.stderr
    # o = floor((i + pb + pa - d*(k-1) - 1)/s) + 1 with i = 8, k = 3: 6
    assert "floor((8 + 0 + 0 - 1*(3-1) - 1)/1) + 1 = 6" in runs["explain"].stdout
    # a transposed conv's stride is 1/2; its output (4-1)*2 + 3 = 9 wide
    assert "1/2" in runs["tconv"].stdout and "1x1x9x9" in runs["tconv"].stdout
    assert "1x1x28x28" in runs["models"].stdout
    assert "u*S - P" in runs["help"].stdout


def test_15_ctrl_c_is_exit_130_in_one_line():
    # solve sizes over 5,000 sizes of ResNet-152 takes seconds (4 s here): interrupt
    # it a second in, past the imports.  SIGINT as a terminal gives it, even when
    # the tests run in a background job (which ignores SIGINT, and so would the child)
    def limited():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_AS, (SMALL,) * 2)
    p = subprocess.Popen([sys.executable, "-m", "convcalc", "solve", "sizes", "@resnet152",
                          "--range", "1..5000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, **BLAS}, preexec_fn=limited)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    assert err.decode().strip().splitlines() == ["Error: interrupted"]


def _tiny_onnx(path) -> None:
    """A Conv(3 -> 4, k=3) model written with onnx's helpers (no torch needed)."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])
    graph = helper.make_graph([node], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [w])
    onnx.save(helper.make_model(graph), str(path))


def test_12_and_13_siblings_import_output(tmp_path):
    """import -o: the same guards as --svg (never over the model, exit 3 when
    the path cannot be a file, an empty name is exit 2)."""
    model = tmp_path / "tiny.onnx"
    _tiny_onnx(model)
    before = model.read_bytes()
    for argv in (["import", model, "-o", model], ["shape", model, "--svg", model],
                 ["shape", "-f", model, "--svg", model]):
        one_line_error(convcalc(*argv, mem=NUMPY, timeout=60), 2, "input")
        assert model.read_bytes() == before
    one_line_error(convcalc("import", model, "-o", tmp_path, mem=NUMPY, timeout=60), 3,
                   "directory")
    one_line_error(convcalc("import", model, "-o", "", mem=NUMPY, timeout=60), 2, "empty")
    out = tmp_path / "tiny.stack"
    r = convcalc("import", model, "-o", out, mem=NUMPY, timeout=60)
    assert r.code == 0 and "conv:4,k=3" in out.read_text() and r.stdout == ""
