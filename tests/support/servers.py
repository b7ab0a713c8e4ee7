"""Shared rule for tests that need a real server.

Locally a missing server (no Dovecot, no PostgreSQL URL) skips with its reason.  In CI,
``PTM_TEST_REQUIRE_SERVERS=1`` turns that skip into a failure: the real-server tests must run.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def require(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when CI demands every real server."""
    if os.environ.get("PTM_TEST_REQUIRE_SERVERS") == "1":
        pytest.fail(f"required test server missing: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
