"""Video links for meetings: one small provider interface and a registry.

A provider turns a meeting into a :class:`VideoRoom` (a joining URL and a label for the
RFC 7986 CONFERENCE property).  A Jitsi room is made when the meeting is proposed, so the
invitation already carries the link; the caller stores its URL with the meeting for the
meeting's whole life, and nothing here remembers rooms.  ``create_room`` runs inside the
booking transaction, so it never calls a remote API.

Links that need one are made after the meeting is confirmed (``app.video_links.link_source``):
Teams and Meet by the teacher's calendar system when the outbox writes the event (Graph
``isOnlineMeeting``, Google ``conferenceData``), Zoom by an outbox row of its own
(:mod:`ptm_sync.adapters.video.zoom`); the confirmation email, sent after them, carries the link.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ptm_sync.config.settings import VideoConfig
from ptm_sync.core.errors import ConfigError

#: Random bytes in a Jitsi room name: 160 bits, well above the 128 a guessable link must beat.
ROOM_BYTES = 20
ROOM_PREFIX = "ptm-"


@dataclass(frozen=True, slots=True)
class VideoRoom:
    """Where a video meeting happens: the joining URL and a label for people and clients."""

    url: str
    label: str


@runtime_checkable
class VideoProvider(Protocol):
    """Creates and removes video rooms.  ``create_room`` returns None when there is no link."""

    name: ClassVar[str]

    def create_room(self, meeting_uid: str) -> VideoRoom | None: ...

    def delete_room(self, room: VideoRoom) -> None: ...


class JitsiProvider:
    """Rooms on a Jitsi Meet server: a room exists as soon as somebody opens its URL.

    The name carries :data:`ROOM_BYTES` bytes from :mod:`secrets`, base32-encoded in lower
    case (URL-safe, no padding), so that nobody can find a meeting by guessing its link.  The
    meeting UID is deliberately not part of the name: the parent sees the UID.
    """

    name: ClassVar[str] = "jitsi"

    def __init__(self, config: VideoConfig) -> None:
        self.base_url = _base_url(config.base_url)

    def create_room(self, meeting_uid: str) -> VideoRoom:
        token = base64.b32encode(secrets.token_bytes(ROOM_BYTES)).decode("ascii")
        room = ROOM_PREFIX + token.rstrip("=").lower()
        return VideoRoom(url=f"{self.base_url}/{room}", label="Jitsi Meet")

    def delete_room(self, room: VideoRoom) -> None:
        """Nothing to do: a Jitsi room disappears when the last participant leaves."""


class NoVideo:
    """``provider = "none"``: meetings carry no video link."""

    name: ClassVar[str] = "none"

    def __init__(self, config: VideoConfig) -> None:
        pass

    def create_room(self, meeting_uid: str) -> None:
        return None

    def delete_room(self, room: VideoRoom) -> None:
        pass


class _LinkLater:
    """A provider whose links are made after the meeting is confirmed, not at proposal: Zoom
    by the outbox (DESIGN §6).  ``create_room`` makes nothing; see
    ``app.video_links.link_source``."""

    name: ClassVar[str] = ""

    def __init__(self, config: VideoConfig) -> None:
        self.config = config

    def create_room(self, meeting_uid: str) -> None:
        return None

    def delete_room(self, room: VideoRoom) -> None:
        """Nothing here: the outbox removes a Zoom meeting."""


class ZoomProvider(_LinkLater):
    name = "zoom"


class AutoProvider:
    """``provider = "auto"``: the teacher's own system's link (Teams on Graph, Meet on
    Google: ``app.video_links.link_source``), else ``fallback``, whose rooms this makes (for
    the teachers ``link_source`` says get them now)."""

    name: ClassVar[str] = "auto"

    def __init__(self, config: VideoConfig) -> None:
        self.fallback = provider_for(replace(config, provider=config.fallback))

    def create_room(self, meeting_uid: str) -> VideoRoom | None:
        return self.fallback.create_room(meeting_uid)

    def delete_room(self, room: VideoRoom) -> None:
        self.fallback.delete_room(room)


class TeamsProvider(AutoProvider):
    """Teams links, made by Microsoft 365 with the event; ``fallback`` for other teachers."""

    name: ClassVar[str] = "teams"


class MeetProvider(AutoProvider):
    """Meet links, made by Google Calendar with the event; ``fallback`` for other teachers."""

    name: ClassVar[str] = "meet"


_REGISTRY: dict[str, Callable[[VideoConfig], VideoProvider]] = {
    "jitsi": JitsiProvider,
    "none": NoVideo,
    "teams": TeamsProvider,
    "meet": MeetProvider,
    "zoom": ZoomProvider,
    "auto": AutoProvider,
}


def register(name: str, factory: Callable[[VideoConfig], VideoProvider]) -> None:
    """Make ``factory`` the provider for ``[video] provider = name``."""
    _REGISTRY[name] = factory


def provider_for(config: VideoConfig) -> VideoProvider:
    """The provider that ``[video]`` names.

    Raises:
        ConfigError: the provider is unknown, or ``base_url`` is not an http(s) URL.
    """
    factory = _REGISTRY.get(config.provider)
    if factory is None:
        known = " | ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"unknown video provider {config.provider!r} (choose {known})", "video.provider"
        )
    return factory(config)


def _base_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"must be an http(s) URL, got {raw!r}", "video.base_url")
    if parts.query or parts.fragment:
        raise ConfigError(f"must not carry a query or fragment, got {raw!r}", "video.base_url")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
