"""Zoom meetings through a server-to-server OAuth app (``[video] provider = "zoom"``).

Made from Zoom's documentation: "Server-to-Server OAuth" (token: ``POST {zoom_token_url}``
with ``grant_type=account_credentials&account_id=…`` and HTTP Basic ``client_id:secret``,
answering ``access_token`` and ``expires_in`` seconds) and the Meetings API (``POST
{zoom_api_url}/users/me/meetings`` → 201 with ``id`` and ``join_url``; ``DELETE
{zoom_api_url}/meetings/{id}`` → 204, 404 with code 3001 when it does not exist).  Rate
limits answer 429 with ``Retry-After``.

Meetings are made by the outbox when a meeting is confirmed and removed when it is cancelled
(DESIGN §6: no remote side effect inside the booking transaction).  The topic names the
school only: Zoom is a third party and learns no parent's or student's name.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from ptm_sync.config.settings import VideoConfig
from ptm_sync.core.errors import AuthFailed, ConnectorError, Unavailable
from ptm_sync.ops.throttle import RetryPolicy, parse_retry_after

TIMEOUT = (10.0, 30.0)
#: The meeting id in a Zoom joining URL (``https://…zoom.us/j/85746065432?pwd=…``).
_JOIN_ID = re.compile(r"/j/(\d{9,12})(?:\?|$)")


@dataclass(frozen=True, slots=True)
class ZoomMeeting:
    id: str
    join_url: str


def meeting_id_of(join_url: str) -> str | None:
    """The Zoom meeting id a joining URL names, or None when it is not a Zoom link."""
    found = _JOIN_ID.search(join_url)
    return found.group(1) if found and "zoom" in join_url else None


class ZoomClient:
    """Creates and deletes Zoom meetings; one access token, renewed when it runs out or is
    refused (once, then :class:`~ptm_sync.core.errors.AuthFailed`)."""

    def __init__(self, config: VideoConfig) -> None:
        if config.zoom_client_secret is None:
            raise ConnectorError("video.zoom_client_secret is not set")
        self.config = config
        self.retry = RetryPolicy(attempts=3, only_named=True)
        self._http = requests.Session()
        self._token: str | None = None
        self._expires = 0.0

    # --- tokens ---------------------------------------------------------------------------

    def _access_token(self, *, renew: bool = False) -> str:
        if self._token and not renew and time.monotonic() < self._expires - 60:
            return self._token
        assert self.config.zoom_client_secret is not None
        secret = self.config.zoom_client_secret.reveal()
        try:
            reply = self._http.post(
                self.config.zoom_token_url,
                params={
                    "grant_type": "account_credentials",
                    "account_id": self.config.zoom_account_id,
                },
                auth=(self.config.zoom_client_id, secret),
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise Unavailable(
                f"Zoom: cannot reach the token endpoint ({type(exc).__name__})"
            ) from None
        if reply.status_code in (400, 401, 403):
            raise AuthFailed(
                "Zoom refused the app's credentials (check video.zoom_account_id, "
                f"zoom_client_id and zoom_client_secret; HTTP {reply.status_code})"
            )
        self._raise_for_outage(reply, "token")
        body = reply.json()
        self._token = str(body["access_token"])
        self._expires = time.monotonic() + float(body.get("expires_in", 3600))
        return self._token

    # --- calls ----------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, json: dict[str, Any] | None = None
    ) -> requests.Response:
        url = self.config.zoom_api_url.rstrip("/") + path

        def once() -> requests.Response:
            renewed = False
            while True:
                token = self._access_token(renew=renewed)
                try:
                    reply = self._http.request(
                        method,
                        url,
                        json=json,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=TIMEOUT,
                    )
                except requests.RequestException as exc:
                    raise Unavailable(
                        f"Zoom: cannot reach the API ({type(exc).__name__})"
                    ) from None
                if reply.status_code == 401 and not renewed:
                    renewed = True  # expired or revoked: one new token, then give up
                    continue
                if reply.status_code == 401:
                    raise AuthFailed("Zoom refused a freshly issued access token (HTTP 401)")
                self._raise_for_outage(reply, path)
                return reply

        return self.retry.run(once)

    @staticmethod
    def _raise_for_outage(reply: requests.Response, what: str) -> None:
        if reply.status_code == 429 or reply.status_code >= 500:
            raise Unavailable(
                f"Zoom {what}: HTTP {reply.status_code}",
                retry_after=parse_retry_after(reply.headers.get("Retry-After")),
            )

    def create_meeting(self, topic: str, start: datetime, minutes: int) -> ZoomMeeting:
        """A scheduled meeting (type 2) at ``start`` (aware; sent in UTC) for ``minutes``.

        Raises:
            AuthFailed, Unavailable: as the module says.
            ConnectorError: Zoom refused the request (a 4xx other than 401/429).
        """
        body: dict[str, Any] = {
            "topic": topic[:200],
            "type": 2,
            "start_time": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": minutes,
            "timezone": "UTC",
            "settings": {"join_before_host": False, "waiting_room": True},
        }
        reply = self._call("POST", "/users/me/meetings", body)
        if reply.status_code != 201:
            raise ConnectorError(f"Zoom refused to create a meeting (HTTP {reply.status_code})")
        data = reply.json()
        return ZoomMeeting(id=str(data["id"]), join_url=str(data["join_url"]))

    def delete_meeting(self, meeting_id: str) -> None:
        """Delete a meeting; one that does not exist (any more) is success."""
        reply = self._call("DELETE", f"/meetings/{meeting_id}")
        if reply.status_code not in (200, 204, 404):
            raise ConnectorError(f"Zoom refused to delete a meeting (HTTP {reply.status_code})")

    def check(self) -> list[str]:
        """Problems with the Zoom app, one line each (a token is asked for)."""
        try:
            self._access_token(renew=True)
        except (AuthFailed, Unavailable, ConnectorError) as exc:
            return [f"video: {exc}"]
        return []

    def close(self) -> None:
        self._http.close()
