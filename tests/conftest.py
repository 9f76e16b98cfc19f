"""Shared fixtures: the shipped models, a way to run them on a virtual clock, and the real
Temporal servers.

``temporal_servers`` runs ``scripts/temporal-server.sh`` once per session (through
``workers.servers.ensure_servers``): the first run on a fresh machine builds the Temporal CLI
with Go and fetches the Java test server from Maven Central, which takes minutes; later runs
reuse the cache under ``${LAPOR_CACHE:-~/.cache/lapor-sla}/temporal`` and return at once.

The suite generates its own identity master key (``$LAPOR_IDENTITY_KEY``) for every runtime and
``lapor`` process it starts, and never reads a key file of the machine's (``$LAPOR_KEY_FILE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from engine.definitions.loader import load_models
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.identity import KEY_ENV, KEY_FILE_ENV, new_key
from engine.runtime.memory import MemoryRuntime
from workers import servers

WORKFLOW = "sp4n-lapor"

RuntimeFactory = Callable[[datetime], MemoryRuntime]


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The repository root (the folder holding ``workflows/`` and ``policies/``)."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models(project_root: Path) -> Mapping[str, Model]:
    return load_models(project_root / "workflows", project_root / "policies")


@pytest.fixture(scope="session")
def model(models: Mapping[str, Model]) -> Model:
    return models[WORKFLOW]


@pytest.fixture(scope="session")
def make_runtime(models: Mapping[str, Model]) -> RuntimeFactory:
    """``make_runtime(start)``: a fresh in-memory runtime whose virtual clock reads ``start``."""

    def build(start: datetime) -> MemoryRuntime:
        return MemoryRuntime(models, VirtualClock(start))

    return build


def pytest_configure(config: pytest.Config) -> None:
    os.environ.pop(KEY_FILE_ENV, None)
    os.environ[KEY_ENV] = new_key()
    config.addinivalue_line(
        "markers",
        "temporal: needs the real Temporal servers (provisioned by scripts/temporal-server.sh)",
    )


@pytest.fixture(scope="session")
def temporal_servers() -> tuple[Path, Path]:
    """``(dev server binary, test server launcher)``, provisioning them if needed."""
    return servers.ensure_servers()
