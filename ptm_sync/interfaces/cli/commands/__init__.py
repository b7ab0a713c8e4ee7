"""Command modules; each exposes ``register(subparsers)`` and sets ``func`` on its parser.

They are thin: parse, call one use case, render.  ``common`` is a helper, not a command.
"""

from __future__ import annotations

from types import ModuleType

from ptm_sync.interfaces.cli.commands import (
    availability,
    booking,
    daemon,
    demo,
    digest,
    jobs,
    mail,
    report,
    retention,
    roster,
    setup,
    staff,
)

COMMAND_MODULES: list[ModuleType] = [
    setup,
    roster,
    availability,
    booking,
    staff,
    report,
    retention,
    mail,
    digest,
    jobs,
    daemon,
    demo,
]
