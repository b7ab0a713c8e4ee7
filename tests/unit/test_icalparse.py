"""The one iCalendar parser and TZID resolver (ptm_sync.core.ical.parse): one test per rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from ptm_sync.core.errors import BadCalendarData, UnreadableCalendar, Unusable
from ptm_sync.core.ical import busy, itip
from ptm_sync.core.ical.parse import decode_calendar, parse_calendar, zone_resolver
from tests.support.calendar_data import ics, vevent
from tests.support.cases import case_bytes

NY = ZoneInfo("America/New_York")


def event_of(data: str | bytes) -> object:
    return parse_calendar(data).walk("VEVENT")[0]


def text_of(data: str | bytes, name: str) -> str:
    return str(event_of(data).get(name))  # type: ignore[attr-defined]


# --- one parser, one error -------------------------------------------------------------------


def test_itip_busy_and_the_connectors_share_one_parser() -> None:
    assert itip.parse_calendar is parse_calendar
    assert busy.parse_calendar is parse_calendar
    assert busy.zone_resolver is zone_resolver


@pytest.mark.parametrize(
    "data",
    [b"", "   \r\n", b"hello", "BEGIN:VCARD\r\nFN:Jane\r\nEND:VCARD\r\n", b"BEGIN:VCALENDAR\r\n"],
    ids=["empty", "blank", "garbage", "vcard", "truncated"],
)
def test_what_cannot_be_parsed_is_both_unusable_and_bad_calendar_data(data: str | bytes) -> None:
    with pytest.raises(UnreadableCalendar) as raised:
        parse_calendar(data)
    # Inbound mail catches Unusable (quarantine), the sync catches BadCalendarData (skip).
    assert isinstance(raised.value, Unusable) and isinstance(raised.value, BadCalendarData)
    assert raised.value.reason == "broken-icalendar"
    assert raised.value.detail


# --- octets before text (RFC 5545 §3.1) ------------------------------------------------------

SUMMARY = "Réunion: Zoë et Jürgen — 10 €"


def folded_at(line: str, octet: int) -> bytes:
    """``line`` as UTF-8, folded after ``octet`` octets even inside a character."""
    raw = line.encode("utf-8")
    return raw[:octet] + b"\r\n " + raw[octet:]


@pytest.mark.parametrize("octet", range(9, len(f"SUMMARY:{SUMMARY}".encode())))
def test_a_fold_inside_a_utf8_character_is_undone_before_decoding(octet: int) -> None:
    calendar = ics(vevent("f", "DTSTART:20270310T100000Z", "SUMMARY:@@"))
    head, tail = calendar.encode().split(b"SUMMARY:@@")
    data = head + folded_at(f"SUMMARY:{SUMMARY}", octet) + tail
    assert text_of(data, "SUMMARY") == SUMMARY


@pytest.mark.parametrize("line_end", [b"\n", b"\r\r\n", b"\r"], ids=["LF", "CRCRLF", "CR"])
def test_line_ends_are_normalised_before_unfolding(line_end: bytes) -> None:
    data = ics(vevent("le", "DTSTART:20270310T100000Z", "SUMMARY:@@")).encode()
    data = data.replace(b"SUMMARY:@@", folded_at(f"SUMMARY:{SUMMARY}", 20))
    assert text_of(data.replace(b"\r\n", line_end), "SUMMARY") == SUMMARY


def test_one_bad_octet_spoils_only_its_own_characters() -> None:
    data = ics(
        vevent(
            "bad",
            "DTSTART:20270310T100000Z",
            "ATTENDEE;CN=Zoë Brontë:mailto:zoe@example.org",
            "DESCRIPTION:Café \udcff crème",
        )
    ).encode("utf-8", "surrogateescape")
    event = event_of(data)
    assert event["ATTENDEE"].params["CN"] == "Zoë Brontë"  # type: ignore[index]
    assert str(event["DESCRIPTION"]) == "Café \ufffd crème"  # type: ignore[index]


def test_a_line_without_any_utf8_is_read_as_windows_1252() -> None:
    """A client that wrote Latin-1 and declared nothing: that line, not the whole part."""
    data = ics(
        vevent("latin", "DTSTART:20270310T100000Z", "SUMMARY:Zoë", "LOCATION:Salle @@")
    ).encode()
    data = data.replace(b"Salle @@", "Salle Bâle".encode("cp1252"))
    assert (text_of(data, "SUMMARY"), text_of(data, "LOCATION")) == ("Zoë", "Salle Bâle")


@pytest.mark.parametrize(
    ("charset", "encoding", "summary"),
    [
        ("windows-1257", "windows-1257", "Jūratė Žemaitienė"),
        ("iso-8859-2", "iso-8859-2", "Łódź"),
        ("utf-16", "utf-16", "Jūratė Žemaitienė"),  # not ASCII-compatible: decoded whole
        ("UTF-8", "utf-8", "Jūratė Žemaitienė"),
        ("x-unknown", "utf-8", "Jūratė Žemaitienė"),  # an unknown name is ignored
    ],
)
def test_a_declared_charset_is_used(charset: str, encoding: str, summary: str) -> None:
    text = ics(vevent("cs", "DTSTART:20270310T100000Z", f"SUMMARY:{summary}"))
    assert decode_calendar(text.encode(encoding), charset) == text


def test_a_byte_order_mark_is_dropped() -> None:
    text = ics(vevent("bom", "DTSTART:20270310T100000Z"))
    assert decode_calendar(b"\xef\xbb\xbf" + text.encode()) == text


# --- a TZID that cannot apply (RFC 5545 §3.2.19, §3.3.5) --------------------------------------

AT_8PM_UTC = datetime(2027, 3, 1, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "tzid", ["Z", "UTC", "GMT", "Etc/UTC", "America/Los_Angeles", "Mars/Olympus", '"Asia/Tokyo"']
)
def test_a_utc_value_keeps_its_instant_whatever_its_tzid(tzid: str) -> None:
    event = event_of(
        ics(
            vevent(
                "z",
                f"DTSTART;TZID={tzid}:20270301T200000Z",
                f"EXDATE;TZID={tzid}:20270302T200000Z,20270303T200000Z",
                f"RDATE;TZID={tzid};VALUE=PERIOD:20270310T200000Z/PT1H",
            )
        )
    )
    assert event["DTSTART"].dt == AT_8PM_UTC  # type: ignore[index]
    assert "TZID" not in event["DTSTART"].params  # type: ignore[index]
    assert [d.dt for d in event["EXDATE"].dts] == [  # type: ignore[index]
        AT_8PM_UTC + timedelta(days=1),
        AT_8PM_UTC + timedelta(days=2),
    ]
    assert event["RDATE"].dts[0].dt == (  # type: ignore[index]
        AT_8PM_UTC + timedelta(days=9),
        timedelta(hours=1),
    )


def test_a_date_takes_no_zone() -> None:
    event = event_of(
        ics(vevent("d", "DTSTART;TZID=Asia/Tokyo;VALUE=DATE:20270316", "DTEND;VALUE=DATE:20270317"))
    )
    assert event["DTSTART"].dt == date(2027, 3, 16)  # type: ignore[index]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a local time keeps its zone
        ("DTSTART;TZID=America/New_York:20270301T150000", datetime(2027, 3, 1, 20, 0, tzinfo=UTC)),
        # a parameter value holding a colon does not hide the property value
        (
            'DTSTART;X-LABEL="a:b";TZID=America/New_York:20270301T150000',
            datetime(2027, 3, 1, 20, 0, tzinfo=UTC),
        ),
        ('DTSTART;X-LABEL="a:b";TZID=America/New_York:20270301T200000Z', AT_8PM_UTC),
    ],
)
def test_a_tzid_that_applies_is_kept(line: str, expected: datetime) -> None:
    assert event_of(ics(vevent("k", line)))["DTSTART"].dt == expected  # type: ignore[index]


def test_text_that_only_mentions_a_tzid_is_left_alone() -> None:
    line = "DESCRIPTION;LANGUAGE=en:TZID=Europe/Paris:20270301 is a date"
    assert text_of(ics(vevent("t", "DTSTART:20270301T100000Z", line)), "DESCRIPTION") == (
        "TZID=Europe/Paris:20270301 is a date"
    )


def test_recurrence_rules_lose_their_white_space() -> None:
    """Old Exchange (CDO) writes ``BYDAY=MO, TU``; RFC 5545 §3.3.10 allows no spaces."""
    rule = "RRULE:FREQ=DAILY;UNTIL=20270312T080000Z;BYDAY=MO, TU, WE,\r\n  TH, FR"
    event = event_of(ics(vevent("r", "DTSTART:20270301T080000Z", rule)))
    assert event["RRULE"]["BYDAY"] == ["MO", "TU", "WE", "TH", "FR"]  # type: ignore[index]


# --- one TZID resolver per calendar object ----------------------------------------------------

CUSTOM = """BEGIN:VTIMEZONE
TZID:Customized Time Zone
BEGIN:STANDARD
DTSTART:16010101T000000
TZOFFSETFROM:{offset}
TZOFFSETTO:{offset}
END:STANDARD
END:VTIMEZONE"""


def resolved(tzid: str, *blocks: str) -> object:
    calendar: Calendar = parse_calendar(ics(*blocks))
    return zone_resolver(calendar, NY)(tzid)


@pytest.mark.parametrize(
    ("tzid", "offset"),
    [
        ("Z", timedelta(0)),
        ("Europe/Berlin", timedelta(hours=1)),
        ("W. Europe Standard Time", timedelta(hours=1)),  # CLDR Windows → IANA
        ("/freeassociation.sourceforge.net/Tzfile/Asia/Tokyo", timedelta(hours=9)),
        ("FLE", timedelta(hours=-5)),  # nobody defines it: the school's zone
        ('"Europe/Berlin"', timedelta(hours=1)),
    ],
)
def test_tzids_resolve_without_a_vtimezone(tzid: str, offset: timedelta) -> None:
    zone = resolved(tzid)
    assert datetime(2027, 1, 15, 12, tzinfo=zone).utcoffset() == offset  # type: ignore[arg-type]


def test_a_vtimezone_in_the_object_wins_and_stays_in_its_object() -> None:
    first = resolved("Customized Time Zone", CUSTOM.format(offset="+0530"))
    second = resolved("Customized Time Zone", CUSTOM.format(offset="-0230"))
    noon = datetime(2027, 1, 15, 12)
    assert noon.replace(tzinfo=first).utcoffset() == timedelta(hours=5, minutes=30)  # type: ignore[arg-type]
    assert noon.replace(tzinfo=second).utcoffset() == -timedelta(hours=2, minutes=30)  # type: ignore[arg-type]


def test_the_android_case_keeps_its_utc_instants() -> None:
    event = event_of(case_bytes("tzid-z-on-utc-value.ics"))
    assert event["DTSTART"].dt == datetime(2027, 3, 1, 20, 0, tzinfo=UTC)  # type: ignore[index]
    exdate = event["EXDATE"].dts[0].dt  # type: ignore[index]
    assert exdate.astimezone(UTC) == datetime(2027, 3, 15, 20, 0, tzinfo=UTC)


def test_a_utc_value_in_a_zoned_list_keeps_its_instant_and_the_others_their_zone() -> None:
    """``EXDATE;TZID=America/New_York:20270302T200000Z,20270303T150000``: the ``Z`` fixes the
    first instant whatever the TZID says (RFC 5545 §3.3.5); the TZID still zones the second."""
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:m\r\n"
        "DTSTAMP:20270101T000000Z\r\nDTSTART;TZID=America/New_York:20270301T150000\r\n"
        "EXDATE;TZID=America/New_York:20270302T200000Z,20270303T150000\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    event = parse_calendar(text).walk("VEVENT")[0]
    found = event["EXDATE"] if isinstance(event["EXDATE"], list) else [event["EXDATE"]]
    instants = sorted(d.dt.astimezone(UTC) for prop in found for d in prop.dts)
    assert instants == [
        datetime(2027, 3, 2, 20, 0, tzinfo=UTC),
        datetime(2027, 3, 3, 20, 0, tzinfo=UTC),
    ]
