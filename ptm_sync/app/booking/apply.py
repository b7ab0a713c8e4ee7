"""The one writer: a decision becomes rows — the meeting, its history, its outbox rows.

Everything that changes a meeting goes through :class:`Applier`: it loads the meeting as a
value, reads the context the event needs, asks :func:`~ptm_sync.core.booking.decide.decide`, and
writes the decision in the caller's transaction, inside a savepoint.  When the database
refuses the write because another transaction took the slot first (the partial unique
index, or PostgreSQL's exclusion constraint: DESIGN §3 "first come, first served"), the
savepoint is rolled back and the event decided again on what is now committed, so the loser
gets a decline with alternatives instead of an error.

Side effects are outbox rows written in the same transaction (DESIGN §6): emails composed by
:mod:`ptm_sync.core.booking.notices`, and one calendar row per change of the teacher's event.

The modules beside this one work out what is written, a concern each: ``load`` (values),
``identity`` (a new meeting's UID and link), ``claims`` (a slot's claim), ``effects`` (the
outbox rows), ``notification`` and ``waitlist``.  The statements that write meetings, their
history and outbox rows are all here (``tests/integration/test_one_writer.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from icalendar.enums import PARTSTAT
from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app import outbox
from ptm_sync.app.booking import claims, effects, identity, load, waitlist
from ptm_sync.app.booking.notification import notification
from ptm_sync.config.settings import Config, MailConfig, PeriodConfig
from ptm_sync.core.booking import disruption
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE, decide, needs
from ptm_sync.core.booking.events import Event
from ptm_sync.core.booking.letters import Letterhead, letters
from ptm_sync.core.booking.values import CalendarAction, Decision, Fresh, MeetingView, Origin
from ptm_sync.core.errors import BookingRefused, SlotTaken

log = logging.getLogger(__name__)

_HISTORY_TABLE: Table = MeetingHistory.__table__  # type: ignore[assignment]
_HISTORY = insert(_HISTORY_TABLE)  # built once: append-only, never loaded back


class Applier:
    """Decides events about meetings and writes the decisions.  One per point in time.

    ``now`` (aware, UTC) is fixed for the instance; ``video`` makes the rooms of new
    meetings.

    Raises:
        BookingRefused: at construction when ``[mail]`` is missing (no organizer address).
    """

    def __init__(
        self, config: Config, *, now: datetime, video: VideoProvider, render: bool = False
    ) -> None:
        if config.mail is None:
            raise BookingRefused("[mail] is not configured: organizer address needed")
        self.config = config
        self.mail: MailConfig = config.mail
        self.now = now
        self.video = video
        self.render = render
        self.head = Letterhead(
            school=config.school.name,
            contact=config.school.contact,
            tz=config.tz,
            organizer=config.mail.organizer,
            public_url=config.web.public_url,
            period_titles={p.id: p.title for p in config.periods},
            additional_response=config.booking_address.add_additional_response,
            feedback_links={p.id: p.feedback_url for p in config.periods},
            plus_addressing=config.mail.plus_addressing,
        )

    # --- deciding ---------------------------------------------------------------------

    def view(
        self, session: Session, meeting: Meeting, teacher: Teacher | None = None
    ) -> MeetingView:
        """``meeting`` (with its guardians and students loaded) as the core's value;
        ``teacher``: its teacher when the caller has it loaded already."""
        teacher = teacher or session.get(Teacher, meeting.teacher_id)
        assert teacher is not None
        return load.view(self.config, meeting, teacher)

    def handle(
        self,
        session: Session,
        meeting: Meeting | MeetingView,
        event: Event,
        *,
        inbound_id: int | None = None,
        is_guardian: bool = True,
        in_roster: bool = True,
    ) -> Decision:
        """Decide ``event`` for ``meeting`` and write the decision in ``session``.

        A lost race for a slot is decided again (up to three times) on what the database
        now holds.  Returns the decision that was written (``outcome`` other than
        ``applied`` wrote nothing).

        Raises:
            SlotTaken: the slot was lost on every attempt (only under a storm of races).
        """
        view = meeting if isinstance(meeting, MeetingView) else self.view(session, meeting)
        wanted = needs(view, event)
        for _ in range(claims.ATTEMPTS):
            fresh = (
                self.fresh(session, view.period, identity.account(session, view.teacher.id))
                if identity.may_create(wanted)
                else None
            )
            ctx = load.context(
                session,
                self.config,
                view,
                self.now,
                needs=wanted,
                fresh=fresh,
                is_guardian=is_guardian,
                in_roster=in_roster,
            )
            decision = decide(view, event, ctx)
            if not claims.claims_a_slot(decision):
                # Nothing the unique index could refuse: no savepoint needed.
                made = self.write(session, decision, inbound_id)
                return claims.with_id(decision, made)
            try:
                with session.begin_nested():
                    made = self.write(session, decision, inbound_id)
            except SlotTaken:
                log.info("lost the race for a slot; deciding again (%s)", decision.rule)
                load.forget_times(session, view.period, view.teacher.id)
                continue
            return claims.with_id(decision, made)
        raise SlotTaken("another meeting holds that time")

    def fresh(self, session: Session, period: str, account: str = "") -> Fresh:
        """A new meeting's signed UID, ORGANIZER address and video link (DESIGN §4), for a
        teacher whose calendar is on ``account``: :func:`.identity.fresh`."""
        return identity.fresh(session, self.config, self.mail, self.video, period, account)

    def room(self, period: str, uid: str, account: str = "") -> str:
        """The video link of a new meeting in ``period``: :func:`.identity.room`."""
        return identity.room(self.config, self.video, period, uid, account)

    # --- writing ----------------------------------------------------------------------

    def write(self, session: Session, decision: Decision, inbound_id: int | None) -> int | None:
        """Write ``decision`` (and its follow-ups) in ``session``; returns the meeting id.

        Raises:
            SlotTaken: the database refused the meeting's time (another meeting holds it).
        """
        if decision.outcome != APPLIED and not (
            decision.outcome == DUPLICATE and decision.changes_meeting
        ):
            return None  # stale, refused, quarantined: nothing to write
        after = decision.after
        meeting_id: int | None = None
        # Proposals this booking replaces are withdrawn first: the family may take the very
        # time it was offered, and the database must see that slot free.
        replaced = [d for d in decision.then if d.rule == "supersede"]
        for follow in replaced:
            self.write(session, follow, None)
        if after is not None:
            if decision.before is None or decision.before.state is None:
                meeting_id = self._insert(session, after)
            elif decision.before == after and after.id is not None:
                meeting_id = after.id  # nothing of the meeting changes (a declined counter)
            else:
                meeting_id = self._update(session, decision)
            if decision.history is not None:
                self._history(session, decision, meeting_id, inbound_id)
        # The Zoom room ahead of the calendar write: rows of one meeting are delivered in order.
        if after is not None and meeting_id is not None:
            room = effects.room_row(session, self.config, after, meeting_id)
            self._enqueue(session, room, meeting_id)
        if after is not None and decision.calendar is not CalendarAction.NONE:
            self._enqueue(
                session, effects.calendar_row(after, meeting_id, decision.rule), meeting_id
            )
        for letter in letters(decision, self.head, self.now):
            self._enqueue(session, effects.letter_row(letter, self.render), meeting_id)
        if decision.waitlist is not None:
            waitlist.join(session, decision.waitlist)
        for follow in decision.then:
            if follow not in replaced:
                self.write(session, follow, None)
        if decision.releases is not None and after is not None:
            waitlist.offer(self, session, after.period, after.teacher.id, decision.releases)
        return meeting_id

    def _insert(self, session: Session, meeting: MeetingView) -> int:
        assert meeting.state is not None
        row = Meeting(
            uid=meeting.uid,
            period_id=meeting.period,
            teacher_id=meeting.teacher.id,
            guardian_id=meeting.parties[0].guardian_id,
            start=meeting.start,
            end=meeting.end,
            state=meeting.state.value,
            sequence=meeting.sequence,
            origin=meeting.origin.value,
            organizer=meeting.organizer,
            partstat=_family_answer(meeting),
            video_url=meeting.video_url,
            location=meeting.location,
            hold_until=meeting.hold_until,
            reproposals=meeting.reproposals,
            replaces_id=meeting.replaces,
            link_pending=meeting.link_pending,
            remote_edited=meeting.remote_edited,
            created_at=self.now,
            updated_at=self.now,
        )
        row.guardians = [
            MeetingGuardian(
                guardian_id=p.guardian_id,
                partstat=p.partstat,
                reply_sequence=p.reply_sequence,
                reply_dtstamp=p.reply_dtstamp,
            )
            for p in meeting.parties
        ]
        row.students = [MeetingStudent(student_id=s.id) for s in meeting.students]
        session.add(row)
        load.forget_times(session, meeting.period, meeting.teacher.id)
        claims.claim(session)
        # A family that books by any channel no longer waits for this teacher.
        waitlist.leave(session, meeting, row.id)
        return row.id

    def _update(self, session: Session, decision: Decision) -> int:
        before, after = decision.before, decision.after
        assert before is not None and after is not None and after.state is not None
        assert before.id is not None
        row = session.get(Meeting, before.id)
        assert row is not None
        row.state = after.state
        row.sequence = after.sequence
        row.start, row.end = after.start, after.end
        row.hold_until = after.hold_until
        row.partstat = _family_answer(after, decision.asker, row.partstat)
        row.video_url, row.link_pending = after.video_url, after.link_pending
        row.remote_href, row.remote_etag = after.remote_href, after.remote_etag
        remote = after.remote_slot
        row.remote_start, row.remote_end = (remote.start, remote.end) if remote else (None, None)
        row.remote_edited = after.remote_edited
        row.reminded_start = after.reminded
        row.feedback_token = after.feedback_token
        row.updated_at = self.now
        asker = after.party(decision.asker) if decision.asker is not None else None
        if asker is not None and asker.reply_sequence is not None:
            row.reply_sequence, row.reply_dtstamp = asker.reply_sequence, asker.reply_dtstamp
        if (before.start, before.end, before.state) != (after.start, after.end, after.state):
            # The teacher's times hold each meeting's time and state, nothing else: an
            # answer that changes neither (a declined counter) leaves them as read.
            load.forget_times(session, after.period, after.teacher.id)
        # Loading the links must not flush the new time early: only claims.claim turns the
        # database's refusal of a held slot into SlotTaken.
        with session.no_autoflush:
            links = {link.guardian_id: link for link in row.guardians}
        for party in after.parties:
            link = links.get(party.guardian_id)
            if link is not None and before.party(party.guardian_id) != party:
                link.partstat = party.partstat
                link.reply_sequence = party.reply_sequence
                link.reply_dtstamp = party.reply_dtstamp
        claims.claim(session)
        return row.id

    def _history(
        self, session: Session, decision: Decision, meeting_id: int, inbound_id: int | None
    ) -> None:
        history, after = decision.history, decision.after
        assert history is not None and after is not None and after.state is not None
        before = decision.before
        session.execute(
            _HISTORY,
            {
                "meeting_id": meeting_id,
                "at": self.now,
                "actor": history.actor.value,
                "from_state": before.state.value if before and before.state else None,
                "to_state": after.state.value,
                "old_start": history.old_start,
                "new_start": after.start,
                "reason": history.reason,
                "inbound_id": inbound_id,
            },
        )

    def _enqueue(
        self, session: Session, row: effects.OutboxRow | None, meeting_id: int | None
    ) -> None:
        """Add ``row`` (if any) to the outbox in ``session``, an effect of ``meeting_id``."""
        if row is None:
            return
        outbox.enqueue(
            session,
            key=row.key,
            kind=row.kind,
            payload=row.payload,
            now=self.now,
            meeting_id=meeting_id,
        )

    # --- retention -----------------------------------------------------------------------

    @staticmethod
    def purge(session: Session, meeting_id: int, *, now: datetime) -> bool:
        """Delete the personal data of meeting ``meeting_id``'s own rows (DESIGN §3, the
        retention period): its history's reason texts, its location, the parent's
        organizer address of a booking-address meeting; ``purged_at`` = ``now`` (UTC).
        States, times, SEQUENCE and the parties' ids stay: the anonymous counts of `report`.
        The caller purges what other tables hold (:mod:`ptm_sync.app.retention`).

        Returns False (nothing written) when there is no such meeting or it was purged.
        """
        row = session.get(Meeting, meeting_id, with_for_update=True)
        if row is None or row.purged_at is not None:
            return False
        session.execute(
            update(MeetingHistory).where(MeetingHistory.meeting_id == meeting_id).values(reason="")
        )
        row.location = ""
        if row.origin == Origin.BOOKING_ADDRESS:
            row.organizer = ""  # the parent's address: they organized it
        row.purged_at = now
        return True

    # --- the waiting list ---------------------------------------------------------------

    def wait(
        self,
        session: Session,
        period: PeriodConfig,
        teacher: Teacher,
        guardians: Sequence[Guardian],
        students: Sequence[Student],
    ) -> int:
        """Put a family on ``teacher``'s waiting list (the planner found no time for it);
        returns 1 when it was not waiting yet, else 0."""
        entry = waitlist.entry_for(period.id, teacher.id, guardians, students, self.now)
        return int(waitlist.join(session, entry)) if entry is not None else 0

    # --- messages that are not about one meeting ---------------------------------------

    def notify_family(
        self,
        session: Session,
        *,
        period: PeriodConfig,
        guardian: Guardian,
        meetings: Sequence[MeetingView],
    ) -> None:
        """The one notification email per guardian and period (purpose, dates, how to book,
        contact), listing ``meetings``: those of the guardian's children proposed now."""
        msg = notification(
            session,
            self.config,
            self.head,
            period=period,
            guardian=guardian,
            meetings=meetings,
            now=self.now,
        )
        row = effects.email_row(
            msg, now=self.now, envelope_from=self.mail.organizer, to=[guardian.email]
        )
        self._enqueue(session, row, None)

    def notify_day_cancelled(
        self, session: Session, decisions: Sequence[Decision], *, reason: str = ""
    ) -> int:
        """The one plain notice per guardian of a teacher's cancelled day (DESIGN §3 "Bulk
        disruption"): what the applied ``decisions`` cancelled, why, what happens next
        (:func:`~ptm_sync.core.booking.disruption.notices`).  Each is an effect of the
        first meeting it names; returns how many were queued."""
        made = disruption.notices(decisions, self.head, self.now, reason=reason)
        ids = {d.before.uid: d.before.id for d in decisions if d.before is not None}
        for letter in made:
            self._enqueue(session, effects.letter_row(letter, self.render), ids.get(letter.uid))
        return len(made)


#: ``remote_href`` while a create is in flight: the event may exist, and where is unknown.
CREATING = "creating:"


def _family_answer(meeting: MeetingView, asker: int | None = None, current: str = "") -> str:
    """The family's answer as a whole: ACCEPTED while any guardian attends, else the
    asker's latest answer (DESIGN §4, two guardians)."""
    if meeting.attending:
        return PARTSTAT.ACCEPTED
    party = meeting.party(asker) if asker is not None else None
    if party is not None:
        return party.partstat
    return current or (meeting.parties[0].partstat if meeting.parties else PARTSTAT.NEEDS_ACTION)
