"""IMAP IDLE (RFC 2177) over an :mod:`imaplib` connection, which (Python 3.11) has no idle().

:func:`wait` sends ``TAG IDLE``, waits for the ``+`` continuation, listens for untagged
responses until new mail (``* n EXISTS``), the time limit or a stop event, then sends
``DONE`` and reads the tagged answer, so that imaplib finds the connection as it left it.
Every line up to that answer is read here; our tags (``ptm1``, ``ptm2``…) never clash with
imaplib's (four letters and a number).
"""

from __future__ import annotations

import imaplib
import io
import itertools
import re
import select
import ssl
import threading
import time
import typing

#: RFC 2177 §3: clients should re-issue IDLE at least every 29 minutes.
IDLE_RENEW_SECONDS = 29 * 60
#: How often a wait that can be stopped looks at its stop event.
STOP_CHECK_SECONDS = 0.5
_LITERAL = re.compile(rb"\{(\d+)\}\r?\n?$")
_TAGS = itertools.count(1)


class ServerClosed(Exception):
    """The server said BYE or closed the connection while we waited."""


class IdleRefused(Exception):
    """The server answered IDLE or DONE with NO or BAD."""


def wait(conn: imaplib.IMAP4, timeout: float, stop: threading.Event | None) -> bool:
    """IDLE until new mail, ``timeout`` or ``stop``; re-issued every 29 minutes."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return False
        if _idle_once(conn, min(remaining, IDLE_RENEW_SECONDS), stop):
            return True


def _idle_once(conn: imaplib.IMAP4, seconds: float, stop: threading.Event | None) -> bool:
    """One IDLE command: ``TAG IDLE``, wait for ``+``, listen, ``DONE``, the tagged OK."""
    tag = b"ptm%d" % next(_TAGS)
    conn.send(tag + b" IDLE\r\n")
    news = False
    while True:  # RFC 2177 §3: a continuation request ("+ idling") starts the wait
        line = _read_response(conn)
        if line.startswith(b"+"):
            break
        if line.startswith(tag + b" "):
            raise IdleRefused(line.decode("utf-8", "replace"))
        news = _is_news(line) or news
    deadline = time.monotonic() + seconds
    while not news:
        if stop is not None and stop.is_set():
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if _readable(conn, remaining if stop is None else min(remaining, STOP_CHECK_SECONDS)):
            news = _is_news(_read_response(conn))
    conn.send(b"DONE\r\n")
    while True:
        line = _read_response(conn)
        if line.startswith(tag + b" "):
            if line.upper().split()[1:2] != [b"OK"]:
                raise IdleRefused(line.decode("utf-8", "replace"))
            return news
        news = _is_news(line) or news


def _is_news(line: bytes) -> bool:
    """True for ``* n EXISTS`` (RFC 3501 §7.3.1): the folder grew."""
    parts = line.split()
    if parts[:2] == [b"*", b"BYE"]:
        raise ServerClosed(line.decode("utf-8", "replace"))
    return len(parts) >= 3 and parts[0] == b"*" and parts[2].upper() == b"EXISTS"


def _read_response(conn: imaplib.IMAP4) -> bytes:
    """One response line without its CRLF, with any literal (``{n}``) it carries inlined."""
    line = conn.readline()
    if not line:
        raise ServerClosed("the connection was closed")
    while (literal := _LITERAL.search(line)) is not None:
        line += conn.read(int(literal.group(1)))
        more = conn.readline()
        if not more:
            raise ServerClosed("the connection was closed")
        line += more
    return line.rstrip(b"\r\n")


def _readable(conn: imaplib.IMAP4, seconds: float) -> bool:
    """Wait up to ``seconds`` until the server has sent something.

    imaplib reads through a buffered file, which may already hold the next line; the socket
    would then never become readable.  So look into that buffer first, without blocking: a
    socket timeout on that file would break it for good, a non-blocking read does not.
    """
    sock = conn.sock
    reader = typing.cast(io.BufferedReader, conn.file)  # sock.makefile("rb")
    before = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        if reader.peek(1):
            return True
    except ssl.SSLWantReadError:  # part of a TLS record: select() says when the rest is in
        pass
    finally:
        sock.settimeout(before)
    ready, _, _ = select.select([sock], [], [], seconds)
    return bool(ready)
