"""--verify: the analysis against the NumPy ops, and that a wrong analysis is caught."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import convcalc
from convcalc.cli import cli
from convcalc.verify import peak_bytes, verify

from test_conformance import load_corpus


def _verified_models():
    """The hand-written models, and of the imported torchvision zoo the
    smallest of each family (every kind the zoo uses, at a CI's cost)."""
    models = convcalc.builtin_models()
    smallest = {}
    for name, stack in models.items():
        if "macs" in stack.meta and int(stack.meta["macs"]) < 2 * 10 ** 9:
            fam = stack.meta["family"]
            if fam not in smallest or int(stack.meta["macs"]) < \
                    int(models[smallest[fam]].meta["macs"]):
                smallest[fam] = name
    return [n for n, s in models.items() if "macs" not in s.meta] + sorted(smallest.values())
    # (ConvNeXt and DenseNet start above 2 GMACs: @convnext_block and the
    # concat-heavy hand-written graphs stand in for them)


def test_builtin_models_verify():
    verified = 0
    for name in _verified_models():
        stack = convcalc.builtin_models()[name]
        try:
            a = convcalc.analyze(stack.tokens, stack.input_shape)
        except convcalc.ConvcalcError:
            continue  # @unet: shown failing at its default input
        if a.totals.macs > 5 * 10 ** 9:
            continue  # vgg16, unet_valid: the CLI test below runs vgg16 at a small input
        v = verify(a)
        assert v.ok, (name, v.failures)
        assert v.layers == len(a.layers)
        verified += 1
    assert verified >= 17


def test_corpus_cases_verify():
    """Every accepted PyTorch corpus case (shapes, params and impulse responses)."""
    cases = [c for c in load_corpus() if "layers" in c]
    checked = 0
    bad = []
    for c in cases[::3]:
        a = convcalc.analyze(c["tokens"], c["input"])
        v = verify(a)
        checked += 1
        if not v.ok:
            bad.append(f"-i {'x'.join(map(str, c['input']))} {' '.join(c['tokens'])}: "
                       f"{v.failures}")
    assert checked >= 800
    assert not bad, f"{len(bad)} of {checked}:\n" + "\n".join(bad[:10])


STACK = ["conv:6,k=3,p=1,pm=reflect", "maxpool:2,ceil", "tconv:4,k=3,s=2,d=2,p=1",
         "up:1.5,mode=bilinear", "conv:4,k=3,d=2,p=same", "avgpool:3,s=2,p=1",
         "up:size=9x7,mode=nearest", "flatten", "linear:5"]


def test_mixed_stack_verifies_and_counts():
    a = convcalc.analyze(STACK, (2, 3, 15, 17))
    v = verify(a)
    assert v.ok, v.failures
    assert v.layers == 9
    # weight+bias of conv, tconv, conv, linear
    assert v.tensors == 8
    assert v.impulses == 2  # center and corner
    assert v.rf_layers == 7  # every layer before flatten


@pytest.mark.parametrize("field,value,check", [
    ("output_shape", (2, 6, 15, 18), "shapes"),
    ("params", 1, "params"),
])
def test_a_wrong_row_is_caught(field, value, check):
    a = convcalc.analyze(STACK, (2, 3, 15, 17))
    rows = list(a.layers)
    rows[0] = rows[0]._replace(**{field: value})
    v = verify(a._replace(layers=tuple(rows)))
    assert getattr(v, check) is False
    assert not v.ok
    assert v.failures[0].startswith("layer 1 (conv:6,k=3,p=1,pm=reflect)")


def test_a_wrong_receptive_field_is_caught():
    a = convcalc.analyze(STACK, (2, 3, 15, 17))
    rows = list(a.layers)
    # pretend the first conv had a 1x1 kernel: its impulse response is wider
    narrow = tuple(x._replace(k=1, pad=0) for x in rows[0].windows)
    rows[0] = rows[0]._replace(windows=narrow, inputs=((-1, narrow),))
    v = verify(a._replace(layers=tuple(rows)))
    assert v.receptive_field is False
    assert v.shapes and v.params
    assert "impulse" in v.failures[0]


@pytest.mark.parametrize("forged", [2, 3])
def test_a_window_claimed_where_the_mask_passes_unchanged_is_caught(forged):
    # a batch norm (layer 2) and a 1x1 conv (layer 3) pass the impulse mask
    # through as it is; a claimed 3x3 window there must still be compared
    a = convcalc.analyze(["conv:4,k=3,p=1", "bn", "conv:4,k=1", "relu"], (1, 2, 9, 9))
    rows = list(a.layers)
    src = rows[forged - 1].inputs[0][0]
    rows[forged - 1] = rows[forged - 1]._replace(inputs=((src, rows[0].windows),))
    v = verify(a._replace(layers=tuple(rows)))
    assert v.receptive_field is False and v.shapes and v.params
    assert v.failures[0].startswith(f"layer {forged} ") and "impulse" in v.failures[0]
    # unforged, every row's mask is compared and agrees
    assert verify(a).ok and verify(a).rf_layers == 4


def test_the_checks_batch_norm_keeps_a_finite_tensor_finite():
    # verify skips the inf scan after a bn: its mean 0, variance 1 and
    # |weight|, |bias| < 1 cannot take float32's largest values past it
    import numpy as np
    from convcalc import ops
    from convcalc.language import parse_token
    from convcalc.layers import build
    from convcalc.verify import _Runner
    big = np.finfo(np.float32).max
    x = np.array([big, -big, big / 2, 0, 1e-30], np.float32).reshape(1, 5, 1, 1)
    row = convcalc.analyze(["bn"], (1, 5, 1, 1)).layers[0]
    for seed in range(20):
        y, tensors = _Runner(np, ops, np.random.default_rng(seed)).run(
            row, build(parse_token(row.spec, 0)), [x])
        assert np.isfinite(y).all() and len(tensors) == 2
        assert all(np.abs(t).max() < 1 for t in tensors)


@pytest.mark.parametrize("tokens, claim", [
    (["conv:8,k=3", "gn:2"], ()),  # gn mixes every position: claimed to mix none
    (["conv:8,k=3", "ln:3"], ()),  # ln's weights span C x H x W: the check runs uncropped
    (["conv:8,k=3", "bn"], (0, 1)),  # bn mixes none: claimed to mix both dims
])
def test_a_wrong_dependency_claim_is_caught(tokens, claim):
    # the 12x12 input leaves 10x10 after the conv: the check changes position 5,5
    a = convcalc.analyze(tokens, (1, 4, 12, 12))
    rows = list(a.layers)
    rows[1] = rows[1]._replace(mixes=claim)
    v = verify(a._replace(layers=tuple(rows)))
    assert v.receptive_field is False and v.shapes and v.params
    assert "changing input position 5,5" in v.failures[0], v.failures


def test_a_dependency_claim_is_run_once_per_layer_and_input_shape():
    # ResNet-50's 53 batch norms by hand: the stem (64 at 112), layer1 (64 and 256
    # at 56), then per stage the first 1x1's width at the stage input, the stride-2
    # 3x3's at the new size, and 4x it (the block output and the downsample):
    # 128@56, 128@28, 512@28; 256@28, 256@14, 1024@14; 512@14, 512@7, 2048@7
    v = verify(convcalc.analyze(["@resnet50"], (1, 3, 224, 224)))
    assert v.ok and (v.dependencies, v.dependency_runs) == (53, 12)
    # a forged claim on one twin is its own check, and fails
    a = convcalc.analyze(["conv:8,k=3", "bn", "relu", "bn"], (1, 4, 12, 12))
    rows = list(a.layers)
    rows[3] = rows[3]._replace(mixes=(0, 1))
    v = verify(a._replace(layers=tuple(rows)))
    assert (v.dependencies, v.dependency_runs) == (2, 2) and not v.receptive_field
    assert "layer 4" in v.failures[0] and "changing input position 5,5" in v.failures[0]


def test_weights_read_the_seeded_pool_round_and_round():
    import numpy as np
    from convcalc import ops
    from convcalc.verify import POOL, _Runner
    runner = _Runner(np, ops, np.random.default_rng(7))
    first = runner.weights(4, 3, 3, 3)
    pool = np.random.default_rng(7).random(POOL, dtype=np.float32) * 2 - 1
    # 1/sqrt(fan-in 27), in float32 as the weights are
    scale = np.float32(1 / 27 ** 0.5)
    assert first.shape == (4, 3, 3, 3) and first.dtype == np.float32
    assert np.array_equal(first.ravel(), pool[:108] * scale)
    big = runner.weights(3, POOL)  # longer than the pool: it wraps, twice
    scale = np.float32(1 / POOL ** 0.5)
    want = np.concatenate([pool[108:], pool, pool, pool[:108]])
    assert big.shape == (3, POOL) and np.array_equal(big.ravel(), want * scale)
    assert np.abs(big).max() <= scale and np.unique(big).size > POOL // 2


def test_raw_weights_are_the_same_draws_read_in_place():
    import numpy as np
    from convcalc import ops
    from convcalc.verify import POOL, TILES, _Runner
    pool = np.random.default_rng(7).random(POOL, dtype=np.float32) * 2 - 1
    runner = _Runner(np, ops, np.random.default_rng(7))
    w, scale = runner.raw(4, 3, 3, 3)
    assert scale == 1 / 27 ** 0.5 and np.array_equal(w.ravel(), pool[:108])
    big, scale = runner.raw(3, POOL)  # wraps the pool twice: still a view, read-only
    assert np.array_equal(big.ravel(), np.concatenate([pool[108:], pool, pool, pool[:108]]))
    assert np.shares_memory(big, runner.tiled) and not big.flags.writeable
    # longer than the laid-out pool from here: a copy of the same draws
    huge, _ = runner.raw(TILES, POOL)
    assert not np.shares_memory(huge, runner.tiled)
    assert np.array_equal(huge.ravel()[:POOL - 108], pool[108:])  # 108 + 3·POOL ≡ 108
    # a conv given the raw weights and its output scaled is the conv of the scaled weights
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    scaled = _Runner(np, ops, np.random.default_rng(7)).weights(4, 3, 3, 3)
    np.testing.assert_allclose(ops.conv(x, w) * np.float32(1 / 27 ** 0.5), ops.conv(x, scaled),
                               rtol=1e-5, atol=1e-6)
    # layer_weights puts the scale on the smaller side: a scaled copy of a
    # weight smaller than the row's output (108 < 216), the view past it
    a_row = convcalc.analyze(["conv:4,k=3"], (1, 3, 8, 8)).layers[0]
    for out_shape, copied in (((1, 4, 6, 9), True), ((1, 107), False)):
        row = a_row._replace(output_shape=out_shape)
        w, b, left = _Runner(np, ops, np.random.default_rng(7)).layer_weights(row, (4, 3, 3, 3),
                                                                             4)
        assert (left == 1.0) is copied and w.flags.writeable is copied
        y = ops.conv(x, w, b) * np.float32(left)
        want = ops.conv(x, w if copied else scaled.reshape(4, 3, 3, 3),
                        b if copied else b * np.float32(1 / 27 ** 0.5))
        assert np.array_equal(w.ravel(), (pool[:108] * np.float32(1 / 27 ** 0.5))
                              if copied else pool[:108])
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
        assert np.array_equal(b, pool[108:112] * np.float32(1 / 27 ** 0.5) if copied
                              else pool[108:112])


def test_memory_guard_says_how_much():
    a = convcalc.analyze(["conv:64,k=3,p=1"], (1, 64, 512, 512))
    need = peak_bytes(a)
    # input + output 64x512x512 floats each, im2col 64*9 rows x 512*512 columns, in float32
    floor = (2 * 64 * 512 * 512 + 64 * 9 * 512 * 512) * 4
    assert need >= floor
    with pytest.raises(convcalc.ConvcalcError) as e:
        verify(a, max_memory=10 ** 8)
    assert "MiB" in str(e.value) and "--max-memory" in str(e.value)
    assert e.value.exit_code == 3


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_verify_table_json_and_exit_codes():
    r = run("shape", "-i", "1x3x32x32", "@vgg16", "--verify")
    assert r.exit_code == 0, r.output
    assert "Verified on NumPy" in r.output and "FAILED" not in r.output
    r = run("shape", "-i", "1x3x32x32", "@vgg16", "--verify", "--format", "json")
    doc = json.loads(r.stdout)
    assert set(doc["verify"]) >= {"shapes", "params", "receptive_field", "seconds"}
    assert doc["verify"]["shapes"] is doc["verify"]["params"] is \
        doc["verify"]["receptive_field"] is True
    r = run("rf", "-i", "1x3x32x32", "@vgg16", "--verify", "--format", "json")
    assert json.loads(r.stdout)["verify"]["receptive_field"] is True
    r = run("shape", "-i", "1x3x224x224", "@vgg16", "--verify", "--max-memory", "50M")
    assert r.exit_code == 3
    assert "--max-memory" in r.stderr and "Traceback" not in r.stderr
    r = run("shape", "@mnist", "--verify", "--max-memory", "lots")
    assert r.exit_code == 2


def test_cli_verify_failure_exits_1(monkeypatch):
    from convcalc import verify as verify_module
    real = verify_module.verify

    def wrong(a, *args, **kw):
        rows = list(a.layers)
        rows[1] = rows[1]._replace(params=rows[1].params + 1)
        return real(a._replace(layers=tuple(rows)), *args, **kw)
    monkeypatch.setattr(verify_module, "verify", wrong)
    r = run("shape", "@mnist", "--verify")
    assert r.exit_code == 1
    assert "layer 2 (maxpool:2)" in r.stderr and "1 params" in r.stderr
    assert "params FAILED" in r.stdout
