"""Who may speak to the fake Exchange server (:mod:`tests.support.fake_ews`): Basic and
Bearer per request, NTLM per connection, the 401 challenge, and the OAuth 2.0
client-credentials token endpoint that issues the Bearer tokens.

Written from RFC 7235 (§4.1: a 401 carries one ``WWW-Authenticate`` line per offered
scheme; Exchange's NTLM, Basic and Bearer unless :meth:`FakeEWS.challenge` names others, and
a scheme not offered is refused), [MS-NLMP] and [MS-NTHT] (NTLM authenticates the TCP
connection, not the request; the handshake is done by pyspnego's acceptor, the accounts from
the file ``NTLM_USER_FILE`` names: :func:`ntlm_user_file`; raw NTLM under ``Negotiate`` too,
what requests_ntlm sends and IIS accepts) and the Microsoft identity platform's
client-credentials grant (``/{tenant}/oauth2/v2.0/token``, AADSTS7000215 for a wrong
secret).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tests.support.fake_ews_soap import Headers

if TYPE_CHECKING:
    from tests.support.fake_ews import FakeEWS

#: Exchange's default: Windows sign-in, Basic where enabled, OAuth where configured.
CHALLENGES = ("NTLM", 'Basic realm="127.0.0.1"', "Bearer")


def authenticate(
    fake: FakeEWS, auth: str, connection: dict[str, Any]
) -> tuple[int, Headers, bytes] | None:
    """The 401 (or NTLM challenge) for a request with Authorization ``auth`` on a connection
    in state ``connection``; None when it may be answered.  Records the scheme in
    :attr:`FakeEWS.auth_headers`."""
    scheme = auth.split(" ", 1)[0]
    fake.auth_headers.append(scheme)
    if auth and scheme.lower() not in _offered(fake.challenges):
        return _unauthorized(fake.challenges)  # a scheme this server does not take
    if scheme in ("NTLM", "Negotiate"):
        return _ntlm_step(fake, auth, connection)
    if not (connection.get("ntlm_user") == fake.username and not auth) and not (
        _authorized(fake, auth)
    ):
        return _unauthorized(fake.challenges)
    return None


def _ntlm_step(
    fake: FakeEWS, auth: str, connection: dict[str, Any]
) -> tuple[int, Headers, bytes] | None:
    """One leg of the NTLM handshake (MS-NLMP) through pyspnego's acceptor, which reads
    the accounts from the file that ``NTLM_USER_FILE`` names (DOMAIN:USER:PASSWORD);
    None when the connection is now authenticated as our user.  Under ``Negotiate`` the
    tokens are raw NTLM (what requests_ntlm sends and IIS accepts)."""
    import spnego

    denied = _unauthorized(fake.challenges)
    scheme, _, value = auth.partition(" ")
    token = base64.b64decode(value)
    try:
        context = connection.get("ntlm")
        if context is None or context.complete:
            context = connection["ntlm"] = spnego.server(protocol="ntlm")
        answer = context.step(token)
    except Exception:  # noqa: BLE001 - any failure of the handshake is a refusal
        connection.pop("ntlm", None)
        return denied
    if not context.complete:
        challenge = base64.b64encode(answer or b"").decode()
        return (
            401,
            {"WWW-Authenticate": f"{scheme} {challenge}", "Content-Type": "text/plain"},
            b"",
        )
    connection["ntlm_user"] = context.client_principal
    return None if context.client_principal == fake.username else denied


def ntlm_user_file(username: str, password: str, directory: Path) -> Path:
    """Write the NTLM account file for ``NTLM_USER_FILE`` (the test sets the variable)."""
    domain, _, user = username.partition("\\")
    path = directory / "ntlm-users"
    path.write_text(f"{domain}:{user}:{password}\n")
    return path


def _offered(challenges: tuple[str, ...]) -> set[str]:
    """The schemes of ``challenges`` (the first word of each value), lower case."""
    return {value.split()[0].rstrip(",").lower() for value in challenges if value}


def _unauthorized(challenges: tuple[str, ...]) -> tuple[int, Headers, bytes]:
    """401 with one ``WWW-Authenticate`` line per value of ``challenges``."""
    challenge: Headers = {"WWW-Authenticate": list(challenges)}
    return 401, {**challenge, "Content-Type": "text/plain"}, b"401 Unauthorized"


def _authorized(fake: FakeEWS, auth: str) -> bool:
    scheme, _, value = auth.partition(" ")
    if scheme == "Basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return user == fake.username and password == fake.password
    if scheme == "Bearer":
        return value in fake.tokens and not fake.refuse_tokens
    return False


def token_endpoint(fake: FakeEWS, data: bytes) -> tuple[int, Headers, bytes]:
    """The answer of the token endpoint to the form ``data`` (client credentials only)."""
    form = parse_qs(data.decode())
    fake.token_requests.append(form)
    ok = (
        form.get("grant_type") == ["client_credentials"]
        and form.get("client_id") == [fake.client_id]
        and form.get("client_secret") == [fake.client_secret]
    )
    if not ok:
        body = {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        }
        return 401, {"Content-Type": "application/json"}, json.dumps(body).encode()
    token = base64.b64encode(f"token-{fake.next_id()}".encode()).decode()
    fake.tokens.add(token)
    issued = {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
    return 200, {"Content-Type": "application/json"}, json.dumps(issued).encode()
