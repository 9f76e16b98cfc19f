"""lapor-sla on Temporal: one worker's case throughput beside the embedded runtime's, and how much
faster than real time a 60-day SLA runs on the time-skipping test server.

    .venv/bin/python bench/temporal.py                # one to two minutes here
    .venv/bin/python bench/temporal.py --cases 1000 --concurrency 100

1. Lifecycles: ``--cases`` complaints, each started and taken through the full on-time path
   (verify → follow_up → complete → confirm: five decisions, four of them notifying someone) and
   waited on until its workflow has ended. On Temporal: ``lapor temporal dev`` (state in memory;
   ``--db-file`` for a SQLite file) and ONE ``lapor worker`` process, driven ``--concurrency``
   cases at a time from this process. The embedded runtime does the same lifecycles in the same
   run on a SQLite file, one transaction per decision (the SDK's shape), and group-committed
   1000 at a time (the demo's shape).
2. Time skipping: on the Java test server, the shipped scenario ``long-hold-never-lapses`` (63
   days) and one case whose 60-working-day completion clock (the ``field_exam`` tier) lapses and
   climbs the agency ladder to Ombudsman RI (about four months): simulated span against wall
   time.

Machines here are shared and noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.client import Client as TemporalClient  # noqa: E402

from engine.apps.scenarios import run_scenario  # noqa: E402
from engine.definitions.loader import load_models  # noqa: E402
from engine.domain.events import Actor, Signal  # noqa: E402
from engine.domain.model import Model  # noqa: E402
from engine.runtime.clock import VirtualClock  # noqa: E402
from engine.runtime.contract import SignalCommand, StartCommand  # noqa: E402
from engine.runtime.logs import configure_logging  # noqa: E402
from engine.sql import store  # noqa: E402
from engine.sql.embedded import EmbeddedRuntime  # noqa: E402
from engine.sql.migrations import upgrade  # noqa: E402
from workers.testing import TimeSkippingHarness  # noqa: E402
from workers.workflow import CaseInput, CaseWorkflow  # noqa: E402

WIB = timezone(timedelta(hours=7))
#: Case time at the first start: Monday 2 Mar 2026, 09:00 WIB, so every run meets the same
#: calendar (the shipped one covers 2025-2027) whatever today's date is.
CASE_START = datetime(2026, 3, 2, 9, 0, tzinfo=WIB)
COMPLAINT = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
LIFECYCLE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("verify", "admin:nasional", {"agency": "kemenkes"}),
    ("follow_up", "agency:kemenkes", {"response": "Sedang ditindaklanjuti"}),
    ("complete", "agency:kemenkes", {"response": "Sudah diselesaikan"}),
    ("confirm", "reporter", {"rating": 5}),
)
DECISIONS_PER_CASE = 1 + len(LIFECYCLE)
CLI = [sys.executable, "-m", "engine.faces.cli.main"]
LONG_SCENARIO = ROOT / "policies" / "tests" / "long-hold-never-lapses.yaml"


def models() -> dict[str, Model]:
    return load_models(ROOT / "workflows", ROOT / "policies")


def note(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


# --- 1. lifecycles on Temporal ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{log.name}: did not come up:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    client: TemporalClient, queue: str, model: Model, cases: int, concurrency: int
) -> list[float]:
    """``cases`` full lifecycles, ``concurrency`` at a time; each case's latency, start to end."""
    params = json.dumps(model.to_data())
    offset = (CASE_START - datetime.now(UTC)).total_seconds()
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    prefix = f"BENCH-{uuid.uuid4().hex[:8]}"

    async def one(number: int) -> None:
        case_id = f"{prefix}-{number:08d}"
        async with gate:
            began = time.perf_counter()
            handle = await client.start_workflow(
                CaseWorkflow.run,
                CaseInput(params, case_id, dict(COMPLAINT), clock_offset_s=offset),
                id=case_id,
                task_queue=queue,
            )
            await handle.execute_update(CaseWorkflow.started)
            for name, actor, data in LIFECYCLE:
                await handle.execute_update(
                    CaseWorkflow.signal_case, args=[name, actor, data, None]
                )
            result = await handle.result()
            if result["state"] != "closed" or result["decisions"] != DECISIONS_PER_CASE:
                raise SystemExit(f"{case_id} ended as {result}")
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(one(i) for i in range(cases)))
    return latencies


def temporal_lifecycles(
    model: Model, cases: int, concurrency: int, folder: Path, db_file: bool
) -> dict[str, Any]:
    """``lapor temporal dev`` and ONE ``lapor worker``, each its own process as deployed; the
    load comes from this process."""
    port = _free_port()
    server_log, worker_log = folder / "temporal-dev.log", folder / "worker.log"
    dev = ["temporal", "dev", "--port", str(port), "--ui-port", str(_free_port())]
    if db_file:
        dev += ["--db-filename", str(folder / "temporal.db")]
    server = _spawn(dev, server_log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait_until(lambda: _listening(port), server, server_log)
        address, queue = f"127.0.0.1:{port}", "lapor-bench"
        worker = _spawn(
            ["worker", "--temporal", address, "--task-queue", queue, "--handler", "log"], worker_log
        )
        _wait_until(lambda: b"worker: " in worker_log.read_bytes(), worker, worker_log)

        async def measure() -> dict[str, Any]:
            client = await TemporalClient.connect(address)
            # A warm-up round first: the worker's first workflow tasks pay for its imports and
            # the sandbox's first load of the workflow module, which a long-running worker
            # pays once.
            await _drive(client, queue, model, concurrency, concurrency)
            assert worker is not None
            cpu = _cpu_seconds(worker.pid), _cpu_seconds(server.pid), _cpu_seconds(os.getpid())
            began = time.perf_counter()
            latencies = await _drive(client, queue, model, cases, concurrency)
            seconds = time.perf_counter() - began
            latencies.sort()
            return {
                "cases": cases,
                "seconds": seconds,
                "worker_cpu_s": _cpu_seconds(worker.pid) - cpu[0],
                "server_cpu_s": _cpu_seconds(server.pid) - cpu[1],
                "client_cpu_s": _cpu_seconds(os.getpid()) - cpu[2],
                "p50_case_s": latencies[len(latencies) // 2],
                "p95_case_s": latencies[int(len(latencies) * 0.95)],
            }

        return asyncio.run(measure())
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)


# --- 1'. the same lifecycles on the embedded runtime ------------------------------------------


def _embedded_lifecycles(
    model: Model, cases: int, folder: Path, name: str, batch: int | None
) -> dict[str, Any]:
    url = f"sqlite:///{folder / name}"
    upgrade(url)
    engine = store.open_engine(url)
    clock = VirtualClock(CASE_START)
    runtime = EmbeddedRuntime(engine, {model.name: model}, clock)
    ids = [f"BENCH-{i:08d}" for i in range(cases)]
    began = time.perf_counter()
    if batch is None:
        # The SDK's shape: one call, one decision, one transaction.
        for case_id in ids:
            runtime.start(model.name, case_id, dict(COMPLAINT))
            for signal_name, actor, data in LIFECYCLE:
                decision = runtime.signal(case_id, Signal(signal_name, Actor.parse(actor), data))
                assert decision.accepted, decision.rejection
    else:
        for chunk in range(0, cases, batch):
            part = ids[chunk : chunk + batch]
            runtime.execute([StartCommand(model.name, c, COMPLAINT) for c in part], CASE_START)
        for step, (signal_name, actor, data) in enumerate(LIFECYCLE, start=1):
            now = CASE_START + timedelta(minutes=step)
            event = Signal(signal_name, Actor.parse(actor), data)
            for chunk in range(0, cases, batch):
                decisions = runtime.execute(
                    [SignalCommand(c, event) for c in ids[chunk : chunk + batch]], now
                )
                assert all(d.accepted for d in decisions), decisions[0].rejection
    seconds = time.perf_counter() - began
    engine.dispose()
    return {"cases": cases, "seconds": seconds}


# --- 2. time skipping ---------------------------------------------------------------------------


def _ladder_case(harness: TimeSkippingHarness, all_models: Mapping[str, Model]) -> dict[str, Any]:
    """The 60-working-day SLA: verified with the ``field_exam`` completion tier and followed up,
    then never answered. Completion lapses after 60 working days (Nyepi, Idul Fitri and its cuti
    bersama, Waisak, Idul Adha skipped) and the agency ladder climbs 2, 3, 5 working days to
    Ombudsman RI. Every deadline is a Temporal timer the test server skips to."""
    start = datetime(2026, 3, 2, 10, 0, tzinfo=WIB)
    began = time.perf_counter()
    runtime = harness.factory(all_models, start)
    case_id = "LAPOR-BENCH-LADDER"
    runtime.start("sp4n-lapor", case_id, dict(COMPLAINT), at=start)
    verify, follow_up = LIFECYCLE[0], LIFECYCLE[1]
    for day, (name, actor, data) in ((1, verify), (3, follow_up)):
        if name == "verify":
            data = {**data, "tier": "field_exam"}
        decision = runtime.signal(
            case_id, Signal(name, Actor.parse(actor), data), at=start + timedelta(days=day)
        )
        assert decision.accepted, decision.rejection
    runtime.advance_to(start + timedelta(days=150))
    case = runtime.case(case_id)
    history = runtime.history(case_id)
    seconds = time.perf_counter() - began
    lapses = sum(e["kind"] == "lapsed" for r in history for e in r.effects)
    if case.state != "referred_to_ombudsman" or lapses != 4:
        raise SystemExit(f"ladder case ended in {case.state} after {lapses} lapses")
    # The span the case lived through (to its last decision), not the idle days skipped after.
    span = datetime.fromisoformat(history[-1].at) - start
    return {"simulated_days": span / timedelta(days=1), "seconds": seconds, "lapses": lapses}


def _scenario(harness: TimeSkippingHarness, all_models: Mapping[str, Model]) -> dict[str, Any]:
    began = time.perf_counter()
    result = run_scenario(LONG_SCENARIO, harness.factory, all_models)
    seconds = time.perf_counter() - began
    if not result.passed:
        raise SystemExit(f"{LONG_SCENARIO.name} failed on Temporal: {result.failures}")
    first, last = result.history[0], result.history[-1]
    span = datetime.fromisoformat(last.at) - datetime.fromisoformat(first.at)
    return {"simulated_days": span / timedelta(days=1), "seconds": seconds}


def time_skipping(all_models: Mapping[str, Model]) -> dict[str, Any]:
    configure_logging(level="warning")  # the in-process worker logs every delivered effect
    began = time.perf_counter()
    with TimeSkippingHarness() as harness:
        up = time.perf_counter() - began
        scenario = _scenario(harness, all_models)
        ladder = _ladder_case(harness, all_models)
    return {"server_start_s": up, "scenario": scenario, "ladder": ladder}


# --- report ---------------------------------------------------------------------------------


def _rate(result: Mapping[str, Any]) -> float:
    return float(result["cases"]) / float(result["seconds"])


def report(results: Mapping[str, Any]) -> str:
    temporal = _rate(results["temporal"])
    per_call = _rate(results["embedded_per_call"])
    batched = _rate(results["embedded_batched"])
    lines = [
        "| Lifecycles (start + 4 signals, until the case is closed) | cases/s | decisions/s "
        "| ratio to Temporal |",
        "|---|---:|---:|---:|",
    ]
    for label, rate in (
        (
            f"Temporal dev server ({'SQLite file' if results['db_file'] else 'in memory'}), "
            f"1 worker, {results['concurrency']} cases in flight",
            temporal,
        ),
        ("Embedded, SQLite, one transaction per decision", per_call),
        ("Embedded, SQLite, group commit of 1000", batched),
    ):
        lines.append(
            f"| {label} | {rate:,.1f} | {rate * DECISIONS_PER_CASE:,.0f} | {rate / temporal:.1f}× |"
        )
    t = results["temporal"]
    worker_ms = 1000 * float(t["worker_cpu_s"]) / int(t["cases"])
    server_ms = 1000 * float(t["server_cpu_s"]) / int(t["cases"])
    busy = float(t["worker_cpu_s"]) / float(t["seconds"])
    used = sum(float(t[k]) for k in ("worker_cpu_s", "server_cpu_s", "client_cpu_s"))
    used /= float(t["seconds"])
    lines += [
        "",
        f"Temporal, per case: worker {worker_ms:.0f} ms CPU (the worker kept {busy:.0%} of one "
        f"core busy), dev server {server_ms:.0f} ms CPU; case latency start to end p50 "
        f"{t['p50_case_s']:.2f} s, p95 {t['p95_case_s']:.2f} s.",
        f"Worker, dev server and this load generator used {used:.1f} of the machine's "
        f"{os.cpu_count()} cores (other processes are not counted).",
        f"If its own CPU were the only limit, one worker (one Python process: one core at most) "
        f"would top out near {1000 / worker_ms:.0f} cases/s "
        f"({DECISIONS_PER_CASE * 1000 / worker_ms:.0f} decisions/s).",
        "",
        "| Time skipping (Java test server) | simulated | wall | simulated / wall |",
        "|---|---:|---:|---:|",
    ]
    skipping = results["time_skipping"]
    for label, run in (
        (f"scenario {LONG_SCENARIO.stem}", skipping["scenario"]),
        ("60-working-day completion lapses, ladder to Ombudsman RI", skipping["ladder"]),
    ):
        days = float(run["simulated_days"])
        ratio = days * 86400 / float(run["seconds"])
        lines.append(f"| {label} | {days:.0f} days | {run['seconds']:.1f} s | {ratio:,.0f}× |")
    lines.append(f"\n(test server start-up, not counted above: {skipping['server_start_s']:.1f} s)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1000, help="lifecycles on each runtime")
    parser.add_argument("--concurrency", type=int, default=20, help="Temporal cases in flight")
    parser.add_argument(
        "--db-file",
        action="store_true",
        help="dev server keeps its state in a SQLite file (default: in memory)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    model = models()["sp4n-lapor"]
    results: dict[str, Any] = {"concurrency": args.concurrency, "db_file": args.db_file}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        note(f"Temporal: {args.cases} lifecycles, one worker")
        results["temporal"] = temporal_lifecycles(
            model, args.cases, args.concurrency, folder, args.db_file
        )
        note(f"embedded: {args.cases} lifecycles, one transaction per decision")
        results["embedded_per_call"] = _embedded_lifecycles(
            model, args.cases, folder, "per-call.db", None
        )
        note(f"embedded: {args.cases} lifecycles, group commit")
        results["embedded_batched"] = _embedded_lifecycles(
            model, args.cases, folder, "batched.db", 1000
        )
    note("time skipping: Java test server")
    results["time_skipping"] = time_skipping(models())
    print(report(results))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
