"""convcalc against PyTorch: the golden corpus, and live random cases.

``tests/golden/torch_corpus.json`` is written by ``tests/make_torch_corpus.py``
from PyTorch 2.13 (it never imports convcalc).  Each case is an input shape, a
list of convcalc tokens, and either the per-layer records torch produced
(output shape, parameter count, buffer count, FLOPs from
``torch.utils.flop_counter``) or the 1-based index of the token torch rejected
(or that SPEC 3b rejects where torch would read the input differently: see the
generator's docstring).  Cases 3600 on draw the modern vocabulary (SPEC 3b):
graphs with broadcasting ``mul``/``add``, norms, permutes, pads, PyTorch class
names, ...

The corpus test needs no torch; the live test (hypothesis) runs only where
torch is importable and draws fresh cases, old and new focus kinds, with the
generator's own functions.

Regenerate the corpus with ``python tests/make_torch_corpus.py``.
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

import convcalc

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "golden" / "torch_corpus.json"
GENERATOR = HERE / "make_torch_corpus.py"

KINDS = {"conv", "tconv", "up", "maxpool", "avgpool", "aavgpool", "amaxpool",
         "gap", "sepconv", "bn", "act", "dropout", "flatten", "linear"}
# the modern vocabulary (SPEC 3b) and the graph tokens its cases use
NEW_KINDS = {"mul", "add", "save", "from", "concat", "ln", "ln2d", "gn", "instnorm", "permute",
             "layerscale", "droppath", "shuffle", "chunk", "pixelshuffle", "pixelunshuffle",
             "pad", "softmax", "logsoftmax", "dropout1d", "dropout2d", "dropout3d",
             "alphadropout", "featurealphadropout"}
ALIASES = {"deconv": "tconv", "upsample": "up", "fc": "linear", "relu": "act",
           "gelu": "act", "sigmoid": "act", "tanh": "act", "layernorm": "ln",
           "groupnorm": "gn", "instancenorm": "instnorm", "stochastic_depth": "droppath",
           "cat": "concat"}
# PyTorch class names as kinds (looked up case-insensitively), as the generator draws them
CLASS_KINDS = {f"{cls}{n}d".lower(): kind for n in (1, 2, 3) for cls, kind in (
    ("Conv", "conv"), ("ConvTranspose", "tconv"), ("MaxPool", "maxpool"), ("AvgPool", "avgpool"),
    ("AdaptiveAvgPool", "aavgpool"), ("AdaptiveMaxPool", "amaxpool"), ("BatchNorm", "bn"),
    ("InstanceNorm", "instnorm"), ("ZeroPad", "pad"), ("ConstantPad", "pad"),
    ("ReflectionPad", "pad"), ("ReplicationPad", "pad"), ("CircularPad", "pad"))}
CLASS_KINDS.update({"upsamplingnearest2d": "up", "upsamplingbilinear2d": "up",
                    "upsample": "up", "linear": "linear", "flatten": "flatten",
                    "dropout": "dropout", "layernorm": "ln", "layernorm2d": "ln2d",
                    "groupnorm": "gn", "softmax": "softmax", "logsoftmax": "logsoftmax",
                    "channelshuffle": "shuffle", "stochasticdepth": "droppath",
                    "permute": "permute", "pixelshuffle": "pixelshuffle",
                    "pixelunshuffle": "pixelunshuffle", "alphadropout": "alphadropout",
                    "featurealphadropout": "featurealphadropout"})
CLASS_KINDS.update({n: "act" for n in (
    "relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leakyrelu",
    "elu", "selu", "celu", "mish", "softplus", "hardtanh", "identity")})
# the new kinds whose rejections the corpus must probe (at the rejecting token)
NEW_REJECTING = {"mul", "add", "ln", "ln2d", "gn", "instnorm", "permute", "droppath", "shuffle",
                 "chunk", "pixelshuffle", "pixelunshuffle", "pad", "softmax", "dropout1d",
                 "linear", "sepconv", "tconv", "up"}
# new keys and forms that accepted cases must use (token kind, regex on the token)
NEW_FORMS = [("linear", r",in=\d+"), ("sepconv", r"\bdbias\b(?!=false)"),
             ("tconv", r"size=[A-Za-z_]"), ("up", r"size=[A-Za-z_]"), ("up", r"size=input"),
             ("ln", r"affine=false"), ("ln", r"bias=false"), ("ln", r"^(ln|layernorm):[2-9]"),
             ("instnorm", r"\btrack\b(?!=false)"), ("instnorm", r"\baffine\b(?!=false)"),
             ("pad", r"mode=reflect"), ("pad", r"mode=replicate"), ("pad", r"mode=circular"),
             ("pad", r"value="), ("pad", r"[:x,]-\d|^pad:-"), ("pad", r"\d:-?\d"),
             ("chunk", r"i=-\d"), ("droppath", r"mode=batch"), ("permute", r"[:,]-\d"),
             ("mul", r"\+"), ("mul", r":input\b"), ("softmax", r"softmax:-\d"),
             ("logsoftmax", r":\d"), ("gn", r"affine=false"), ("ln2d", r"affine=false")]


def kind_of(token: str) -> str:
    """The kind a corpus token names (aliases and PyTorch class names resolved)."""
    name = token.split(":", 1)[0]
    if name in ALIASES:
        return ALIASES[name]
    if name in KINDS or name in NEW_KINDS:
        return name
    return CLASS_KINDS.get(name.lower(), name)


@lru_cache(maxsize=1)
def load_corpus() -> list:
    with open(CORPUS) as f:
        return json.load(f)["cases"]


def _label(case) -> str:
    shape = "x".join(str(n) for n in case["input"])
    return f"-i {shape} " + " ".join(case["tokens"])


def check_case(case):
    """None when convcalc agrees with torch on this case, else (category, text)."""
    tokens, shape = list(case["tokens"]), tuple(case["input"])
    label = _label(case)
    rejected_at = case.get("rejected_at")
    try:
        result = convcalc.analyze(tokens, shape)
    except convcalc.ConvcalcError as e:
        if rejected_at is None:
            return ("convcalc rejects, torch accepts",
                    f"{label}\n      convcalc: {e}\n      torch: "
                    f"{case['layers'][-1]['shape'] if case['layers'] else '?'}")
        if getattr(e, "layer", None) != rejected_at:
            return ("rejected at another layer",
                    f"{label}\n      convcalc rejects layer {getattr(e, 'layer', None)}: {e}"
                    f"\n      torch rejects layer {rejected_at}: {case['error']}")
        if getattr(e, "exit_code", None) not in (2, 3):
            return ("bad exit code", f"{label}\n      exit_code {getattr(e, 'exit_code', None)!r}: {e}")
        return None
    except Exception as e:  # noqa: BLE001 - any other exception is a convcalc crash
        return ("crash", f"{label}\n      {type(e).__name__}: {e}")

    if rejected_at is not None:
        rows = getattr(result, "layers", [])
        return ("convcalc accepts, torch rejects",
                f"{label}\n      torch rejects layer {rejected_at}: {case['error']}"
                f"\n      convcalc output: {getattr(result, 'output_shape', '?')} ({len(rows)} rows)")
    want = case["layers"]
    rows = list(result.layers)
    if len(rows) != len(want):
        return ("row count", f"{label}\n      convcalc {len(rows)} rows, torch {len(want)} layers")
    for j, (row, w) in enumerate(zip(rows, want), 1):
        got = (tuple(row.output_shape), int(row.params), int(row.flops))
        exp = (tuple(w["shape"]), w["params"], w["flops"])
        if got != exp:
            what = [n for n, a, b in zip(("shape", "params", "flops"), got, exp) if a != b]
            return ("/".join(what),
                    f"{label}\n      row {j}: convcalc shape {list(got[0])} params {got[1]} "
                    f"flops {got[2]}; torch shape {list(exp[0])} params {exp[1]} flops {exp[2]}")
        # buffers as model.buffers() counts them (bn: 2C + 1 with num_batches_tracked)
        if "buffers" in w and int(row.buffers) != w["buffers"]:
            return ("buffers", f"{label}\n      row {j} ({row.spec}): convcalc buffers "
                               f"{row.buffers}; torch {w['buffers']}")
    if tuple(result.output_shape) != tuple(want[-1]["shape"]):
        return ("output_shape", f"{label}\n      result.output_shape {result.output_shape}, "
                                f"torch {want[-1]['shape']}")
    return None


def _report(bad, total, what):
    cats = Counter(cat for _, (cat, _) in bad)
    lines = [f"{len(bad)} of {total} {what} disagree with PyTorch 2.13 "
             f"({', '.join(f'{c}: {n}' for c, n in cats.most_common())}); "
             f"up to 20, spread over the categories:"]
    # round-robin over categories so every kind of disagreement is shown
    queues = {c: [b for b in bad if b[1][0] == c] for c in cats}
    shown = []
    while len(shown) < 20 and any(queues.values()):
        for c in list(queues):
            if queues[c] and len(shown) < 20:
                shown.append(queues[c].pop(0))
    for i, (cat, text) in sorted(shown):
        lines.append(f"  [case {i}] {cat}: {text}")
    return "\n".join(lines)


def test_corpus_is_complete():
    cases = load_corpus()
    assert len(cases) >= 5300
    kinds = Counter()
    ranks = Counter()
    for c in cases:
        ranks[len(c["input"])] += 1
        for t in c["tokens"]:
            kinds[kind_of(t)] += 1
    assert KINDS <= set(kinds), KINDS - set(kinds)
    assert NEW_KINDS <= set(kinds), NEW_KINDS - set(kinds)
    assert {3, 4, 5} <= set(ranks)
    rejected = sum("rejected_at" in c for c in cases)
    assert 0.15 <= rejected / len(cases) <= 0.4


def test_corpus_covers_the_new_vocabulary():
    """Every new kind accepted somewhere and (where it can be) rejected; every new key used;
    PyTorch class names, including rank-bound ones on the wrong rank."""
    cases = load_corpus()
    accepted, rejecting = Counter(), Counter()
    classes, bad_rank = set(), 0
    for c in cases:
        upto = c.get("rejected_at", len(c["tokens"]) + 1) - 1
        for t in c["tokens"][:upto]:
            accepted[kind_of(t)] += 1
            name = t.split(":", 1)[0]
            if kind_of(t) == CLASS_KINDS.get(name.lower()) and name.lower() not in ALIASES \
                    and name not in KINDS | NEW_KINDS:
                classes.add(name.lower())
        if "rejected_at" in c:
            rejecting[kind_of(c["tokens"][upto])] += 1
            bad_rank += "rank-bound" in c["error"]
    for kind in NEW_KINDS:
        assert accepted[kind] >= 5, (kind, accepted[kind])
    for kind in NEW_REJECTING:
        assert rejecting[kind] >= 2, (kind, rejecting[kind])
    for kind, pattern in NEW_FORMS:
        assert any(kind_of(t) == kind and re.search(pattern, t)
                   for c in cases for t in c["tokens"][:c.get("rejected_at", 10 ** 6) - 1]), \
            (kind, pattern)
    assert len(classes) >= 40, sorted(classes)
    assert bad_rank >= 20


def test_corpus_conformance():
    """Every corpus case: same rows (shape, params, flops) or same rejecting layer."""
    cases = load_corpus()
    bad = []
    for i, case in enumerate(cases):
        msg = check_case(case)
        if msg is not None:
            bad.append((i, msg))
    if bad:
        pytest.fail(_report(bad, len(cases), "corpus cases"), pytrace=False)


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_torch_corpus", GENERATOR)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_live_torch_cases():
    """Fresh random cases, run through torch now, compared with convcalc."""
    pytest.importorskip("torch")
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    gen = _load_generator()

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2 ** 62),
           focus=st.sampled_from(sorted(gen.FOCUS_WEIGHTS) + sorted(gen.NEW_FOCUS_WEIGHTS)),
           n_spatial=st.sampled_from([1, 2, 3]))
    def live(seed, focus, n_spatial):
        case = gen.make_case(random.Random(seed), focus=focus, n_spatial=n_spatial)
        msg = check_case(case)
        assert msg is None, (f"{msg[0]}: {msg[1]}\n      case: "
                             f"{json.dumps(case, separators=(',', ':'))}")

    live()
