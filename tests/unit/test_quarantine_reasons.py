"""Every quarantine reason is one word of the contract, explained to staff (DESIGN §7)."""

from __future__ import annotations

from pathlib import Path

from ptm_sync.app.read.records import REASONS, explain
from ptm_sync.core.errors import QuarantineReason

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_reason_is_explained_and_every_explanation_is_a_reason() -> None:
    assert set(REASONS) == {r.value for r in QuarantineReason}
    assert all(explain(r) for r in QuarantineReason)


def test_the_reasons_the_readme_names_are_members() -> None:
    text = README.read_text(encoding="utf-8")
    for reason in ("unknown-uid", "sender-not-attendee", "too-large", "line-too-long"):
        assert f"`{reason}`" in text and QuarantineReason(reason)
