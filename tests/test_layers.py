"""Shapes, padding, params, MACs, receptive fields and memory, computed by hand.

Every expected value below was worked out from the formulas of
/work/shared/REFERENCE.md (the arithmetic is in the comment of each case),
never copied from convcalc's output.  Where torch is importable, the same hand
values are also checked against PyTorch itself (``torch=`` builders), so a
disagreement tells whether the hand value or convcalc is wrong.

Formulas used (per spatial dim):
  conv   o = ⌊(i + pb + pa − d·(k−1) − 1)/s⌋ + 1
         params = Cout·(Cin/g)·∏k + Cout,  MACs = N·Cout·∏o·(Cin/g)·∏k
  tconv  o = (i−1)·s − pb − pa + d·(k−1) + op + 1
         params = Cin·(Cout/g)·∏k + Cout,  MACs = N·Cin·∏i·(Cout/g)·∏k
  pool   o = ⌊ or ⌈ (i + 2p − d·(k−1) − 1)/s ⌉ + 1; ceil: if (o−1)·s ≥ i + p: o −= 1
  up     o = ⌊i·scale⌋ (float arithmetic) or size
  linear params = in·out + out,  MACs = rows·in·out
  same   o = ⌈i/s⌉, total = max((o−1)·s + d·(k−1) + 1 − i, 0), before = ⌊total/2⌋
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Optional

import pytest

import convcalc
from convcalc import ConvcalcError, ShapeError, StackSyntaxError


@dataclass
class Case:
    id: str
    shape: tuple
    tokens: list
    out: tuple                          # final output shape
    rows: list = field(default_factory=list)  # per-row expectations (by position)
    torch: Optional[Callable] = None    # t -> module, or (module, forward kwargs)


# row keys: out, pad, params, buffers, macs, rf (receptive_field.size),
# rf_stride, rf_pad, bytes (activation_bytes), part, index
CASES = [
    # ---- SPEC §7: 5x5 input, 3x3 kernel, stride 1 -----------------------
    # full: p = d·(k−1) = 2 each side; o = (5+2+2−2−1)/1+1 = 7
    Case("s7-full", (1, 1, 5, 5), ["conv:1,k=3,p=full"], (1, 1, 7, 7),
         [dict(pad=((2, 2), (2, 2)), params=1 * 1 * 9 + 1, macs=1 * 49 * 9)],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, padding=2)),
    # valid: o = (5−2−1)/1+1 = 3
    Case("s7-valid", (1, 1, 5, 5), ["conv:1,k=3,p=valid"], (1, 1, 3, 3),
         [dict(pad=((0, 0), (0, 0)), macs=9 * 9)],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, padding="valid")),
    # same: total = (⌈5/1⌉−1)·1 + 2 + 1 − 5 = 2 → (1,1); o = 5+2−3+1 = 5
    Case("s7-same", (1, 1, 5, 5), ["conv:1,k=3,p=same"], (1, 1, 5, 5),
         [dict(pad=((1, 1), (1, 1)), macs=25 * 9)],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, padding="same")),
    # default p=0 is valid: 3x3
    Case("conv-default-p0", (1, 1, 5, 5), ["conv:1,k=3"], (1, 1, 3, 3),
         [dict(pad=((0, 0), (0, 0)))]),
    # 2x2 kernel same: total = 4 + 1 + 1 − 5 = 1 → before 0, after 1; o = 5+1−1−1+1 = 5
    Case("s7-same-k2", (1, 1, 5, 5), ["conv:1,k=2,p=same"], (1, 1, 5, 5),
         [dict(pad=((0, 1), (0, 1)))],
         torch=lambda t: t.nn.Conv2d(1, 1, 2, padding="same")),
    # same_lower: the odd unit first → (1,0)
    Case("same-lower-k2", (1, 1, 5, 5), ["conv:1,k=2,p=same_lower"], (1, 1, 5, 5),
         [dict(pad=((1, 0), (1, 0)))]),
    # k=4 same: total = 4+3+1−5 = 3 → same (1,2), same_lower (2,1); o = 5
    Case("same-k4", (1, 1, 5, 5), ["conv:1,k=4,p=same"], (1, 1, 5, 5),
         [dict(pad=((1, 2), (1, 2)))]),
    Case("same-lower-k4", (1, 1, 5, 5), ["conv:1,k=4,p=same_lower"], (1, 1, 5, 5),
         [dict(pad=((2, 1), (2, 1)))]),
    # k=2 full: (1,1); o = 5+2−1−1+1 = 6
    Case("full-k2", (1, 1, 5, 5), ["conv:1,k=2,p=full"], (1, 1, 6, 6),
         [dict(pad=((1, 1), (1, 1)))]),
    # same with d=2: span 4, total = 4+4+1−5 = 4 → (2,2); o = 5+4−4−1+1 = 5
    Case("same-dilated", (1, 1, 5, 5), ["conv:1,k=3,d=2,p=same"], (1, 1, 5, 5),
         [dict(pad=((2, 2), (2, 2)), rf=(5, 5))],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, dilation=2, padding="same")),
    # full with d=2: span 4 each side; o = 5+8−4−1+1 = 9
    Case("full-dilated", (1, 1, 5, 5), ["conv:1,k=3,d=2,p=full"], (1, 1, 9, 9),
         [dict(pad=((4, 4), (4, 4)))],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, dilation=2, padding=4)),

    # ---- SPEC §7: 4x4 input, 2x2 kernel, dilation 2 ------------------------
    # o = (4 − 2·1 − 1)/1 + 1 = 2; RF = 1 + 2·(2−1)·1 = 3
    # params 1·1·4+1 = 5; MACs 1·1·4·1·4 = 16
    Case("s7-dilated-4x4", (1, 1, 4, 4), ["conv:1,k=2,d=2"], (1, 1, 2, 2),
         [dict(rf=(3, 3), params=5, macs=16)],
         torch=lambda t: t.nn.Conv2d(1, 1, 2, dilation=2)),
    # ---- SPEC §7: dilated RF d·(k−1)+1: k=3,d=2 → 5; o = 9−4−1+1 = 5 --------
    Case("s7-dilated-rf5", (1, 1, 9, 9), ["conv:1,k=3,d=2"], (1, 1, 5, 5),
         [dict(rf=(5, 5))]),

    # ---- SPEC §7: 5x8x10x5, conv:14,k=3x2,s=2x1 ---------------------------
    # H: (10−3)/2+1 = 4 (floor 3.5 → 3, +1); W: (5−2)/1+1 = 4
    # params 14·8·3·2 + 14 = 686; MACs 5·14·(4·4)·8·6 = 53,760
    Case("s7-conv-5x8x10x5", (5, 8, 10, 5), ["conv:14,k=3x2,s=2x1"], (5, 14, 4, 4),
         [dict(params=686, macs=53760, bytes=5 * 14 * 4 * 4 * 4, rf=(3, 2))],
         torch=lambda t: t.nn.Conv2d(8, 14, (3, 2), stride=(2, 1))),

    # ---- SPEC §7: tconv:64,k=3,s=2,p=1,op=1 on 1x128x16x16 -----------------
    # o = 15·2 − 1 − 1 + 1·2 + 1 + 1 = 32
    # params 128·64·9 + 64 = 73,792; MACs 1·128·256·64·9 = 18,874,368
    Case("s7-tconv", (1, 128, 16, 16), ["tconv:64,k=3,s=2,p=1,op=1"], (1, 64, 32, 32),
         [dict(pad=((1, 1), (1, 1)), params=73792, macs=18874368)],
         torch=lambda t: t.nn.ConvTranspose2d(128, 64, 3, 2, 1, 1)),
    # ---- SPEC §7: up:2 doubles, up:size=64x48 bilinear align_corners --------
    Case("s7-up2", (1, 3, 7, 9), ["up:2"], (1, 3, 14, 18),
         [dict(params=0, macs=0, bytes=3 * 14 * 18 * 4)],
         torch=lambda t: t.nn.Upsample(scale_factor=2)),
    Case("up2-1d", (2, 4, 10), ["up:2"], (2, 4, 20),
         torch=lambda t: t.nn.Upsample(scale_factor=2)),
    Case("up2-3d", (1, 1, 3, 4, 5), ["upsample:2"], (1, 1, 6, 8, 10),
         torch=lambda t: t.nn.Upsample(scale_factor=2)),
    Case("s7-up-size-bilinear", (1, 3, 16, 16), ["up:size=64x48,mode=bilinear,align_corners"],
         (1, 3, 64, 48), [dict(params=0, macs=0)],
         torch=lambda t: t.nn.Upsample(size=(64, 48), mode="bilinear", align_corners=True)),

    # ---- TF same with stride 2: padding depends on even / odd input ----------
    # i=8: o = ⌈8/2⌉ = 4; total = 3·2 + 2 + 1 − 8 = 1 → (0,1); check (8+1−3)/2+1 = 4
    Case("tf-same-s2-even", (1, 1, 8, 8), ["conv:1,k=3,s=2,p=same"], (1, 1, 4, 4),
         [dict(pad=((0, 1), (0, 1)))],
         torch=lambda t: t.nn.Sequential(t.nn.ZeroPad2d((0, 1, 0, 1)),
                                         t.nn.Conv2d(1, 1, 3, stride=2))),
    # i=7: o = 4; total = 3·2 + 3 − 7 = 2 → (1,1); check (7+2−3)/2+1 = 4
    Case("tf-same-s2-odd", (1, 1, 7, 7), ["conv:1,k=3,s=2,p=same"], (1, 1, 4, 4),
         [dict(pad=((1, 1), (1, 1)))],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, stride=2, padding=1)),
    # mixed: H=8 → (0,1), W=7 → (1,1)
    Case("tf-same-s2-mixed", (1, 1, 8, 7), ["conv:1,k=3,s=2,p=same"], (1, 1, 4, 4),
         [dict(pad=((0, 1), (1, 1)))]),
    # same_lower, i=8: total 1 → (1,0)
    Case("tf-same-lower-s2", (1, 1, 8, 8), ["conv:1,k=3,s=2,p=same_lower"], (1, 1, 4, 4),
         [dict(pad=((1, 0), (1, 0)))]),
    # k=1 s=2 same on 8: total = max(3·2 + 0 + 1 − 8, 0) = 0; o = (8−1)/2+1 = 4
    Case("tf-same-k1-s2", (1, 1, 8, 8), ["conv:1,k=1,s=2,p=same"], (1, 1, 4, 4),
         [dict(pad=((0, 0), (0, 0)))]),
    # i=9, k=3, s=3: o = 3; total = 2·3 + 3 − 9 = 0 → (0,0)
    Case("tf-same-s3", (1, 1, 9, 9), ["conv:1,k=3,s=3,p=same"], (1, 1, 3, 3),
         [dict(pad=((0, 0), (0, 0)))]),
    # i=10, k=3, s=3: o = 4; total = 3·3 + 3 − 10 = 2 → (1,1); (10+2−3)/3+1 = 4
    Case("tf-same-s3-10", (1, 1, 10, 10), ["conv:1,k=3,s=3,p=same"], (1, 1, 4, 4),
         [dict(pad=((1, 1), (1, 1)))]),

    # ---- conv params, bias, groups -------------------------------------------
    # o = 32−3+1 = 30; params 16·3·9 + 16 = 448; MACs 16·900·3·9 = 388,800
    # bytes 16·900·4 = 57,600
    Case("conv-bias", (1, 3, 32, 32), ["conv:16,k=3"], (1, 16, 30, 30),
         [dict(params=448, macs=388800, bytes=57600)],
         torch=lambda t: t.nn.Conv2d(3, 16, 3)),
    # no bias: 16·3·9 = 432, MACs unchanged (bias not counted)
    Case("conv-nobias", (1, 3, 32, 32), ["conv:16,k=3,bias=false"], (1, 16, 30, 30),
         [dict(params=432, macs=388800)],
         torch=lambda t: t.nn.Conv2d(3, 16, 3, bias=False)),
    # batch 4: MACs ×4 = 1,555,200; bytes 4·16·900·4 = 230,400
    Case("conv-batch4", (4, 3, 32, 32), ["conv:16,k=3"], (4, 16, 30, 30),
         [dict(params=448, macs=1555200, bytes=230400)],
         torch=lambda t: t.nn.Conv2d(3, 16, 3)),
    # groups 2: o = 8; params 8·(4/2)·9 + 8 = 152; MACs 8·64·2·9 = 9,216
    Case("conv-groups", (1, 4, 10, 10), ["conv:8,k=3,g=2"], (1, 8, 8, 8),
         [dict(params=152, macs=9216)],
         torch=lambda t: t.nn.Conv2d(4, 8, 3, groups=2)),
    # depthwise g=C=6, p=1: o = 10; params 6·1·9 + 6 = 60; MACs 6·100·1·9 = 5,400
    Case("conv-depthwise", (1, 6, 10, 10), ["conv:6,k=3,g=6,p=1"], (1, 6, 10, 10),
         [dict(params=60, macs=5400)],
         torch=lambda t: t.nn.Conv2d(6, 6, 3, padding=1, groups=6)),
    # depthwise multiplier 2: o = 8; params 12·1·9 + 12 = 120; MACs 12·64·9 = 6,912
    Case("conv-depthwise-mult", (1, 6, 10, 10), ["conv:12,k=3,g=6"], (1, 12, 8, 8),
         [dict(params=120, macs=6912)],
         torch=lambda t: t.nn.Conv2d(6, 12, 3, groups=6)),
    # stride 2 with p=1 (ResNet stem-like): o = (224+6−7)/2+1 = 112
    # params 64·3·49 = 9,408 (no bias); MACs 64·112²·3·49 = 118,013,952 (SPEC §5)
    Case("conv-resnet-stem", (1, 3, 224, 224), ["conv:64,k=7,s=2,p=3,bias=false"],
         (1, 64, 112, 112), [dict(params=9408, macs=118013952, bytes=3211264,
                                  rf=(7, 7), rf_stride=(2, 2), rf_pad=(3, 3))],
         torch=lambda t: t.nn.Conv2d(3, 64, 7, 2, 3, bias=False)),
    # 1-D: o = (16−3)/2+1 = 7; params 4·1·3 + 4 = 16; MACs 8·4·7·1·3 = 672
    Case("conv-1d", (8, 1, 16), ["conv:4,k=3,s=2"], (8, 4, 7),
         [dict(params=16, macs=672, pad=((0, 0),))],
         torch=lambda t: t.nn.Conv1d(1, 4, 3, stride=2)),
    # 3-D: o = 3x4x5; params 2·1·27 + 2 = 56; MACs 2·60·1·27 = 3,240
    Case("conv-3d", (1, 1, 5, 6, 7), ["conv:2,k=3"], (1, 2, 3, 4, 5),
         [dict(params=56, macs=3240)],
         torch=lambda t: t.nn.Conv3d(1, 2, 3)),
    # asymmetric p=0:1 per dim: o = (5+0+1−1−1)+1 = 5
    Case("conv-asym-pad", (1, 1, 5, 5), ["conv:1,k=2,p=0:1x0:1"], (1, 1, 5, 5),
         [dict(pad=((0, 1), (0, 1)))],
         torch=lambda t: t.nn.Sequential(t.nn.ZeroPad2d((0, 1, 0, 1)), t.nn.Conv2d(1, 1, 2))),
    # asymmetric single pair for every dim, stride 2: (6+1+0−2−1)/2+1 = 3
    Case("conv-asym-pad-s2", (1, 1, 6, 6), ["conv:1,k=3,s=2,p=1:0"], (1, 1, 3, 3),
         [dict(pad=((1, 0), (1, 0)))]),
    # per-dim p=1x2: H 5+2−3+1 = 5; W 5+4−3+1 = 7
    Case("conv-perdim-pad", (1, 1, 5, 5), ["conv:1,k=3,p=1x2"], (1, 1, 5, 7),
         [dict(pad=((1, 1), (2, 2)))],
         torch=lambda t: t.nn.Conv2d(1, 1, 3, padding=(1, 2))),
    # reflect p=2 < i=3 allowed: o = 3+4−3+1 = 5
    Case("conv-reflect-ok", (1, 1, 3, 3), ["conv:1,k=3,p=2,pm=reflect"], (1, 1, 5, 5),
         torch=lambda t: t.nn.Conv2d(1, 1, 3, padding=2, padding_mode="reflect")),
    # circular p=3 ≤ i=3 allowed: o = 3+6−3+1 = 7
    Case("conv-circular-ok", (1, 1, 3, 3), ["conv:1,k=3,p=3,pm=circular"], (1, 1, 7, 7),
         torch=lambda t: t.nn.Conv2d(1, 1, 3, padding=3, padding_mode="circular")),
    # replicate: any p; o = 2+10−1+1 = 12
    Case("conv-replicate", (1, 1, 2, 2), ["conv:1,k=1,p=5,pm=replicate"], (1, 1, 12, 12),
         torch=lambda t: t.nn.Conv2d(1, 1, 1, padding=5, padding_mode="replicate")),

    # ---- receptive fields through a chain ------------------------------------
    # conv k3 s2 p1: r = 3, S = 2, P = 1; o = (15+2−3)/2+1 = 8
    # then conv k3 p1: r = 3 + 2·2 = 7, S = 2, P = 1 + 1·2 = 3; o = 8
    Case("rf-chain", (1, 1, 15, 15), ["conv:1,k=3,s=2,p=1", "conv:1,k=3,p=1"], (1, 1, 8, 8),
         [dict(rf=(3, 3), rf_stride=(2, 2), rf_pad=(1, 1)),
          dict(rf=(7, 7), rf_stride=(2, 2), rf_pad=(3, 3))]),
    # maxpool k3 s1 d2: o = 10−4−1+1 = 6; r = 1 + 2·2 = 5
    Case("maxpool-dilated", (1, 1, 10, 10), ["maxpool:3,s=1,d=2"], (1, 1, 6, 6),
         [dict(rf=(5, 5))],
         torch=lambda t: t.nn.MaxPool2d(3, stride=1, dilation=2)),
    # shape-preserving layers keep the field: conv k3 (r 3), relu (3), bn (3)
    Case("rf-preserved", (1, 2, 6, 6), ["conv:2,k=3", "relu", "bn"], (1, 2, 4, 4),
         [dict(rf=(3, 3)), dict(rf=(3, 3)), dict(rf=(3, 3))]),

    # ---- receptive fields through resampling (sizes; stride S/s = 1/2) ----------
    # tconv k3 s2 p0: output o reads inputs ⌈(o−2)/2⌉ … ⌊o/2⌋: 2 for even o, 1 for odd → 2
    # o = 7·2 + 2 + 1 = 17
    Case("rf-tconv-k3s2", (1, 1, 8, 8), ["tconv:1,k=3,s=2"], (1, 1, 17, 17),
         [dict(rf=(2, 2), rf_stride=(Fraction(1, 2), Fraction(1, 2)))]),
    # tconv k4 s2 p1: ⌈(o+1−3)/2⌉ … ⌊(o+1)/2⌋: 2 inputs for every o; o = 14 − 2 + 3 + 1 = 16
    Case("rf-tconv-k4s2p1", (1, 1, 8, 8), ["tconv:1,k=4,s=2,p=1"], (1, 1, 16, 16),
         [dict(rf=(2, 2), rf_stride=(Fraction(1, 2), Fraction(1, 2)))]),
    # conv k3 (r 3, S 1) then tconv k3 s1: r = 3 + 1·2·1 = 5; 8 → 6 → 8
    Case("rf-conv-tconv", (1, 1, 8, 8), ["conv:1,k=3", "tconv:1,k=3"], (1, 1, 8, 8),
         [dict(rf=(3, 3)), dict(rf=(5, 5), rf_stride=(1, 1))]),
    # nearest up:2 maps o → ⌊o/2⌋: r 1, S 1/2; then conv k3 sees ⌊o/2⌋ … ⌊(o+2)/2⌋: 2 inputs
    Case("rf-up-conv", (1, 1, 8, 8), ["up:2", "conv:1,k=3"], (1, 1, 14, 14),
         [dict(rf=(1, 1), rf_stride=(Fraction(1, 2), Fraction(1, 2))), dict(rf=(2, 2))]),

    # ---- sepconv: depthwise (no bias) + pointwise ----------------------------
    # dw: out 8, p=1 → 12x12, params 8·1·9 = 72, MACs 8·144·1·9 = 10,368
    # pw: params 16·8·1 + 16 = 144, MACs 16·144·8 = 18,432
    Case("sepconv", (1, 8, 12, 12), ["sepconv:16,k=3,p=1"], (1, 16, 12, 12),
         [dict(part="depthwise", index=1, out=(1, 8, 12, 12), params=72, macs=10368,
               pad=((1, 1), (1, 1))),
          dict(part="pointwise", index=1, out=(1, 16, 12, 12), params=144, macs=18432)],
         torch=lambda t: t.nn.Sequential(t.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                                         t.nn.Conv2d(8, 16, 1))),
    # mult 2 on C=4: dw out 8, 8x8, params 4·2·9 = 72, MACs 8·64·1·9 = 4,608
    # pw 16·8 + 16 = 144, MACs 16·64·8 = 8,192
    Case("sepconv-mult", (1, 4, 10, 10), ["sepconv:16,k=3,mult=2"], (1, 16, 8, 8),
         [dict(part="depthwise", out=(1, 8, 8, 8), params=72, macs=4608),
          dict(part="pointwise", params=144, macs=8192)],
         torch=lambda t: t.nn.Sequential(t.nn.Conv2d(4, 8, 3, groups=4, bias=False),
                                         t.nn.Conv2d(8, 16, 1))),
    # bias=false drops the pointwise bias: 16·8 = 128
    Case("sepconv-nobias", (1, 8, 12, 12), ["sepconv:16,k=3,p=1,bias=false"], (1, 16, 12, 12),
         [dict(params=72), dict(params=128)]),
    # stride 2 on the depthwise: (12+2−3)/2+1 = 6
    Case("sepconv-s2", (1, 8, 12, 12), ["sepconv:16,k=3,s=2,p=1"], (1, 16, 6, 6),
         [dict(out=(1, 8, 6, 6)), dict(out=(1, 16, 6, 6))]),

    # ---- transposed conv ------------------------------------------------------
    # REFERENCE: ConvTranspose2d(4,6,3,2,1,1) on 1x4x8x8: o = 7·2−2+2+1+1 = 16
    # params 4·6·9 + 6 = 222; MACs 1·4·64·6·9 = 13,824 → FLOPs 27,648
    Case("tconv-ref", (1, 4, 8, 8), ["tconv:6,k=3,s=2,p=1,op=1"], (1, 6, 16, 16),
         [dict(params=222, macs=13824)],
         torch=lambda t: t.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1)),
    Case("deconv-alias", (1, 4, 8, 8), ["deconv:6,k=3,s=2,p=1,op=1"], (1, 6, 16, 16),
         [dict(params=222, macs=13824)]),
    # groups 2: o = 4·1 + 2 + 1 = 7; params 4·(6/2)·9 + 6 = 114; MACs 4·25·3·9 = 2,700
    Case("tconv-groups", (1, 4, 5, 5), ["tconv:6,k=3,g=2"], (1, 6, 7, 7),
         [dict(params=114, macs=2700)],
         torch=lambda t: t.nn.ConvTranspose2d(4, 6, 3, groups=2)),
    # no bias: 4·6·9 = 216
    Case("tconv-nobias", (1, 4, 5, 5), ["tconv:6,k=3,bias=false"], (1, 6, 7, 7),
         [dict(params=216, macs=4 * 25 * 6 * 9)],
         torch=lambda t: t.nn.ConvTranspose2d(4, 6, 3, bias=False)),
    # dilation 2, op 1 (< max(1,2)): o = 4·1 + 2·2 + 1 + 1 = 10
    Case("tconv-dilated-op", (1, 4, 5, 5), ["tconv:4,k=3,d=2,op=1"], (1, 4, 10, 10),
         torch=lambda t: t.nn.ConvTranspose2d(4, 4, 3, dilation=2, output_padding=1)),
    # 1-D: o = 9·2 − 2 + 3 + 1 = 20; params 3·2·4 + 2 = 26; MACs 3·10·2·4 = 240
    Case("tconv-1d", (1, 3, 10), ["tconv:2,k=4,s=2,p=1"], (1, 2, 20),
         [dict(params=26, macs=240)],
         torch=lambda t: t.nn.ConvTranspose1d(3, 2, 4, 2, 1)),
    # DCGAN-like 1x1 → 4x4: o = 0 + 3 + 1 = 4; params 100·64·16 = 102,400 (no bias)
    # MACs 1·100·1·64·16 = 102,400
    Case("tconv-dcgan", (1, 100, 1, 1), ["tconv:64,k=4,bias=false"], (1, 64, 4, 4),
         [dict(params=102400, macs=102400)],
         torch=lambda t: t.nn.ConvTranspose2d(100, 64, 4, bias=False)),
    # size= solves op: minimum = 7·2 − 2 + 2 + 1 = 15, maximum = 15 + 2 − 1 = 16
    # params 4·8·9 + 8 = 296; MACs 4·64·8·9 = 18,432
    Case("tconv-size-16", (1, 4, 8, 8), ["tconv:8,k=3,s=2,p=1,size=16"], (1, 8, 16, 16),
         [dict(params=296, macs=18432)],
         torch=lambda t: (t.nn.ConvTranspose2d(4, 8, 3, 2, 1), {"output_size": [16, 16]})),
    Case("tconv-size-15", (1, 4, 8, 8), ["tconv:8,k=3,s=2,p=1,size=15"], (1, 8, 15, 15),
         torch=lambda t: (t.nn.ConvTranspose2d(4, 8, 3, 2, 1), {"output_size": [15, 15]})),
    Case("tconv-size-mixed", (1, 4, 8, 8), ["tconv:8,k=3,s=2,p=1,size=16x15"], (1, 8, 16, 15),
         torch=lambda t: (t.nn.ConvTranspose2d(4, 8, 3, 2, 1), {"output_size": [16, 15]})),
    # tconv then the RF is no longer a plain conv field: just the shape here
    # up then conv: 4 → 8 → 8 (p=1)
    Case("up-then-conv", (1, 2, 4, 4), ["up:2", "conv:3,k=3,p=1"], (1, 3, 8, 8),
         [dict(out=(1, 2, 8, 8)), dict(params=3 * 2 * 9 + 3, macs=3 * 64 * 2 * 9)]),

    # ---- max pool --------------------------------------------------------------
    # default s = k: (9−1−1)/2+1 = 4 (floor 3.5)
    Case("maxpool-default-stride", (1, 3, 9, 9), ["maxpool:2"], (1, 3, 4, 4),
         [dict(params=0, macs=0, pad=((0, 0), (0, 0)), rf=(2, 2), rf_stride=(2, 2))],
         torch=lambda t: t.nn.MaxPool2d(2)),
    # ResNet pool: (112+2−2−1)/2+1 = 55+1 = 56
    Case("maxpool-resnet", (1, 64, 112, 112), ["maxpool:3,s=2,p=1"], (1, 64, 56, 56),
         torch=lambda t: t.nn.MaxPool2d(3, 2, 1)),
    # ceil rule fires: i=5,k=2,s=2,p=1: room = 5+2−1−1 = 5; ceil → ⌈5/2⌉+1 = 4;
    # the 4th window starts at (4−1)·2 = 6 ≥ i + p = 6 → dropped → 3
    Case("maxpool-ceil-rule-fires", (1, 1, 5, 5), ["maxpool:2,s=2,p=1,ceil"], (1, 1, 3, 3),
         torch=lambda t: t.nn.MaxPool2d(2, 2, 1, ceil_mode=True)),
    # same rule, 1-D, i=7: room = 7+2−1−1 = 7; ⌈7/2⌉+1 = 5; (5−1)·2 = 8 ≥ 7+1 → 4
    Case("maxpool-ceil-rule-fires-1d", (1, 1, 7), ["maxpool:2,p=1,ceil"], (1, 1, 4),
         torch=lambda t: t.nn.MaxPool1d(2, 2, 1, ceil_mode=True)),
    # ceil without the rule: i=6,k=3,s=2,p=1: room = 5; ⌈5/2⌉+1 = 4; (4−1)·2 = 6 < 7 → 4
    Case("maxpool-ceil", (1, 1, 6, 6), ["maxpool:3,s=2,p=1,ceil"], (1, 1, 4, 4),
         torch=lambda t: t.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
    # floor for the same layer: ⌊5/2⌋+1 = 3
    Case("maxpool-floor", (1, 1, 6, 6), ["maxpool:3,s=2,p=1"], (1, 1, 3, 3),
         torch=lambda t: t.nn.MaxPool2d(3, 2, 1)),
    # ceil, no padding: i=5,k=2: room 3; ⌈3/2⌉+1 = 3; (3−1)·2 = 4 < 5 → 3 (floor gives 2)
    Case("maxpool-ceil-nopad", (1, 1, 5, 5), ["maxpool:2,ceil"], (1, 1, 3, 3),
         torch=lambda t: t.nn.MaxPool2d(2, ceil_mode=True)),
    Case("maxpool-floor-nopad", (1, 1, 5, 5), ["maxpool:2"], (1, 1, 2, 2)),
    # ceil with the VGG/caffe layout: i=7, k=3, s=2: room 4; ⌈4/2⌉+1 = 3 (exact → same as floor)
    Case("maxpool-ceil-exact", (1, 1, 7, 7), ["maxpool:3,s=2,ceil"], (1, 1, 3, 3),
         torch=lambda t: t.nn.MaxPool2d(3, 2, ceil_mode=True)),
    # per-dim kernel 2x3: H (8−2)/2+1 = 4; W (9−3)/3+1 = 3
    Case("maxpool-perdim", (1, 1, 8, 9), ["maxpool:2x3"], (1, 1, 4, 3),
         torch=lambda t: t.nn.MaxPool2d((2, 3))),
    # 1-D and 3-D: (9−2)/2+1 = 4; 4x5x6 → 2x2x3
    Case("maxpool-1d", (1, 4, 9), ["maxpool:2"], (1, 4, 4),
         torch=lambda t: t.nn.MaxPool1d(2)),
    Case("maxpool-3d", (1, 1, 4, 5, 6), ["maxpool:2"], (1, 1, 2, 2, 3),
         torch=lambda t: t.nn.MaxPool3d(2)),
    # same on a pool: i=8,k=3,s=2: o 4, total = 6+2+1−8 = 1 → (0,1)
    Case("maxpool-same", (1, 1, 8, 8), ["maxpool:3,s=2,p=same"], (1, 1, 4, 4),
         [dict(pad=((0, 1), (0, 1)))]),
    # pad = k/2 exactly is allowed: k=2,p=1: (5+2−1−1)/2+1 = 3
    Case("maxpool-pad-half", (1, 1, 5, 5), ["maxpool:2,p=1"], (1, 1, 3, 3),
         torch=lambda t: t.nn.MaxPool2d(2, padding=1)),

    # ---- avg pool --------------------------------------------------------------
    # (7+2−3)/2+1 = 4
    Case("avgpool", (1, 2, 7, 7), ["avgpool:3,s=2,p=1"], (1, 2, 4, 4),
         [dict(params=0, macs=0)],
         torch=lambda t: t.nn.AvgPool2d(3, 2, 1)),
    # (5−2)/2+1 = 2 (floor 1.5); ceil: ⌈3/2⌉+1 = 3, (3−1)·2 = 4 < 5 → 3
    Case("avgpool-floor", (1, 2, 5, 5), ["avgpool:2"], (1, 2, 2, 2),
         torch=lambda t: t.nn.AvgPool2d(2)),
    Case("avgpool-ceil", (1, 2, 5, 5), ["avgpool:2,ceil"], (1, 2, 3, 3),
         torch=lambda t: t.nn.AvgPool2d(2, ceil_mode=True)),
    # ceil rule on avg: i=7,k=2,s=2,p=1: room 7; ⌈7/2⌉+1 = 5; 8 ≥ 8 → 4
    Case("avgpool-ceil-rule-fires", (1, 1, 7, 7), ["avgpool:2,p=1,ceil"], (1, 1, 4, 4),
         torch=lambda t: t.nn.AvgPool2d(2, 2, 1, ceil_mode=True)),
    # 2-D avg pool: padded input counts: i=2,k=3,p=1: (2+2−3)/3+1 = 1
    Case("avgpool-small-2d", (1, 1, 2, 2), ["avgpool:3,p=1"], (1, 1, 1, 1),
         torch=lambda t: t.nn.AvgPool2d(3, padding=1)),

    # ---- adaptive pools and gap -------------------------------------------------
    # window j spans [⌊j·10/3⌋, ⌈(j+1)·10/3⌉): [0,4), [3,7), [6,10) → largest RF 4
    Case("aavgpool", (1, 8, 10, 10), ["aavgpool:3"], (1, 8, 3, 3),
         [dict(params=0, macs=0, rf=(4, 4))],
         torch=lambda t: t.nn.AdaptiveAvgPool2d(3)),
    Case("amaxpool", (1, 8, 9, 7), ["amaxpool:4x2"], (1, 8, 4, 2),
         torch=lambda t: t.nn.AdaptiveMaxPool2d((4, 2))),
    # bigger than the input is allowed (windows overlap)
    Case("aavgpool-up", (1, 8, 10, 10), ["aavgpool:20"], (1, 8, 20, 20),
         torch=lambda t: t.nn.AdaptiveAvgPool2d(20)),
    Case("aavgpool-1d", (1, 2, 9), ["aavgpool:5"], (1, 2, 5),
         torch=lambda t: t.nn.AdaptiveAvgPool1d(5)),
    Case("gap", (1, 8, 7, 5), ["gap"], (1, 8, 1, 1),
         [dict(params=0, macs=0, rf=None, bytes=8 * 4)],
         torch=lambda t: t.nn.AdaptiveAvgPool2d(1)),
    Case("gap-3d", (1, 2, 4, 5, 6), ["gap"], (1, 2, 1, 1, 1),
         torch=lambda t: t.nn.AdaptiveAvgPool3d(1)),
    Case("gap-1d", (2, 3, 10), ["gap"], (2, 3, 1),
         torch=lambda t: t.nn.AdaptiveAvgPool1d(1)),

    # ---- bn, activations, dropout, flatten, linear --------------------------------
    # bn: params 2·16 = 32, buffers 2·16 + 1 = 33 (num_batches_tracked); bytes 16·64·4 = 4,096
    Case("bn", (1, 16, 8, 8), ["bn"], (1, 16, 8, 8),
         [dict(params=32, buffers=33, macs=0, bytes=4096)],
         torch=lambda t: t.nn.BatchNorm2d(16)),
    Case("bn-noaffine", (1, 16, 8, 8), ["bn:affine=false"], (1, 16, 8, 8),
         [dict(params=0, buffers=33)],
         torch=lambda t: t.nn.BatchNorm2d(16, affine=False)),
    Case("bn-1d", (4, 10), ["bn"], (4, 10), [dict(params=20, buffers=21)],
         torch=lambda t: t.nn.BatchNorm1d(10)),
    # relu: 8·4·4 = 128 elements · 4 B = 512; inplace: 0
    Case("relu", (1, 8, 4, 4), ["relu"], (1, 8, 4, 4), [dict(params=0, macs=0, bytes=512)]),
    Case("relu-inplace", (1, 8, 4, 4), ["relu:inplace"], (1, 8, 4, 4), [dict(bytes=0)]),
    Case("act-inplace", (1, 8, 4, 4), ["act:silu,inplace"], (1, 8, 4, 4), [dict(bytes=0)]),
    Case("gelu", (1, 8, 4, 4), ["gelu"], (1, 8, 4, 4), [dict(bytes=512)]),
    Case("sigmoid-tanh", (1, 8, 4, 4), ["sigmoid", "tanh"], (1, 8, 4, 4),
         [dict(bytes=512), dict(bytes=512)]),
    Case("dropout", (1, 8, 4, 4), ["dropout:0.3"], (1, 8, 4, 4), [dict(params=0, bytes=512)]),
    Case("dropout-inplace", (1, 8, 4, 4), ["dropout:inplace"], (1, 8, 4, 4), [dict(bytes=0)]),
    # flatten: 3·4·5 = 60 features, a view: 0 bytes, no RF
    Case("flatten", (2, 3, 4, 5), ["flatten"], (2, 60), [dict(bytes=0, params=0, rf=None)],
         torch=lambda t: t.nn.Flatten()),
    Case("flatten-2d", (2, 7), ["flatten"], (2, 7), torch=lambda t: t.nn.Flatten()),
    # linear: params 20·10 + 10 = 210; MACs 2·20·10 = 400; bytes 2·10·4 = 80
    Case("linear", (2, 20), ["linear:10"], (2, 10),
         [dict(params=210, macs=400, bytes=80, rf=None)],
         torch=lambda t: t.nn.Linear(20, 10)),
    # on the last dim of 2x3x4x5: params 5·7 + 7 = 42; MACs 2·3·4·5·7 = 840
    Case("linear-last-dim", (2, 3, 4, 5), ["linear:7"], (2, 3, 4, 7),
         [dict(params=42, macs=840)],
         torch=lambda t: t.nn.Linear(5, 7)),
    # fc, no bias: params 6·3 = 18; MACs 4·6·3 = 72
    Case("fc-nobias", (4, 6), ["fc:3,bias=false"], (4, 3), [dict(params=18, macs=72)],
         torch=lambda t: t.nn.Linear(6, 3, bias=False)),
    # classifier head: 1x64x7x7 → gap 1x64x1x1 → flatten 1x64 → linear 64·10+10 = 650
    Case("head", (1, 64, 7, 7), ["gap", "flatten", "linear:10"], (1, 10),
         [dict(out=(1, 64, 1, 1)), dict(out=(1, 64), bytes=0), dict(params=650, macs=640)],
         torch=lambda t: t.nn.Sequential(t.nn.AdaptiveAvgPool2d(1), t.nn.Flatten(),
                                         t.nn.Linear(64, 10))),

    # ---- upsample: ⌊i·scale⌋ in float arithmetic -------------------------------
    Case("up-0.7", (1, 1, 10), ["up:0.7"], (1, 1, 7),        # 10·0.7 = 7.0 → 7
         torch=lambda t: t.nn.Upsample(scale_factor=0.7)),
    Case("up-1.7", (1, 1, 10), ["up:1.7"], (1, 1, 17),       # 10·1.7 = 17.0 → 17
         torch=lambda t: t.nn.Upsample(scale_factor=1.7)),
    Case("up-0.3", (1, 1, 10), ["up:0.3"], (1, 1, 3),        # 10·0.3 = 3.0 → 3
         torch=lambda t: t.nn.Upsample(scale_factor=0.3)),
    Case("up-1.16", (1, 1, 25), ["up:1.16"], (1, 1, 28),     # 25·1.16 = 28.999…96 → 28
         torch=lambda t: t.nn.Upsample(scale_factor=1.16)),
    Case("up-0.5-odd", (1, 1, 3, 3), ["up:0.5"], (1, 1, 1, 1),  # 3·0.5 = 1.5 → 1
         torch=lambda t: t.nn.Upsample(scale_factor=0.5)),
    # per-dim scale 2x1.5 on 4x4: 8, 6
    Case("up-perdim", (1, 1, 4, 4), ["up:scale=2x1.5"], (1, 1, 8, 6),
         torch=lambda t: t.nn.Upsample(scale_factor=(2, 1.5))),
    Case("up-linear-1d", (1, 1, 5), ["up:2,mode=linear"], (1, 1, 10),
         torch=lambda t: t.nn.Upsample(scale_factor=2, mode="linear")),
    Case("up-bicubic", (1, 1, 5, 6), ["up:2,mode=bicubic,align_corners"], (1, 1, 10, 12),
         torch=lambda t: t.nn.Upsample(scale_factor=2, mode="bicubic", align_corners=True)),
    Case("up-trilinear", (1, 1, 2, 3, 4), ["up:2,mode=trilinear"], (1, 1, 4, 6, 8),
         torch=lambda t: t.nn.Upsample(scale_factor=2, mode="trilinear")),
    Case("up-area-size", (1, 1, 10, 10), ["up:size=7,mode=area"], (1, 1, 7, 7),
         torch=lambda t: t.nn.Upsample(size=7, mode="area")),
    Case("up-nearest-exact", (1, 1, 10), ["up:0.7,mode=nearest-exact"], (1, 1, 7),
         torch=lambda t: t.nn.Upsample(scale_factor=0.7, mode="nearest-exact")),
]


def _check_row(row, exp: dict):
    names = {"out": "output_shape", "pad": "padding", "bytes": "activation_bytes"}
    for key, want in exp.items():
        if key == "rf":
            got = None if row.receptive_field is None else tuple(row.receptive_field.size)
        elif key == "rf_stride":
            got = tuple(row.receptive_field.stride)
        elif key == "rf_pad":
            got = tuple(row.receptive_field.padding)
        else:
            got = getattr(row, names.get(key, key))
            if key == "pad" and got is not None:
                got = tuple(tuple(p) for p in got)
        assert got == want, f"row {row.index} ({row.spec}) {key}: got {got}, want {want}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hand_cases(case):
    result = convcalc.analyze(case.tokens, case.shape)
    assert tuple(result.output_shape) == case.out
    assert tuple(result.layers[-1].output_shape) == case.out
    if case.rows:
        assert len(result.layers) == len(case.rows)
        for row, exp in zip(result.layers, case.rows):
            _check_row(row, exp)
    # rows chain: each row's input is the previous row's output
    prev = tuple(case.shape)
    for row in result.layers:
        assert tuple(row.input_shape) == prev
        prev = tuple(row.output_shape)
    assert result.totals.params == sum(r.params for r in result.layers)
    assert result.totals.macs == sum(r.macs for r in result.layers)
    assert result.totals.flops == 2 * result.totals.macs


TORCH_CASES = [c for c in CASES if c.torch is not None]


def _torch_run(t, builder, shape):
    from torch.utils.flop_counter import FlopCounterMode
    built = builder(t)
    module, kwargs = built if isinstance(built, tuple) else (built, {})
    module.eval()
    x = t.zeros(shape)
    with t.no_grad():
        # plain run first: under FlopCounterMode some ops skip their checks
        # (upsample to size 0 returns an empty tensor there instead of failing)
        y = module(x, **kwargs)
        with FlopCounterMode(display=False) as fc:
            module(x, **kwargs)
    params = sum(p.numel() for p in module.parameters())
    return tuple(y.shape), params, fc.get_total_flops()


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.id for c in TORCH_CASES])
def test_hand_cases_against_torch(case):
    """The hand values themselves, confirmed by PyTorch."""
    t = pytest.importorskip("torch")
    shape, params, flops = _torch_run(t, case.torch, case.shape)
    assert shape == case.out
    if case.rows and all("params" in r for r in case.rows):
        assert params == sum(r["params"] for r in case.rows)
    if case.rows and all("macs" in r for r in case.rows):
        assert flops == 2 * sum(r["macs"] for r in case.rows)


def test_same_k2_pads_after_like_torch():
    """PyTorch's padding='same' with k=2 equals zero padding (0 before, 1 after)."""
    t = pytest.importorskip("torch")
    F = t.nn.functional
    x = t.arange(25.0).reshape(1, 1, 5, 5)
    w = t.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    same = F.conv2d(x, w, padding="same")
    manual = F.conv2d(F.pad(x, (0, 1, 0, 1)), w)
    assert t.equal(same, manual)
    row = convcalc.analyze(["conv:1,k=2,p=same"], (1, 1, 5, 5)).layers[0]
    assert tuple(map(tuple, row.padding)) == ((0, 1), (0, 1))


def test_bn_buffers_against_torch():
    t = pytest.importorskip("torch")
    bn = t.nn.BatchNorm2d(16)
    assert sum(b.numel() for b in bn.buffers()) == 33
    assert convcalc.analyze(["bn"], (1, 16, 4, 4)).totals.buffers == 33


# ---------------------------------------------------------------------------
# dtype and activation memory
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,width", [("float32", 4), ("float16", 2), ("bfloat16", 2),
                                         ("float64", 8), ("int8", 1)])
def test_dtype_width(dtype, width):
    # conv:16,k=3 on 1x3x32x32: 16·30·30 = 14,400 elements; params 448
    r = convcalc.analyze(["conv:16,k=3", "relu:inplace", "flatten"], (1, 3, 32, 32), dtype=dtype)
    assert [row.activation_bytes for row in r.layers] == [14400 * width, 0, 0]
    assert r.totals.activation_bytes == 14400 * width
    assert r.totals.param_bytes == 448 * width
    assert r.memory.input_bytes == 3 * 32 * 32 * width
    assert r.memory.param_bytes == 448 * width
    assert r.memory.forward_backward_bytes == 2 * 14400 * width


def test_float16_halves():
    a = convcalc.analyze(["conv:8,k=3", "relu", "maxpool:2"], (1, 3, 16, 16))
    b = convcalc.analyze(["conv:8,k=3", "relu", "maxpool:2"], (1, 3, 16, 16), dtype="float16")
    # conv 8·14·14 = 1,568; relu 1,568; pool 8·7·7 = 392 elements
    assert [r.activation_bytes for r in a.layers] == [1568 * 4, 1568 * 4, 392 * 4]
    assert [r.activation_bytes for r in b.layers] == [1568 * 2, 1568 * 2, 392 * 2]


# ---------------------------------------------------------------------------
# the MNIST net of SPEC §7: totals and torchsummary's four memory numbers
# ---------------------------------------------------------------------------

MNIST = ["conv:10,k=5", "maxpool:2", "relu", "conv:20,k=5", "dropout", "maxpool:2", "relu",
         "flatten", "linear:50", "relu", "dropout", "linear:10"]
# output shapes, by hand from 1x1x28x28:
#  conv k5: 28−5+1 = 24;  maxpool 2: 12;  conv k5: 12−5+1 = 8;  maxpool 2: 4;  flatten 20·4·4 = 320
MNIST_SHAPES = [(1, 10, 24, 24), (1, 10, 12, 12), (1, 10, 12, 12), (1, 20, 8, 8), (1, 20, 8, 8),
                (1, 20, 4, 4), (1, 20, 4, 4), (1, 320), (1, 50), (1, 50), (1, 50), (1, 10)]
# params: conv1 10·1·25 + 10 = 260; conv2 20·10·25 + 20 = 5,020;
#         fc1 320·50 + 50 = 16,050; fc2 50·10 + 10 = 510; total 21,840
MNIST_PARAMS = [260, 0, 0, 5020, 0, 0, 0, 0, 16050, 0, 0, 510]
# MACs: conv1 10·576·1·25 = 144,000; conv2 20·64·10·25 = 320,000; fc1 320·50 = 16,000;
#       fc2 50·10 = 500; total 480,500
MNIST_MACS = [144000, 0, 0, 320000, 0, 0, 0, 0, 16000, 0, 0, 500]
# elements: 5760, 1440, 1440, 1280, 1280, 320, 320, (flatten: view, 0), 50, 50, 50, 10
# sum = 12,000 elements → 48,000 B of activations
MNIST_ELEMENTS = [5760, 1440, 1440, 1280, 1280, 320, 320, 0, 50, 50, 50, 10]


def test_mnist_net():
    r = convcalc.analyze(MNIST, (1, 1, 28, 28))
    assert [tuple(row.output_shape) for row in r.layers] == MNIST_SHAPES
    assert [row.params for row in r.layers] == MNIST_PARAMS
    assert [row.macs for row in r.layers] == MNIST_MACS
    assert [row.activation_bytes for row in r.layers] == [4 * e for e in MNIST_ELEMENTS]
    assert [row.index for row in r.layers] == list(range(1, 13))
    assert r.output_shape == (1, 10)
    assert r.totals.params == 21840
    assert r.totals.trainable_params == 21840
    assert r.totals.macs == 480500
    assert r.totals.flops == 961000
    assert r.totals.activation_bytes == 48000
    assert r.totals.param_bytes == 87360
    m = r.memory
    assert m.input_bytes == 784 * 4 == 3136
    assert m.param_bytes == 21840 * 4 == 87360
    assert m.forward_backward_bytes == 2 * 48000 == 96000
    assert m.total_bytes == 3136 + 96000 + 87360 == 186496
    mib = 1024 ** 2
    # SPEC §7: input 0.00 MB, params 0.08 MB
    assert f"{m.input_bytes / mib:.2f}" == "0.00"
    assert f"{m.param_bytes / mib:.2f}" == "0.08"


def test_mnist_builtin_matches():
    a = convcalc.analyze(["@mnist"], (1, 1, 28, 28))
    assert [row.params for row in a.layers] == MNIST_PARAMS
    assert a.memory.forward_backward_bytes == 96000


def test_mnist_against_torch():
    t = pytest.importorskip("torch")
    nn = t.nn
    net = nn.Sequential(nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(10, 20, 5),
                        nn.Dropout(), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(320, 50),
                        nn.ReLU(), nn.Dropout(), nn.Linear(50, 10)).eval()
    shapes = []
    x = t.zeros(1, 1, 28, 28)
    from torch.utils.flop_counter import FlopCounterMode
    with t.no_grad(), FlopCounterMode(display=False) as fc:
        for m in net:
            x = m(x)
            shapes.append(tuple(x.shape))
    assert shapes == MNIST_SHAPES
    assert [sum(p.numel() for p in m.parameters()) for m in net] == MNIST_PARAMS
    assert fc.get_total_flops() == 2 * sum(MNIST_MACS)
    # every output except flatten's view: 12,000 elements
    assert sum(math.prod(s) for s in shapes[:7] + shapes[8:]) == sum(MNIST_ELEMENTS) == 12000


# ---------------------------------------------------------------------------
# shape errors: exit 3 at the right layer
# ---------------------------------------------------------------------------

def _tconv_out0(t):
    return t.nn.Sequential(t.nn.BatchNorm2d(1), t.nn.ConvTranspose2d(1, 4, 1, padding=1))


SHAPE_ERRORS = [
    # (id, input, tokens, bad layer, keyword, torch builder or None)
    # padded input 4 < kernel 5
    ("kernel-too-big", (1, 1, 4, 4), ["relu", "conv:4,k=5"], 2, r"larger than",
     lambda t: t.nn.Sequential(t.nn.ReLU(), t.nn.Conv2d(1, 4, 5))),
    # p=1 → 4; then d=3: dilated kernel 7 > padded 4
    ("dilated-kernel-too-big", (1, 1, 4, 4), ["conv:4,k=3,p=1", "conv:4,k=3,d=3"], 2,
     r"larger than",
     lambda t: t.nn.Sequential(t.nn.Conv2d(1, 4, 3, padding=1), t.nn.Conv2d(4, 4, 3, dilation=3))),
    # 1-D: 3 < 5
    ("kernel-too-big-1d", (1, 2, 3), ["conv:4,k=5"], 1, r"larger than",
     lambda t: t.nn.Conv1d(2, 4, 5)),
    # tconv o = 1·1 − 2 + 0 + 0 + 1 = 0 < 1
    ("tconv-output-0", (1, 1, 2, 2), ["bn", "tconv:4,k=1,p=1"], 2, r"less than 1", None),
    # tconv o = 0 − 4 + 2 + 1 = −1
    ("tconv-output-neg", (1, 1, 1, 1), ["tconv:4,k=3,p=2"], 1, r"less than 1", None),
    # in channels 3 not divisible by groups 2
    ("conv-in-groups", (1, 3, 4, 4), ["relu", "relu", "conv:4,k=1,g=2"], 3, r"divisible",
     lambda t: t.nn.Conv2d(3, 4, 1, groups=2)),
    ("tconv-in-groups", (1, 3, 4, 4), ["tconv:4,k=3,g=2"], 1, r"divisible",
     lambda t: t.nn.ConvTranspose2d(3, 4, 3, groups=2)),
    ("sepconv-after-odd", (1, 3, 8, 8), ["conv:5,k=1", "conv:10,k=3,g=2"], 2, r"divisible",
     None),
    # reflect p=3 ≥ i=3
    ("reflect-pad", (1, 1, 3, 3), ["conv:1,k=3,p=3,pm=reflect"], 1, r"reflect",
     lambda t: t.nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")),
    # circular p=4 > i=3
    ("circular-pad", (1, 1, 3, 3), ["conv:1,k=3,p=4,pm=circular"], 1, r"circular",
     lambda t: t.nn.Conv2d(1, 1, 3, padding=4, padding_mode="circular")),
    # bilinear needs 2 spatial dims
    ("bilinear-1d", (1, 1, 8), ["relu", "up:2,mode=bilinear"], 2, r"bilinear",
     lambda t: t.nn.Upsample(scale_factor=2, mode="bilinear")),
    ("linear-2d", (1, 1, 8, 8), ["up:2,mode=linear"], 1, r"linear",
     lambda t: t.nn.Upsample(scale_factor=2, mode="linear")),
    ("trilinear-2d", (1, 1, 8, 8), ["up:2,mode=trilinear"], 1, r"trilinear",
     lambda t: t.nn.Upsample(scale_factor=2, mode="trilinear")),
    # 1-D conv given a 2-D kernel
    ("conv1d-k3x3", (1, 1, 8), ["conv:4,k=3x3"], 1, r"spatial dim|dims",
     lambda t: t.nn.Conv1d(1, 4, (3, 3))),
    ("maxpool-k-rank", (1, 1, 8, 8), ["maxpool:2x2x2"], 1, r"spatial dim|dims", None),
    # conv after flatten: no spatial dims left
    ("conv-after-flatten", (1, 1, 8, 8), ["conv:4,k=3", "flatten", "conv:4,k=1"], 3,
     r"spatial",
     lambda t: t.nn.Sequential(t.nn.Conv2d(1, 4, 3), t.nn.Flatten(), t.nn.Conv2d(4, 4, 1))),
    ("pool-after-flatten", (1, 1, 8, 8), ["flatten", "maxpool:2"], 2, r"spatial", None),
    # pool output < 1: (2−2−1)/3+1 = 0
    ("maxpool-too-small", (1, 1, 2, 2), ["maxpool:3"], 1, r"less than 1",
     lambda t: t.nn.MaxPool2d(3)),
    # up:0.3 on 3: ⌊0.9⌋ = 0
    ("up-to-zero", (1, 1, 3), ["up:0.3"], 1, r"less than 1",
     lambda t: t.nn.Upsample(scale_factor=0.3)),
    # tconv size=17 outside [15, 16]
    ("tconv-size-unreachable", (1, 4, 8, 8), ["tconv:8,k=3,s=2,p=1,size=17"], 1,
     r"cannot be reached|size",
     lambda t: (t.nn.ConvTranspose2d(4, 8, 3, 2, 1), {"output_size": [17, 17]})),
    ("tconv-size-too-small", (1, 4, 8, 8), ["tconv:8,k=3,s=2,p=1,size=14"], 1,
     r"cannot be reached|size",
     lambda t: (t.nn.ConvTranspose2d(4, 8, 3, 2, 1), {"output_size": [14, 14]})),
    # 3-D avg pool checks the unpadded input against the kernel: 2 < 3
    ("avgpool3d-small", (1, 1, 2, 2, 2), ["avgpool:3,p=1"], 1, r"smaller than",
     lambda t: t.nn.AvgPool3d(3, padding=1)),
    # adaptive pool size per dim does not match the rank
    ("aavgpool-rank", (1, 1, 8), ["aavgpool:2x2"], 1, r"spatial dim|dims", None),
]


@pytest.mark.parametrize("cid,shape,tokens,layer,keyword,builder", SHAPE_ERRORS,
                         ids=[c[0] for c in SHAPE_ERRORS])
def test_shape_errors(cid, shape, tokens, layer, keyword, builder):
    with pytest.raises(ConvcalcError) as ei:
        convcalc.analyze(tokens, shape)
    e = ei.value
    assert isinstance(e, ShapeError), (type(e), str(e))
    assert e.exit_code == 3
    assert e.layer == layer
    assert e.token == tokens[layer - 1]
    assert tokens[layer - 1] in str(e)
    assert re.search(keyword, str(e), re.I), str(e)


SHAPE_ERRORS_TORCH = [c for c in SHAPE_ERRORS if c[5] is not None]


@pytest.mark.parametrize("cid,shape,tokens,layer,keyword,builder", SHAPE_ERRORS_TORCH,
                         ids=[c[0] for c in SHAPE_ERRORS_TORCH])
def test_shape_errors_against_torch(cid, shape, tokens, layer, keyword, builder):
    """PyTorch rejects these too."""
    t = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, ValueError)):  # torch's errors for a bad shape
        _torch_run(t, builder, shape)


def test_tconv_output_below_one_in_torch():
    """torch returns an empty tensor or fails; never a usable output (REFERENCE)."""
    t = pytest.importorskip("torch")
    outcomes = []
    for mod, shape in [(t.nn.ConvTranspose2d(1, 4, 1, padding=1), (1, 1, 2, 2)),
                       (t.nn.ConvTranspose2d(1, 4, 3, padding=2), (1, 1, 1, 1))]:
        try:
            y = mod(t.zeros(shape))
        except RuntimeError:  # oneDNN refuses the negative size
            outcomes.append("error")
            continue
        assert min(y.shape) < 1
        outcomes.append("empty")
    assert len(outcomes) == 2
    for tokens, shape in ((["tconv:4,k=1,p=1"], (1, 1, 2, 2)), (["tconv:4,k=3,p=2"], (1, 1, 1, 1))):
        with pytest.raises(ShapeError, match="less than 1"):
            convcalc.analyze(tokens, shape)


def test_shape_error_does_not_hide_earlier_rows():
    # layer 1 is fine (4 → 2), layer 2 fails at 2 < 3
    with pytest.raises(ShapeError) as ei:
        convcalc.analyze(["conv:4,k=3", "conv:4,k=3", "conv:4,k=3"], (1, 1, 4, 4))
    assert ei.value.layer == 2


def test_syntax_error_beats_shape_error():
    # layer 3 is malformed text; layer 1 can't fit the input. The text is checked first.
    with pytest.raises(ConvcalcError) as ei:
        convcalc.analyze(["conv:4,k=9", "relu", "conv:4,k=2.5"], (1, 1, 4, 4))
    assert isinstance(ei.value, StackSyntaxError) and ei.value.layer == 3


# ---------------------------------------------------------------------------
# engine bugs found while writing these tests (fixed)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("token,shape", [("maxpool:3,p=full", (1, 1, 8, 8)),
                                         ("avgpool:3,p=full", (1, 1, 100, 100)),
                                         # same with s=1, d=2, k=3: total 4 → (2,2) at every i
                                         ("maxpool:3,s=1,d=2,p=same", (1, 1, 8, 8))])
def test_bug_pool_mode_padding_never_valid_is_exit_2(token, shape):
    with pytest.raises(ConvcalcError) as ei:
        convcalc.analyze(["relu", token], shape)
    assert ei.value.layer == 2
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("token,shape", [("conv:4,k=3x3x3x3", (1, 1, 8, 8, 8)),
                                         ("conv:4,k=3x3,s=2x2x2", (1, 1, 8, 8)),
                                         ("aavgpool:2x2x2x2", (1, 1, 8, 8, 8))])
def test_bug_impossible_rank_is_exit_2(token, shape):
    with pytest.raises(ConvcalcError) as ei:
        convcalc.analyze([token], shape)
    assert ei.value.layer == 1
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("token", ["up:1e20", "up:scale=1e300"])
def test_bug_huge_upsample_scale_rejected(token):
    with pytest.raises(ConvcalcError):
        convcalc.analyze([token], (1, 1, 8, 8))


def test_huge_upsample_scale_torch_rejects():
    t = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        t.nn.functional.interpolate(t.zeros(1, 1, 8, 8, device="meta"), scale_factor=1e20)


def test_avgpool3d_asymmetric_padding_checks_the_padded_input():
    # p=same, k=4, s=2x1x1 on 4x3x2: totals 2, 3, 3 → pairs 1:1, 1:2, 1:2; an
    # asymmetric pad runs as F.pad then the pool, which sees 6x6x5 ≥ 4: the output
    # is ⌊(6−4)/2⌋+1, 6−4+1, 5−4+1 = 2x3x2 (found by a live conformance case)
    tok = "avgpool:4,p=same,count_include_pad=false,s=2x1x1"
    a = convcalc.analyze([tok], (1, 1, 4, 3, 2))
    assert a.output_shape == (1, 1, 2, 3, 2)
    assert a.layers[0].padding == ((1, 1), (1, 2), (1, 2))
    # symmetric padding goes into avg_pool3d itself, which checks 4x3x2 < 4x4x4
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        convcalc.analyze(["avgpool:4,p=1,s=1"], (1, 1, 4, 3, 2))
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = F.pad(torch.zeros(1, 1, 4, 3, 2), (1, 2, 1, 2, 1, 1))
    assert tuple(F.avg_pool3d(x, 4, (2, 1, 1)).shape) == a.output_shape
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        F.avg_pool3d(torch.zeros(1, 1, 4, 3, 2), 4, 1, 1)
