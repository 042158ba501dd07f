#!/usr/bin/env python
"""Rewrite ``src/convcalc/models/index.json``, the listing ``convcalc models``
reads instead of every stack file (see ``convcalc.model_index``).

    python tests/make_models_index.py

Run it after adding, removing or editing a built-in stack (``make_zoo.py``
runs it too); ``tests/test_models_index.py`` fails while the index is stale.
"""
from __future__ import annotations

from convcalc.model_index import INDEX, index_text


def main() -> None:
    with open(INDEX, "w", encoding="utf-8") as f:
        f.write(index_text())
    print(f"wrote {INDEX}")


if __name__ == "__main__":
    main()
