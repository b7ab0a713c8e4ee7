"""iTIP (RFC 5546) as pure functions: build what we send, read what we receive.

Modelled on sabre/vobject's ITip Broker and xandikos' ``itip.py``: values in, values out, no
I/O, no clock.  ``dtstamp`` and the school's time zone are arguments.

* :mod:`.message`: the methods, the REQUEST-STATUS codes, the :class:`ItipMessage` and
  :class:`Attendee` values, and :func:`is_newer`, the per-attendee ordering rule of
  RFC 5546 §2.1.5 (DESIGN §4).
* :mod:`.read`: :func:`read_itip` turns a parsed calendar into a frozen
  :class:`ItipMessage`, or raises :class:`~ptm_sync.core.errors.Unusable` with a short,
  stable reason for quarantine.
* :mod:`.build`: :func:`build_request`, :func:`build_cancel`,
  :func:`build_decline_counter` (the service as ORGANIZER, from an :class:`Invitation`)
  and :func:`build_reply` (the service as ATTENDEE, for requests sent to a booking
  address) return :class:`icalendar.Calendar` objects.

The package is the API::

    from ptm_sync.core.ical import itip
    itip.read_itip(cal, method_hint, tz); itip.build_request(invitation, tz)
"""

from ptm_sync.core.emailaddress import address_of
from ptm_sync.core.ical.itip.build import (
    CONFERENCE_LABEL,
    PRODID,
    Invitation,
    build_cancel,
    build_decline_counter,
    build_reply,
    build_request,
)
from ptm_sync.core.ical.itip.message import (
    MAX_UID_LENGTH,
    READABLE_METHODS,
    REQUEST_STATUS_CONFLICT,
    REQUEST_STATUS_INVALID_PROPERTY,
    REQUEST_STATUS_INVALID_USER,
    REQUEST_STATUS_NO_AUTHORITY,
    REQUEST_STATUS_REPEATING_IGNORED,
    REQUEST_STATUS_SUCCESS,
    REQUEST_STATUS_UNSUPPORTED,
    Attendee,
    ItipMessage,
    Method,
    is_newer,
)
from ptm_sync.core.ical.itip.read import read_itip
from ptm_sync.core.ical.parse import parse_calendar

__all__ = [
    "CONFERENCE_LABEL",
    "MAX_UID_LENGTH",
    "PRODID",
    "READABLE_METHODS",
    "REQUEST_STATUS_CONFLICT",
    "REQUEST_STATUS_INVALID_PROPERTY",
    "REQUEST_STATUS_INVALID_USER",
    "REQUEST_STATUS_NO_AUTHORITY",
    "REQUEST_STATUS_REPEATING_IGNORED",
    "REQUEST_STATUS_SUCCESS",
    "REQUEST_STATUS_UNSUPPORTED",
    "Attendee",
    "Invitation",
    "ItipMessage",
    "Method",
    "address_of",
    "build_cancel",
    "build_decline_counter",
    "build_reply",
    "build_request",
    "is_newer",
    "parse_calendar",
    "read_itip",
]
