"""Crash points: named places on the booking and delivery path where a test can kill us.

A test sets the environment variable ``PTM_CRASH_AT`` to a point's name (DESIGN §9), or to
``name:N`` to die at the point's N-th pass (N counted from 1 within the process), and runs
the command line; when the process reaches that point it ends at once with
:data:`EXIT_CODE` through :func:`os._exit` — no ``finally``, no ``atexit``, no buffer
flushed, no transaction rolled back or committed: what ``kill -9`` leaves behind.  One line
goes to stderr (by file descriptor, unbuffered) first, so the test can tell that the process
died *there*.

Without the variable every point is inert: the variable is read once, at import, and
:func:`crash_point` then costs one comparison.  A name that is not in :data:`POINTS` never
fires.

The points (each is one line in the module named, under ``ptm_sync.``):

======================  ====================================================================
``after-decide``        ``app.channels.replies``: a message decided and written, not
                        committed
``after-commit``        ``app.channels.replies``: a message's decision committed, the
                        command not yet done
``after-send``          ``app.outbox.deliverers``: the SMTP server took an email
``before-mark-done``    ``app.outbox.queue``: a row (email or calendar) delivered, not yet
                        marked done
``mid-calendar-write``  ``app.outbox.deliverers``: the teacher's calendar took the event,
                        its href and ETag not yet recorded
``mid-imap-flag``       ``adapters.mail.imap``: a batch's decisions committed, its messages
                        not yet flagged or moved
======================  ====================================================================
"""

from __future__ import annotations

import os
from typing import Final

#: The environment variable naming the point (``name`` or ``name:N``).
VARIABLE: Final = "PTM_CRASH_AT"
#: The exit status of a crash: what a shell reports for a process killed by SIGKILL.
EXIT_CODE: Final = 137

AFTER_DECIDE: Final = "after-decide"
AFTER_COMMIT: Final = "after-commit"
AFTER_SEND: Final = "after-send"
BEFORE_MARK_DONE: Final = "before-mark-done"
MID_CALENDAR_WRITE: Final = "mid-calendar-write"
MID_IMAP_FLAG: Final = "mid-imap-flag"
#: Every point, in the order a booking's effects pass them.
POINTS: Final = (
    AFTER_DECIDE,
    AFTER_COMMIT,
    AFTER_SEND,
    BEFORE_MARK_DONE,
    MID_CALENDAR_WRITE,
    MID_IMAP_FLAG,
)


def parse_target(value: str) -> tuple[str, int] | None:
    """``"name"`` or ``"name:N"`` (N ≥ 1) as (name, N); None when empty or malformed.

    >>> parse_target("after-send:2")
    ('after-send', 2)
    """
    name, _, count = value.strip().partition(":")
    if name not in POINTS:
        return None
    if not count:
        return name, 1
    if not count.isdigit() or int(count) < 1:
        return None
    return name, int(count)


_TARGET: Final = parse_target(os.environ.get(VARIABLE, ""))
_passes = 0


def crash_point(name: str) -> None:
    """Die here (exit status :data:`EXIT_CODE`) when ``PTM_CRASH_AT`` names this point
    and this is the pass it asks for; otherwise return at once.

    Args:
        name: one of :data:`POINTS`.
    """
    global _passes
    if _TARGET is None or _TARGET[0] != name:
        return
    _passes += 1
    if _passes < _TARGET[1]:
        return
    os.write(2, f"ptm-sync: crash point {name} (pass {_passes}): exiting\n".encode())
    os._exit(EXIT_CODE)
