"""`digest [--dry-run]`: the staff digest by hand (DESIGN §8 ``[notify] staff_digest``).

The daemon sends it by itself once a day; this command runs the same step now, or with
``--dry-run`` prints what it would send and changes nothing.
"""

from __future__ import annotations

import argparse

from ptm_sync.app.context import App
from ptm_sync.app.read import digest
from ptm_sync.interfaces.cli.commands.common import deliver, reported_here


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "digest",
        help="email school.contact today's digest of quarantined messages, dead letters and "
        "conflicts",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the digest that would be sent; send nothing"
    )
    p.set_defaults(func=cmd_digest)


def cmd_digest(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    config, now = app.config, app.now()
    if not digest.enabled(config):
        why = (
            "[mail] is not configured" if config.mail is None else '[notify] staff_digest = "never"'
        )
        print(f"no staff digest: {why}")
        return 0
    if digest.done_today(app.db, config, now):
        print("today's staff digest has run already; the next one is due tomorrow")
        return 0
    pending = digest.pending(app.db, config, now)
    if pending is None:
        print("nothing to report: no message quarantined since the last digest, no dead letter")
        if args.dry_run:
            return 0
    elif args.dry_run:
        text = digest.build(pending, config)
        print(f"To: {config.school.contact}\nSubject: {text.subject}\n\n{text.plain}", end="")
        print("(dry run: nothing sent)")
        return 0
    if digest.send_if_due(app.db, config, now):
        print(f"staff digest queued for {config.school.contact}")
        with reported_here(args):
            deliver(app)
    return 0
