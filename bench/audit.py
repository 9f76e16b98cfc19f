"""Auditors' tools against a plain replay of the same records, in the same run.

    .venv/bin/python bench/audit.py                        # a 20,000-complaint demo database
    .venv/bin/python bench/audit.py --complaints 1000000   # the national year (the demo: ~10 min)
    .venv/bin/python bench/audit.py --db sqlite:///x.db    # an existing database

Each phase runs in a fresh process of its own on one core, streaming the histories from the
SQLite file (``SqlHistories``), and reports its time and its own peak RSS:

- ``read``: the histories decoded and nothing else (what every tool pays first);
- ``replay``: each record's event folded through ``decide`` under the pinned model, no checks
  (the baseline the issue names);
- ``verify``: ``lapor audit verify``'s work: chains, every decision re-derived and compared,
  the case row against the records;
- ``whatif``: ``lapor whatif``'s work against the shipped policy with a first follow-up of 3
  working days instead of 5.

Targets (issue 14): verify >= 100,000 records/s on one core; what-if of a 1,000,000-complaint
year in < 10 min (>= 1,667 cases/s) with memory that does not grow with the number of cases.
Machines here are shared and noisy: read the ratios to ``replay`` and ``read``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.policy_copies import project_with_follow_up  # noqa: E402

PHASES = ("read", "replay", "verify", "whatif")


def _demo(complaints: int, folder: Path) -> str:
    db = f"sqlite:///{folder / 'demo.db'}"
    print(f"… lapor demo --complaints {complaints:,}", file=sys.stderr, flush=True)
    demo = ["demo", "--complaints", str(complaints), "--db", db]
    subprocess.run(
        [sys.executable, "-m", "engine.faces.cli.main", *demo],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return db


def _phase(name: str, db: str, shorter: Path | None) -> dict[str, Any]:
    """One phase in this process; returns its counts, seconds and peak RSS."""
    from engine.domain.events import event_from_json, instant
    from engine.domain.machine import decide
    from engine.runtime.collector import tune_for_long_runs
    from engine.runtime.verification import VerifyTally, verify_histories
    from engine.sql import store
    from engine.sql.auditlog import SqlHistories

    tune_for_long_runs()  # as the CLI does
    engine = store.open_engine(db, create=False)
    cases = records = problems = changed = 0
    began = time.perf_counter()
    with engine.connect() as conn:
        source = SqlHistories(conn)
        if name == "read":
            for history in source.histories():
                cases += 1
                records += len(history.records)
        elif name == "replay":
            for history in source.histories():
                cases += 1
                records += len(history.records)
                model, case = history.model, None
                assert model is not None
                for record in history.records:
                    event = event_from_json(record.event)
                    case = decide(model, case, event, instant(record.at)).case
        elif name == "verify":
            tally = VerifyTally()
            problems = sum(1 for _ in verify_histories(source, tally=tally))
            cases, records = tally.cases, tally.records
        elif name == "whatif":
            from engine.apps.audit.whatif import WhatIf
            from engine.definitions.loader import load_model

            assert shorter is not None
            model = load_model(shorter / "workflows" / "sp4n-lapor.yaml", shorter / "policies")
            until = instant(str(conn.exec_driver_sql("SELECT max(at) FROM history").scalar()))
            run = WhatIf(model, until)
            changed = sum(1 for _ in run.run(source.histories()))
            cases = run.summary.overall["cases"]
            records = -1  # not counted: what-if reads the records, it does not re-derive them
        else:
            raise SystemExit(f"unknown phase {name!r}")
    seconds = time.perf_counter() - began
    engine.dispose()
    return {
        "phase": name,
        "cases": cases,
        "records": records,
        "problems": problems,
        "changed": changed,
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_phase(name: str, db: str, shorter: Path) -> dict[str, Any]:
    print(f"… {name}", file=sys.stderr, flush=True)
    done = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--db", db, "--shorter", str(shorter)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        # One core, as the target says: the phase is pinned to the first CPU it may use.
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--complaints", type=int, default=20_000)
    parser.add_argument("--db", help="an existing database instead of a fresh demo")
    parser.add_argument(
        "--only", nargs="+", choices=PHASES, default=PHASES, help="run these phases (default: all)"
    )
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--shorter", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.db, args.shorter)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = args.db or _demo(args.complaints, folder)
        shorter = project_with_follow_up(folder, "3 working days").parents[1]
        phases = {name: _run_phase(name, db, shorter) for name in PHASES if name in args.only}
    results: dict[str, Any] = {"phases": phases}
    for name, figures in phases.items():
        results[f"{name}_cases_per_s"] = figures["cases"] / figures["seconds"]
        if figures["records"] >= 0:
            results[f"{name}_records_per_s"] = figures["records"] / figures["seconds"]
    replay = phases.get("replay")
    for name in ("verify", "whatif"):
        if replay is not None and name in phases:
            results[f"{name}_ratio_to_replay"] = replay["seconds"] / phases[name]["seconds"]
    if "whatif" in phases:
        per_s = results["whatif_cases_per_s"]
        results["whatif_national_year_minutes_at_this_rate"] = 1_000_000 / per_s / 60
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
