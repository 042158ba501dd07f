"""The cyclic garbage collector paused while a result is built.

An analysis and its renderings are trees of rows, tuples, dicts and lists
with no cycles: the collector frees nothing there, yet each full collection
walks the whole growing heap again (10^5 rows spent a third of their time
in it).  Reference counting still frees everything as usual.
"""
from __future__ import annotations

import functools
import gc


def paused(fn):
    """``fn`` run with the collector off (and on again after, if it was)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return run
