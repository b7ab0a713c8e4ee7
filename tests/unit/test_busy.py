"""Busy times from iCalendar text: one test per rule of ptm_sync.core.ical.busy."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ptm_sync.core.errors import BadCalendarData, PtmError
from ptm_sync.core.ical.busy import busy_times, event_uid
from ptm_sync.core.model import Busy
from tests.support.calendar_data import (
    SCENARIOS,
    SCHOOL_TZ,
    VTIMEZONE_BERLIN,
    VTIMEZONE_OUTLOOK_WEST_EUROPE,
    WINDOW,
    Scenario,
    ics,
    utc,
    vevent,
)
from tests.support.cases import case_bytes

MARCH = (utc("2027-03-01T00:00"), utc("2027-04-01T00:00"))


def spans(busy: list[Busy]) -> list[tuple[str, str]]:
    return [(b.start.strftime("%Y-%m-%dT%H:%M"), b.end.strftime("%Y-%m-%dT%H:%M")) for b in busy]


def busy_in_march(text: str, tz: ZoneInfo = SCHOOL_TZ, **kwargs: object) -> list[tuple[str, str]]:
    return spans(busy_times(text, *MARCH, tz, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_shared_scenarios_give_the_expected_busy_times(scenario: Scenario) -> None:
    busy = busy_times(scenario.ics, *WINDOW, SCHOOL_TZ)
    assert [(b.start, b.end, b.tentative) for b in busy] == scenario.expected_spans


# --- recurrence -------------------------------------------------------------------------


def test_rrule_expands_inside_the_window_only() -> None:
    text = ics(
        vevent("r", "DTSTART:20270220T100000Z", "DTEND:20270220T110000Z", "RRULE:FREQ=WEEKLY")
    )
    busy = busy_in_march(text)
    assert busy[0] == ("2027-03-06T10:00", "2027-03-06T11:00")
    assert busy[-1] == ("2027-03-27T10:00", "2027-03-27T11:00")
    assert len(busy) == 4


def test_exdate_removes_an_occurrence() -> None:
    text = ics(
        vevent(
            "x",
            "DTSTART:20270301T100000Z",
            "DTEND:20270301T110000Z",
            "RRULE:FREQ=DAILY;COUNT=3",
            "EXDATE:20270302T100000Z",
        )
    )
    assert busy_in_march(text) == [
        ("2027-03-01T10:00", "2027-03-01T11:00"),
        ("2027-03-03T10:00", "2027-03-03T11:00"),
    ]


def test_rdate_adds_occurrences_including_periods() -> None:
    text = ics(
        VTIMEZONE_BERLIN,
        vevent(
            "rd",
            "DTSTART;TZID=Europe/Berlin:20270301T100000",
            "DTEND;TZID=Europe/Berlin:20270301T110000",
            "RDATE;TZID=Europe/Berlin:20270305T100000",
            "RDATE;VALUE=PERIOD:20270306T120000Z/20270306T150000Z",
        ),
    )
    assert busy_in_march(text) == [
        ("2027-03-01T09:00", "2027-03-01T10:00"),
        ("2027-03-05T09:00", "2027-03-05T10:00"),
        ("2027-03-06T12:00", "2027-03-06T15:00"),
    ]


def test_override_moves_one_instance() -> None:
    text = ics(
        vevent(
            "m", "DTSTART:20270301T100000Z", "DTEND:20270301T110000Z", "RRULE:FREQ=DAILY;COUNT=2"
        ),
        vevent(
            "m",
            "RECURRENCE-ID:20270302T100000Z",
            "DTSTART:20270302T140000Z",
            "DTEND:20270302T143000Z",
        ),
    )
    assert busy_in_march(text) == [
        ("2027-03-01T10:00", "2027-03-01T11:00"),
        ("2027-03-02T14:00", "2027-03-02T14:30"),
    ]


def test_override_moved_into_the_window_is_busy() -> None:
    text = ics(
        vevent(
            "in", "DTSTART:20270222T100000Z", "DTEND:20270222T110000Z", "RRULE:FREQ=WEEKLY;COUNT=1"
        ),
        vevent(
            "in",
            "RECURRENCE-ID:20270222T100000Z",
            "DTSTART:20270302T100000Z",
            "DTEND:20270302T110000Z",
        ),
    )
    assert busy_in_march(text) == [("2027-03-02T10:00", "2027-03-02T11:00")]


def test_override_moved_out_of_the_window_is_free() -> None:
    text = ics(
        vevent(
            "out", "DTSTART:20270302T100000Z", "DTEND:20270302T110000Z", "RRULE:FREQ=WEEKLY;COUNT=2"
        ),
        vevent(
            "out",
            "RECURRENCE-ID:20270302T100000Z",
            "DTSTART:20270420T100000Z",
            "DTEND:20270420T110000Z",
        ),
    )
    assert busy_in_march(text) == [("2027-03-09T10:00", "2027-03-09T11:00")]


def test_infinite_rrule_with_until_in_utc_and_local_start() -> None:
    text = ics(
        VTIMEZONE_BERLIN,
        vevent(
            "u",
            "DTSTART;TZID=Europe/Berlin:20270322T160000",
            "DTEND;TZID=Europe/Berlin:20270322T170000",
            "RRULE:FREQ=WEEKLY;UNTIL=20270329T235959Z",
        ),
    )
    assert busy_in_march(text) == [
        ("2027-03-22T15:00", "2027-03-22T16:00"),
        ("2027-03-29T14:00", "2027-03-29T15:00"),
    ]


@pytest.mark.parametrize(
    ("zone", "first", "rule", "expected_utc_hours"),
    [
        # Berlin: CET (+1) → CEST (+2) on 2027-03-28
        ("Europe/Berlin", "20270315T160000", "COUNT=4", [15, 15, 14, 14]),
        # Berlin: CEST → CET on 2027-10-31
        ("Europe/Berlin", "20271018T160000", "COUNT=4", [14, 14, 15, 15]),
        # New York: EST (-5) → EDT (-4) on 2027-03-14
        ("America/New_York", "20270301T160000", "COUNT=4", [21, 21, 20, 20]),
    ],
)
def test_weekly_event_keeps_its_wall_clock_time_across_dst(
    zone: str, first: str, rule: str, expected_utc_hours: list[int]
) -> None:
    text = ics(
        vevent(
            "dst",
            f"DTSTART;TZID={zone}:{first}",
            f"DTEND;TZID={zone}:{first[:9]}170000",
            f"RRULE:FREQ=WEEKLY;{rule}",
        )
    )
    busy = busy_times(text, utc("2027-01-01T00:00"), utc("2028-01-01T00:00"), SCHOOL_TZ)
    assert [b.start.hour for b in busy] == expected_utc_hours
    assert all(b.start.astimezone(ZoneInfo(zone)).hour == 16 for b in busy)


# --- transparency and status --------------------------------------------------------------


def test_transparent_event_is_free() -> None:
    text = ics(
        vevent("t", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z", "TRANSP:TRANSPARENT")
    )
    assert busy_in_march(text) == []


def test_opaque_event_is_busy() -> None:
    text = ics(vevent("o", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z", "TRANSP:OPAQUE"))
    assert busy_in_march(text) == [("2027-03-10T10:00", "2027-03-10T11:00")]


def test_cancelled_event_is_free() -> None:
    text = ics(
        vevent("c", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z", "STATUS:CANCELLED")
    )
    assert busy_in_march(text) == []


def test_cancelled_override_frees_that_instance_only() -> None:
    text = ics(
        vevent(
            "co", "DTSTART:20270301T100000Z", "DTEND:20270301T110000Z", "RRULE:FREQ=DAILY;COUNT=3"
        ),
        vevent(
            "co",
            "RECURRENCE-ID:20270302T100000Z",
            "DTSTART:20270302T100000Z",
            "DTEND:20270302T110000Z",
            "STATUS:CANCELLED",
        ),
    )
    assert busy_in_march(text) == [
        ("2027-03-01T10:00", "2027-03-01T11:00"),
        ("2027-03-03T10:00", "2027-03-03T11:00"),
    ]


def test_tentative_event_is_busy_and_marked_tentative() -> None:
    text = ics(
        vevent("tt", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z", "STATUS:TENTATIVE")
    )
    assert busy_times(text, *MARCH, SCHOOL_TZ) == [
        Busy(utc("2027-03-10T10:00"), utc("2027-03-10T11:00"), tentative=True)
    ]


def test_confirmed_event_is_busy_and_not_tentative() -> None:
    text = ics(
        vevent("cf", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z", "STATUS:CONFIRMED")
    )
    assert [b.tentative for b in busy_times(text, *MARCH, SCHOOL_TZ)] == [False]


# --- all-day events -----------------------------------------------------------------------


def test_all_day_event_blocks_the_whole_local_day() -> None:
    text = ics(vevent("ad", "DTSTART;VALUE=DATE:20270310", "DTEND;VALUE=DATE:20270311"))
    assert busy_in_march(text) == [("2027-03-09T23:00", "2027-03-10T23:00")]
    assert busy_in_march(text, ZoneInfo("America/New_York")) == [
        ("2027-03-10T05:00", "2027-03-11T05:00")
    ]


def test_multi_day_all_day_event_ends_before_its_exclusive_dtend() -> None:
    text = ics(vevent("md", "DTSTART;VALUE=DATE:20270310", "DTEND;VALUE=DATE:20270313"))
    assert busy_in_march(text) == [("2027-03-09T23:00", "2027-03-12T23:00")]


def test_all_day_event_without_dtend_lasts_one_day() -> None:
    text = ics(vevent("nd", "DTSTART;VALUE=DATE:20270310"))
    assert busy_in_march(text) == [("2027-03-09T23:00", "2027-03-10T23:00")]


def test_all_day_event_on_the_dst_day_is_23_hours_long() -> None:
    text = ics(vevent("d23", "DTSTART;VALUE=DATE:20270328", "DTEND;VALUE=DATE:20270329"))
    assert busy_in_march(text) == [("2027-03-27T23:00", "2027-03-28T22:00")]


def test_transparent_all_day_event_is_free() -> None:
    text = ics(
        vevent(
            "tad", "DTSTART;VALUE=DATE:20270310", "DTEND;VALUE=DATE:20270311", "TRANSP:TRANSPARENT"
        )
    )
    assert busy_in_march(text) == []


def test_recurring_all_day_event_blocks_each_local_day() -> None:
    text = ics(vevent("rad", "DTSTART;VALUE=DATE:20270301", "RRULE:FREQ=WEEKLY;COUNT=2"))
    assert busy_in_march(text) == [
        ("2027-03-01T00:00", "2027-03-01T23:00"),  # clipped to the window
        ("2027-03-07T23:00", "2027-03-08T23:00"),
    ]


# --- time zones ---------------------------------------------------------------------------


def test_floating_time_is_read_in_the_school_zone() -> None:
    text = ics(vevent("f", "DTSTART:20270310T100000", "DTEND:20270310T110000"))
    assert busy_in_march(text) == [("2027-03-10T09:00", "2027-03-10T10:00")]
    assert busy_in_march(text, ZoneInfo("Asia/Tokyo")) == [("2027-03-10T01:00", "2027-03-10T02:00")]


def test_x_wr_timezone_names_the_zone_of_floating_times() -> None:
    # Google and Apple exports: the calendar's zone in X-WR-TIMEZONE, times left floating.
    text = ics(vevent("g", "DTSTART:20270310T100000", "DTEND:20270310T110000")).replace(
        "PRODID:-//ptm-sync tests//EN", "PRODID:-//ptm-sync tests//EN\r\nX-WR-TIMEZONE:Asia/Tokyo"
    )
    assert busy_in_march(text) == [("2027-03-10T01:00", "2027-03-10T02:00")]


def test_floating_recurring_event_keeps_local_time_across_dst() -> None:
    text = ics(
        vevent(
            "fr", "DTSTART:20270322T100000", "DTEND:20270322T110000", "RRULE:FREQ=WEEKLY;COUNT=2"
        )
    )
    assert busy_in_march(text) == [
        ("2027-03-22T09:00", "2027-03-22T10:00"),
        ("2027-03-29T08:00", "2027-03-29T09:00"),
    ]


def test_event_in_another_iana_zone_is_converted() -> None:
    text = ics(
        vevent(
            "ny",
            "DTSTART;TZID=America/New_York:20270310T090000",
            "DTEND;TZID=America/New_York:20270310T100000",
        )
    )
    assert busy_in_march(text) == [("2027-03-10T14:00", "2027-03-10T15:00")]


@pytest.mark.parametrize(
    ("tzid", "expected"),
    [
        ("W. Europe Standard Time", ("2027-03-16T08:00", "2027-03-16T09:00")),
        ("Eastern Standard Time", ("2027-03-16T13:00", "2027-03-16T14:00")),
        ("FLE Standard Time", ("2027-03-16T07:00", "2027-03-16T08:00")),
    ],
)
def test_windows_zone_name_without_vtimezone(tzid: str, expected: tuple[str, str]) -> None:
    text = ics(
        vevent(
            "w", f'DTSTART;TZID="{tzid}":20270316T090000', f'DTEND;TZID="{tzid}":20270316T100000'
        )
    )
    assert busy_in_march(text) == [expected]


def test_windows_zone_name_with_outlook_vtimezone() -> None:
    text = ics(
        VTIMEZONE_OUTLOOK_WEST_EUROPE,
        vevent(
            "wv",
            "DTSTART;TZID=W. Europe Standard Time:20270322T160000",
            "DTEND;TZID=W. Europe Standard Time:20270322T170000",
            "RRULE:FREQ=WEEKLY;COUNT=2",
        ),
    )
    assert busy_in_march(text) == [
        ("2027-03-22T15:00", "2027-03-22T16:00"),
        ("2027-03-29T14:00", "2027-03-29T15:00"),
    ]


def custom_zone(offset: str) -> str:
    return "\n".join(
        [
            "BEGIN:VTIMEZONE",
            "TZID:Customized Time Zone",
            "BEGIN:STANDARD",
            "DTSTART:16010101T000000",
            f"TZOFFSETFROM:{offset}",
            f"TZOFFSETTO:{offset}",
            "END:STANDARD",
            "END:VTIMEZONE",
        ]
    )


def custom_zone_event(offset: str) -> str:
    return ics(
        custom_zone(offset),
        vevent(
            "cz",
            "DTSTART;TZID=Customized Time Zone:20270310T120000",
            "DTEND;TZID=Customized Time Zone:20270310T130000",
        ),
    )


def test_custom_vtimezone_is_honoured() -> None:
    assert busy_in_march(custom_zone_event("+0530")) == [("2027-03-10T06:30", "2027-03-10T07:30")]


def test_same_custom_tzid_with_different_definitions_in_two_objects() -> None:
    """icalendar caches the first VTIMEZONE per TZID process-wide; each object keeps its own."""
    assert busy_in_march(custom_zone_event("+0300")) == [("2027-03-10T09:00", "2027-03-10T10:00")]
    assert busy_in_march(custom_zone_event("-0200")) == [("2027-03-10T14:00", "2027-03-10T15:00")]


def test_globally_unique_tzid_uses_its_iana_suffix() -> None:
    tzid = "/freeassociation.sourceforge.net/Tzfile/America/New_York"
    text = ics(
        vevent("g", f"DTSTART;TZID={tzid}:20270310T090000", f"DTEND;TZID={tzid}:20270310T100000")
    )
    assert busy_in_march(text) == [("2027-03-10T14:00", "2027-03-10T15:00")]


def test_unknown_tzid_without_vtimezone_is_read_in_the_school_zone() -> None:
    text = ics(
        vevent(
            "uk",
            "DTSTART;TZID=Mars/Olympus:20270310T100000",
            "DTEND;TZID=Mars/Olympus:20270310T110000",
        )
    )
    assert busy_in_march(text) == [("2027-03-10T09:00", "2027-03-10T10:00")]


# --- a TZID that cannot apply (RFC 5545 §3.2.19, §3.3.5) -------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def evening(day: int) -> tuple[datetime, datetime]:
    """The school's window ``2027-03-<day>T15:00/19:00`` in New York time."""
    return datetime(2027, 3, day, 15, tzinfo=NEW_YORK), datetime(2027, 3, day, 19, tzinfo=NEW_YORK)


def test_android_series_in_utc_with_tzid_z_is_busy_at_its_utc_hour() -> None:
    """shared/cases/tzid-z-on-utc-value.ics: ``DTSTART;TZID=Z:20270301T200000Z`` daily."""
    busy = busy_times(case_bytes("tzid-z-on-utc-value.ics"), *evening(16), NEW_YORK)
    assert [(b.start.astimezone(NEW_YORK), b.end.astimezone(NEW_YORK)) for b in busy] == [
        (datetime(2027, 3, 16, 16, tzinfo=NEW_YORK), datetime(2027, 3, 16, 17, tzinfo=NEW_YORK))
    ]


def test_android_exdate_with_tzid_utc_removes_its_day() -> None:
    assert busy_times(case_bytes("tzid-z-on-utc-value.ics"), *evening(15), NEW_YORK) == []


@pytest.mark.parametrize("tzid", ["Z", "UTC", "GMT", "America/Los_Angeles", "Mars/Olympus"])
def test_a_utc_value_is_busy_at_its_instant_whatever_its_tzid(tzid: str) -> None:
    text = ics(
        vevent(
            "u",
            f"DTSTART;TZID={tzid}:20270316T200000Z",
            f"DTEND;TZID={tzid}:20270316T210000Z",
        )
    )
    assert spans(busy_times(text, *evening(16), NEW_YORK)) == [
        ("2027-03-16T20:00", "2027-03-16T21:00")
    ]


def test_an_all_day_event_with_a_tzid_blocks_the_schools_day() -> None:
    """A DATE has no time of day (RFC 5545 §3.3.4): Tokyo's midnight is not its start."""
    text = ics(vevent("d", "DTSTART;TZID=Asia/Tokyo;VALUE=DATE:20270316"))
    assert spans(busy_times(text, *evening(16), NEW_YORK)) == [
        ("2027-03-16T19:00", "2027-03-16T23:00")  # the whole window of that day
    ]


# --- what counts --------------------------------------------------------------------------


def test_only_vevents_are_busy() -> None:
    text = ics(
        "\n".join(
            [
                "BEGIN:VTODO",
                "UID:todo",
                "DTSTAMP:20270101T000000Z",
                "DTSTART:20270310T100000Z",
                "DUE:20270310T110000Z",
                "END:VTODO",
            ]
        ),
        "\n".join(
            [
                "BEGIN:VJOURNAL",
                "UID:journal",
                "DTSTAMP:20270101T000000Z",
                "DTSTART:20270310T100000Z",
                "END:VJOURNAL",
            ]
        ),
    )
    assert busy_in_march(text) == []


def test_duration_instead_of_dtend() -> None:
    text = ics(vevent("du", "DTSTART:20270310T100000Z", "DURATION:PT45M"))
    assert busy_in_march(text) == [("2027-03-10T10:00", "2027-03-10T10:45")]


@pytest.mark.parametrize(
    "lines",
    [
        ("DTSTART:20270310T100000Z",),
        ("DTSTART:20270310T100000Z", "DTEND:20270310T100000Z"),
        ("DTSTART:20270310T100000Z", "DURATION:PT0S"),
    ],
    ids=["no end", "end equals start", "zero duration"],
)
def test_zero_length_event_is_not_busy(lines: tuple[str, ...]) -> None:
    assert busy_in_march(ics(vevent("z", *lines))) == []


def test_events_whose_uid_is_ignored_are_skipped() -> None:
    text = ics(
        vevent("ours", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z"),
        vevent("theirs", "DTSTART:20270310T120000Z", "DTEND:20270310T130000Z"),
    )
    assert busy_in_march(text, ignore_uids={"ours"}) == [("2027-03-10T12:00", "2027-03-10T13:00")]


def test_busy_times_are_clipped_to_the_window() -> None:
    text = ics(vevent("long", "DTSTART:20270220T100000Z", "DTEND:20270405T110000Z"))
    assert busy_in_march(text) == [("2027-03-01T00:00", "2027-04-01T00:00")]


def test_event_ending_where_the_window_starts_is_outside() -> None:
    text = ics(vevent("edge", "DTSTART:20270228T230000Z", "DTEND:20270301T000000Z"))
    assert busy_in_march(text) == []


def test_results_are_sorted_utc_datetimes() -> None:
    text = ics(
        vevent(
            "b", "DTSTART;TZID=Asia/Tokyo:20270310T100000", "DTEND;TZID=Asia/Tokyo:20270310T110000"
        ),
        vevent("a", "DTSTART:20270305T100000Z", "DTEND:20270305T110000Z"),
    )
    busy = busy_times(text, *MARCH, SCHOOL_TZ)
    assert [b.start for b in busy] == sorted(b.start for b in busy)
    assert all(b.start.tzinfo is UTC and b.end.tzinfo is UTC for b in busy)


def test_bytes_are_accepted() -> None:
    text = ics(vevent("by", "DTSTART:20270310T100000Z", "DTEND:20270310T110000Z"))
    assert spans(busy_times(text.encode(), *MARCH, SCHOOL_TZ)) == [
        ("2027-03-10T10:00", "2027-03-10T11:00")
    ]


def test_window_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        busy_times(ics(), datetime(2027, 3, 1), MARCH[1], SCHOOL_TZ)


# --- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "this is not iCalendar",
        "BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
        ics(vevent("bad-date", "DTSTART:2027031X", "DTEND:20270310T110000Z")),
        ics(vevent("bad-rule", "DTSTART:20270310T100000Z", "RRULE:FREQ=SOMETIMES")),
        b"\xff\xfe not utf-8",
    ],
    ids=["empty", "garbage", "no VCALENDAR", "bad date", "bad RRULE", "not UTF-8"],
)
def test_malformed_input_raises_bad_calendar_data(text: str | bytes) -> None:
    with pytest.raises(BadCalendarData) as caught:
        busy_times(text, *MARCH, SCHOOL_TZ)
    assert isinstance(caught.value, PtmError)
    assert str(caught.value)


def test_event_without_dtstart_raises_bad_calendar_data() -> None:
    with pytest.raises(BadCalendarData):
        busy_times(ics(vevent("nostart", "SUMMARY:no start")), *MARCH, SCHOOL_TZ)


# --- event_uid ----------------------------------------------------------------------------


def test_event_uid_is_the_uid_of_the_resource() -> None:
    assert event_uid(
        ics(VTIMEZONE_BERLIN, vevent("the-uid@school", "DTSTART:20270310T100000Z"))
    ) == ("the-uid@school")


def test_event_uid_without_uid_raises_bad_calendar_data() -> None:
    with pytest.raises(BadCalendarData, match="UID"):
        event_uid(ics(VTIMEZONE_BERLIN))


# --- the teacher's own answer (DESIGN §5, issue 14) ---------------------------------------

TEACHER = "ada@lincoln.example.org"


def invitation(partstat: str | None, *extra: str, attendee: str = TEACHER) -> str:
    """An invitation from someone else, as a scheduling server stores it in the teacher's
    calendar (RFC 6638 §3.2: the organizer's event, the owner one of its attendees)."""
    param = f";PARTSTAT={partstat}" if partstat else ""
    return ics(
        vevent(
            "inv",
            "DTSTART:20270302T150000Z",
            "DTEND:20270302T160000Z",
            "ORGANIZER;CN=Head:mailto:head@lincoln.example.org",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:head@lincoln.example.org",
            f"ATTENDEE;CN=Ada;ROLE=REQ-PARTICIPANT{param};SCHEDULE-STATUS=1.2:mailto:{attendee}",
            *extra,
        )
    )


@pytest.mark.parametrize(
    ("partstat", "expected"),
    [
        ("DECLINED", []),
        ("NEEDS-ACTION", [Busy(utc("2027-03-02T15:00"), utc("2027-03-02T16:00"), True)]),
        (None, [Busy(utc("2027-03-02T15:00"), utc("2027-03-02T16:00"), True)]),
        ("TENTATIVE", [Busy(utc("2027-03-02T15:00"), utc("2027-03-02T16:00"), True)]),
        ("ACCEPTED", [Busy(utc("2027-03-02T15:00"), utc("2027-03-02T16:00"), False)]),
    ],
)
def test_the_teachers_answer_to_an_invitation_decides_whether_it_blocks(
    partstat: str | None, expected: list[Busy]
) -> None:
    assert busy_times(invitation(partstat), *MARCH, SCHOOL_TZ, owner=[TEACHER]) == expected


def test_the_teacher_is_known_by_any_of_their_addresses_in_any_case() -> None:
    text = invitation("DECLINED", attendee="A.Lovelace@Staff.Lincoln.example.org")
    assert busy_times(text, *MARCH, SCHOOL_TZ, owner=[TEACHER]) != []  # not known as Ada
    owner = [TEACHER, "mailto:a.lovelace@staff.lincoln.example.org"]
    assert busy_times(text, *MARCH, SCHOOL_TZ, owner=owner) == []


def test_another_attendees_decline_does_not_free_the_teacher() -> None:
    text = invitation("ACCEPTED", attendee=TEACHER).replace(
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:head", "ATTENDEE;PARTSTAT=DECLINED:mailto:head"
    )
    assert len(busy_times(text, *MARCH, SCHOOL_TZ, owner=[TEACHER])) == 1


def test_one_declined_occurrence_of_a_series_is_free_alone() -> None:
    master = vevent(
        "series",
        "DTSTART:20270302T150000Z",
        "DTEND:20270302T160000Z",
        "RRULE:FREQ=DAILY;COUNT=3",
        "ORGANIZER:mailto:head@lincoln.example.org",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{TEACHER}",
    )
    declined = vevent(
        "series",
        "RECURRENCE-ID:20270303T150000Z",
        "DTSTART:20270303T150000Z",
        "DTEND:20270303T160000Z",
        "ORGANIZER:mailto:head@lincoln.example.org",
        f"ATTENDEE;PARTSTAT=DECLINED:mailto:{TEACHER}",
    )
    busy = busy_in_march(ics(master, declined), owner=[TEACHER])
    assert busy == [
        ("2027-03-02T15:00", "2027-03-02T16:00"),
        ("2027-03-04T15:00", "2027-03-04T16:00"),
    ]
    assert len(busy_in_march(ics(master, declined))) == 3  # without the owner: all busy


def test_a_utc_value_in_a_zoned_exdate_list_keeps_its_utc_instant() -> None:
    """EXDATE;TZID=…:…Z,… mixes a UTC-form value with a zoned one: the Z decides for the
    first (RFC 5545 §3.3.5), the TZID for the second; both occurrences are excluded."""
    text = ics(
        vevent(
            "mixed",
            "DTSTART;TZID=America/New_York:20270301T150000",
            "DTEND;TZID=America/New_York:20270301T160000",
            "RRULE:FREQ=DAILY;COUNT=4",
            "EXDATE;TZID=America/New_York:20270302T200000Z,20270303T150000",
        )
    )
    assert busy_in_march(text) == [
        ("2027-03-01T20:00", "2027-03-01T21:00"),
        ("2027-03-04T20:00", "2027-03-04T21:00"),
    ]
