"""The staff digest (DESIGN §8 ``[notify] staff_digest``): once a day, what waits unseen.

A parent's email that could not be used goes to quarantine and an email or calendar write
that failed for good is dead-lettered; neither reaches anybody by itself.  Once per local
day of the school, when there is something to report, one email goes to ``[school]
contact`` listing the messages quarantined since the last digest and every delivery still
dead-lettered (until someone retries it, it is reported each day).

:func:`send_if_due` is cheap and safe to call on every loop of the daemon: on a day already
done it reads one settings row and returns.  Otherwise it writes, in one transaction, the
digest email as an outbox row with the key ``digest:<date>`` (so that two replicas, or two
calls, queue it once) and the settings row ``staff_digest`` holding the day and the time
the digest covers up to.  :func:`build` is the pure part.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Database, Inbound, Meeting, Outbox, Setting, Teacher
from ptm_sync.app import outbox
from ptm_sync.app.read.conflicts import conflicts
from ptm_sync.app.read.records import explain
from ptm_sync.app.read.retired import retired_meetings
from ptm_sync.config.settings import Config
from ptm_sync.core import imip
from ptm_sync.core.booking import messages
from ptm_sync.ops.failures import plain
from ptm_sync.ops.redact import mask_urls

log = logging.getLogger(__name__)

#: The settings row: {"day": the local date of the last digest run, "until": ISO time}.
SETTING = "staff_digest"
#: The first digest covers this much (there was no previous one).
FIRST_SPAN = timedelta(days=1)
#: Longest last_error quoted in the digest (the outbox keeps up to 2000 characters).
ERROR_WIDTH = 300


@dataclass(frozen=True, slots=True)
class Digest:
    """What one digest reports; ``since``/``until``: the span of quarantine it covers."""

    day: date
    since: datetime
    until: datetime
    quarantined: tuple[messages.QuarantineLine, ...]
    dead: tuple[messages.DeadLetterLine, ...]
    conflicts: tuple[messages.ConflictLine, ...] = ()
    #: Confirmed meetings still ahead whose family or teacher left the roster.
    retired: tuple[messages.RetiredLine, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.quarantined and not self.dead and not self.conflicts and not self.retired


def build(digest: Digest, config: Config) -> messages.Text:
    """The digest's email text (PURE)."""
    return messages.staff_digest(
        school=config.school.name,
        day=digest.day.isoformat(),
        quarantined=digest.quarantined,
        dead=digest.dead,
        tz=config.tz,
        conflicts=digest.conflicts,
        retired=digest.retired,
    )


def collect(session: Session, config: Config, *, since: datetime, now: datetime) -> Digest:
    """Quarantine received in [since, now) and every dead-lettered outbox row."""
    quarantined = tuple(
        messages.QuarantineLine(r.id, r.received_at, r.sender, r.reason, explain(r.reason))
        for r in session.scalars(
            select(Inbound)
            .where(
                Inbound.outcome == "quarantined",
                Inbound.received_at >= since,
                Inbound.received_at < now,
            )
            .order_by(Inbound.id)
        )
    )
    dead = tuple(
        messages.DeadLetterLine(r.id, r.kind, r.meeting_id, _error(r.last_error))
        for r in session.scalars(
            select(Outbox)
            .where(Outbox.state == outbox.DEAD, ~Outbox.key.startswith("digest:"))
            .order_by(Outbox.id)
        )
    )
    clashes = conflicts(session, after=now)
    teachers = dict(
        session.execute(
            select(Meeting.id, Teacher.email)
            .join(Teacher, Teacher.id == Meeting.teacher_id)
            .where(Meeting.id.in_(clashes))
        ).all()
    )
    starts = dict(
        session.execute(select(Meeting.id, Meeting.start).where(Meeting.id.in_(clashes))).all()
    )
    conflicting = tuple(
        messages.ConflictLine(mid, teachers[mid], starts[mid], span.start, span.end)
        for mid, span in sorted(clashes.items(), key=lambda item: starts[item[0]])
    )
    return Digest(
        now.astimezone(config.tz).date(),
        since,
        now,
        quarantined,
        dead,
        conflicting,
        _retired(session, now),
    )


def _retired(session: Session, now: datetime) -> tuple[messages.RetiredLine, ...]:
    """The confirmed meetings not over yet whose family or teacher left the roster."""
    left = retired_meetings(session)
    found = session.execute(
        select(Meeting.id, Teacher.email, Meeting.start)
        .join(Teacher, Teacher.id == Meeting.teacher_id)
        .where(Meeting.id.in_(left), Meeting.end > now)
        .order_by(Meeting.start, Meeting.id)
    )
    return tuple(
        messages.RetiredLine(mid, email, start, left[mid].value) for mid, email, start in found
    )


def _error(text: str) -> str:
    line = mask_urls(plain(text)).splitlines()[0] if text else ""
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 1] + "…"


def _state(session: Session) -> tuple[str, datetime | None]:
    row = session.get(Setting, SETTING)
    if row is None:
        return "", None
    data = json.loads(row.value)
    return str(data.get("day", "")), datetime.fromisoformat(
        data["until"]
    ) if "until" in data else None


def pending(db: Database, config: Config, now: datetime) -> Digest | None:
    """Today's digest if it is due and has something to report (nothing is written)."""
    if not enabled(config):
        return None
    with db.read() as session:
        day, until = _state(session)
        if day == now.astimezone(config.tz).date().isoformat():
            return None
        digest = collect(session, config, since=until or now - FIRST_SPAN, now=now)
    return None if digest.empty else digest


def enabled(config: Config) -> bool:
    """True when the digest is to be sent: ``staff_digest = "daily"`` and ``[mail]`` set."""
    return config.notify.staff_digest == "daily" and config.mail is not None


def done_today(db: Database, config: Config, now: datetime) -> bool:
    """True when today's digest (the school's local day of ``now``) has run already."""
    with db.read() as session:
        day, _ = _state(session)
    return day == now.astimezone(config.tz).date().isoformat()


def send_if_due(db: Database, config: Config, now: datetime) -> bool:
    """Queue today's digest when it is due and has something to report; True if queued.

    Due: ``[notify] staff_digest = "daily"``, ``[mail]`` configured, and no digest sent yet
    on the school's local day of ``now``.  While there is nothing to report the day stays
    open (no email; the next call looks again).  Delivery is the outbox's (the daemon's
    workers or `outbox flush`).
    Another replica queuing the same day's digest at the same time is not an error: the
    outbox key lets one of them win, and the other returns False.
    """
    if not enabled(config):
        return False
    today = now.astimezone(config.tz).date()
    with db.read() as session:  # the common case: done today, one primary-key read
        day, _ = _state(session)
    if day == today.isoformat():
        return False
    try:
        with db.write() as session:
            day, until = _state(session)
            if day == today.isoformat():
                return False
            digest = collect(session, config, since=until or now - FIRST_SPAN, now=now)
            if digest.empty:
                # Nothing yet: the day stays open, so a dead letter later today is told
                # today (the next call looks again).
                return False
            queued = _enqueue(session, config, digest, now)
            value = json.dumps({"day": today.isoformat(), "until": now.isoformat()})
            row = session.get(Setting, SETTING)
            if row is None:
                session.add(Setting(key=SETTING, value=value))
            else:
                row.value = value
    except IntegrityError:  # another replica wrote the settings row first: it did the day
        log.debug("staff digest: done by another replica")
        return False
    if queued:
        log.info(
            "staff digest queued: %d quarantined, %d dead-lettered",
            len(digest.quarantined),
            len(digest.dead),
        )
    return queued


def _enqueue(session: Session, config: Config, digest: Digest, now: datetime) -> bool:
    assert config.mail is not None
    text = build(digest, config)
    domain = config.mail.organizer.rpartition("@")[2]
    msg = imip.build_plain_email(
        sender=config.mail.organizer,
        sender_name=config.school.name,
        to=config.school.contact,
        to_name="",
        subject=text.subject,
        text=text.plain,
        html=text.html,
        message_id=f"<digest.{digest.day.isoformat()}@{domain}>",
        date=now,
    )
    key = f"digest:{digest.day.isoformat()}"
    if session.scalar(select(Outbox.id).where(Outbox.key == key)) is not None:
        return False  # queued already (the settings row was lost, or a replica raced us)
    raw = msg.as_bytes()
    outbox.enqueue(  # the shape `booking.effects.email_row` gives emails
        session,
        key=key,
        kind=outbox.EMAIL,
        payload={
            "from": config.mail.organizer,
            "to": [config.school.contact],
            "raw": base64.b64encode(raw).decode("ascii"),
        },
        now=now,
    )
    return True
