"""The outbox rows a decision asks for, as values: emails, the Zoom room, the calendar write.

Side effects are outbox rows written in the meeting's transaction (DESIGN §6).  This module
only says what each row holds (its idempotency key, kind and payload); the applier
(:mod:`ptm_sync.app.booking.apply`) is the one that adds them to the outbox, so that every
effect of a meeting is written on the path of
:meth:`~ptm_sync.app.booking.apply.Applier.handle`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy.orm import Session

from ptm_sync.adapters.video.zoom import meeting_id_of
from ptm_sync.app import outbox
from ptm_sync.app.booking.identity import account
from ptm_sync.app.video_links import ZOOM, link_source
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.letters import Letter
from ptm_sync.core.booking.notices import render_bytes
from ptm_sync.core.booking.table import room_for
from ptm_sync.core.booking.values import MeetingView, RoomAction
from ptm_sync.core.model import MeetingFormat


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One side effect to enqueue: a row with the same ``key`` is written only once."""

    key: str
    kind: str
    payload: outbox.Payload


def letter_row(letter: Letter, render: bool) -> OutboxRow:
    """An email as an outbox row holding its letter, rendered when it is delivered; or,
    with ``render``, the email itself (``invite``: many emails made at once, nobody
    waiting on the transaction, and delivery kept to sending the bytes)."""
    payload: outbox.EmailPayload = {"from": letter.envelope_from, "to": [letter.to]}
    if render:
        payload["raw"] = base64.b64encode(render_bytes(letter)).decode("ascii")
    else:
        payload["letter"] = letter.as_json()
    return OutboxRow(key=f"email:{letter.message_id}", kind=outbox.EMAIL, payload=payload)


def email_row(
    msg: EmailMessage, *, now: datetime, envelope_from: str, to: Sequence[str]
) -> OutboxRow:
    """An email already made as an outbox row; its Message-ID is the idempotency key.  A
    message without a Date is dated ``now`` (the header is added to ``msg``)."""
    if "Date" not in msg:
        msg["Date"] = format_datetime(now)
    raw = msg.as_bytes()
    return OutboxRow(
        key=f"email:{msg['Message-ID']}",
        kind=outbox.EMAIL,
        payload={
            "from": envelope_from,
            "to": list(to),
            "raw": base64.b64encode(raw).decode("ascii"),
        },
    )


def room_row(
    session: Session, config: Config, meeting: MeetingView, meeting_id: int
) -> OutboxRow | None:
    """A Zoom meeting for a confirmed meeting without a link, and its removal when the
    meeting ends unheld (the table's room column: :func:`room_for`); None when neither.
    The applier enqueues it ahead of the calendar write (rows of one meeting are
    delivered in order)."""
    assert meeting.state is not None
    url, room = meeting.video_url, room_for(meeting.state)
    if room is RoomAction.CREATE and not url:
        if config.period(meeting.period).format == MeetingFormat.IN_PERSON:
            return None
        if link_source(config, account(session, meeting.teacher.id)) != ZOOM:
            return None
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
        return None
    return OutboxRow(key=key, kind=outbox.VIDEO, payload=action)


def calendar_row(meeting: MeetingView, meeting_id: int | None, rule: str) -> OutboxRow:
    """Bring the teacher's calendar in line with the meeting (delivered by the outbox,
    which reads the meeting as it is then).  A Zoom link made after the write is a
    write of its own (the version's key is taken by the first)."""
    assert meeting.state is not None
    linked = ":linked" if rule.startswith("video-made") else ""
    return OutboxRow(
        key=f"calendar:{meeting.uid}:{meeting.sequence}:{meeting.state.value}{linked}",
        kind=outbox.CALENDAR,
        payload={"meeting_id": meeting_id},
    )
