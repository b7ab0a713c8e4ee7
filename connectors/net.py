"""Plain words for network failures: what the user can act on, never a library's repr.

``requests``/``urllib3`` wrap a refused connection several layers deep and print objects
(``<urllib3.connection.HTTPSConnection object at 0x…>``); people need "connection refused",
"unknown host", "timed out" or "TLS certificate not trusted".
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

#: Phrases found in the chain of a network exception, and how to say them.
_KNOWN: tuple[tuple[str, str], ...] = (
    ("certificate verify failed", "the server's TLS certificate is not trusted (ca_file?)"),
    ("connection refused", "connection refused"),
    ("name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("temporary failure in name resolution", "unknown host (name resolution failed)"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("connection reset", "connection reset by the server"),
    ("remotedisconnected", "the server closed the connection"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                stack.append(linked)


def network_reason(exc: BaseException) -> str:
    """A few plain words for why a connection failed (``connection refused``, ``unknown
    host``, ``timed out``, ``the server's TLS certificate is not trusted``…); the exception's
    class name when nothing better is known.  Never a repr, an address in memory or a URL."""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            return "the server's TLS certificate is not trusted (ca_file?)"
        text = f"{type(link).__name__} {link}".lower()
        for phrase, said in _KNOWN:
            if phrase in text:
                return said
    return type(exc).__name__
