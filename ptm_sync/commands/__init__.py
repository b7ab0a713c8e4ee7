"""Command modules; each exposes ``register(subparsers)`` and sets ``func`` on its parser."""

from __future__ import annotations

from types import ModuleType

from ptm_sync.commands import availability, booking, daemon, demo, mail, roster, setup

COMMAND_MODULES: list[ModuleType] = [setup, roster, availability, booking, mail, daemon, demo]
