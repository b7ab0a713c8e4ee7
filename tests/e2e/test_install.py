"""Installing ptm-sync as the README's "Running it for a school" says, in a temporary root.

The README's shell blocks run as they are written, with the paths moved under a temporary
folder (`/opt/ptm-sync` -> `ROOT/opt/ptm-sync`, `/etc/` -> `ROOT/etc/`, ...) and the
package installed from the wheel this test builds.  What needs a real Debian machine's root
(apt-get, useradd, chown to a system user, runuser, systemctl) is a stand-in on PATH that
writes down how it was called (runuser runs its command as the test's user).  The one fresh
virtual environment is made once for the module, by the README's own commands: pip
downloads the core dependencies from the package index, nothing optional.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.mailservers import SMTP_PASSWORD, SmtpSink
from tests.support.sample_school import SampleSchool, seed_calendars

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
UNIT = REPO / "config" / "ptm-sync.service"

#: Modules of the extras; a CalDAV school's install has none of them.
OPTIONAL = (
    "googleapiclient",
    "google_auth_httplib2",
    "httplib2",
    "msal",
    "exchangelib",
    "radicale",
    "aiosmtpd",
    "psycopg",
)

#: Stand-ins for the commands that change a real machine; each logs its arguments.
STUBS = {
    "apt-get": "",
    "useradd": "",
    "chown": "",
    "systemctl": "",
    # runuser -u USER -- COMMAND...: the command, as the test's user.
    "runuser": 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"',
}

#: What a wheel is built from (the Containerfile's COPY lines say the same).
SOURCE = ("pyproject.toml", "README.md", "ptm_sync", "connectors")

#: Bounds that stop a hung step only.
INSTALL_SECONDS = 900


def readme_blocks() -> list[str]:
    """The ```sh blocks of the README's "Running it for a school", in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Running it for a school\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


@dataclass(frozen=True)
class Root:
    """A machine's folders under a temporary root, after the README's install block."""

    path: Path
    wheel: Path
    env: dict[str, str]
    log: Path
    optional_found: list[str]  # extras' modules importable right after the install

    def under(self, absolute: str) -> Path:
        return self.path / absolute.lstrip("/")

    def script(self, block: str) -> str:
        """A README block with its paths moved under the root."""
        moved = block.replace("'/usr/src/ptm-sync'", f"'{self.wheel}'")
        moved = moved.replace("/usr/src/ptm-sync/", f"{REPO}/")
        for prefix in ("/opt/ptm-sync", "/etc/", "/var/lib/ptm-sync", "/usr/local/bin"):
            moved = moved.replace(prefix, str(self.under(prefix)) + ("/" * prefix.endswith("/")))
        return moved

    def run(self, block: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.script(block)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=cwd or self.path,
            timeout=INSTALL_SECONDS,
            check=False,
        )

    def calls(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []

    def ptm_sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.under("/usr/local/bin/ptm-sync")), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.path,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Root:
    base = tmp_path_factory.mktemp("root")
    dist = tmp_path_factory.mktemp("dist")
    # Built from a copy of what the Containerfile copies too: the checkout's own build/
    # folder (setuptools' leftovers) never ends up in the wheel, and nothing else is needed.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(REPO / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("ptm_sync-*.whl")

    stubs, log = base / "stubs", base / "calls.log"
    stubs.mkdir()
    # python3: the interpreter this test's venv was made from (Debian's, on Debian).
    interpreter = getattr(sys, "_base_executable", sys.executable)
    for name, body in {**STUBS, "python3": f'exec "{interpreter}" "$@"'}.items():
        script = stubs / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\n', encoding="utf-8")
        script.chmod(0o755)
    for folder in ("/usr/local/bin", "/etc/systemd/system"):  # there on any Debian
        (base / folder.lstrip("/")).mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PTM_SYNC_CONFIG", "VIRTUAL_ENV")}
    env["PATH"] = f"{stubs}:{base / 'usr/local/bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    # ptm-sync's own last resort, /etc/ptm-sync/ptm-sync.toml, moved under the root too.
    env["PTM_SYNC_CONFIG"] = str(base / "etc/ptm-sync/ptm-sync.toml")
    machine = Root(base, wheel, env, log, [])

    install = machine.run(readme_blocks()[0])
    assert install.returncode == 0, install.stdout + install.stderr
    probe = subprocess.run(
        [
            str(machine.under("/opt/ptm-sync/bin/python")),
            "-c",
            "import importlib.util as u, sys; "
            "print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))",
            *OPTIONAL,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    machine.optional_found.extend(probe.stdout.split())
    return machine


def test_the_readme_installs_the_command_where_the_unit_runs_it(root: Root) -> None:
    exec_start = next(
        line.split("=", 1)[1].split()[0]
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.startswith("ExecStart=")
    )
    program = root.under(exec_start)
    assert program.is_file() and os.access(program, os.X_OK)
    assert root.under("/usr/local/bin/ptm-sync").resolve() == program.resolve()
    assert root.ptm_sync("--help").returncode == 0
    assert any(c.startswith("useradd --system --user-group") for c in root.calls())


def test_a_caldav_schools_install_has_none_of_the_extras(root: Root) -> None:
    assert root.optional_found == []


def test_init_made_the_config_and_the_database_in_the_platforms_places(root: Root) -> None:
    config = root.under("/etc/ptm-sync/ptm-sync.toml")
    database = root.under("/var/lib/ptm-sync/ptm-sync.db")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert database.is_file() and not root.under("/etc/ptm-sync/ptm-sync.db").exists()
    assert f'url = "sqlite:///{database}"' in config.read_text(encoding="utf-8")
    again = root.ptm_sync("init", str(config.parent), "--state-dir", str(database.parent))
    assert again.returncode == 0 and "keeping it" in again.stdout


def edit_config(root: Root, server: EmbeddedCalDAV, smtp_port: int) -> None:
    """What the administrator does by hand between the README's blocks: the servers, and
    each secret in a file named by password_file."""
    config = root.under("/etc/ptm-sync/ptm-sync.toml")
    text = config.read_text(encoding="utf-8")
    for old, new in [
        ('host = "smtp.lincoln.example.org"', 'host = "127.0.0.1"'),
        ("port = 587", f"port = {smtp_port}"),
        ("starttls = true", "starttls = false"),
        (
            'password_env = "PTM_SMTP_PASSWORD"',
            f'password_file = "{root.under("/etc/ptm-sync/smtp.pass")}"',
        ),
        ('url = "https://dav.lincoln.example.org/"', f'url = "{server.url}"'),
        ('username = "ptm-sync"', f'username = "{server.username}"'),
        (
            'password_env = "PTM_CALDAV_PASSWORD"',
            f'password_file = "{root.under("/etc/ptm-sync/caldav.pass")}"',
        ),
    ]:
        assert old in text, old
        text = text.replace(old, new, 1)
    config.write_text(text, encoding="utf-8")


def test_the_readme_checks_imports_and_starts_the_service(
    root: Root,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    tmp_path: Path,
) -> None:
    sink = smtp_sink(mode="plain", auth=True)
    edit_config(root, radicale_server, sink.port)
    secrets = root.run(readme_blocks()[1])
    assert secrets.returncode == 0, secrets.stderr
    for name, secret in [
        ("smtp.pass", SMTP_PASSWORD),
        ("caldav.pass", radicale_server.password or "any: the server takes every login"),
    ]:
        path = root.under(f"/etc/ptm-sync/{name}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.write_text(secret, encoding="utf-8")

    school = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, school, tag=f"install-{uuid.uuid4().hex[:8]}")
    (tmp_path / "teachers.csv").write_text(school.teachers_csv(calendars), encoding="utf-8")
    (tmp_path / "families.csv").write_text(school.families_csv(), encoding="utf-8")

    start = root.run(readme_blocks()[2], cwd=tmp_path)
    assert start.returncode == 0, start.stdout + start.stderr
    assert "ok: configuration, database and every configured service answer" in start.stdout
    assert root.under("/etc/systemd/system/ptm-sync.service").read_bytes() == UNIT.read_bytes()
    calls = root.calls()
    chown = f"chown -R ptm-sync:ptm-sync {root.under('/etc/ptm-sync')} "
    assert any(c.startswith(chown) for c in calls)
    assert calls[-3:] == [
        "systemctl daemon-reload",
        "systemctl enable --now ptm-sync",
        "systemctl status ptm-sync",
    ]
    teachers = root.ptm_sync("matrix", "--format", "json")
    assert teachers.returncode == 0 and all(e in teachers.stdout for e in calendars)


def test_an_account_whose_extra_is_missing_is_one_line_of_check(root: Root) -> None:
    config = root.under("/etc/ptm-sync/ptm-sync.toml")
    text = config.read_text(encoding="utf-8")
    extra = textwrap.dedent(
        """
        [[accounts]]
        id = "m365"
        type = "graph"
        tenant_id = "00000000-0000-0000-0000-000000000000"
        client_id = "11111111-1111-1111-1111-111111111111"
        client_secret = "not-used"
        """
    )
    # Before the periods: an [[accounts]] table after [[periods]] would still be read, but
    # this is where the administrator puts it.
    config.write_text(text.replace("[[periods]]", extra + "\n[[periods]]", 1), encoding="utf-8")
    try:
        checked = root.ptm_sync("check")
    finally:
        config.write_text(text, encoding="utf-8")
    assert checked.returncode == 1
    assert "account 'm365' is of type graph: install ptm-sync[microsoft]" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr


def test_the_demo_asks_for_its_extra_then_runs_once_with_it(root: Root) -> None:
    refused = root.ptm_sync("demo", "--once", "--dir", str(root.path / "demo-refused"))
    assert refused.returncode == 1
    assert "ptm-sync[demo]" in refused.stderr and "Traceback" not in refused.stderr
    pip = root.under("/opt/ptm-sync/bin/pip")
    added = subprocess.run(
        [str(pip), "install", "--quiet", f"{root.wheel}[demo]"],
        capture_output=True,
        text=True,
        env=root.env,
        timeout=INSTALL_SECONDS,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    demo = root.ptm_sync("demo", "--once", "--dir", str(root.path / "demo"))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr


# --- no optional SDK on the core path ------------------------------------------------------

#: Makes the extras' modules unimportable in a child process (as in a core install).
BLOCK_EXTRAS = f"""
import importlib.abc, sys
BLOCKED = {set(OPTIONAL) | {"google", "oauthlib", "requests_oauthlib"}!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def test_the_command_line_daemon_and_caldav_import_no_optional_sdk() -> None:
    """Fast and offline, beside the real install above: the modules a CalDAV school runs
    import, and an account of another type says which extra it needs."""
    code = BLOCK_EXTRAS + textwrap.dedent(
        """
        import ptm_sync.interfaces.cli.main, ptm_sync.interfaces.daemon
        import ptm_sync.interfaces.cli.commands.setup, ptm_sync.app.checks
        import connectors.caldav, connectors.ics_feed
        from zoneinfo import ZoneInfo
        from connectors.base import Capability, Horizon, MissingExtra, declared_capabilities
        from connectors.base import open_connector
        from ptm_sync.config.settings import AccountConfig
        assert Capability.MIRRORED in declared_capabilities("caldav")
        for kind, extra in [("graph", "microsoft"), ("ews", "microsoft"), ("google", "google")]:
            try:
                declared_capabilities(kind, "acct")
            except MissingExtra as exc:
                print(exc)
            try:
                open_connector(AccountConfig(id="acct", type=kind), ZoneInfo("UTC"), None)
            except MissingExtra as exc:
                print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "account 'acct' is of type graph: install ptm-sync[microsoft]",
        "account 'acct' is of type graph: install ptm-sync[microsoft]",
        "account 'acct' is of type ews: install ptm-sync[microsoft]",
        "account 'acct' is of type ews: install ptm-sync[microsoft]",
        "account 'acct' is of type google: install ptm-sync[google]",
        "account 'acct' is of type google: install ptm-sync[google]",
    ]
