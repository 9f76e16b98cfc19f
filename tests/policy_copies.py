"""A copy of the shipped project with one deadline changed, as a policy author drafts a change
(a regulation shortened the first follow-up): for the what-if and migration tests and benches."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_with_follow_up(folder: Path, duration: str) -> Path:
    """The shipped workflows and policies copied under ``folder``, the first follow-up due in
    ``duration`` instead of 5 working days; returns the copied workflow file."""
    project = folder / "project"
    shutil.copytree(ROOT / "workflows", project / "workflows")
    shutil.copytree(ROOT / "policies", project / "policies")
    sla = project / "policies" / "sla" / "sp4n-lapor.yaml"
    head, tail = sla.read_text().split("first_follow_up:", 1)
    sla.write_text(head + "first_follow_up:" + tail.replace("5 working days", duration, 1))
    return project / "workflows" / "sp4n-lapor.yaml"
