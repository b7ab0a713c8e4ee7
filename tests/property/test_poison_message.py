"""Issue 7, item 1: no inbound message is a poison message.

A message whose headers carry raw UTF-8 (RFC 6532, legitimate internationalised mail) or
other 8-bit octets, control characters or overlong values, or whose calendar part has a
wrong or missing charset, is decided or quarantined with a reason, every time: never an
exception (which `mail deliver` turns into exit 75, so the MTA retries it until it
bounces).  In process on SQLite and PostgreSQL, and once through `mail deliver`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Inbound, Meeting
from ptm_sync.app.channels.replies import Outcome
from ptm_sync.core.booking.decide import APPLIED, QUARANTINED
from tests.support.booking import (
    ADA,
    FAMILIES,
    PAT,
    SeededSchool,
    config_text,
    handmade_reply,
)
from tests.support.booking_address import booking_request
from tests.support.cli import ptm_sync

ZOE = "zoë@exämple.de"  # RFC 6532: a UTF-8 local part and an internationalised domain
ZOE_ASCII_DOMAIN = "zoë@xn--exmple-cua.de"
MUELLERS = [("S5", "Mila Müller", ZOE, "Zoë Müller", [ADA])]


@pytest.fixture
def school(db: Database) -> SeededSchool:
    return SeededSchool.create(db, families=[*FAMILIES, *MUELLERS])


def _replace_header(raw: bytes, name: bytes, line: bytes) -> bytes:
    """``raw`` with its ``name`` header line(s) replaced by ``line`` (no CRLF)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept: list[bytes] = []
    replaced = False
    for current in lines:
        if current[:1] in (b" ", b"\t") and kept and kept[-1] is line:
            continue  # a folded continuation of the replaced header
        if current.lower().startswith(name.lower() + b":"):
            if not replaced:
                kept.append(line)
                replaced = True
            continue
        kept.append(current)
    if not replaced:
        kept.insert(0, line)
    return b"\r\n".join(kept) + sep + body


def _stored(school: SeededSchool, outcome: Outcome) -> Inbound:
    assert outcome.inbound_id is not None
    return school.inbound(outcome.inbound_id)


def _printable(text: str) -> bool:
    """Text a log line, a terminal and both databases take: no surrogates, no controls."""
    return not re.search(r"[\x00-\x1f\x7f\ud800-\udfff]", text)


def _meeting_state(school: SeededSchool, meeting_id: int) -> str:
    with school.db.read() as session:
        meeting = session.get(Meeting, meeting_id)
        assert meeting is not None
        return meeting.state


# --- RFC 6532: internationalised senders are recognised ----------------------------------


@pytest.mark.parametrize(
    "sender",
    [f"Zoë Müller <{ZOE}>", ZOE, f"Zoë Müller <{ZOE_ASCII_DOMAIN}>"],
    ids=["utf8-name-and-address", "bare-utf8-address", "a-label-domain"],
)
def test_a_reply_from_an_internationalised_address_of_the_guardian_is_applied(
    school: SeededSchool, sender: str
) -> None:
    meeting = school.propose(ADA, ZOE)
    raw = handmade_reply(
        meeting.uid, ZOE, "ACCEPTED", now=school.now + timedelta(minutes=5), sender=sender
    )
    assert b"\xc3\xab" in raw.partition(b"\r\n\r\n")[0]  # raw UTF-8 in the From header

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    assert _stored(school, outcome).sender == sender.rpartition("<")[2].rstrip(">")
    assert _meeting_state(school, meeting.id) == "confirmed"


# --- 8-bit octets and controls anywhere in the headers -----------------------------------

#: (header, value octets) that leave the reply valid: it must still be applied.
HARMLESS = {
    "subject-utf8": (b"Subject", b"Subject: Zugesagt: Gespr\xc3\xa4ch mit Frau M\xc3\xbcller"),
    "subject-latin1": (b"Subject", b"Subject: Zugesagt: Gespr\xe4ch"),
    "subject-invalid-utf8": (b"Subject", b"Subject: \xff\xfe\xc3 broken"),
    "subject-nul": (b"Subject", b"Subject: a\x00b"),
    "message-id-utf8": (b"Message-ID", b"Message-ID: <r\xc3\xa9ponse-1@ex\xc3\xa4mple.de>"),
    "message-id-latin1": (b"Message-ID", b"Message-ID: <r\xe9ponse-2@example.de>"),
    "message-id-nul": (b"Message-ID", b"Message-ID: <nul\x00-3@example.net>"),
    "message-id-overlong": (b"Message-ID", b"Message-ID: <" + b"x" * 5000 + b"@example.net>"),
    "from-name-latin1": (b"From", b"From: P\xe4t J\xf6hnson <" + PAT.encode() + b">"),
    "from-name-utf8": (b"From", f"From: Pät Jöhnson <{PAT}>".encode()),
    "to-utf8": (b"To", "To: Schüler-Sprechtag <conferences@lincoln.example.org>".encode()),
    "date-garbage": (b"Date", b"Date: \xff 99 Foo 99999 99:99:99 +9999"),
    "in-reply-to-latin1": (b"In-Reply-To", b"In-Reply-To: <\xe9\xe9@x>"),
    "extra-header-invalid": (b"X-Spam-Report", b"X-Spam-Report: \x80\x81\x00\xff"),
}
#: (header, value octets) that make the reply unusable: quarantined with this reason.
UNUSABLE = {
    "from-address-latin1": (
        b"From",
        b"From: p\xe4t@example.net",
        "sender-not-attendee",
    ),
    "from-address-invalid-utf8": (b"From", b"From: <p\xc3at@example.net>", "sender-not-attendee"),
    "from-address-overlong": (
        b"From",
        b"From: " + b"p" * 400 + b"@example.net",
        "sender-not-attendee",
    ),
    "from-address-nul": (b"From", b"From: pat\x00@example.net", "sender-not-attendee"),
}


@pytest.mark.parametrize("case", sorted(HARMLESS))
def test_odd_octets_in_headers_change_nothing_but_what_they_say(
    school: SeededSchool, case: str
) -> None:
    name, line = HARMLESS[case]
    meeting = school.propose(ADA, PAT)
    raw = _replace_header(school.reply(meeting, "ACCEPTED", client="thunderbird"), name, line)

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    row = _stored(school, outcome)
    assert row.sender == PAT
    assert _printable(row.message_id) and len(row.message_id) <= 998
    assert _meeting_state(school, meeting.id) == "confirmed"


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_an_unreadable_sender_is_quarantined_not_deferred(school: SeededSchool, case: str) -> None:
    name, line, reason = UNUSABLE[case]
    meeting = school.propose(ADA, PAT)
    raw = _replace_header(school.reply(meeting, "ACCEPTED", client="thunderbird"), name, line)

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, reason)
    row = _stored(school, outcome)
    assert _printable(row.sender) and len(row.sender) <= 320
    assert row.raw == raw  # kept whole for staff
    assert _meeting_state(school, meeting.id) == "proposed"


def test_the_same_odd_message_twice_is_one_record(school: SeededSchool) -> None:
    """The digest of a message with 8-bit headers is stable: the second is a duplicate."""
    meeting = school.propose(ADA, PAT)
    raw = _replace_header(
        school.reply(meeting, "ACCEPTED", client="outlook"),
        b"Message-ID",
        b"Message-ID: <r\xe9ponse\x00@example.de>",
    )
    assert school.deliver(raw).outcome == APPLIED
    assert school.deliver(raw).outcome == "duplicate"
    with school.db.read() as session:
        assert len(session.scalars(select(Inbound)).all()) == 1


# --- the calendar part: charsets, controls, numbers --------------------------------------


def _with_calendar_line(raw: bytes, line: bytes) -> bytes:
    return raw.replace(b"END:VEVENT", line + b"\r\nEND:VEVENT", 1)


@pytest.mark.parametrize(
    ("line", "charset"),
    [
        (b"COMMENT:Bis dann, Gr\xfc\xdfe", None),  # Latin-1, no charset declared
        (b"COMMENT:Bis dann, Gr\xfc\xdfe", b"utf-8"),  # Latin-1, declared UTF-8
        (b"COMMENT:Bis dann, Gr\xc3\xbc\xc3\x9fe", b"iso-8859-1"),  # UTF-8 declared Latin-1
        (b"COMMENT:nul\x00and\x01controls\x7f", b"utf-8"),
        (b"COMMENT:a charset that is no charset", b"base64"),
        (b"COMMENT:a charset that is no charset", b"rot13"),
        (b"COMMENT:an unknown charset", b"x-no-such-charset"),
        (b"COMMENT:a lone surrogate +2l4-", b"utf-7"),  # found by atheris
    ],
    ids=[
        "latin1-undeclared",
        "latin1-declared-utf8",
        "utf8-declared-latin1",
        "controls",
        "charset-base64",
        "charset-rot13",
        "charset-unknown",
        "charset-utf7-lone-surrogate",
    ],
)
def test_a_calendar_part_in_the_wrong_charset_is_still_read(
    school: SeededSchool, line: bytes, charset: bytes | None
) -> None:
    meeting = school.propose(ADA, PAT)
    raw = handmade_reply(meeting.uid, PAT, "ACCEPTED", now=school.now + timedelta(minutes=5))
    raw = _with_calendar_line(raw, line)
    declared = b"; charset=" + charset if charset else b""
    raw = raw.replace(b"; charset=utf-8", declared, 1)

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    assert _meeting_state(school, meeting.id) == "confirmed"


def test_a_request_whose_uid_the_database_cannot_hold_is_quarantined(
    school: SeededSchool,
) -> None:
    """A 300-character UID in a request to a booking address: PostgreSQL refused the new
    meeting's row (a traceback with the family's data, and exit 75 on every try), SQLite
    booked it.  Now both quarantine it with its reason."""
    raw = booking_request(school, PAT, ADA, slot=2, uid="u" * 300 + "@example.net")

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "uid-too-long")
    with school.db.read() as session:
        assert session.scalars(select(Meeting)).all() == []


def test_a_uid_with_8bit_text_is_unknown_not_a_crash(school: SeededSchool) -> None:
    """Found by atheris: the UID check compared non-ASCII text in constant time, which
    raises (the pipeline's safety net kept the message as ``internal-error``)."""
    meeting = school.propose(ADA, PAT)
    local, _, domain = meeting.uid.rpartition("@")
    uid = f"{local[:-1]}\u00e9@{domain}"  # the signature's last character, as 8-bit text
    raw = handmade_reply(uid, PAT, "ACCEPTED", now=school.now + timedelta(minutes=5))

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "unknown-uid")


def test_a_plus_address_with_8bit_text_is_the_wrong_token_not_a_crash(db: Database) -> None:
    school = SeededSchool.create(db, mail="plus_addressing = true")
    meeting = school.propose(ADA, PAT)
    raw = handmade_reply(
        meeting.uid,
        PAT,
        "ACCEPTED",
        now=school.now + timedelta(minutes=5),
        to="conferences+t\u00f6k\u00ebn@lincoln.example.org",
    )

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "wrong-token")
    assert _meeting_state(school, meeting.id) == "proposed"


# --- `mail deliver`: exit 0 and a line, never 75 ----------------------------------------


def test_mail_deliver_takes_an_internationalised_reply_and_exits_0(
    tmp_path: Path, sqlite_url: str
) -> None:
    db = Database(sqlite_url)
    db.migrate()
    school = SeededSchool.create(db, families=[*FAMILIES, *MUELLERS])
    meeting = school.propose(ADA, ZOE)
    db.dispose()
    config = tmp_path / "ptm-sync.toml"
    config.write_text(config_text() + f'\n[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    raw = handmade_reply(meeting.uid, ZOE, "ACCEPTED", now=school.now, sender=f"Zoë Müller <{ZOE}>")
    raw = _replace_header(raw, b"Message-ID", "Message-ID: <réponse-1@exämple.de>".encode())

    proc = ptm_sync(config, "mail", "deliver", stdin=raw, cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    db = Database(sqlite_url)
    with db.read() as session:
        (row,) = session.scalars(select(Inbound)).all()
    db.dispose()
    assert proc.stdout.strip().startswith(row.outcome)
    assert row.sender == ZOE
    assert row.message_id == "<réponse-1@exämple.de>"
