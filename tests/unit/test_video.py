"""Video links: unguessable Jitsi rooms under the configured server, no link for "none"."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from ptm_sync.adapters.video.providers import (
    JitsiProvider,
    NoVideo,
    VideoProvider,
    VideoRoom,
    provider_for,
)
from ptm_sync.app.video_links import CALENDAR, NONE, NOW, ZOOM, link_source
from ptm_sync.config.settings import AccountConfig, Config, VideoConfig, parse
from ptm_sync.core.errors import ConfigError
from tests.support.booking import config_text

BASE32_LOWER = "abcdefghijklmnopqrstuvwxyz234567"


def jitsi(base_url: str = "https://meet.example.org") -> VideoProvider:
    return provider_for(VideoConfig(provider="jitsi", base_url=base_url))


def room_name(room: VideoRoom) -> str:
    return urlsplit(room.url).path.rsplit("/", 1)[-1]


def test_jitsi_room_name_carries_at_least_128_random_bits() -> None:
    room = jitsi().create_room("uid-1")
    assert room is not None
    name = room_name(room)
    assert name.startswith("ptm-")
    random_part = name.removeprefix("ptm-")
    assert set(random_part) <= set(BASE32_LOWER)
    assert len(random_part) * math.log2(len(BASE32_LOWER)) >= 128


def test_jitsi_rooms_are_unique_across_many_meetings() -> None:
    provider = jitsi()
    urls = set()
    for i in range(2000):
        room = provider.create_room(f"uid-{i}")
        assert room is not None
        urls.add(room.url)
    assert len(urls) == 2000


def test_jitsi_room_for_the_same_meeting_is_not_derived_from_its_uid() -> None:
    provider = jitsi()
    first, second = provider.create_room("same-uid"), provider.create_room("same-uid")
    assert first is not None and second is not None
    assert first.url != second.url
    assert "same-uid" not in first.url


@pytest.mark.parametrize(
    ("base_url", "expected_prefix"),
    [
        ("https://meet.example.org", "https://meet.example.org/ptm-"),
        ("https://meet.example.org/", "https://meet.example.org/ptm-"),
        ("https://example.org/video", "https://example.org/video/ptm-"),
        ("https://example.org/video/", "https://example.org/video/ptm-"),
        ("http://127.0.0.1:8443/jitsi//", "http://127.0.0.1:8443/jitsi/ptm-"),
    ],
)
def test_jitsi_url_lives_directly_under_base_url(base_url: str, expected_prefix: str) -> None:
    room = jitsi(base_url).create_room("uid")
    assert room is not None
    assert room.url.startswith(expected_prefix)
    assert re.fullmatch(r"[a-z2-7]{26,}", room.url.removeprefix(expected_prefix))
    assert room.label


@pytest.mark.parametrize("base_url", ["meet.example.org", "ftp://meet.example.org", "https://"])
def test_jitsi_refuses_a_base_url_that_is_not_http(base_url: str) -> None:
    with pytest.raises(ConfigError, match=r"video\.base_url"):
        jitsi(base_url)


def test_jitsi_delete_room_is_harmless() -> None:
    provider = jitsi()
    room = provider.create_room("uid")
    assert room is not None
    provider.delete_room(room)


def test_provider_none_gives_no_link() -> None:
    provider = provider_for(VideoConfig(provider="none"))
    assert isinstance(provider, NoVideo)
    assert provider.create_room("uid") is None


def test_default_config_gives_jitsi() -> None:
    provider = provider_for(VideoConfig())
    assert isinstance(provider, JitsiProvider)
    assert isinstance(provider, VideoProvider)


@pytest.mark.parametrize("name", ["teams", "meet", "zoom"])
def test_links_made_after_confirmation_make_no_room_at_proposal(name: str) -> None:
    provider = provider_for(VideoConfig(provider=name, fallback="none"))
    assert isinstance(provider, VideoProvider)
    assert provider.create_room("uid") is None


@pytest.mark.parametrize(
    ("provider", "fallback", "source"),
    [
        ("jitsi", "jitsi", NOW),
        ("none", "jitsi", NONE),
        ("teams", "jitsi", NOW),  # a CalDAV teacher makes no Teams link: the fallback's
        ("meet", "none", NONE),
        ("zoom", "jitsi", ZOOM),
        ("auto", "jitsi", NOW),  # a CalDAV teacher: the fallback's link
        ("auto", "zoom", ZOOM),
        ("auto", "none", NONE),
    ],
)
def test_where_a_caldav_teachers_link_comes_from(provider: str, fallback: str, source: str) -> None:
    config = _config(provider, fallback)
    assert link_source(config, "dav") == source


@pytest.mark.parametrize(
    ("provider", "kind", "source"),
    [
        ("auto", "graph", CALENDAR),
        ("auto", "google", CALENDAR),
        ("teams", "graph", CALENDAR),
        ("teams", "google", NOW),  # Google makes Meet links, not Teams: the fallback's
        ("meet", "google", CALENDAR),
        ("meet", "graph", NOW),
        ("auto", "ews", NOW),
    ],
)
def test_where_a_teachers_link_comes_from_by_their_system(
    provider: str, kind: str, source: str
) -> None:
    config = _config(provider, "jitsi")
    other = AccountConfig(id="other", type=kind, url="https://x.test/", username="u")
    assert link_source(replace(config, accounts=(*config.accounts, other)), "other") == source


def test_auto_makes_the_fallbacks_rooms() -> None:
    provider = provider_for(VideoConfig(provider="auto", fallback="jitsi"))
    room = provider.create_room("uid")
    assert room is not None and room.url.startswith("https://meet.jit.si/ptm-")
    assert provider_for(VideoConfig(provider="auto", fallback="none")).create_room("u") is None


def _config(provider: str, fallback: str) -> Config:
    zoom = (
        'zoom_account_id = "a"\nzoom_client_id = "c"\nzoom_client_secret = "s"\n'
        if "zoom" in (provider, fallback)
        else ""
    )
    return parse(config_text(video=f'provider = "{provider}"\nfallback = "{fallback}"\n{zoom}'))


def test_unknown_provider_names_the_config_key() -> None:
    with pytest.raises(ConfigError, match=r"video\.provider.*'webex'"):
        provider_for(VideoConfig(provider="webex"))
