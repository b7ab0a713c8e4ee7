"""What a server that answered 401 wants: its ``WWW-Authenticate`` challenges, in words.

A 401 is not always a wrong password.  A server that offers only ``Bearer`` (Google's own
CalDAV endpoint, any OAuth-only server) will refuse every user name and password, and so
will one that offers only ``Negotiate`` or ``NTLM`` (Windows sign-in) to a client that sent
Basic.  :func:`refusal` reads the challenges (RFC 7235 §4.1: ``WWW-Authenticate =
1#challenge``, each ``auth-scheme [ token68 / #auth-param ]``; RFC 6750 §3 Bearer; RFC 4559
Negotiate) and gives the one sentence that ``check``, ``sync`` and ``/healthz`` all show.

Only the scheme names are read (the parameters say nothing an administrator needs); the
standard library has no parser for this header and the HTTP clients under the connectors
(requests, exchangelib, httplib2) expose it only as text, so the few lines of the grammar
that find the schemes live here.  PURE: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

#: Hosts of Google's CalDAV endpoint (``https://apidata.googleusercontent.com/caldav/v2/``
#: and the older ``https://www.google.com/calendar/dav/``), which take OAuth tokens only.
_GOOGLE_HOSTS = ("googleusercontent.com", "google.com")


class AuthScheme(StrEnum):
    """HTTP authentication schemes (IANA "HTTP Authentication Scheme Registry")."""

    BASIC = "basic"  # RFC 7617
    DIGEST = "digest"  # RFC 7616
    BEARER = "bearer"  # RFC 6750
    NEGOTIATE = "negotiate"  # RFC 4559 (Kerberos or NTLM under SPNEGO)
    NTLM = "ntlm"  # MS-NTHT


_WORDS: dict[AuthScheme, str] = {
    AuthScheme.BASIC: "a user name and password (Basic)",
    AuthScheme.DIGEST: "a user name and password (Digest)",
    AuthScheme.BEARER: "OAuth tokens (Bearer)",
    AuthScheme.NEGOTIATE: "Windows sign-in (Negotiate)",
    AuthScheme.NTLM: "Windows sign-in (NTLM)",
}
_WINDOWS = frozenset({AuthScheme.NEGOTIATE, AuthScheme.NTLM})
_PASSWORDS = frozenset({AuthScheme.BASIC, AuthScheme.DIGEST})
#: The refusal of a user name and password the server would take: they are wrong.
PASSWORD_REFUSED = "the server refused the user name or password"


def schemes(challenges: Iterable[str | None]) -> list[str]:
    """The auth-scheme names of the challenges in ``WWW-Authenticate`` values, lower case,
    in order, each once (unknown schemes included).

    A scheme is a token at the start of the value or after a comma that is followed by a
    space, a comma or the end, and not by ``=`` (which would make it an auth-param's name);
    quoted strings are skipped whole.
    """
    found: list[str] = []
    for value in challenges:
        if value:
            for name in _scheme_tokens(value):
                if name not in found:
                    found.append(name)
    return found


def _scheme_tokens(value: str) -> Iterable[str]:
    i, n = 0, len(value)
    at_item_start = True
    while i < n:
        ch = value[i]
        if ch == '"':  # a quoted-string: skip to its closing quote, minding backslashes
            i += 1
            while i < n and value[i] != '"':
                i += 2 if value[i] == "\\" else 1
            i += 1
            at_item_start = False
            continue
        if ch == ",":
            at_item_start = True
            i += 1
            continue
        if ch in " \t":
            i += 1
            continue
        start = i
        while i < n and value[i] not in ' \t,="':
            i += 1
        if i == start:  # "=" of an auth-param or a token68's padding
            i += 1
            continue
        token = value[start:i]
        rest = value[i:].lstrip(" \t")
        if at_item_start and token and not rest.startswith("="):
            yield token.lower()
        at_item_start = False


def refusal(
    challenges: Iterable[str | None],
    *,
    sent: AuthScheme,
    host: str = "",
    usable: Mapping[AuthScheme, str] | None = None,
    option: str = "",
) -> str:
    """Why the server refused us, as the end of a sentence (no account name, no secret).

    Args:
        challenges: the ``WWW-Authenticate`` values of the 401 (none: a plain refusal).
        sent: the scheme we signed in with.
        host: the server's host name (Google's CalDAV endpoint gets its own advice).
        usable: schemes this connector could use instead, each with the value of
            ``option`` that chooses it (EWS: ``{NTLM: "ntlm", BEARER: "oauth"}``).
        option: the setting that chooses the scheme (``auth``), named in the advice.

    Returns:
        "the server refused the user name or password" when it offers what we sent (or
        says nothing), "the server refused the access token" for a Bearer we sent, else
        "the server accepts only …, not …" with what would work.
    """
    offered = [s for s in schemes(challenges) if s in set(AuthScheme)]
    known = [AuthScheme(s) for s in offered]
    if not known or sent in known or (sent in _PASSWORDS and _PASSWORDS & set(known)):
        if sent == AuthScheme.BEARER:
            return "the server refused the access token"
        return "the server refused the user name or password"
    if set(known) >= _WINDOWS:  # said once: "Windows sign-in (Negotiate/NTLM)"
        words = [s for s in known if s != AuthScheme.NTLM]
        what = " or ".join(_WORDS[s] for s in words).replace("(Negotiate)", "(Negotiate/NTLM)")
    else:
        what = " or ".join(_WORDS[s] for s in known)
    sentence = f"the server accepts only {what}, not {_WORDS[sent]}"
    name = host.lower().rstrip(".")
    if AuthScheme.BEARER in known and any(
        name == g or name.endswith("." + g) for g in _GOOGLE_HOSTS
    ):
        return f'{sentence}: for Google Calendar use an account of type = "google"'
    instead = [usable[s] for s in known if usable and s in usable]
    if instead and option:
        return f'{sentence}: set {option} = "{instead[0]}"'
    if instead:
        return sentence
    return (
        f"{sentence}; ptm-sync cannot sign in that way: ask the server's administrator for "
        "an app password"
    )
