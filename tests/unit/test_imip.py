"""iMIP (RFC 6047): our emails as clients receive them, and clients' emails as we read them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptm_sync.core.errors import Unusable
from ptm_sync.core.ical.itip import Attendee, Invitation, Method, build_cancel, build_request
from ptm_sync.core.imip import (
    Inbound,
    Kind,
    as_bytes,
    build_invitation_email,
    build_plain_email,
    calendar_digest,
    extract,
)
from tests.support.cases import case_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imip"
NY = ZoneInfo("America/New_York")
WHEN = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


def fixture(name: str) -> Inbound:
    return extract((FIXTURES / name).read_bytes(), tz=NY)


# --- inbound: messages modelled on real clients ---------------------------------------------

EXPECTED: dict[str, dict[str, Any]] = {
    "outlook_reply_accepted.eml": {
        "kind": Kind.ITIP,
        "sender": "maria.garcia@outlook.com",
        "method": Method.REPLY,
        "uid": "c3a1f0e29b7d4f6a-wmbyrxsn7jvzeqze@lincoln.example.org",
        "partstat": ("maria.garcia@outlook.com", "ACCEPTED"),
        "organizer": None,  # Outlook leaves ORGANIZER out of replies
        "start": datetime(2027, 4, 10, 19, 0, tzinfo=UTC),  # Eastern Standard Time, EDT
        "comment": None,
    },
    "outlook_reply_declined_comment.eml": {
        "kind": Kind.ITIP,
        "sender": "peter.novak@contoso-family.example.com",
        "method": Method.REPLY,
        "partstat": ("peter.novak@contoso-family.example.com", "DECLINED"),
        "sequence": 1,
        "comment": "Sorry, I work late that evening. Could we meet the next morning instead?",
    },
    "outlook_counter_propose_new_time.eml": {
        "kind": Kind.ITIP,
        "method": Method.COUNTER,
        "uid": "51f2c8e7d0a94b6e-ap7icmpy6ucc74bm@lincoln.example.org",
        "partstat": ("maria.garcia@outlook.com", "TENTATIVE"),
        "start": datetime(2027, 4, 10, 20, 30, tzinfo=UTC),
        "end": datetime(2027, 4, 10, 20, 45, tzinfo=UTC),
        "organizer": "conferences+et6oyndcqckuusvh@lincoln.example.org",
    },
    "gmail_reply_accepted.eml": {
        "kind": Kind.ITIP,
        "from_address": "calendar-notification@google.com",
        "sender": "jane.doe@gmail.com",  # Reply-To of Google's notifier
        "method": Method.REPLY,
        "method_hint": "REPLY",
        "partstat": ("jane.doe@gmail.com", "ACCEPTED"),
        "delivered_to": ("conferences+xyioe7f7h4huj6ds@lincoln.example.org",),
    },
    "gmail_reply_declined_note.eml": {
        "kind": Kind.ITIP,
        "sender": "anna.novak@gmail.com",
        "partstat": ("anna.novak@gmail.com", "DECLINED"),
        "comment": "We're away that weekend, is Monday possible?",  # X-RESPONSE-COMMENT
    },
    "gmail_counter_propose_new_time.eml": {
        "kind": Kind.ITIP,
        "from_address": "calendar-notification@google.com",
        "sender": "tomas.ruiz@gmail.com",  # Reply-To of Google's notifier
        "method": Method.COUNTER,
        "method_hint": "COUNTER",
        "proposes_time": True,
        "partstat": ("tomas.ruiz@gmail.com", "TENTATIVE"),
        "start": datetime(2027, 4, 10, 20, 0, tzinfo=UTC),
        "end": datetime(2027, 4, 10, 20, 15, tzinfo=UTC),
        "comment": "Could we do 4pm? Thank you!",  # X-RESPONSE-COMMENT
    },
    "gmail_reply_propose_new_time.eml": {
        "kind": Kind.ITIP,
        "from_address": "calendar-notification@google.com",
        "sender": "priya.shah@gmail.com",
        "method": Method.REPLY,
        "method_hint": "REPLY",
        "proposes_time": False,  # no marker in a REPLY: see test_gmail_reply_proposing_…
        "partstat": ("priya.shah@gmail.com", "TENTATIVE"),
        "start": datetime(2027, 4, 10, 21, 0, tzinfo=UTC),
        "end": datetime(2027, 4, 10, 21, 15, tzinfo=UTC),
        "comment": "I can only come after work, 5pm would be great.",
    },
    "apple_mail_reply_accepted_qp.eml": {
        "kind": Kind.ITIP,
        "sender": "tom.lee@icloud.com",
        "method": Method.REPLY,
        "method_hint": None,
        "sequence": 1,
        "partstat": ("tom.lee@icloud.com", "ACCEPTED"),
        "start": datetime(2027, 4, 10, 20, 0, tzinfo=UTC),
    },
    "thunderbird_reply_tentative.eml": {
        "kind": Kind.ITIP,
        "method": Method.REPLY,
        "partstat": ("ruth@weber.example.net", "TENTATIVE"),
    },
    "proton_reply_declined_no_method_param.eml": {
        "kind": Kind.ITIP,
        "method": Method.REPLY,
        "method_hint": None,
        "partstat": ("sam.okafor@proton.me", "DECLINED"),
    },
    "application_ics_reply.eml": {
        "kind": Kind.ITIP,
        "method": Method.REPLY,
        "partstat": ("lin.chen@webmail.example.com", "ACCEPTED"),
    },
    "notes_reply_windows1257_method_in_mime.eml": {
        "kind": Kind.ITIP,
        "method": Method.REPLY,  # from the MIME parameter only
        "method_hint": "REPLY",
        "cn": "Jūratė Žemaitienė",  # windows-1257 decoded
        "from_name": "Jūratė Žemaitienė",
        "subject": "Priimta: Conference: Ieva (Jūratė Žemaitienė)",
    },
    "forwarded_reply_rfc822.eml": {
        "kind": Kind.ITIP,
        "sender": "omar@haddad-family.example.org",  # the forwarder, not the attendee
        "method": Method.REPLY,
        "partstat": ("omar.haddad@gmail.com", "ACCEPTED"),
    },
    "thunderbird_refresh.eml": {
        "kind": Kind.ITIP,
        "method": Method.REFRESH,
        "partstat": ("maria.garcia@outlook.com", "NEEDS-ACTION"),
    },
    "gmail_request_to_booking_address.eml": {
        "kind": Kind.ITIP,
        "sender": "jane.doe@gmail.com",
        "method": Method.REQUEST,
        "organizer": "jane.doe@gmail.com",
        "start": datetime(2027, 4, 11, 13, 0, tzinfo=UTC),
        "recipients": ("book+smith@lincoln.example.org",),
    },
    "dsn_bounce_of_invitation.eml": {
        "kind": Kind.BOUNCE,
        "itip": None,
        "original_message_id": "<ptm-invite-c3a1f0e29b7d4f6a-0@lincoln.example.org>",
        "failed_recipients": ("maria.garcia@outlook.invalid",),
        "bounced_uid": "c3a1f0e29b7d4f6a-wmbyrxsn7jvzeqze@lincoln.example.org",
    },
    "auto_reply_out_of_office.eml": {"kind": Kind.AUTO_REPLY, "itip": None},
    "auto_reply_quoting_request.eml": {"kind": Kind.AUTO_REPLY, "itip": None},
    "auto_generated_reply_accepted.eml": {
        "kind": Kind.ITIP,
        "auto_submitted": "auto-generated",
        "partstat": ("calendar@weber.example.net", "ACCEPTED"),
    },
    "read_receipt_mdn.eml": {
        "kind": Kind.READ_RECEIPT,
        "itip": None,
        "original_message_id": "<ptm-invite-2f8c6a1e9d3b4c70-0@lincoln.example.org>",
    },
    "broken_icalendar.eml": {"kind": Kind.UNUSABLE, "reason": "broken-icalendar", "itip": None},
    "no_calendar_part.eml": {
        "kind": Kind.NO_CALENDAR,
        "calendar": None,
        "in_reply_to": "<ptm-invite-e07a3b9c5d2f4816-0@lincoln.example.org>",
    },
}


def observed(inbound: Inbound, name: str) -> object:
    message = inbound.itip
    if name in (
        "method",
        "uid",
        "sequence",
        "organizer",
        "start",
        "end",
        "comment",
        "proposes_time",
    ):
        assert message is not None, inbound
        return getattr(message, name)
    if name == "partstat":
        assert message is not None and message.replying_attendee is not None, inbound
        return (message.replying_attendee.email, message.replying_attendee.partstat)
    if name == "cn":
        assert message is not None and message.replying_attendee is not None
        return message.replying_attendee.cn
    if name == "bounced_uid":
        return inbound.bounced.uid if inbound.bounced else None
    if name == "recipients":
        return tuple(r for r in inbound.recipients if r.startswith("book+"))
    return getattr(inbound, name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_client_message_is_read(name: str) -> None:
    inbound = fixture(name)
    assert {key: observed(inbound, key) for key in EXPECTED[name]} == EXPECTED[name]


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_message_keeps_its_id_sender_and_authentication_results(name: str) -> None:
    inbound = fixture(name)
    assert inbound.message_id and inbound.message_id.startswith("<")
    assert inbound.sender and "@" in inbound.sender
    assert inbound.date is not None and inbound.date.tzinfo is not None
    raw = (FIXTURES / name).read_bytes()
    assert len(inbound.authentication_results) == raw.count(b"\nAuthentication-Results:")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("dsn_bounce_of_invitation.eml", "bounce"),
        ("auto_reply_out_of_office.eml", "auto-reply"),
        ("read_receipt_mdn.eml", "read-receipt"),
        ("no_calendar_part.eml", "no-calendar-part"),
        ("broken_icalendar.eml", "broken-icalendar"),
    ],
)
def test_what_is_no_itip_names_its_quarantine_reason(name: str, reason: str) -> None:
    inbound = fixture(name)
    assert inbound.quarantine_reason == reason
    with pytest.raises(Unusable) as raised:
        inbound.require_itip()
    assert raised.value.reason == reason


#: The meeting both Gmail proposals answer: 15:30-15:45 EDT on 2027-04-10.
GMAIL_MEETING = (
    datetime(2027, 4, 10, 19, 30, tzinfo=UTC),
    datetime(2027, 4, 10, 19, 45, tzinfo=UTC),
)


@pytest.mark.parametrize(
    ("name", "proposed"),
    [
        ("gmail_counter_propose_new_time.eml", (20, 0)),
        ("gmail_reply_propose_new_time.eml", (21, 0)),
    ],
)
def test_gmail_reply_proposing_a_new_time_asks_for_it_like_a_counter(
    name: str, proposed: tuple[int, int]
) -> None:
    """Google's "Propose a new time": the proposed span, whichever method carries it."""
    message = fixture(name).require_itip()
    start = datetime(2027, 4, 10, *proposed, tzinfo=UTC)
    assert message.proposal(*GMAIL_MEETING) == (start, start + timedelta(minutes=15))


def test_a_gmail_reply_at_the_meetings_time_proposes_nothing() -> None:
    message = fixture("gmail_reply_declined_note.eml").require_itip()
    assert message.proposal(*GMAIL_MEETING) is None


def test_a_usable_reply_needs_no_quarantine() -> None:
    inbound = fixture("gmail_reply_accepted.eml")
    assert inbound.quarantine_reason is None
    assert inbound.require_itip() is inbound.itip


# --- inbound: variants built here ---------------------------------------------------------

REPLY_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
    "UID:u-1@lincoln.example.org\r\nDTSTAMP:20270321T120000Z\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED;CN=Zoë Brontë:mailto:zoe@example.org\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def message(*parts: tuple[str, bytes, dict[str, str]], **headers: str) -> bytes:
    """A multipart/mixed email with the given (content type, body, extra params) parts."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = headers.pop("From", "Zoe <zoe@example.org>")
    msg["To"] = "conferences+tok@lincoln.example.org"
    msg["Subject"] = "Accepted"
    msg["Message-ID"] = "<m1@example.org>"
    msg["Date"] = "Sun, 21 Mar 2027 12:00:00 +0000"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("See attached.")
    for ctype, body, params in parts:
        maintype, subtype = ctype.split("/")
        filename = params.pop("filename", None)
        msg.add_attachment(
            body, maintype=maintype, subtype=subtype, filename=filename, params=params
        )
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("parts", "method_hint"),
    [
        ([("application/octet-stream", REPLY_ICS.encode(), {"filename": "reply.ics"})], None),
        ([("text/plain", REPLY_ICS.encode(), {"filename": "c141520.ics"})], None),
        ([("application/ics", REPLY_ICS.encode(), {})], None),
        ([("text/calendar", REPLY_ICS.encode("utf-16"), {"charset": "utf-16"})], None),
        ([("text/calendar", REPLY_ICS.encode("iso-8859-1"), {"charset": "iso-8859-1"})], None),
        ([("text/calendar", REPLY_ICS.encode("iso-8859-1"), {"charset": "x-unknown"})], None),
        ([("text/calendar", REPLY_ICS.encode(), {"method": "reply"})], "REPLY"),
    ],
)
def test_calendar_part_is_found_whatever_its_type_and_charset(
    parts: list[tuple[str, bytes, dict[str, str]]], method_hint: str | None
) -> None:
    inbound = extract(message(*parts), tz=NY)
    assert inbound.kind is Kind.ITIP
    assert inbound.method_hint == method_hint
    assert inbound.itip is not None and inbound.itip.attendees[0].cn == "Zoë Brontë"
    assert inbound.calendar is not None and "Zoë".encode() in inbound.calendar


def test_the_part_that_reads_wins_over_a_broken_one() -> None:
    broken = ("text/calendar", b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\n", {"method": "REPLY"})
    good = ("application/ics", REPLY_ICS.encode(), {"filename": "invite.ics"})
    assert extract(message(broken, good), tz=NY).kind is Kind.ITIP


def test_the_part_whose_method_matches_wins() -> None:
    request = REPLY_ICS.replace("METHOD:REPLY", "METHOD:REQUEST").replace("u-1@", "u-2@")
    mislabelled = ("text/calendar", request.encode(), {"method": "REPLY"})
    labelled = ("text/calendar", REPLY_ICS.encode(), {"method": "REPLY"})
    inbound = extract(message(mislabelled, labelled), tz=NY)
    assert inbound.itip is not None and inbound.itip.uid == "u-1@lincoln.example.org"


# --- the calendar part is unfolded on octets, then decoded (RFC 5545 §3.1) -------------------

#: The note of shared/cases/reply-folded-inside-utf8.eml, as the parent wrote it (the fold
#: at octet 75 splits the "à" of "là"; "Hélas" is followed by eleven ASCII full stops).
FOLDED_NOTE = (
    "Hélas........... Désolé, nous sommes en déplacement ce soir-là ; "
    "pourriez-vous proposer un créneau plus tôt ? Merci beaucoup"
)


def test_a_reply_folded_inside_a_utf8_character_keeps_its_note() -> None:
    raw = case_bytes(
        "reply-folded-inside-utf8.eml",
        uid="4f7c2a9e1b3d5a60-fqz3m2ltd7ckbxhe@lincoln.example.org",
        organizer="conferences+k2pyj5t4ylnl3s3x@lincoln.example.org",
        attendee="al.black@example.net",
    )
    inbound = extract(raw, tz=NY)
    assert inbound.kind is Kind.ITIP and inbound.itip is not None
    message = inbound.itip
    assert message.uid == "4f7c2a9e1b3d5a60-fqz3m2ltd7ckbxhe@lincoln.example.org"
    assert message.comment == FOLDED_NOTE
    assert message.replying_attendee == Attendee("al.black@example.net", "DECLINED", "Al Black")
    assert inbound.sender == "al.black@example.net"
    assert inbound.calendar is not None  # kept as valid UTF-8, the fold undone
    assert "ce soir-là \\; pourriez-vous" in inbound.calendar.decode("utf-8")


def test_the_case_email_must_have_its_placeholders_filled() -> None:
    with pytest.raises(ValueError, match="@@UID@@"):
        case_bytes("reply-folded-inside-utf8.eml", organizer="o@x.org", attendee="a@x.org")


def test_one_bad_octet_in_a_part_spoils_only_its_own_character() -> None:
    body = REPLY_ICS.replace("END:VEVENT", "COMMENT:Merci \udcff à bientôt\r\nEND:VEVENT")
    part = ("text/calendar", body.encode("utf-8", "surrogateescape"), {"charset": "utf-8"})
    inbound = extract(message(part), tz=NY)
    assert inbound.itip is not None
    assert inbound.itip.attendees[0].cn == "Zoë Brontë"
    assert inbound.itip.comment == "Merci \ufffd à bientôt"


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto_Submitted": "auto-replied"}, Kind.AUTO_REPLY),
        ({"Auto_Submitted": "auto-generated"}, Kind.AUTO_REPLY),
        ({"Auto_Submitted": "no"}, Kind.NO_CALENDAR),
        ({"X_Autoreply": "yes"}, Kind.AUTO_REPLY),
        ({"X_Autorespond": "Out of office"}, Kind.AUTO_REPLY),
        ({"Precedence": "auto_reply"}, Kind.AUTO_REPLY),
        ({"Precedence": "bulk"}, Kind.NO_CALENDAR),
        ({"From": "MAILER-DAEMON@mx.example.org"}, Kind.BOUNCE),
        ({"From": "Mail Delivery Subsystem <postmaster@mx.example.org>"}, Kind.BOUNCE),
        ({"X_Failed_Recipients": "jane@example.org"}, Kind.BOUNCE),
    ],
)
def test_automatic_messages_are_told_apart(headers: dict[str, str], kind: Kind) -> None:
    assert extract(message(**headers), tz=NY).kind is kind


def test_an_automatic_calendar_reply_still_counts() -> None:
    raw = message(
        ("text/calendar", REPLY_ICS.encode(), {"method": "REPLY"}), Auto_Submitted="auto-generated"
    )
    assert extract(raw, tz=NY).kind is Kind.ITIP


def test_googles_notifier_without_reply_to_stays_the_sender() -> None:
    raw = message(From="Google Calendar <calendar-notification@google.com>")
    assert extract(raw, tz=NY).sender == "calendar-notification@google.com"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n",
        b"hello world",
        b"\x00\xff\xfe garbage \x80",
        b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
    ],
)
def test_bytes_that_are_no_email_are_refused(raw: bytes) -> None:
    with pytest.raises(Unusable) as raised:
        extract(raw, tz=NY)
    assert raised.value.reason == "not-an-email"


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@b.org\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nbroken",
        b"From: =?utf-8?B?!!!?= <a@b.org>\r\nDate: yesterday\r\nSubject: =?bogus?Q?x?=\r\n\r\nhi",
        b"From: a@b.org\r\nContent-Type: text/calendar; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
    ],
)
def test_malformed_email_never_raises_anything_but_unusable(raw: bytes) -> None:
    inbound = extract(raw, tz=NY)
    assert inbound.kind in (Kind.NO_CALENDAR, Kind.UNUSABLE)


SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]


@settings(max_examples=150, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    cuts=st.lists(
        st.tuples(st.floats(0, 1), st.binary(max_size=12), st.integers(0, 40)), max_size=6
    ),
)
def test_mangled_client_messages_never_raise_anything_but_unusable(
    sample: bytes, cuts: list[tuple[float, bytes, int]]
) -> None:
    data = bytearray(sample)
    for where, insert, delete in cuts:  # splice: delete some bytes, insert others
        at = int(where * len(data))
        data[at : at + delete] = insert
    try:
        inbound = extract(bytes(data), tz=NY)
    except Unusable as exc:
        assert exc.reason == "not-an-email"
    else:
        assert inbound.kind in set(Kind)


def test_digest_identifies_one_delivery() -> None:
    inbound = fixture("gmail_reply_accepted.eml")
    again = fixture("gmail_reply_accepted.eml")
    assert calendar_digest(inbound) == calendar_digest(again)
    assert len(calendar_digest(inbound)) == 64
    assert calendar_digest(replace(inbound, message_id="<other@google.com>")) != calendar_digest(
        inbound
    )
    assert calendar_digest(replace(inbound, calendar=b"x")) != calendar_digest(inbound)


# --- outbound -----------------------------------------------------------------------------

INVITATION = Invitation(
    uid="c3a1f0e29b7d4f6a-wmbyrxsn7jvzeqze@lincoln.example.org",
    sequence=0,
    start=datetime(2027, 4, 10, 19, 0, tzinfo=UTC),
    end=datetime(2027, 4, 10, 19, 15, tzinfo=UTC),
    summary="Conférence: Zoë (Renée Müller)",
    organizer="conferences+2l4keilcnlkrump6@lincoln.example.org",
    organizer_name="Lincoln High School Conferences",
    attendee="renee@example.org",
    attendee_name="Renée Müller",
    status="TENTATIVE",
    dtstamp=WHEN,
    video_url="https://meet.lincoln.example.org/ptm-c3a1f0e2",
)


def invitation_email(method: str = "REQUEST") -> EmailMessage:
    cal = build_request(INVITATION, NY) if method == "REQUEST" else build_cancel(INVITATION, NY)
    return build_invitation_email(
        cal=cal,
        method=method,
        sender="conferences+2l4keilcnlkrump6@lincoln.example.org",
        sender_name="Lincoln High School Conferences",
        to="renee@example.org",
        to_name="Renée Müller",
        subject="Invitation: Conférence with Mr. Smith",
        text="You are invited. Zoë's teacher is Mr. Smith.",
        html="<p>You are invited. Zoë's teacher is Mr. Smith.</p>",
        message_id="ptm-invite-c3a1f0e29b7d4f6a-0@lincoln.example.org",
        date=WHEN,
        reply_to="office@lincoln.example.org",
    )


def shape(part: Any) -> object:
    """The MIME tree as nested (content type, children) tuples."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])
    return part.get_content_type()


def test_invitation_has_the_shape_every_client_shows_with_buttons() -> None:
    parsed = BytesParser(policy=policy.default).parsebytes(as_bytes(invitation_email()))
    assert shape(parsed) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", "text/html", "text/calendar"]),
            "application/ics",
        ],
    )
    calendar_part = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    attachment = next(p for p in parsed.walk() if p.get_content_type() == "application/ics")
    assert (attachment.get_filename(), attachment.get_param("name")) == ("invite.ics", "invite.ics")
    assert attachment.get_content_disposition() == "attachment"


def test_invitation_headers_are_fixed_by_the_caller() -> None:
    parsed = BytesParser(policy=policy.default).parsebytes(as_bytes(invitation_email()))
    assert parsed["Message-ID"] == "<ptm-invite-c3a1f0e29b7d4f6a-0@lincoln.example.org>"
    assert parsed["Date"].datetime == WHEN
    assert parsed["From"].addresses[0].display_name == "Lincoln High School Conferences"
    assert parsed["To"].addresses[0].display_name == "Renée Müller"
    assert parsed["Reply-To"] == "office@lincoln.example.org"
    assert as_bytes(invitation_email()) == as_bytes(invitation_email())  # same bytes again


def test_invitation_needs_no_8bit_transport_and_uses_crlf() -> None:
    raw = as_bytes(invitation_email())
    assert raw.isascii()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    encodings = {p["Content-Transfer-Encoding"] for p in parsed.walk() if not p.is_multipart()}
    assert encodings <= {"7bit", "quoted-printable", "base64"}


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
def test_our_invitation_reads_back_through_our_own_parser(method: str) -> None:
    inbound = extract(as_bytes(invitation_email(method)), tz=NY)
    assert inbound.kind is Kind.ITIP
    assert inbound.message_id == "<ptm-invite-c3a1f0e29b7d4f6a-0@lincoln.example.org>"
    assert inbound.method_hint == method
    assert inbound.itip is not None
    assert (inbound.itip.method, inbound.itip.uid) == (Method(method), INVITATION.uid)
    assert (inbound.itip.start, inbound.itip.end) == (INVITATION.start, INVITATION.end)
    assert inbound.itip.summary == INVITATION.summary
    assert inbound.itip.attendees[0].cn == "Renée Müller"


def test_invitation_refuses_a_calendar_of_another_method() -> None:
    with pytest.raises(ValueError):
        build_invitation_email(
            cal=build_cancel(INVITATION, NY),
            method="REQUEST",
            sender="a@b.org",
            sender_name="A",
            to="c@d.org",
            to_name="C",
            subject="s",
            text="t",
            html="<p>t</p>",
            message_id="<x@b.org>",
            date=WHEN,
        )


@pytest.mark.parametrize(
    ("html", "in_reply_to", "expected_shape"),
    [
        (
            "<p>Booking opens on Monday.</p>",
            None,
            ("multipart/alternative", ["text/plain", "text/html"]),
        ),
        ("", "<m1@example.org>", "text/plain"),
    ],
)
def test_plain_notification(html: str, in_reply_to: str | None, expected_shape: object) -> None:
    msg = build_plain_email(
        sender="conferences@lincoln.example.org",
        sender_name="Lincoln High School Conferences",
        to="jane.doe@gmail.com",
        to_name="Jane Doe",
        subject="Parent-teacher conferences: how to book",
        text="Booking opens on Monday.",
        html=html,
        message_id="ptm-notice-1@lincoln.example.org",
        date=WHEN,
        in_reply_to=in_reply_to,
    )
    raw = as_bytes(msg)
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert shape(parsed) == expected_shape
    assert parsed["In-Reply-To"] == in_reply_to
    inbound = extract(raw, tz=NY)
    assert (inbound.kind, inbound.in_reply_to) == (Kind.NO_CALENDAR, in_reply_to)
