"""One email address value for every place that compares addresses.  Pure: text in, values out.

Calendar data names people as ``mailto:`` URIs (RFC 5545 §3.3.3, RFC 6068), mail headers as
``Name <local@domain>`` (RFC 5322 §3.4), delivery reports as ``rfc822;local@domain``
(RFC 3464 §2.3.2), and clients add case, white space and angle brackets of their own.
:meth:`EmailAddress.parse` turns all of them into one lowercase ``local@domain``; two
spellings of one mailbox then compare equal.

Whether two addresses reach the same person is a second, looser question:
:meth:`EmailAddress.identity` also folds what Gmail ignores (dots and ``+tags`` in the local
part, ``googlemail.com``), and only for Gmail, whose rules are known.  Use ``parse`` to store
and look up, ``identity`` to decide whether a sender may act for an invited guardian.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["EmailAddress", "address_of"]

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_SCHEMES = ("mailto:", "smtp:", "rfc822;")
#: RFC 5321 §4.5.3.1.1-2: a local part of 64 octets, a domain of 255; with the "@", 320.
MAX_LENGTH = 320
#: Control characters (C0, DEL, C1): never part of an address (RFC 5322 §3.2.3, RFC 6532 §3.2).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True, order=True)
class EmailAddress:
    """A mailbox address as ``local@domain``, lowercased, without scheme or brackets.

    Make one with :meth:`parse`; the constructor takes the normal form as it is.
    ``parse`` never raises: text that is no address gives a value whose :attr:`is_valid`
    is False, so callers decide what an unusable address means for them.
    """

    value: str

    @classmethod
    def parse(cls, text: object) -> EmailAddress:
        """The address in ``text``: ``MAILTO:<Jane.Doe@Example.org>`` → ``jane.doe@example.org``.

        Accepts a bare address, a ``mailto:`` URI (RFC 6068: percent-escapes are decoded,
        ``?headers`` dropped), Outlook's ``SMTP:`` prefix, a DSN's ``rfc822;`` address type
        (RFC 3464 §2.3.2), and angle brackets around any of them (``Name <a@b.org>`` keeps
        only what is inside the brackets).  Internationalised addresses (RFC 6532) are put
        in Unicode normalization form NFC (RFC 6532 §3.1), so that two spellings of
        ``zoë@exämple.de`` compare equal.
        """
        value = str(text).strip()
        if "<" in value and value.endswith(">"):
            value = value[value.rindex("<") + 1 : -1]
        value = value.strip().strip("<>").strip()
        lowered = value.lower()
        for scheme in _SCHEMES:
            if lowered.startswith(scheme):
                value = value[len(scheme) :].strip().strip("<>").strip()
                if scheme == "mailto:":
                    value = unquote(value.split("?", 1)[0])
                break
        if not value.isascii():
            value = unicodedata.normalize("NFC", value)
        return cls(value.lower())

    @property
    def local(self) -> str:
        """The part before the last ``@`` (empty when there is no ``@``)."""
        return self.value.rpartition("@")[0]

    @property
    def domain(self) -> str:
        """The part after the last ``@`` (the whole value when there is no ``@``)."""
        return self.value.rpartition("@")[2]

    @property
    def is_valid(self) -> bool:
        """Whether this looks like ``local@domain``: both parts present, no white space or
        control characters, at most :data:`MAX_LENGTH` characters."""
        local, at, domain = self.value.rpartition("@")
        return (
            bool(at and local and domain)
            and len(self.value) <= MAX_LENGTH
            and not any(c.isspace() for c in self.value)
            and not _CONTROL.search(self.value)
        )

    def identity(self) -> EmailAddress:
        """The form two spellings of one mailbox share, for deciding who may act.

        Gmail ignores dots and ``+tags`` in its local parts and treats googlemail.com as
        gmail.com; other providers differ (many keep dots significant), so only Gmail
        addresses are folded that far.  An internationalised domain (RFC 5890) is compared
        in its ASCII form, so ``zoë@exämple.de`` and ``zoë@xn--exmple-cua.de`` are one.
        """
        local, at, domain = self.value.rpartition("@")
        if at and not domain.isascii():
            domain = _ascii_domain(domain)
            if domain.isascii():
                return EmailAddress(f"{local}@{domain}")
        if not at or domain not in _GMAIL_DOMAINS:
            return self
        return EmailAddress(f"{local.split('+', 1)[0].replace('.', '')}@gmail.com")

    def __str__(self) -> str:
        return self.value


def _ascii_domain(domain: str) -> str:
    """The A-label form of a domain (RFC 3490, the codec Python ships); as given when it
    has none (empty labels, labels too long)."""
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain


def address_of(value: object) -> str:
    """``EmailAddress.parse(value).value``: the plain lowercased address as text."""
    return EmailAddress.parse(value).value
