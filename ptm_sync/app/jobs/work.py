"""What a job is given and what it gives back: values shared by every job's work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ptm_sync.adapters.store import Database
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.config.settings import Config


@dataclass(frozen=True, slots=True)
class JobContext:
    """Everything one run of a job needs.  ``now`` (aware, UTC) is fixed for the run: each
    meeting is decided at it (the core never reads the clock)."""

    db: Database
    config: Config
    now: datetime
    video: VideoProvider


@dataclass(frozen=True, slots=True)
class Done:
    """What one run did.

    ``summary``: a sentence for people ("3 reminders queued"); ``queued``: it wrote outbox
    rows, which the caller delivers (a command at once, the daemon's workers);
    ``problem``: "" when all went well, else one sentence saying what could not be done
    (the run is then recorded as ``failed: <problem>``, the rest of its work kept).
    """

    summary: str
    queued: bool = False
    problem: str = ""

    @property
    def result(self) -> str:
        """The ``last_result`` of this run: ``ok`` or ``failed: <sentence>`` (DESIGN §7)."""
        return f"failed: {self.problem}" if self.problem else "ok"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 reminder``, ``3 reminders``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
