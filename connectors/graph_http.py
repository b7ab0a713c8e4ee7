"""The HTTP side of the Graph connector: one Graph call with its token, throttling and
in-flight limit, and the exception for an answer that is not what was wanted.

Limits (Microsoft Graph throttling guidance; "Outlook service limits"): at most four
requests in flight per mailbox in the URL (:class:`~ptm_sync.ops.throttle.InFlight`); 429,
503 and other 5xx with ``Retry-After`` waited out by :attr:`GraphClient.retry` when short,
else :class:`~ptm_sync.core.errors.Unavailable` carrying the delay; a token Graph refuses
(401 ``InvalidAuthenticationToken``) renewed once, then :class:`~ptm_sync.core.errors.AuthFailed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from connectors import graph_wire as wire
from connectors.graph_auth import NEEDED_ROLE, TIMEOUT, TlsSession, TokenSource, unreachable
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    PtmError,
    Unavailable,
    WrongEtag,
)
from ptm_sync.ops.throttle import InFlight, RetryPolicy, parse_retry_after

log = logging.getLogger("connectors.graph")

#: Graph error codes of a refusal for want of permission.
DENIED = frozenset({"erroraccessdenied", "authorization_requestdenied", "accessdenied"})


class Throttled(Unavailable):
    """429 / 503 / 5xx: worth waiting for within the call (Retry-After)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One Graph answer: the HTTP status and the JSON payload (None when empty or not JSON)."""

    status: int
    payload: Any

    @property
    def code(self) -> str:
        """The Graph error code of the payload ("Error resource type"), or ""."""
        return wire.error_code(self.payload)[0]


class GraphClient:
    """Graph calls for one account: base URL, TLS session, tokens, throttling, counts."""

    def __init__(self, account: AccountConfig) -> None:
        self.account = account
        self.base = account.graph_url.rstrip("/")
        ca_file = str(account.ca_file) if account.ca_file else None
        self._session = TlsSession(ca_file)
        self.tokens = TokenSource(account, TlsSession(ca_file))
        #: How long a call waits out 429/503 by itself (tests replace it).
        self.retry = RetryPolicy()
        self.in_flight = InFlight(4)
        #: Graph requests sent (token requests to Entra ID aside).
        self.sent = 0

    def _users(self, mailbox: str) -> str:
        return f"{self.base}/users/{quote(mailbox, safe='@')}"

    def _request(
        self,
        method: str,
        url: str,
        mailbox: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Answer:
        """One Graph call, throttling waited out as :attr:`retry` allows.  ``mailbox`` is
        the one in the URL (at most four requests in flight each); ``what`` names the call
        in errors (default: the mailbox)."""
        attempt = 1
        while True:
            try:
                return self._once(method, url, mailbox, body, params, headers or {}, what)
            except Throttled as exc:
                wait = self.retry.delay(attempt, exc.retry_after)
                if wait is None:
                    raise Unavailable(str(exc), exc.retry_after) from None
                log.info("Graph throttled %s %s: waiting %.1f s", method, mailbox, wait)
                self.retry.sleep(wait)
                attempt += 1

    def _once(
        self,
        method: str,
        url: str,
        mailbox: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        what: str = "",
    ) -> Answer:
        renewed = False
        while True:
            token = self.tokens.token()
            sent = {"Authorization": f"Bearer {token}", "Accept": "application/json", **headers}
            with self.in_flight.slot(mailbox):
                try:
                    reply = self._session.request(
                        method, url, params=params, json=body, headers=sent, timeout=TIMEOUT
                    )
                except requests.RequestException as exc:
                    raise Unavailable(unreachable(f"Graph at {self.base}", exc)) from exc
                finally:
                    self.sent += 1
            answer = Answer(reply.status_code, _json(reply))
            if reply.status_code == 401:
                if not renewed:
                    # InvalidAuthenticationToken: expired or revoked before msal thought so.
                    self.tokens.renew(token)
                    renewed = True
                    continue
                raise AuthFailed(
                    f"Graph refused the access token of account {self.account.id!r} "
                    f"({answer.code or 'HTTP 401'}) after renewing it"
                )
            if reply.status_code in (429, 503) or reply.status_code >= 500:
                raise Throttled(
                    f"Graph answered HTTP {reply.status_code} for {what or f'mailbox {mailbox!r}'}",
                    parse_retry_after(reply.headers.get("Retry-After")),
                )
            return answer

    def _fail(self, answer: Answer, what: str) -> PtmError:
        """The exception for an unexpected answer to ``what``."""
        code = answer.code
        if answer.status == 403 or code.lower() in DENIED:
            return AuthFailed(f"{what}: {self._permission_line()}")
        if answer.status == 404:
            return NotFound(f"{what}: not found ({code or 'HTTP 404'})")
        if answer.status == 412:
            return WrongEtag(f"{what}: changed since we last saw it")
        return ConnectorError(f"{what}: Graph answered HTTP {answer.status} {code}".rstrip())

    def _permission_line(self) -> str:
        return (
            f"Graph account {self.account.id!r}: the app lacks the {NEEDED_ROLE} application "
            "permission (grant admin consent in Entra ID)"
        )

    def close(self) -> None:
        self._session.close()


def _json(reply: requests.Response) -> Any:
    if not reply.content:
        return None
    try:
        return reply.json()
    except ValueError:
        return None
