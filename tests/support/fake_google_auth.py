"""The OAuth 2.0 side of the fake Google (:mod:`tests.support.fake_google`): service-account
keys, the token endpoint and the access tokens it issues.

Written from Google's "Using OAuth 2.0 for Server to Server Applications": the
``jwt-bearer`` grant whose assertion must be RS256-signed by a registered service-account
key, with ``aud`` = Google's token URL, ``scope`` holding the calendar scope, ``exp`` in the
future and at most an hour after ``iat``; ``sub`` (the impersonated user) must be a known
user and needs domain-wide delegation (else ``unauthorized_client``).  A wrong key is
``invalid_grant``.  Also the ``refresh_token`` grant of an OAuth client ("Using OAuth 2.0 for
Web Server Applications": refreshing an access token).  An API request without a live token
is 401 ``authError`` (Calendar API "Handle API errors").
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.fake_google_wire import Recorded, Refusal

if TYPE_CHECKING:
    from tests.support.fake_google import FakeGoogle


SCOPE = "https://www.googleapis.com/auth/calendar"
#: The JWT's ``aud``: Google's docs say it is always this, wherever the request is sent.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class ServiceAccountKey:
    path: Path
    client_email: str
    client_id: str
    public_key: rsa.RSAPublicKey


def make_service_account(
    directory: Path, token_url: str, *, name: str = "ptm-sync", project: str = "school-123"
) -> ServiceAccountKey:
    """Write a service-account key JSON (a fresh RSA key) like the one Google's console gives."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    email = f"{name}@{project}.iam.gserviceaccount.com"
    client_id = str(100000000000000000000 + secrets.randbelow(10**18))
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_url,
    }
    path = directory / f"{name}-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return ServiceAccountKey(path, email, client_id, key.public_key())


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_answer(fake: FakeGoogle, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The token endpoint's answer to the form ``form``: status and JSON body."""
    grant = form.get("grant_type")
    if grant == JWT_GRANT:
        return _jwt_grant(fake, form.get("assertion", ""))
    if grant == "refresh_token":
        client = fake.oauth_clients.get(form.get("refresh_token", ""))
        if client is None:
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        if (form.get("client_id"), form.get("client_secret")) != client[:2]:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        return _issue(fake, client[2])
    return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}


def _jwt_grant(fake: FakeGoogle, assertion: str) -> tuple[int, dict[str, Any]]:
    try:
        head, payload, signature = assertion.split(".")
        header, claims = json.loads(_b64decode(head)), json.loads(_b64decode(payload))
    except ValueError:
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
    key = fake.keys.get(str(claims.get("iss")))
    if header.get("alg") != "RS256" or key is None:
        return 401, {
            "error": "invalid_client",
            "error_description": "The OAuth client was not found.",
        }
    try:
        key.public_key.verify(
            _b64decode(signature),
            f"{head}.{payload}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    now = time.time()
    if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT: audience"}
    if not (claims.get("exp", 0) > now and claims["exp"] - claims.get("iat", 0) <= 3600):
        return 400, {
            "error": "invalid_grant",
            "error_description": "Invalid JWT: Token must be a short-lived token",
        }
    if SCOPE not in str(claims.get("scope", "")).split():
        return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}
    subject = claims.get("sub")
    if subject is not None:
        if not fake.delegation:
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens "
                "using this method, or client not authorized for any of the scopes "
                "requested.",
            }
        if str(subject).lower() not in fake.users:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid email or User ID",
            }
    fake.assertions.append(claims)
    return _issue(fake, str(subject).lower() if subject else key.client_email)


def _issue(fake: FakeGoogle, subject: str) -> tuple[int, dict[str, Any]]:
    token = "ya29." + secrets.token_urlsafe(24)
    fake.tokens[token] = (subject, time.time() + fake.expires_in)
    body = {"access_token": token, "expires_in": fake.expires_in, "token_type": "Bearer"}
    return 200, body


def access_subject(fake: FakeGoogle, request: Recorded) -> str | None:
    """Whom the API request's Bearer token was issued to (the impersonated user, the OAuth
    client's user or the service account); 401 ``authError`` without a live token."""
    auth = request.headers.get("authorization", "")
    held = fake.tokens.get(auth.removeprefix("Bearer ").strip())
    if held is None or held[1] < time.time() or not fake.accept_tokens:
        raise Refusal(
            401,
            "authError",
            "Invalid Credentials",
            location="Authorization",
            locationType="header",
        )
    return held[0]


def oauth_user(fake: FakeGoogle, subject: str | None) -> bool:
    """``subject`` is the user of a registered OAuth client (who may read any calendar)."""
    return any(user == subject for _, _, user in fake.oauth_clients.values())
