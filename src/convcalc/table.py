"""A fixed-width text table, drawn in rich's look without rich.

rich's Table measures and renders every cell through its segment machinery:
for ResNet-50's 199 rows that alone was more than the whole rest of a run
(bench/cold_start.py).  The table here costs a join per row.

Within a width (a terminal's), a number is never cut: the text columns
(``wrap``) break at spaces and after punctuation, then whole columns are
left out, the least important first, and the caller says which.
"""
from __future__ import annotations

import re
import unicodedata
from typing import List, Optional, Sequence, Tuple

# where a text cell may break: after a space or ; : / + or a ',' or '.' that
# is not inside a number (25,557,032 and p=0.5 stay whole)
_BREAK = re.compile(r"(?<=[ ;:/+])|(?<=,)(?<!\d,)|(?<=\d,)(?!\d)|(?<=\.)(?!\d)")
SPACES = re.compile(r"(?<= )")  # prose: lines break between words only
BOLD, RESET = "\x1b[1m", "\x1b[0m"


def cell_len(text: str) -> int:
    """Columns a text takes on a terminal (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pieces(text: str, breaks=_BREAK) -> List[str]:
    """A text cell in the parts a line may break between."""
    return [p for p in breaks.split(text) if p]


def wrap(text: str, width: int, breaks=_BREAK) -> List[str]:
    """Lines of at most ``width`` columns, broken only between pieces (a piece
    wider than ``width`` keeps its own line whole)."""
    lines, line = [], ""
    for p in pieces(text, breaks):
        if line and cell_len(line) + cell_len(p) > width:
            lines.append(line.rstrip())
            line = p.lstrip()
        else:
            line += p
    return lines + [line.rstrip()] if line or not lines else lines


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - cell_len(text))
    return gap + text if right else text + gap


def fit(headers: Sequence[str], rows: Sequence[Sequence[str]], wrapping: Sequence[str],
        give_up: Sequence[str], width: Optional[int]) -> Tuple[List[int], List[int]]:
    """(the columns kept, their widths) so that the table is at most ``width``
    columns wide: text columns narrowed to their longest unbreakable piece,
    then the columns of ``give_up`` left out in that order."""
    n = len(headers)
    natural = [max([cell_len(headers[j])] + [cell_len(r[j]) for r in rows])
               for j in range(n)]
    keep = list(range(n))
    if width is None:
        return keep, natural
    narrowest = [max([cell_len(headers[j])] + [cell_len(p) for r in rows for p in pieces(r[j])])
                 if headers[j] in wrapping else natural[j] for j in range(n)]
    widths = list(natural)

    def total(cols):
        return sum(widths[j] for j in cols) + 3 * (len(cols) - 1)
    drops = [headers.index(h) for h in give_up if h in headers]
    while total(keep) > width:
        over = total(keep) - width
        # narrow the widest text column that can still give
        wide = [j for j in keep if widths[j] > narrowest[j]]
        if wide:
            j = max(wide, key=lambda j: widths[j] - narrowest[j])
            widths[j] = max(narrowest[j], widths[j] - over)
            continue
        if not drops:
            break  # as narrow as it goes: the terminal wraps what is left
        keep.remove(drops.pop(0))
    return keep, [widths[j] for j in keep]


def draw(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = (),
         wrapping: Sequence[str] = (), give_up: Sequence[str] = (),
         width: Optional[int] = None, bold: bool = False) -> Tuple[List[str], List[str]]:
    """(the table's lines, the headers of the columns left out to fit ``width``)."""
    keep, widths = fit(headers, rows, wrapping, give_up, width)
    heads = [headers[j] for j in keep]
    flush = [h in right for h in heads]
    texty = [h in wrapping for h in heads]

    def lines_of(cells, sep):
        cols = [wrap(c, w) if t and cell_len(c) > w else [c]
                for c, w, t in zip(cells, widths, texty)]
        out = []
        for i in range(max(len(c) for c in cols)):
            out.append(sep.join(_pad(c[i] if i < len(c) else "", w, r)
                                for c, w, r in zip(cols, widths, flush)))
        return out
    head = lines_of(heads, " ┃ ")
    if bold:
        head = [BOLD + line + RESET for line in head]
    last = len(widths) - 1
    rule = "╇".join("━" * (w + (j > 0) + (j < last)) for j, w in enumerate(widths))
    if width is None:  # every column at its natural width: a row is one line
        cols = list(zip(keep, widths, flush))
        body = [" │ ".join([_pad(r[j], w, f) for j, w, f in cols]) for r in rows]
    else:
        body = [line for r in rows for line in lines_of([r[j] for j in keep], " │ ")]
    left_out = [h for j, h in enumerate(headers) if j not in keep]
    return head + [rule] + body, left_out
