"""Running `ptm-sync` the way a school's IT person does: a process, a config file, a folder.

``write_config(folder, ...)`` writes a ``ptm-sync.toml`` from plain values and returns its
path; ``ptm_sync(config, *args)`` runs ``python -m ptm_sync --config CONFIG ARGS...`` in the
config's folder and returns the completed process (text output, never raises on exit codes).
The child process does not inherit ``PTM_SYNC_CONFIG``, so only the config a test names is
ever read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def ptm_sync(
    config: Path | None,
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command line; ``config=None`` runs it without ``--config``; ``stdin``: the
    bytes the command reads (``mail deliver``)."""
    argv = [sys.executable, "-m", "ptm_sync"]
    if config is not None:
        argv += ["--config", str(config)]
    environment = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    environment.update(env or {})
    folder = cwd or (config.parent if config is not None else None)
    done = subprocess.run(
        [*argv, *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=folder,
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


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]
