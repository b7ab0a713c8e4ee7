"""The one "booking closed" check every channel uses (DESIGN §3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.unit.booking_values import NOW, RULES


def test_booking_is_closed_from_the_deadline_on_and_never_without_one() -> None:
    closing = replace(RULES, booking_closes=NOW + timedelta(hours=1))
    assert not closing.closed(NOW)
    assert not closing.closed(NOW + timedelta(minutes=59))
    assert closing.closed(NOW + timedelta(hours=1))  # the deadline itself is closed
    assert not RULES.closed(NOW + timedelta(days=999))


def test_a_proposal_holds_its_slot_no_later_than_the_deadline() -> None:
    closing = replace(RULES, booking_closes=NOW + timedelta(hours=1), hold_hours=48)
    assert closing.hold_deadline(NOW) == NOW + timedelta(hours=1)
    assert RULES.hold_deadline(NOW) == NOW + timedelta(hours=RULES.hold_hours)
