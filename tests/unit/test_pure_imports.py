"""The pure core never reaches I/O, not even through another ptm_sync module (DESIGN §2).

``model``, ``slots``, ``planner``, ``itip``, ``imip``, ``trust``, ``busy``, ``icalparse`` and
``emailaddress`` take values and return values.  Their imports are read with :mod:`ast` and
followed through every ``ptm_sync`` module they pull in: none may import a connector, a
database library, a socket, HTTP or mail library, or :mod:`ptm_sync.store`, and none may read
the clock.  A second test imports each one in a fresh interpreter and looks at what got
loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PURE = (
    "ptm_sync.model",
    "ptm_sync.slots",
    "ptm_sync.planner",
    "ptm_sync.itip",
    "ptm_sync.imip",
    "ptm_sync.trust",
    "ptm_sync.busy",
    "ptm_sync.icalparse",
    "ptm_sync.emailaddress",
    "ptm_sync.messages",
    # The booking core: every rule of a meeting's life decided without I/O (DESIGN §2-§3).
    "ptm_sync.booking.values",
    "ptm_sync.booking.events",
    "ptm_sync.booking.table",
    "ptm_sync.booking.admission",
    "ptm_sync.booking.decide",
    "ptm_sync.booking.rows",
    "ptm_sync.booking.answers",
    "ptm_sync.booking.requests",
    "ptm_sync.booking.office",
    "ptm_sync.booking.lifecycle",
    "ptm_sync.booking.letters",
    "ptm_sync.booking.notices",
    "ptm_sync.booking.addresses",
)

#: Top-level names (or dotted prefixes) that mean I/O.
FORBIDDEN = (
    "connectors",
    "ptm_sync.store",
    "ptm_sync.mail",
    "ptm_sync.web",
    "ptm_sync.sync",
    "ptm_sync.daemon",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg2",
    "sqlite3",
    "socket",
    "socketserver",
    "ssl",
    "select",
    "selectors",
    "asyncio",
    "http",
    "urllib.request",
    "requests",
    "niquests",
    "httpx",
    "aiohttp",
    "caldav",
    "smtplib",
    "imaplib",
    "imapclient",
    "aiosmtpd",
    "exchangelib",
    "msal",
    "googleapiclient",
    "radicale",
    "xandikos",
    "time",
)

#: Calls that read the clock: ``datetime.now()``, ``date.today()``, ``time.time()``…
CLOCK_ATTRIBUTES = {"now", "utcnow", "today"}
TIME_FUNCTIONS = {"time", "time_ns", "monotonic", "perf_counter", "localtime", "gmtime"}


def source_of(module: str) -> Path | None:
    """The file of a ptm_sync/connectors module (package or plain), None for others."""
    if module.split(".")[0] not in ("ptm_sync", "connectors"):
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join([*parts[:keep], *([node.module] if node.module else [])])


@cache
def direct_imports(module: str) -> frozenset[str]:
    """Every module one file imports, anywhere in it (also inside functions)."""
    path = source_of(module)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node, module, path.name == "__init__.py")
            found.add(target)
            # `from ptm_sync import slots` imports the module ptm_sync.slots.
            found.update(
                f"{target}.{alias.name}"
                for alias in node.names
                if source_of(f"{target}.{alias.name}") is not None
            )
    return frozenset(found)


def closure(module: str) -> dict[str, str]:
    """Every module reachable from ``module`` through ptm_sync modules: name → importer."""
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        parents = [".".join(current.split(".")[:i]) for i in range(1, current.count(".") + 1)]
        for imported in [*direct_imports(current), *parents]:
            if imported and imported not in seen and imported != module:
                seen[imported] = current
                todo.append(imported)
    return seen


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_reaches_no_io_through_its_imports(module: str) -> None:
    reached = closure(module)
    bad = {name: f"imported by {by}" for name, by in reached.items() if forbidden(name)}
    assert not bad, f"{module} reaches {bad}"


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_and_what_it_imports_never_read_the_clock(module: str) -> None:
    ours = [m for m in [module, *closure(module)] if source_of(m) is not None]
    calls = []
    for name in ours:
        path = source_of(name)
        assert path is not None
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            attr, owner = node.func.attr, node.func.value
            if attr in CLOCK_ATTRIBUTES or (
                attr in TIME_FUNCTIONS and isinstance(owner, ast.Name) and owner.id == "time"
            ):
                calls.append(f"{name}:{node.lineno} .{attr}()")
    assert not calls


def test_the_import_reader_sees_what_an_impure_module_imports() -> None:
    """The check above can fail: the sync pass is not pure, and the reader says why."""
    reached = closure("ptm_sync.sync")
    assert "sqlalchemy" in reached and "connectors.base" in reached
    assert "ptm_sync.store" in reached and "ptm_sync.busy" in reached


@pytest.mark.parametrize("module", PURE)
def test_importing_a_pure_module_loads_no_database_connector_or_http_client(module: str) -> None:
    script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = json.loads(result.stdout)
    # socket and ssl may come with the standard library's email package; the rest may not.
    never = ("sqlalchemy", "psycopg", "sqlite3", "connectors", "ptm_sync.store", "caldav")
    never += ("niquests", "requests", "http.client", "smtplib", "imaplib", "urllib.request")
    assert [m for m in loaded if any(m == n or m.startswith(n + ".") for n in never)] == []
