"""Outbox deliverers: SMTP for emails, the teacher's calendar for meeting events."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import CalendarConnector, CalendarRef, RemoteRef
from ptm_sync.adapters.mail.smtp import SmtpSender
from ptm_sync.adapters.store import Database, Meeting, Outbox, Teacher
from ptm_sync.adapters.video.providers import NoVideo, provider_for
from ptm_sync.adapters.video.zoom import ZoomClient
from ptm_sync.app import outbox
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import CREATING, Applier
from ptm_sync.app.channels.teacher_calendar import found_after_crash, kept_text, refused_write
from ptm_sync.app.sync import Connectors, sync
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.aftercare import (
    Unwanted,
    feedback_request_still_due,
    reminder_still_due,
)
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import CalendarWritten, Event, LinkGivenUp, VideoLinkMade
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.booking.teacher_copy import MeetingEvent, TeachersText, teacher_copy
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.errors import NotFound, PtmError, Unavailable, WrongEtag
from ptm_sync.core.model import Interval, LinkSource, MeetingState
from ptm_sync.ops.crashpoints import crash_point

#: Letters that are only worth sending while their meeting is as it was when they were
#: written: a reminder (DESIGN §3, §6: never once the meeting has started) and a feedback
#: request (not once the meeting's personal data was purged).
_TIMELY = frozenset({"reminder", "feedback_request"})


class EmailDeliverer:
    """Sends outbox emails over one SMTP connection for the whole batch, as written: a
    letter that carries a video link made after confirmation was written when the link was
    made (:mod:`ptm_sync.core.booking.written`).

    A reminder or feedback request that waited (the mail server was away) is first checked
    against its meeting as it is at ``clock()``
    (:func:`~ptm_sync.core.booking.aftercare.reminder_still_due`,
    :func:`~ptm_sync.core.booking.aftercare.feedback_request_still_due`): one no longer
    wanted is not sent, and the row is finished with a note saying why.
    """

    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Callable[[], datetime],
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if config.mail is None or config.mail.smtp is None:
            raise PtmError("[mail.smtp] is not configured: emails cannot be sent")
        self.db, self.clock = db, clock
        self.sender = SmtpSender(config.mail.smtp, tls_context=tls_context)

    def __call__(self, row: Outbox) -> str | None:
        """Send the row's email; returns a note ("dropped: …", no personal data) instead
        when it is no longer wanted."""
        data = outbox.email_payload(row)
        letter = data.get("letter")
        if letter is not None and letter.get("template") in _TIMELY:
            unwanted = self._unwanted(row.meeting_id, letter)
            if unwanted is not None:
                return f"dropped: {unwanted}"
        raw = email_of(data)
        self.sender.send(raw, sender=data["from"], recipients=data["to"])
        crash_point("after-send")
        return None

    def _unwanted(self, meeting_id: int | None, letter: Mapping[str, Any]) -> Unwanted | None:
        """Why this reminder or feedback request is no longer sent, read from its meeting
        now; None: it is sent."""
        if meeting_id is None:
            return None  # a letter about no meeting (none of these is)
        with self.db.read() as session:
            meeting = session.get(Meeting, meeting_id)
            if meeting is None:
                return Unwanted.GONE
            state, start, purged = MeetingState(meeting.state), meeting.start, meeting.purged_at
        if letter["template"] == "feedback_request":
            return feedback_request_still_due(purged is not None)
        return reminder_still_due(
            datetime.fromisoformat(letter["start"]), state, start, self.clock()
        )

    def close(self) -> None:
        self.sender.close()


def teacher_event(
    config: Config, meeting: Meeting, teacher: Teacher, kept: TeachersText | None = None
) -> MeetingEvent:
    """The meeting (with its guardians and students loaded) as the teacher's private event
    (:func:`~ptm_sync.core.booking.teacher_copy.teacher_copy`); the calendar system is asked
    for the video link when it makes the meeting's link (Teams, Meet).  ``kept``: the text
    of the teacher's own version, kept when they edited it."""
    view = load.view(config, meeting, teacher)
    online = load.link_from(config, config.period(view.period), teacher.account)
    return teacher_copy(
        view,
        summary_template=config.templates.summary,
        contact=config.school.contact,
        online_meeting=online is LinkSource.CALENDAR,
        teachers_text=kept,
    )


class CalendarDeliverer:
    """Brings a teacher's calendar in line with the meeting as it is *now*.

    A row says only "meeting N changed"; the deliverer reads the meeting's current state,
    so a repeated or late delivery converges on the truth instead of replaying old intent.

    A write refused because the teacher changed the event (412: WrongEtag) or deleted it
    (NotFound) reads their calendar again and hands what they did to the booking core
    (DESIGN §3): a move or a deletion is the teacher-side change, an edit makes their
    version the one we know, and the meeting as it is then is written on it, keeping the
    teacher's text.  Nothing is dead-lettered for a teacher's edit.

    Before a create the meeting is marked :data:`CREATING` in its own transaction: a crash
    after the server took the event but before its href was stored leaves that mark, and the
    next delivery finds the event again by UID (``create_event`` is idempotent) — to keep
    it, or to remove it when the meeting has ended meanwhile.  What a write brings back
    (where the event lives, its ETag, a joining link the system made) is an event for the
    booking core (:class:`~ptm_sync.core.booking.events.CalendarWritten`), written by the
    applier: a Teams or Meet link then reaches the parents in their confirmation.
    """

    def __init__(
        self, db: Database, config: Config, connectors: Connectors, clock: Callable[[], datetime]
    ) -> None:
        self.db, self.config, self.connectors, self.clock = db, config, connectors, clock
        self.video = provider_for(config.video)

    def __call__(self, row: Outbox) -> None:
        self._deliver(int(outbox.calendar_payload(row)["meeting_id"] or 0), reread=True)

    def _deliver(self, meeting_id: int, *, reread: bool) -> None:
        with self.db.read() as session:
            meeting = session.get(Meeting, meeting_id)
            if meeting is None:
                return
            teacher = session.get(Teacher, meeting.teacher_id)
            assert teacher is not None
            kept = kept_text(session, meeting) if meeting.remote_edited else None
            event = teacher_event(self.config, meeting, teacher, kept)
        ref = CalendarRef(teacher.account, teacher.calendar)
        connector = self.connectors.get(teacher.account)
        creating = meeting.remote_href == CREATING
        remote = (
            RemoteRef(meeting.remote_href, meeting.remote_etag)
            if meeting.remote_href and not creating
            else None
        )
        if meeting.state == MeetingState.CONFIRMED:
            if remote is None and creating and reread:
                # A create cut off by a crash: the teacher may have changed the event since
                # the server took it.  Read it again before anything overwrites it.
                self._read_again(teacher.email)
                now = self.clock()
                # The time the create was sent at (the meeting's, when not recorded).
                written = Interval(
                    meeting.remote_start or meeting.start, meeting.remote_end or meeting.end
                )
                if found_after_crash(
                    self.db,
                    self.config,
                    meeting_id,
                    event,
                    written=written,
                    now=now,
                    video=self.video,
                ):
                    return self._deliver(meeting_id, reread=False)
            if remote is None:
                remote = self._create(connector, ref, event, meeting_id, creating)
            else:
                try:
                    remote = connector.update_event(ref, remote, event)
                except (NotFound, WrongEtag) as refused:
                    # DESIGN §3: the teacher changed or deleted the event since the version
                    # we know.  It is read again and what they did is decided (a move or a
                    # deletion is the teacher-side change); then the meeting as it is now
                    # is written on their version.
                    if reread:
                        self._read_again(teacher.email)
                        now = self.clock()
                        refused_write(self.db, self.config, meeting_id, now=now, video=self.video)
                        return self._deliver(meeting_id, reread=False)
                    if isinstance(refused, WrongEtag):
                        raise WrongEtag(
                            f"event {remote.href} of meeting {meeting.uid} changed again in "
                            "the teacher's calendar while it was read; written later"
                        ) from None
                    # Gone, though the calendar read again still lists it: written anew.
                    remote = self._create(connector, ref, event, meeting_id, creating)
            crash_point("mid-calendar-write")
            self._store(meeting_id, remote, Interval(event.start, event.end))
            return
        if creating:
            # A create may have reached the server before a crash: find the event by its
            # UID (creating it if it never arrived) so that it can be removed.
            remote = connector.create_event(ref, event)
        if remote is not None:
            try:
                connector.delete_event(ref, remote)
            except WrongEtag:
                # The teacher edited the event, but the meeting is gone: remove it anyway.
                connector.delete_event(ref, RemoteRef(remote.href, None))
            self._store(meeting_id, None)

    def _read_again(self, teacher_email: str) -> None:
        """The teacher's calendar is read again (one teacher's sync) before a change of
        theirs is decided (DESIGN §3).

        Raises:
            Unavailable: the calendar could not be read again (retried later).
        """
        now = self.clock()
        [result] = sync(self.db, self.config, self.connectors, now=now, teacher_email=teacher_email)
        if result.error:
            raise Unavailable(f"the teacher's calendar could not be read again: {result.error}")

    def given_up(self, row: Outbox) -> None:
        """The write was dead-lettered: a confirmation waiting for the link it was to make
        (Teams, Meet) goes without one."""
        meeting_id = outbox.calendar_payload(row)["meeting_id"]
        if meeting_id is not None:
            _apply(self.db, self.config, self.clock(), meeting_id, LinkGivenUp())

    def _create(
        self,
        connector: CalendarConnector,
        ref: CalendarRef,
        event: MeetingEvent,
        meeting_id: int,
        marked: bool,
    ) -> RemoteRef:
        if not marked:
            # The time being created at: what a resumed create compares the teacher's to.
            self._store(meeting_id, RemoteRef(CREATING), Interval(event.start, event.end))
        return connector.create_event(ref, event)

    def _store(
        self, meeting_id: int, remote: RemoteRef | None, slot: Interval | None = None
    ) -> None:
        event = CalendarWritten(
            href=remote.href if remote else None,
            etag=remote.etag if remote else None,
            slot=slot if remote else None,
            join_url=remote.join_url if remote else "",
            in_flight=remote is not None and remote.href == CREATING,
        )
        _apply(self.db, self.config, self.clock(), meeting_id, event)


class VideoDeliverer:
    """Outbox rows of kind ``video``: Zoom meetings made for confirmed meetings and removed
    for cancelled ones (:mod:`ptm_sync.adapters.video.zoom`).

    A create reads the meeting as it is now: one no longer confirmed, or that has a link
    already, needs nothing.  A crash after Zoom made the meeting but before its link was
    stored makes a second Zoom meeting on the retry; the first is never shared with anyone.
    """

    def __init__(
        self, db: Database, config: Config, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.db, self.config = db, config
        self.clock = clock or (lambda: datetime.now(UTC))
        self._client: ZoomClient | None = None

    @property
    def client(self) -> ZoomClient:
        if self._client is None:
            self._client = ZoomClient(self.config.video)
        return self._client

    def __call__(self, row: Outbox) -> None:
        data = outbox.video_payload(row)
        if data["action"] == "delete":
            self.client.delete_meeting(str(data["zoom_id"]))
            return
        meeting_id = int(data["meeting_id"])
        with self.db.read() as session:
            meeting = session.get(Meeting, meeting_id)
            if meeting is None or meeting.state != MeetingState.CONFIRMED or meeting.video_url:
                return
            start, end = meeting.start, meeting.end
        minutes = max(1, int((end - start).total_seconds() // 60))
        made = self.client.create_meeting(
            f"Parent-teacher conference, {self.config.school.name}", start, minutes
        )
        decision = _apply(
            self.db, self.config, self.clock(), meeting_id, VideoLinkMade(url=made.join_url)
        )
        if decision is None or decision.outcome != APPLIED:
            self.client.delete_meeting(made.id)  # the meeting ended or got a link meanwhile

    def given_up(self, row: Outbox) -> None:
        """The Zoom room could not be made: a confirmation waiting for it goes without."""
        data = outbox.video_payload(row)
        if data["action"] == "create":
            _apply(self.db, self.config, self.clock(), data["meeting_id"], LinkGivenUp())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _apply(
    db: Database, config: Config, now: datetime, meeting_id: int, event: Event
) -> Decision | None:
    """Hand what a write brought back to the booking core, in its own transaction; None
    when the meeting is gone (purged meanwhile)."""
    with db.write() as session:
        meeting = session.get(Meeting, meeting_id, with_for_update=True)
        if meeting is None:
            return None
        # No meeting is created from a write's result: the video provider is never asked.
        return Applier(config, now=now, video=NoVideo(config.video)).handle(session, meeting, event)
