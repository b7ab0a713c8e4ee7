"""Coverage-guided fuzzing of the inbound path with atheris (libFuzzer), for `make fuzz`.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python -m tests.fuzz.atheris_inbound -max_total_time=600

Each input goes through :func:`ptm_sync.core.imip.read.extract` and then the whole pipeline,
:func:`ptm_sync.app.channels.replies.process`, on a seeded school in a throw-away SQLite database.
The invariants are those of ``tests/fuzz/test_fuzz_inbound.py``: the reader raises
nothing but ``Unusable``; the pipeline returns an outcome (never an exception, never
``internal-error``).  libFuzzer's own guards catch hangs (``-timeout``, 5 s here) and
memory (``-rss_limit_mb``).  The initial corpus is the fixtures and the school's own
replies; a failing input is written to ``tests/fuzz/corpus/atheris-…``, which the short
run in `make test` replays from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ptm_sync", "email", "icalendar"]):
    from ptm_sync.app.channels.replies import process
    from ptm_sync.core import imip
    from ptm_sync.core.errors import Unusable

from ptm_sync.adapters.store import Database
from tests.fuzz.mutations import CORPUS
from tests.fuzz.test_fuzz_inbound import check, seeds_for
from tests.support.booking import TZ, SeededSchool

DEFAULTS = ["-timeout=5", "-rss_limit_mb=2048", "-max_len=262144"]


def main() -> None:
    logging.disable(logging.CRITICAL)  # the safety net logs tracebacks; check() fails them
    work = Path(tempfile.mkdtemp(prefix="ptm-fuzz-"))
    db = Database(f"sqlite:///{work / 'ptm.db'}")
    db.migrate()
    school = SeededSchool.create(db)
    seeds = work / "seeds"
    seeds.mkdir()
    for index, raw in enumerate(seeds_for(school)):
        (seeds / f"seed-{index:03d}.eml").write_bytes(raw)
    CORPUS.mkdir(exist_ok=True)

    def one_input(data: bytes) -> None:
        try:
            with contextlib.suppress(Unusable):
                imip.extract(data, tz=TZ)
            check(process(db, school.config, data, now=school.now, video=school.video))
        except BaseException:
            # Saved here too: libFuzzer does not always get to write its artifact.
            name = f"atheris-found-{hashlib.sha256(data).hexdigest()[:16]}"
            (CORPUS / name).write_bytes(data)
            raise

    args = [sys.argv[0], *DEFAULTS, f"-artifact_prefix={CORPUS}/atheris-", *sys.argv[1:]]
    if not any(not a.startswith("-") for a in sys.argv[1:]):
        args.append(str(seeds))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
