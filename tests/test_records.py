"""``records.record``: named tuples declared like ``typing.NamedTuple``."""
from __future__ import annotations

import pickle
from typing import NamedTuple, Optional, Tuple

import pytest

from convcalc.records import record


@record
class Point:
    """A point, with a default and a property."""

    x: int
    y: int = 0
    label: Optional[str] = None

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> "Point":
        return self._replace(x=self.x + dx)


class Twin(NamedTuple):  # the same declaration through typing, for comparison
    x: int
    y: int = 0
    label: Optional[str] = None


def test_a_record_behaves_as_the_typing_named_tuple_does():
    p = Point(3, -4)
    t = Twin(3, -4)
    assert tuple(p) == tuple(t) == (3, -4, None) and p == t
    assert Point._fields == Twin._fields == ("x", "y", "label")
    assert Point._field_defaults == Twin._field_defaults == {"y": 0, "label": None}
    assert p.norm1 == 7 and p.moved(2) == Point(5, -4) and p._replace(label="a").label == "a"
    assert repr(p) == "Point(x=3, y=-4, label=None)"
    assert Point.__doc__ == "A point, with a default and a property."
    assert Point.__qualname__ == "Point" and Point.__module__ == __name__
    assert pickle.loads(pickle.dumps(p)) == p
    assert hash(p) == hash((3, -4, None))
    with pytest.raises(AttributeError):
        p.x = 1  # immutable
    with pytest.raises(TypeError):
        Point()  # x has no default


def test_a_field_without_default_after_one_with_is_refused():
    with pytest.raises(TypeError, match="'b' without a default follows"):
        @record
        class Bad:
            a: int = 1
            b: Tuple[int, ...]
