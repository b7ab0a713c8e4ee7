"""Who may act on a meeting (DESIGN §4).  Pure: secrets and headers in, decisions out.

* UIDs carry a short HMAC, so a forged UID is refused before any database look-up.
* With plus addressing the ORGANIZER is ``local+<token>@domain``; the token is an HMAC of
  the meeting's UID, so a reply reaching it proves the sender saw our invitation.
* A reply changes a meeting only when it names the attendee we invited and the sender is
  that attendee or one of their configured aliases.
* Authentication-Results (RFC 8601) from our own receiving server can veto a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ptm_sync.core.emailaddress import EmailAddress

__all__ = [
    "AuthResults",
    "authentication_verdict",
    "feedback_token",
    "make_token",
    "make_uid",
    "normalize_address",
    "organizer_address",
    "parse_authentication_results",
    "sender_may_act",
    "token_from_address",
    "token_matches",
    "uid_is_ours",
]

_MAC_BYTES = 10  # 80 bits: 16 base32 characters, plenty against on-line guessing
_MAC_CHARS = 16
_UID_CONTEXT = b"ptm-sync uid\0"
_TOKEN_CONTEXT = b"ptm-sync organizer token\0"
_FEEDBACK_CONTEXT = b"ptm-sync feedback token\0"
#: A feedback token's MAC: 160 bits, 32 base32 characters (it stands alone in a URL).
_FEEDBACK_BYTES = 20
_TOKEN_RE = re.compile(r"^[a-z0-9]+$")

Verdict = Literal["pass", "fail", "none"]


def _mac(secret: bytes, context: bytes, message: str) -> str:
    if not secret:
        raise ValueError("an empty secret signs nothing")
    digest = hmac.new(secret, context + message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode("ascii").lower()


# --- UIDs ---------------------------------------------------------------------------------


def make_uid(secret: bytes, random_part: str, domain: str) -> str:
    """``<random>-<mac>@<domain>``: a UID whose MAC :func:`uid_is_ours` can check.

    ``random_part`` comes from the caller (e.g. ``uuid4().hex``); it must not contain ``@``
    or white space.
    """
    if not random_part or "@" in random_part or re.search(r"\s", random_part):
        raise ValueError(f"unusable random part for a UID: {random_part!r}")
    if not domain or "@" in domain or re.search(r"\s", domain):
        raise ValueError(f"unusable domain for a UID: {domain!r}")
    mac = _mac(secret, _UID_CONTEXT, f"{random_part}@{domain.lower()}")
    return f"{random_part}-{mac}@{domain}"


def uid_is_ours(secret: bytes, uid: str) -> bool:
    """Whether ``uid`` was made by :func:`make_uid` with ``secret`` (constant-time check)."""
    local, at, domain = uid.strip().rpartition("@")
    random_part, dash, mac = local.rpartition("-")
    if not at or not dash or not random_part or not domain or len(mac) != _MAC_CHARS:
        return False
    expected = _mac(secret, _UID_CONTEXT, f"{random_part}@{domain.lower()}")
    return hmac.compare_digest(expected, mac.lower())


# --- plus-addressing tokens ---------------------------------------------------------------


def make_token(secret: bytes, meeting_uid: str) -> str:
    """A short lowercase token for ``local+<token>@domain``, bound to one meeting's UID."""
    return _mac(secret, _TOKEN_CONTEXT, meeting_uid)


def token_matches(secret: bytes, meeting_uid: str, token: str) -> bool:
    """Whether ``token`` is the one :func:`make_token` gives for this meeting."""
    return hmac.compare_digest(make_token(secret, meeting_uid), token.strip().lower())


def feedback_token(secret: bytes, meeting_uid: str) -> str:
    """A meeting's feedback token (DESIGN §3): an HMAC of its UID, 32 lowercase base32
    characters, safe in a URL and in an address's local part (mail systems that fold case
    keep it), and unlike the meeting's reply token (another context)."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    mac = hmac.new(secret, _FEEDBACK_CONTEXT + meeting_uid.encode("utf-8"), hashlib.sha256)
    return base64.b32encode(mac.digest()[:_FEEDBACK_BYTES]).decode("ascii").lower()


def organizer_address(organizer: str, token: str) -> str:
    """``conferences@school.org`` and ``k3x…`` → ``conferences+k3x…@school.org``."""
    if not _TOKEN_RE.match(token):
        raise ValueError(f"a token must be lowercase letters and digits: {token!r}")
    local, at, domain = organizer.strip().rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {organizer!r}")
    return f"{local}+{token}@{domain}"


def token_from_address(addr: str, organizer: str) -> str | None:
    """The token of a plus address of ``organizer``, or None when ``addr`` is not one."""
    address, base = EmailAddress.parse(addr), EmailAddress.parse(organizer)
    if not address.is_valid or not base.is_valid or address.domain != base.domain:
        return None
    prefix = f"{base.local}+"
    if not address.local.startswith(prefix) or len(address.local) == len(prefix):
        return None
    return address.local[len(prefix) :]


# --- who may act --------------------------------------------------------------------------


def normalize_address(addr: str) -> str:
    """An address in the form two spellings of one mailbox share.

    ``EmailAddress.parse(addr).identity()`` as text: lowercased, without ``mailto:`` or
    angle brackets, and Gmail addresses without dots and ``+tags`` (see
    :meth:`~ptm_sync.core.emailaddress.EmailAddress.identity`).
    """
    return EmailAddress.parse(addr).identity().value


def sender_may_act(
    sender: str, attendee: str, invited: str, aliases: Mapping[str, Sequence[str]]
) -> bool:
    """Whether a reply from ``sender`` naming ``attendee`` may change a meeting for ``invited``.

    Both the ATTENDEE in the message and the effective sender must be the invited address
    or one of its aliases from ``[mail] aliases`` (DESIGN §4).
    """
    if not sender or not attendee or not invited:
        return False
    wanted = normalize_address(invited)
    identities = {wanted}
    for guardian, extra in aliases.items():
        if normalize_address(guardian) == wanted:
            identities.update(normalize_address(a) for a in extra)
    return normalize_address(attendee) in identities and normalize_address(sender) in identities


# --- Authentication-Results (RFC 8601) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthResults:
    """One Authentication-Results header: who wrote it and (method, result) pairs."""

    authserv_id: str
    results: tuple[tuple[str, str], ...]


def parse_authentication_results(value: str) -> AuthResults | None:
    """Parse one header value (RFC 8601 §2.2); None when it has no authserv-id."""
    text = _without_comments(re.sub(r"^\s*authentication-results\s*:", "", value, flags=re.I))
    head, *resinfos = _split_outside_quotes(text)
    words = head.split()
    if not words:
        return None
    results = []
    for resinfo in resinfos:
        # methodspec = method [ "/" version ] "=" result  (RFC 8601 §2.2)
        found = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:/\s*\d+\s*)?=\s*([A-Za-z0-9_-]+)", resinfo)
        if found:
            results.append((found.group(1).lower(), found.group(2).lower()))
    return AuthResults(authserv_id=words[0].strip('"').lower(), results=tuple(results))


def authentication_verdict(headers: Sequence[str], trusted_authserv_id: str) -> Verdict:
    """``fail``, ``pass`` or ``none`` from the headers our own receiving server wrote.

    Only headers whose authserv-id equals ``trusted_authserv_id`` count (RFC 8601 §5: others
    may be forged by the sender).  ``fail`` when DMARC failed, or when DKIM failed with no
    passing signature and SPF failed too; ``pass`` when DMARC, DKIM or SPF passed; ``none``
    when nothing was checked or no trusted header is present.  Failures win over passes,
    so a forged header cannot hide a real failure.
    """
    trusted = trusted_authserv_id.strip().lower()
    if not trusted:
        return "none"
    seen: dict[str, set[str]] = {}
    for value in headers:
        parsed = parse_authentication_results(value)
        if parsed is None or parsed.authserv_id != trusted:
            continue
        for method, result in parsed.results:
            seen.setdefault(method, set()).add(result)
    dmarc, dkim, spf = (seen.get(m, set()) for m in ("dmarc", "dkim", "spf"))
    if "fail" in dmarc:
        return "fail"
    if "fail" in dkim and "pass" not in dkim and "fail" in spf:
        return "fail"
    if "pass" in dmarc or "pass" in dkim or "pass" in spf:
        return "pass"
    return "none"


def _without_comments(text: str) -> str:
    """Drop RFC 5322 comments ``( … )``, nested and escaped, but not inside quotes."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
        elif quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            quoted = char == '"'
            out.append(char)
    return "".join(out)


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
