"""``lapor serve``: the HTTP service API (``engine.faces.api``) under uvicorn.

    lapor serve [--db URL | --temporal ADDR] [--host 127.0.0.1] [--port 8000] [--workers N]
    lapor serve --openapi docs/openapi.json      # write the OpenAPI document and exit

Uvicorn's access log stays off: it prints every query string. The API's own request log
(``engine.faces.api.guards.RequestLog``) writes method, path, status, duration and key id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.faces.cli.options import DEFAULT_DB, Db, Temporal
from engine.faces.cli.project_option import ProjectDir, use_project

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)


def serve(
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    rate_limit: Annotated[
        str, typer.Option(help="Requests per caller (API key, or address without one).")
    ] = "600/minute",
    body_limit: Annotated[int, typer.Option(min=1024, help="Largest request body, bytes.")] = (
        256 * 1024
    ),
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds before a 504.")] = 30.0,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--log-console", help="Log format (default: auto).")
    ] = None,
    openapi: Annotated[
        Path | None,
        typer.Option(help="Write the OpenAPI document (sorted JSON) to this file and exit."),
    ] = None,
    project: ProjectDir = None,
) -> None:
    """Serve the HTTP API: complaints, signals, status, history, tracking for reporters.

    Callers authenticate with keys from `lapor keys create`; --db holds them (and the cases,
    unless --temporal puts the cases on a Temporal server)."""
    if openapi is not None:
        from engine.faces.api.openapi import document_text
        from engine.faces.api.server import openapi_app

        openapi.write_text(document_text(openapi_app()), encoding="utf-8")
        typer.echo(f"wrote {openapi}")
        return
    import uvicorn

    from engine.faces.api.guards import RateLimiter
    from engine.faces.api.server import SETTINGS_ENV, ServeSettings, build_app
    from engine.runtime.logs import configure_logging

    RateLimiter(rate_limit)  # a malformed limit is an error now, not in each worker
    root = use_project(project).root
    settings = ServeSettings(
        db=db,
        temporal=temporal,
        project=str(root),
        rate=rate_limit,
        body_limit=body_limit,
        timeout=timeout,
        log_json=log_json,
    )
    configure_logging(json=log_json)
    build_app(settings)  # the database and definitions are checked before uvicorn binds
    os.environ[SETTINGS_ENV] = settings.to_env()
    options: dict[str, Any] = {
        "app": "engine.faces.api.server:app_from_env",
        "factory": True,
        "access_log": False,
        "log_config": None,  # uvicorn's lines go through our structlog configuration
        "server_header": False,
        "proxy_headers": False,  # the rate limit's address is the peer's, not a header's claim
    }
    if workers > 1:
        from engine.faces.api.processes import serve_processes

        serve_processes(host, port, workers, options)
        return
    uvicorn.run(host=host, port=port, **options)
