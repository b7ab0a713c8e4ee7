"""How the EWS connector talks to Exchange through exchangelib: credentials, TLS, retries and
the translation of exchangelib's exceptions into ptm-sync's.

* Credentials: ``auth = "basic" | "ntlm"`` are :class:`exchangelib.Credentials` (user name as
  ``DOMAIN\\user`` or a UPN); ``auth = "oauth"`` is the client-credentials grant
  (:class:`exchangelib.OAuth2Credentials`) whose documented ``token_url`` property is
  overridden by :class:`TokenUrlCredentials` when ``account.token_url`` is set, so that an
  administrator can use a proxy and the tests a local token endpoint.  The scope stays
  exchangelib's (``https://outlook.office365.com/.default``).
* TLS: exchangelib mounts ``BaseProtocol.HTTP_ADAPTER_CLS`` on its sessions (the class
  attribute is exchangelib's documented hook for custom adapters; it is global).  We install
  :class:`CaBundleAdapter`, which verifies every connection (always) against the default
  bundle (certifi and the system's CA file) plus the private CA that an account's ``ca_file``
  names for that server's origin (scheme, host, port).
* Retries: exchangelib's own ``FaultTolerance`` policy sleeps up to an hour inside a call; we
  give it :class:`FailFastWithRetryAfter` so each failure comes back at once and
  :class:`~ptm_sync.ops.throttle.RetryPolicy` decides (ErrorServerBusy ``BackOffMilliseconds``,
  HTTP 429/503 ``Retry-After``).  Where the server names no delay, the delay is exchangelib's
  ``RETRY_WAIT`` (10 s), which it puts on the error it raises.
* exchangelib's and (requests-)oauthlib's loggers are quieted (they would log passwords,
  client secrets, tokens and meeting text).
* Requests are sent with a fixed server version (Exchange 2016): no version-guessing request.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from exchangelib import (
    BASIC,
    NTLM,
    OAUTH2,
    Build,
    Configuration,
    Credentials,
    FailFast,
    OAuth2Credentials,
    Version,
)
from exchangelib import errors as ews_errors
from exchangelib.protocol import BaseProtocol
from oauthlib.oauth2 import InsecureTransportError, OAuth2Error

from connectors.challenge import AuthScheme, refusal
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import (
    AuthFailed,
    ConfigError,
    ConnectorError,
    NotFound,
    PtmError,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.ops.throttle import parse_retry_after

#: Exchange Server 2016 (15.1): the schema version we speak; no guessing request is sent.
EXCHANGE_2016 = Build(15, 1)

AUTH_TYPES = {"basic": BASIC, "ntlm": NTLM, "oauth": OAUTH2}


# --- TLS ---------------------------------------------------------------------------------

_bundles: dict[str, str] = {}  # origin "https://host:port" -> bundle file
_bundles_lock = threading.Lock()
_bundle_dir: Path | None = None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _default_bundle() -> bytes:
    """What requests trusts by default (certifi) plus the system's CA file when there is one."""
    parts = [Path(requests.certs.where()).read_bytes()]
    system = ssl.get_default_verify_paths().cafile
    if system and Path(system).is_file():
        parts.append(Path(system).read_bytes())
    return b"\n".join(parts)


def trust_ca_for(url: str, ca_file: Path) -> None:
    """Trust ``ca_file`` (PEM) besides the default bundle for connections to ``url``'s origin.

    Raises:
        ConfigError: the file cannot be read.
    """
    global _bundle_dir
    try:
        extra = ca_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {ca_file}: {exc.strerror}", "ca_file") from exc
    content = _default_bundle() + b"\n" + extra
    with _bundles_lock:
        if _bundle_dir is None:
            _bundle_dir = Path(tempfile.mkdtemp(prefix="ptm-sync-ews-ca-"))
        path = _bundle_dir / f"{hashlib.sha256(content).hexdigest()[:24]}.pem"
        if not path.exists():
            path.write_bytes(content)
        _bundles[_origin(url)] = str(path)


class CaBundleAdapter(requests.adapters.HTTPAdapter):
    """Verifies TLS always; with the CA bundle registered for the request's origin."""

    def send(
        self,
        request: Any,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        bundle = _bundles.get(_origin(request.url or ""))
        return super().send(
            request,
            stream=stream,
            timeout=timeout,
            verify=bundle or True,
            cert=cert,
            proxies=proxies,
        )


BaseProtocol.HTTP_ADAPTER_CLS = CaBundleAdapter

# exchangelib logs each request's headers (the Basic password, the bearer token) and SOAP body
# (mailboxes, meeting text) at DEBUG, and the body again at ERROR when a request fails in an
# unexpected way.  We translate and report every failure ourselves: keep its log quiet.
logging.getLogger("exchangelib").setLevel(logging.WARNING)
logging.getLogger("exchangelib.util").setLevel(logging.CRITICAL)
# requests-oauthlib and oauthlib log the client secret and the tokens at DEBUG.
logging.getLogger("requests_oauthlib").setLevel(logging.WARNING)
logging.getLogger("oauthlib").setLevel(logging.WARNING)


# --- credentials and retries -------------------------------------------------------------


class TokenUrlCredentials(OAuth2Credentials):
    """Client credentials whose token endpoint is ``token_url`` instead of Microsoft's."""

    def __init__(self, *, token_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._token_url = token_url

    @property
    def token_url(self) -> str:
        return self._token_url


class EndpointNotFound(ews_errors.TransportError):
    """The URL answered 404: it is not an EWS endpoint."""


class Challenged(ews_errors.UnauthorizedError):
    """HTTP 401, with the server's ``WWW-Authenticate`` values (several header lines come
    joined by commas, as requests gives them): what it would take instead; and ``sent``,
    the scheme of the refused request's Authorization ("" without one)."""

    def __init__(self, url: str, challenges: tuple[str, ...], sent: str) -> None:
        super().__init__(f"HTTP 401 from {url}")
        self.challenges, self.sent = challenges, sent


class FailFastWithRetryAfter(FailFast):
    """exchangelib's fail-fast policy, keeping the server's ``Retry-After`` on 429 and 503
    and the ``WWW-Authenticate`` challenges of a 401 (:class:`Challenged`).

    (The plain :class:`exchangelib.FailFast` turns 503 into a transient error without the
    delay and 429 into a "malformed response", and a 401 into an UnauthorizedError without
    the challenges.  This hook is the one place exchangelib shows us the response: after
    requests_ntlm's handshake, so a 401 here is the final answer.)
    """

    def raise_response_errors(self, response: requests.Response) -> None:
        if response.status_code == 401 and b"locked out" not in (response.content or b""):
            offered = response.headers.get("WWW-Authenticate")
            sent = str(response.request.headers.get("Authorization") or "").split(" ")[0]
            raise Challenged(str(response.url), (offered,) if offered else (), sent)
        if response.status_code == 404:
            raise EndpointNotFound(f"HTTP 404 from {response.url}")
        if response.status_code in (429, 503):
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise ews_errors.ErrorServerBusy(
                f"HTTP {response.status_code}", back_off=wait if wait is not None else None
            )
        super().raise_response_errors(response)


def make_credentials(account: AccountConfig) -> Any:
    """The exchangelib credentials for ``account`` (reads its secret).

    Raises:
        ConfigError: a key the chosen ``auth`` needs is missing, or its secret unreadable.
    """
    if account.auth not in AUTH_TYPES:
        raise ConfigError(f"auth {account.auth!r}: choose ntlm, basic or oauth", "auth")
    if account.auth == "oauth":
        if not (account.client_id and account.client_secret and account.tenant_id):
            raise ConfigError("auth = oauth needs tenant_id, client_id and client_secret", "auth")
        kwargs: dict[str, Any] = {
            "client_id": account.client_id,
            "client_secret": account.client_secret.reveal(),
            "tenant_id": account.tenant_id,
        }
        if account.token_url:
            return TokenUrlCredentials(token_url=account.token_url, **kwargs)
        return OAuth2Credentials(**kwargs)
    if not account.username or account.password is None:
        raise ConfigError(f"auth = {account.auth} needs username and password", "username")
    return Credentials(account.username, account.password.reveal())


def make_configuration(account: AccountConfig, credentials: Any) -> Configuration:
    """An exchangelib Configuration for the account's endpoint (no network)."""
    if account.ca_file is not None:
        trust_ca_for(account.url, account.ca_file)
        if account.token_url:
            trust_ca_for(account.token_url, account.ca_file)
    return Configuration(
        service_endpoint=account.url,
        credentials=credentials,
        auth_type=AUTH_TYPES[account.auth],
        version=Version(build=EXCHANGE_2016),
        retry_policy=FailFastWithRetryAfter(),
        max_connections=1,
    )


# --- errors ------------------------------------------------------------------------------


class Refused(AuthFailed):
    """Exchange refused the account's login (as opposed to a right it lacks on a mailbox)."""


#: What each ``auth`` value signs in with, and the ``auth`` value for each scheme we speak.
SENT = {"basic": AuthScheme.BASIC, "ntlm": AuthScheme.NTLM, "oauth": AuthScheme.BEARER}
USABLE = {
    AuthScheme.NEGOTIATE: "ntlm",  # requests_ntlm answers a Negotiate-only server with NTLM
    AuthScheme.NTLM: "ntlm",
    AuthScheme.BASIC: "basic",
    AuthScheme.BEARER: "oauth",
}


def refused(account: AccountConfig, exc: BaseException | None = None) -> Refused:
    """The refusal of the account's login, with what the server wants when ``exc`` is a
    :class:`Challenged` 401 (its ``WWW-Authenticate`` values, read by
    :func:`connectors.challenge.refusal`).  Names the account, its login and the server's
    host; never a teacher's mailbox (shown in /healthz), never a secret."""
    host = urlsplit(account.url).hostname or account.url
    who = f"app {account.client_id}" if account.auth == "oauth" else f"user {account.username}"
    challenges: tuple[str, ...] = getattr(exc, "challenges", ())
    # What went out: requests_ntlm speaks NTLM under "Negotiate" to a Negotiate-only server.
    sent = str(getattr(exc, "sent", "")).lower()
    scheme = AuthScheme(sent) if sent in set(AuthScheme) else SENT[account.auth]
    sentence = refusal(challenges, sent=scheme, host=host, usable=USABLE, option="auth")
    return Refused(f"account {account.id} ({who}) on Exchange at {host}: {sentence}")


def translate(exc: BaseException, account: AccountConfig, what: str) -> PtmError:
    """The ptm-sync error for an exchangelib / requests / oauthlib failure of ``what``
    (e.g. "mailbox ada@school.test"); the message names ``what`` and never a secret."""
    if isinstance(exc, PtmError):
        return exc
    if isinstance(exc, ews_errors.ErrorServerBusy):
        return Unavailable(f"Exchange is busy ({what})", retry_after=exc.back_off)
    if isinstance(exc, ews_errors.UnauthorizedError):
        return refused(account, exc)
    if isinstance(exc, PermissionError) and account.auth == "ntlm":
        return refused(account)  # requests_ntlm: the server sent no NTLM challenge
    if isinstance(exc, InsecureTransportError):
        return ConnectorError(f"token_url {account.token_url} is not https: OAuth needs TLS")
    if isinstance(exc, OAuth2Error):
        return AuthFailed(
            f"the token endpoint refused the client secret of app {account.client_id} ({exc.error})"
        )
    if isinstance(exc, EndpointNotFound):
        return ConnectorError(
            f"{account.url} answered 404 Not Found: url must be the EWS endpoint "
            f"(https://…/EWS/Exchange.asmx)"
        )
    if isinstance(exc, ews_errors.ErrorInvalidSyncStateData):
        return SyncTokenInvalid(f"{what}: Exchange no longer accepts the sync state")
    if isinstance(exc, ews_errors.ErrorIrresolvableConflict):
        return WrongEtag(f"{what}: the item changed since its change key")
    if isinstance(
        exc,
        ews_errors.ErrorItemNotFound
        | ews_errors.ErrorMailRecipientNotFound
        | ews_errors.ErrorNonExistentMailbox
        | ews_errors.ErrorFolderNotFound,
    ):
        return NotFound(f"{what}: not found on Exchange")
    if isinstance(
        exc,
        ews_errors.ErrorImpersonateUserDenied
        | ews_errors.ErrorImpersonationDenied
        | ews_errors.ErrorAccessDenied,
    ):
        return NoRight(no_right(account, what))
    if isinstance(
        exc,
        ews_errors.ErrorInternalServerTransientError
        | ews_errors.ErrorTimeoutExpired
        | requests.ConnectionError
        | requests.Timeout,
    ):
        # The server's trouble, not one mailbox's: named without ``what`` (a teacher's
        # mailbox would make an outage look like that teacher's problem in `check`).
        return Unavailable(f"cannot reach Exchange at {account.url}{_reason(exc)}")
    if isinstance(
        exc,
        ews_errors.ResponseMessageError
        | ews_errors.SOAPError
        | ews_errors.MalformedResponseError
        | ews_errors.RedirectError,
    ):
        return ConnectorError(f"{what}: Exchange answered {type(exc).__name__}")
    if isinstance(exc, ews_errors.TransportError):
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
            return ConnectorError(
                f"the TLS certificate of {account.url} is not trusted (set ca_file to the "
                f"private certificate authority)"
            )
        return Unavailable(f"cannot reach Exchange at {account.url} ({what})")
    return ConnectorError(f"{what}: {type(exc).__name__}")


class NoRight(AuthFailed):
    """The login works but may not open a mailbox (ErrorImpersonateUserDenied and kin)."""


def no_right(account: AccountConfig, mailbox: str) -> str:
    login = f"app {account.client_id}" if account.auth == "oauth" else f"account {account.username}"
    return f"{login} has no ApplicationImpersonation right on {mailbox} (or no delegate access)"


#: Words for what the network said, looked for in the text of the exception chain.
_REASONS = (
    ("refused", ": connection refused"),
    ("timed out", ": no answer in time"),
    ("Name or service not known", ": unknown host"),
    ("nodename nor servname", ": unknown host"),
    ("reset by peer", ": connection reset"),
)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return next((words for key, words in _REASONS if key in text), "")
