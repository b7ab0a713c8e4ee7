"""The daemon sends a period's invitations by itself when its booking opens, once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app.services import open_booking
from tests.support.booking import NOW, SeededSchool

PERIODS = """
[[periods]]
id = "open-now"
title = "Spring conferences"
booking_opens = 2027-03-22T08:00:00
windows = ["2027-04-12T15:00/17:00"]

[[periods]]
id = "opens-later"
title = "Summer conferences"
booking_opens = 2027-05-01T08:00:00
windows = ["2027-06-14T15:00/17:00"]

[[periods]]
id = "closed"
title = "Winter conferences"
booking_opens = 2027-01-10T08:00:00
booking_closes = 2027-01-20T08:00:00
windows = ["2027-01-25T15:00/17:00"]
"""


def _meetings(db: Database, period_id: str) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(Meeting.period_id == period_id)) or 0)


def test_booking_opens_once_at_its_time_and_not_before(db: Database) -> None:
    school = SeededSchool.create(db, periods=PERIODS)
    opened = open_booking(db, school.config, now=NOW, video=school.video)
    assert opened == ["open-now"]
    proposed = _meetings(db, "open-now")
    assert proposed > 0
    assert _meetings(db, "opens-later") == 0 and _meetings(db, "closed") == 0
    # A restart, a minute later: nothing is opened (or proposed) twice.
    assert open_booking(db, school.config, now=NOW + timedelta(minutes=1), video=school.video) == []
    assert _meetings(db, "open-now") == proposed
    later = NOW.replace(month=5, day=2)
    assert open_booking(db, school.config, now=later, video=school.video) == ["opens-later"]
