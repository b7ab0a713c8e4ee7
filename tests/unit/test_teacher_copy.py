"""The teacher's event, built by the booking core (DESIGN §3, §4): private, the parents in
the description and never as attendees, the link or the room, the school's summary."""

from __future__ import annotations

from dataclasses import replace

from ptm_sync.core.booking.teacher_copy import teacher_copy
from tests.unit.booking_values import KIM, PAT, meeting

TEMPLATE = "Conference: {student_first} ({guardian})"


def test_the_event_is_private_names_every_guardian_and_invites_nobody() -> None:
    view = replace(meeting(), parties=(PAT, KIM))
    event = teacher_copy(
        view, summary_template=TEMPLATE, contact="office@x.org", online_meeting=False
    )
    assert event.private and event.attendees == () and event.status == "CONFIRMED"
    assert event.summary == "Conference: Mia (Pat Johnson & Kim Johnson)"
    assert f"Pat Johnson <{PAT.email}> and Kim Johnson <{KIM.email}>" in event.description
    assert "office@x.org" in event.description
    assert (event.uid, event.start, event.sequence) == (view.uid, view.start, view.sequence)


def test_a_template_that_cannot_be_filled_falls_back() -> None:
    event = teacher_copy(meeting(), summary_template="{nope}", contact="c", online_meeting=False)
    assert event.summary == "Conference: Mia (Pat Johnson)"


def test_the_link_is_the_place_and_the_room_only_without_one() -> None:
    linked = replace(meeting(), video_url="https://v.example/r", location="Room 101")
    event = teacher_copy(linked, summary_template=TEMPLATE, contact="c", online_meeting=True)
    assert (event.location, event.video_url) == ("https://v.example/r", "https://v.example/r")
    assert "Room 101" not in event.description
    assert not event.online_meeting  # it has its link: the system is asked for none
    in_person = replace(meeting(), video_url="", location="Room 101")
    event = teacher_copy(in_person, summary_template=TEMPLATE, contact="c", online_meeting=False)
    assert event.location == "Room 101" and "Place: Room 101" in event.description


def test_the_system_is_asked_for_the_link_when_it_makes_it() -> None:
    view = replace(meeting(), video_url="")
    event = teacher_copy(view, summary_template=TEMPLATE, contact="c", online_meeting=True)
    assert event.online_meeting and event.video_url == ""


def test_a_template_with_an_attribute_or_index_falls_back_too() -> None:
    for template in ("{teacher.name}", "{guardian[x]}", "Conference {"):
        event = teacher_copy(
            meeting(), summary_template=template, contact="c", online_meeting=False
        )
        assert event.summary == "Conference: Mia (Pat Johnson)", template
