"""`run`: the daemon."""

from __future__ import annotations

import argparse

from ptm_sync.app.context import App
from ptm_sync.interfaces.daemon import run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="the daemon: sync, mail, outbox, published pages")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    try:
        return run(app)
    finally:
        app.close()
