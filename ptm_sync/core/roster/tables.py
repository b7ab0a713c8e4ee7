"""Roster input: files on disk → decoded CSV tables with physical line numbers.

The shared ground of :mod:`ptm_sync.core.roster.parse` (teachers and families CSV) and
:mod:`ptm_sync.core.roster.oneroster` (OneRoster 1.1 CSV exports): where a value came from
(:class:`Where`), the collector of problems, the tables, and the entries both parsers
produce before they are merged and cross-checked.

Reading is strict about what it cannot interpret (bytes that are not UTF-8, a row with more
fields than the header) and lenient about what does not matter (a UTF-8 byte order mark,
blank lines, empty trailing header cells, surrounding spaces, the case of header names, and
semicolons or tabs instead of commas, as Excel saves "CSV" in many locales).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ptm_sync.core.errors import RosterError

#: The OneRoster tables we read; the others (orgs.csv, demographics.csv…) are ignored.
ONEROSTER_FILES = ("manifest.csv", "users.csv", "enrollments.csv", "classes.csv")

_EMAIL = re.compile(r'[^@\s<>(),;:"\[\]]+@[^@\s<>(),;:"\[\].]+(\.[^@\s<>(),;:"\[\].]+)+')


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the input: a file and its physical line (the header is line 1).

    ``line`` 0 stands for the file as a whole.
    """

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(slots=True)
class Problems:
    """Collects ``file:line: reason`` problems; sorted by file (in the order given), then line."""

    _found: list[tuple[Where, str]] = field(default_factory=list)
    _files: dict[str, int] = field(default_factory=dict)

    def file(self, name: str) -> None:
        """Register a file so that its problems sort in the order the files were given."""
        self._files.setdefault(name, len(self._files))

    def add(self, where: Where, reason: str) -> None:
        self.file(where.file)
        self._found.append((where, reason))

    def __bool__(self) -> bool:
        return bool(self._found)

    def lines(self) -> list[str]:
        ordered = sorted(
            enumerate(self._found),
            key=lambda item: (self._files[item[1][0].file], item[1][0].line, item[0]),
        )
        return [f"{where}: {reason}" for _, (where, reason) in ordered]

    def raise_if_any(self) -> None:
        if self._found:
            raise RosterError(self.lines())


# --- sources --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The bytes of one CSV file; ``name`` is how problems name it."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class OneRosterExport:
    """A OneRoster 1.1 CSV export (folder or zip): its tables by lower-case file name."""

    name: str
    files: Mapping[str, SourceFile]


Source = SourceFile | OneRosterExport


def read_sources(paths: Sequence[str | Path]) -> list[Source]:
    """Read the files the user named: CSV files, OneRoster folders and zips.

    Raises:
        RosterError: naming every path that cannot be read (missing, not a zip, a folder
            without users.csv).
    """
    problems = Problems()
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        name = str(raw)
        problems.file(name)
        try:
            if path.is_dir():
                sources.append(_read_folder(path, name, problems))
            elif path.suffix.lower() == ".zip":
                sources.append(_read_zip(path, name, problems))
            else:
                sources.append(SourceFile(name, path.read_bytes()))
        except FileNotFoundError:
            problems.add(Where(name), "no such file or folder")
        except OSError as exc:
            problems.add(Where(name), f"cannot read: {exc.strerror or exc}")
    problems.raise_if_any()
    return sources


def _read_folder(path: Path, name: str, problems: Problems) -> OneRosterExport:
    files: dict[str, SourceFile] = {}
    for child in sorted(path.iterdir()):
        lower = child.name.lower()
        if lower in ONEROSTER_FILES and child.is_file():
            files[lower] = SourceFile(f"{name.rstrip('/')}/{child.name}", child.read_bytes())
    if "users.csv" not in files:
        problems.add(Where(name), "a folder without users.csv: not a OneRoster 1.1 CSV export")
    return OneRosterExport(name, files)


def _read_zip(path: Path, name: str, problems: Problems) -> OneRosterExport:
    files: dict[str, SourceFile] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            # The tables normally sit at the root; some exporters wrap them in one folder.
            members = sorted(
                (m for m in archive.infolist() if not m.is_dir()),
                key=lambda m: (len(PurePosixPath(m.filename).parts), m.filename),
            )
            for member in members:
                lower = PurePosixPath(member.filename).name.lower()
                if lower in ONEROSTER_FILES and lower not in files:
                    files[lower] = SourceFile(f"{name}/{member.filename}", archive.read(member))
    except zipfile.BadZipFile:
        problems.add(Where(name), "not a zip file")
        return OneRosterExport(name, {})
    if "users.csv" not in files:
        problems.add(Where(name), "a zip without users.csv: not a OneRoster 1.1 CSV export")
    return OneRosterExport(name, files)


# --- tables ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a table: values by lower-case column name, stripped."""

    where: Where
    values: Mapping[str, str]

    def get(self, column: str) -> str:
        return self.values.get(column, "")


@dataclass(frozen=True, slots=True)
class Table:
    """A decoded CSV file: lower-case column names and the non-blank rows."""

    file: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]

    def missing(self, required: Iterable[str]) -> list[str]:
        return [c for c in required if c not in self.columns]


def read_table(source: SourceFile, problems: Problems) -> Table | None:
    """Decode and parse one CSV file, or report why it cannot be read and return None."""
    problems.file(source.name)
    data = source.data.removeprefix(codecs.BOM_UTF8)
    bad = False
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        try:
            raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = True
            byte = raw_line[exc.start]
            problems.add(
                Where(source.name, number),
                f"not UTF-8 (byte 0x{byte:02x} at column {exc.start + 1}); save the file as UTF-8",
            )
    if bad:
        return None
    text = data.decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.add(Where(source.name, 1), f"cannot read the header: {exc}")
        return None
    if header is None or not any(cell.strip() for cell in header):
        problems.add(Where(source.name, 1), "empty file: expected a header row")
        return None
    columns = tuple(cell.strip().lower() for cell in header)
    seen: set[str] = set()
    for column in columns:
        if column and column in seen:
            problems.add(Where(source.name, 1), f"column {column} appears twice")
            return None
        seen.add(column)
    rows: list[Row] = []
    previous = reader.line_num
    try:
        for record in reader:
            where = Where(source.name, previous + 1)  # a quoted field may span lines
            previous = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            extra = [cell for cell in record[len(columns) :] if cell.strip()]
            if extra:
                problems.add(where, f"{len(record)} fields, but the header has {len(columns)}")
                continue
            values = {
                column: (record[i].strip() if i < len(record) else "")
                for i, column in enumerate(columns)
                if column
            }
            rows.append(Row(where, values))
    except csv.Error as exc:
        problems.add(Where(source.name, reader.line_num), f"cannot read CSV: {exc}")
        return None
    return Table(source.name, columns, tuple(rows))


#: Field separators a roster may use: commas, or semicolons as Excel writes "CSV" where the
#: comma is the decimal mark (much of Europe and South America), or tabs.
DELIMITERS = ",;\t"


def delimiter(text: str) -> str:
    """The field separator of a CSV text, told from its header line (:class:`csv.Sniffer`):
    a comma unless the header clearly uses ``;`` or a tab."""
    header = text.split("\n", 1)[0]
    try:
        found = csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or nothing to go by
        return ","
    # A header of one column holds no separator at all: the sniffer's guess means nothing.
    return found if found in header else ","


# --- values ---------------------------------------------------------------------------


def normal_email(raw: str) -> str:
    """Emails are compared case-insensitively and stored lower-cased and stripped."""
    return raw.strip().lower()


def is_email(address: str) -> bool:
    # RFC 5321 §4.5.3.1: a path holds at most 256 octets, so 254 for the address itself.
    return len(address) <= 254 and bool(_EMAIL.fullmatch(address))


#: The longest names and ids the tables hold (store/tables.py).  Longer values are refused
#: while validating: PostgreSQL would fail the one transaction half-way, SQLite not at all.
NAME_LIMIT = 200
ID_LIMIT = 100


# --- entries: what a parser read, with where it read it -------------------------------


@dataclass(frozen=True, slots=True)
class TeacherEntry:
    """A teacher as one file describes it.  None: the file does not say (keep what is stored)."""

    where: Where
    email: str
    name: str
    account: str | None
    calendar: str | None
    room: str | None
    booking_address: str | None
    origin: str  # "csv" or "oneroster"


@dataclass(frozen=True, slots=True)
class StudentEntry:
    where: Where
    id: str
    name: str
    meeting_mode: str = ""  # joint | separate; "" when not given


@dataclass(frozen=True, slots=True)
class GuardianEntry:
    where: Where
    email: str
    name: str
    language: str  # "" when not given


@dataclass(frozen=True, slots=True)
class LinkEntry:
    where: Where
    guardian: str
    student: str
    teacher: str


@dataclass(slots=True)
class Entries:
    """Everything the parsers read, before merging; ``notes`` are rows skipped on purpose."""

    teachers: list[TeacherEntry] = field(default_factory=list)
    students: list[StudentEntry] = field(default_factory=list)
    guardians: list[GuardianEntry] = field(default_factory=list)
    links: list[LinkEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Emails of teachers rows that had problems: already reported, not "not a teacher".
    faulty_teachers: set[str] = field(default_factory=set)
    #: The kinds of roster the files hold: ``teachers``, ``families`` (a OneRoster export
    #: holds both); with ``roster import --replace`` each is the whole roster of its kind.
    kinds: set[str] = field(default_factory=set)
