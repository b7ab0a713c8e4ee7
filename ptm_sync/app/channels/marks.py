"""Staff keeping the record of a meeting: what happened (``meetings mark``) and notes
(``meetings note``), DESIGN §3, §7.

A mark is a staff event (:class:`~ptm_sync.core.booking.events.MarkAttended`,
:class:`~ptm_sync.core.booking.events.MarkNoShow`) decided by the booking core and written by
its applier, like a staff reschedule: a refusal is a
:class:`~ptm_sync.app.channels.staff.StaffRefused` and nothing was written.

A note is the school's own text about a meeting (preparation, outcome).  It is kept in
``meeting_notes`` only and read by ``meetings show`` and the staff console: no letter,
invitation, calendar event or public page reads that table, and a purge deletes it with the
meeting's personal data.
"""

from __future__ import annotations

from datetime import datetime

from ptm_sync.adapters.store import Database, Meeting, MeetingNote
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.staff import StaffRefused
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE
from ptm_sync.core.booking.events import MarkAttended, MarkNoShow
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.errors import NotFoundError, UserError
from ptm_sync.core.model import MeetingState

#: The states a mark corrects (DESIGN §3: a correction needs a reason).
_MARKED = (MeetingState.COMPLETED, MeetingState.NO_SHOW)

#: Longest note kept (characters): a note is a few lines, not a document.
NOTE_LIMIT = 4000


class ReasonNeeded(StaffRefused):
    """Raised when a mark corrects ``completed`` ↔ ``no_show`` without a reason."""


def mark(
    db: Database,
    config: Config,
    meeting_id: int,
    *,
    attended: bool,
    reason: str = "",
    now: datetime,
    video: VideoProvider,
) -> Decision:
    """Mark meeting ``meeting_id`` attended (``completed``) or a no-show (``no_show``).

    Returns the decision: ``applied``, or ``duplicate`` when the meeting is marked so
    already (nothing written).

    Raises:
        NotFoundError: no such meeting.
        ReasonNeeded: a correction of ``completed`` ↔ ``no_show`` without ``reason``.
        StaffRefused: the core refused (the meeting has not started, or is not confirmed,
            completed or no-show).
    """
    applier = Applier(config, now=now, video=video)
    event = MarkAttended(reason=reason) if attended else MarkNoShow(reason=reason)
    with db.write() as session:
        meeting = session.get(Meeting, meeting_id, with_for_update=True)
        if meeting is None:
            raise NotFoundError(f"no meeting {meeting_id}")
        state = meeting.state
        decision = applier.handle(session, meeting, event)
    if decision.outcome in (APPLIED, DUPLICATE):
        return decision
    if state in _MARKED and not reason.strip():
        raise ReasonNeeded("not marked", decision.reason, tz=config.tz)
    raise StaffRefused("not marked", decision.reason, tz=config.tz)


def add_note(db: Database, meeting_id: int, text: str, *, author: str, now: datetime) -> int:
    """Keep ``text`` as a staff note on meeting ``meeting_id`` (``author``: who wrote it;
    ``now``: when, UTC); returns the note's id.

    Raises:
        UserError: ``text`` is empty or longer than :data:`NOTE_LIMIT` characters.
        NotFoundError: no such meeting, or its personal data was purged (a note is
            personal data: it would outlive the purge).
    """
    text = text.strip()
    if not text:
        raise UserError("the note is empty")
    if len(text) > NOTE_LIMIT:
        raise UserError(f"the note is longer than {NOTE_LIMIT} characters")
    with db.write() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise NotFoundError(f"no meeting {meeting_id}")
        if meeting.purged_at is not None:
            raise NotFoundError(f"meeting {meeting_id}'s personal data was purged: no new notes")
        note = MeetingNote(meeting_id=meeting_id, at=now, author=author, text=text)
        session.add(note)
        session.flush()
        return note.id
