"""`init` and `check`."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from ptm_sync.adapters.files.filemodes import make_private_dir, write_private
from ptm_sync.adapters.store import Database
from ptm_sync.adapters.store.db import database_outage, safe_error_text
from ptm_sync.app.checks import run_checks
from ptm_sync.app.context import App
from ptm_sync.config import settings as config_mod
from ptm_sync.core.errors import PtmError, UserError
from ptm_sync.ops.redact import mask_urls

#: The example config, package data of ptm_sync (found wherever this module lives).
EXAMPLE = resources.files("ptm_sync").joinpath("data", "ptm-sync.example.toml")


#: The example's database line, which ``--state-dir`` points at the state folder.
EXAMPLE_DATABASE = 'url = "sqlite:///ptm-sync.db"'


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="write a commented ptm-sync.toml and create the database")
    p.add_argument(
        "dir", nargs="?", default=".", help="folder for ptm-sync.toml, created if missing"
    )
    p.add_argument(
        "--state-dir",
        metavar="PATH",
        help="folder for the SQLite database (default: DIR), created mode 0700 if missing",
    )
    p.set_defaults(func=cmd_init, usage_error=p.error)
    p = sub.add_parser("check", help="validate the config, database, calendars, SMTP and IMAP")
    p.set_defaults(func=cmd_check)


def cmd_init(args: argparse.Namespace) -> int:
    """DESIGN §7: create DIR if missing, write a commented ``ptm-sync.toml`` there (0600)
    and create the database in ``--state-dir`` (default DIR).  Folders it creates are 0700:
    they hold the config's secrets and every family's data."""
    folder = Path(args.dir)
    state = Path(args.state_dir) if args.state_dir else folder
    target = folder / "ptm-sync.toml"
    if args.config and Path(args.config).absolute() != target.absolute():
        # Checked before anything is written: init writes DIR's config and makes the
        # database it names; another config would leave DIR half made (all or nothing).
        args.usage_error(
            f"init writes {target}; --config may only name that file "
            f"(not {args.config}): run `ptm-sync init {folder}`, then use --config {target}"
        )
    for path in dict.fromkeys((folder, state)):
        try:
            if make_private_dir(path):
                print(f"created {path} (mode 0700)")
        except OSError as exc:
            raise UserError(f"{path}: cannot create the folder: {exc.strerror}") from None
    if target.exists():
        print(f"{target} exists; keeping it")
    else:
        # Mode 0600 whatever the umask: the file may come to hold passwords (DESIGN §7).
        write_private(target, example_config(state if args.state_dir else None), replace=False)
        print(f"wrote {target}: edit [school], [mail], [[accounts]] and [[periods]]")
    config = config_mod.load(args.config or str(target))
    db = Database(config.database.url)
    db.migrate()
    print(f"database ready: {db.safe_url}")
    db.dispose()
    return 0


def example_config(state_dir: Path | None) -> str:
    """The commented example config; with ``state_dir`` its SQLite database lives there."""
    text = EXAMPLE.read_text(encoding="utf-8")
    if state_dir is None:
        return text
    if EXAMPLE_DATABASE not in text:
        raise PtmError("the example config's [database] url line moved (a bug)")
    url = "sqlite:///" + (state_dir.resolve() / "ptm-sync.db").as_posix()
    return text.replace(EXAMPLE_DATABASE, f"url = {json.dumps(url)}", 1)  # JSON: a TOML string


def cmd_check(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    problems: list[str] = []
    try:
        app.db.ping()
    except PtmError as exc:
        problems.append(f"database: {exc}")
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        problems.append(f"database: {database_outage(exc) or safe_error_text(exc)}")
    report = run_checks(app, roster=not problems)
    problems += report.problems
    # Every line through one mask: an account's URL may carry user:password@ (DESIGN §7).
    for line in [*problems, *report.warnings, *(f"note: {n}" for n in report.notes)]:
        print(mask_urls(line))
    if problems:
        return 1
    print("ok: configuration, database and every configured service answer")
    return 0
