"""Wire imported nodes into one stack: the graph writer both importers share.

A node is one layer token that reads tensors by id and writes one tensor.
The stack language has a single current tensor, so the writer names
(``save:``) every tensor that is read anywhere but right after it was made,
continues (``from:``) where a node reads another tensor than the current one,
and turns joins into ``add:``/``mul:``/``concat:`` with the other inputs
named.  Imported layers carry their source name as ``NAME=TOKEN``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

from ..records import record

INPUT = "input"  # the id of the network input (``from:input``)
JOINS = ("add", "mul", "concat")


@record
class Node:
    """``token`` is a layer token (``conv:64,k=3``), or for a join its kind
    (``add``, ``mul``, ``concat``); ``inputs`` are tensor ids in order."""

    name: str
    token: str
    inputs: Sequence[str]
    output: str


def clean_name(name: str) -> str:
    """A source name as the language keeps it (``layer1.0.conv1``; ONNX's
    ``/layer1/layer1.0/conv1/Conv`` keeps its slashes)."""
    name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).strip("/") or "node"
    return name if re.match(r"[A-Za-z0-9_]", name) else "n" + name


def write(nodes: Sequence[Node], output: str) -> List[str]:
    """Tokens for ``nodes`` (in an order where every input is made before it
    is read), ending on the tensor ``output``."""
    made_by = {n.output: i for i, n in enumerate(nodes)}
    readers: Dict[str, List[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs:
            readers.setdefault(t, []).append(i)
    # a tensor needs a name unless its one reader is the node right after it,
    # reading it once as the current tensor (a concat's current is its first)
    names: Dict[str, str] = {INPUT: "input"}
    for t, rs in readers.items():
        if t == INPUT:
            continue
        after = made_by[t] + 1
        nxt = nodes[after] if after < len(nodes) else None
        if set(rs) != {after} or list(nxt.inputs).count(t) > 1 or \
                (nxt.token == "concat" and nxt.inputs[0] != t):
            names[t] = _tensor_name(len(names))
    if output != (nodes[-1].output if nodes else INPUT) and output not in names:
        names[output] = _tensor_name(len(names))

    out: List[str] = []
    current = INPUT
    for n in nodes:
        label = f"{clean_name(n.name)}="
        if n.token in JOINS and len(n.inputs) > 1:
            ins = list(n.inputs)
            if n.token != "concat" and current in ins:
                first = current  # add and mul commute: start from what is current
                ins.remove(current)
            else:
                first = ins.pop(0)
            if first != current:
                out.append(f"from:{names[first]}")
            out.append(f"{label}{n.token}:{'+'.join(names[t] for t in ins)}")
        else:
            src = n.inputs[0] if n.inputs else INPUT
            if src != current:
                out.append(f"from:{names[src]}")
            out.append(f"{label}{n.token}")
        current = n.output
        if n.output in names:
            out.append(f"save:{names[n.output]}")
    if output != current:
        out.append(f"from:{names[output]}")
    return out


def _tensor_name(i: int) -> str:
    return f"t{i}"


def stack_text(tokens: Sequence[str], input_shape: Sequence[int], source: str,
               description: Optional[str] = None) -> str:
    """A stack file: the description, ``# input:``, one token a line."""
    head = [f"# {description or f'imported from {source}'}",
            f"# input: {'x'.join(map(str, input_shape))}", ""]
    return "\n".join(head + list(tokens)) + "\n"
