"""iMIP (RFC 6047): iTIP messages carried by email, both ways.  Pure: bytes in, values out.

:mod:`.build` writes the emails (DESIGN §4's shape), :mod:`.read` reads one received email
into an :class:`Inbound` value; :mod:`.headers` is the header registry both use and
:mod:`.limits` the input limits reading applies.  The package is the API::

    from ptm_sync.core import imip
    imip.build_invitation_email(...); imip.extract(raw, tz=...)
"""

from ptm_sync.core.imip.build import as_bytes, build_invitation_email, build_plain_email
from ptm_sync.core.imip.read import (
    GOOGLE_NOTIFIER,
    Inbound,
    Kind,
    calendar_digest,
    calendar_text,
    extract,
)

__all__ = [
    "GOOGLE_NOTIFIER",
    "Inbound",
    "Kind",
    "as_bytes",
    "build_invitation_email",
    "build_plain_email",
    "calendar_digest",
    "calendar_text",
    "extract",
]
