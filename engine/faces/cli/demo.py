"""``lapor demo``: the project's main job on the embedded runtime (``engine.apps.demo``)."""

from __future__ import annotations

import os
import resource
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from engine.faces.cli.project_option import ProjectDir, use_project
from engine.runtime.contract import Runtime

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        complaints: Annotated[int, typer.Option(help="How many complaints to generate.")] = 20_000,
        db: Annotated[
            str,
            typer.Option(
                help="Database URL, recreated for each run: only one the demo made itself, or "
                "an empty one (see --force)."
            ),
        ] = "sqlite:///lapor-demo.db",
        force: Annotated[
            bool,
            typer.Option("--force", help="Replace --db even if the demo did not create it."),
        ] = False,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 1708,
        memory: Annotated[
            bool, typer.Option("--memory", help="Run on the in-memory runtime instead (no DB).")
        ] = False,
        processes: Annotated[
            int | None,
            typer.Option(
                min=1,
                help="SQLite: split the cases over this many processes, one database file; "
                f"the report is the same. Default: one per core, at most {_MAX_AUTO_PROCESSES} "
                "(1 with --memory or PostgreSQL).",
            ),
        ] = None,
        project: ProjectDir = None,
    ) -> None:
        """Run a synthetic national stream of complaints on a virtual clock and report on it."""
        from engine.apps.demo.driver import DEMO_END, DEMO_START, DemoStats, run_demo
        from engine.apps.demo.population import Population
        from engine.apps.demo.report import render_report
        from engine.apps.demo.shards import run_sharded_demo
        from engine.definitions.loader import load_models
        from engine.runtime.clock import VirtualClock
        from engine.runtime.collector import tune_for_long_runs
        from engine.runtime.identity import KeyRing
        from engine.sql.store import safe_url

        if complaints < 1:
            raise typer.BadParameter("give at least one complaint", param_hint="--complaints")
        sqlite_file = not memory and db.startswith("sqlite")
        if processes is None:
            processes = _cores() if sqlite_file else 1
        if processes > 1 and not sqlite_file:
            raise typer.BadParameter(
                "shard processes are for an SQLite file (PostgreSQL needs none)",
                param_hint="--processes",
            )
        found = use_project(project)
        models = load_models(found.workflows, found.policies)
        stats = DemoStats(complaints)
        clock = VirtualClock(DEMO_START)
        # The demo's reporters are invented; their identities are sealed under a key made for
        # this run and kept nowhere, so no demo database ever needs a key of the machine's.
        keyring = KeyRing.generate("demo")
        runtime: Runtime | None
        session: AbstractContextManager[Any]
        if memory:
            from engine.runtime.memory import MemoryRuntime

            runtime = MemoryRuntime(models, clock, observer=stats.observe, keyring=keyring)
            session = nullcontext()
        elif processes > 1:
            # Tables and definitions here; each shard process opens its own connections.
            _embedded(db, models, clock, stats, keyring, force=force).engine.dispose()
            runtime, session = None, nullcontext()
        else:
            embedded = _embedded(db, models, clock, stats, keyring, force=force)
            # One writer on a virtual clock: share transactions across slots (see session());
            # 5,000 decisions a commit keeps the reports held until it small.
            runtime, session = embedded, embedded.session(commit_every=5_000)
        tune_for_long_runs()
        console = Console(stderr=True)
        span = (DEMO_END - DEMO_START).total_seconds()
        began = time.perf_counter()
        with (
            session,
            Progress(
                TextColumn("[bold blue]simulating"),
                BarColumn(),
                TextColumn("{task.fields[day]}"),
                TextColumn("{task.fields[decisions]:>12,} decisions"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task("demo", total=span, day="", decisions=0)

            def show(moment: datetime, decisions: int | None = None) -> None:
                progress.update(
                    task,
                    completed=(moment - DEMO_START).total_seconds(),
                    day=f"{moment:%d %b %Y}",
                    decisions=stats.decisions if decisions is None else decisions,
                )

            population = Population(complaints, DEMO_START, seed=seed)
            peaks: list[float] = []
            if runtime is None:
                sources = (found.workflows, found.policies)
                sharded = run_sharded_demo(
                    db, sources, population, processes, progress=show, keyring=keyring
                )
                stats, peaks = sharded.stats, sharded.peak_rss_mib
            else:
                run_demo(runtime, population, progress=show)
        elapsed = time.perf_counter() - began
        render_report(
            stats,
            title=f"lapor demo · SP4N-LAPOR! · {DEMO_START:%d %b} – {DEMO_END:%d %b %Y}",
            elapsed_s=elapsed,
            console=Console(),
        )
        if peaks:
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            typer.echo(
                f"{processes} shard processes, peak RSS "
                + " + ".join(f"{peak:.0f}" for peak in peaks)
                + f" MiB; this process {own:.0f} MiB"
            )
        if not memory:
            typer.echo(
                f"Inspect any case: lapor status LAPOR-DEMO-{1:08d} --db {safe_url(db)}   "
                f"(or lapor history ...)"
            )


_MAX_AUTO_PROCESSES = 4  # SQLite has one writer: shards past a few only queue for it


def _cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return max(1, min(_MAX_AUTO_PROCESSES, len(os.sched_getaffinity(0))))


def _embedded(db: str, models: Any, clock: Any, stats: Any, keyring: Any, *, force: bool) -> Any:
    from engine.apps.demo.database import prepare_demo_database
    from engine.sql.bulk import BulkRuntime
    from engine.sql.store import open_engine

    prepare_demo_database(db, force=force)
    engine = open_engine(db, durable=False)  # a simulation, rebuilt on every run: see open_engine
    return BulkRuntime(engine, models, clock, observer=stats.observe, keyring=keyring)
