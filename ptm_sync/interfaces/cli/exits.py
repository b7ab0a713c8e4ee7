"""How a command ends: the exit codes of DESIGN §7 and the one error handler.

Its own small module so that the command line (:mod:`ptm_sync.interfaces.cli.main`) and the commands
that handle an error themselves (`mail deliver` defers instead of failing) share it without
importing each other.
"""

from __future__ import annotations

import sys

from sqlalchemy.exc import DBAPIError

from ptm_sync.adapters.store.db import database_outage, safe_error_text, safe_traceback
from ptm_sync.core.errors import PtmError, UserError
from ptm_sync.ops.failures import plain
from ptm_sync.ops.redact import mask_urls

#: Success.
OK = 0
#: A failure the user can fix: one line on stderr, no traceback.
FAILED = 1
#: sysexits.h EX_TEMPFAIL: `mail deliver` could not process the message now; the MTA keeps
#: it and tries again later.
EX_TEMPFAIL = 75
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


#: What `mail deliver` adds when it keeps a message for the MTA to retry (DESIGN §7).
DEFERRED = "message deferred (EX_TEMPFAIL); the MTA will retry"


def handle_error(exc: BaseException, *, deferred: bool = False) -> int:
    """Map an exception to one line on stderr and an exit code.

    :class:`UserError` and other :class:`PtmError` print one line (the latter with a hint
    when the failure is temporary), a library's connection failure in it told as a sentence
    (:func:`~ptm_sync.ops.failures.plain`).  A database outage (connection lost or refused,
    ``database is locked`` after the busy timeout, disk I/O error; see
    :func:`~ptm_sync.adapters.store.db.database_outage`) is not a bug: one line naming the database
    with its password masked, no SQL, no parameters, no traceback.  Anything else is a bug
    and prints its traceback (statement parameters are hidden by the engine).  Every line
    has the passwords of URLs in it masked (:func:`~ptm_sync.ops.redact.mask_urls`).

    ``deferred`` (`mail deliver`): the message is kept for the MTA, so the line says so
    and the exit code is :data:`EX_TEMPFAIL` whatever the error.
    """
    code = _report(exc, then=f"; {DEFERRED}" if deferred else "")
    return EX_TEMPFAIL if deferred and code != INTERRUPTED else code


def _report(exc: BaseException, *, then: str) -> int:
    def say(line: str) -> None:
        print(mask_urls(f"ptm-sync: {line}{then}"), file=sys.stderr)

    if isinstance(exc, KeyboardInterrupt):
        say("interrupted")
        return INTERRUPTED
    if isinstance(exc, BrokenPipeError) and not then:
        return OK
    if isinstance(exc, UserError):
        say(plain(str(exc)))
        return FAILED
    outage = database_outage(exc)
    if outage is not None:
        say(f"{outage} (temporary; try again later)")
        return FAILED
    if isinstance(exc, PtmError):
        say(plain(str(exc)) + (" (temporary; try again later)" if exc.retryable else ""))
        return FAILED
    if isinstance(exc, DBAPIError):
        # The database is unusable (not reachable is above): one line, and never the
        # statement or its parameters, which may hold a family's data.
        say(f"the database cannot be used: {safe_error_text(exc)}")
        return FAILED
    sys.stderr.write(safe_traceback(exc))
    say("internal error (a bug: please report the traceback above)")
    return FAILED


def first_line(error: BaseException | None) -> str:
    """The first line of an error's text, safe to print (no SQL, parameters or passwords)."""
    return safe_error_text(error)
