"""Credentials, transport and error translation for the Google connector.

``googleapiclient`` runs unchanged on an ``httplib2`` transport wrapped by
``google_auth_httplib2.AuthorizedHttp``:

* Service account with domain-wide delegation: ``service_account.Credentials`` signed with
  the key of ``service_account_file``, ``with_subject(<teacher>)`` for each teacher (Google,
  "Using OAuth 2.0 for Server to Server Applications": the JWT's ``sub`` is the user
  impersonated), one API client per subject.  Or an authorized user's refresh token
  (``oauth_token_file``): one client for everything.
* ``token_url`` replaces the token endpoint of the key file; ``api_url`` the API root
  (requests go to ``{api_url}calendar/v3/…``).  ``ca_file`` is trusted besides httplib2's
  own CA bundle.
* google-auth renews a token before its ``expires_in`` runs out; a token the server refuses
  earlier (401) is renewed once by ``AuthorizedHttp`` (``max_refresh_attempts=1``), then
  the call fails with :class:`~ptm_sync.core.errors.AuthFailed`.
* googleapiclient's own retries stay off (``num_retries=0``): throttling is
  :class:`ptm_sync.ops.throttle.RetryPolicy`'s, which honours Retry-After and whose waits a test
  can record.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import google_auth_httplib2
import httplib2
import httplib2.certs
from google.auth import exceptions as auth_errors
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.google_wire import ErrorBody, translate
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import AuthFailed, NotFound, PtmError, Unavailable
from ptm_sync.ops.throttle import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

# googleapiclient logs every refused request at WARNING before we translate it: the error
# reaches the user once, as our own line (and at DEBUG it would log request URLs).
logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)

SCOPE = "https://www.googleapis.com/auth/calendar"
#: Seconds httplib2 waits for a connection or an answer.
TIMEOUT_SECONDS = 20.0

#: What the transport raises for an unreachable server (refused, DNS, TLS, timeout).
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    httplib2.HttpLib2Error,
    socket.timeout,
    auth_errors.TransportError,
)


class GoogleSessions:
    """API clients of one Google account, one per impersonated user (or one for an OAuth
    user), built on first use; nothing is read or fetched when this is made."""

    def __init__(self, account: AccountConfig, retry: Callable[[], RetryPolicy]) -> None:
        self.account = account
        self._retry = retry
        self._base: Any = None
        self._clients: dict[str | None, Any] = {}
        self._https: dict[str | None, google_auth_httplib2.AuthorizedHttp] = {}
        self._bundle: Path | None = None
        self.endpoint = urljoin(account.api_url, "calendar/v3/")

    @property
    def delegated(self) -> bool:
        """Whether each teacher is impersonated (service account) or not (OAuth user)."""
        return self.account.service_account_file is not None

    @property
    def where(self) -> str:
        parts = urlsplit(self.account.api_url)
        return f"{parts.scheme}://{parts.netloc}"

    def client(self, subject: str | None) -> Any:
        """The calendar v3 client acting as ``subject`` (ignored for an OAuth user)."""
        key = subject if self.delegated else None
        found = self._clients.get(key)
        if found is None:
            found = build(
                "calendar",
                "v3",
                http=self._authorized(key),
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self.endpoint},
            )
            self._clients[key] = found
        return found

    def _authorized(self, key: str | None) -> google_auth_httplib2.AuthorizedHttp:
        found = self._https.get(key)
        if found is None:
            credentials = self._credentials()
            if key is not None:
                credentials = credentials.with_subject(key)
            found = google_auth_httplib2.AuthorizedHttp(
                credentials, http=self._http(), max_refresh_attempts=1
            )
            self._https[key] = found
        return found

    def fetch_token(self, subject: str | None) -> None:
        """Ask the token endpoint for a token now (acting as ``subject``; None: the
        account itself), for ``check``.

        Raises:
            AuthFailed: the token endpoint refused (a plain sentence why).
            Unavailable: it cannot be reached.
        """
        http = self._authorized(subject if self.delegated else None)
        try:
            http.credentials.refresh(google_auth_httplib2.Request(http.http))
        except auth_errors.RefreshError as exc:
            raise AuthFailed(self.refusal(exc)) from None
        except _NETWORK_ERRORS as exc:
            where = self.account.token_url or "Google's token endpoint"
            raise Unavailable(f"cannot reach {where}: {_network(exc)}") from None

    def _http(self) -> httplib2.Http:
        return httplib2.Http(ca_certs=self._ca_bundle(), timeout=TIMEOUT_SECONDS)

    def _ca_bundle(self) -> str | None:
        """httplib2 takes one CA bundle: its usual one (certifi) with ``ca_file`` added, so
        the private CA is trusted besides the public ones (a proxy for the API while tokens
        still come from Google, say).  Written once per connector, removed at close."""
        if self.account.ca_file is None:
            return None
        if self._bundle is None:
            try:
                private = Path(self.account.ca_file).read_text(encoding="ascii")
                public = Path(httplib2.certs.where()).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise AuthFailed(
                    f"account {self.account.id!r}: cannot read ca_file {self.account.ca_file}: "
                    f"{getattr(exc, 'strerror', None) or 'not a PEM file'}"
                ) from None
            handle, name = tempfile.mkstemp(prefix="ptm-sync-ca-", suffix=".pem")
            with os.fdopen(handle, "w", encoding="ascii") as bundle:
                bundle.write(f"{public.rstrip()}\n{private}")
            self._bundle = Path(name)
        return str(self._bundle)

    def _credentials(self) -> Any:
        """The account's base credentials, read from its key or token file once."""
        if self._base is not None:
            return self._base
        account = self.account
        path: Path | None = account.service_account_file or account.oauth_token_file
        try:
            if account.service_account_file is not None:
                base: Any = service_account.Credentials.from_service_account_file(
                    str(account.service_account_file), scopes=[SCOPE]
                )
            else:
                base = user_credentials.Credentials.from_authorized_user_file(
                    str(account.oauth_token_file), scopes=[SCOPE]
                )
        except (OSError, ValueError, KeyError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc)
            raise AuthFailed(
                f"account {account.id!r}: cannot read the key file {path}: "
                f"{reason if isinstance(reason, str) else 'not a Google credentials JSON'}"
            ) from None
        if account.token_url:
            base = base.with_token_uri(account.token_url)
        self._base = base
        return base

    def client_email(self) -> str:
        """The service account's address or the OAuth client id (for messages)."""
        try:
            base = self._credentials()
        except PtmError:
            return "?"
        return str(getattr(base, "service_account_email", "") or getattr(base, "client_id", ""))

    def client_id(self) -> str:
        """The service account's OAuth client id (what an admin enters for domain-wide
        delegation), read from its key file; "" when unknown."""
        path = self.account.service_account_file
        if path is None:
            return ""
        try:
            return str(json.loads(Path(path).read_text(encoding="utf-8")).get("client_id", ""))
        except (OSError, ValueError):
            return ""

    def execute(self, request: Any, what: str) -> Any:
        """Run one API request, again after a wait while Google throttles (429, 503, 403
        rate limits); its JSON answer.  Every failure is a ptm-sync error; an unreachable
        server is not tried again here (the caller's next pass does).

        Raises:
            UnknownSubject: the impersonated user is unknown to Google (a NotFound).
            AuthFailed: the token endpoint or the API refused our credentials.
            Unavailable: Google cannot be reached, or throttles past the retry policy.
            PtmError: the API's own answer, translated (:func:`google_wire.translate`).
        """
        try:
            return self._retry().run(lambda: self._once(request, what))
        except _NETWORK_ERRORS as exc:
            raise Unavailable(f"cannot reach Google at {self.where}: {_network(exc)}") from None

    def _once(self, request: Any, what: str) -> Any:
        try:
            return request.execute(num_retries=0)
        except HttpError as exc:
            body = ErrorBody.parse(exc.resp.status, exc.content)
            retry_after = parse_retry_after(exc.resp.get("retry-after"))
            raise translate(body, what, retry_after) from None
        except auth_errors.RefreshError as exc:
            if _no_such_user(exc):
                raise UnknownSubject(f"{what}: Google knows no such user to act as") from None
            raise AuthFailed(self.refusal(exc)) from None

    def refusal(self, exc: auth_errors.RefreshError) -> str:
        """A plain sentence for a token the token endpoint refused (no secret in it)."""
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(data.get("error", "")) or str(exc.args[0] if exc.args else "")
        name = f"account {self.account.id!r}"
        if error == "unauthorized_client":
            return (
                f"{name}: domain-wide delegation is not set up for client id "
                f"{self.client_id() or '?'} with scope {SCOPE} (Google Workspace admin "
                "console: Security, API controls, Domain-wide delegation)"
            )
        if error == "invalid_grant" and self.delegated:
            return (
                f"{name}: Google refused the service account key of "
                f"{self.client_email()} (invalid_grant: a deleted or wrong key, or an "
                "impersonated user that does not exist)"
            )
        if error == "invalid_grant":
            return f"{name}: Google refused the refresh token (invalid_grant: revoked or expired)"
        if error == "invalid_client":
            return f"{name}: Google refused the OAuth client id or secret (invalid_client)"
        return f"{name}: Google refused to give an access token ({error or 'no reason given'})"

    def close(self) -> None:
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # closing must not fail the caller
                log.debug("closing a Google client failed", exc_info=True)
        self._clients.clear()
        self._https.clear()
        if self._bundle is not None:
            self._bundle.unlink(missing_ok=True)
            self._bundle = None


class UnknownSubject(NotFound):
    """Raised when the token endpoint refuses to act as a user Google does not know
    (domain-wide delegation: ``invalid_grant`` "Invalid email or User ID").  A
    :class:`~ptm_sync.core.errors.NotFound` of that teacher's calendar; free/busy tries the next
    teacher of its batch instead (:mod:`connectors.google_freebusy`)."""


def _no_such_user(exc: auth_errors.RefreshError) -> bool:
    """Whether the token endpoint refused the impersonated user (not the key): Google
    answers ``invalid_grant`` "Invalid email or User ID" for an address it does not know."""
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    return data.get("error") == "invalid_grant" and "User ID" in str(
        data.get("error_description", "")
    )


def _network(exc: BaseException) -> str:
    """``connection refused``, ``timed out``… for an unreachable server, no traceback."""
    if isinstance(exc, auth_errors.TransportError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, httplib2.ServerNotFoundError):
        return "unknown host"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
