"""The one error type of convcalc, and its two flavours.

Every rejection names the layer (1-based token index and the token itself)
and the reason, so a user can find the mistake without a traceback.  The exit
codes are the contract of SPEC.md §6.
"""
from __future__ import annotations

from typing import Optional


class ConvcalcError(Exception):
    """A stack that convcalc refuses, with the layer that caused it.

    ``exit_code`` is 2 for anything wrong with the text (syntax, an unknown
    key, a value that no input could make valid) and 3 for a stack that is
    well formed but cannot be computed at the given input shape.
    """

    exit_code = 2

    def __init__(self, reason: str, *, layer: Optional[int] = None,
                 token: Optional[str] = None, hint: Optional[str] = None):
        self.reason = reason
        self.layer = layer
        self.token = token
        self.hint = hint
        super().__init__(self.message)

    def located(self, layer: int, token: str) -> "ConvcalcError":
        """Attach the layer position to an error raised before it was known."""
        if self.layer is None:
            self.layer = layer
            self.token = token
            self.args = (self.message,)
        return self

    @property
    def message(self) -> str:
        token = shown(self.token) if self.token else None
        where = ""
        if self.layer is not None:
            where = f"layer {self.layer} ({token}): " if token else f"layer {self.layer}: "
        elif token:
            where = f"{token}: "
        return where + self.reason


def shown(text: str, limit: int = 80) -> str:
    """User text as it can appear in a one-line message: control characters
    escaped, long text cut."""
    head = text[:limit + 1]  # escape only what is shown: a token may be megabytes
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
    return safe if len(safe) <= limit and len(text) == len(head) else safe[:limit - 1] + "…"


def quoted(text: str, limit: int = 60) -> str:
    """``repr`` of user text for a message, cut at ``limit`` characters with
    the full length said: a megabyte token must not make a megabyte line."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit])[:-1] + f"…' ({len(text):,} characters)"


class StackSyntaxError(ConvcalcError):
    """The text of a token, a shape or an option is malformed (exit 2)."""

    exit_code = 2


class ShapeError(ConvcalcError):
    """The stack cannot be computed at this input shape (exit 3)."""

    exit_code = 3
