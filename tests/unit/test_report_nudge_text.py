"""The words of ``nudge`` (DESIGN §7): each teacher still to book and how — the invitation
waiting for an answer, the booking address, the page of free times, the office."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ptm_sync.core.booking.nudge_text import ToBook, nudge
from ptm_sync.core.model import Interval

TZ = ZoneInfo("America/New_York")
PROPOSED = Interval(
    datetime(2027, 4, 12, 19, 15, tzinfo=UTC), datetime(2027, 4, 12, 19, 30, tzinfo=UTC)
)


def test_the_nudge_names_each_teacher_and_every_way_to_book() -> None:
    text = nudge(
        school="Lincoln High School",
        period_title="Spring conferences",
        guardian_names=["Chris Brown", "Alex Brown"],
        teachers=[
            ToBook("Ada Lovelace", ("Zoe Brown",), "book+ada@lincoln.example.org", PROPOSED),
            ToBook("Alan Turing", ("Zoe Brown", "Max Brown"), "book+alan@lincoln.example.org"),
        ],
        tz=TZ,
        contact="office@lincoln.example.org",
        page_url="https://conferences.lincoln.example.org/periods/spring",
        closes=datetime(2027, 4, 8, 21, 0, tzinfo=UTC),
    )
    assert text.subject == "Please book: Spring conferences at Lincoln High School"
    body = text.plain
    assert body.startswith("Dear Chris Brown and Alex Brown,\n")
    # Ada's proposal waits for its answer: its time in the school's zone, named in words.
    assert (
        "- Ada Lovelace about Zoe Brown: the invitation for Monday 12 April 2027, 15:15–15:30 "
        "(Eastern Time) waits for your answer; or booking address book+ada@lincoln.example.org"
    ) in body
    assert (
        "- Alan Turing about Zoe Brown and Max Brown: booking address book+alan@lincoln.example.org"
    ) in body
    assert "press Accept" in body and "Propose new time" in body
    assert "Free times: https://conferences.lincoln.example.org/periods/spring" in body
    assert "Booking closes Thursday 08 April 2027, 17:00 (Eastern Time)." in body
    assert "write to office@lincoln.example.org" in body
    assert "book+alan@lincoln.example.org" in text.html and "<p>" in text.html


def test_without_a_public_page_or_deadline_those_lines_are_left_out() -> None:
    text = nudge(
        school="S",
        period_title="Spring",
        guardian_names=["Pat"],
        teachers=[ToBook("Ada", (), "book+ada@s.org")],
        tz=TZ,
        contact="office@s.org",
    )
    assert "Free times" not in text.plain and "Booking closes" not in text.plain
    assert "- Ada: booking address book+ada@s.org" in text.plain


def test_a_nudge_about_no_teacher_is_a_bug_not_an_email() -> None:
    with pytest.raises(ValueError, match="at least one teacher"):
        nudge(
            school="S",
            period_title="P",
            guardian_names=["Pat"],
            teachers=[],
            tz=TZ,
            contact="o@s.org",
        )
