"""Reading one inbound message: within the configured limits, never raising, and its digest.

The reading itself is :func:`ptm_sync.core.imip.extract`; this module gives it the limits of
``[mail]``, turns a failure of the reader into a reason for quarantine, and names the message
by the digest that recognises it when it comes again.
"""

from __future__ import annotations

import hashlib
import logging
import traceback

from ptm_sync.config.settings import Config
from ptm_sync.core import imip
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.imip.limits import InputLimits

# The pipeline's logger: what reading reports belongs to the inbound pipeline's log.
log = logging.getLogger("ptm_sync.app.channels.replies")


def digest_of(raw: bytes, inbound: imip.Inbound | None) -> str:
    """The digest that recognises a message: its calendar's when it has one, else its bytes'."""
    if inbound is not None and inbound.message_id and inbound.calendar:
        return imip.calendar_digest(inbound)
    return hashlib.sha256(raw).hexdigest()


def input_limits(config: Config) -> InputLimits:
    """The caps on one inbound message: ``[mail] max_message_bytes`` and
    ``max_calendar_components`` (DESIGN §8), the others fixed."""
    if config.mail is None:
        return InputLimits()
    return InputLimits(
        max_message_bytes=config.mail.max_message_bytes,
        max_calendar_components=config.mail.max_calendar_components,
    )


def extract(raw: bytes, config: Config) -> tuple[imip.Inbound | None, Unusable | None]:
    """The message as read, or what made it unreadable.  Never raises: a message the
    reader fails on would fail every time, so it is quarantined (``internal-error``)."""
    try:
        return imip.extract(raw, tz=config.tz, limits=input_limits(config)), None
    except Unusable as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - a bug in reading: quarantine, never defer
        # Where, not what: the exception's text may quote the message (personal data).
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "inbound message could not be read (%s at %s:%s); kept in quarantine",
            type(exc).__name__,
            where.filename,
            where.lineno,
        )
        return None, Unusable(QuarantineReason.INTERNAL_ERROR, type(exc).__name__)


def read(raw: bytes, config: Config) -> tuple[imip.Inbound | None, Unusable | None, str]:
    """The message as read, what made it unreadable, and its digest."""
    inbound, early = extract(raw, config)
    return inbound, early, digest_of(raw, inbound)
