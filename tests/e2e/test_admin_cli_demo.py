"""`demo --once` leaves nothing behind that its output points to (issue 9, item 7): its
temporary folder is removed, no path it printed is left dangling, and the addresses it
printed are marked as living only while it runs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import ptm_sync


def test_demo_once_removes_its_folder_and_prints_no_path_that_is_gone(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"  # the demo's temporary folder is made here (TMPDIR)
    temp.mkdir()
    # A process: the demo runs servers, and TMPDIR is read once per interpreter.
    result = ptm_sync(
        None, "demo", "--once", cwd=tmp_path, env={"TMPDIR": str(temp)}, timeout=180, process=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert list(temp.iterdir()) == []  # nothing left behind
    assert str(temp) not in out + result.stderr  # and no path into what was removed
    for path in re.findall(r"(?<![\w:/])/[\w./-]+", out):
        assert Path(path).exists() or not path.startswith(str(tmp_path)), path
    assert "Try it yourself" not in out  # nothing left to try it on
    assert "$ ptm-sync roster import teachers.csv families.csv" in out
    for line in out.splitlines():
        if "http://127.0.0.1" in line and line.split(":")[0] in ("Published page", "Health"):
            assert line.endswith("(while the demo runs)"), line
    assert out.rstrip().endswith("its temporary files are removed.")
