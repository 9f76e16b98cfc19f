"""Fixtures of the integration tests: real Temporal servers, provisioned on first use.

``temporal_servers`` runs ``scripts/temporal-server.sh`` once per session (through
``workers.servers.ensure_servers``): the first run on a fresh machine builds the Temporal CLI
with Go and fetches the Java test server from Maven Central, which takes minutes; later runs
reuse the cache under ``${LAPOR_CACHE:-~/.cache/lapor-sla}/temporal`` and return at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workers import servers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "temporal: needs the real Temporal servers (provisioned by scripts/temporal-server.sh)",
    )


@pytest.fixture(scope="session")
def temporal_servers() -> tuple[Path, Path]:
    """``(dev server binary, test server launcher)``, provisioning them if needed."""
    return servers.ensure_servers()
