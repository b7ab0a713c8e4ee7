"""The demo's story, told through the real command line on embedded servers."""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import threading
from datetime import date
from pathlib import Path
from types import FrameType

from ptm_sync.demo import school
from ptm_sync.embedded import EmbeddedServer, free_port, start_radicale
from ptm_sync.errors import UserError

DEMO_USER = "demo"


def _say(text: str = "") -> None:
    print(text, flush=True)


def _run(config: Path, *argv: str) -> None:
    from ptm_sync.cli import main

    _say(f"\n$ ptm-sync {' '.join(argv)}")
    code = main(["--config", str(config), *argv])
    if code != 0:
        raise UserError(f"demo step `ptm-sync {' '.join(argv)}` failed with exit code {code}")


def seed_calendars(radicale: EmbeddedServer, today: date) -> dict[str, str]:
    """Create one calendar per teacher in Radicale and fill it; returns email → path."""
    from caldav.davclient import DAVClient

    client = DAVClient(radicale.url, username=DEMO_USER, password=DEMO_USER)
    principal = client.principal()
    paths: dict[str, str] = {}
    for teacher in school.TEACHERS:
        cal_id = teacher.email.split("@")[0].replace(".", "-")
        calendar = principal.make_calendar(name=teacher.name, cal_id=cal_id)
        for ics in school.calendars(today)[teacher.email]:
            calendar.save_event(ics)
        paths[teacher.email] = f"/{DEMO_USER}/{cal_id}/"
    return paths


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ptm-sync-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()) and args.dir:
        raise UserError(f"{folder} is not empty; the demo needs an empty folder")
    today = date.today()
    radicale = start_radicale(folder / "radicale")
    port = args.port or free_port()
    listen = f"127.0.0.1:{port}"
    try:
        _say("ptm-sync demo: Lincoln High School, six teachers, seven families.")
        _say(f"Radicale (CalDAV) is running at {radicale.url}; data in {folder}")
        paths = seed_calendars(radicale, today)
        for teacher in school.TEACHERS:
            _say(f"  {teacher.name:<14} {teacher.story}")
        (folder / "teachers.csv").write_text(school.teachers_csv(paths), encoding="utf-8")
        (folder / "families.csv").write_text(school.families_csv(), encoding="utf-8")
        config = folder / "ptm-sync.toml"
        config.write_text(
            school.config_toml(
                radicale_url=radicale.url,
                database=str(folder / "ptm-sync.db"),
                listen=listen,
                today=today,
            ),
            encoding="utf-8",
        )
        _run(config, "roster", "import", str(folder / "teachers.csv"), str(folder / "families.csv"))
        _run(config, "sync")
        _run(config, "matrix")
        # Without --dir, --once removes the folder at the end: nothing left to try then.
        serve(config, once=args.once, kept=bool(args.dir) or not args.once)
    finally:
        radicale.stop()
        if not args.dir and args.once:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def serve(config_path: Path, *, once: bool, kept: bool = True) -> None:
    from ptm_sync import config as config_mod
    from ptm_sync.app import App
    from ptm_sync.daemon import Daemon

    app = App(config_mod.load(str(config_path)))
    daemon = Daemon(app)
    url = daemon.start()
    period = app.config.periods[0].id
    _say(f"\nPublished page:  {url}/periods/{period}")
    _say(f"Slots as JSON:   {url}/periods/{period}/slots.json")
    _say(f"Health:          {url}/healthz")
    if kept:
        _say(f"Try it yourself: .venv/bin/ptm-sync --config {config_path} slots --format json")
    try:
        if once:
            daemon.sync_job()
            return
        _say("Serving until Ctrl-C.")
        stop = threading.Event()

        def handler(_signum: int, _frame: FrameType | None) -> None:
            stop.set()
            daemon.stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        daemon.loop()
    finally:
        daemon.close()
        app.close()
