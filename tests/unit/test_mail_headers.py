"""Remembered header classes, parsed headers and foldings change no byte and no reading.

:mod:`ptm_sync.core.imip` parses and builds mail with a header registry that remembers what it
made.  Built with the standard library's own registry instead, every message must come
out the same, and every received message must read the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from ptm_sync.core import imip
from ptm_sync.core.ical import itip
from ptm_sync.core.imip import build as imip_build
from ptm_sync.core.imip import headers as mailheaders
from ptm_sync.core.imip import parts as imip_parts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imip"
TZ = ZoneInfo("America/New_York")
START = datetime(2027, 4, 13, 19, 0, tzinfo=UTC)
NAMES = ["Pat Johnson", "O'Brien, Róisín", 'Dr. "Max" Müller', "李 小龍", "A" * 90, ""]


def _calendar(n: int, name: str) -> Calendar:
    inv = itip.Invitation(
        uid=f"u{n}-abc@lincoln.example.org",
        sequence=n % 3,
        start=START + timedelta(minutes=15 * n),
        end=START + timedelta(minutes=15 * n + 15),
        summary=f"Spring conferences: Teacher {n} ({name})",
        organizer="conferences@lincoln.example.org",
        organizer_name="Lincoln High School",
        attendee=f"parent{n}@example.net",
        attendee_name=name,
        status="TENTATIVE",
        dtstamp=START - timedelta(days=20),
        description=f"A meeting about {name} – see you then.",
        video_url="https://meet.lincoln.example.org/room-" + "x" * n,
    )
    return itip.build_request(inv, TZ)


def _emails() -> list[bytes]:
    built = []
    for n, name in enumerate(NAMES * 3):
        common = {
            "sender": "conferences@lincoln.example.org",
            "sender_name": "Lincoln High School",
            "to": f"parent{n}@example.net",
            "to_name": name,
            "subject": f"Invitation: Spring conferences with Teacher {n}, {name} – 15:00",
            "text": f"Dear {name},\n\nsee you – on Tuesday.\n" + "long line " * 20,
            "html": f"<p>Dear {name}</p>",
            "message_id": f"<invitation.{n}.u{n}@lincoln.example.org>",
            "date": START - timedelta(days=20, minutes=n),
        }
        built.append(
            imip.build_invitation_email(
                cal=_calendar(n, name), method="REQUEST", **common
            ).as_bytes()
        )
        built.append(imip.build_plain_email(**common, in_reply_to="<x@y>").as_bytes())
    return built


def test_built_messages_are_the_bytes_the_standard_registry_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = _emails()
    again = _emails()  # now with every header remembered and folded before
    monkeypatch.setattr(imip_build, "_BUILD_POLICY", policy.SMTP.clone(cte_type="7bit"))
    standard = _emails()
    assert ours == again == standard


def test_forgetting_the_remembered_headers_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailheaders.Headers, "KEEP", 3)  # forgotten every few headers
    assert _emails() == _emails()


def test_a_header_is_folded_for_each_line_end_it_is_written_with() -> None:
    msg = imip.build_plain_email(
        sender="conferences@lincoln.example.org",
        sender_name="Lincoln High School",
        to="pat@example.net",
        to_name="Pat Johnson",
        subject="A subject long enough to be folded over more than one line of the header " * 2,
        text="Hello\n",
        message_id="<fold@lincoln.example.org>",
        date=START,
    )
    with_lf = msg.as_bytes(policy=msg.policy.clone(linesep="\n"))
    with_crlf = msg.as_bytes()
    assert b"\r\n" not in with_lf and with_crlf.count(b"\r\n") > 5
    assert with_crlf.replace(b"\r\n", b"\n") == with_lf
    assert msg.as_bytes(policy=msg.policy.clone(linesep="\n")) == with_lf


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.eml")))
def test_received_messages_read_as_with_the_standard_registry(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (FIXTURES / name).read_bytes()
    ours = imip.extract(raw, tz=TZ)
    monkeypatch.setattr(imip_parts, "READ_POLICY", policy.default)
    standard = imip.extract(raw, tz=TZ)
    assert ours == standard
