"""Mail headers parsed once and folded once: the header registry of :mod:`ptm_sync.core.imip.build`.

The standard library's ``HeaderRegistry`` makes a new class with ``type()`` for every
header it reads or writes, parses the value again every time a header is looked at, and
folds it again every time a message is written.  For the thousands of similar messages the
service reads and writes, that is most of the cost of handling mail.  :class:`Headers`
keeps what it made; the messages, read or written, are the same to the byte (tests compare
them with the standard registry's).  Pure: no I/O.

Kept because it is measured: ``bench/text_ab.py`` builds 1,000 invitation emails and reads
them back with this registry and with the standard ``email.policy`` in one run: about 2.5
times as fast together (build 2.1x, read 2.9x; 200 emails: 8x; this 2-core machine,
December 2026), the same bytes.
"""

from __future__ import annotations

import threading
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.policy import Policy
from typing import Any

__all__ = ["BUILD_POLICY", "HEADERS", "READ_POLICY", "Headers"]


class _FoldOnce:
    """A header that folds itself once per kind of output (line length, UTF-8, line end).

    Parsed headers never change, and folding reads only those three policy settings
    (``email._header_value_parser``), so a header remembered by :class:`Headers` and sent
    in many messages is folded once.
    """

    def fold(self, *, policy: Policy) -> str:
        key = (policy.max_line_length, getattr(policy, "utf8", False), policy.linesep)
        folds: dict[tuple[int | None, bool, str], str] = self.__dict__.setdefault("_folds", {})
        found = folds.get(key)
        if found is None:
            found = folds[key] = super().fold(policy=policy)  # type: ignore[misc]
        return found


class Headers(HeaderRegistry):
    """The standard header registry and parser, with what it makes remembered.

    ``HeaderRegistry`` builds a new class with ``type()`` for every header read or written
    (and for every ``max_count`` check), then parses the value, which together dominate the
    cost of parsing and building messages.  A header's class depends on its name alone and
    the parsed header (an immutable ``str`` subclass) on its name and text alone, so handing
    out the ones made before changes nothing but the time taken.  Content types, transfer
    encodings and the like repeat from message to message; the memory is bounded.
    """

    KEEP = 1024  # parsed headers remembered; forgotten all at once when full

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._parsed: dict[tuple[str, str], BaseHeader] = {}
        self._lock = threading.Lock()

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        with self._lock:
            super().map_to_type(name, cls)
            self._classes.clear()
            self._parsed.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            # What HeaderRegistry.__getitem__ makes, with folding remembered.
            cls = self.registry.get(key, self.default_class)
            made = type("_" + cls.__name__, (_FoldOnce, cls, self.base_class), {})
            self._classes[key] = made
        return made

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is not str:  # an Address or a header object: parse as given
            return super().__call__(name, value)
        key = (name, value)
        found = self._parsed.get(key)
        if found is None:
            found = super().__call__(name, value)
            with self._lock:
                if len(self._parsed) >= self.KEEP:
                    self._parsed.clear()
                self._parsed[key] = found
        return found


HEADERS = Headers()
#: Reading: the rules of ``policy.default``, with headers remembered.
READ_POLICY = policy.default.clone(header_factory=HEADERS)
#: Building: 7-bit transfer encodings so no relay needs 8BITMIME; CRLF line ends.
BUILD_POLICY = policy.SMTP.clone(cte_type="7bit", header_factory=HEADERS)
