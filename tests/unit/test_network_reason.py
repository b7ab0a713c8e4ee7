"""Network failures in plain words (connectors/net.py): what a person can act on, never a
library's repr with an address in memory."""

from __future__ import annotations

import socket

import pytest
import requests

from connectors.net import network_reason
from tests.support.servers import free_port


def _failure(url: str, timeout: float = 2.0) -> BaseException:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=timeout)
    return caught.value


def test_a_refused_connection_is_said_so() -> None:
    exc = _failure(f"http://127.0.0.1:{free_port()}/feed.ics")
    assert "0x" in str(exc) or "object at" in str(exc) or "Max retries" in str(exc)
    assert network_reason(exc) == "connection refused"


def test_a_server_that_never_answers_timed_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        exc = _failure(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.3)
    assert network_reason(exc) == "timed out"


def test_something_unknown_is_its_class_name_only() -> None:
    assert network_reason(ValueError("<thing object at 0x7f00>")) == "ValueError"
