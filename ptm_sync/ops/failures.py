"""Failures told as sentences: what an administrator reads instead of a library's repr.

The HTTP clients under the connectors (requests over urllib3, via caldav, msal, exchangelib,
google-auth) describe a failed connection as nested reprs::

    HTTPConnectionPool(host='dav.school.org', port=443): Max retries exceeded with url:
    /dav/ (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at
    0x7f02…>: Failed to establish a new connection: [Errno 111] Connection refused'))

:func:`plain` turns such text, wherever it sits in a message, into one sentence naming the
host, the port and what happened (refused, timed out, name not found, TLS not spoken or not
trusted, connection dropped), and removes any ``<… object at 0x…>`` left over.  It works on
text because failures are stored and passed on as text (a teacher's last sync error, an
outbox row's ``last_error``); a connector can call it on ``str(exc)`` where it translates
an error.  Text it does not recognise is returned unchanged.
"""

from __future__ import annotations

import re

_POOL = re.compile(r"HTTPS?ConnectionPool\(host='(?P<host>[^']*)', port=(?P<port>\d+)\): ")
_OBJECT = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>(: )?")
_SSL = re.compile(r"\[SSL: (?P<code>[A-Z_]+)\] (?P<detail>[^(']*?)\s*\(_ssl\.c:\d+\)")
_VERIFY = re.compile(r"certificate verify failed: (?P<why>[^('\"]*?)\s*(\(_ssl\.c:\d+\)|['\"]|$)")
_TIMEOUT = re.compile(r"(?:connect|read) timeout=(?P<seconds>[\d.]+)")
_ABORTED = re.compile(
    r"\('Connection aborted\.', (?:RemoteDisconnected|ConnectionResetError)\(.*\)\)$", re.S
)

#: (words in the library's text, what happened) — the first that matches is told.
_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("connection refused",), "nothing accepts connections there (connection refused)"),
    (
        (
            "failed to resolve",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
        ),
        "the host name cannot be resolved (DNS)",
    ),
    (("no route to host", "network is unreachable"), "no route to it (network unreachable)"),
    (
        ("remotedisconnected", "connection aborted", "connection reset", "remote end closed"),
        "it closed the connection without an answer",
    ),
)


def plain(text: str) -> str:
    """``text`` with a connection failure of requests/urllib3 told as a sentence and object
    reprs removed; anything else is kept as it is."""
    found = _POOL.search(text)
    if found is not None:
        where = f"{found['host']}:{found['port']}"
        return text[: found.start()] + _sentence(where, text[found.end() :])
    if _ABORTED.search(text):
        return _ABORTED.sub("the server closed the connection without an answer", text)
    return _OBJECT.sub("", text)


def names_account(sentence: str, account: str) -> bool:
    """True when the head of ``sentence`` (what comes before its first ": ") names the
    calendar account ``account`` (``account 'm365'``, ``Graph account 'm365'``, ``account
    exchange (user …) on Exchange at host``): such a sentence is told as it is, never given
    a second naming of the account in front."""
    head, sep, _ = sentence.partition(": ")
    if not sep or "account" not in head.lower():
        return False
    return re.search(rf"(?<![\w.-])'?{re.escape(account)}'?(?![\w.-])", head) is not None


def pure_naming(sentence: str, account: str) -> str | None:
    """What follows the head of ``sentence`` when the head only names the account
    (``account 'x'``, ``account 'x' (url)``, ``Graph account 'x'``), else None."""
    head, sep, rest = sentence.partition(": ")
    pattern = rf"(?:[A-Z]\w* )?account '?{re.escape(account)}'?(?: \([^)]*\))?"
    return rest if sep and re.fullmatch(pattern, head) else None


def _sentence(where: str, cause: str) -> str:
    lower = cause.lower()
    if "certificate_verify_failed" in lower or "certificate verify failed" in lower:
        why = _VERIFY.search(cause)
        detail = f" ({why['why'].rstrip('.')})" if why and why["why"] else ""
        return (
            f"the TLS certificate of {where} is not trusted{detail}; for a private "
            "certificate authority set ca_file"
        )
    ssl = _SSL.search(cause)
    if ssl is not None:
        if ssl["code"] in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"):
            return f"{where} does not speak TLS on that port (an http:// URL, not https://?)"
        reason = ssl["detail"].strip() or ssl["code"].lower()
        return f"the TLS handshake with {where} failed ({reason})"
    if "timed out" in lower or "timeouterror" in lower:
        seconds = _TIMEOUT.search(cause)
        within = f" within {float(seconds['seconds']):g} seconds" if seconds else ""
        return f"{where} did not answer{within} (timed out)"
    for words, what in _CAUSES:
        if any(w in lower for w in words):
            return f"{where}: {what}"
    return f"cannot connect to {where}: {_OBJECT.sub('', cause)}"


def minutes_in_words(minutes: int) -> str:
    """``45 minutes``, ``3 hours``, ``2 days``: whole units, rounded down past two hours."""
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours"
    return f"{minutes // (24 * 60)} days"
