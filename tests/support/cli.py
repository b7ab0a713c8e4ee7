"""Running `ptm-sync` the way a school's IT person does: a config file, a folder, a command.

``write_config(folder, ...)`` writes a ``ptm-sync.toml`` from plain values and returns its
path; ``ptm_sync(config, *args)`` runs ``ptm-sync --config CONFIG ARGS...`` in the config's
folder and returns a completed process (text output, never raises on exit codes).  Only the
config a test names is ever read: ``PTM_SYNC_CONFIG`` is not passed on.

By default the command line's entry point (:func:`ptm_sync.interfaces.cli.main.main`) is
called in this process, as a process would see it (:func:`run_here`): its own stdin, stdout
and stderr (bytes, decoded as a pipe's), the exit code ``python -m ptm_sync`` would give
(usage errors included), the environment and working folder it was given, a logging setup
of its own, and every database it opened disposed afterwards.  A fresh interpreter proves
nothing more for a command that starts, answers and ends.

``process=True`` runs ``python -m ptm_sync`` in a subprocess instead.  Tests keep that where
the process's own life is the point:

* crash tests (``PTM_CRASH_AT`` is read when the interpreter imports ptm_sync; an
  environment naming it, or another variable an interpreter reads only at start —
  :data:`PROCESS_ONLY_ENV` — always gets a process);
* signals and the daemon (``run``, the demo's server): they install signal handlers and
  live until stopped;
* file modes under a umask, and the log a fresh process writes (the ``-vv`` password
  checks of tests/e2e/test_private_files.py);
* the installed entry point (tests/e2e/test_install.py, test_service_files.py) and the
  terminal a process writes to (the progress bar on a pseudo-terminal).

The commands' clock: ``ptm_sync(config, "jobs", "run", "remind", env=at(moment))`` runs a
command as if it were ``moment`` (``PTM_SYNC_NOW``, read by ``App.now``): time-dependent
behaviour (reminders, the end of a meeting, a purge) is tested by setting the clock, never
by sleeping.

In-process runs take a lock: one command at a time in this process (they swap
``sys.stdout`` and ``os.environ``).  Races between commands need processes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ptm_sync.adapters.store import Database

Table = Mapping[str, Any]


def toml_value(value: Any) -> str:
    """A TOML literal for the few kinds of value a config holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def toml_table(header: str, table: Table) -> str:
    lines = [header] + [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def config_text(
    *,
    school: Table,
    database_url: str,
    periods: Sequence[Table],
    accounts: Sequence[Table] = (),
    sections: Mapping[str, Table] | None = None,
) -> str:
    """The text of a config file; ``sections`` adds tables such as ``web`` or ``sync``."""
    parts = [toml_table("[school]", school), toml_table("[database]", {"url": database_url})]
    for name, table in (sections or {}).items():
        parts.append(toml_table(f"[{name}]", table))
    parts += [toml_table("[[accounts]]", a) for a in accounts]
    parts += [toml_table("[[periods]]", p) for p in periods]
    return "\n".join(parts)


def write_config(folder: Path, text: str, name: str = "ptm-sync.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


#: Environment variables a Python process reads when it starts or imports ptm_sync, not
#: when a command runs: an ``env`` naming one runs the command in a subprocess.
PROCESS_ONLY_ENV = frozenset({"PTM_CRASH_AT", "TMPDIR", "TZ", "LANG", "LC_ALL", "LC_CTYPE"})

#: The signals whose handlers a command may set (the daemon, the demo): restored after a
#: run in this process.
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_ONE_AT_A_TIME = threading.Lock()


def at(moment: datetime) -> dict[str, str]:
    """The environment that sets the commands' clock to ``moment`` (aware)."""
    return {"PTM_SYNC_NOW": moment.isoformat()}


def ptm_sync(
    config: Path | None,
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    stdin: bytes | None = None,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the command line; ``config=None`` runs it without ``--config``; ``stdin``: the
    bytes the command reads (``mail deliver``); ``env``: variables added to this process's
    environment; ``cwd``: the folder it runs in (default: the config's).

    In this process (:func:`run_here`) unless ``process`` is true or ``env`` names a
    variable of :data:`PROCESS_ONLY_ENV`; ``timeout`` bounds a subprocess only (pytest's
    own timeout stops a hung in-process run)."""
    argv = [] if config is None else ["--config", str(config)]
    argv += map(str, args)
    folder = cwd or (config.parent if config is not None else None)
    extra = dict(env or {})
    if process or _needs_a_process(extra):
        return _run_process(argv, extra, folder, timeout, stdin)
    return run_here(argv, env=extra, cwd=folder, stdin=stdin)


def _needs_a_process(env: Mapping[str, str]) -> bool:
    return any(k in PROCESS_ONLY_ENV or k.startswith("PYTHON") for k in env)


def _run_process(
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path | None,
    timeout: float,
    stdin: bytes | None,
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "ptm_sync", *argv],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def run_here(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """``ptm-sync ARGV`` through its entry point in this process, as ``python -m ptm_sync``
    ends: the exit code of ``SystemExit(main(argv))`` (argparse's usage errors and
    ``--help`` included), stdout and stderr as bytes a pipe would carry, decoded.  ``main``
    turns every failure into a line and an exit code; anything else escaping it (a bug in
    the entry point itself) is raised here, where pytest shows it.

    For the run: stdin holds ``stdin`` (empty when None); ``os.environ`` is this process's
    without ``PTM_SYNC_CONFIG``, plus ``env``; the working folder is ``cwd``; the root logger
    has no handlers, so the command sets up its own logging on its stderr as a process
    does.  Afterwards all of that is put back, as are the handlers of SIGINT, SIGTERM and
    SIGHUP, and every :class:`~ptm_sync.adapters.store.Database` the command opened is
    disposed (a process's exit closes its connections)."""
    from ptm_sync.interfaces.cli.main import main

    out, err = io.BytesIO(), io.BytesIO()
    with _ONE_AT_A_TIME, _as_a_process(env or {}, cwd, stdin, out, err) as opened:
        try:
            code = _exit_code(main(list(argv)))
        except SystemExit as exc:  # argparse's usage errors, --help and --version
            code = _exit_code(exc.code)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for db in opened:
                db.dispose()
    return subprocess.CompletedProcess(
        ["ptm-sync", *argv],
        code,
        out.getvalue().decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
    )


def _restore(environ: MutableMapping[str, str], saved: Mapping[str, str]) -> None:
    """``environ`` as ``saved`` was, key by key: never empty on the way, as another thread
    of this process (a test's server) may read it meanwhile."""
    for key in [k for k in environ if k not in saved]:
        del environ[key]
    for key, value in saved.items():
        if environ.get(key) != value:
            environ[key] = value


def _exit_code(code: object) -> int:
    """The status ``raise SystemExit(code)`` ends a process with (its message printed)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _as_a_process(
    env: Mapping[str, str],
    cwd: Path | None,
    stdin: bytes | None,
    out: io.BytesIO,
    err: io.BytesIO,
) -> Iterator[list[Database]]:
    """This process dressed as a fresh one for a command; yields the databases opened."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_signals = {s: signal.getsignal(s) for s in _SIGNALS}
    opened: list[Database] = []
    original_init = Database.__init__

    def recording_init(self: Database, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        opened.append(self)

    os.environ.pop("PTM_SYNC_CONFIG", None)
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    streams = (
        io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True),
    )
    sys.stdin, sys.stdout, sys.stderr = streams
    root.handlers = []
    Database.__init__ = recording_init  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        Database.__init__ = original_init  # type: ignore[method-assign]
        for handler in root.handlers:
            if handler not in saved_handlers:
                handler.close()
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for stream in streams:
            stream.detach()  # flushed; the bytes stay readable for the caller
        os.chdir(saved_cwd)
        _restore(os.environ, saved_env)
        for number, was in saved_signals.items():
            if was is not None and signal.getsignal(number) is not was:
                signal.signal(number, was)  # only ever set in the main thread, as it was


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]
