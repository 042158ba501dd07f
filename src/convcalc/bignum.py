"""Integers too long for Python's int-to-text limit, as text.

A valid stack can have an effective stride of 10^4800 (400 stride-10^12
convs); ``str()`` refuses integers over 4,300 digits.  Beyond ``DIGITS``
digits convcalc writes the exponent form ``1.00000e+4800``, which is also a
JSON number.
"""
from __future__ import annotations

DIGITS = 4000  # exact digits below this length (Python's limit is 4,300)
_BITS = int(DIGITS / 0.30103)  # bit lengths safely under DIGITS decimal digits
_LEAD = 6  # significant digits of the exponent form


def fraction(*args):
    """``fractions.Fraction(*args)``, imported on first use: fractions brings
    decimal with it, 4 ms of every start-up, and a stack whose strides and
    ratios are whole never makes one."""
    from fractions import Fraction
    return Fraction(*args)


def int_text(n: int) -> str:
    """``n`` in decimal: exact when short enough, else ``d.ddddde+N``."""
    if n.bit_length() < _BITS:
        return str(n)
    sign, n = ("-", -n) if n < 0 else ("", n)
    e = int(n.bit_length() * 0.30102999566398120) - _LEAD  # a few digits under the length
    lead = n // 10 ** e
    while lead >= 10 ** _LEAD:  # at most a few steps: e was an underestimate
        lead //= 10
        e += 1
    digits = str(lead)
    return f"{sign}{digits[0]}.{digits[1:]}e+{e + len(digits) - 1}"


def fraction_text(v) -> str:
    """``3``, ``1/2`` of an int or a Fraction (a float as its exact fraction);
    numerator and denominator through :func:`int_text`."""
    if isinstance(v, float):
        v = fraction(v)
    if v.denominator == 1:
        return int_text(v.numerator)
    return f"{int_text(v.numerator)}/{int_text(v.denominator)}"


def is_huge(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n.bit_length() >= _BITS
