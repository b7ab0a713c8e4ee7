"""Waiting for new mail with IMAP IDLE (RFC 2177) through imapclient's idle() calls.

:func:`wait_once` is one IDLE command: ``idle()``, then ``idle_check()`` until the folder
grows, the time is up or a stop event is set, then ``idle_done()``.  The caller re-issues it
to renew IDLE well inside the 29 minutes after which RFC 2177 §3 lets a server log the
client out.

imapclient's ``idle_check()`` reads "end of file" as "nothing more for now" and returns an
empty list (mjs/imapclient#565): on a connection the server closed it would return at once,
forever.  So after an empty answer the socket is looked at once more; when it is still
readable, the connection is either closed or has just received something, and in both cases
``idle_done()`` tells which (it raises on a closed connection).

Errors are imapclient's and the socket's: :class:`~ptm_sync.adapters.mail.imap_session.ImapSession`
translates them.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError

log = logging.getLogger(__name__)

#: RFC 2177 §3: a server may log out a client idle for 30 minutes; re-issue IDLE before 29.
RFC2177_LIMIT_SECONDS = 29 * 60
#: How often a wait that can be stopped looks at its stop event, in seconds.
STOP_CHECK_SECONDS = 0.5


def wait_once(client: IMAPClient, seconds: float, stop: threading.Event | None) -> bool:
    """One IDLE command of at most ``seconds``; True when the server reported new mail.

    New mail is an ``EXISTS`` response (RFC 3501 §7.3.1: the folder grew).  Returns False
    when the time is up or ``stop`` was set (looked at every :data:`STOP_CHECK_SECONDS`).

    Raises:
        IMAPClientAbortError: the server said BYE or closed the connection.
        IMAPClientError, OSError: IDLE refused, the connection broke.
    """
    client.idle()
    log.debug("idling for up to %.1f s", seconds)
    news = False
    deadline = time.monotonic() + seconds
    while not news:
        if stop is not None and stop.is_set():
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        responses = client.idle_check(timeout=min(left, STOP_CHECK_SECONDS) if stop else left)
        news = _news(responses)
        if not responses and _readable(client):
            break  # closed, or something just came in: idle_done() reads which
    _, responses = client.idle_done()
    return _news(responses) or news


def _news(responses: Sequence[tuple[Any, ...]]) -> bool:
    """True when ``responses`` hold ``* n EXISTS``; raises on ``* BYE`` (RFC 3501 §7.1.5)."""
    found = False
    for response in responses:
        if response and response[0] == b"BYE":
            text = b" ".join(r for r in response[1:] if isinstance(r, bytes))
            raise IMAPClientAbortError(f"server said BYE: {text.decode('utf-8', 'replace')}")
        if len(response) >= 2 and response[1] == b"EXISTS":
            found = True
    return found


def _readable(client: IMAPClient) -> bool:
    """Whether the socket has something (or end of file) to read right now."""
    ready, _, _ = select.select([client.socket()], [], [], 0)
    return bool(ready)
