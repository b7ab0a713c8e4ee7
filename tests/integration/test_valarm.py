"""Every invitation and every update the families receive carries a VALARM (DESIGN §3
"Reminders before the meeting (email, and a VALARM in the invitation)"): the invitation,
the confirmation, a staff move, the teacher's move and a late move."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app.channels import late, staff
from ptm_sync.core.booking.events import TeacherMoved
from tests.support.booking import ADA, PAT, SeededSchool


def test_every_request_to_a_family_carries_a_display_alarm(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)  # the invitation
    assert school.deliver(school.reply(meeting, "ACCEPTED")).outcome == "applied"  # confirmed
    staff.reschedule(  # staff move it
        db, school.config, meeting.id, school.slot(2).start, now=school.now, video=school.video
    )
    with db.write() as session:  # the teacher drags it in their calendar
        row = session.get(Meeting, meeting.id, with_for_update=True)
        assert row is not None
        school.applier().handle(session, row, TeacherMoved(slot=school.slot(3)))
    evening = school.slot(3).start
    late.run_late(  # the teacher runs ten minutes late
        db, school.config, teacher=ADA, minutes=10, since=evening - timedelta(minutes=30),
        now=evening - timedelta(minutes=40), video=school.video,
    )  # fmt: skip

    requests = [e for e in school.emails(meeting.id) if e.method == "REQUEST"]
    templates = Counter(e.key.split("<", 1)[1].split(".", 1)[0] for e in requests)
    assert set(templates) >= {"invitation", "confirmation", "moved", "late_moved"}, templates
    assert templates["confirmation"] == 2, templates  # accepted, then moved by staff
    for sent in requests:
        [alarm] = sent.event.walk("VALARM")
        assert str(alarm["ACTION"]) == "DISPLAY", sent.key
        assert alarm["TRIGGER"].dt == -timedelta(minutes=15), sent.key
