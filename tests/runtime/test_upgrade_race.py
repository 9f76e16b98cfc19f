"""Two `lapor db upgrade` on one fresh SQLite file take turns instead of one failing (before:
7 of 18 failed with "database is locked" in three rounds of six)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.sql import store
from engine.sql.migrations import current_revision

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_upgrades_of_a_fresh_file_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command = [sys.executable, "-m", "engine.faces.cli.main", "db", "upgrade", "--db", url]
    running = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in running]
    for process in running:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    assert [code for code, _ in results] == [0] * 6, [err for _, err in results]
    engine = store.open_engine(url)
    assert current_revision(engine) == "0010"
    engine.dispose()
