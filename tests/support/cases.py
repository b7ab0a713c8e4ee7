"""The failing inputs of ``tests/fixtures/cases`` (copies of ``shared/cases``), ready to use."""

from __future__ import annotations

from pathlib import Path

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "cases"

#: Placeholders of the case emails and the keyword that fills each.
PLACEHOLDERS = {"uid": b"@@UID@@", "organizer": b"@@ORGANIZER@@", "attendee": b"@@ATTENDEE@@"}


def case_bytes(name: str, **values: str) -> bytes:
    """The case file ``name`` with its placeholders replaced, byte for byte.

    ``uid``, ``organizer`` and ``attendee`` fill ``@@UID@@``, ``@@ORGANIZER@@`` and
    ``@@ATTENDEE@@`` (e.g. with a real invitation's UID, plus-addressed ORGANIZER and the
    guardian's address, for an end-to-end test through ``ptm-sync mail deliver``).

    Raises:
        KeyError: a keyword that is not a placeholder.
        ValueError: a placeholder left unfilled that the file contains.
    """
    data = (CASES / name).read_bytes()
    for key, value in values.items():
        data = data.replace(PLACEHOLDERS[key], value.encode("utf-8"))
    missing = [p.decode() for p in PLACEHOLDERS.values() if p in data]
    if missing:
        raise ValueError(f"{name}: fill {', '.join(missing)}")
    return data
