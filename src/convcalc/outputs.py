"""Where results go: a text stream or a file, without losing what the user owns.

SPEC §6: output that cannot be written is exit 3 with one line; a file is
written to a temporary name in its own folder and renamed, so a full disk,
a crash or a concurrent run never leaves a truncated file in its place; a
command never writes over one of its own inputs.  A stream whose encoding
cannot hold a character gets its ASCII spelling (``×`` as ``x``, ``≤`` as
``<=``, ``⌊…⌋`` as ``floor(…)``) instead of a crash.
"""
from __future__ import annotations

import codecs
import os
import re
from typing import Iterable, Optional

from .errors import ConvcalcError, StackSyntaxError, shown


class OutputError(ConvcalcError):
    """The output could not be written (exit 3)."""

    exit_code = 3


# the non-ASCII characters convcalc's own text uses, spelled in ASCII; box
# drawing is rich's, for a table rendered before the encoding was known
_ASCII = {
    "×": "x", "·": "*", "−": "-", "–": "-", "—": "-", "→": "->", "←": "<-", "≤": "<=",
    "≥": ">=", "≠": "!=", "≈": "~", "…": "...", "∏": "prod ", "Σ": "sum", "∂": "d", "√": "sqrt",
    "½": "1/2", "¼": "1/4", "¾": "3/4", "²": "^2", "³": "^3", "⌈": "ceil(", "⌉": ")",
    "⌊": "floor(", "⌋": ")", "‘": "'", "’": "'", "“": '"', "”": '"', "✓": "ok", "✗": "x",
    "█": "#", "▓": "%", "▒": "+", "░": ".", "•": "*",
    **{chr(0x2080 + d): str(d) for d in range(10)},  # subscript digits: S₀
    **{c: "-" for c in "━─╌┄┅╍"}, **{c: "|" for c in "┃│╎┆┇╏"},
    **{c: "+" for c in "╇╈╋┼┿╂╀╁┠┨┯┷┌┐└┘├┤┬┴┏┓┗┛┣┫┳┻╀╃╄╅╆╉╊╞╡╪╤╧╘╛╒╕"},
}
ERRORS = "convcalc-ascii"  # the codec error handler below, by name


def _spell(err: UnicodeEncodeError):
    """A codec error handler: what the encoding cannot hold, spelled in ASCII
    (``?`` for characters without a spelling)."""
    bad = err.object[err.start:err.end]
    return "".join(_ASCII.get(c, "?") for c in bad), err.end


codecs.register_error(ERRORS, _spell)


def spelled_for(text: str, encoding: Optional[str]) -> str:
    """``text`` as ``encoding`` can hold it: unchanged when it can, else with
    the ASCII spellings above."""
    if is_unicode(encoding):
        return text
    try:
        return text.encode(encoding or "utf-8", ERRORS).decode(encoding or "utf-8")
    except LookupError:
        return text.encode("ascii", ERRORS).decode("ascii")


class SpelledStream:
    """A text stream for one whose encoding is not Unicode: every write
    spelled for it (:func:`spelled_for`).  It has no binary ``buffer``, so
    click writes through it too instead of forcing UTF-8 bytes on it."""

    def __init__(self, stream):
        self._stream = stream
        self.encoding = getattr(stream, "encoding", None) or "ascii"
        self.errors = "strict"

    def write(self, text: str) -> int:
        return self._stream.write(spelled_for(text, self.encoding))

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def writable(self) -> bool:
        return True


def is_unicode(encoding: Optional[str]) -> bool:
    try:
        return codecs.lookup(encoding or "utf-8").name.startswith("utf")
    except LookupError:
        return False


def write_stream(stream, text: str, what: str = "the output") -> None:
    """Write and flush; a closed or failing stream is an OutputError.  A pipe
    whose reader left (BrokenPipeError) is the caller's to silence."""
    if stream is None:
        raise OutputError(f"cannot write {what}: the stream is closed")
    text = spelled_for(text, getattr(stream, "encoding", None))
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as e:  # ValueError: "I/O operation on closed file"
        raise OutputError(f"cannot write {what}: {getattr(e, 'strerror', None) or e}") from None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_file(path: str, text: str, inputs: Iterable[str] = (), option: str = "") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder
    and a rename: a failed run (full disk, no permission, an interrupt)
    leaves what was there, and concurrent runs each leave a whole file.
    Refuses (exit 2) to write over any of ``inputs``, the files the command
    read.  ``option`` names the option in messages (``--svg``)."""
    label = f"{option} {shown(path)}" if option else shown(path)
    if not path:
        raise StackSyntaxError(f"{option or 'the output'}: an empty file name")
    target = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(target) and any(name and _same_file(name, target) for name in inputs):
        raise StackSyntaxError(f"{label}: that is an input of this command; refusing to "
                               f"overwrite it")
    if os.path.isdir(target):
        raise OutputError(f"cannot write {label}: it is a directory")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {label}: no folder {shown(folder)}")
    tmp = None
    try:
        import tempfile  # only when a file is written: it costs 11 ms at start-up
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                   dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):  # keep the file's permissions, as an editor does
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise OutputError(f"cannot write {label}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cut_line(line: str, limit: int = 1000) -> str:
    """A message line cut in the middle when over ``limit`` characters (a
    safety net: every value a message echoes should already be shortened)."""
    if len(line) <= limit:
        return line
    keep = limit // 2 - 20
    return f"{line[:keep]} …[{len(line) - 2 * keep:,} characters]… {line[-keep:]}"


def cut_message(text: str, limit: int = 1000) -> str:
    return "\n".join(cut_line(line, limit) for line in re.split(r"\n", text))
