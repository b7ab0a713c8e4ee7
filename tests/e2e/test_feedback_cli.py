"""A family's reply to a feedback request (DESIGN §3): fetched by `mail fetch` from Dovecot
or piped to `mail deliver`, matched by In-Reply-To or the plus-address token, recorded
against the meeting with the guardian who sent it — never taken for an iTIP answer.  Only
the meeting's guardians (or their aliases) may: anybody else's message is quarantined as
``sender-not-attendee``, never recorded.

The period has no ``feedback_url``, so the request asks the family to reply by email.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Feedback, Guardian
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import ORGANIZER, TZ, ImapSchool, School, parse, plain_body

pytestmark = [pytest.mark.radicale, pytest.mark.dovecot, pytest.mark.slow]

ADA, PAT = "ada@lincoln.example.org", "pat@example.net"


def local(s: School, clock: str) -> datetime:
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def asked(s: School, sink: SmtpSink) -> tuple[dict[str, Any], EmailMessage]:
    """Pat's meeting with Ada, booked by staff, over and asked for feedback: the meeting and
    the request Pat received."""
    done = s.run("book", "--guardian", PAT, "--teacher", ADA, "--start", f"{s.day}T15:00")
    meeting_id = int(done.out.split("meeting ", 1)[1].split()[0])
    end = local(s, "15:15")
    for job in ("complete", "feedback"):
        run = ptm_sync(s.config, "jobs", "run", job, env=at(end))
        assert run.returncode == 0, run.stderr
    [request] = [
        m.raw for m in sink.received if str(parse(m.raw)["Message-ID"]).startswith("<feedback_")
    ]
    meeting = next(m for m in s.meetings() if m["id"] == meeting_id)
    return meeting, parse(request)


def answer(request: EmailMessage, text: str, *, in_reply_to: bool = True) -> EmailMessage:
    """Pat's reply as a mail client writes it: to the Reply-To, the request quoted.  Its
    lines may be as long as RFC 5322 allows (998), as a mail client's are: Python's default
    78 would write our long Message-ID in In-Reply-To as RFC 2047 encoded words, which no
    mail client does (RFC 2047 §5: none in a msg-id)."""
    reply = EmailMessage(policy=policy.default.clone(max_line_length=998))
    reply["From"] = f"Pat Johnson <{PAT}>"
    reply["To"] = str(request["Reply-To"])
    reply["Subject"] = f"Re: {request['Subject']}"
    reply["Date"] = format_datetime(datetime.now(TZ))
    reply["Message-ID"] = make_msgid(domain="example.net")
    if in_reply_to:
        reply["In-Reply-To"] = str(request["Message-ID"])
        reply["References"] = str(request["Message-ID"])
    quoted = "\n".join(f"> {line}" for line in plain_body(bytes(request)).splitlines())
    reply.set_content(f"{text}\n\nOn Tue, Lincoln High School wrote:\n{quoted}\n")
    return reply


def recorded(s: School) -> list[tuple[int, str, str | None]]:
    """(meeting id, text, guardian's email) of every feedback recorded."""
    db = Database(f"sqlite:///{s.folder / 'ptm.db'}")
    try:
        with db.read() as session:
            rows = session.execute(
                select(Feedback.meeting_id, Feedback.text, Guardian.email)
                .outerjoin(Guardian, Guardian.id == Feedback.guardian_id)
                .order_by(Feedback.id)
            ).all()
    finally:
        db.dispose()
    return [(int(m), str(t), g) for m, t, g in rows]


def test_a_reply_fetched_by_imap_is_recorded_against_its_meeting(
    imap_school: Callable[..., ImapSchool],
) -> None:
    s, sink, mailbox = imap_school()
    meeting, request = asked(s, sink)
    assert "replying to this email" in plain_body(bytes(request))
    # No plus addressing: the reply goes to the organizer, matched by In-Reply-To.
    assert str(request["Reply-To"]) == ORGANIZER

    mailbox.append(bytes(answer(request, "Very helpful, thank you.\nAda explained it all.")))
    fetched = s.run("mail", "fetch")
    assert fetched.out.splitlines() == ["feedback (feedback recorded)", "1 messages processed"]
    assert recorded(s) == [(meeting["id"], "Very helpful, thank you.\nAda explained it all.", PAT)]
    assert s.run("quarantine", "--format", "json").json() == []
    # Fetched again (a crash before the mark, say): recorded once.
    assert s.run("mail", "fetch").out.splitlines() == ["0 messages processed"]
    assert len(recorded(s)) == 1


def test_a_reply_to_the_address_alone_with_a_calendar_part_is_feedback_not_an_answer(
    imap_school: Callable[..., ImapSchool],
) -> None:
    """With plus addressing, matched by the plus-address token (no In-Reply-To); the
    calendar part it carries (a DECLINE of the meeting) is not taken for an iTIP answer."""
    s, sink, _ = imap_school()
    s.config.write_text(
        s.config.read_text().replace(
            f'organizer = "{ORGANIZER}"', f'organizer = "{ORGANIZER}"\nplus_addressing = true'
        )
    )
    meeting, request = asked(s, sink)
    reply = answer(request, "We could not find the room at first.", in_reply_to=False)
    decline = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nMETHOD:REPLY\r\n"
        f"BEGIN:VEVENT\r\nUID:{meeting['uid']}\r\nSEQUENCE:{meeting['sequence']}\r\n"
        "DTSTAMP:20270101T000000Z\r\n"
        f"ATTENDEE;PARTSTAT=DECLINED:mailto:{PAT}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    reply.add_attachment(
        decline.encode(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    sent_before = len(sink.received)
    done = s.run("mail", "deliver", stdin=bytes(reply))
    assert done.out.strip() == "feedback (feedback recorded)"
    assert recorded(s) == [(meeting["id"], "We could not find the room at first.", PAT)]
    after = next(m for m in s.meetings() if m["id"] == meeting["id"])
    assert (after["state"], after["sequence"]) == ("completed", meeting["sequence"])
    assert len(sink.received) == sent_before  # nobody was answered
    assert s.run("quarantine", "--format", "json").json() == []


def test_a_stranger_or_an_auto_reply_is_not_feedback(
    imap_school: Callable[..., ImapSchool],
) -> None:
    s, sink, _ = imap_school()
    meeting, request = asked(s, sink)
    # To the feedback address, naming the request: a stranger's words are not recorded.
    stranger = answer(request, "Hello from someone else.")
    stranger.replace_header("From", "Evil <evil@example.com>")
    done = s.run("mail", "deliver", stdin=bytes(stranger))
    assert done.out.strip().startswith("quarantined (sender-not-attendee")
    # A guardian of the school but not of this meeting (Sam) is a stranger here too.
    other = answer(request, "Not my meeting.")
    other.replace_header("From", "Sam Smith <sam@example.com>")
    assert "sender-not-attendee" in s.run("mail", "deliver", stdin=bytes(other)).out
    away = answer(request, "I am out of the office until Monday.")
    away["Auto-Submitted"] = "auto-replied"
    assert s.run("mail", "deliver", stdin=bytes(away)).out.strip().startswith("auto_reply")
    assert recorded(s) == []
    held = s.run("quarantine", "--format", "json").json()
    assert [(q["sender"], q["reason"]) for q in held] == [
        ("evil@example.com", "sender-not-attendee"),
        ("sam@example.com", "sender-not-attendee"),
    ]
    assert "Feedback:" not in s.run("meetings", "show", str(meeting["id"])).out


def test_feedback_from_a_guardians_alias_is_recorded_as_that_guardian(
    imap_school: Callable[..., ImapSchool],
) -> None:
    """The sender is compared as an iTIP reply's is: ``[mail] aliases`` count."""
    s, sink, _ = imap_school()
    s.config.write_text(
        s.config.read_text().replace(
            f'organizer = "{ORGANIZER}"',
            f'organizer = "{ORGANIZER}"\n'
            f'aliases = {{ "{PAT}" = ["pat.johnson@work.example.com"] }}',
        )
    )
    meeting, request = asked(s, sink)
    reply = answer(request, "Thanks from my work address.")
    reply.replace_header("From", "Pat Johnson <Pat.Johnson@work.example.com>")
    assert s.run("mail", "deliver", stdin=bytes(reply)).out.strip() == (
        "feedback (feedback recorded)"
    )
    assert recorded(s) == [(meeting["id"], "Thanks from my work address.", PAT)]


def test_meetings_show_lists_the_feedback_with_who_sent_it(
    imap_school: Callable[..., ImapSchool],
) -> None:
    s, sink, _ = imap_school()
    meeting, request = asked(s, sink)
    s.run("mail", "deliver", stdin=bytes(answer(request, "Ada was wonderful.\nThank you.")))
    shown = s.run("meetings", "show", str(meeting["id"])).out
    feedback = shown.split("\nFeedback:\n", 1)[1].splitlines()
    assert feedback[0].endswith(f" Pat Johnson <{PAT}>: Ada was wonderful.")
    assert feedback[1].strip() == "Thank you."
    assert "On Tue, Lincoln High School wrote" not in shown  # the quote is not kept
