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
    # Lazy on purpose: the demo needs the optional `demo` extra (Radicale); imported at the
    # top, every command would load it.  The demo sits below the command line (DESIGN §2):
    # it gets `main` and the daemon from here and imports neither.
    from ptm_sync.demo.story import Shell, run
    from ptm_sync.interfaces.cli.main import main
    from ptm_sync.interfaces.daemon import Daemon

    return run(args, Shell(main=main, daemon=Daemon))
