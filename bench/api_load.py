"""Load test of the service API: ``lapor serve`` in its own process, the load from another one
on 127.0.0.1, a bounded number of cases, every request sent twice.

    .venv/bin/python bench/api_load.py                       # 2,000 cases, SQLite and PostgreSQL
    .venv/bin/python bench/api_load.py --cases 200 --workers 1 --postgres none   # a quick look

The load generator is ``bench/loadgen`` (Go, standard library only, built here with ``go build``
into ``~/.cache/lapor-sla/loadgen``): it shares the two cores with the server it measures, and
the asyncio + httpx generator it replaced spent as much CPU per request as the server did. Per
case, at most ``--concurrency`` cases in flight, it sends: ``POST /v1/complaints`` with an
``Idempotency-Key`` as a channel, the same request again (a retry: 200, the same case,
``replayed``); ``POST .../signals/verify`` with an ``Idempotency-Key`` as Admin Nasional, and
again; ``GET /v1/complaints/{id}``, and again. A request that fails in transport, or answers
429/502/503/504, is retried with the same key. After the run the database must hold exactly the
cases started, each with two history records (started, verify): none lost, none duplicated.

Every figure stands beside baselines of the same run, as ratios (the machine is shared and
noisy): ``GET /healthz`` through the same server and generator (the server's floor: HTTP, no
database), and the same six calls per case through the embedded runtime in this process with
no HTTP (``engine.faces.sdk.Client``, one call after the other). CPU seconds of the server and
of the generator are given per request: what the two cores were spent on.

``LAPOR_API_PROFILE=FILE`` in the environment makes each server worker write a cProfile of all
its threads to ``FILE.<pid>`` (``engine/faces/api/profiling.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMPLAINT = {
    "category": "kesehatan",
    "region": "ID-JK",
    "channel": "web",
    "description": "Puskesmas Kecamatan Tebet tutup pada jam layanan.",
}
VERIFY = {"data": {"agency": "kemenkes"}}
PROFILE_ENV = "LAPOR_API_PROFILE"
CHANNEL_ENV, ADMIN_ENV = "LAPOR_LOAD_CHANNEL_KEY", "LAPOR_LOAD_ADMIN_KEY"


# --- the load generator (its own process: bench/loadgen, Go) ---------------------------------

LOADGEN_SOURCE = ROOT / "bench" / "loadgen"
LOADGEN_BINARY = Path.home() / ".cache" / "lapor-sla" / "loadgen" / "loadgen"


def build_loadgen() -> Path:
    """``bench/loadgen`` built (Go's build cache makes a rebuild of unchanged source quick)."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("the load generator needs Go (`go` on PATH), as the Temporal CLI does")
    LOADGEN_BINARY.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        [go, "build", "-o", str(LOADGEN_BINARY), "."],
        cwd=LOADGEN_SOURCE, capture_output=True, text=True, timeout=600, check=False,
        env=os.environ | {"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
    )  # fmt: skip
    if built.returncode != 0:
        raise SystemExit(f"go build bench/loadgen failed:\n{built.stderr[-2000:]}")
    return LOADGEN_BINARY


def _percentiles(latencies: list[float]) -> dict[str, float]:
    """The embedded baseline's percentiles, as the generator computes its own."""
    ordered = sorted(latencies)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


def _percent_rounded(found: dict[str, Any]) -> dict[str, Any]:
    for name in ("seconds", "requests_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        found[name] = round(found[name], 3 if name == "seconds" else 2)
    found["generator_cpu_s"] = round(found["generator_cpu_s"], 2)
    return found


# --- the server, the keys, the database ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _lapor(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "engine.faces.cli.main", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"lapor {args[0]} failed: {done.stderr[-2000:]}")
    return done.stdout


def _env(identity_key: str) -> dict[str, str]:
    from engine.runtime.identity import KEY_ENV

    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           KEY_ENV: identity_key}  # fmt: skip
    if os.environ.get(PROFILE_ENV):  # the server profiles itself (engine/faces/api/profiling.py)
        env[PROFILE_ENV] = os.environ[PROFILE_ENV]
    return env


def _make_keys(env: dict[str, str], url: str) -> tuple[str, str]:
    """A channel key and an Admin Nasional key, made as an operator makes them."""
    made = [
        json.loads(_lapor(env, "keys", "create", "--role", role, "--db", url, "--json"))["key"]
        for role in ("channel", "admin_nasional")
    ]
    return made[0], made[1]


def _cpu_seconds(root: int) -> float:
    """User + system CPU of process ``root`` and its descendants so far (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, wanted = 0.0, {root}
    while wanted:
        pid = wanted.pop()
        total += used.get(pid, 0.0)
        wanted |= {child for child, parent in parents.items() if parent == pid}
    return total


@contextmanager
def served(env: dict[str, str], url: str, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """``lapor serve`` over ``url`` on a free port; its base URL and process id while it runs."""
    import httpx

    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.faces.cli.main", "serve", "--db", url,
             "--port", str(port), "--workers", str(workers),
             "--rate-limit", "100000000/minute", "--log-json"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"lapor serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(0.5 * workers)  # every worker process up, not only the first to answer
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: a clean exit (a profile is written)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _generate_from_another_process(
    env: dict[str, str], mode: str, base: str, cases: int, concurrency: int, prefix: str
) -> dict[str, Any]:
    done = subprocess.run(
        [str(LOADGEN_BINARY), "-mode", mode, "-url", base, "-cases", str(cases),
         "-concurrency", str(concurrency), "-prefix", prefix,
         "-start-body", json.dumps({"data": COMPLAINT}), "-verify-body", json.dumps(VERIFY)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout)
    return _percent_rounded(found)


def _fresh_database(kind: str, folder: Path, name: str, postgres: Any) -> str:
    from engine.sql.migrations import upgrade

    url = f"sqlite:///{folder / name}.db" if kind == "sqlite" else postgres.create_database()
    upgrade(url)
    return str(url)


def _check_database(url: str, case_ids: list[str], cases: int) -> dict[str, Any]:
    """Exactly ``cases`` cases, the ones the generator was answered, two records each."""
    from sqlalchemy import func, select

    from engine.sql import store, tables

    engine = store.open_engine(url, create=False)
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(select(tables.cases.c.id)).scalars())
            per_case = dict(
                conn.execute(
                    select(tables.history.c.case_id, func.count()).group_by(
                        tables.history.c.case_id
                    )
                ).all()
            )
    finally:
        engine.dispose()
    answered = set(case_ids)
    return {
        "cases_in_database": len(stored),
        "lost": cases - len(answered & stored),
        "duplicated_or_unexpected": len(stored - answered) + (len(case_ids) - len(answered)),
        "wrong_history_length": sum(1 for c in stored if per_case.get(c) != 2),
        "ok": len(stored) == cases == len(answered) and stored == answered
        and all(per_case.get(c) == 2 for c in stored),
    }  # fmt: skip


def embedded_baseline(url: str, cases: int) -> dict[str, Any]:
    """The same six calls per case through the embedded runtime in this process (the SDK's
    ``Client``), with no HTTP: starts keyed, each retried; verify keyed, retried; status twice."""
    from engine.faces.sdk import Client

    client = Client(url, project=ROOT)
    latencies: list[float] = []
    try:
        began = time.perf_counter()
        for index in range(cases):
            for _ in range(2):
                t = time.perf_counter()
                started = client.start("sp4n-lapor", COMPLAINT, key=f"sdk-start-{index}")
                latencies.append(time.perf_counter() - t)
            for _ in range(2):
                t = time.perf_counter()
                done = client.signal(
                    started.case_id, "verify", actor="admin:nasional",
                    data=VERIFY["data"], key=f"sdk-verify-{index}",
                )  # fmt: skip
                latencies.append(time.perf_counter() - t)
                assert done.accepted, done.reason
            for _ in range(2):
                t = time.perf_counter()
                client.status(started.case_id)
                latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - began
    finally:
        client.close()
    return {
        "calls": len(latencies),
        "seconds": round(seconds, 3),
        "calls_per_s": round(len(latencies) / seconds, 1),
        **_percentiles(latencies),
    }


def _durable_postgres() -> Any:
    """The throwaway server ``bench/run.py --postgres auto`` uses: PostgreSQL's durable
    defaults (fsync, synchronous commit), stopped at exit."""
    import atexit

    from tests.runtime.postgres import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL binaries missing: run scripts/ensure-postgres.sh")
    server = PostgresServer(binaries, durable=True)
    atexit.register(server.stop)
    return server


def _say(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def run_backend(kind: str, args: argparse.Namespace, folder: Path, postgres: Any) -> dict[str, Any]:
    from engine.runtime.identity import new_key

    env = _env(new_key())
    figures: dict[str, Any] = {}
    if not args.no_baseline:
        _say(f"{kind}: embedded runtime in process, no HTTP ({args.cases} cases)")
        url = _fresh_database(kind, folder, "baseline", postgres)
        os.environ.update({k: v for k, v in env.items() if k != "PATH"})
        figures["embedded_no_http"] = embedded_baseline(url, args.cases)
    for workers in args.workers:
        url = _fresh_database(kind, folder, f"served-{workers}", postgres)
        channel, admin = _make_keys(env, url)
        log = folder / f"{kind}-{workers}.log"
        with served(env, url, workers, log) as (base, pid):
            row: dict[str, Any] = {}
            if not args.no_baseline:
                _say(f"{kind}, --workers {workers}: GET /healthz x {args.cases * 6}")
                cpu = _cpu_seconds(pid)
                row["healthz"] = _generate_from_another_process(
                    env, "healthz", base, args.cases, args.concurrency, "h"
                )
                row["healthz"]["server_cpu_s"] = round(_cpu_seconds(pid) - cpu, 2)
            _say(f"{kind}, --workers {workers}: {args.cases} cases x 6 requests")
            load_env = env | {CHANNEL_ENV: channel, ADMIN_ENV: admin}
            cpu = _cpu_seconds(pid)
            load = _generate_from_another_process(
                load_env, "cases", base, args.cases, args.concurrency, "load"
            )
            load["server_cpu_s"] = round(_cpu_seconds(pid) - cpu, 2)
        for figures_of_run in (row.get("healthz"), load):
            if figures_of_run is not None:  # CPU per request: what the 2 cores are spent on
                for side in ("server", "generator"):
                    figures_of_run[f"{side}_cpu_ms_per_request"] = round(
                        1000 * figures_of_run[f"{side}_cpu_s"] / figures_of_run["requests"], 2
                    )
        load["database"] = _check_database(url, load.pop("case_ids"), args.cases)
        row["cases"] = load
        if "healthz" in row:
            row["ratio_to_healthz"] = round(
                load["requests_per_s"] / row["healthz"]["requests_per_s"], 3
            )
        if "embedded_no_http" in figures:
            row["ratio_to_embedded"] = round(
                load["requests_per_s"] / figures["embedded_no_http"]["calls_per_s"], 3
            )
        row["target_met"] = load["requests_per_s"] >= 1000 and load["p99_ms"] < 50
        figures[f"workers_{workers}"] = row
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=2000, help="cases (6 requests each)")
    parser.add_argument("--concurrency", type=int, default=16, help="cases in flight")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="lapor serve --workers"
    )
    parser.add_argument(
        "--postgres", default="auto", metavar="URL",
        help="'auto' (a throwaway server), a scratch server's URL, or 'none'",
    )  # fmt: skip
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-baseline", action="store_true", help="the load test only")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "cases": args.cases,
        "requests_per_case": 6,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
    }
    build_loadgen()
    postgres = None
    if args.postgres == "auto":
        postgres = _durable_postgres()
    elif args.postgres != "none":
        postgres = _UrlServer(args.postgres)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        backends = ([] if args.no_sqlite else ["sqlite"]) + ([] if postgres is None else ["pg"])
        for kind in backends:
            name = "sqlite" if kind == "sqlite" else "postgresql"
            results[name] = run_backend(kind, args, Path(tmp), postgres)
            ok = ok and all(
                row["cases"]["database"]["ok"] and not row["cases"]["errors"]
                for key, row in results[name].items()
                if key.startswith("workers_")
            )
    results["ok"] = ok
    print(json.dumps(results, indent=2))
    if not ok:
        raise SystemExit(1)


class _UrlServer:
    """A PostgreSQL server the operator gave: each database it is asked for starts empty."""

    def __init__(self, url: str) -> None:
        self._url = url

    def create_database(self) -> str:
        from engine.sql import store, tables

        engine = store.open_engine(self._url)
        tables.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        engine.dispose()
        return self._url


if __name__ == "__main__":
    main()
