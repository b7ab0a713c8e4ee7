"""How much one inbound message may ask of us, checked before it costs much.  Pure.

An email is untrusted input: one message with 50,000 VEVENTs, a multipart nested a
thousand deep, a time zone that changes every second (``RRULE:FREQ=SECONDLY`` in a
VTIMEZONE, which icalendar expands transition by transition), megabytes of encoded words
in a Subject (the standard library decodes them in quadratic time) or one calendar line of
megabytes (icalendar takes seconds per megabyte) must not take the service's memory or
minutes of its time.  :class:`InputLimits` names the caps; the checks raise
:class:`~ptm_sync.core.errors.Unusable` with one of the stable reasons below, and the message
goes to quarantine (DESIGN §4) without being applied.

:func:`check_calendar_text` reads the calendar part's unfolded text line by line with one
regular expression, before icalendar parses any of it, so an oversized calendar is
refused in a fraction of the time parsing it would take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ptm_sync.core.errors import QuarantineReason, Unusable

__all__ = [
    "HEAD_BYTES",
    "LINE_TOO_LONG",
    "RECURRENCE_TOO_LARGE",
    "TOO_DEEP",
    "TOO_LARGE",
    "TOO_MANY_COMPONENTS",
    "TOO_MANY_PARTS",
    "TOO_MANY_PROPERTIES",
    "CalendarTally",
    "InputLimits",
    "check_calendar_text",
]

#: The message is larger than ``max_message_bytes``, its header section larger than
#: ``max_header_bytes``, or its calendar parts together larger than ``max_calendar_bytes``.
TOO_LARGE = QuarantineReason.TOO_LARGE
#: How much of a message over ``max_message_bytes`` is read (for its headers) and kept.
HEAD_BYTES = 64 * 1024
#: More MIME parts than ``max_mime_parts``, or more multipart boundaries than
#: ``max_multiparts``.
TOO_MANY_PARTS = QuarantineReason.TOO_MANY_PARTS
#: More calendar components (VEVENT, VTIMEZONE, VALARM …) than ``max_calendar_components``.
TOO_MANY_COMPONENTS = QuarantineReason.TOO_MANY_COMPONENTS
#: More content lines (properties) in one calendar part than ``max_calendar_lines``.
TOO_MANY_PROPERTIES = QuarantineReason.TOO_MANY_PROPERTIES
#: A calendar content line (unfolded) longer than ``max_calendar_line_length`` characters.
LINE_TOO_LONG = QuarantineReason.LINE_TOO_LONG
#: MIME parts or calendar components nested deeper than their limit.
TOO_DEEP = QuarantineReason.TOO_DEEP
#: A recurrence that would expand to too many instances: FREQ=SECONDLY/MINUTELY/HOURLY,
#: a COUNT over ``max_recurrence``, or more RDATE/EXDATE values than that.
RECURRENCE_TOO_LARGE = QuarantineReason.RECURRENCE_TOO_LARGE

#: Finer frequencies than these never describe a conference or a time zone's rules, and
#: expanding them (a zone's transitions from 1970 on) costs minutes.
_FINE_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY", "HOURLY"})
#: The content lines the scan looks at (after unfolding, RFC 5545 §3.1): name and value.
_INTERESTING = re.compile(
    r'(?im)^(BEGIN|END|RRULE|EXRULE|RDATE|EXDATE)(?:;[^\r\n:"]*(?:"[^"\r\n]*"[^\r\n:"]*)*)?:'
    r"([^\r\n]*)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputLimits:
    """Caps on one inbound message.  Sizes in bytes, line length in characters, the rest
    in counts.

    ``max_message_bytes`` and ``max_calendar_components`` are ``[mail]`` keys (DESIGN
    §8); the others are fixed well above what any mail or calendar client writes.
    """

    max_message_bytes: int = 10_000_000
    #: The header section: Received, DKIM and ARC chains make tens of kilobytes, and the
    #: standard library decodes encoded words and address lists in quadratic time.
    max_header_bytes: int = 131_072
    max_mime_parts: int = 200
    #: Multipart boundaries declared, counted before parsing: the stdlib parser checks
    #: every line against every open boundary, so its time grows with lines × nesting.
    max_multiparts: int = 32
    max_mime_depth: int = 16
    max_calendar_components: int = 500
    #: The calendar parts' text together (UTF-8): replies are a few kilobytes, and
    #: icalendar takes seconds per megabyte of long lines.
    max_calendar_bytes: int = 1_000_000
    max_calendar_lines: int = 5_000
    max_calendar_line_length: int = 65_536
    max_calendar_depth: int = 8
    max_recurrence: int = 1_000


@dataclass(slots=True)
class CalendarTally:
    """What the calendar parts of one message used so far (the caps are per message)."""

    components: int = 0
    size: int = 0  # bytes


def check_calendar_text(text: str, limits: InputLimits, tally: CalendarTally) -> None:
    """Check one unfolded calendar part against ``limits``, adding to ``tally``.

    Args:
        text: the part's text, unfolded (:func:`ptm_sync.core.ical.parse.decode_calendar`).
        limits: the caps.
        tally: what the message's earlier calendar parts used; updated.

    Raises:
        Unusable: ``too-large``, ``line-too-long``, ``too-many-properties``,
            ``too-many-components``, ``too-deep`` or ``recurrence-too-large``
            (RFC 5545 §3.3.10, §3.8.5).
    """
    tally.size += len(text.encode("utf-8", "surrogatepass"))
    if tally.size > limits.max_calendar_bytes:
        raise Unusable(TOO_LARGE, f"calendar parts over {limits.max_calendar_bytes} bytes")
    if _longest_line(text) > limits.max_calendar_line_length:
        raise Unusable(LINE_TOO_LONG, f"a line over {limits.max_calendar_line_length} characters")
    depth = 0
    instances = 0
    for found in _INTERESTING.finditer(text):
        name, value = found.group(1).upper(), found.group(2)
        if name == "BEGIN":
            depth += 1
            if depth > limits.max_calendar_depth:
                raise Unusable(TOO_DEEP, f"components nested over {limits.max_calendar_depth}")
            if value.strip().upper() != "VCALENDAR":
                tally.components += 1
            if tally.components > limits.max_calendar_components:
                raise Unusable(TOO_MANY_COMPONENTS, f"more than {limits.max_calendar_components}")
        elif name == "END":
            depth = max(depth - 1, 0)
        elif name in ("RRULE", "EXRULE"):
            _check_rule(value, limits)
        else:  # RDATE, EXDATE: comma-separated lists (RFC 5545 §3.8.5.1, §3.8.5.2)
            instances += value.count(",") + 1
            if instances > limits.max_recurrence:
                raise Unusable(
                    RECURRENCE_TOO_LARGE, f"more than {limits.max_recurrence} RDATE/EXDATE"
                )
    if text.count("\n") + 1 > limits.max_calendar_lines:
        raise Unusable(TOO_MANY_PROPERTIES, f"more than {limits.max_calendar_lines} lines")


def _longest_line(text: str) -> int:
    longest, start = 0, 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            return max(longest, len(text) - start)
        longest = max(longest, end - start)
        start = end + 1


def _check_rule(value: str, limits: InputLimits) -> None:
    parts = dict(
        (key.strip().upper(), val.strip().upper())
        for key, _, val in (item.partition("=") for item in value.split(";"))
    )
    if parts.get("FREQ") in _FINE_FREQUENCIES:
        raise Unusable(RECURRENCE_TOO_LARGE, f"FREQ={parts['FREQ']}")
    count = parts.get("COUNT", "")
    if count.isdigit() and int(count) > limits.max_recurrence:
        raise Unusable(RECURRENCE_TOO_LARGE, f"COUNT over {limits.max_recurrence}")
