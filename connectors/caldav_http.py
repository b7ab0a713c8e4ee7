"""HTTP for the CalDAV connector: python-caldav's DAVClient, with every error translated here.

``DavTransport.request`` returns a :class:`Reply` for any HTTP status and raises only
ptm-sync errors: connection failures, timeouts and throttling become
:class:`~ptm_sync.core.errors.Unavailable` (with ``retry_after`` from Retry-After), refused
credentials :class:`Refused` (an :class:`~ptm_sync.core.errors.AuthFailed` that says what the
server wants, read from its ``WWW-Authenticate`` challenges, RFC 7235 §4.1:
:mod:`connectors.challenge`).  A 403 is a reply like any other: the caller decides (a
collection we may not read is :class:`~ptm_sync.core.errors.AccessDenied`).
:func:`raise_for_status` maps the status of a reply the caller did not expect.  Nothing
above ``connectors/`` sees a caldav, niquests or requests exception.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from caldav.davclient import DAVClient
from caldav.lib import error as dav_error
from caldav.lib.http_sync import requests as http
from lxml import etree

from connectors import dav_xml
from connectors.challenge import PASSWORD_REFUSED, AuthScheme, refusal, schemes
from ptm_sync.core.errors import (
    AccessDenied,
    AuthFailed,
    ConnectorError,
    NotFound,
    Unavailable,
    Unsupported,
    WrongEtag,
)
from ptm_sync.ops.failures import plain
from ptm_sync.ops.throttle import RetryPolicy

log = logging.getLogger(__name__)

#: Seconds to wait for a connection, and for each read of an answer.  Short, so that a
#: server that accepts connections and never answers costs little (the outbox's circuit
#: breaker then stops trying it for a while); module constants because DESIGN §8 has no key
#: for them.  The read bound is per read, generous for a large REPORT trickling in.
CONNECT_SECONDS = 5.0
READ_SECONDS = 20.0

#: What the transport may raise from the HTTP library: connection refused, DNS, TLS, timeouts.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (http.exceptions.RequestException, OSError)
#: …except a URL that can never work, which is a configuration problem, not an outage.
_URL_ERRORS: tuple[type[BaseException], ...] = (
    http.exceptions.InvalidURL,
    http.exceptions.MissingSchema,
    http.exceptions.InvalidSchema,
)

#: Said when the account has no user name and password and the server asks for them.
NO_CREDENTIALS = "the server asks for a user name and password and the account gives none"


class Refused(AuthFailed):
    """The server refused the account's credentials (HTTP 401).

    The message names the account id and the server's host only (never a teacher's
    calendar: it is shown in ``/healthz``) and says what the server wants; ``sentence`` is
    that part alone (for ``check``'s line, which names the account its own way).
    """

    def __init__(self, account: str, host: str, sentence: str) -> None:
        who = f"account {account!r} ({host})" if account else host
        super().__init__(f"{who}: {sentence}")
        self.sentence = sentence


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: status, headers (lower-case names), body text and parsed XML if any."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    tree: Any = None

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag") or None

    def multistatus(self) -> dav_xml.Multistatus:
        return dav_xml.parse_multistatus(self.tree)

    def preconditions(self) -> dict[str, list[str]]:
        return dav_xml.preconditions(self.text)


class DavTransport:
    """One authenticated HTTP session to a CalDAV account.

    With a user name and password, Basic credentials go with the very first request
    (RFC 7617 allows sending them unprompted), so a fresh process does not pay a 401
    round trip and an idle sync pass stays at one request per calendar.  A server that
    refuses them once gets a second chance to name its scheme (Digest) in a challenge.
    ``account`` (the account id) and the URL's host name a refusal (:class:`Refused`).
    """

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        *,
        ca_file: str | None = None,
        timeout: tuple[float, float] | None = None,
        account: str = "",
    ) -> None:
        self.url = url
        self.account = account
        self.username = username or ""
        self.host = urlsplit(url).hostname or url
        #: Only a wait the server names is taken (no blind retries: an outage is the
        #: outbox's and the next pass's to wait out).
        self.retry = RetryPolicy(attempts=3, only_named=True)
        self._credentials = bool(username) and password is not None
        #: Basic credentials are sent unprompted until the server refuses them once.
        self._preemptive = self._credentials
        #: The WWW-Authenticate value of the last 401 answer (RFC 7235 §4.1).
        self._challenge: str | None = None
        try:
            self._client = DAVClient(
                url=url,
                username=username or None,
                password=password,
                auth_type="basic" if self._preemptive else None,
                # TLS is always verified; a private CA is trusted besides the system's.
                ssl_verify_cert=ca_file or True,
                # (connect, read): the HTTP library takes the pair (caldav types it as int)
                timeout=timeout or (CONNECT_SECONDS, READ_SECONDS),  # type: ignore[arg-type]
                enable_rfc6764=False,
                rate_limit_handle=False,
            )
        except (dav_error.DAVError, ValueError) as exc:
            raise ConnectorError(f"cannot use CalDAV URL {url!r}: {exc}") from exc
        # The library keeps a 401's headers to itself; a response hook (requests' and
        # niquests' documented Session.hooks) reads the challenge as the answer arrives.
        self._client.session.hooks["response"].append(self._note_challenge)

    def _note_challenge(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(response, "status_code", None) == 401:
            self._challenge = response.headers.get("WWW-Authenticate")
        return response

    def request(
        self,
        method: str,
        url: str,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request; raise only ptm-sync errors (see the module docstring).

        A 429 or 503 naming a short wait (Retry-After, at most ``retry.max_wait`` seconds)
        is waited out and the request sent again (:class:`~ptm_sync.ops.throttle.RetryPolicy`);
        a longer one is :class:`~ptm_sync.core.errors.Unavailable` carrying the wait.

        Raises:
            Refused: the credentials were refused (401), or the server offers no scheme
                we can speak; the message says what it wants.
            Unavailable: the server cannot be reached, or throttles us for longer.
            ConnectorError: malformed XML, a URL that can never work.
        """
        return self.retry.run(lambda: self._request(method, url, body, headers))

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | str,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        what = f"{method} {url}"
        text = body.decode("utf-8") if isinstance(body, bytes) else body  # sent as UTF-8
        try:
            response = self._send(url, method, text, headers)
        except dav_error.RateLimitError as exc:
            raise Unavailable(
                f"{what}: the server asks us to slow down (HTTP {exc.status})",
                retry_after=exc.retry_after_seconds,
            ) from exc
        except dav_error.AuthorizationError as exc:
            if exc.status == 403:
                # RFC 9110 §15.5.4: understood and refused; with a precondition (RFC 4918
                # §16: valid-sync-token, no-uid-conflict, supported-report) an answer for
                # the caller, without one a resource we may not touch. Not the credentials.
                return Reply(status=403, text=_text(exc.body))
            raise self.refused() from None
        except NotImplementedError:  # the server offers no auth scheme we can speak
            raise self.refused() from None
        except etree.XMLSyntaxError as exc:
            raise ConnectorError(f"{what}: the server sent malformed XML: {exc}") from exc
        except dav_error.DAVError as exc:
            raise ConnectorError(f"{what}: {exc}") from exc
        except _URL_ERRORS as exc:
            raise ConnectorError(f"{what}: not a usable URL: {exc}") from exc
        except _NETWORK_ERRORS as exc:
            raise Unavailable(f"{what}: cannot reach the server: {plain(str(exc))}") from exc
        reply = Reply(
            status=response.status,
            headers={name.lower(): value for name, value in (response.headers or {}).items()},
            text=response.raw if response.status != 204 else "",
            tree=response.tree,
        )
        log.debug("%s -> %s", what, reply.status)
        return reply

    def _send(self, url: str, method: str, text: str, headers: Mapping[str, str] | None) -> Any:
        try:
            return self._client.request(url, method, text, dict(headers or {}))
        except dav_error.AuthorizationError as exc:
            if not (self._preemptive and exc.status == 401):
                raise
        # Unprompted Basic was refused: forget it and let the client negotiate the scheme
        # the server's challenge names (RFC 7235 §4.1), as on a first contact.
        self._preemptive = False
        self._client.auth = None
        self._client.auth_type = None
        return self._client.request(url, method, text, dict(headers or {}))

    def refused(self) -> Refused:
        """The refusal of the last 401, in words (:func:`connectors.challenge.refusal`)."""
        challenges = [self._challenge]
        if not self._credentials:
            offered = set(schemes(challenges))
            if not offered or offered & {AuthScheme.BASIC, AuthScheme.DIGEST}:
                return Refused(self.account, self.host, NO_CREDENTIALS)
        digest = isinstance(self._client.auth, http.auth.HTTPDigestAuth)
        sent = AuthScheme.DIGEST if digest else AuthScheme.BASIC
        sentence = refusal(challenges, sent=sent, host=self.host)
        if sentence == PASSWORD_REFUSED and self.username:
            sentence = f"{sentence} (user {self.username})"  # which login, as Exchange says
        return Refused(self.account, self.host, sentence)

    def close(self) -> None:
        with contextlib.suppress(*_NETWORK_ERRORS):  # a broken session is closed anyway
            self._client.close()


def _text(body: bytes | str | None) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body or ""


def raise_for_status(reply: Reply, what: str, ok: Collection[int] = (200, 201, 204, 207)) -> Reply:
    """Return ``reply`` when its status is in ``ok``; otherwise raise the matching error.

    Raises:
        AuthFailed: 401 (the transport raises :class:`Refused` before one gets here).
        AccessDenied: 403, the account may not touch the resource.
        NotFound: 404, 410.
        WrongEtag: 412.
        Unavailable: 429, 5xx (``retry_after`` from Retry-After).
        Unsupported: 400, 405, 501.
        ConnectorError: any other status.
    """
    status = reply.status
    if status in ok:
        return reply
    message = f"{what}: HTTP {status}"
    if status == 401:
        raise AuthFailed(f"{what}: the server refused our credentials (HTTP 401)")
    if status == 403:
        raise AccessDenied(f"{what}: the server refuses the account access (HTTP 403)")
    if status in (404, 410):
        raise NotFound(f"{what}: not found (HTTP {status})")
    if status == 412:
        raise WrongEtag(f"{what}: the object changed on the server (HTTP 412)")
    if status in (429, 503) or status >= 500:
        retry_after = dav_error.parse_retry_after(reply.headers.get("retry-after", ""))
        raise Unavailable(message, retry_after=retry_after)
    if status in (400, 405, 501):
        raise Unsupported(f"{what}: the server does not support this request (HTTP {status})")
    raise ConnectorError(message)
