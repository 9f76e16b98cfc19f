"""``lapor export``: every shipped workflow as BPMN that bpmn.io's own tools accept without a
warning, that reads back into the same model, and the shipped ``workflows/sp4n-lapor.bpmn``
kept in sync with its YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.definitions.bpmn.writer import write_bpmn
from engine.definitions.loader import load_bpmn_model, load_model, load_specs
from tests.bpmn_tools import bpmn_js_import, bpmnlint, moddle_warnings

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.yaml"))
SHIPPED = ROOT / "workflows" / "sp4n-lapor.bpmn"


def exported(workflow: Path, folder: Path) -> Path:
    spec, specs = load_specs(workflow, ROOT / "policies")
    path = folder / "workflows" / f"{workflow.stem}.bpmn"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(write_bpmn(spec, specs))
    return path


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_yaml_to_bpmn_to_model_keeps_the_model_hash(workflow: Path, tmp_path: Path) -> None:
    path = exported(workflow, tmp_path)

    assert load_bpmn_model(path).hash == load_model(workflow, ROOT / "policies").hash


def test_the_shipped_bpmn_is_the_export_of_its_yaml(tmp_path: Path) -> None:
    fresh = exported(ROOT / "workflows" / "sp4n-lapor.yaml", tmp_path)

    assert SHIPPED.read_bytes() == fresh.read_bytes(), (
        "workflows/sp4n-lapor.bpmn is out of date: run "
        "lapor export workflows/sp4n-lapor.yaml -o workflows/sp4n-lapor.bpmn"
    )


def test_the_exported_bpmn_passes_bpmnlint_recommended() -> None:
    assert bpmnlint(SHIPPED) == []


def test_the_exported_bpmn_parses_in_bpmn_moddle_without_warnings() -> None:
    assert moddle_warnings(SHIPPED) == []


def test_the_exported_bpmn_opens_in_bpmn_js_with_every_element_drawn(tmp_path: Path) -> None:
    shot = tmp_path / "sp4n-lapor.png"

    result = bpmn_js_import(SHIPPED, screenshot=shot)

    assert result.warnings == []
    model = load_model(ROOT / "workflows" / "sp4n-lapor.yaml", ROOT / "policies")
    assert result.shapes >= len(model.states) and result.connections > len(model.transitions)
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_yaml_to_bpmn_to_yaml_files_keeps_the_model_hash(workflow: Path, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from engine.faces.cli.main import app

    path = exported(workflow, tmp_path / "out")
    shutil.copytree(ROOT / "policies" / "calendars", tmp_path / "back" / "policies" / "calendars")
    target = tmp_path / "back" / "workflows" / f"{workflow.stem}.yaml"

    result = CliRunner().invoke(app, ["import", str(path), "-o", str(target)])

    assert result.exit_code == 0, result.output
    back = load_model(target, tmp_path / "back" / "policies")
    assert back.hash == load_model(workflow, ROOT / "policies").hash
