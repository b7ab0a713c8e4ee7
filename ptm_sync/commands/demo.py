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
    from ptm_sync.demo.story import run

    return run(args)
