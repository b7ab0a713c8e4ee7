"""Connection failures told as sentences (ptm_sync/ops/failures.py), on real failures of the
HTTP library the connectors run on: never a repr with an address in memory."""

from __future__ import annotations

import socket

import pytest
import requests

from ptm_sync.ops.failures import names_account, plain, pure_naming
from tests.support.servers import free_port


def _failure(url: str, timeout: float = 2.0) -> str:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=timeout)
    return str(caught.value)


def test_a_refused_connection_names_the_place_and_what_happened() -> None:
    port = free_port()
    raw = _failure(f"http://127.0.0.1:{port}/feed.ics")
    assert "object at 0x" in raw  # what the library says
    said = plain(raw)
    assert said == f"127.0.0.1:{port}: nothing accepts connections there (connection refused)"


def test_a_server_that_never_answers_timed_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        port = listener.getsockname()[1]
        said = plain(_failure(f"http://127.0.0.1:{port}/", timeout=0.3))
    assert said.startswith(f"127.0.0.1:{port} did not answer") and "timed out" in said
    assert "0x" not in said


def test_text_it_does_not_know_is_kept_without_reprs() -> None:
    assert plain("calendar gone (HTTP 404)") == "calendar gone (HTTP 404)"
    assert "0x" not in plain("<urllib3.connection.HTTPConnection object at 0x7f00aa>: broke")


# --- one sentence for an account in check, sync and /healthz (issue 14) -----------------


@pytest.mark.parametrize(
    ("sentence", "account", "names", "rest"),
    [
        (
            "account 'dav' (https://dav.test/): calendar '/a/': not found",
            "dav",
            True,
            "calendar '/a/': not found",
        ),
        (
            "Graph account 'm365': the app lacks the permission",
            "m365",
            True,
            "the app lacks the permission",
        ),
        (
            "Graph refused the client secret of account 'm365' (AADSTS7000215): check it",
            "m365",
            True,
            None,
        ),
        (
            "account ews (user LINCOLN\\ptm-sync) on Exchange at mail.test: refused",
            "ews",
            True,
            None,
        ),
        ("account 'dav2' (https://dav.test/): refused", "dav", False, None),
        ("mailbox 'dav@school.test' not found", "dav", False, None),
    ],
)
def test_a_sentence_that_names_its_account_is_told_as_it_is(
    sentence: str, account: str, names: bool, rest: str | None
) -> None:
    assert names_account(sentence, account) is names
    assert pure_naming(sentence, account) == rest
