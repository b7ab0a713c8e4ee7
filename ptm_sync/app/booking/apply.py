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
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from icalendar.enums import PARTSTAT
from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
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
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.adapters.video.zoom import meeting_id_of
from ptm_sync.app import outbox
from ptm_sync.app.booking import load, waitlist
from ptm_sync.app.video_links import NOW, ZOOM, link_source
from ptm_sync.config.settings import Config, MailConfig, PeriodConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking import messages
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE, decide, needs
from ptm_sync.core.booking.events import Event, Offer
from ptm_sync.core.booking.letters import Letter, Letterhead, facts, letters
from ptm_sync.core.booking.notices import render_bytes
from ptm_sync.core.booking.table import room_for
from ptm_sync.core.booking.values import (
    TRIED,
    CalendarAction,
    Decision,
    Fresh,
    MeetingView,
    Origin,
    RoomAction,
    WaitlistEntry,
)
from ptm_sync.core.errors import BookingRefused, SlotTaken
from ptm_sync.core.model import Interval, MeetingFormat

log = logging.getLogger(__name__)

_HISTORY_TABLE: Table = MeetingHistory.__table__  # type: ignore[assignment]
_HISTORY = insert(_HISTORY_TABLE)  # built once: append-only, never loaded back

#: How often a decision is taken again after the database refused its slot.
_ATTEMPTS = 3


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
        )

    # --- deciding ---------------------------------------------------------------------

    def view(self, session: Session, meeting: Meeting) -> MeetingView:
        teacher = session.get(Teacher, meeting.teacher_id)
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
        for _ in range(_ATTEMPTS):
            fresh = (
                self.fresh(session, view.period, _account(session, view.teacher.id))
                if _creates(wanted)
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
            if not _claims_a_slot(decision):
                # Nothing the unique index could refuse: no savepoint needed.
                made = self.write(session, decision, inbound_id)
                return _with_id(decision, made)
            try:
                with session.begin_nested():
                    made = self.write(session, decision, inbound_id)
            except SlotTaken:
                log.info("lost the race for a slot; deciding again (%s)", decision.rule)
                load.forget_times(session, view.period, view.teacher.id)
                continue
            return _with_id(decision, made)
        raise SlotTaken("another meeting holds that time")

    def fresh(self, session: Session, period: str, account: str = "") -> Fresh:
        """A new meeting's signed UID, ORGANIZER address and video link (DESIGN §4), for a
        teacher whose calendar is on ``account`` (the link may come from that system)."""
        secret = signing_secret(session)
        domain = self.mail.organizer.rsplit("@", 1)[1]
        uid = trust.make_uid(secret, secrets.token_hex(12), domain)
        organizer = self.mail.organizer
        if self.mail.plus_addressing:
            organizer = trust.organizer_address(organizer, trust.make_token(secret, uid))
        return Fresh(uid=uid, organizer=organizer, video_url=self.room(period, uid, account))

    def room(self, period: str, uid: str, account: str = "") -> str:
        """The video link of a new meeting in ``period`` ("" for in-person periods, and
        where the link is made only once the meeting is confirmed: :func:`link_source`)."""
        if self.config.period(period).format == MeetingFormat.IN_PERSON:
            return ""
        if link_source(self.config, account) != NOW:
            return ""
        room = self.video.create_room(uid)
        return room.url if room else ""

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
        if after is not None and meeting_id is not None:
            self._zoom(session, after, meeting_id)
        if after is not None and decision.calendar is not CalendarAction.NONE:
            self._calendar(session, after, meeting_id, decision.rule)
        for letter in letters(decision, self.head, self.now):
            self._letter(session, letter, meeting_id)
        if decision.waitlist is not None:
            waitlist.join(session, decision.waitlist)
        for follow in decision.then:
            if follow not in replaced:
                self.write(session, follow, None)
        if decision.releases is not None and after is not None:
            self._offer_released(session, after.period, after.teacher.id, decision.releases)
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
        _claim(session)
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
        row.updated_at = self.now
        asker = after.party(decision.asker) if decision.asker is not None else None
        if asker is not None and asker.reply_sequence is not None:
            row.reply_sequence, row.reply_dtstamp = asker.reply_sequence, asker.reply_dtstamp
        if (before.start, before.end, before.state) != (after.start, after.end, after.state):
            # The teacher's times hold each meeting's time and state, nothing else: an
            # answer that changes neither (a declined counter) leaves them as read.
            load.forget_times(session, after.period, after.teacher.id)
        # Loading the links must not flush the new time early: only _claim turns the
        # database's refusal of a held slot into SlotTaken.
        with session.no_autoflush:
            links = {link.guardian_id: link for link in row.guardians}
        for party in after.parties:
            link = links.get(party.guardian_id)
            if link is not None and before.party(party.guardian_id) != party:
                link.partstat = party.partstat
                link.reply_sequence = party.reply_sequence
                link.reply_dtstamp = party.reply_dtstamp
        _claim(session)
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

    def _letter(self, session: Session, letter: Letter, meeting_id: int | None) -> None:
        """An email as an outbox row holding its letter, rendered when it is delivered; or,
        with ``render``, the email itself (``invite``: many emails made at once, nobody
        waiting on the transaction, and delivery kept to sending the bytes)."""
        payload: outbox.EmailPayload = {"from": letter.envelope_from, "to": [letter.to]}
        if self.render:
            payload["raw"] = base64.b64encode(render_bytes(letter)).decode("ascii")
        else:
            payload["letter"] = letter.as_json()
        outbox.enqueue(
            session,
            key=f"email:{letter.message_id}",
            kind=outbox.EMAIL,
            payload=payload,
            now=self.now,
            meeting_id=meeting_id,
        )

    def _zoom(self, session: Session, meeting: MeetingView, meeting_id: int) -> None:
        """A Zoom meeting for a confirmed meeting without a link, and its removal when the
        meeting ends unheld (the table's room column: :func:`room_for`): outbox rows, ahead
        of the calendar write (rows of one meeting are delivered in order)."""
        assert meeting.state is not None
        url, room = meeting.video_url, room_for(meeting.state)
        if room is RoomAction.CREATE and not url:
            if self.config.period(meeting.period).format == MeetingFormat.IN_PERSON:
                return
            if link_source(self.config, _account(session, meeting.teacher.id)) != ZOOM:
                return
            action: outbox.VideoPayload = {"action": "create", "meeting_id": meeting_id}
            key = f"video:{meeting.uid}:create"
        elif room is RoomAction.REMOVE and meeting_id_of(url):
            action = {
                "action": "delete",
                "meeting_id": meeting_id,
                "zoom_id": meeting_id_of(url) or "",
            }
            key = f"video:{meeting.uid}:delete:{meeting_id_of(url)}"
        else:
            return
        outbox.enqueue(
            session, key=key, kind=outbox.VIDEO, payload=action, now=self.now, meeting_id=meeting_id
        )

    def _calendar(
        self, session: Session, meeting: MeetingView, meeting_id: int | None, rule: str
    ) -> None:
        """Bring the teacher's calendar in line with the meeting (delivered by the outbox,
        which reads the meeting as it is then).  A Zoom link made after the write is a
        write of its own (the version's key is taken by the first)."""
        assert meeting.state is not None
        linked = ":linked" if rule.startswith("video-made") else ""
        outbox.enqueue(
            session,
            key=f"calendar:{meeting.uid}:{meeting.sequence}:{meeting.state.value}{linked}",
            kind=outbox.CALENDAR,
            payload={"meeting_id": meeting_id},
            now=self.now,
            meeting_id=meeting_id,
        )

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
        if not guardians or not students:
            return 0
        entry = WaitlistEntry(
            id=None,
            period=period.id,
            teacher_id=teacher.id,
            guardian_ids=tuple(dict.fromkeys(g.id for g in guardians)),
            student_ids=tuple(s.id for s in students),
            since=self.now,
        )
        return int(waitlist.join(session, entry))

    def _offer_released(
        self, session: Session, period: str, teacher_id: int, slot: Interval
    ) -> None:
        """A freed slot goes to the first family waiting for the teacher that can take it
        (the admission rule decides: it may clash with the family's other meetings)."""
        entries = waitlist.first_waiting(session, period, teacher_id)
        if not entries:
            return
        teacher = session.get(Teacher, teacher_id)
        assert teacher is not None
        the_period = self.config.period(period)
        for entry in entries:
            fresh = self.fresh(session, period, teacher.account)
            draft = waitlist.draft_for(
                session, self.config, the_period, teacher, entry, slot, fresh
            )
            if draft is None:
                continue
            decision = self.handle(session, draft, Offer(slot=slot, origin=Origin.WAITLIST))
            if decision.outcome == APPLIED and decision.after is not None:
                waitlist.offered(entry, decision.after.id)
                return

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
        tz = self.config.tz
        days = sorted({w.start.astimezone(tz).date() for w in period.windows})
        holds = [m.hold_until for m in meetings if m.hold_until]
        text = messages.notification(
            school=self.config.school.name,
            period_title=period.title,
            guardian_name=guardian.name,
            dates=[f"{day:%A %d %B}" for day in days],
            meetings=[facts(m) for m in meetings],
            tz=tz,
            contact=self.config.school.contact,
            hold_until=min(holds) if holds else None,
            page_url=self.head.page_url(period.id),
        )
        # One notification per family and set of meetings: a later `invite` that adds
        # meetings tells the family about them; a repeated one sends nothing twice.
        uids = ",".join(sorted(m.uid for m in meetings))
        digest = trust.make_token(signing_secret(session), f"{period.id}/{guardian.email}/{uids}")
        msg = imip.build_plain_email(
            sender=self.mail.organizer,
            sender_name=self.config.school.name,
            to=guardian.email,
            to_name=guardian.name,
            subject=text.subject,
            text=text.plain,
            html=text.html,
            message_id=f"<notify.{period.id}.{digest}@{self.head.domain}>",
            date=self.now,
        )
        enqueue_email(
            session,
            msg,
            meeting_id=None,
            now=self.now,
            envelope_from=self.mail.organizer,
            to=[guardian.email],
        )


#: ``remote_href`` while a create is in flight: the event may exist, and where is unknown.
CREATING = "creating:"


def enqueue_email(
    session: Session,
    msg: EmailMessage,
    *,
    meeting_id: int | None,
    now: datetime,
    envelope_from: str,
    to: Sequence[str],
) -> None:
    """An email as an outbox row; its Message-ID is the idempotency key."""
    if "Date" not in msg:
        msg["Date"] = format_datetime(now)
    raw = msg.as_bytes()
    outbox.enqueue(
        session,
        key=f"email:{msg['Message-ID']}",
        kind=outbox.EMAIL,
        payload={
            "from": envelope_from,
            "to": list(to),
            "raw": base64.b64encode(raw).decode("ascii"),
        },
        now=now,
        meeting_id=meeting_id,
    )


def _claims_a_slot(decision: Decision) -> bool:
    """Whether writing ``decision`` may meet the database's refusal of a taken slot: it
    creates a meeting, gives one a new time, or has follow-ups (which may create one)."""
    if decision.then or decision.releases is not None:
        return True
    before, after = decision.before, decision.after
    if after is None:
        return False
    return before is None or before.state is None or after.slot != before.slot


def _with_id(decision: Decision, made: int | None) -> Decision:
    """``decision`` with the id of the meeting it created."""
    if made is not None and decision.after is not None and decision.after.id is None:
        return replace(decision, after=replace(decision.after, id=made))
    return decision


def _claim(session: Session) -> None:
    """Write the meeting's time; the database refuses a slot another meeting holds.

    The partial unique index (and on PostgreSQL the exclusion constraint) is what makes a
    double booking impossible; its refusal becomes :class:`SlotTaken`.
    """
    try:
        session.flush()
    except IntegrityError as exc:
        raise SlotTaken("another meeting holds that time") from exc


def _creates(wanted: frozenset[str]) -> bool:
    """Whether deciding an event may create a meeting of ours (a re-proposal), which then
    needs a fresh UID.  Events that create the meeting they are about get a draft made
    with :meth:`Applier.fresh` by their channel."""
    return TRIED in wanted


def _family_answer(meeting: MeetingView, asker: int | None = None, current: str = "") -> str:
    """The family's answer as a whole: ACCEPTED while any guardian attends, else the
    asker's latest answer (DESIGN §4, two guardians)."""
    if meeting.attending:
        return PARTSTAT.ACCEPTED
    party = meeting.party(asker) if asker is not None else None
    if party is not None:
        return party.partstat
    return current or (meeting.parties[0].partstat if meeting.parties else PARTSTAT.NEEDS_ACTION)


def _account(session: Session, teacher_id: int) -> str:
    """The ``[[accounts]]`` id of a teacher's calendar."""
    teacher = session.get(Teacher, teacher_id)
    return teacher.account if teacher is not None else ""
