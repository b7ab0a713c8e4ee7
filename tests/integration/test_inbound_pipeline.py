"""The inbound pipeline: who may act on a meeting, every client's reply, each message once.

In process, on SQLite and PostgreSQL, with a fixed clock.  The trust rules are DESIGN §4;
the replies come from :mod:`ptm_sync.demo.parents`, shaped like real clients' messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from ptm_sync.adapters.store import Database, Inbound, MeetingHistory, Outbox
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.app.channels import replies as inbound_module
from ptm_sync.core import trust
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE, QUARANTINED
from ptm_sync.demo import parents
from tests.support.booking import (
    ADA,
    ALAN,
    AUTHSERV,
    ORGANIZER,
    PAT,
    SAM,
    SeededSchool,
    event_of,
    handmade_reply,
    parse_email,
    race,
    with_header,
)


@pytest.fixture
def school(db: Database) -> SeededSchool:
    return SeededSchool.create(db)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _count(db: Database, table: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _from(raw: bytes, old: str, new: str) -> bytes:
    """The reply with its From address replaced (a different sender, same content)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    lines = [
        line.replace(old.encode(), new.encode()) if line.lower().startswith(b"from:") else line
        for line in lines
    ]
    return b"\r\n".join(lines) + sep + body


def _to(raw: bytes, new: str) -> bytes:
    """The reply addressed to ``new`` instead."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [
        (b"To: " + new.encode()) if line.lower().startswith(b"to:") else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + sep + body


# --- UIDs ---------------------------------------------------------------------------------


def test_a_forged_uid_is_refused_before_any_meeting_is_looked_up(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT)
    local, _, domain = meeting.uid.partition("@")
    # Same shape (random part, dash, 16-character MAC), one character of the MAC changed.
    forged_uid = f"{local[:-4]}{'a' if local[-4] != 'a' else 'b'}{local[-3:]}@{domain}"
    forged = handmade_reply(forged_uid, PAT, "ACCEPTED", now=school.now)

    with statements(school.db) as sql:
        outcome = school.deliver(forged)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "unknown-uid")
    assert not [s for s in sql if "FROM meetings" in s], "a meeting was looked up"
    assert school.meeting(meeting.id).state == "proposed"


def test_a_well_signed_uid_of_no_meeting_is_unknown(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT)
    with school.db.read() as session:
        secret = signing_secret(session)
    stray = trust.make_uid(secret, "0123456789abcdef01234567", "lincoln.example.org")
    raw = handmade_reply(stray, PAT, "ACCEPTED", now=school.now)

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "unknown-uid")
    assert school.meeting(meeting.id).state == "proposed"


# --- senders ------------------------------------------------------------------------------


def test_a_sender_who_is_not_the_attendee_is_quarantined(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT)
    raw = _from(school.reply(meeting, "ACCEPTED"), PAT, "mallory@evil.example")

    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "sender-not-attendee")
    row = school.inbound(outcome.inbound_id or 0)
    assert row.sender == "mallory@evil.example" and row.raw == raw
    assert school.meeting(meeting.id).state == "proposed"
    assert school.history(meeting.id)[-1].to_state == "proposed"


def test_an_alias_from_the_config_may_answer_for_the_guardian(db: Database) -> None:
    school = SeededSchool.create(
        db, mail='aliases = { "pat@example.net" = ["pat.johnson@work.example"] }'
    )
    meeting = school.propose(ADA, PAT)
    other = school.propose(ADA, SAM, slot=1)

    by_alias = _from(school.reply(meeting, "ACCEPTED"), PAT, "pat.johnson@work.example")
    assert school.deliver(by_alias).outcome == APPLIED
    # The alias is Pat's, not Sam's.
    for_sam = _from(school.reply(other, "ACCEPTED"), SAM, "pat.johnson@work.example")
    assert school.deliver(for_sam).reason == "sender-not-attendee"

    assert school.meeting(meeting.id).state == "confirmed"
    assert school.meeting(other.id).state == "proposed"


def test_google_replies_from_its_notifier_count_for_the_parent_in_reply_to(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT)
    other = school.propose(ALAN, SAM, slot=2, students=["S3"])
    google = school.reply(meeting, "ACCEPTED", client="gmail")
    assert parse_email(google)["From"].addresses[0].addr_spec == "calendar-notification@google.com"

    assert school.deliver(google).reason == "accepted"

    # The notifier vouches for nobody: what counts is who is in Reply-To.
    forged = school.reply(other, "ACCEPTED", client="gmail").replace(
        f"<{SAM}>".encode(), b"<mallory@evil.example>", 1
    )
    outcome = school.deliver(forged)
    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "sender-not-attendee")
    assert school.meeting(other.id).state == "proposed"


def test_with_plus_addressing_each_meeting_has_its_own_organizer_address(db: Database) -> None:
    school = SeededSchool.create(db, mail="plus_addressing = true")
    mine = school.propose(ADA, PAT)
    theirs = school.propose(ALAN, PAT, slot=2)
    with db.read() as session:
        secret = signing_secret(session)
    local, domain = ORGANIZER.split("@")
    address = f"{local}+{trust.make_token(secret, mine.uid)}@{domain}"
    assert school.meeting(mine.id).organizer == address
    invitation = school.emails(mine.id)[0]
    assert str(invitation.event["ORGANIZER"]).lower() == f"mailto:{address}"
    assert invitation.message["From"].addresses[0].addr_spec == address

    # A reply sent to the other meeting's address cannot be ours to act on ...
    wrong = _to(school.reply(mine, "ACCEPTED"), school.meeting(theirs.id).organizer)
    outcome = school.deliver(wrong)
    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "wrong-token")
    assert school.meeting(mine.id).state == "proposed"

    # ... one sent to its own address is.
    right = school.reply(mine, "ACCEPTED", at=timedelta(minutes=20))
    assert address in parse_email(right)["To"]
    assert school.deliver(right, at=timedelta(minutes=21)).outcome == APPLIED
    assert school.meeting(mine.id).state == "confirmed"


def test_a_failed_dmarc_check_by_our_own_mail_server_quarantines(db: Database) -> None:
    school = SeededSchool.create(db, mail=f'trusted_authserv_id = "{AUTHSERV}"')
    meeting = school.propose(ADA, PAT)
    verdict = "dmarc=fail (p=reject) header.from=example.net"

    ours = with_header(
        school.reply(meeting, "ACCEPTED"), "Authentication-Results", f"{AUTHSERV}; {verdict}"
    )
    outcome = school.deliver(ours)
    assert (outcome.outcome, outcome.reason) == (QUARANTINED, "authentication-failed")
    assert school.meeting(meeting.id).state == "proposed"

    # The same verdict written by some other server (or the sender) is not ours to trust.
    theirs = with_header(
        school.reply(meeting, "ACCEPTED", at=timedelta(minutes=11)),
        "Authentication-Results",
        f"mx.evil.example; {verdict}",
    )
    assert school.deliver(theirs).outcome == APPLIED
    assert school.meeting(meeting.id).state == "confirmed"


# --- clients ------------------------------------------------------------------------------


@pytest.mark.parametrize("partstat", ["ACCEPTED", "DECLINED"])
@pytest.mark.parametrize("client", sorted(parents.CLIENTS))
def test_every_clients_reply_is_understood(
    school: SeededSchool, client: str, partstat: str
) -> None:
    meeting = school.propose(ADA, PAT)
    raw = school.reply(meeting, partstat, client=client, comment="Thanks")

    outcome = school.deliver(raw)

    expected = {"ACCEPTED": ("accepted", "confirmed"), "DECLINED": ("declined", "declined")}
    reason, state = expected[partstat]
    assert (outcome.outcome, outcome.reason) == (APPLIED, reason)
    after = school.meeting(meeting.id)
    assert (after.state, after.partstat) == (state, partstat)
    assert after.reply_sequence == 0 and after.reply_dtstamp is not None
    assert "Thanks" in school.history(meeting.id)[-1].reason


def test_read_receipts_are_recorded_and_change_nothing(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT)
    sent_id = str(school.emails(meeting.id)[0].message["Message-ID"])
    receipt = (
        f"From: {PAT}\r\nTo: {ORGANIZER}\r\nSubject: Read: Invitation\r\n"
        "Message-ID: <mdn-1@example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Final-Recipient: rfc822; {PAT}\r\nOriginal-Message-ID: {sent_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--b--\r\n"
    ).encode()

    outcome = school.deliver(receipt)

    assert outcome.outcome == "read_receipt"
    assert school.inbound(outcome.inbound_id or 0).raw is None
    assert school.meeting(meeting.id).state == "proposed"


# --- each message once ----------------------------------------------------------------------


def _effects(school: SeededSchool) -> tuple[int, int, int]:
    return (
        _count(school.db, Inbound),
        _count(school.db, MeetingHistory),
        _count(school.db, Outbox),
    )


def test_the_same_message_twice_has_one_effect(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT)
    raw = school.reply(meeting, "ACCEPTED", client="proton")
    assert school.deliver(raw).outcome == APPLIED
    effects = _effects(school)

    again = school.deliver(raw, at=timedelta(hours=1))

    assert (again.outcome, again.reason) == (DUPLICATE, "already processed")
    assert _effects(school) == effects
    assert school.meeting(meeting.id).sequence == 1


def test_two_workers_processing_one_message_apply_it_once(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT)
    raw = school.reply(meeting, "ACCEPTED", client="outlook")

    outcomes = race([lambda: school.deliver(raw)] * 2)

    assert sorted(o.outcome for o in outcomes) == [APPLIED, DUPLICATE]
    assert _count(school.db, Inbound) == 1
    after = school.meeting(meeting.id)
    assert (after.state, after.sequence) == ("confirmed", 1)
    assert [h.to_state for h in school.history(meeting.id)] == ["proposed", "confirmed"]


def test_different_accepts_racing_for_one_meeting_confirm_it_once_and_are_all_recorded(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT)
    # One answer sent through four clients at the same moment (equal SEQUENCE and DTSTAMP).
    raws = [
        school.reply(meeting, "ACCEPTED", client=c)
        for c in ["outlook", "apple", "thunderbird", "proton"]
    ]

    outcomes = race([lambda raw=raw: school.deliver(raw) for raw in raws])

    assert sorted(o.outcome for o in outcomes) == [APPLIED] + [DUPLICATE] * 3
    assert _count(school.db, Inbound) == 4
    after = school.meeting(meeting.id)
    assert (after.state, after.sequence) == ("confirmed", 1)
    assert [h.to_state for h in school.history(meeting.id)] == ["proposed", "confirmed"]
    assert len([e for e in school.emails(meeting.id) if e.method == "REQUEST"]) == 2
    assert event_of(school.latest_request(meeting.id))["STATUS"] == "CONFIRMED"


def test_a_bug_while_deciding_keeps_the_message_in_quarantine_and_goes_on(
    school: SeededSchool, monkeypatch: pytest.MonkeyPatch
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    raw = school.reply(meeting, "ACCEPTED")

    def broken(*_: object, **__: object) -> None:
        raise KeyError("a bug in the decision")

    monkeypatch.setattr(inbound_module, "decide", broken)
    outcome = school.deliver(raw)
    assert (outcome.outcome, outcome.reason) == ("quarantined", "internal-error")
    assert school.inbound(outcome.inbound_id or 0).raw == raw  # nothing lost
    assert school.meeting(meeting.id).state == "proposed"  # nothing half-done
    assert school.deliver(raw).outcome == "duplicate"


def test_a_batch_commits_once_and_each_message_stands_alone(
    school: SeededSchool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IMAP path's group commit (process_batch): one transaction for the batch, each
    message all or nothing, decided on what the messages before it did."""
    first = school.propose(ADA, PAT, slot=0)
    second = school.propose(ADA, SAM, slot=2)
    accept = school.reply(first, "ACCEPTED")
    counter = school.counter(second, slot=0)  # asks for the slot Pat has just taken
    real = inbound_module.decide
    calls: list[int] = []

    def sometimes_broken(session: object, config: object, inbound: object, *a: object) -> object:
        calls.append(1)
        decided = real(session, config, inbound, *a)  # type: ignore[arg-type]
        if len(calls) == 3:  # after the decision wrote: none of it may stay
            raise KeyError("a bug in the decision of the third message")
        return decided

    monkeypatch.setattr(inbound_module, "decide", sometimes_broken)
    broken = school.reply(second, "TENTATIVE")
    commits: list[int] = []

    def count(_: object) -> None:
        commits.append(1)

    event.listen(school.db.engine, "commit", count)
    outcomes = inbound_module.process_batch(
        school.db, school.config, [accept, counter, broken, accept], now=school.now,
        video=school.video,
    )  # fmt: skip
    event.remove(school.db.engine, "commit", count)

    assert [(o.outcome, o.reason) for o in outcomes] == [
        ("applied", "accepted"),
        ("applied", "counter declined: the teacher is not free then"),
        ("quarantined", "internal-error"),
        ("duplicate", "already processed"),
    ]
    assert len(commits) == 1
    assert school.meeting(first.id).state == "confirmed"
    assert school.meeting(second.id).start == school.slot(2).start
    assert school.meeting(second.id).partstat != "TENTATIVE"  # the broken one wrote nothing
    assert "tentative" not in [h.reason for h in school.history(second.id)]
    assert school.inbound(outcomes[2].inbound_id or 0).raw == broken  # kept for staff
