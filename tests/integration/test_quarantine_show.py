"""`quarantine` and `quarantine show` for messages refused over an input limit (DESIGN §7,
ptm_sync.core.imip.limits): the recorded reason in plain words, the calendar part as it came
(never read as iCalendar), a message kept cut said to be cut, and a list table whose rows
one 100 KB Message-ID does not pad.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from ptm_sync.adapters.store import Database
from ptm_sync.app.read.records import REASONS
from ptm_sync.core.booking.decide import QUARANTINED
from ptm_sync.interfaces.cli.main import main
from tests.support.booking import ADA, PAT, SeededSchool, config_text, handmade_reply


@dataclass(frozen=True)
class Quarantine:
    school: SeededSchool
    config: Path

    def reply(self) -> bytes:
        meeting = self.school.propose(ADA, PAT)
        return handmade_reply(
            meeting.uid, PAT, "ACCEPTED", now=self.school.now + timedelta(minutes=5)
        )

    def deliver(self, raw: bytes, reason: str) -> int:
        outcome = self.school.deliver(raw)
        assert (outcome.outcome, outcome.reason) == (QUARANTINED, reason)
        assert outcome.inbound_id is not None
        return outcome.inbound_id


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def quarantine(tmp_path: Path, sqlite_url: str) -> Iterator[Quarantine]:
    mail = "max_message_bytes = 150000"
    db = Database(sqlite_url)
    db.migrate()
    school = SeededSchool.create(db, mail=mail)
    config = tmp_path / "ptm-sync.toml"
    text = config_text(mail=mail) + f'\n[database]\nurl = "{sqlite_url}"\n'
    config.write_text(text, encoding="utf-8")
    yield Quarantine(school, config)
    db.dispose()


def inside_vevent(raw: bytes, lines: bytes) -> bytes:
    return raw.replace(b"END:VEVENT\r\n", lines + b"END:VEVENT\r\n", 1)


def nested_multiparts(raw: bytes, depth: int) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    part = b"Content-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n" + body
    for level in range(depth):
        boundary = b"b%d" % level
        part = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            b"--" + boundary + b"\r\n" + part + b"\r\n--" + boundary + b"--\r\n"
        )
    head = b"\r\n".join(line for line in head.split(b"\r\n") if b"Content-Type" not in line)
    return head + b"\r\n" + part


def many_parts(raw: bytes, count: int) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    head = b"\r\n".join(line for line in head.split(b"\r\n") if b"Content-Type" not in line)
    parts = [b"Content-Type: text/plain\r\n\r\nhello %d\r\n" % i for i in range(count)]
    parts.append(b"Content-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n" + body)
    return (
        head
        + b'\r\nContent-Type: multipart/mixed; boundary="p"\r\n\r\n'
        + b"".join(b"--p\r\n" + p + b"\r\n" for p in parts)
        + b"--p--\r\n"
    )


ALARMS = b"BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n" * 600
CASES = {
    "recurrence-too-large": lambda raw: inside_vevent(raw, b"RRULE:FREQ=SECONDLY\r\n"),
    "line-too-long": lambda raw: inside_vevent(raw, b"COMMENT:" + b"x" * 70_000 + b"\r\n"),
    "too-deep": lambda raw: inside_vevent(raw, b"BEGIN:X-N\r\n" * 12 + b"END:X-N\r\n" * 12),
    "too-many-properties": lambda raw: inside_vevent(
        raw, b"".join(b"X-LINE:%d\r\n" % i for i in range(6_000))
    ),
    "too-many-components": lambda raw: inside_vevent(raw, ALARMS),
    "too-many-parts": lambda raw: many_parts(raw, 300),
}


@pytest.mark.parametrize("reason", list(CASES))
def test_show_gives_the_reason_in_words_and_the_calendar_part_as_it_came(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str], reason: str
) -> None:
    raw = CASES[reason](quarantine.reply())
    qid = quarantine.deliver(raw, reason)

    shown = run(quarantine.config, capsys, "quarantine", "show", str(qid))

    assert f"inbound message {qid}: quarantined ({reason})" in shown
    why = next(line for line in shown.splitlines() if line.startswith("why:"))
    assert REASONS[reason] in why
    assert "no calendar part" not in shown
    calendar = shown.split("calendar part:\n", 1)[1]
    assert calendar.startswith("BEGIN:VCALENDAR") and "PARTSTAT=ACCEPTED" in calendar
    assert calendar.rstrip("\n").endswith("END:VCALENDAR")
    assert all(len(line) < 1100 for line in shown.splitlines())


def test_show_names_what_was_over_the_limit(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = inside_vevent(quarantine.reply(), b"RRULE:FREQ=SECONDLY\r\n")
    qid = quarantine.deliver(raw, "recurrence-too-large")

    shown = run(quarantine.config, capsys, "quarantine", "show", str(qid))

    assert "(FREQ=SECONDLY)" in shown.split("why:", 1)[1].splitlines()[0]
    assert "RRULE:FREQ=SECONDLY" in shown


def test_show_cuts_a_calendar_line_too_long_to_print(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = inside_vevent(quarantine.reply(), b"COMMENT:" + b"x" * 70_000 + b"\r\n")
    qid = quarantine.deliver(raw, "line-too-long")

    shown = run(quarantine.config, capsys, "quarantine", "show", str(qid))

    [comment] = [line for line in shown.splitlines() if line.startswith("COMMENT:")]
    assert comment.endswith("… (cut: 69008 more characters)")


def test_show_says_a_message_too_large_was_cut_and_prints_no_calendar(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = inside_vevent(quarantine.reply(), b"X-PADDING:" + b"x" * 200_000 + b"\r\n")
    qid = quarantine.deliver(raw, "too-large")

    shown = run(quarantine.config, capsys, "quarantine", "show", str(qid))

    assert f"inbound message {qid}: quarantined (too-large)" in shown
    assert REASONS["too-large"] in shown
    assert "only its first 64 KiB were kept" in shown
    assert "calendar part:" not in shown and "BEGIN:VCALENDAR" not in shown
    assert "no calendar part" not in shown


def test_show_of_a_mime_structure_over_its_limit_says_why_its_calendar_is_not_shown(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    """Forty nested multiparts: past the boundaries the parser is trusted with, so the
    message is not parsed again to show its calendar part."""
    qid = quarantine.deliver(nested_multiparts(quarantine.reply(), 40), "too-many-parts")

    shown = run(quarantine.config, capsys, "quarantine", "show", str(qid))

    assert REASONS["too-many-parts"] in shown
    assert "calendar part not shown: the message is over an input limit (too-many-parts)" in shown


def test_show_still_says_a_plain_email_has_no_calendar_part(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = (
        f"From: {PAT}\r\nTo: school@example.org\r\nSubject: Thursday?\r\n"
        "Message-ID: <plain-1@example.net>\r\n\r\nCan we meet on Thursday?\r\n"
    ).encode()
    qid = quarantine.deliver(plain, "no-calendar-part")

    shown = run(quarantine.config, capsys, "quarantine", "show", str(qid))

    assert "no calendar part: the message has no calendar part" in shown
    assert f"why:        {REASONS['no-calendar-part']}" in shown


def test_the_list_table_cuts_long_cells_and_json_does_not(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    long_id = "<" + "a" * 100_000 + "@example.net>"
    plain = (
        f"From: {PAT}\r\nTo: school@example.org\r\nSubject: hi\r\n"
        f"Message-ID: {long_id}\r\n\r\nhello\r\n"
    ).encode()
    quarantine.deliver(plain, "no-calendar-part")
    short = f"From: {PAT}\r\nMessage-ID: <short@example.net>\r\n\r\nhello\r\n".encode()
    quarantine.deliver(short, "no-calendar-part")

    table = run(quarantine.config, capsys, "quarantine")

    lines = table.splitlines()
    assert len(lines) == 4 and all(len(line) < 250 for line in lines)
    assert "<" + "a" * 78 + "…  " in lines[2] and "<short@example.net>" in lines[3]
    whole = json.loads(run(quarantine.config, capsys, "quarantine", "--format", "json"))
    stored = whole[0]["message_id"]  # as stored (the store keeps its first 1,000 or so)
    assert len(stored) > 900 and long_id.startswith(stored)


def test_every_input_limit_reason_is_explained() -> None:
    from ptm_sync.core.imip import limits as inputlimits

    reasons = [
        getattr(inputlimits, name)
        for name in inputlimits.__all__
        if name.isupper() and name != "HEAD_BYTES"
    ]
    assert reasons and all(REASONS.get(reason) for reason in reasons)
