"""What ``convcalc models`` lists: each built-in stack's header and totals.

Reading the 80-odd stack files and analysing the hand-written ones costs more
than the rest of the start-up, so the listing is kept in ``models/index.json``
beside them, written by ``python tests/make_models_index.py``.  The index records
each file's size: when a stack was changed (or added, or removed) and the index
was not rewritten, the listing is computed from the stacks instead, so it is
never stale — only slower.  A test fails while the committed index is stale.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

from .errors import ConvcalcError
from .language import MODELS_DIR, builtin_models

INDEX = os.path.join(MODELS_DIR, "index.json")


def _sizes() -> Dict[str, int]:
    return {e[:-6]: os.path.getsize(os.path.join(MODELS_DIR, e))
            for e in os.listdir(MODELS_DIR) if e.endswith(".stack")}


def compute_entries() -> List[Dict]:
    """The listing, from the stacks themselves (the truth the index caches)."""
    from .analysis import analyze
    entries = []
    for name, stack in builtin_models().items():
        meta = stack.meta
        if "params" in meta and "macs" in meta:  # a generated file states its totals
            params, macs = int(meta["params"]), int(meta["macs"])
        else:
            try:
                totals = analyze(stack.tokens, stack.input_shape, receptive=False).totals
                params, macs = totals.params, totals.macs
            except ConvcalcError:  # a model shown failing at its default input
                params = macs = None
        entries.append({"name": name, "family": meta.get("family", ""),
                        "description": stack.description, "input": list(stack.input_shape),
                        "layers": len(stack.tokens), "params": params, "macs": macs})
    entries.sort(key=lambda e: (e["family"].lower(), e["name"]))
    return entries


def index_text() -> str:
    """The index file's content for the stacks as they are now."""
    doc = {"sizes": dict(sorted(_sizes().items())), "models": compute_entries()}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def model_entries() -> List[Dict]:
    """The listing: the index when it matches the stacks on disk, else computed."""
    try:
        with open(INDEX, encoding="utf-8") as f:
            doc = json.load(f)
        if doc["sizes"] == _sizes():
            return doc["models"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no index, or a broken one: the stacks still say it
    return compute_entries()
