"""Receptive-field arithmetic on exact fractions.

For a single path (Araujo et al., Distill 2019; Dang Ha The Hien's guide):
effective stride S_l = S_{l−1}·s_l, size r_l = r_{l−1} + d_l·(k_l − 1)·S_{l−1},
effective padding P_l = P_{l−1} + p_l·S_{l−1}; output position u sees input
[u·S − P, u·S − P + r − 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence, Tuple

from .layers import Window


@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial dim: size r, effective stride S and effective padding P."""

    size: Tuple[int, ...]
    stride: Tuple[Fraction, ...]
    padding: Tuple[Fraction, ...]

    @classmethod
    def identity(cls, n: int) -> "ReceptiveField":
        return cls((1,) * n, (Fraction(1),) * n, (Fraction(0),) * n)


def step(rf: Optional[ReceptiveField], windows: Optional[Sequence[Window]]
         ) -> Optional[ReceptiveField]:
    """The receptive field after one layer; None once positions are mixed."""
    if rf is None or windows is None:
        return None
    if not windows:
        return rf
    if any(w.kind != "conv" for w in windows):
        return None  # transposed conv and resampling: the next issue
    size, stride, pad = [], [], []
    for (r, S, P), w in zip(zip(rf.size, rf.stride, rf.padding), windows):
        size.append(int(r + w.dilation * (w.k - 1) * S))
        pad.append(P + w.pad * S)
        stride.append(S * w.stride)
    return ReceptiveField(tuple(size), tuple(stride), tuple(pad))
