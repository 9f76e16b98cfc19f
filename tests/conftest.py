"""Shared fixtures: the shipped models and a way to run them on a virtual clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from engine.definitions.loader import load_models
from engine.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.memory import MemoryRuntime

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
