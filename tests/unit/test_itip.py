"""iTIP (RFC 5546): what we send, parsed back; what clients send, read.  Tables throughout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event

from ptm_sync.core.errors import Unusable
from ptm_sync.core.ical.itip import (
    REQUEST_STATUS_CONFLICT,
    REQUEST_STATUS_SUCCESS,
    Attendee,
    Invitation,
    ItipMessage,
    Method,
    address_of,
    build_cancel,
    build_decline_counter,
    build_reply,
    build_request,
    is_newer,
    parse_calendar,
    read_itip,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
STAMP = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)

BASE = Invitation(
    uid="c3a1f0e29b7d4f6a-wmbyrxsn7jvzeqze@lincoln.example.org",
    sequence=0,
    start=datetime(2027, 4, 10, 19, 0, tzinfo=UTC),
    end=datetime(2027, 4, 10, 19, 15, tzinfo=UTC),
    summary="Conference: Ann (Maria Garcia)",
    description="Parent-teacher conference with Mr. Smith (Mathematics).",
    organizer="conferences+2l4keilcnlkrump6@lincoln.example.org",
    organizer_name="Lincoln High School Conferences",
    attendee="Maria.Garcia@outlook.com",
    attendee_name="Maria Garcia",
    status="TENTATIVE",
    dtstamp=STAMP,
    video_url="https://meet.lincoln.example.org/ptm-c3a1f0e2",
)
IN_PERSON = replace(BASE, video_url="", location="Room 112", url="https://lincoln.example.org/b")


def reparsed(cal: Calendar) -> Calendar:
    """What a client sees: our calendar serialised and parsed again."""
    return Calendar.from_ical(cal.to_ical())


def only_event(cal: Calendar) -> Event:
    (event,) = cal.events
    return event


# --- building -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("UID", BASE.uid),
        ("SEQUENCE", 0),
        ("STATUS", "TENTATIVE"),
        ("CLASS", "PRIVATE"),
        ("TRANSP", "OPAQUE"),
        ("SUMMARY", "Conference: Ann (Maria Garcia)"),
        ("URL", "https://meet.lincoln.example.org/ptm-c3a1f0e2"),
        ("LOCATION", "https://meet.lincoln.example.org/ptm-c3a1f0e2"),
        ("ORGANIZER", "mailto:conferences+2l4keilcnlkrump6@lincoln.example.org"),
        ("ATTENDEE", "mailto:maria.garcia@outlook.com"),
    ],
)
def test_request_carries_the_property(name: str, expected: object) -> None:
    event = only_event(reparsed(build_request(BASE, NY)))
    value = event[name]
    assert (int(value) if isinstance(expected, int) else str(value)) == expected


def test_request_is_method_request_with_the_school_zone() -> None:
    cal = reparsed(build_request(BASE, NY))
    assert str(cal["METHOD"]) == "REQUEST"
    assert [tz.tz_name for tz in cal.timezones] == ["America/New_York"]
    event = only_event(cal)
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert event.start == BASE.start and event.end == BASE.end
    assert event.stamp == STAMP
    assert "UID" not in cal  # no random RFC 7986 calendar UID in an iTIP message


def test_request_asks_the_attendee_to_answer() -> None:
    attendee = only_event(reparsed(build_request(BASE, NY)))["ATTENDEE"]
    assert dict(attendee.params) == {
        "CN": "Maria Garcia",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "TRUE",
    }


def test_confirmed_update_keeps_the_accepted_answer_without_asking_again() -> None:
    confirmed = replace(BASE, status="CONFIRMED", sequence=1, partstat="ACCEPTED")
    event = only_event(reparsed(build_request(confirmed, NY)))
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert event["ATTENDEE"].params["RSVP"] == "FALSE"
    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CONFIRMED", 1)


def test_request_gives_the_video_link_as_conference_url_description_and_location() -> None:
    event = only_event(reparsed(build_request(BASE, NY)))
    (conference,) = event.conferences
    assert (conference.uri, conference.feature, conference.label) == (
        BASE.video_url,
        "VIDEO",
        "Video meeting",
    )
    assert str(event["DESCRIPTION"]).startswith(BASE.description)
    assert BASE.video_url in str(event["DESCRIPTION"])


@pytest.mark.parametrize(
    ("inv", "location", "url", "conferences"),
    [
        (IN_PERSON, "Room 112", "https://lincoln.example.org/b", 0),
        (replace(IN_PERSON, video_url=BASE.video_url), f"Room 112 / {BASE.video_url}", None, 1),
        (replace(BASE, description=f"Join at {BASE.video_url}"), BASE.video_url, None, 1),
    ],
)
def test_request_location_url_and_conference_per_format(
    inv: Invitation, location: str, url: str | None, conferences: int
) -> None:
    event = only_event(reparsed(build_request(inv, NY)))
    assert str(event["LOCATION"]) == location
    assert str(event["URL"]) == (url or inv.video_url)
    assert len(event.conferences) == conferences
    assert str(event["DESCRIPTION"]).count(inv.video_url or "\0") <= 1


@pytest.mark.parametrize(
    ("reminder", "triggers"),
    [
        (timedelta(minutes=15), [timedelta(minutes=-15)]),
        (timedelta(hours=1), [timedelta(hours=-1)]),
        (None, []),
    ],
)
def test_request_reminder_is_a_valarm(
    reminder: timedelta | None, triggers: list[timedelta]
) -> None:
    event = only_event(reparsed(build_request(replace(BASE, reminder=reminder), NY)))
    assert [alarm["TRIGGER"].dt for alarm in event.walk("VALARM")] == triggers


@pytest.mark.parametrize(
    ("tz", "local_start"),
    [
        (NY, datetime(2027, 4, 10, 15, 0)),  # EDT
        (NY, datetime(2027, 1, 12, 16, 0)),  # EST
        (NY, datetime(2027, 11, 8, 17, 30)),  # the day after the clocks went back
        (BERLIN, datetime(2027, 3, 29, 8, 0)),  # the day after the clocks went forward
        (ZoneInfo("Australia/Sydney"), datetime(2027, 4, 5, 18, 0)),  # southern hemisphere
        (ZoneInfo("Asia/Kolkata"), datetime(2027, 4, 5, 18, 0)),  # no DST at all
    ],
)
def test_vtimezone_gives_the_meeting_the_offset_of_the_school_zone(
    tz: ZoneInfo, local_start: datetime
) -> None:
    start = local_start.replace(tzinfo=tz)
    inv = replace(BASE, start=start, end=start + timedelta(minutes=15))
    (vtimezone,) = reparsed(build_request(inv, tz)).timezones
    from_vtimezone = vtimezone.to_tz(lookup_tzid=False)
    assert local_start.replace(tzinfo=from_vtimezone).utcoffset() == start.utcoffset()


def test_cancel_is_cancelled_whatever_the_status_and_asks_nothing() -> None:
    cal = reparsed(build_cancel(replace(BASE, status="CONFIRMED", sequence=2), NY))
    event = only_event(cal)
    assert str(cal["METHOD"]) == "CANCEL"
    assert (str(event["STATUS"]), int(event["SEQUENCE"]), str(event["UID"])) == (
        "CANCELLED",
        2,
        BASE.uid,
    )
    assert "PARTSTAT" not in event["ATTENDEE"].params
    assert "RSVP" not in event["ATTENDEE"].params
    assert event.walk("VALARM") == []


def test_decline_counter_keeps_the_time_and_says_why() -> None:
    comment = "Sorry, that time is taken. Free: 16:00, 16:30, 17:15."
    cal = reparsed(build_decline_counter(BASE, NY, comment))
    event = only_event(cal)
    assert str(cal["METHOD"]) == "DECLINECOUNTER"
    assert (event.start, event.end, str(event["COMMENT"])) == (BASE.start, BASE.end, comment)
    assert str(event["REQUEST-STATUS"]) == REQUEST_STATUS_CONFLICT
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (BASE.uid, BASE.sequence)


def test_request_status_semicolons_are_not_escaped_rfc5545_3_8_8_3() -> None:
    wire = build_decline_counter(BASE, NY, "no").to_ical()
    assert b"REQUEST-STATUS:4.0;Event conflict. Date/time is busy\r\n" in wire


BOOKING_REQUEST = ItipMessage(
    method=Method.REQUEST,
    uid="5m2k7v1q9x3b8c4n6p0r2t4w6y@google.com",
    sequence=3,
    dtstamp=STAMP,
    recurrence_id=None,
    organizer="jane.doe@gmail.com",
    organizer_name="Jane Doe",
    attendees=(Attendee("book+smith@lincoln.example.org"),),
    start=datetime(2027, 4, 11, 13, 0, tzinfo=UTC),
    end=datetime(2027, 4, 11, 13, 15, tzinfo=UTC),
    summary="Meeting about Ann",
)


@pytest.mark.parametrize(
    ("partstat", "request_status", "expected_status"),
    [
        ("ACCEPTED", None, REQUEST_STATUS_SUCCESS),
        ("DECLINED", None, REQUEST_STATUS_CONFLICT),
        ("DECLINED", "3.8;No authority", "3.8;No authority"),
    ],
)
def test_reply_to_a_booking_request_echoes_it_and_answers(
    partstat: str, request_status: str | None, expected_status: str
) -> None:
    cal = reparsed(
        build_reply(
            BOOKING_REQUEST,
            attendee="book+smith@lincoln.example.org",
            attendee_name="Mr. Smith",
            partstat=partstat,
            dtstamp=STAMP + timedelta(minutes=1),
            comment="See you then.",
            request_status=request_status,
        )
    )
    reply = read_itip(cal, None, NY)
    assert (reply.method, reply.uid, reply.sequence) == (Method.REPLY, BOOKING_REQUEST.uid, 3)
    assert (reply.organizer, reply.organizer_name) == ("jane.doe@gmail.com", "Jane Doe")
    assert reply.attendees == (Attendee("book+smith@lincoln.example.org", partstat, "Mr. Smith"),)
    assert (reply.start, reply.end) == (BOOKING_REQUEST.start, BOOKING_REQUEST.end)
    assert reply.request_status == (expected_status,)
    assert reply.comment == "See you then."


def test_reply_echoes_the_recurrence_id_of_an_instance() -> None:
    instance = replace(BOOKING_REQUEST, recurrence_id=BOOKING_REQUEST.start)
    cal = build_reply(instance, attendee="book+smith@x.org", partstat="ACCEPTED", dtstamp=STAMP)
    assert read_itip(reparsed(cal), None, NY).recurrence_id == BOOKING_REQUEST.start


def test_reply_needs_an_organizer_to_answer() -> None:
    with pytest.raises(Unusable) as raised:
        build_reply(
            replace(BOOKING_REQUEST, organizer=None),
            attendee="book+smith@lincoln.example.org",
            partstat="DECLINED",
            dtstamp=STAMP,
        )
    assert raised.value.reason == "no-organizer"


@pytest.mark.parametrize(
    "change",
    [
        {"start": datetime(2027, 4, 10, 19, 0)},  # naive
        {"dtstamp": datetime(2027, 3, 20, 12, 0)},
        {"end": BASE.start},
        {"status": "MAYBE"},
        {"sequence": -1},
    ],
)
def test_invitation_refuses_values_no_client_could_read(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(BASE, **change)


@pytest.mark.parametrize("inv", [BASE, IN_PERSON, replace(BASE, status="CANCELLED", sequence=4)])
def test_what_we_send_reads_back_as_we_meant_it(inv: Invitation) -> None:
    message = read_itip(reparsed(build_request(inv, NY)), None, NY)
    assert (message.method, message.uid, message.sequence) == (
        Method.REQUEST,
        inv.uid,
        inv.sequence,
    )
    assert (message.start, message.end, message.dtstamp) == (inv.start, inv.end, inv.dtstamp)
    assert message.organizer == inv.organizer
    assert message.attendees == (
        Attendee(address_of(inv.attendee), "NEEDS-ACTION", inv.attendee_name, "REQ-PARTICIPANT"),
    )
    assert message.status == inv.status


# --- reading ------------------------------------------------------------------------------


def ics(*event_lines: str, method: str | None = "REPLY", extra: str = "") -> Calendar:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    if method:
        head.append(f"METHOD:{method}")
    text = "\r\n".join([*head, extra, "BEGIN:VEVENT", *event_lines, "END:VEVENT", "END:VCALENDAR"])
    return parse_calendar(text.replace("\r\n\r\n", "\r\n").encode())


UID = "UID:e07a3b9c5d2f4816-hqef23ra6vljx7w5@lincoln.example.org"
ANSWER = "ATTENDEE;PARTSTAT=ACCEPTED;CN=Jane Doe:mailto:Jane.Doe@Gmail.com"
ORGANIZER = "ORGANIZER:mailto:conferences+xyioe7f7h4huj6ds@lincoln.example.org"
U = UTC


@pytest.mark.parametrize(
    ("cal", "hint", "expected"),
    [
        # METHOD from the VCALENDAR, else the MIME hint, else inferred (RFC 6047 §2.4)
        (ics(UID, ANSWER), None, {"method": Method.REPLY}),
        (ics(UID, ANSWER, method="reply"), None, {"method": Method.REPLY}),
        (ics(UID, ANSWER, method=None), "REPLY", {"method": Method.REPLY}),
        (ics(UID, ANSWER, method=None), None, {"method": Method.REPLY}),
        (ics(UID, ANSWER, method="COUNTER"), "REPLY", {"method": Method.COUNTER}),
        (ics(UID, ANSWER, method="REFRESH"), None, {"method": Method.REFRESH}),
        (ics(UID, ANSWER, method="CANCEL"), None, {"method": Method.CANCEL}),
        # who
        (ics(UID, ANSWER), None, {"organizer": None, "organizer_name": None}),
        (
            ics(UID, ANSWER, "ORGANIZER;CN=Office:MAILTO:Conferences@Lincoln.example.org"),
            None,
            {"organizer": "conferences@lincoln.example.org", "organizer_name": "Office"},
        ),
        (
            ics(UID, ANSWER),
            None,
            {"attendees": (Attendee("jane.doe@gmail.com", "ACCEPTED", "Jane Doe"),)},
        ),
        (
            ics(UID, "ATTENDEE:mailto:jane@x.org"),
            "REFRESH",
            {"attendees": (Attendee("jane@x.org", "NEEDS-ACTION"),)},
        ),
        (
            ics(UID, 'ATTENDEE;PARTSTAT=declined;EMAIL="Tom@X.org":urn:uuid:1234'),
            None,
            {"attendees": (Attendee("tom@x.org", "DECLINED"),)},
        ),
        (
            ics(
                UID,
                'ATTENDEE;PARTSTAT=DELEGATED;DELEGATED-TO="mailto:Dad@x.org":mailto:mum@x.org',
                'ATTENDEE;PARTSTAT=ACCEPTED;DELEGATED-FROM="mailto:mum@x.org";SENT-BY="mailto:sec@x.org":mailto:dad@x.org',
            ),
            None,
            {
                "attendees": (
                    Attendee("mum@x.org", "DELEGATED", delegated_to=("dad@x.org",)),
                    Attendee(
                        "dad@x.org", "ACCEPTED", delegated_from=("mum@x.org",), sent_by="sec@x.org"
                    ),
                )
            },
        ),
        # ordering data
        (ics(UID, ANSWER), None, {"sequence": 0, "dtstamp": None}),
        (
            ics(UID, ANSWER, "SEQUENCE:7", "DTSTAMP:20270321T181922Z"),
            None,
            {"sequence": 7, "dtstamp": datetime(2027, 3, 21, 18, 19, 22, tzinfo=U)},
        ),
        # times: UTC, zone, Windows zone without VTIMEZONE, unknown TZID, floating, all day
        (
            ics(UID, ANSWER, "DTSTART:20270410T203000Z", "DTEND:20270410T204500Z"),
            None,
            {
                "start": datetime(2027, 4, 10, 20, 30, tzinfo=U),
                "end": datetime(2027, 4, 10, 20, 45, tzinfo=U),
            },
        ),
        (
            ics(
                UID, ANSWER, "DTSTART;TZID=Eastern Standard Time:20270410T163000", "DURATION:PT15M"
            ),
            "COUNTER",
            {
                "start": datetime(2027, 4, 10, 20, 30, tzinfo=U),
                "end": datetime(2027, 4, 10, 20, 45, tzinfo=U),
            },
        ),
        (
            ics(
                UID,
                ANSWER,
                'DTSTART;TZID="FLE":20270410T163000',
                'DTEND;TZID="FLE":20270410T164500',
            ),
            "COUNTER",
            {
                "start": datetime(2027, 4, 10, 20, 30, tzinfo=U),
                "end": datetime(2027, 4, 10, 20, 45, tzinfo=U),
            },
        ),
        (
            ics(UID, ANSWER, "DTSTART:20270410T163000", "DTEND:20270410T164500"),
            "COUNTER",
            {"start": datetime(2027, 4, 10, 20, 30, tzinfo=U), "all_day": False},
        ),
        (
            ics(UID, ANSWER, "DTSTART;VALUE=DATE:20270410"),
            None,
            {"start": datetime(2027, 4, 10, 4, 0, tzinfo=U), "end": None, "all_day": True},
        ),
        (
            ics(UID, ANSWER, "DTSTART:garbage"),
            None,
            {"start": None},  # a REPLY does not need its time
        ),
        # instances and series
        (
            ics(UID, ANSWER, "RECURRENCE-ID:20270410T190000Z"),
            None,
            {"recurrence_id": datetime(2027, 4, 10, 19, 0, tzinfo=U), "recurring": False},
        ),
        (ics(UID, ANSWER, "RRULE:FREQ=WEEKLY;COUNT=3"), "REQUEST", {"recurring": True}),
        # what the attendee said
        (ics(UID, ANSWER, "COMMENT:\\n"), None, {"comment": None}),
        (
            ics(UID, ANSWER, "COMMENT:Sorry\\, I work late.", "COMMENT:Mornings are fine."),
            None,
            {"comment": "Sorry, I work late.\nMornings are fine."},
        ),
        (
            ics(
                UID,
                'ATTENDEE;PARTSTAT=DECLINED;X-RESPONSE-COMMENT="It&#39\\;s late":mailto:a@b.org',
            ),
            None,
            {"comment": "It's late"},  # Google's note, HTML-escaped
        ),
        (
            ics(UID, 'ATTENDEE;X-RESPONSE-COMMENT="theirs":mailto:a@b.org', "COMMENT:ours"),
            None,
            {"comment": "ours"},
        ),
        (
            ics(UID, ANSWER, "REQUEST-STATUS:2.0;Success", "STATUS:confirmed", "SUMMARY:Hi"),
            None,
            {"request_status": ("2.0;Success",), "status": "CONFIRMED", "summary": "Hi"},
        ),
    ],
)
def test_read_itip(cal: Calendar, hint: str | None, expected: dict[str, object]) -> None:
    message = read_itip(cal, hint, NY)
    assert {name: getattr(message, name) for name in expected} == expected


MASTER_AND_OVERRIDE = (
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20270417T190000Z\r\nDTSTART:20270417T200000Z\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270410T190000Z\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_the_master_event_is_read_before_its_overrides() -> None:
    message = read_itip(parse_calendar(MASTER_AND_OVERRIDE), None, NY)
    assert (message.recurrence_id, message.start, message.recurring) == (
        None,
        datetime(2027, 4, 10, 19, 0, tzinfo=U),
        True,
    )


# --- times: one TZID resolver, TZIDs that cannot apply (RFC 5545 §3.2.19, §3.3.5) -----------


@pytest.mark.parametrize("method", ["REQUEST", "COUNTER"])
@pytest.mark.parametrize("tzid", ["Z", "UTC", "GMT", "America/Los_Angeles", '"FLE"'])
def test_a_utc_value_is_read_as_utc_whatever_its_tzid(method: str, tzid: str) -> None:
    """Android clients write ``DTSTART;TZID=Z:…Z``: the ``Z`` fixes the instant."""
    cal = ics(
        UID,
        ANSWER,
        f"DTSTART;TZID={tzid}:20270410T203000Z",
        f"DTEND;TZID={tzid}:20270410T204500Z",
        method=method,
    )
    message = read_itip(cal, None, NY)
    assert (message.start, message.end) == (
        datetime(2027, 4, 10, 20, 30, tzinfo=U),
        datetime(2027, 4, 10, 20, 45, tzinfo=U),
    )


#: Outlook's "Customized Time Zone": a zone the sender's machine defines itself (here one
#: at UTC-02:30 in summer, like Newfoundland), known by this message's VTIMEZONE only.
OUTLOOK_CUSTOM_ZONE = """BEGIN:VTIMEZONE
TZID:Customized Time Zone
BEGIN:STANDARD
DTSTART:16010101T020000
TZOFFSETFROM:{daylight}
TZOFFSETTO:{standard}
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:{standard}
TZOFFSETTO:{daylight}
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""


def outlook_counter(standard: str, daylight: str) -> Calendar:
    return parse_calendar(
        "\r\n".join(
            [
                "BEGIN:VCALENDAR",
                "METHOD:COUNTER",
                "PRODID:Microsoft Exchange Server 2010",
                "VERSION:2.0",
                *OUTLOOK_CUSTOM_ZONE.format(standard=standard, daylight=daylight).splitlines(),
                "BEGIN:VEVENT",
                ORGANIZER,
                "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=TENTATIVE:mailto:maria@outlook.com",
                "DTSTART;TZID=Customized Time Zone:20270410T173000",
                "DTEND;TZID=Customized Time Zone:20270410T174500",
                UID,
                "SEQUENCE:0",
                "DTSTAMP:20270321T160233Z",
                "X-MS-OLK-ORIGINALSTART:20270410T191500Z",
                "END:VEVENT",
                "END:VCALENDAR",
                "",
            ]
        )
    )


def test_outlook_counter_in_a_custom_vtimezone_is_read_in_that_zone() -> None:
    message = read_itip(outlook_counter("-0330", "-0230"), None, NY)
    # 17:30 at UTC-02:30 is 20:00 UTC (16:00 in New York, the school's zone).
    assert (message.method, message.start, message.end) == (
        Method.COUNTER,
        datetime(2027, 4, 10, 20, 0, tzinfo=U),
        datetime(2027, 4, 10, 20, 15, tzinfo=U),
    )


def test_each_message_uses_its_own_definition_of_a_custom_tzid() -> None:
    """icalendar caches VTIMEZONEs by TZID process-wide; two senders' zones must not mix."""
    first = read_itip(outlook_counter("-0330", "-0230"), None, NY)
    second = read_itip(outlook_counter("+0530", "+0630"), None, NY)
    assert first.start == datetime(2027, 4, 10, 20, 0, tzinfo=U)
    assert second.start == datetime(2027, 4, 10, 11, 0, tzinfo=U)


# --- time proposals: Outlook's and Google's COUNTER, a REPLY at another time ----------------

MEETING = (datetime(2027, 4, 10, 19, 30, tzinfo=U), datetime(2027, 4, 10, 19, 45, tzinfo=U))
AT_MEETING = ("DTSTART:20270410T193000Z", "DTEND:20270410T194500Z")
LATER = ("DTSTART:20270410T203000Z", "DTEND:20270410T204500Z")
LATER_SPAN = (datetime(2027, 4, 10, 20, 30, tzinfo=U), datetime(2027, 4, 10, 20, 45, tzinfo=U))


@pytest.mark.parametrize(
    ("cal", "proposes_time", "proposal"),
    [
        (ics(UID, ANSWER, *LATER, method="COUNTER"), True, LATER_SPAN),
        # A COUNTER at the meeting's own time asks for nothing new.
        (
            ics(
                UID, ANSWER, "DTSTART:20270410T193000Z", "DTEND:20270410T194500Z", method="COUNTER"
            ),
            True,
            None,
        ),
        # A REPLY echoing the meeting's time is an answer, one at another time a proposal.
        (ics(UID, ANSWER, "DTSTART:20270410T193000Z", "DURATION:PT15M"), False, None),
        (ics(UID, ANSWER, LATER[0], "DURATION:PT15M"), False, LATER_SPAN),
        (ics(UID, ANSWER, *LATER), False, LATER_SPAN),
        # Not a whole timed span: nothing proposed.
        (ics(UID, ANSWER, LATER[0]), False, None),
        (ics(UID, ANSWER, "DTSTART;VALUE=DATE:20270411"), False, None),
        (ics(UID, ANSWER, "DTSTART:garbage", LATER[1]), False, None),
        (ics(UID, ANSWER), False, None),
        (ics(UID, ANSWER, *LATER, method="REFRESH"), False, None),
    ],
)
def test_time_proposals(
    cal: Calendar, proposes_time: bool, proposal: tuple[datetime, datetime] | None
) -> None:
    message = read_itip(cal, None, NY)
    assert (message.proposes_time, message.proposal(*MEETING)) == (proposes_time, proposal)


def test_a_proposal_compares_instants_not_zones() -> None:
    message = read_itip(ics(UID, ANSWER, *LATER, method="COUNTER"), None, NY)
    assert message.proposal(*(moment.astimezone(NY) for moment in LATER_SPAN)) is None


@pytest.mark.parametrize(
    ("cal", "hint", "reason"),
    [
        (ics(UID, ANSWER, method="PUBLISH"), None, "unsupported-method"),
        (ics(UID, ANSWER, method="DECLINECOUNTER"), None, "unsupported-method"),
        (ics(UID, ANSWER, method="X-SOMETHING"), None, "unsupported-method"),
        (ics(UID, ANSWER, method=None), "PUBLISH", "unsupported-method"),
        (
            ics(UID, ANSWER, "ATTENDEE;PARTSTAT=ACCEPTED:mailto:b@x.org", method=None),
            None,
            "no-method",
        ),
        (ics(UID, "ATTENDEE:mailto:b@x.org", method=None), None, "no-method"),
        (ics(ANSWER), None, "no-uid"),
        (ics(UID, ANSWER, "SEQUENCE:two"), None, "broken-icalendar"),
        (ics(UID, ANSWER, "DTSTART:garbage", method=None), "COUNTER", "broken-icalendar"),
        (ics(UID, ANSWER, "DTSTART:garbage", method="REQUEST"), None, "broken-icalendar"),
        (
            parse_calendar(
                b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VTODO\r\nUID:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
            ),
            None,
            "no-vevent",
        ),
        (
            parse_calendar(
                MASTER_AND_OVERRIDE.replace(
                    "UID:a\r\nDTSTART:20270410", "UID:b\r\nDTSTART:20270410"
                )
            ),
            None,
            "multiple-uids",
        ),
    ],
)
def test_unusable_calendars_are_refused_with_a_stable_reason(
    cal: Calendar, hint: str | None, reason: str
) -> None:
    with pytest.raises(Unusable) as raised:
        read_itip(cal, hint, NY)
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:x\r\n",  # truncated
        b"\xff\xfe\x00\x01binary",
        b"BEGIN:VCARD\r\nFN:Jane\r\nEND:VCARD\r\n",
    ],
)
def test_garbage_is_a_broken_icalendar(data: bytes) -> None:
    with pytest.raises(Unusable) as raised:
        parse_calendar(data)
    assert raised.value.reason == "broken-icalendar"


# --- ordering (RFC 5546 §2.1.5, DESIGN §4) ---------------------------------------------------

T0 = datetime(2027, 3, 21, 18, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("seq", "dtstamp", "last_seq", "last_dtstamp", "newer"),
    [
        (0, T0, None, None, True),  # first message
        (1, T0, 0, T1, True),  # higher SEQUENCE wins whatever the DTSTAMP
        (0, T1, 1, T0, False),  # lower SEQUENCE is stale
        (1, T1, 1, T0, True),  # same SEQUENCE, later DTSTAMP
        (1, T0, 1, T1, False),  # same SEQUENCE, earlier DTSTAMP: stale
        (1, T0, 1, T0, False),  # duplicate
        (1, T0, 1, None, True),  # a DTSTAMP beats none
        (1, None, 1, T0, False),
        (1, None, 1, None, False),
    ],
)
def test_is_newer(
    seq: int,
    dtstamp: datetime | None,
    last_seq: int | None,
    last_dtstamp: datetime | None,
    newer: bool,
) -> None:
    assert is_newer(seq, dtstamp, last_seq, last_dtstamp) is newer


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("mailto:Jane@Example.org", "jane@example.org"),
        ("MAILTO:jane@example.org", "jane@example.org"),
        ("  jane@example.org ", "jane@example.org"),
        ("mailto: jane@example.org", "jane@example.org"),
    ],
)
def test_address_of(value: str, address: str) -> None:
    assert address_of(value) == address


def test_attendee_lookup_and_the_replying_attendee() -> None:
    one = read_itip(ics(UID, ANSWER), None, NY)
    assert one.attendee("MAILTO:JANE.DOE@gmail.com") == one.attendees[0]
    assert one.attendee("someone@else.org") is None
    assert one.replying_attendee == one.attendees[0]
    two = read_itip(ics(UID, ANSWER, "ATTENDEE:mailto:b@x.org", method="REQUEST"), None, NY)
    assert two.replying_attendee is None
