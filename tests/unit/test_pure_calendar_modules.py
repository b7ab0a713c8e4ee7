"""The connectors' pure calendar modules do no I/O and never read the clock (STYLE: pure core).

The core's own modules are held by import-linter (``make lint``) and ``test_core_purity``."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

#: Imports that mean I/O: network, HTTP, databases, the CalDAV client, the clock.
FORBIDDEN = (
    "socket",
    "http",
    "urllib.request",
    "requests",
    "niquests",
    "caldav",
    "sqlalchemy",
    "ptm_sync.adapters.store",
    "time",
    "connectors.caldav",
    "connectors.caldav_http",
)

MODULES = {
    "connectors.ical": (),
    "connectors.dav_xml": (),
    "connectors.caldav_features": (),
}


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(MODULES))
def test_pure_module_imports_no_io(module: str) -> None:
    path = Path(importlib.import_module(module).__file__ or "")
    forbidden = FORBIDDEN + MODULES[module]
    bad = {
        name
        for name in imported_names(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    }
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_pure_module_never_reads_the_clock(module: str) -> None:
    source = Path(importlib.import_module(module).__file__ or "").read_text()
    assert ".now(" not in source and ".today(" not in source and "utcnow" not in source
