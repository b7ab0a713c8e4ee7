"""Progress of a long command (`sync` over hundreds of calendars), on stderr.

On a terminal: one line redrawn in place (``\\r``) with a bar, ``done/total`` and what it
counts, cleared when the command ends (its own summary line follows on stdout).  Elsewhere
(a log file, a pipe, systemd's journal): a plain line at every tenth of the way, such as
``synced 40 of 400 calendars``, and nothing at all for a handful of calendars, whose result
lines come a moment later anyway.  No dependency: a carriage return is all a bar needs.
"""

from __future__ import annotations

import math
from typing import TextIO

#: Fewer calendars than this get no plain progress lines (the result lines suffice).
PLAIN_FROM = 10
#: Plain lines per run at most (one per tenth).
PLAIN_STEPS = 10
BAR_WIDTH = 30


class Progress:
    """A ``progress(done, total)`` callback that draws on ``stream``.

    ``what`` names the things counted ("calendars"); ``verb`` starts a plain line.
    """

    def __init__(self, stream: TextIO, what: str = "calendars", verb: str = "synced") -> None:
        self.stream = stream
        self.what = what
        self.verb = verb
        self.terminal = _is_terminal(stream)
        self._drawn = 0  # width of the line on the terminal, to clear it
        self._next_line = 0  # `done` at which the next plain line is due

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self.terminal:
            self._draw(done, total)
        elif total >= PLAIN_FROM and done >= self._next_line:
            print(f"{self.verb} {done} of {total} {self.what}", file=self.stream, flush=True)
            step = math.ceil(total / PLAIN_STEPS)
            self._next_line = min(total, (done // step + 1) * step)

    def _draw(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // total
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = f"[{bar}] {done}/{total} {self.what}"
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def close(self) -> None:
        """Clear the bar from the terminal (nothing to do for plain lines)."""
        if self.terminal and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
