"""The notification email when booking opens: one per guardian and period (DESIGN §3).

It is about a family, not one meeting: purpose, dates, how to book, contact, and the
meetings proposed to the family now.  This module composes the email; the applier
(:meth:`~ptm_sync.app.booking.apply.Applier.notify_family`) adds it to the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Guardian
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking import messages
from ptm_sync.core.booking.letters import Letterhead, facts
from ptm_sync.core.booking.values import MeetingView


def notification(
    session: Session,
    config: Config,
    head: Letterhead,
    *,
    period: PeriodConfig,
    guardian: Guardian,
    meetings: Sequence[MeetingView],
    now: datetime,
) -> EmailMessage:
    """The notification email to ``guardian`` for ``period``, listing ``meetings``: those of
    the guardian's children proposed now.

    Its Message-ID is made from the period, the guardian and the meetings' UIDs, so that a
    later ``invite`` that adds meetings tells the family about them and a repeated one sends
    nothing twice (the outbox keeps one row a key).
    """
    tz = config.tz
    days = sorted({w.start.astimezone(tz).date() for w in period.windows})
    holds = [m.hold_until for m in meetings if m.hold_until]
    text = messages.notification(
        school=config.school.name,
        period_title=period.title,
        guardian_name=guardian.name,
        dates=[f"{day:%A %d %B}" for day in days],
        meetings=[facts(m) for m in meetings],
        tz=tz,
        contact=config.school.contact,
        hold_until=min(holds) if holds else None,
        page_url=head.page_url(period.id),
    )
    uids = ",".join(sorted(m.uid for m in meetings))
    digest = trust.make_token(signing_secret(session), f"{period.id}/{guardian.email}/{uids}")
    return imip.build_plain_email(
        sender=head.organizer,
        sender_name=config.school.name,
        to=guardian.email,
        to_name=guardian.name,
        subject=text.subject,
        text=text.plain,
        html=text.html,
        message_id=f"<notify.{period.id}.{digest}@{head.domain}>",
        date=now,
    )
