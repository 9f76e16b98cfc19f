"""``lapor`` commands over the embedded durable runtime: start, signal, status, history, audit,
run (the timer and outbox loop) and db upgrade.

Adapters over ``engine.faces.sdk.Client`` and ``EmbeddedRuntime``; no behaviour lives here. Every
command takes ``--db URL`` (default ``sqlite:///lapor.db`` in the current folder, or
``$LAPOR_DB``). Rejections exit 1 with the reason; input mistakes are ``LaporError``s, which
``engine.faces.cli.main.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import json
import signal as os_signal
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy import Engine
from typer.core import TyperGroup

from engine.domain.errors import LaporError
from engine.domain.events import instant
from engine.faces.cli.options import DEFAULT_DB, AsJson, Db, Temporal
from engine.faces.cli.project_option import ProjectDir, use_project
from engine.faces.presenting import printable

if TYPE_CHECKING:
    from typer import _click  # typer's own click, which its groups are typed with

    from engine.faces.sdk import Client
    from engine.sql.embedded import EmbeddedRuntime
    from engine.sql.outbox import OutboxDelivery

__all__ = ["DEFAULT_DB", "AsJson", "Db", "Temporal", "register"]


def register(app: typer.Typer) -> None:
    """Add the runtime commands (and the ``db`` group) to ``app``."""
    app.command("start")(start)
    app.command("signal")(signal_command)
    app.command("status")(status)
    app.command("history")(history)
    audit_app = typer.Typer(
        cls=_AuditGroup,
        no_args_is_help=True,
        help="Audit a case: `lapor audit CASE`, or `lapor audit replay CASE --temporal ADDR`.",
    )
    audit_app.command(_AuditGroup.default)(audit)
    audit_app.command("replay")(audit_replay)
    audit_app.command("checkpoint")(audit_checkpoint)
    from engine.faces.cli.verify import audit_verify

    audit_app.command("verify")(audit_verify)
    from engine.faces.cli.explain import register as register_explain

    register_explain(audit_app)
    from engine.faces.cli.export import register as register_export

    register_export(audit_app)
    app.add_typer(audit_app, name="audit")
    app.command("run")(run)
    db_app = typer.Typer(no_args_is_help=True, help="The runtime's database schema.")
    db_app.command("upgrade")(db_upgrade)
    app.add_typer(db_app, name="db")


def _client(db: str, temporal: str | None = None, project: Path | None = None) -> Client:
    from engine.faces.sdk import Client

    if temporal is not None:
        from workers.connection import TemporalTarget
        from workers.runtime import TemporalRuntime

        target = TemporalTarget.from_env(temporal)
        return Client(runtime=TemporalRuntime.connect(target), project=project)
    return Client(db, project=project)


def _read_json(text_or_path: str, what: str) -> dict[str, object]:
    """A JSON object: inline (text starting with ``{``) or read from a file (``@`` optional)."""
    if text_or_path.lstrip().startswith("{"):
        text, source = text_or_path, what
    else:
        path = Path(text_or_path.removeprefix("@"))
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise LaporError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise LaporError(
                f"{path}: not UTF-8 text (byte {exc.start}); save the {what} file as UTF-8"
            ) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise LaporError(
            f"{source}: nested far too deeply for {what} (a JSON object, please)"
        ) from None
    except ValueError as exc:
        raise LaporError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LaporError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value


def start(
    workflow: Annotated[str, typer.Option(help="Workflow name, e.g. sp4n-lapor.")],
    data: Annotated[str, typer.Option(help="JSON file with the intake fields (or inline JSON).")],
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    key: Annotated[
        str | None, typer.Option(help="Idempotency key: a retry is not a 2nd case.")
    ] = None,
    reporter: Annotated[
        str | None, typer.Option(help="JSON file with the reporter's identity (kept apart).")
    ] = None,
    case_id: Annotated[
        str | None, typer.Option("--case-id", help="Use this id instead of a generated one.")
    ] = None,
    project: ProjectDir = None,
    as_json: AsJson = False,
) -> None:
    """Open a case; prints its id (tracking number), and on stderr the reporter token.

    The token is what the reporter acts with (`lapor signal ... --actor reporter
    --reporter-token T`); hand it to the reporter only. A retry with the same --key prints the
    same one. --json prints both on stdout."""
    fields = _read_json(data, "--data")
    identity = _read_json(reporter, "--reporter") if reporter else None
    root = use_project(project).root  # a wrong --project fails before the database is opened
    with _client(db, temporal, root) as client:
        result = client.start(workflow, fields, reporter=identity, key=key, case_id=case_id)
    if not result.accepted:
        typer.echo(printable(f"rejected ({result.code}): {result.reason}"), err=True)
        raise typer.Exit(1)
    if as_json:
        answer = {"case_id": result.case_id, "reporter_token": result.reporter_token}
        typer.echo(json.dumps(answer | {"state": result.state, "status": result.status}))
        return
    typer.echo(result.case_id)
    if result.reporter_token is None:
        typer.echo(
            "note: no key ring ($LAPOR_KEY_FILE or $LAPOR_IDENTITY_KEY), so no reporter token: "
            "the reporter cannot act on this case",
            err=True,
        )
    else:
        typer.echo(f"reporter token: {result.reporter_token}", err=True)


def signal_command(
    case: Annotated[str, typer.Argument(help="The case id.")],
    name: Annotated[str, typer.Argument(help="The signal, e.g. verify, follow_up.")],
    actor: Annotated[str, typer.Option(help="ROLE:ID, e.g. admin:nasional, agency:kemenkes.")],
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    data: Annotated[str, typer.Option(help="The signal's fields as JSON (or a JSON file).")] = "{}",
    key: Annotated[str | None, typer.Option(help="Idempotency key for safe retries.")] = None,
    reporter_token: Annotated[
        str | None,
        typer.Option(
            envvar="LAPOR_REPORTER_TOKEN",
            help="As --actor reporter: the token `lapor start` handed out for this case.",
        ),
    ] = None,
) -> None:
    """Send a signal; prints the new status, or the rejection reason (exit 1)."""
    fields = _read_json(data, "--data")
    with _client(db, temporal) as client:
        result = client.signal(
            case, name, actor=actor, data=fields, key=key, reporter_token=reporter_token
        )
    if not result.accepted:
        typer.echo(printable(f"rejected ({result.code}): {result.reason}"), err=True)
        raise typer.Exit(1)
    again = " (already applied: same key)" if result.replayed else ""
    typer.echo(f"accepted: {result.state} ({result.status}){again}")


def status(
    case: Annotated[str, typer.Argument(help="The case id.")],
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    as_json: AsJson = False,
) -> None:
    """Where a case stands: state, agency, escalation, open clocks, allowed signals."""
    from engine.faces.presenting import local_time

    with _client(db, temporal) as client:
        view = client.status(case)
    if as_json:
        typer.echo(json.dumps(view, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{view['case_id']} · {view['workflow']} · {view['state']} ({view['status']})")
    if view["agency"]:
        typer.echo(f"  agency: {view['agency']}")
    if view["escalation_level"]:
        typer.echo(f"  escalation level {view['escalation_level']} ({view['escalated_to']})")
    if view["outcome"]:
        typer.echo(f"  closed: {view['outcome']} at {local_time(view['closed_at'])}")
    for clock in view["clocks"]:
        if clock["running"]:
            late = "  OVERDUE" if clock["overdue"] else ""
            if clock["provisional"]:
                late += "  (on a provisional calendar: this date may still move)"
            typer.echo(
                f"  clock {clock['name']}: due {local_time(clock['due_at'])} "
                f"(level {clock['level']}){late}"
            )
        else:
            typer.echo(f"  clock {clock['name']}: paused, {clock['remaining']} left")
    typer.echo(f"  allowed now: {', '.join(view['allowed_signals']) or 'nothing (closed)'}")


def history(
    case: Annotated[str, typer.Argument(help="The case id.")],
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
    as_json: AsJson = False,
) -> None:
    """Every recorded decision of a case, with its effects."""
    from engine.faces.presenting import history_lines

    with _client(db, temporal) as client:
        records = client.history(case)
        current = client.case(case)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False))
        return
    for line in history_lines(current, records):
        typer.echo(line)


class _AuditGroup(TyperGroup):
    """``lapor audit`` with subcommands, where a first word that is no subcommand is the case of
    the default one: ``lapor audit CASE`` stays what it always was, beside ``lapor audit replay``.
    """

    default = "case"

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def audit(
    case: Annotated[str, typer.Argument(help="The case id.")],
    db: Db = DEFAULT_DB,
    temporal: Temporal = None,
) -> None:
    """Replay a case's history under its pinned model; exit 1 on any difference.

    The default: `lapor audit CASE` is `lapor audit case CASE`.
    """
    with _client(db, temporal) as client:
        report = client.audit(case)
    if report.ok:
        typer.echo(f"ok: {report.records} record(s); chain intact; every decision re-derived")
        return
    for problem in report.problems:
        typer.echo(f"PROBLEM {problem}")
    raise typer.Exit(1)


def audit_replay(
    case: Annotated[str, typer.Argument(help="The case id.")],
    temporal: Annotated[
        str,
        typer.Option(
            "--temporal", envvar="LAPOR_TEMPORAL", help="The Temporal address (host:port)."
        ),
    ],
    namespace: Annotated[
        str | None,
        typer.Option(help="Temporal namespace (default: LAPOR_TEMPORAL_NAMESPACE or default)."),
    ] = None,
) -> None:
    """Audit a case on Temporal, run by run; exit 1 on any problem.

    Every run of the case's workflow is replayed with Temporal's Replayer (determinism), then the
    full record chain is verified and every decision re-derived. Needs a worker running: a
    finished run's records are read by a worker replaying it.
    """
    from workers.audit import audit_replay as run_audit
    from workers.connection import TemporalTarget
    from workers.runtime import TemporalRuntime

    backend = TemporalRuntime.connect(TemporalTarget.from_env(temporal, namespace=namespace))
    try:
        report = run_audit(backend, case)
    finally:
        backend.close()
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


def db_upgrade(db: Db = DEFAULT_DB) -> None:
    """Create or migrate the runtime's tables to the newest schema (idempotent)."""
    from engine.sql.migrations import upgrade

    upgrade(db)
    from engine.sql.store import safe_url

    typer.echo(f"ok: {safe_url(db)} is at the newest schema")


def run(
    db: Db = DEFAULT_DB,
    batch: Annotated[int, typer.Option(min=1, help="Timers per transaction.")] = 1000,
    interval: Annotated[float, typer.Option(min=0.0, help="Seconds to sleep when idle.")] = 1.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve Prometheus /metrics on 127.0.0.1:PORT."),
    ] = None,
    handler: Annotated[
        list[str] | None,
        typer.Option(
            help="Outbox delivery handler: log, webhook:URL, NAME[:ARG]; repeatable. Without "
            "one the outbox is kept, not delivered (see `lapor outbox`)."
        ),
    ] = None,
    deliver: Annotated[
        bool, typer.Option(help="Deliver the outbox here (--no-deliver: timers only).")
    ] = True,
    until: Annotated[
        str | None,
        typer.Option(
            help="Virtual clock: fire every timer due up to this instant, each at its own "
            "deadline, deliver, then exit (catch-up runs, tests). An instant after now only "
            "on a simulation (a demo database, or --beyond-now)."
        ),
    ] = None,
    beyond_now: Annotated[
        bool,
        typer.Option(
            "--beyond-now",
            help="Let --until pass the wall clock on this database: it is a simulation.",
        ),
    ] = False,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--log-console", help="Log format (default: auto).")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="SQLite: K/N fires only shard K of N (K = 0..N-1); run N processes, one per "
            "core, to fire in parallel."
        ),
    ] = None,
) -> None:
    """Fire due SLA timers and deliver the outbox until SIGINT/SIGTERM (or --until is reached).

    Safe to run more than once against one database: PostgreSQL workers split the due cases
    between them; SQLite workers take turns, or with --shard K/N work in parallel.
    """
    import structlog

    from engine.runtime import metrics
    from engine.runtime.clock import Clock, VirtualClock, WallClock
    from engine.runtime.collector import tune_for_long_runs
    from engine.runtime.logs import configure_logging
    from engine.sql.embedded import EmbeddedRuntime
    from engine.sql.store import open_engine

    configure_logging(json=log_json)
    log = structlog.get_logger("lapor.run")
    target: datetime | None = instant(until) if until else None
    clock: Clock = VirtualClock(target) if target is not None else WallClock()
    if target is not None and target > WallClock().now() and not beyond_now:
        from engine.apps.demo.database import is_demo_database

        if not is_demo_database(db):
            # Lapses recorded ahead of the real clock would be facts about a future that has
            # not happened, on a database real signals reach.
            raise LaporError(
                f"--until {until} is after now: on a live database that records lapses that "
                "have not happened; give --beyond-now if this database is a simulation"
            )
    engine = open_engine(db, create=False)
    runtime = EmbeddedRuntime(engine, {}, clock, batch_size=batch, shard=_shard(shard))
    tune_for_long_runs()
    delivery = _delivery(engine, runtime, handler) if deliver and handler else None
    if deliver and not handler:
        # Delivering to nowhere would mark every disposition, referral and reporter notice
        # delivered after a log line: without a handler the outbox waits for one instead.
        from engine.sql.outbox import backlog

        log.warning(
            "run.outbox_kept",
            pending=backlog(engine),
            hint="no --handler given: messages stay in the outbox; give --handler log or "
            "--handler webhook:URL to deliver them (lapor outbox list shows them)",
        )
    if metrics_port is not None:
        server = metrics.serve(metrics_port)
        log.info("run.metrics", port=server.server_port)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("run.stopping", signal=os_signal.Signals(signum).name)
        stop.set()

    previous = {
        signum: os_signal.signal(signum, request_stop)
        for signum in (os_signal.SIGINT, os_signal.SIGTERM)
    }
    log.info("run.started", db=engine.url.render_as_string(), batch=batch, until=until)
    _check_calendars(runtime, clock.now(), log)
    fired = 0
    try:
        while not stop.is_set():
            now = target if target is not None else clock.now()
            handled = runtime.fire_due(now, batch)
            fired += handled
            delivered = 0
            if delivery is not None:
                report = delivery.deliver_due(now)
                delivered = report.delivered + report.failed + report.dead + report.undeliverable
            if handled or delivered:
                log.info("run.batch", cases=handled, delivered=delivered, total=fired)
            if target is not None and not handled and not delivered:
                if not runtime.others_hold_due(target):
                    break  # caught up with the virtual clock: nothing is due, nothing to send
                # Due cases another worker holds (PostgreSQL's SKIP LOCKED passed them over):
                # not caught up yet; wait for that worker to commit or let go of them.
                log.info("run.waiting_for_other_workers", until=until)
                stop.wait(min(interval, 0.2))
            if target is None and handled < batch and delivered == 0:
                # Idle (a full batch means more is due: go on at once). Sleep until the next
                # timer wakes, at most ``interval``, which also bounds outbox retry latency.
                wake = runtime.next_wake()
                until_wake = interval if wake is None else (wake - clock.now()).total_seconds()
                stop.wait(min(interval, max(0.0, until_wake)))
    finally:
        for signum, handler_before in previous.items():
            os_signal.signal(signum, handler_before)
        engine.dispose()
        log.info("run.stopped", fired=fired)


def _check_calendars(runtime: EmbeddedRuntime, now: datetime, log: Any) -> None:
    """Warn (and set ``lapor_calendar_days_left``) when the calendar of open cases ends soon."""
    from engine.domain.calendar import calendar_runs_out, days_of_calendar_left, zone_for_region
    from engine.runtime import metrics

    today = now.astimezone(zone_for_region("ID-JK")).date()
    least: dict[str, int] = {}
    for model in runtime.open_case_models():
        left = days_of_calendar_left(model.calendar, today)
        least[model.name] = min(left, least.get(model.name, left))
        warning = calendar_runs_out(model.calendar, today)
        if warning:
            log.warning(
                "run.calendar_runs_out", workflow=model.name, model=model.hash[:12], hint=warning
            )
    for workflow, left in least.items():
        metrics.calendar_days_left.labels(workflow=workflow).set(left)


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    index, slash, count = text.partition("/")
    if not (slash and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise typer.BadParameter(
            f"{text!r}: write K/N with 0 <= K < N, e.g. 0/2", param_hint="--shard"
        )
    return int(index), int(count)


def _delivery(engine: Engine, runtime: EmbeddedRuntime, specs: list[str]) -> OutboxDelivery:
    """The outbox delivery of ``lapor run``. The handlers that look up at delivery get this
    process's runtime (the reporter's identity, opened with its key ring) and the agencies'
    webhook subscriptions (their secrets sealed by it); without a key ring they have nothing to
    open and refuse to load."""
    from engine.runtime.handlers import HandlerContext, load_handlers
    from engine.sql.outbox import OutboxDelivery
    from engine.sql.subscriptions import SubscriptionStore

    context = HandlerContext()
    if runtime.keyring is not None:
        context = HandlerContext(
            contacts=runtime.reporter,
            subscriptions=SubscriptionStore(engine, runtime.keyring).for_agency,
        )
    return OutboxDelivery(engine, load_handlers(specs, context))


def audit_checkpoint(
    db: Db = DEFAULT_DB,
    key: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PEM) to sign the checkpoint with.")
    ] = None,
    name: Annotated[
        str, typer.Option(help="The log's origin and the signing key's name.")
    ] = "lapor-sla",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write it here.")] = None,
) -> None:
    """Append every new record to the Merkle log and print a checkpoint (signed with --key).

    Keep it: `lapor audit verify --checkpoint FILE` later proves the log only grew since."""
    from engine.runtime.checkpoints import Checkpoint, NoteSigner
    from engine.sql import store
    from engine.sql.auditlog import log_root, sequence

    engine = store.open_engine(db, create=False)
    try:
        added = store.transact(engine, sequence, action="append records to the log")
        size, root = store.read(engine, log_root, action="read the log")
    finally:
        engine.dispose()
    checkpoint = Checkpoint(name, size, root)
    if key is not None:
        try:
            pem = key.read_bytes()
        except OSError as exc:
            raise LaporError(f"cannot read {key}: {exc.strerror}") from None
        signer = NoteSigner.from_pem(name, pem)
        text = signer.sign(checkpoint)
        typer.echo(f"verifier key: {signer.verifier_key}", err=True)
    else:
        text = checkpoint.body()
        typer.echo("note: unsigned (give --key ed25519.pem to sign it)", err=True)
    typer.echo(f"{added} record(s) appended; the log holds {size}", err=True)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
