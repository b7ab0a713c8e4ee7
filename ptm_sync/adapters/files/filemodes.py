"""Files that hold secrets or families' data: created private, whatever the umask.

The config file (it may hold passwords), the SQLite database (the UID signing secret, every
family's data, quarantined mail bodies) and whatever else ptm-sync writes for a school are
created mode 0600, and the folders it creates for them 0700.  ``umask`` can only take bits
away, so each file is created with the mode it needs and then set to exactly that mode.
SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file
(``sqlite3`` unix VFS, ``findCreateFileMode``), so a private database keeps them private.

:func:`loose_files` is the other half: `ptm-sync check` names every such file that group or
others may read, with the ``chmod`` that fixes it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Mode of every file ptm-sync creates that may hold secrets or personal data.
PRIVATE_FILE = 0o600
#: Mode of every folder ptm-sync creates for such files.
PRIVATE_DIR = 0o700
#: Permission bits that let somebody other than the owner at a file.
_OTHERS = stat.S_IRWXG | stat.S_IRWXO
#: What SQLite keeps beside a database file (WAL mode).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def create_private(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True when it was created.

    Raises:
        OSError: the file cannot be created (no such folder, no permission).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def write_private(path: Path, data: str | bytes, *, replace: bool = True) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` with mode 0600, never readable by others
    in between.

    With ``replace`` an existing file is replaced atomically (a new file of mode 0600 takes
    its place, so a loose mode of the old one is not kept); without it an existing file is
    an error.

    Raises:
        FileExistsError: ``replace=False`` and ``path`` exists.
        OSError: the file cannot be written.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), PRIVATE_FILE)
            out.write(raw)
        return
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def make_private_dir(path: Path) -> bool:
    """Create the folder ``path`` (and missing parents) with mode 0700; True when created.

    Parents created on the way get 0700 too; an existing folder is left as it is.

    Raises:
        OSError: the folder cannot be created, or ``path`` is a file.
    """
    if path.is_dir():
        return False
    missing = [path, *(p for p in path.parents if not p.exists())]
    path.mkdir(mode=PRIVATE_DIR, parents=True)
    for folder in missing:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(folder, PRIVATE_DIR)
    return True


def is_loose(path: Path) -> int | None:
    """The permission bits of ``path`` when group or others have any, else None (also for a
    file that does not exist)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & _OTHERS else None


def loose_files(paths: Iterable[tuple[str, Path]]) -> Iterator[str]:
    """One ``warning:`` line per (what, path) that group or others may read or change.

    Each line names the file, its mode and the fix, e.g. ``warning: config
    /etc/ptm-sync/ptm-sync.toml is mode 0644 (group or others have access); run: chmod 600
    /etc/ptm-sync/ptm-sync.toml``.
    """
    seen: set[Path] = set()
    for what, path in paths:
        if path in seen:
            continue
        seen.add(path)
        mode = is_loose(path)
        if mode is not None:
            yield (
                f"warning: {what} {path} is mode {mode:04o} (group or others have access); "
                f"run: chmod 600 {path}"
            )


def sqlite_files(database: Path) -> list[Path]:
    """The database file and the companions SQLite keeps beside it."""
    return [database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS)]
