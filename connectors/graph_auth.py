"""Access tokens for the Graph connector: msal, client credentials (app-only).

The OAuth 2.0 client credentials grant of the Microsoft identity platform
(identity-platform: v2-oauth2-client-creds-grant-flow) with the ``.default`` scope of Graph;
the app authenticates with a client secret or a certificate (a signed JWT assertion).
msal keeps the token in its cache until it nearly expires.  When Graph nevertheless refuses
it (``InvalidAuthenticationToken``), :meth:`TokenSource.renew` removes that token from the
cache, so the next :meth:`TokenSource.token` asks Entra ID for a new one
(``acquire_token_for_client`` does not take ``force_refresh``).

The msal application is made on first use: making it fetches the tenant's OpenID
configuration, and nothing touches the network in the connector's constructor.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from msal.exceptions import MsalServiceError

from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import AuthFailed, ConfigError, Unavailable

SCOPE = "https://graph.microsoft.com/.default"
#: What the service needs (DESIGN §5): read free/busy and write events in every mailbox.
NEEDED_ROLE = "Calendars.ReadWrite"
TIMEOUT = 30.0
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----\s*", re.DOTALL)

#: msal knows these hosts and skips instance discovery for them (msal.authority).
_MICROSOFT_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.microsoftonline.us",
        "login.microsoftonline.de",
    }
)


class TlsSession(requests.Session):
    """A session that verifies TLS with ``ca_file`` even when ``REQUESTS_CA_BUNDLE`` is set
    (requests lets that variable override ``Session.verify``; a request's own ``verify``
    wins over it).  The environment's proxies still apply."""

    def __init__(self, ca_file: str | None) -> None:
        super().__init__()
        self.verify = ca_file or True

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


def unreachable(what: str, exc: requests.RequestException) -> str:
    """A plain line for a failed connection: "cannot reach … : connection refused"."""
    if isinstance(exc, requests.Timeout):
        reason = "no answer in time"
    elif isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS certificate not trusted (ca_file?)"
    elif isinstance(exc, requests.ConnectionError):
        text = str(exc).lower()
        reason = "connection refused" if "refused" in text else "connection failed"
    else:
        reason = type(exc).__name__
    return f"cannot reach {what}: {reason}"


class TokenSource:
    """App-only access tokens for one Graph account (thread-safe)."""

    def __init__(self, account: AccountConfig, session: requests.Session) -> None:
        self.account = account
        self.authority = f"{account.authority_url.rstrip('/')}/{account.tenant_id}"
        self._session = session
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _credential(self) -> str | dict[str, str]:
        if self.account.certificate_file is not None:
            try:
                pem = self.account.certificate_file.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the certificate file: {exc.strerror}", "certificate_file"
                ) from exc
            key = "".join(block for block in _PEM_BLOCK.findall(pem) if "PRIVATE KEY-----" in block)
            if not key:
                raise ConfigError(
                    "the certificate file holds no private key (PEM)", "certificate_file"
                )
            return {"private_key": key, "thumbprint": _sha1_thumbprint(pem)}
        if self.account.client_secret is None:
            raise ConfigError("a Graph account needs client_secret* or certificate_file")
        return self.account.client_secret.reveal()

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            host = (urlsplit(self.authority).hostname or "").lower()
            # msal validates an authority it does not know by asking login.microsoftonline.com
            # (instance discovery, and again for aliases after a refused token request, at
            # that fixed host whatever endpoint it is given).  An authority_url of another
            # host (a proxy, a test fake) is the administrator's choice: msal then only
            # reads its OpenID configuration (msal: instance_discovery=False).
            discovery = None if host in _MICROSOFT_HOSTS else False
            credential = self._credential()
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.account.client_id,
                    authority=self.authority,
                    client_credential=credential,
                    http_client=self._session,
                    timeout=TIMEOUT,
                    instance_discovery=discovery,
                )
            except requests.RequestException as exc:
                raise Unavailable(unreachable(f"Entra ID at {self.authority}", exc)) from exc
            except MsalServiceError as exc:  # 5xx from the OpenID configuration
                raise self._outage(exc) from exc
            except ValueError as exc:  # 4xx: msal "OIDC Discovery failed"
                raise AuthFailed(
                    f"Graph account {self.account.id!r}: Entra ID at "
                    f"{self.account.authority_url} does not know the tenant "
                    f"{self.account.tenant_id!r} (tenant_id)"
                ) from exc
        return self._app

    def token(self) -> str:
        """A current access token.

        Raises:
            AuthFailed: Entra ID refused the credentials (the line names the AADSTS code).
            Unavailable: Entra ID cannot be reached or answers 5xx.
        """
        with self._lock:
            app = self._application()
            try:
                result: dict[str, Any] = app.acquire_token_for_client(scopes=[SCOPE])
            except requests.RequestException as exc:
                raise Unavailable(unreachable(f"Entra ID at {self.authority}", exc)) from exc
            except MsalServiceError as exc:  # 5xx from the token endpoint
                raise self._outage(exc) from exc
            except ValueError as exc:  # an answer that is not JSON
                raise Unavailable(
                    f"Entra ID at {self.authority} gave an unreadable answer"
                ) from exc
            if "access_token" in result:
                return str(result["access_token"])
            raise self._refused(result)

    def renew(self, rejected: str) -> None:
        """Forget ``rejected`` (Graph said it is no longer valid) so that the next
        :meth:`token` fetches a new one."""
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            for entry in list(
                cache.search(
                    msal.TokenCache.CredentialType.ACCESS_TOKEN,
                    query={"client_id": self.account.client_id},
                )
            ):
                if entry.get("secret") == rejected:
                    cache.remove_at(entry)

    def _outage(self, exc: MsalServiceError) -> Unavailable:
        # msal says "HTTP Error: 503"; it also holds the answer back for the Retry-After.
        what = str(exc.args[0]) if exc.args else "an error"
        return Unavailable(f"Entra ID at {self.authority} is unavailable ({what})")

    def _refused(self, result: dict[str, Any]) -> Exception:
        codes = result.get("error_codes") or []
        description = str(result.get("error_description") or "").splitlines()
        first = description[0] if description else ""
        error = str(result.get("error") or "error")
        who = f"account {self.account.id!r}"
        if 7000215 in codes or 7000222 in codes:
            return AuthFailed(
                f"Graph refused the client secret of {who} (AADSTS{codes[0]}): "
                "check client_secret (the secret's value, not its id) and whether it expired"
            )
        if error == "invalid_client":
            return AuthFailed(f"Graph refused the credentials of {who} ({first or error})")
        if error in ("unauthorized_client", "invalid_request") and first:
            return AuthFailed(f"Graph refused {who}: {first}")
        if error == "temporarily_unavailable":
            return Unavailable(f"Entra ID is temporarily unavailable for {who}")
        return AuthFailed(f"Graph refused a token for {who}: {first or error}")


def roles(token: str) -> list[str] | None:
    """The ``roles`` claim of an access token (the application permissions granted), or
    None when the token is not a readable JWT.  Read only to explain a problem in
    ``check``: the signature is Graph's business, not ours."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None
    found = claims.get("roles") if isinstance(claims, dict) else None
    return [str(r) for r in found] if isinstance(found, list) else None


def _sha1_thumbprint(pem: str) -> str:
    """The certificate's SHA-1 thumbprint, as Entra ID shows it (hex), from the PEM."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
    except ImportError as exc:  # pragma: no cover - msal depends on cryptography
        raise ConfigError("certificate_file needs the cryptography package") from exc
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ConfigError(
            "the certificate file holds no PEM certificate", "certificate_file"
        ) from exc
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # Entra ID shows SHA-1
