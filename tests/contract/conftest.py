"""The systems the contract suite runs over: every connector there is (DESIGN §5).

Each entry names the module and the function that starts the system; all of them run in CI
(the fakes and the CalDAV servers are all started here, on 127.0.0.1).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.harness import System

SYSTEMS: dict[str, str] = {
    "memory-mirrored": "tests.contract.system_memory:start_mirrored",
    "memory-server": "tests.contract.system_memory:start_server",
    "radicale": "tests.contract.system_caldav:start_radicale_system",
    "xandikos": "tests.contract.system_caldav:start_xandikos_system",
    "ics": "tests.contract.system_ics:start",
    "google": "tests.contract.system_google:start",
    "graph": "tests.contract.system_graph:start",
    "ews": "tests.contract.system_ews:start",
}


@pytest.fixture(scope="module", params=sorted(SYSTEMS))
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """One running system with its connector (module-scoped: started once for the suite)."""
    module_name, _, function = SYSTEMS[request.param].partition(":")
    start = getattr(importlib.import_module(module_name), function)
    tmp: Path = tmp_path_factory.mktemp(request.param)
    with start(tmp) as running:
        yield running
