"""``bench/api_load.py`` still runs end to end: a handful of cases through a real server over
SQLite, its JSON result complete and its checks passed. Not a timed test: the figures of so
small a run mean nothing and are not looked at."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.lapor_process import ROOT


def test_the_load_benchmark_runs_and_finds_every_case_once() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api_load.py"), "--cases", "4",
         "--concurrency", "2", "--workers", "1", "--postgres", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["ok"] is True
    row = result["sqlite"]["workers_1"]
    assert row["cases"]["requests"] == 4 * 6 and row["cases"]["errors"] == []
    assert row["cases"]["database"] == {
        "cases_in_database": 4,
        "lost": 0,
        "duplicated_or_unexpected": 0,
        "wrong_history_length": 0,
        "ok": True,
    }
    assert row["healthz"]["requests"] == 4 * 6
    assert result["sqlite"]["embedded_no_http"]["calls"] == 4 * 6
    assert {"p50_ms", "p95_ms", "p99_ms", "requests_per_s"} <= set(row["cases"])
