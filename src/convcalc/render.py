"""Results -> text: table, JSON, CSV and Markdown.

Every command builds a :class:`Report` (headers, human rows, summary lines,
explanations) for the human formats and a plain-data document for JSON;
CSV prints exact values.  The table is drawn by :mod:`convcalc.table`.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence, Tuple

from .analysis import MIB, Analysis, Region, Row, last_field_row
from .bignum import fraction_text, int_text, is_huge
from .collector import paused
from .layers import DIM_NAMES, fmt_shape
from .receptive import ReceptiveField

FORMATS = ("table", "json", "csv", "markdown")


# ---------------------------------------------------------------------------
# values as text
# ---------------------------------------------------------------------------

def fmt_dims(vals, fmt=fraction_text) -> str:
    """Per-dim values in the layer language: one value when all dims agree."""
    texts = [fmt(v) for v in vals]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def fmt_padding(pairs, collapse: bool = True) -> str:
    if pairs is None:
        return ""
    texts = [str(b) if b == a and collapse else f"{b}:{a}" for b, a in pairs]
    return texts[0] if collapse and len(set(texts)) == 1 else "x".join(texts)


def fmt_rf(rf: Optional[ReceptiveField], note: Optional[str] = None,
           local: Optional[ReceptiveField] = None) -> str:
    if rf is None:
        if note:  # the only paths without a number: different effective strides
            return "strides differ"
        return "global" if local is None else f"global; local {fmt_rf(local)}"
    stride = fmt_dims(rf.stride, fraction_text)
    # a fractional stride in parentheses: "3 / (1/2)" reads as size 3, stride ½;
    # a star: joined paths centered apart, the size their bounding box
    star = "*" if rf.offset else ""
    return f"{fmt_dims(rf.size)}{star} / {f'({stride})' if '/' in stride else stride}"


def offset_text(rf: ReceptiveField) -> str:
    """How far apart the centers of a misaligned field's joined paths lie."""
    return f"joined paths are centered up to {fmt_dims(rf.offset)} input positions apart"


def offset_note(rf: ReceptiveField) -> str:
    """What the star of a misaligned field means."""
    return f"* {offset_text(rf)}: the size is the bounding box over every path"


def row_rf(r) -> str:
    """A row's (or an analysis') receptive-field cell: exact, or global with the local field."""
    return fmt_rf(r.receptive_field, r.receptive_note, r.local_receptive_field)


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


def _exact_dims(vals) -> str:
    return "x".join(fraction_text(v) for v in vals)


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------

class Report:
    """What the human formats show: the table, its summary lines, --explain's notes."""

    def __init__(self, headers: Sequence[str], rows: List[List[str]], right: Sequence[str] = (),
                 summary: Optional[List[str]] = None,
                 notes: Optional[List[Tuple[str, Sequence[str]]]] = None,
                 wrapping: Sequence[str] = ("layer", "name", "description", "check"),
                 give_up: Optional[Sequence[str]] = None):
        self.headers = headers
        self.rows = rows
        self.right = right  # right-aligned columns
        self.summary = [] if summary is None else summary
        self.notes = [] if notes is None else notes  # --explain
        # in a narrow terminal: the text columns that wrap, and the columns left
        # out, in this order, when wrapping is not enough (default: from the right)
        self.wrapping = wrapping
        self.give_up = give_up

    def dropped_first(self) -> Sequence[str]:
        if self.give_up is not None:
            return self.give_up
        return [h for h in reversed(self.headers[1:]) if h not in ("layer", "name")]


def _notes(a: Analysis) -> List[Tuple[str, Sequence[str]]]:
    return [(f"{r.index} {layer_label(r)}", r.explain) for r in a.layers if r.explain]


def _named(a: Analysis) -> bool:
    return any(r.name for r in a.layers)


def _with_names(a: Analysis, headers, rows):
    """An imported model's rows carry their source names: a column after '#'."""
    if not _named(a):
        return tuple(headers), rows
    return (headers[0], "name", *headers[1:]), [
        [cells[0], r.name or "", *cells[1:]] for r, cells in zip(a.layers, rows)]


@paused
def shape_report(a: Analysis) -> Report:
    rows = [[str(r.index), layer_label(r), fmt_shape(r.output_shape), fmt_padding(r.padding),
             row_rf(r), f"{r.params:,}", si(r.macs),
             human_bytes(r.activation_bytes)] for r in a.layers]
    headers, rows = _with_names(a, ("#", "layer", "output", "padding", "RF / stride", "params",
                                    "MACs", "memory"), rows)
    t, m = a.totals, a.memory
    summary = [
        f"Input: {fmt_shape(a.input_shape)}  ->  output: {fmt_shape(a.output_shape)}",
        f"Total params: {t.params:,} (trainable {t.trainable_params:,}; buffers {t.buffers:,})",
        f"Total MACs: {t.macs:,} ({si(t.macs)}; FLOPs {si(t.flops)})"
        + ("" if a.count == "torch" else f", counted as {a.count} counts them"),
        f"Receptive field: {_network_rf(a)}",
        *_misaligned_notes(a),
        # torchsummary's four lines, in MiB as it prints them
        f"Input size (MB): {m.input_bytes / MIB:.2f}",
        f"Forward/backward pass size (MB): {m.forward_backward_bytes / MIB:.2f}",
        f"Params size (MB): {m.param_bytes / MIB:.2f}",
        f"Estimated Total Size (MB): {m.total_bytes / MIB:.2f}",
    ]
    return Report(headers, rows, ("#", "params", "MACs", "memory"), summary, _notes(a))


def _misaligned_notes(a: Analysis) -> List[str]:
    """The footnote for the table's starred fields (the most offset one)."""
    fields = [f for r in a.layers for f in (r.receptive_field, r.local_receptive_field)
              if f is not None and f.offset]
    return [offset_note(max(fields, key=lambda f: max(f.offset)))] if fields else []


def _network_rf(a: Analysis) -> str:
    if a.receptive_field is not None:
        return f"{fmt_rf(a.receptive_field)} (size / effective stride)"
    if a.receptive_note:
        return f"none: {a.receptive_note} (rf --at gives any position's exact region)"
    last = last_field_row(a)
    mixed = f"global from {a.mixed_by}" if a.mixed_by else "global"
    if a.local_receptive_field is not None:
        return (f"{mixed}; local {fmt_rf(a.local_receptive_field)} (size / effective stride, "
                f"through the paths that keep positions)")
    if last is None:
        return mixed
    what = "last before mixing" if last.receptive_field else "last local field"
    return (f"{mixed}; {what}: {fmt_rf(last.receptive_field or last.local_receptive_field)} "
            f"at layer {last.index} ({layer_label(last)})")


@paused
def rf_report(a: Analysis) -> Report:
    rows = []
    for r in a.layers:
        rf = r.receptive_field
        if rf is None and r.local_receptive_field is not None:
            rf, label = r.local_receptive_field, "local "
        else:
            label = ""
        cells = [fmt_rf(None, r.receptive_note), "", "", "", ""] if rf is None else [label +
            fmt_dims(rf.size) + ("*" if rf.offset else ""), fmt_dims(rf.stride, fraction_text),
            fmt_dims(rf.padding, fraction_text), fmt_dims(rf.start, fraction_text),
            fmt_dims(rf.center, fraction_text)]
        rows.append([str(r.index), layer_label(r), fmt_shape(r.output_shape), *cells])
    headers, rows = _with_names(a, ("#", "layer", "output", "size r", "stride S", "padding P",
                                    "start", "center"), rows)
    summary = [f"Receptive field: {_network_rf(a)}", *_misaligned_notes(a),
               "Output position u sees input [u·S − P, u·S − P + r − 1]; start = −P is where "
               "output 0's window begins, center its middle."]
    if any(r.receptive_field and any(s.denominator > 1 for s in r.receptive_field.stride)
           for r in a.layers):
        summary.append("Where S is a fraction the window depends on the output position: r is "
                       "the largest over positions and u·S − P the leftmost start; "
                       "'rf --at' gives any position's exact region.")
    return Report(headers, rows, ("#", "size r", "stride S", "padding P", "start", "center"),
                  summary, _notes(a))


def region_lines(a: Analysis, reg: Region) -> List[str]:
    row = next(r for r in reversed(a.layers) if r.index == reg.index)
    names = DIM_NAMES[len(reg.at)]
    head = (f"Output position {','.join(map(str, reg.at))} of layer {reg.index} "
            f"({layer_label(row)}, {fmt_shape(row.output_shape)}) depends on input "
            f"{fmt_shape(a.input_shape)}:")
    lines = [head] + _region_box(reg.region, reg.unclipped, names)
    if reg.mixed_by:
        lines += [f"  (every position: positions are mixed at {reg.mixed_by})",
                  "Through the paths that keep positions (the local region):"]
        lines += _region_box(reg.local_region, reg.local_unclipped, names)
    return lines


def _region_box(region, unclipped, names) -> List[str]:
    if region is None:
        return ["  no input position: it reads only padding"
                + (f" (unclipped {_ranges(unclipped, names)})" if unclipped else "")]
    lines = []
    for name, (lo, hi), un in zip(names, region, unclipped or [None] * len(names)):
        extra = "" if un is None or tuple(un) == (lo, hi) else f"   (unclipped {un[0]}..{un[1]})"
        count = hi - lo + 1
        lines.append(f"  {name}: {lo}..{hi}  ({count} position{'' if count == 1 else 's'}){extra}")
    return lines


def _ranges(boxes, names) -> str:
    return ", ".join(f"{n} {lo}..{hi}" for n, (lo, hi) in zip(names, boxes))


def models_report(entries: Sequence[Dict]) -> Report:
    """By family: the family named on its first row only, so the groups read as blocks."""
    rows, last = [], None
    for e in entries:
        rows.append([e["family"] if e["family"] != last else "", f"@{e['name']}",
                     e["description"], fmt_shape(e["input"]),
                     "fails" if e["params"] is None else f"{e['params']:,}",
                     "" if e["macs"] is None else si(e["macs"])])
        last = e["family"]
    return Report(("family", "name", "description", "input", "params", "MACs"), rows,
                  ("params", "MACs"), give_up=("MACs", "input", "params", "family"))


# ---------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _encoder():
    import json  # here: importing it costs the table path a few ms
    return json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False)


def _one_line(value) -> str:
    return _encoder().encode(value)


def _placeholders(value, found: List[int]):
    """``value`` with every integer too long for ``json`` (over 4,000 digits)
    replaced by a marker string that :func:`dump_json` swaps for its text."""
    if is_huge(value):
        found.append(value)
        return f"\x00{len(found) - 1}\x00"
    if isinstance(value, dict):
        return {k: _placeholders(v, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_placeholders(v, found) for v in value]
    return value


@paused
def dump_json(data) -> str:
    """JSON for people and scripts alike: the top level one key a line, each
    item of a list of objects (layers, checks, solutions) on a line of its own,
    everything else on one line.  The C encoder does the work; an integer over
    4,000 digits is written in exponent form (a JSON number too)."""
    try:
        return _dump_json(data)
    except ValueError:  # int-to-text limit: some integer is that long
        found: List[int] = []
        text = _dump_json(_placeholders(data, found))
        for i, n in enumerate(found):
            text = text.replace(f'"\\u0000{i}\\u0000"', int_text(n))
        return text


def _dump_json(data) -> str:
    def block(value, pad):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            inner = ",\n".join(f"{pad}  {_one_line(v)}" for v in value)
            return f"[\n{inner}\n{pad}]"
        return _one_line(value)
    if isinstance(data, dict):
        items = [f"  {_one_line(k)}: {block(v, '  ')}" for k, v in data.items()]
        return "{\n" + ",\n".join(items) + "\n}"
    return block(data, "")


def csv_text(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(headers)
    w.writerows([int_text(c) if is_huge(c) else c for c in row] for row in rows)
    return buf.getvalue()


@paused
def shape_csv(a: Analysis) -> str:
    rows = []
    named = _named(a)  # an imported model's source names, as the last column
    for r in a.layers:
        rf = r.receptive_field
        rows.append([r.index, r.kind, r.spec, r.part or "", fmt_shape(r.input_shape),
                     fmt_shape(r.output_shape), fmt_padding(r.padding, collapse=False), r.params,
                     r.buffers, r.macs, r.flops, r.activation_bytes,
                     *(("",) * 3 if rf is None else
                       (_exact_dims(rf.size), _exact_dims(rf.stride), _exact_dims(rf.padding))),
                     *((r.name or "",) if named else ())])
    return csv_text(("index", "kind", "spec", "part", "input_shape", "output_shape", "padding",
                     "params", "buffers", "macs", "flops", "activation_bytes", "rf_size",
                     "rf_stride", "rf_padding", *(("name",) if named else ())), rows)


@paused
def rf_csv(a: Analysis) -> str:
    rows = []
    for r in a.layers:
        rf = r.receptive_field
        rows.append([r.index, r.kind, r.spec, r.part or "", fmt_shape(r.output_shape),
                     *(("",) * 5 if rf is None else
                       (_exact_dims(v) for v in (rf.size, rf.stride, rf.padding, rf.start,
                                                 rf.center)))])
    return csv_text(("index", "kind", "spec", "part", "output_shape", "rf_size", "rf_stride",
                     "rf_padding", "rf_start", "rf_center"), rows)


def region_csv(reg: Region) -> str:
    rows = []
    for dim, u in enumerate(reg.at):
        lo, hi = reg.region[dim] if reg.region else ("", "")
        ulo, uhi = reg.unclipped[dim] if reg.unclipped else ("", "")
        rows.append([dim + 1, u, lo, hi, ulo, uhi])
    return csv_text(("dim", "at", "start", "end", "unclipped_start", "unclipped_end"), rows)


@paused
def markdown(report: Report) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in report.headers) + " |",
             "|" + "|".join("---:" if h in report.right else "---" for h in report.headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in report.rows]
    if report.summary:
        lines += [""] + [f"- {line}" for line in report.summary]
    for title, notes in report.notes:
        lines += ["", f"**{esc(title)}**", ""] + [f"- `{n}`" for n in notes]
    return "\n".join(lines) + "\n"


@paused
def table_lines(report: Report, width: Optional[int] = None, bold: bool = False) -> List[str]:
    """The table format: the table, a note naming any column left out to fit
    ``width`` (a terminal's; None: no limit), the summary and the formulas."""
    from .table import BOLD, RESET, SPACES, draw, wrap  # the table path's alone
    lines, left_out = draw(report.headers, report.rows, report.right, report.wrapping,
                           report.dropped_first(), width, bold)

    def prose(text: str, indent: str = "") -> List[str]:
        if width is None:
            return [indent + text]
        return [indent + line for line in wrap(text, max(1, width - len(indent)), SPACES)]
    if left_out:
        lines += prose(f"(left out to fit {width} columns: {', '.join(left_out)}; a wider "
                       f"terminal or --format csv shows every column)")
    if report.summary:
        lines.append("")
    for line in report.summary:
        lines += prose(line)
    for title, notes in report.notes:
        lines += ["", BOLD + title + RESET if bold else title]
        for line in notes:
            lines += prose(line, "  ")
    return lines
