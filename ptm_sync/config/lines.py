"""Where a key sits in a TOML text: the line numbers of config problems.

:mod:`tomllib` reports the line of a syntax error only; a key that parses but is wrong (an
unknown key, a bad value) has no line.  :func:`key_lines` scans the text once and maps each
dotted key (``mail.smtp.port``, ``periods[1].windows``) to the line it is written on, and
each table (``school``, ``accounts[0]``) to its header line: the n-th ``[[accounts]]`` header
is ``accounts[n]`` (TOML 1.0 §Array of Tables).  :func:`line_of` finds the best line for a
key a problem names: the key itself, the same key with ``_env`` / ``_file`` (a secret), or
the nearest enclosing key or table (a missing key points at its table's header).

The scan understands what a config file holds: comments, ``[table]`` and ``[[array]]``
headers with bare or quoted names, ``key = value`` lines with dotted keys, and multi-line
strings and arrays (whose inner lines are never taken for keys).  It is not a TOML parser:
the text has already parsed when it is asked, so it needs only to find, not to validate.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_INDEX = re.compile(r"\[\d+\]$")


def _parts(dotted: str) -> list[str]:
    """The names of a dotted TOML key (quotes removed)."""
    names = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", dotted)
    return [n[1:-1] if n[:1] in "\"'" else n for n in names]


def key_lines(text: str) -> dict[str, int]:
    """Every key and table of ``text`` by its dotted path (arrays of tables indexed), mapped
    to its 1-based line number; the first occurrence wins."""
    found: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    open_string: str | None = None  # the delimiter of a multi-line string we are inside
    depth = 0  # open brackets of a multi-line array or inline table
    for number, line in enumerate(text.splitlines(), start=1):
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        if depth > 0:
            depth = max(0, depth + _balance(line))
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line) if stripped.startswith("[") else None
        if header is not None:
            name = ".".join(_parts(header.group(2)))
            parent = _indexed_prefix(name, counts)
            if header.group(1) == "[[":
                index = counts.get(parent, -1) + 1
                counts[parent] = index
                table = f"{parent}[{index}]"
            else:
                table = parent
            found.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key is None:
            continue
        path = ".".join([table, *_parts(key.group(1))] if table else _parts(key.group(1)))
        found.setdefault(path, number)
        rest = line[key.end() :]
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2 == 1:
                open_string = quote
                break
        else:
            depth = max(0, _balance(rest))
    return found


def _indexed_prefix(name: str, counts: dict[str, int]) -> str:
    """``accounts.extra`` under the latest ``[[accounts]]`` is ``accounts[n].extra``."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:end])
        if head in counts:
            return f"{head}[{counts[head]}]." + ".".join(parts[end:])
    return name


def _balance(text: str) -> int:
    """Open minus closed brackets and braces outside strings and comments."""
    depth = 0
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def line_of(lines: dict[str, int], key: str | None) -> int | None:
    """The line of ``key`` (a dotted path as config problems name it) in a text whose
    :func:`key_lines` are ``lines``; None when neither it nor a table around it is there."""
    if not key:
        return None
    current = key
    while current:
        for candidate in (current, f"{current}_env", f"{current}_file"):
            if candidate in lines:
                return lines[candidate]
        # periods[0].windows[2] -> periods[0].windows -> periods[0] -> (none)
        indexed = _INDEX.search(current) is not None
        current = _INDEX.sub("", current) if indexed else current.rpartition(".")[0]
    return None
