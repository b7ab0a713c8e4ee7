"""`demo`: the whole story on embedded parts (DESIGN §9)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="the whole story on embedded servers")
    p.add_argument("--once", action="store_true", help="end after the story instead of serving")
    p.add_argument("--dir", help="keep the demo's files in this (empty) folder")
    p.add_argument("--port", type=int, default=0, help="port of the published pages")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    # Lazy on purpose: the demo is a shell above the command line (it runs `ptm-sync`
    # commands in-process, so it imports ptm_sync.cli) and it needs the optional `demo`
    # extra (Radicale).  Imported here, every command would load it, and cli -> commands
    # -> demo -> cli would be a cycle.
    from ptm_sync.demo.story import run

    return run(args)
