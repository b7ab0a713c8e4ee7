"""The event we write into a teacher's CalDAV calendar, free-busy answers we read, and the
quick look for declined invitations."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from icalendar import Calendar, Event

from connectors.base import Attendee, FreeBusy, MeetingEvent
from connectors.ical import declines, meeting_matches, meeting_to_ical, parse_free_busy
from ptm_sync.core.errors import BadCalendarData
from ptm_sync.core.ical.busy import busy_times
from ptm_sync.core.model import Busy, Interval
from tests.support.calendar_data import (
    DECLINED_BY_ANOTHER,
    DECLINED_INVITATION,
    SCENARIOS,
    SCHOOL_TZ,
    SERIES_ONE_DECLINED,
    UNANSWERED_INVITATION,
    Scenario,
    ics,
    utc,
)

STAMP = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)

MEETING = MeetingEvent(
    uid="m-42@ptm.school.test",
    start=datetime(2027, 4, 10, 13, 0, tzinfo=UTC),
    end=datetime(2027, 4, 10, 13, 15, tzinfo=UTC),
    summary="Conference: Ann (Mrs Smith)",
    description="Video: https://meet.school.test/abc",
    location="https://meet.school.test/abc",
    video_url="https://meet.school.test/abc",
    sequence=2,
    status="CONFIRMED",
    private=True,
    organizer="conferences@school.test",
    attendees=(Attendee("parent@family.test", "Mrs Smith"), Attendee("dad@family.test")),
)


def written(event: MeetingEvent = MEETING) -> Event:
    calendar = Calendar.from_ical(meeting_to_ical(event, SCHOOL_TZ, stamp=STAMP).to_ical())
    (vevent,) = calendar.events
    return vevent


def test_times_are_written_in_the_school_zone_with_its_vtimezone() -> None:
    calendar = meeting_to_ical(MEETING, SCHOOL_TZ, stamp=STAMP)
    event = written()
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.start == datetime(2027, 4, 10, 15, 0, tzinfo=SCHOOL_TZ)
    assert event.end == datetime(2027, 4, 10, 15, 15, tzinfo=SCHOOL_TZ)
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/Berlin"]


def test_required_and_descriptive_properties() -> None:
    event = written()
    assert event.uid == MEETING.uid
    assert event.stamp == STAMP
    assert event["SUMMARY"] == MEETING.summary
    assert event["DESCRIPTION"] == MEETING.description
    assert event["LOCATION"] == MEETING.location
    assert event["SEQUENCE"] == 2
    assert event["STATUS"] == "CONFIRMED"


def test_video_link_is_url_and_rfc7986_conference() -> None:
    event = written()
    assert event["URL"] == MEETING.video_url
    conference = event["CONFERENCE"]
    assert str(conference) == MEETING.video_url
    assert conference.params["VALUE"] == "URI"
    assert conference.params["FEATURE"] == "VIDEO"


def test_without_video_there_is_no_url_or_conference() -> None:
    event = written(replace(MEETING, video_url=""))
    assert "URL" not in event and "CONFERENCE" not in event


def test_private_meeting_is_class_private_and_a_public_one_has_no_class() -> None:
    assert written()["CLASS"] == "PRIVATE"
    assert "CLASS" not in written(replace(MEETING, private=False))


def test_organizer_and_attendees_never_trigger_server_scheduling() -> None:
    event = written()
    assert str(event["ORGANIZER"]) == "mailto:conferences@school.test"
    assert event["ORGANIZER"].params["SCHEDULE-AGENT"] == "CLIENT"
    assert [str(a) for a in event.attendees] == [
        "mailto:parent@family.test",
        "mailto:dad@family.test",
    ]
    assert all(a.params["SCHEDULE-AGENT"] == "CLIENT" for a in event.attendees)
    assert event.attendees[0].params["CN"] == "Mrs Smith"


def test_without_organizer_or_attendees_none_are_written() -> None:
    event = written(replace(MEETING, organizer="", attendees=()))
    assert "ORGANIZER" not in event and "ATTENDEE" not in event


def test_tentative_status_is_written() -> None:
    assert written(replace(MEETING, status="TENTATIVE"))["STATUS"] == "TENTATIVE"


def test_the_same_meeting_gives_the_same_bytes() -> None:
    first = meeting_to_ical(MEETING, SCHOOL_TZ, stamp=STAMP).to_ical()
    assert meeting_to_ical(MEETING, SCHOOL_TZ, stamp=STAMP).to_ical() == first


def test_the_written_event_is_busy_for_exactly_the_meeting() -> None:
    text = meeting_to_ical(MEETING, SCHOOL_TZ, stamp=STAMP).to_ical()
    assert busy_times(text, utc("2027-04-10T00:00"), utc("2027-04-11T00:00"), SCHOOL_TZ) == [
        Busy(MEETING.start, MEETING.end)
    ]


# --- meeting_matches ----------------------------------------------------------------------


def test_a_stored_copy_with_another_dtstamp_matches() -> None:
    stored = meeting_to_ical(MEETING, SCHOOL_TZ, stamp=datetime(2026, 1, 1, tzinfo=UTC)).to_ical()
    assert meeting_matches(stored, MEETING, SCHOOL_TZ)


def test_a_copy_the_server_reserialized_in_utc_matches() -> None:
    calendar = meeting_to_ical(MEETING, SCHOOL_TZ, stamp=STAMP)
    event = calendar.events[0]
    event.start, event.end = MEETING.start, MEETING.end  # same instants, written as UTC
    assert meeting_matches(calendar.to_ical(), MEETING, SCHOOL_TZ)


@pytest.mark.parametrize(
    "change",
    [
        {
            "start": datetime(2027, 4, 10, 14, 0, tzinfo=UTC),
            "end": datetime(2027, 4, 10, 14, 15, tzinfo=UTC),
        },
        {"summary": "Conference: Bob"},
        {"sequence": 3},
        {"status": "CANCELLED"},
        {"video_url": "https://meet.school.test/other"},
        {"attendees": (Attendee("parent@family.test"),)},
        {"private": False},
    ],
    ids=["time", "summary", "sequence", "status", "video", "attendees", "class"],
)
def test_a_stored_copy_that_differs_does_not_match(change: dict[str, object]) -> None:
    stored = meeting_to_ical(MEETING, SCHOOL_TZ, stamp=STAMP).to_ical()
    assert not meeting_matches(stored, replace(MEETING, **change), SCHOOL_TZ)  # type: ignore[arg-type]


def test_an_object_with_another_uid_does_not_match() -> None:
    stored = meeting_to_ical(replace(MEETING, uid="other"), SCHOOL_TZ, stamp=STAMP).to_ical()
    assert not meeting_matches(stored, MEETING, SCHOOL_TZ)


def test_an_unreadable_stored_object_raises_bad_calendar_data() -> None:
    with pytest.raises(BadCalendarData):
        meeting_matches("garbage", MEETING, SCHOOL_TZ)


# --- parse_free_busy ----------------------------------------------------------------------


def freebusy(*lines: str, start: str = "20270301T000000Z", end: str = "20270401T000000Z") -> str:
    return ics(
        "\n".join(
            [
                "BEGIN:VFREEBUSY",
                "DTSTAMP:20270101T000000Z",
                f"DTSTART:{start}",
                f"DTEND:{end}",
                *lines,
                "END:VFREEBUSY",
            ]
        )
    )


MARCH = (utc("2027-03-01T00:00"), utc("2027-04-01T00:00"))


def test_busy_periods_are_read_in_utc_and_sorted() -> None:
    text = freebusy(
        "FREEBUSY;FBTYPE=BUSY:20270316T150000Z/20270316T160000Z,20270315T150000Z/PT1H",
        "FREEBUSY:20270301T090000Z/20270301T093000Z",
    )
    assert parse_free_busy(text, *MARCH) == FreeBusy(
        (
            Busy(utc("2027-03-01T09:00"), utc("2027-03-01T09:30")),
            Busy(utc("2027-03-15T15:00"), utc("2027-03-15T16:00")),
            Busy(utc("2027-03-16T15:00"), utc("2027-03-16T16:00")),
        )
    )


def test_fbtypes_tentative_unavailable_and_free() -> None:
    text = freebusy(
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20270310T100000Z/PT1H",
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20270311T100000Z/PT1H",
        "FREEBUSY;FBTYPE=FREE:20270312T100000Z/PT1H",
    )
    assert parse_free_busy(text, *MARCH).busy == (
        Busy(utc("2027-03-10T10:00"), utc("2027-03-10T11:00"), tentative=True),
        Busy(utc("2027-03-11T10:00"), utc("2027-03-11T11:00")),
    )


def test_periods_are_clipped_to_the_window() -> None:
    text = freebusy("FREEBUSY:20270228T220000Z/20270301T020000Z", "FREEBUSY:20270401T000000Z/PT1H")
    assert parse_free_busy(text, *MARCH).busy == (
        Busy(utc("2027-03-01T00:00"), utc("2027-03-01T02:00")),
    )


def test_an_answer_without_periods_is_all_free() -> None:
    assert parse_free_busy(freebusy(), *MARCH) == FreeBusy()


def test_a_malformed_answer_raises_bad_calendar_data() -> None:
    with pytest.raises(BadCalendarData):
        parse_free_busy("<html>oops</html>", *MARCH)


@pytest.mark.parametrize(
    "answer",
    [ics(), "", ics("BEGIN:VEVENT\nUID:x\nDTSTART:20270310T100000Z\nEND:VEVENT")],
    ids=["empty VCALENDAR", "empty body", "events, no VFREEBUSY"],
)
def test_an_answer_without_a_vfreebusy_is_no_data_never_free(answer: str) -> None:
    with pytest.raises(BadCalendarData):
        parse_free_busy(answer, *MARCH)


def test_time_the_answer_does_not_cover_is_unknown() -> None:
    """A server that answers for less than the range asked (a free/busy view limited to some
    days ahead) leaves the rest unknown: it offers no slot."""
    text = freebusy(
        "FREEBUSY:20270310T100000Z/PT1H", start="20270305T000000Z", end="20270320T000000Z"
    )
    found = parse_free_busy(text, *MARCH)
    assert found.busy == (Busy(utc("2027-03-10T10:00"), utc("2027-03-10T11:00")),)
    assert found.unknown == (
        Interval(utc("2027-03-01T00:00"), utc("2027-03-05T00:00")),
        Interval(utc("2027-03-20T00:00"), utc("2027-04-01T00:00")),
    )


def test_an_answer_without_dtstart_and_dtend_covers_the_range() -> None:
    text = ics(
        "BEGIN:VFREEBUSY\nDTSTAMP:20270101T000000Z\nFREEBUSY:20270310T100000Z/PT1H\nEND:VFREEBUSY"
    )
    assert parse_free_busy(text, *MARCH) == FreeBusy(
        (Busy(utc("2027-03-10T10:00"), utc("2027-03-10T11:00")),)
    )


# --- declines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario",
    [DECLINED_INVITATION, SERIES_ONE_DECLINED, DECLINED_BY_ANOTHER],
    ids=lambda scenario: scenario.name,
)
def test_an_object_with_a_declined_attendee_is_seen(scenario: Scenario) -> None:
    assert declines(scenario.ics)


def test_a_declined_partstat_folded_in_two_is_seen() -> None:
    assert "PARTSTAT=DE\r\n CLINED" in DECLINED_INVITATION.ics  # where sabre's fold falls
    assert declines(DECLINED_INVITATION.ics)


@pytest.mark.parametrize(
    "text",
    [
        UNANSWERED_INVITATION.ics,
        *(scenario.ics for scenario in SCENARIOS),
        ics("BEGIN:VEVENT\nUID:x\nSUMMARY:DECLINED by the head\nEND:VEVENT"),
        ics("BEGIN:VEVENT\nUID:x\nATTENDEE;PARTSTAT=ACCEPTED:mailto:declined@x.test\nEND:VEVENT"),
    ],
)
def test_an_object_without_one_is_not(text: str) -> None:
    assert not declines(text)


def test_a_declined_parameter_in_any_case_and_quoted_is_seen() -> None:
    assert declines(ics('BEGIN:VEVENT\nattendee;partstat="Declined":mailto:a@x.test\nEND:VEVENT'))
    assert declines(ics("BEGIN:VEVENT\nATTENDEE;PARTSTAT=DECLINED:mailto:a@x.test\nEND:VEVENT"))
