"""Analysis -> text: table (rich), JSON, CSV and Markdown, one function each.

Human formats (table, Markdown) share :func:`human_rows`; machine formats
(JSON, CSV) print exact integers.  rich is imported only to draw a table.
"""
from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from typing import List, Optional, Sequence

from .analysis import MIB, Analysis, Row
from .receptive import ReceptiveField

FORMATS = ("table", "json", "csv", "markdown")
HEADERS = ("#", "layer", "output", "padding", "RF / stride", "params", "MACs", "memory")
NUMERIC = {"params", "MACs", "memory"}


def fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


def fmt_fraction(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def fmt_dims(vals, fmt=str) -> str:
    """Per-dim values in the layer language: one value when all dims agree."""
    texts = [fmt(v) for v in vals]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def fmt_padding(pairs, collapse: bool = True) -> str:
    if pairs is None:
        return ""
    texts = [str(b) if b == a and collapse else f"{b}:{a}" for b, a in pairs]
    return texts[0] if collapse and len(set(texts)) == 1 else "x".join(texts)


def fmt_rf(rf: Optional[ReceptiveField]) -> str:
    if rf is None:
        return "global"
    return f"{fmt_dims(rf.size)} / {fmt_dims(rf.stride, fmt_fraction)}"


def si(n: int) -> str:
    """1234567 -> '1.23M' (powers of 1000, as MAC counts are quoted)."""
    for unit, scale in (("T", 10 ** 12), ("G", 10 ** 9), ("M", 10 ** 6), ("K", 10 ** 3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def layer_label(row: Row) -> str:
    return f"{row.spec} ({row.part})" if row.part else row.spec


def human_rows(a: Analysis) -> List[List[str]]:
    return [[str(r.index), layer_label(r), fmt_shape(r.output_shape), fmt_padding(r.padding),
             fmt_rf(r.receptive_field), f"{r.params:,}", si(r.macs), human_bytes(r.activation_bytes)]
            for r in a.layers]


def summary_lines(a: Analysis) -> List[str]:
    """Totals, then torchsummary's four memory lines (MiB, as it prints them)."""
    t, m = a.totals, a.memory
    return [
        f"Input: {fmt_shape(a.input_shape)}  ->  output: {fmt_shape(a.output_shape)}",
        f"Total params: {t.params:,} (trainable {t.trainable_params:,}; "
        f"buffers {t.buffers:,})",
        f"Total MACs: {t.macs:,} ({si(t.macs)}; FLOPs {si(t.flops)})",
        f"Receptive field: {fmt_rf(a.receptive_field)} (size / effective stride)",
        f"Input size (MB): {m.input_bytes / MIB:.2f}",
        f"Forward/backward pass size (MB): {m.forward_backward_bytes / MIB:.2f}",
        f"Params size (MB): {m.param_bytes / MIB:.2f}",
        f"Estimated Total Size (MB): {m.total_bytes / MIB:.2f}",
    ]


def _flat(v) -> bool:
    """A list of numbers, or of lists of numbers: printed on one line."""
    return isinstance(v, list) and all(
        not isinstance(e, (dict, list)) or (isinstance(e, list) and _flat(e)
                                            and not any(isinstance(x, list) for x in e))
        for e in v)


def dump_json(data, level: int = 0) -> str:
    """Indented JSON with shapes and paddings kept on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(data, dict) and data:
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, level + 1)}" for k, v in data.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(data, list) and data and not _flat(data):
        items = [f"{inner}{dump_json(v, level + 1)}" for v in data]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(data, separators=(", ", ": "))


def to_json(a: Analysis) -> str:
    return dump_json(a.to_dict())


CSV_COLUMNS = ("index", "kind", "spec", "part", "input_shape", "output_shape", "padding", "params",
               "buffers", "macs", "flops", "activation_bytes", "rf_size", "rf_stride",
               "rf_padding")


def to_csv(a: Analysis) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in a.layers:
        rf = r.receptive_field
        w.writerow([r.index, r.kind, r.spec, r.part or "", fmt_shape(r.input_shape),
                    fmt_shape(r.output_shape), fmt_padding(r.padding, collapse=False), r.params,
                    r.buffers, r.macs, r.flops, r.activation_bytes,
                    "" if rf is None else "x".join(str(v) for v in rf.size),
                    "" if rf is None else "x".join(fmt_fraction(v) for v in rf.stride),
                    "" if rf is None else "x".join(fmt_fraction(v) for v in rf.padding)])
    return buf.getvalue()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                   right: Sequence[bool]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(a: Analysis) -> str:
    table = markdown_table(HEADERS, human_rows(a), [h in NUMERIC or h == "#" for h in HEADERS])
    return table + "\n\n" + "\n".join(f"- {line}" for line in summary_lines(a)) + "\n"


def print_table(a: Analysis, console) -> None:
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for h in HEADERS:
        table.add_column(h, justify="right" if h in NUMERIC or h == "#" else "left",
                         overflow="fold", no_wrap=h != "layer")
    for row in human_rows(a):
        table.add_row(*row)
    console.print(table)
    console.print()
    for line in summary_lines(a):
        console.print(line, highlight=False, markup=False)


def generic_table(headers, rows, fmt: str, console=None) -> str:
    """Any list of rows (models listing) in one of the four formats."""
    if fmt == "json":
        return dump_json([dict(zip(headers, r)) for r in rows])
    texts = [[str(c) for c in r] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows(texts)
        return buf.getvalue().rstrip("\n")
    if fmt == "markdown":
        return markdown_table(headers, texts, [False] * len(headers))
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for h in headers:
        table.add_column(h)
    for r in texts:
        table.add_row(*r)
    console.print(table)
    return ""
