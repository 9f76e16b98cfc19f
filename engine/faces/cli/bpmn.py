"""``lapor import``: a BPMN file as our YAML workflow and policy files.

    lapor import model.bpmn -o workflows/model.yaml [--policies policies/] [--force]

The policies the BPMN carries (SLA clocks from its timers, ladders from its escalations) go to
``<policies>/<kind>/<workflow>.yaml``; ``--policies`` defaults to the ``policies/`` folder beside
the output's ``workflows/`` folder, else the output's own folder. Nothing is written unless the
whole file imports, and no existing file is replaced without ``--force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from engine.domain.errors import LaporError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("export")(export_command)


def export_command(
    workflow: Annotated[Path, typer.Argument(help="A YAML workflow, e.g. workflows/x.yaml.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The BPMN file to write.")],
    policies: Annotated[
        Path | None, typer.Option(help="Its policies folder (default: the project's).")
    ] = None,
) -> None:
    """Write a YAML workflow and its policies as BPMN 2.0 with a laid-out diagram (bpmn.io,
    Camunda Modeler); `lapor import` reads it back into the same model."""
    from engine.definitions.bpmn.writer import write_bpmn
    from engine.definitions.loader import load_bpmn_model, load_model, load_specs
    from engine.definitions.project import locate_project

    folder = policies or locate_project(start=workflow.resolve().parent).policies
    spec, specs = load_specs(workflow, folder)
    data = write_bpmn(spec, specs)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    expected, got = load_model(workflow, folder), load_bpmn_model(output)
    if expected.hash != got.hash:  # a bug of ours, never a silently different file
        raise LaporError(
            f"{output} reads back as model {got.hash[:12]}, not {expected.hash[:12]}: report this"
        )
    typer.echo(f"wrote {output} (model {got.hash[:12]}, the same as {workflow})")


def import_command(
    source: Annotated[Path, typer.Argument(help="The BPMN 2.0 file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The workflow YAML to write.")],
    policies: Annotated[
        Path | None, typer.Option(help="Folder for the policy files (default: see above).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace files that exist.")] = False,
) -> None:
    """Convert a BPMN file into a workflow and its policies; one line per problem otherwise."""
    from engine.definitions.bpmn.reader import read_documents
    from engine.definitions.bpmn.xml import read_bpmn
    from engine.definitions.loader import load_bpmn_model

    load_bpmn_model(source)  # every problem of the file (and its model) before anything is written
    documents = read_documents(read_bpmn(source))
    assert documents.workflow is not None
    folder = policies if policies is not None else _policies_folder(output)
    name = documents.workflow["workflow"]
    targets = [(output, documents.workflow)] + [
        (folder / str(doc["kind"]) / f"{name}.yaml", doc) for doc in documents.policies
    ]
    existing = [str(path) for path, _ in targets if path.exists()]
    if existing and not force:
        raise LaporError(f"{', '.join(existing)} exist(s); give --force to replace")
    for path, document in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# Imported from {source.name} by `lapor import`.\n"
        path.write_text(
            header
            + yaml.safe_dump(_plain(document), sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8",
        )
        typer.echo(f"wrote {path}")


def _policies_folder(output: Path) -> Path:
    parent = output.resolve().parent
    return parent.parent / "policies" if parent.name == "workflows" else parent


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
