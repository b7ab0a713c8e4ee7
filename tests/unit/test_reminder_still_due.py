"""Is a queued reminder (or feedback request) still wanted when the mail server takes it at
last? (DESIGN §3, §6: a reminder is never sent once its meeting has started.)  Pure: the
meeting's state and start, the letter's start and ``now`` are the arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ptm_sync.core.booking.aftercare import (
    Unwanted,
    feedback_request_still_due,
    reminder_still_due,
)
from ptm_sync.core.model import MeetingState

TZ = ZoneInfo("America/New_York")
START = datetime(2027, 3, 9, 15, 30, tzinfo=TZ)
S = MeetingState


@pytest.mark.parametrize(
    ("state", "meeting_start", "now", "expected"),
    [
        # Queued the day before, sent before the start: still wanted.
        (S.CONFIRMED, START, START - timedelta(hours=3), None),
        (S.CONFIRMED, START, START - timedelta(seconds=1), None),
        # The mail server came back after the start (or exactly at it): dropped.
        (S.CONFIRMED, START, START, Unwanted.STARTED),
        (S.CONFIRMED, START, START + timedelta(hours=3, minutes=20), Unwanted.STARTED),
        # Completed or marked no-show meanwhile: it started.
        (S.COMPLETED, START, START + timedelta(hours=1), Unwanted.STARTED),
        (S.NO_SHOW, START, START + timedelta(minutes=10), Unwanted.STARTED),
        # Cancelled before the flush: the CANCEL goes, the reminder does not.
        (S.CANCELLED, START, START - timedelta(hours=2), Unwanted.CANCELLED),
        # Moved since (staff, the teacher's drag, running late): the new time is reminded
        # on its own; this one names a time that is wrong now.
        (S.CONFIRMED, START + timedelta(hours=1), START - timedelta(hours=2), Unwanted.MOVED),
        (S.CONFIRMED, START - timedelta(hours=1), START - timedelta(hours=2), Unwanted.MOVED),
    ],
)
def test_a_reminder_is_sent_only_while_its_meeting_is_confirmed_at_that_time_and_to_come(
    state: MeetingState, meeting_start: datetime, now: datetime, expected: Unwanted | None
) -> None:
    assert reminder_still_due(START, state, meeting_start, now.astimezone(UTC)) is expected


def test_the_same_instant_in_another_zone_is_the_same_start() -> None:
    """The letter keeps its start in the school's zone, the database in UTC."""
    in_utc = START.astimezone(UTC)
    assert reminder_still_due(START, S.CONFIRMED, in_utc, in_utc - timedelta(hours=1)) is None


def test_a_feedback_request_is_dropped_once_the_meeting_was_purged() -> None:
    assert feedback_request_still_due(purged=False) is None
    assert feedback_request_still_due(purged=True) is Unwanted.PURGED
