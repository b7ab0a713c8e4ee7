"""iCalendar text in: the one parser and the one TZID resolver.  Pure: no I/O, no clock.

Every calendar the service reads (an inbound iMIP part, a teacher's CalDAV object, a
free-busy answer) goes through :func:`parse_calendar`, and every TZID through
:func:`zone_resolver`.  What they do before icalendar sees the data, and why:

* **Octets before text** (RFC 5545 §3.1).  Lines are folded at 75 *octets*, so a fold may
  split a multi-byte UTF-8 character.  :func:`decode_calendar` normalises line ends (mail
  gateways turn CRLF into LF or CRCRLF) and unfolds on bytes, then decodes.  A line that is
  not valid UTF-8 is decoded on its own, so one bad octet sequence never garbles the rest
  of the calendar: with U+FFFD where its bytes are invalid if the line holds UTF-8
  elsewhere, as Windows-1252 if it holds none (a legacy client that declared no charset).
* **A TZID that cannot apply is dropped** (RFC 5545 §3.2.19, §3.3.5).  A date-time written
  in UTC form (``…T200000Z``) fixes its instant whatever TZID is next to it, and a DATE has
  no time of day for a zone to act on.  icalendar would otherwise apply a known TZID and
  drop the ``Z``, or turn the date into a midnight; Android clients write
  ``DTSTART;TZID=Z:20270301T200000Z``.
* **Recurrence rules lose white space** (RFC 5545 §3.3.10 has none): old Exchange (CDO)
  writes ``BYDAY=MO, TU, WE``, which icalendar cannot read, and an unreadable rule would
  leave a teacher's whole series free.
* **Zones are resolved per calendar object** (see :func:`zone_resolver`), never through
  icalendar's process-wide cache, where the first VTIMEZONE seen for a TZID would win for
  every later message and teacher.

Failures raise :class:`~ptm_sync.core.errors.UnreadableCalendar`, which is both an
:class:`~ptm_sync.core.errors.Unusable` (reason ``broken-icalendar``: the inbound message goes to
quarantine) and a :class:`~ptm_sync.core.errors.BadCalendarData` (the sync skips that object),
so each caller keeps catching what it always caught.
"""

from __future__ import annotations

import codecs
import re
import warnings
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from icalendar import Calendar, Timezone
from icalendar.error import GloballyUniqueTZIDGuessed
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from ptm_sync.core.errors import UnreadableCalendar

__all__ = [
    "decode_calendar",
    "decode_line",
    "is_date",
    "localize",
    "parse_calendar",
    "zone_resolver",
]

_LINE_END = re.compile(rb"\r*\n|\r+")
_FOLD = re.compile(rb"\r\n[ \t]")
_TEXT_LINE_END = re.compile(r"\r*\n|\r+")
_TEXT_FOLD = re.compile(r"\r\n[ \t]")
_BOM = b"\xef\xbb\xbf"
#: Control characters RFC 5545 §3.1 and §3.3.11 allow nowhere (all but HTAB, CR and LF),
#: and lone surrogates, which some codecs (UTF-7) decode to and no database stores.
#: NUL in particular cannot be stored in PostgreSQL text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_UTF8 = frozenset({"utf-8", "ascii"})
#: Content lines with a TZID parameter (after unfolding): name, parameters, value.
_ZONED_LINE = re.compile(
    r"(?im)^(?P<name>[A-Z0-9-]+)(?P<params>;[^\r\n]*?TZID=[^\r\n]*)(?=[\r\n]|\Z)"
)
#: Recurrence rule lines with white space in them (RFC 5545 §3.3.10 allows none).
_SPACED_RULE = re.compile(r"(?im)^(?:RRULE|EXRULE)[;:][^\r\n]*?[ \t][^\r\n]*(?=[\r\n]|\Z)")
#: A DATE (``20270301``) or a DATE-TIME in UTC form (``20270301T200000Z``), RFC 5545 §3.3;
#: a PERIOD's end is either such a date-time or a duration (§3.3.9).
_FIXED_VALUE = re.compile(r"\d{8}(?:T\d{6}Z)?")
_PERIOD_END = re.compile(r"\d{8}T\d{6}Z|[+-]?P[0-9WDTHMS]+")


def decode_calendar(data: bytes, charset: str | None = None) -> str:
    """The text of a calendar part: line ends normalised, unfolded, decoded line by line.

    ``charset`` is the declared one (the MIME ``charset=`` parameter), if any; an unknown or
    misspelt name is ignored.  A charset that is not ASCII-compatible (UTF-16) decodes the
    whole part at once, as its line breaks are not single octets.  Control characters
    other than HTAB (RFC 5545 §3.3.11) and lone surrogates become U+FFFD.
    """
    return _CONTROL.sub("\ufffd", _decode(data, charset))


def _decode(data: bytes, charset: str | None) -> str:
    codec = _codec(charset)
    if codec is not None and "\r\n ".encode(codec, "replace") != b"\r\n ":
        try:
            return _unfold_text(data.decode(codec).lstrip("\ufeff"))
        except ValueError:
            codec = None
    data = _FOLD.sub(b"", _LINE_END.sub(b"\r\n", data.removeprefix(_BOM)))
    try:  # the common case: all of it decodes
        return data.decode(codec or "utf-8")
    except ValueError:
        pass
    return "\r\n".join(decode_line(line, codec) for line in data.split(b"\r\n"))


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        name = codecs.lookup(charset.strip().strip('"')).name
        "\r\n ".encode(name)  # LookupError for codecs that are no charset (rot13, base64)
    except (LookupError, ValueError):
        return None
    return None if name in _UTF8 else name


def decode_line(line: bytes, codec: str | None = None) -> str:
    """One line of octets as text: in ``codec`` if given and it fits, else UTF-8, with
    U+FFFD for bad octets when the line holds UTF-8 elsewhere, else Windows-1252 (a legacy
    client that declared no charset).  Never raises."""
    if codec is not None:
        try:
            return line.decode(codec)
        except ValueError:
            pass
    try:
        return line.decode("utf-8")
    except ValueError:
        text = line.decode("utf-8", "replace")
    if any(char > "\x7f" and char != "\ufffd" for char in text):
        return text  # UTF-8 with a few bad octets: replace those, keep the rest
    return line.decode("cp1252", "replace")  # no UTF-8 at all: an undeclared legacy charset


def _unfold_text(text: str) -> str:
    return _TEXT_FOLD.sub("", _TEXT_LINE_END.sub("\r\n", text))


def parse_calendar(data: bytes | str) -> Calendar:
    """Parse one VCALENDAR (RFC 5545 §3.4) the way the module docstring describes.

    Bytes are decoded with :func:`decode_calendar` (no declared charset: UTF-8, line by
    line); text has its line ends normalised and is unfolded.

    Raises:
        UnreadableCalendar: the data is empty, cannot be parsed, or holds no VCALENDAR.
    """
    text = decode_calendar(data) if isinstance(data, bytes) else _unfold_text(data)
    if not text.strip():
        raise UnreadableCalendar("calendar data is empty")
    text = _ZONED_LINE.sub(_drop_inapplicable_tzid, text)
    text = _SPACED_RULE.sub(lambda found: re.sub(r"[ \t]+", "", found.group(0)), text)
    try:
        with warnings.catch_warnings():
            # A "globally unique" TZID is resolved by zone_resolver(), not by this guess.
            warnings.simplefilter("ignore", GloballyUniqueTZIDGuessed)
            calendar = Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError…
        raise UnreadableCalendar(f"cannot be parsed: {_first_line(exc)}") from exc
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise UnreadableCalendar("not a VCALENDAR")
    return calendar


def _drop_inapplicable_tzid(found: re.Match[str]) -> str:
    """A zoned content line without its TZID when no value of it can take a zone."""
    params, value = _split_value(found.group("params"))
    if value is None:
        return found.group(0)
    items = value.split(",")
    fixed = [item for item in items if _is_fixed(item.strip())]
    if not fixed:
        return found.group(0)
    kept = [p for p in _split_params(params) if p and not p.upper().startswith("TZID=")]
    name = found.group("name")
    untouched = name + "".join(f";{p}" for p in kept) + ":" + ",".join(fixed)
    zoned = [item for item in items if not _is_fixed(item.strip())]
    if not zoned:
        return untouched
    # A list mixing UTC-form values with zoned ones (EXDATE;TZID=X:…Z,…): the UTC ones on
    # a line of their own (RFC 5545 allows the property more than once), the rest keep the
    # TZID, so no UTC marker is dropped for a zone that cannot apply to it.
    return untouched + "\r\n" + name + params + ":" + ",".join(zoned)


def _is_fixed(item: str) -> bool:
    if "/" in item:  # a PERIOD (RFC 5545 §3.3.9): start in UTC form, end UTC or a duration
        start, _, end = item.partition("/")
        return bool(re.fullmatch(r"\d{8}T\d{6}Z", start) and _PERIOD_END.fullmatch(end))
    return bool(_FIXED_VALUE.fullmatch(item))


def _split_value(params: str) -> tuple[str, str | None]:
    """``;A=1;B="x:y":value`` → (``;A=1;B="x:y"``, ``value``): the first colon outside quotes."""
    quoted = False
    for index, char in enumerate(params):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return params[:index], params[index + 1 :]
    return params, None


def _split_params(params: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in params:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:120] if text.strip() else type(exc).__name__


# --- time zones --------------------------------------------------------------------------


def zone_resolver(calendar: Calendar, fallback: tzinfo) -> Callable[[str], tzinfo]:
    """A TZID → tzinfo function for one calendar object (RFC 5545 §3.2.19, §3.6.5).

    In this order:

    1. an IANA name (``Europe/Berlin``) uses the tz database, and ``Z`` is UTC;
    2. any other TZID defined by a VTIMEZONE in the same object uses that definition
       (Outlook's ``Customized Time Zone``, ``W. Europe Standard Time`` with its VTIMEZONE);
    3. a Windows zone name without a VTIMEZONE uses CLDR's Windows→IANA table that
       icalendar ships (``Eastern Standard Time`` → ``America/New_York``);
    4. a "globally unique" TZID (``/freeassociation.sourceforge.net/Europe/Berlin``) uses
       its trailing IANA name;
    5. anything else (Notes writes ``TZID="FLE"``) is read as ``fallback``, the school's
       zone, like a floating time.
    """
    definitions = {
        str(vtimezone["TZID"]).strip(): vtimezone
        for vtimezone in calendar.walk("VTIMEZONE")
        if isinstance(vtimezone, Timezone) and "TZID" in vtimezone
    }
    resolved: dict[str, tzinfo] = {}

    def resolve(tzid: str) -> tzinfo:
        name = str(tzid).strip().strip('"')
        if name not in resolved:
            resolved[name] = _resolve(name, definitions, fallback)
        return resolved[name]

    return resolve


def _resolve(name: str, definitions: dict[str, Timezone], fallback: tzinfo) -> tzinfo:
    if name.upper() == "Z":
        return UTC
    found = _iana(name)
    if found is not None:
        return found
    if name in definitions:
        definition = definitions[name]
        custom = _defined_zone(name, _fingerprint(definition), definition)
        if custom is not None:
            return custom
    if name in WINDOWS_TO_OLSON:
        return _iana(WINDOWS_TO_OLSON[name]) or fallback
    if name.startswith("/"):
        parts = name.strip("/").split("/")
        for first in range(1, len(parts)):
            found = _iana("/".join(parts[first:]))
            if found is not None:
                return found
    return fallback


def _fingerprint(vtimezone: Timezone) -> tuple[object, ...]:
    """What a VTIMEZONE says, as a hashable value (cheaper than writing it out as text)."""
    return tuple(
        (sub.name, tuple(sorted((str(k), repr(v)) for k, v in sub.property_items(recursive=False))))
        for sub in vtimezone.walk()
    )


_DEFINED: dict[tuple[str, tuple[object, ...]], tzinfo | None] = {}


def _defined_zone(name: str, key: tuple[object, ...], vtimezone: Timezone) -> tzinfo | None:
    """The zone a VTIMEZONE defines, or None when it is broken.

    Made once per definition (``key``, its :func:`_fingerprint`): working out a zone's
    transitions costs more than reading the rest of a message, and every reply from one
    client carries the same VTIMEZONE.  At most 256 definitions are remembered.
    """
    if (name, key) in _DEFINED:
        return _DEFINED[(name, key)]
    try:
        custom: tzinfo | None = vtimezone.to_tz(lookup_tzid=False)
    except Exception:  # noqa: BLE001 - a broken VTIMEZONE: fall back to what its name says
        custom = None
    if len(_DEFINED) >= 256:
        _DEFINED.clear()
    _DEFINED[(name, key)] = custom
    return custom


def _iana(name: str) -> zoneinfo.ZoneInfo | None:
    if not name or name.startswith("/"):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def localize(value: Any, tzid: object, resolve: Callable[[str], tzinfo], floating: tzinfo) -> Any:
    """A property value with a definite zone: its TZID's, else ``floating`` if it has none.

    Date-times with a TZID get the resolved zone (their wall time is the one written);
    floating ones (RFC 5545 §3.3.5 form #1) get ``floating``; UTC ones, dates and durations
    stay as they are.  Tuples (an RDATE period, RFC 5545 §3.3.9) are localized part by part.
    """
    if isinstance(value, tuple):
        return tuple(localize(part, tzid, resolve, floating) for part in value)
    if not isinstance(value, datetime):
        return value  # a date (no time of day to zone) or a duration
    if tzid:
        return value.replace(tzinfo=resolve(str(tzid)))
    if value.tzinfo is None:
        return value.replace(tzinfo=floating)
    return value


def is_date(value: object) -> bool:
    """Whether a property value is a DATE (an all-day value), not a DATE-TIME."""
    return isinstance(value, date) and not isinstance(value, datetime)
