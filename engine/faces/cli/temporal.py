"""``lapor`` Temporal commands: ``lapor temporal dev`` (a local dev server), ``lapor temporal
search-attributes`` (register them on a cluster), ``lapor worker``.

    lapor temporal dev --db-filename temporal.db      # the cached Temporal CLI, in the foreground
    lapor temporal search-attributes --temporal HOST:7233 [--namespace NS]   # once per namespace
    lapor worker --temporal 127.0.0.1:7233            # serves CaseWorkflow until SIGINT/SIGTERM

Adapters only: the server is the binary ``workers.servers`` provisions, the worker is
``workers.worker.case_worker``, delivering through the same handlers as ``lapor run``.
"""

from __future__ import annotations

import asyncio
import os
import signal as os_signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.runtime.collector import tune_for_long_runs
from engine.runtime.delivery import DeliveryHandler
from workers.connection import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, TemporalTarget

if TYPE_CHECKING:
    from engine.runtime.handlers import HandlerContext

__all__ = ["dev", "register", "register_search_attributes", "run_worker", "worker"]

TemporalAddress = Annotated[
    str, typer.Option("--temporal", envvar="LAPOR_TEMPORAL", help="Temporal address host:port.")
]
Namespace = Annotated[
    str, typer.Option(envvar="LAPOR_TEMPORAL_NAMESPACE", help="Temporal namespace.")
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="LAPOR_TEMPORAL_API_KEY",
        show_default=False,
        help="API key (Temporal Cloud); implies TLS. Prefer the environment variable.",
    ),
]
Tls = Annotated[
    bool,
    typer.Option("--tls", envvar="LAPOR_TEMPORAL_TLS", help="TLS with the system's root CAs."),
]
TlsCert = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert", envvar="LAPOR_TEMPORAL_TLS_CERT", help="Client certificate, PEM (mTLS)."
    ),
]
TlsKey = Annotated[
    Path | None,
    typer.Option("--tls-key", envvar="LAPOR_TEMPORAL_TLS_KEY", help="Client key, PEM (mTLS)."),
]
TlsCa = Annotated[
    Path | None,
    typer.Option("--tls-ca", envvar="LAPOR_TEMPORAL_TLS_CA", help="Server CA certificate, PEM."),
]


def register(app: typer.Typer) -> None:
    """Add ``temporal dev``, ``temporal search-attributes`` and ``worker`` to ``app``."""
    temporal_app = typer.Typer(no_args_is_help=True, help="Temporal servers: local and real.")
    temporal_app.command("dev")(dev)
    temporal_app.command("search-attributes")(register_search_attributes)
    app.add_typer(temporal_app, name="temporal")
    app.command("worker")(worker)


def dev_command(port: int, ui_port: int, db_filename: Path | None) -> list[str]:
    """The dev server's argv (the binary is provisioned first if missing)."""
    from workers import search_attributes, servers

    try:
        binary = servers.dev_server_path()
    except servers.ServersNotProvisionedError:
        binary, _ = servers.ensure_servers()
    argv = [str(binary), "server", "start-dev", "--ip", "127.0.0.1"]
    argv += ["--port", str(port), "--ui-port", str(ui_port)]
    if db_filename is not None:
        argv += ["--db-filename", str(db_filename)]
    # Registered at every start: the server adds what a (kept) database lacks.
    argv += search_attributes.dev_server_args()
    return argv


def dev(
    port: Annotated[int, typer.Option(help="Frontend (gRPC) port.")] = 7233,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Web UI port.")] = 8233,
    db_filename: Annotated[
        Path | None,
        typer.Option("--db-filename", help="SQLite file to keep state in (default: in memory)."),
    ] = None,
) -> None:
    """Run the Temporal dev server in the foreground (Ctrl-C stops it)."""
    argv = dev_command(port, ui_port, db_filename)
    os.execv(argv[0], argv)


def _handler_context(target: TemporalTarget, specs: Sequence[str]) -> HandlerContext:
    """What the worker's looking-up handlers read at delivery: for ``reporter-gateway``, the
    reporter's identity, queried from the case workflow (sealed in its start input) by a client
    of its own and opened with this process's key ring. Agencies' subscriptions live in the
    API's SQL database, which a worker does not open: ``agency-webhooks`` runs in ``lapor run``
    beside that database."""
    from engine.runtime.handlers import HandlerContext
    from engine.runtime.identity import KeyRing

    wanted = any(spec.strip().partition(":")[0] == "reporter-gateway" for spec in specs)
    keyring = KeyRing.from_env() if wanted else None
    if keyring is None:
        return HandlerContext()
    from workers.runtime import TemporalRuntime

    reader = TemporalRuntime.connect(target, keyring=keyring)
    return HandlerContext(contacts=reader.reporter)


async def run_worker(
    address: str = DEFAULT_ADDRESS,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    namespace: str = "default",
    stop: asyncio.Event | None = None,
    target: TemporalTarget | None = None,
    limits: Mapping[str, int | None] | None = None,
    handlers: Sequence[DeliveryHandler] = (),
) -> None:
    """Serve ``CaseWorkflow`` and its activities until ``stop`` is set (or SIGINT/SIGTERM).
    ``target`` (credentials, TLS) replaces ``address``, ``namespace`` and ``task_queue``."""
    from workers.worker import case_worker

    if target is None:
        target = TemporalTarget(address, namespace, task_queue)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[os_signal.Signals] = []
    for signum in (os_signal.SIGINT, os_signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (RuntimeError, ValueError):  # not the main thread: the caller sets ``stop``
            pass
    try:
        client = await target.connect()
        # shuts down (finishing tasks) on exit
        worker = case_worker(client, target.task_queue, handlers=handlers, **(limits or {}))
        async with worker:
            typer.echo(f"worker: {target.describe()} task queue={target.task_queue}", err=True)
            await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    typer.echo("worker: stopped", err=True)


def register_search_attributes(
    temporal: TemporalAddress = DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    api_key: ApiKey = None,
    tls: Tls = False,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
) -> None:
    """Register the case workflow's search attributes on a Temporal cluster (idempotent).

    Needed once per namespace before workers run there: a workflow that sets an attribute the
    server does not know fails its workflow tasks. `lapor temporal dev` registers them itself.
    """
    from workers import search_attributes

    target = TemporalTarget(
        temporal, namespace, DEFAULT_TASK_QUEUE, api_key, tls, tls_cert, tls_key, tls_ca
    )

    async def go() -> list[str]:
        client = await target.connect()
        return await search_attributes.register(client, namespace)

    added = asyncio.run(go())
    names = ", ".join(f"{k.name} ({search_attributes.type_name(k)})" for k in search_attributes.ALL)
    typer.echo(f"ok: {names} in namespace {namespace}")
    typer.echo(f"added: {', '.join(added)}" if added else "added: none (all were there)")


def worker(
    temporal: TemporalAddress = DEFAULT_ADDRESS,
    task_queue: Annotated[
        str,
        typer.Option("--task-queue", envvar="LAPOR_TEMPORAL_TASK_QUEUE", help="Task queue."),
    ] = DEFAULT_TASK_QUEUE,
    namespace: Namespace = "default",
    api_key: ApiKey = None,
    tls: Tls = False,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    max_cached_cases: Annotated[
        int | None,
        typer.Option(min=1, help="Cases kept in memory (SDK default 1000); others replay."),
    ] = None,
    max_workflow_tasks: Annotated[
        int | None, typer.Option(min=1, help="Concurrent workflow tasks (SDK default 100).")
    ] = None,
    max_activities: Annotated[
        int | None, typer.Option(min=1, help="Concurrent effect deliveries (SDK default 100).")
    ] = None,
    handler: Annotated[
        list[str] | None,
        typer.Option(
            help="Delivery handler: log, webhook:URL, NAME[:ARG]; repeatable, at least one."
        ),
    ] = None,
) -> None:
    """Run a Temporal worker for case workflows until SIGINT/SIGTERM."""
    target = TemporalTarget(
        temporal, namespace, task_queue, api_key, tls, tls_cert, tls_key, tls_ca
    )
    limits = {
        "max_cached_cases": max_cached_cases,
        "max_workflow_tasks": max_workflow_tasks,
        "max_activities": max_activities,
    }
    from engine.domain.errors import LaporError
    from engine.runtime.handlers import load_handlers

    if not handler:
        # A delivery no handler takes can only be retried until Temporal gives up on it: there
        # is no keeping it for later as the embedded outbox does, so the choice is explicit.
        raise LaporError(
            "lapor worker needs --handler: --handler webhook:URL (or a plug-in) to tell agencies, "
            "reporters and Ombudsman RI, or --handler log to only log what they should be told"
        )
    delivery = load_handlers(handler, _handler_context(target, handler))
    tune_for_long_runs()
    asyncio.run(run_worker(target=target, limits=limits, handlers=delivery))
    # ``lapor`` leaves without interpreter finalisation from here (``engine.faces.cli.main.run``).
