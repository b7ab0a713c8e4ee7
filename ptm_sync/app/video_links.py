"""Where a meeting's video link comes from: the provider now, the teacher's calendar system
with the event, Zoom through the outbox, or nowhere (DESIGN §3 "In person or video").

It is an application rule rather than an adapter's: it asks the connector registry
(:func:`connectors.base.online_meeting_provider`) whether the teacher's calendar system makes
links of its own (Teams on Microsoft Graph, Meet on Google).
"""

from __future__ import annotations

from connectors.base import online_meeting_provider
from ptm_sync.config.settings import Config
from ptm_sync.core.model import LinkSource

NOW, CALENDAR, ZOOM, NONE = LinkSource.NOW, LinkSource.CALENDAR, LinkSource.ZOOM, LinkSource.NONE


def link_source(config: Config, account_id: str) -> LinkSource:
    """Where the link of a meeting with a teacher on ``account_id`` comes from:

    * :data:`NOW`: the provider makes it when the meeting is proposed (Jitsi), so the
      invitation carries it;
    * :data:`CALENDAR`: the teacher's calendar system makes it with the event when the
      meeting is confirmed (Teams on Graph, Meet on Google: the connector's
      ``Capability.ONLINE_MEETINGS``); the confirmation carries it;
    * :data:`ZOOM`: the outbox creates a Zoom meeting when the meeting is confirmed;
    * :data:`NONE`: no link.

    ``teams`` and ``meet`` are made by the system that makes them; a teacher on another
    system gets ``fallback``'s link, as with ``auto`` (which takes whichever link the
    teacher's own system makes).
    """
    video = config.video
    provider = video.provider
    if provider in ("auto", "teams", "meet"):
        kind = next((a.type for a in config.accounts if a.id == account_id), "")
        made = online_meeting_provider(kind)
        if made and (provider == "auto" or provider == made):
            return CALENDAR
        provider = video.fallback
    return {"zoom": ZOOM, "none": NONE}.get(provider, NOW)
