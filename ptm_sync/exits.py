"""How a command ends: the exit codes of DESIGN §7 and the one error handler.

Its own small module so that the command line (:mod:`ptm_sync.cli`) and the commands that
handle an error themselves (`mail deliver` defers instead of failing) share it without
importing each other.
"""

from __future__ import annotations

import sys
import traceback

from sqlalchemy.exc import DBAPIError

from ptm_sync.errors import PtmError, UserError

#: Success.
OK = 0
#: A failure the user can fix: one line on stderr, no traceback.
FAILED = 1
#: sysexits.h EX_TEMPFAIL: `mail deliver` could not process the message now; the MTA keeps
#: it and tries again later.
EX_TEMPFAIL = 75
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def handle_error(exc: BaseException) -> int:
    """Map an exception to a message on stderr and an exit code.

    :class:`UserError` and other :class:`PtmError` print one line (the latter with a hint
    when the failure is temporary); anything else is a bug and prints its traceback.
    """
    if isinstance(exc, KeyboardInterrupt):
        print("ptm-sync: interrupted", file=sys.stderr)
        return INTERRUPTED
    if isinstance(exc, UserError):
        print(f"ptm-sync: {exc}", file=sys.stderr)
        return FAILED
    if isinstance(exc, PtmError):
        hint = " (temporary; try again later)" if exc.retryable else ""
        print(f"ptm-sync: {exc}{hint}", file=sys.stderr)
        return FAILED
    if isinstance(exc, BrokenPipeError):
        return OK
    if isinstance(exc, DBAPIError):
        # The database is away or unusable (not a bug): one line, and never the statement
        # or its parameters, which may hold a family's data.
        print(f"ptm-sync: the database cannot be used: {first_line(exc.orig)}", file=sys.stderr)
        return FAILED
    traceback.print_exception(exc)
    print("ptm-sync: internal error (a bug: please report the traceback above)", file=sys.stderr)
    return FAILED


def first_line(error: BaseException | None) -> str:
    """The first line of an error's text (drivers add SQL, parameters and links after it)."""
    text = str(error or "").strip().splitlines()
    return text[0][:200] if text else type(error).__name__
