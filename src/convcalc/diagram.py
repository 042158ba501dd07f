"""What an architecture diagram shows: blocks by resolution level, groups of
repeated blocks, and the connectors between them (drawn by diagram_svg).

A row's level is log2 of its output's effective stride against the network
input, followed along each row's first input through its index maps: a
valid conv shrinks a tensor without changing its level, a stride-2 pool adds
one, a transposed conv or an upsample by 2 takes one away.  Rows whose
positions are mixed (flatten, linear, a global pool) have no level: at the
end of the stack they form the head; elsewhere (a squeeze-excitation gate)
they sit at the level of the tensor they came from.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .analysis import Analysis, Row

BUDGET = 64  # blocks a diagram draws before it collapses groups and repeats
FORK_STEPS = 4096  # rows walked back from a join to find where its paths split
JOINS = ("add", "concat", "mul")
# rows drawn inside the block that made their input (conv + bn + relu is one block)
MINOR = frozenset({
    "bn", "act", "dropout", "dropout1d", "dropout2d", "dropout3d", "alphadropout",
    "featurealphadropout", "ln", "ln2d", "gn", "instnorm", "save", "from", "layerscale",
    "droppath", "shuffle", "softmax", "logsoftmax", "permute", "flatten", "chunk", "pad",
    "crop"})
HEAD = None  # the level of the head's rows


def _log_stride(windows) -> float:
    """log2 of the input positions per output position a row's windows step."""
    if not windows:
        return 0.0
    total = 0.0
    for w in windows:
        if w.kind == "conv":
            total += math.log2(w.stride) if w.stride > 0 else 0.0
        elif w.kind == "tconv":
            total -= math.log2(w.stride)
        else:  # resampling and adaptive pools: their size ratio
            total += math.log2(w.in_size / w.out_size)
    return total / len(windows)


def _reads(r: Row, pos: int):
    """A row's inputs, the ones that carry positions first: a join's gate
    (a broadcast from a global pool) comes after the tensor it gates."""
    inputs = r.inputs or ((pos - 1, ()),)
    return sorted(inputs, key=lambda i: i[1] is None or any(w.stride == 0 for w in i[1]))


def levels(rows: Sequence[Row]) -> List[Optional[int]]:
    """Per row position its level (0 at the input's resolution), or HEAD."""
    exact: List[Optional[float]] = []
    for pos, r in enumerate(rows):
        src, windows = _reads(r, pos)[0]
        base = 0.0 if src < 0 else exact[src]
        exact.append(None if base is None or windows is None else base + _log_stride(windows))
    head = len(rows)
    while head > 0 and exact[head - 1] is None:
        head -= 1
    out: List[Optional[int]] = []
    for pos, (r, v) in enumerate(zip(rows, exact)):
        if pos >= head:
            out.append(HEAD)
        elif v is not None:
            out.append(math.floor(v + 0.5))
        else:  # mixed positions off the main path: where its tensor came from
            src = _reads(r, pos)[0][0]
            out.append(0 if src < 0 else out[src])
    return out


def fork(rows: Sequence[Row], join: int) -> Optional[int]:
    """The last row every path into ``join`` passes through (−1: the input);
    None when the walk back is longer than FORK_STEPS."""
    frontier = [-s for s in {src for src, _ in rows[join].inputs}]
    heapq.heapify(frontier)
    seen = set(frontier)
    for _ in range(FORK_STEPS):
        if len(frontier) == 1:
            return -frontier[0]
        pos = -heapq.heappop(frontier)
        if pos < 0:
            return None  # a path reached the input while another had not converged
        for src, _ in rows[pos].inputs or ((pos - 1, ()),):
            if -src not in seen:
                seen.add(-src)
                heapq.heappush(frontier, -src)
    return None


class Group:
    """Rows ``start``..``end`` (positions, inclusive) drawn as one unit."""

    def __init__(self, start: int, end: int, label: str):
        self.start, self.end, self.label = start, end, label

    def __repr__(self) -> str:
        return f"Group({self.start}, {self.end}, {self.label!r})"


def module_path(name: str) -> List[str]:
    """A source name as a module path: ``layer1.0.conv1``; an ONNX scope
    ``/layer1/layer1.0/conv1/Conv`` repeats the path so far in each part."""
    path: List[str] = []
    for part in (p for p in name.split("/") if p):
        if path and part.startswith(".".join(path) + "."):
            path = part.split(".")
        else:
            path += [p for p in part.split(".") if p]
    return path


def _is_major(r: Row) -> bool:
    return r.kind not in MINOR


def _name_runs(rows: Sequence[Row], paths, depth: int, forks: Dict[int, Optional[int]]):
    """Runs of rows whose names share their first ``depth`` parts.  Unnamed
    rows between two rows of one run belong to it, and so does a join right
    after a run whose paths split before the run began (densenet's cat_1)."""
    runs: List[Tuple[int, int, str]] = []
    key = start = None
    last = -1
    for pos, p in enumerate(paths):
        k = ".".join(p[:depth]) if p and len(p) > depth else None  # a module holding it
        if k is None:
            continue
        if k == key:
            last = pos
            continue
        if key is not None:
            runs.append((start, _attach(rows, start, last, pos, forks), key))
        key, start, last = k, pos, pos
    if key is not None:
        runs.append((start, _attach(rows, start, last, len(rows), forks), key))
    return runs


def _attach(rows, start: int, last: int, stop: int, forks) -> int:
    end = last
    for pos in range(last + 1, stop):
        if rows[pos].kind in JOINS:
            if pos not in forks:
                forks[pos] = fork(rows, pos)
            f = forks[pos]
            if f is not None and f < start:
                end = pos
    return end


def _majors(rows, start: int, end: int) -> int:
    return sum(1 for r in rows[start:end + 1] if _is_major(r))


def name_groups(rows: Sequence[Row]) -> List[Group]:
    """An imported model's groups: its rows by the first D parts of their
    names, D the depth with the most groups of two or more layers among those
    whose groups hold 90% of the layers any depth's groups hold (ResNet's
    layer1.0, DenseNet's denseblock1.denselayer1)."""
    paths = [module_path(r.name) if r.name else None for r in rows]
    deepest = max((len(p) for p in paths if p), default=0)
    forks: Dict[int, Optional[int]] = {}
    best: List[Tuple[int, int, str]] = []
    options = []
    for depth in range(1, deepest):
        runs = [g for g in _name_runs(rows, paths, depth, forks) if _majors(rows, g[0], g[1]) > 1]
        options.append((runs, sum(_majors(rows, g[0], g[1]) for g in runs)))
    # the most groups among the depths whose groups hold nearly all the layers
    # any depth's do: EfficientNet's blocks (features.2.0), not their SE gates
    most = max((held for _, held in options), default=0)
    for runs, held in options:
        if held >= 0.9 * most and len(runs) > len(best):
            best = runs
    keys = [k.split(".") for _, _, k in best]
    common = 0  # the parts every group shares (torchvision's "features.")
    while keys and all(len(k) > common + 1 and k[common] == keys[0][common] for k in keys):
        common += 1
    return [Group(s, e, ".".join(k.split(".")[common:])) for s, e, k in best]


def pattern_groups(rows: Sequence[Row], lv: Sequence[Optional[int]]) -> List[Group]:
    """Groups from the graph: the rows between a join and the row where its
    paths split (a residual block, a dense layer, an SE gate), or since the
    last join inside that span.  A span that leaves the levels of its two
    ends is a long skip (a U-Net's), not a block, and makes no group."""
    groups: List[Group] = []
    joins: List[int] = []
    for pos, r in enumerate(rows):
        if r.kind not in JOINS:
            continue
        f = fork(rows, pos)
        if f is not None:
            ends = [0 if f < 0 else lv[f], lv[pos]]
            if None not in ends and all(
                    v is None or min(ends) <= v <= max(ends) for v in lv[f + 1:pos]):
                inner = [j for j in joins if j > f]
                start = (inner[-1] if inner else f) + 1
                if _majors(rows, start, pos) > 1:
                    groups.append(Group(start, pos, _pattern_label(rows, start, pos)))
        joins.append(pos)
    return groups


def _pattern_label(rows, start: int, end: int) -> str:
    convs = sum(1 for r in rows[start:end + 1] if r.kind in ("conv", "sepconv", "tconv"))
    return f"conv×{convs} + {rows[end].kind}" if convs else f"block + {rows[end].kind}"


@dataclass
class Block:
    """One drawn unit: a layer with the rows folded into it, or a group."""

    rows: List[int]  # positions, −1 the network input
    main: int  # the position whose output the block shows
    kind: str  # the main row's kind, "group", or "input"
    level: Optional[int]
    label: str = ""  # a group's name
    count: int = 1  # blocks merged into it
    signature: Tuple = field(default=(), repr=False)
    last_label: str = ""  # the last merged group's name


@dataclass
class Diagram:
    blocks: List[Block]
    edges: List[Tuple[int, int]]  # (block, block) ordinals, source first
    groups: List[Tuple[int, int, str]]  # frames around blocks first..last, drawn expanded
    collapsed: bool


def build(a: Analysis) -> Diagram:
    """The blocks to draw: every layer when they fit in BUDGET, else each
    group as one block, then runs of equal blocks as one, then even runs."""
    rows = a.layers
    lv = levels(rows)
    groups = name_groups(rows) if any(r.name for r in rows) else []
    if not groups:
        groups = pattern_groups(rows, lv)
    full = _blocks(rows, lv, [])
    if len(full[0]) <= BUDGET:
        blocks, owner = full
        frames = []
        for g in groups:
            ids = sorted({owner[p] for p in range(g.start, g.end + 1) if _is_major(rows[p])})
            frames.append((ids[0], ids[-1], g.label))
        return Diagram(blocks, _edges(rows, owner), frames, False)
    blocks, owner = _blocks(rows, lv, groups)
    if len(blocks) > BUDGET:
        blocks, owner = _merge(blocks, owner, lambda i, b: b.signature)
    if len(blocks) > BUDGET:
        size = math.ceil((len(blocks) - 1) / (BUDGET - 1))
        blocks, owner = _merge(blocks, owner, lambda i, b: (i - 1) // size)
    return Diagram(blocks, _edges(rows, owner), [], True)


def _blocks(rows, lv, groups: List[Group]):
    owner: Dict[int, int] = {-1: 0}
    blocks = [Block([-1], -1, "input", 0, signature=("input",))]
    in_group = {}
    for g in groups:
        for p in range(g.start, g.end + 1):
            in_group[p] = g
    for pos, r in enumerate(rows):
        g = in_group.get(pos)
        if g is not None and pos > g.start:
            owner[pos] = owner[g.start]
            blocks[owner[pos]].rows.append(pos)
            continue
        if g is not None:
            kinds = tuple(x.kind for x in rows[g.start:g.end + 1])
            blocks.append(Block([pos], g.end, "group", lv[g.end], g.label,
                                signature=("group", lv[g.end], kinds)))
        elif _is_major(r):
            wins = r.inputs[0][1] if r.inputs else ()
            sig = (r.kind, r.part, lv[pos], tuple((w.kind, w.k, w.stride) for w in wins or ()))
            blocks.append(Block([pos], pos, r.kind, lv[pos], signature=sig))
        else:
            src = r.inputs[0][0] if r.inputs else pos - 1
            owner[pos] = owner[src]
            blocks[owner[pos]].rows.append(pos)
            continue
        owner[pos] = len(blocks) - 1
    return blocks, owner


def _merge(blocks: List[Block], owner: Dict[int, int], key) -> Tuple[List[Block], Dict]:
    """Consecutive blocks (never the input) with one ``key(ordinal, block)``
    as one block, at the level of the last."""
    out: List[Block] = [blocks[0]]
    remap: Dict[int, int] = {0: 0}
    last_key = object()
    for i, b in enumerate(blocks[1:], 1):
        k = key(i, b)
        if k == last_key:
            prev = out[-1]
            prev.rows += b.rows
            prev.main, prev.level = b.main, b.level
            prev.count += b.count
            prev.last_label = b.last_label or b.label
            if prev.kind != b.kind:
                prev.kind = "group"
        else:
            out.append(Block(list(b.rows), b.main, b.kind, b.level, b.label, b.count,
                             b.signature, b.last_label))
        remap[i] = len(out) - 1
        last_key = k
    return out, {p: remap[o] for p, o in owner.items()}


def _edges(rows, owner: Dict[int, int]) -> List[Tuple[int, int]]:
    edges = set()
    for pos, r in enumerate(rows):
        for src, _ in r.inputs or ((pos - 1, ()),):
            a, b = owner[src], owner[pos]
            if a != b:
                edges.add((a, b))
    return sorted(edges)
