"""Locally provisioned Temporal servers for tests and local runs (no downloads at run time).

``scripts/temporal-server.sh`` builds both servers from the package registries once and caches
them under ``${LAPOR_CACHE:-~/.cache/lapor-sla}/temporal/``:

* the dev server: the official Temporal CLI (``cli-<ver>/temporal``), started by the Python SDK as
  ``temporal server start-dev ...`` through :meth:`WorkflowEnvironment.start_local`;
* the time-skipping test server: the Java ``io.temporal:temporal-test-server`` jar behind
  ``test-server-<ver>/launcher.sh``, started through
  :meth:`WorkflowEnvironment.start_time_skipping`.

Because both are passed to the SDK as ``*_existing_path``, the SDK never downloads anything.
The JVM takes longer to come up than the SDK's default 5 s readiness wait, so the helpers here pass
a longer startup timeout (the SDK keeps retrying the connection until it expires).

Both come up knowing the case workflow's search attributes (``workers.search_attributes``): the dev
server through ``--search-attribute`` flags, the test server through the operator service right
after it starts (it accepts no such flag). A workflow that sets an unknown attribute fails every
workflow task ("search attribute ... is not defined") instead of making progress.

One divergence of the Java test server is compensated here: it keeps an unset attribute as a null
payload where a real server deletes it, and the SDK's ``describe()`` cannot decode a null
``Datetime`` (``TypeError: fromisoformat``); ``_drop_unset_search_attributes`` strips them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import temporalio.converter
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
)
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from workers import search_attributes

__all__ = [
    "CLI_VERSION",
    "DEV_SERVER_STARTUP_TIMEOUT",
    "PROVISION_SCRIPT",
    "TEST_SERVER_STARTUP_TIMEOUT",
    "TEST_SERVER_VERSION",
    "ServersNotProvisionedError",
    "cache_dir",
    "dev_server_path",
    "ensure_servers",
    "start_dev_server",
    "start_time_skipping",
    "test_server_path",
]

#: Temporal CLI tag; the last one buildable with ``go install`` (keep in sync with the script).
CLI_VERSION = "1.5.1"
#: ``io.temporal:temporal-test-server`` version (keep the default in sync with the script).
TEST_SERVER_VERSION = os.environ.get("TEMPORAL_TEST_SERVER_VERSION") or "1.38.0"

#: The provisioning script, relative to the source checkout.
PROVISION_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "temporal-server.sh"

#: Readiness wait for the Go dev server (normally up in well under a second; SQLite in memory).
DEV_SERVER_STARTUP_TIMEOUT = timedelta(seconds=30)
#: Readiness wait for the Java test server (JVM start plus class loading; the SDK default is 5 s).
TEST_SERVER_STARTUP_TIMEOUT = timedelta(seconds=90)


class ServersNotProvisionedError(RuntimeError):
    """A Temporal server binary is missing from the cache; run the provisioning script."""


def cache_dir() -> Path:
    """The directory holding the servers: ``${LAPOR_CACHE:-~/.cache/lapor-sla}/temporal``.

    Mirrors the script's ``${LAPOR_CACHE:-...}``: an unset or empty ``LAPOR_CACHE`` means the
    default.
    """
    root = os.environ.get("LAPOR_CACHE") or str(Path.home() / ".cache" / "lapor-sla")
    return Path(root) / "temporal"


def _not_provisioned(what: str, path: Path) -> ServersNotProvisionedError:
    return ServersNotProvisionedError(
        f"{what} not provisioned: {path} is missing. Run `{PROVISION_SCRIPT}` "
        "(scripts/temporal-server.sh; needs go, java and mvn) or call "
        "workers.servers.ensure_servers()."
    )


def dev_server_path() -> Path:
    """Path of the cached Temporal CLI binary (the dev server); raises if not provisioned."""
    path = cache_dir() / f"cli-{CLI_VERSION}" / "temporal"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise _not_provisioned(f"Temporal CLI {CLI_VERSION} (dev server)", path)
    return path


def test_server_path() -> Path:
    """Path of the cached Java test-server launcher; raises if not provisioned."""
    home = cache_dir() / f"test-server-{TEST_SERVER_VERSION}"
    launcher = home / "launcher.sh"
    jar = home / f"temporal-test-server-{TEST_SERVER_VERSION}.jar"
    for path in (jar, home / "lib", launcher):
        if not path.exists():
            raise _not_provisioned(f"Temporal test server {TEST_SERVER_VERSION}", path)
    if not os.access(launcher, os.X_OK):
        raise _not_provisioned(f"Temporal test server {TEST_SERVER_VERSION}", launcher)
    return launcher


def ensure_servers() -> tuple[Path, Path]:
    """Provision both servers (idempotent; minutes the first time, instant afterwards).

    Runs ``scripts/temporal-server.sh`` (its progress goes to stderr) and returns
    ``(dev_server_path(), test_server_path())``.
    """
    if not PROVISION_SCRIPT.is_file():
        raise ServersNotProvisionedError(
            f"provisioning script {PROVISION_SCRIPT} not found (it ships with the source checkout)"
        )
    env = dict(os.environ, TEMPORAL_TEST_SERVER_VERSION=TEST_SERVER_VERSION)
    env["LAPOR_CACHE"] = str(cache_dir().parent)
    result = subprocess.run(
        ["sh", str(PROVISION_SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServersNotProvisionedError(
            f"{PROVISION_SCRIPT} failed with exit status {result.returncode}; see its stderr above"
        )
    return dev_server_path(), test_server_path()


@asynccontextmanager
async def start_dev_server(
    *,
    namespace: str = "default",
    port: int | None = None,
    data_converter: temporalio.converter.DataConverter = (
        temporalio.converter.DataConverter.default
    ),
    extra_args: Sequence[str] = (),
    log_level: str = "warn",
    startup_timeout: timedelta = DEV_SERVER_STARTUP_TIMEOUT,
) -> AsyncIterator[WorkflowEnvironment]:
    """Run the cached Temporal dev server (in-memory SQLite, no UI) for the ``async with`` body."""
    env = await WorkflowEnvironment.start_local(
        namespace=namespace,
        port=port,
        data_converter=data_converter,
        ui=False,
        search_attributes=search_attributes.ALL,
        dev_server_existing_path=str(dev_server_path()),
        dev_server_extra_args=list(extra_args),
        dev_server_log_level=log_level,
        dev_server_startup_timeout=startup_timeout,
    )
    async with env:
        yield env


@asynccontextmanager
async def start_time_skipping(
    *,
    port: int | None = None,
    data_converter: temporalio.converter.DataConverter = (
        temporalio.converter.DataConverter.default
    ),
    extra_args: Sequence[str] = (),
    startup_timeout: timedelta = TEST_SERVER_STARTUP_TIMEOUT,
) -> AsyncIterator[WorkflowEnvironment]:
    """Run the cached Java time-skipping test server for the ``async with`` body.

    ``extra_args`` reach the launcher after the port; the Java server accepts only
    ``--enable-time-skipping`` there (the launcher drops anything else, with a note on stderr).
    """
    env = await WorkflowEnvironment.start_time_skipping(
        port=port,
        data_converter=data_converter,
        test_server_existing_path=str(test_server_path()),
        test_server_extra_args=list(extra_args),
        test_server_startup_timeout=startup_timeout,
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        _drop_unset_search_attributes(env.client)
        yield env


def _drop_unset_search_attributes(client: Client) -> None:
    """Make ``client``'s describe calls see what a real server answers for unset attributes.

    The Java test server stores an upserted null (``SearchAttributeKey.value_unset()``) instead
    of deleting the attribute; a real server deletes it (temporalio/temporal#3903). Only this
    client's own service object is wrapped, and only the response is touched.
    """
    service = client.workflow_service
    describe = service.describe_workflow_execution

    async def describe_without_nulls(
        req: DescribeWorkflowExecutionRequest,
        retry: bool = False,
        metadata: Mapping[str, str | bytes] = {},
        timeout: timedelta | None = None,
    ) -> DescribeWorkflowExecutionResponse:
        response = await describe(req, retry=retry, metadata=metadata, timeout=timeout)
        fields = response.workflow_execution_info.search_attributes.indexed_fields
        for name in [n for n, p in fields.items() if p.metadata.get("encoding") == b"binary/null"]:
            del fields[name]
        return response

    service.describe_workflow_execution = describe_without_nulls  # type: ignore[method-assign]
