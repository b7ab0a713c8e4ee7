"""Hiding secrets in text that ptm-sync prints or logs.

One helper for every URL a command or a log line shows: :func:`mask_urls` replaces the
password of every ``scheme://user:password@host`` in a text (RFC 3986 §3.2.1 userinfo) and
the value of query parameters that carry credentials (``?token=…``, ``access_token``,
``password``, ``key``, ``secret``, ``sig``…), as well as libpq-style ``password=…`` pairs.
The user name and the host stay: they say *which* server, and are no secret.

Pure: no I/O, no state.
"""

from __future__ import annotations

import re

#: What a masked secret is replaced by (SQLAlchemy's ``hide_password`` uses the same).
MASK = "***"

#: The password runs to the *last* ``@`` before the path: a password with a raw ``@``, ``#``
#: or ``?`` in it (not percent-encoded, as many are typed) is masked whole, since HTTP
#: clients take the host after the last ``@`` too.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#:]*):(?P<password>[^\s/]*)@")
_SECRET_NAMES = (
    r"password|passwd|pwd|pass|token|access_token|refresh_token|id_token|auth|authorization|"
    r"api_key|apikey|key|secret|client_secret|sig|signature|code"
)
_QUERY = re.compile(rf"(?P<head>[?&;](?:{_SECRET_NAMES})=)(?P<value>[^&;#\s\"'<>]*)", re.I)
_CONNINFO = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<value>'[^']*'|[^\s'&;]+)", re.I)


def mask_urls(text: str) -> str:
    """``text`` with the passwords and credential parameters of every URL in it masked.

    ``https://ptm:s3cret@dav.example.org/cal?token=abc`` becomes
    ``https://ptm:***@dav.example.org/cal?token=***``; text without URLs is returned as it is.
    """
    if "=" not in text and "@" not in text:
        return text
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _QUERY.sub(rf"\g<head>{MASK}", text)
    return _CONNINFO.sub(rf"\g<head>{MASK}", text)


def mask_url(url: str) -> str:
    """One URL with its password and credential parameters masked (see :func:`mask_urls`)."""
    return mask_urls(url)
