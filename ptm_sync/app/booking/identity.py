"""A new meeting's identity (DESIGN §4): its signed UID, ORGANIZER address and video link.

Computes values and reads the store; writes nothing.  The applier
(:mod:`ptm_sync.app.booking.apply`) asks for one when a channel drafts a meeting
(:meth:`~ptm_sync.app.booking.apply.Applier.fresh`) or when deciding an event may create one.
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Teacher
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.video_links import NOW, link_source
from ptm_sync.config.settings import Config, MailConfig
from ptm_sync.core import trust
from ptm_sync.core.booking.values import TRIED, Fresh
from ptm_sync.core.model import MeetingFormat


def fresh(
    session: Session,
    config: Config,
    mail: MailConfig,
    video: VideoProvider,
    period: str,
    account: str = "",
) -> Fresh:
    """A new meeting's signed UID, ORGANIZER address and video link, for a teacher whose
    calendar is on ``account`` (the link may come from that system)."""
    secret = signing_secret(session)
    domain = mail.organizer.rsplit("@", 1)[1]
    uid = trust.make_uid(secret, secrets.token_hex(12), domain)
    organizer = mail.organizer
    if mail.plus_addressing:
        organizer = trust.organizer_address(organizer, trust.make_token(secret, uid))
    return Fresh(uid=uid, organizer=organizer, video_url=room(config, video, period, uid, account))


def room(config: Config, video: VideoProvider, period: str, uid: str, account: str = "") -> str:
    """The video link of a new meeting in ``period`` ("" for in-person periods, and
    where the link is made only once the meeting is confirmed: :func:`link_source`)."""
    if config.period(period).format == MeetingFormat.IN_PERSON:
        return ""
    if link_source(config, account) != NOW:
        return ""
    made = video.create_room(uid)
    return made.url if made else ""


def may_create(wanted: frozenset[str]) -> bool:
    """Whether deciding an event may create a meeting of ours (a re-proposal), which then
    needs a fresh UID.  Events that create the meeting they are about get a draft made
    with :meth:`~ptm_sync.app.booking.apply.Applier.fresh` by their channel."""
    return TRIED in wanted


def account(session: Session, teacher_id: int) -> str:
    """The ``[[accounts]]`` id of a teacher's calendar ("" when the teacher is gone)."""
    teacher = session.get(Teacher, teacher_id)
    return teacher.account if teacher is not None else ""
