"""The booking life cycle through the command line, on real servers.

Radicale holds the teachers' calendars, aiosmtpd receives what we send, Dovecot holds the
replies for `mail fetch`.  Parents answer with messages shaped like the ones Outlook,
Gmail, Apple Mail, Thunderbird and Proton send (:mod:`ptm_sync.demo.parents`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ptm_sync.demo import parents
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import ptm_sync
from tests.support.factories import invitations, make_invitation
from tests.support.mailservers import SmtpSink
from tests.support.school import (
    CONTACT,
    FAMILIES,
    ORGANIZER,
    TZ,
    VIDEO_BASE,
    ImapSchool,
    School,
    calendar_part,
    meeting_by_uid,
    now_utc,
    parse,
    plain_body,
    teacher_events,
    to_address,
)

pytestmark = [pytest.mark.radicale, pytest.mark.slow]


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> Iterator[tuple[School, SmtpSink]]:
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port)
    s.setup()
    yield s, sink


def test_invite_sends_a_notification_per_family_and_an_invitation_per_meeting(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    out = s.run("invite").out
    assert "proposed 6 meetings to 3 guardians" in out
    meetings = s.meetings()
    assert len(meetings) == 6 and {m["state"] for m in meetings} == {"proposed"}
    invs = invitations(sink)
    assert set(invs) == {m["uid"] for m in meetings}
    notes = [
        m
        for m in sink.received
        if not any(p.get_content_type() == "text/calendar" for p in parse(m.raw).walk())
    ]
    assert sorted(to_address(n.raw) for n in notes) == [
        "maria@example.org",
        "pat@example.net",
        "sam@example.com",
    ]
    pat = next(n for n in notes if to_address(n.raw) == "pat@example.net")
    body = plain_body(pat.raw)
    assert CONTACT in body and "Accept" in body and "Spring conferences" in s.config.read_text()
    assert body.count("Ada Lovelace") + body.count("Alan Turing") + body.count("Grace Hopper") == 3

    # The shape of one invitation (DESIGN §4).
    raw = invs[meetings[0]["uid"]]
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed"
    types = [p.get_content_type() for p in msg.walk()]
    assert types[:5] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert "application/ics" in types
    cal_part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert cal_part.get_param("method") == "REQUEST"
    cal = calendar_part(raw)
    assert str(cal["METHOD"]) == "REQUEST" and cal.timezones
    event = cal.events[0]
    assert str(event["STATUS"]) == "TENTATIVE"
    assert str(event["ORGANIZER"]).lower() == f"mailto:{ORGANIZER}"
    attendee = event["ATTENDEE"]
    assert attendee.params["RSVP"] == "TRUE" and attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    video = meetings[0]["video_url"]
    assert video.startswith(VIDEO_BASE + "/") and len(video) > len(VIDEO_BASE) + 26
    assert str(event["URL"]) == video
    assert video in str(event["DESCRIPTION"]) and video in str(event["LOCATION"])
    assert any(str(c.uri) == video for c in event.conferences)
    assert abs(event.DTSTAMP - now_utc()) < timedelta(minutes=5)
    assert event.start == datetime.fromisoformat(meetings[0]["start"])


def test_invite_twice_proposes_nothing_twice_and_dry_run_changes_nothing(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    plan = s.run("invite", "--dry-run").out
    assert "6 meetings would be proposed" in plan and "nothing changed" in plan
    assert s.meetings() == [] and sink.received == []
    s.run("invite")
    sent = len(sink.received)
    second = s.run("invite").out
    assert "proposed 0 meetings" in second
    assert len(s.meetings()) == 6 and len(sink.received) == sent


def test_a_familys_meetings_do_not_overlap_and_keep_the_gap(
    school: tuple[School, SmtpSink],
) -> None:
    s, _ = school
    s.run("invite")
    pat = sorted(
        (datetime.fromisoformat(m["start"]), datetime.fromisoformat(m["end"]))
        for m in s.meetings()
        if m["guardian"] == "pat@example.net"
    )
    assert len(pat) == 3
    for (_, end), (start, _) in itertools.pairwise(pat):
        assert start - end >= timedelta(minutes=5)


@pytest.mark.parametrize("client", sorted(parents.CLIENTS))
def test_accepting_confirms_writes_the_teachers_calendar_and_updates_the_parent(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV, client: str
) -> None:
    s, sink = school
    meeting, invitation = make_invitation(s, sink, teacher="ada@lincoln.example.org")
    before = len(sink.received)

    reply = parents.reply(client, invitation, "ACCEPTED", tz=TZ, now=now_utc())
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    s.run("outbox", "flush")

    confirmed = meeting_by_uid(s, meeting["uid"])
    assert (confirmed["state"], confirmed["sequence"]) == ("confirmed", 1)
    # The teacher's own calendar now holds the meeting, private, with the video link.
    events = [
        e
        for e in teacher_events(radicale_server, s.calendars[meeting["teacher"]])
        if str(e["UID"]) == meeting["uid"]
    ]
    assert len(events) == 1
    event = events[0]
    assert event.start == datetime.fromisoformat(meeting["start"])
    assert str(event["CLASS"]) == "PRIVATE"
    assert meeting["video_url"] in str(event["DESCRIPTION"])
    assert str(event["SUMMARY"]).startswith("Conference: ")
    for attendee in (
        event.get("ATTENDEE", [])
        if isinstance(event.get("ATTENDEE"), list)
        else ([event["ATTENDEE"]] if "ATTENDEE" in event else [])
    ):
        assert attendee.params.get("SCHEDULE-AGENT") == "CLIENT"
    # The parent received the confirming update: same UID, SEQUENCE + 1, CONFIRMED.
    update = sink.received[before:]
    assert len(update) == 1 and to_address(update[0].raw) == meeting["guardian"]
    cal = calendar_part(update[0].raw)
    ev = cal.events[0]
    assert str(cal["METHOD"]) == "REQUEST" and str(ev["UID"]) == meeting["uid"]
    assert (int(ev["SEQUENCE"]), str(ev["STATUS"])) == (1, "CONFIRMED")
    assert meeting["video_url"] in str(ev["LOCATION"])
    assert CONTACT in plain_body(update[0].raw)


def test_declining_releases_the_slot(school: tuple[School, SmtpSink]) -> None:
    s, sink = school
    meeting, invitation = make_invitation(s, sink, teacher="grace@lincoln.example.org")
    slot = {"teacher": meeting["teacher"], "start": meeting["start"]}
    free = [
        {"teacher": x["teacher"], "start": x["start"]}
        for x in s.run("slots", "--format", "json").json()
    ]
    assert slot not in free
    reply = parents.reply(
        "gmail",
        invitation,
        "DECLINED",
        tz=TZ,
        now=now_utc(),
        comment="Sorry, we are away",
    )
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "applied (declined)"
    assert meeting_by_uid(s, meeting["uid"])["state"] == "declined"
    free = [
        {"teacher": x["teacher"], "start": x["start"]}
        for x in s.run("slots", "--format", "json").json()
    ]
    assert slot in free
    s.run("outbox", "flush")
    # The decline is acknowledged and the next best time proposed (DESIGN §3).
    subjects = [str(parse(m.raw)["Subject"]) for m in sink.received[-2:]]
    assert subjects[0].startswith("Declined") and subjects[1].startswith("New time proposed")


def test_replies_are_fetched_over_imap_and_marked_only_after_commit(
    imap_school: Callable[..., ImapSchool],
) -> None:
    s, sink, mailbox = imap_school()
    s.run("invite")
    meetings = s.meetings()
    invs = invitations(sink)
    uid_apple = mailbox.append(
        parents.reply("apple", invs[meetings[0]["uid"]], "ACCEPTED", tz=TZ, now=now_utc())
    )
    uid_proton = mailbox.append(
        parents.reply("proton", invs[meetings[1]["uid"]], "DECLINED", tz=TZ, now=now_utc())
    )
    out = s.run("mail", "fetch").out
    assert "applied (accepted)" in out and "applied (declined)" in out
    assert "2 messages processed" in out
    states = {m["uid"]: m["state"] for m in s.meetings()}
    assert states[meetings[0]["uid"]] == "confirmed"
    assert states[meetings[1]["uid"]] == "declined"
    for uid in (uid_apple, uid_proton):
        assert "$PtmProcessed" in mailbox.flags(uid) and "\\Seen" not in mailbox.flags(uid)
    assert "0 messages processed" in s.run("mail", "fetch").out


def _forged(raw: bytes, old: str, new: str) -> bytes:
    return raw.replace(old.encode(), new.encode())


def test_what_cannot_be_used_goes_to_quarantine_and_changes_nothing(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    meeting, invitation = make_invitation(s, sink, teacher="alan@lincoln.example.org")
    accept = parents.reply("thunderbird", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    local, _, _domain = meeting["uid"].partition("@")
    forged_uid = _forged(accept, local, local[:-3] + "aaa")
    stranger = _forged(accept, f"<{meeting['guardian']}>", "<mallory@evil.example>")
    no_calendar = (
        b"From: Pat Johnson <pat@example.net>\r\nTo: "
        + ORGANIZER.encode()
        + b"\r\nSubject: Re: conferences\r\nMessage-ID: <plain-1@example.net>\r\n\r\n"
        b"Can we meet on Thursday instead?\r\n"
    )
    # A calendar attachment cut short in transit: the VEVENT and VCALENDAR never end.
    broken = (
        b"From: "
        + meeting["guardian"].encode()
        + b"\r\nTo: "
        + ORGANIZER.encode()
        + b"\r\nSubject: Accepted\r\nMessage-ID: <cut-1@example.net>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n"
        b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:"
        + meeting["uid"].encode()
        + b"\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:"
        + meeting["guardian"].encode()
        + b"\r\n"
    )
    expected = {
        "unknown-uid": forged_uid,
        "sender-not-attendee": stranger,
        "no-calendar-part": no_calendar,
        "broken-icalendar": broken,
    }
    for reason, raw in expected.items():
        assert s.run("mail", "deliver", stdin=raw).out.strip() == f"quarantined ({reason})"
    listed = s.run("quarantine", "--format", "json").json()
    assert sorted(q["reason"] for q in listed) == sorted(expected)
    assert set(listed[0]) >= {"id", "received_at", "message_id", "sender", "reason"}
    assert {m["state"] for m in s.meetings()} == {"proposed"}
    assert s.run("quarantine").code == 0


def test_the_same_reply_delivered_twice_is_processed_once(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    meeting, invitation = make_invitation(s, sink)
    reply = parents.reply("outlook", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "duplicate (already processed)"
    assert meeting_by_uid(s, meeting["uid"])["sequence"] == 1


def test_bounces_and_auto_replies_are_recorded_never_taken_for_replies(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    meeting, invitation = make_invitation(s, sink)
    bounce = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: " + ORGANIZER.encode() + b"\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <bounce-1@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; "
        + meeting["guardian"].encode()
        + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + invitation + b"\r\n--b--\r\n"
    )
    away = (
        b"From: "
        + meeting["guardian"].encode()
        + b"\r\nTo: "
        + ORGANIZER.encode()
        + b"\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
        b"Message-ID: <away-1@example.net>\r\n\r\nI am away until Monday.\r\n"
    )
    assert s.run("mail", "deliver", stdin=bounce).out.strip().startswith("bounce")
    assert s.run("mail", "deliver", stdin=away).out.strip().startswith("auto_reply")
    assert s.run("quarantine", "--format", "json").json() == []
    assert meeting_by_uid(s, meeting["uid"])["state"] == "proposed"


def test_mail_deliver_defers_instead_of_bouncing_when_it_cannot_process(
    tmp_path: Path,
) -> None:
    config = tmp_path / "ptm-sync.toml"
    config.write_text(
        '[school]\nname = "S"\ntimezone = "UTC"\ncontact = "o@s.test"\n'
        '[database]\nurl = "sqlite:///missing-folder/ptm.db"\n'
        '[mail]\norganizer = "c@s.test"\n'
        '[[periods]]\nid = "p"\ntitle = "P"\nwindows = ["2030-01-01T10:00/11:00"]\n'
    )
    message = b"From: a@b.test\r\nSubject: hi\r\n\r\nhello\r\n"
    proc = ptm_sync(config, "mail", "deliver", stdin=message)
    assert proc.returncode == 75  # EX_TEMPFAIL: the MTA keeps the message and retries
    assert "missing-folder" in proc.stderr and "Traceback" not in proc.stderr


def test_propose_new_time_moves_the_meeting_when_the_time_is_free(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    meeting, invitation = make_invitation(s, sink, teacher="grace@lincoln.example.org")
    taken = {x["start"] for x in s.meetings(teacher="grace@lincoln.example.org")}
    free = [
        x
        for x in s.run("slots", "--teacher", "grace@lincoln.example.org", "--format", "json").json()
        if x["start"] not in taken
    ]
    wanted = free[-1]
    counter = parents.propose_new_time(
        invitation,
        datetime.fromisoformat(wanted["start"]),
        datetime.fromisoformat(wanted["end"]),
        tz=TZ,
        now=now_utc(),
        comment="Later would suit us better",
    )
    assert s.run("mail", "deliver", stdin=counter).out.strip() == "applied (counter accepted)"
    s.run("outbox", "flush")
    moved = meeting_by_uid(s, meeting["uid"])
    assert (moved["start"], moved["state"], moved["sequence"]) == (wanted["start"], "confirmed", 1)
    events = [
        e
        for e in teacher_events(radicale_server, s.calendars[meeting["teacher"]])
        if str(e["UID"]) == meeting["uid"]
    ]
    assert len(events) == 1 and events[0].start == datetime.fromisoformat(wanted["start"])


def test_both_guardians_are_invited_and_the_second_ones_accept_confirms_for_both(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    chris, alex = "chris.brown@example.org", "alex.brown@example.org"
    sink = smtp_sink(mode="plain")
    s = School(
        tmp_path,
        radicale_server,
        sink.port,
        families=[
            *FAMILIES,
            ("S5", "Zoe Brown", chris, "Chris Brown", [0]),
            ("S5", "Zoe Brown", alex, "Alex Brown", [0]),
        ],
    )
    s.setup()

    assert "proposed 7 meetings to 5 guardians" in s.run("invite").out

    [zoes] = [m for m in s.meetings() if m["students"] == ["S5"]]
    primary, second = zoes["guardians"]
    assert zoes["guardian"] == primary and {primary, second} == {chris, alex}
    requests = {
        to_address(mail.raw): mail.raw
        for mail in sink.received
        if any(p.get_content_type() == "text/calendar" for p in parse(mail.raw).walk())
        and str(calendar_part(mail.raw).events[0]["UID"]) == zoes["uid"]
    }
    assert set(requests) == {chris, alex}
    for guardian, raw in requests.items():
        attendee = calendar_part(raw).events[0]["ATTENDEE"]
        assert str(attendee).lower() == f"mailto:{guardian}"
    notified = {to_address(m.raw): plain_body(m.raw) for m in sink.received}
    assert "Ada Lovelace about Zoe" in notified[chris]
    before = len(sink.received)

    reply = parents.reply("gmail", requests[second], "ACCEPTED", tz=TZ, now=now_utc())
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    s.run("outbox", "flush")

    confirmed = meeting_by_uid(s, zoes["uid"])
    assert (confirmed["state"], confirmed["sequence"]) == ("confirmed", 1)
    updates = sink.received[before:]
    assert sorted(to_address(u.raw) for u in updates) == [alex, chris]
    for update in updates:
        event = calendar_part(update.raw).events[0]
        assert (str(event["UID"]), str(event["STATUS"])) == (zoes["uid"], "CONFIRMED")
    [event] = [
        e
        for e in teacher_events(radicale_server, s.calendars[zoes["teacher"]])
        if str(e["UID"]) == zoes["uid"]
    ]
    description = str(event["DESCRIPTION"])
    assert f"Chris Brown <{chris}>" in description and f"Alex Brown <{alex}>" in description
