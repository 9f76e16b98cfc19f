"""Loading definition files: read strictly, validate against the schema, check, compile.

Parse -> validate -> check -> compile, and every stage reports all it finds, each problem at its
``file:line:col``: a user fixing a policy wants the whole list in one run, not one error per run.
``load_model`` is what the runtimes call; ``validate_paths`` is ``lapor validate``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from engine.definitions.calendars import load_calendar_year, load_calendars
from engine.definitions.checks import check_definitions, unknown
from engine.definitions.compiler import compile_model
from engine.definitions.schema import (
    EscalationPolicy,
    MarkedSource,
    Parsed,
    PolicySpec,
    RoutingPolicy,
    SlaPolicy,
    Source,
    WorkflowFile,
)
from engine.definitions.schema_errors import schema_errors, type_name
from engine.definitions.yamlio import MAX_DEPTH, MarkedDict, read_yaml
from engine.domain.calendar import WorkingCalendar
from engine.domain.errors import (
    CalendarError,
    DefinitionError,
    DefinitionErrors,
    LaporError,
    Location,
)
from engine.domain.model import Model

__all__ = [
    "MAX_DEPTH",
    "load_bpmn_model",
    "load_model",
    "load_models",
    "load_policy_file",
    "load_specs",
    "load_workflow_file",
    "validate_paths",
]

S = TypeVar("S", bound=BaseModel)
_POLICY_MODELS: dict[str, type[BaseModel]] = {
    "sla": SlaPolicy,
    "escalation": EscalationPolicy,
    "routing": RoutingPolicy,
}
# Checked in this order: a policy file also names its workflow and an sla policy its calendar.
_FILE_KINDS = ("policy", "scenario", "calendar", "workflow")
_KEYS_TEXT = "workflow, policy, calendar or scenario"
_CALENDAR_FILE = re.compile(r"([a-z0-9_]+)-([0-9]{4})\.ya?ml")


@dataclass
class _File:
    """One file as far as it could be read: its kind, its data, its model, its problems."""

    path: Path
    kind: str = ""
    raw: MarkedDict | None = None
    parsed: Parsed[Any] | None = None
    errors: list[DefinitionError] = field(default_factory=list)


# --- reading ----------------------------------------------------------------------------------


def _load(path: Path) -> _File:
    """Read, classify and schema-validate one file, keeping every problem found."""
    result = _File(path)
    try:
        text, data = read_yaml(path)
    except DefinitionError as exc:
        result.errors.append(exc)
        return result
    file = str(path)
    if not isinstance(data, MarkedDict):
        where = getattr(data, "location", Location(file, 1, 1))
        got = "an empty file" if data is None else f"a {type_name(data)}"
        result.errors.append(
            DefinitionError(
                f"expected a mapping with a top-level key {_KEYS_TEXT}; got {got}",
                location=where,
            )
        )
        return result
    result.raw = data
    result.kind = next((k for k in _FILE_KINDS if k in data), "")
    source = Source(file, text, data)
    if result.kind == "workflow":
        result.parsed, result.errors = _validate(source, WorkflowFile)
    elif result.kind == "policy":
        result.parsed, result.errors = _validate_policy(source, path)
    elif not result.kind:
        keys = ", ".join(map(repr, data))
        result.errors.append(
            DefinitionError(
                f"not a definition file: top-level keys are {keys}; expected one of {_KEYS_TEXT}",
                location=data.where(),
            )
        )
    return result


def _validate(source: Source, model: type[S]) -> tuple[Parsed[S] | None, list[DefinitionError]]:
    try:
        return Parsed(source, model.model_validate(source.raw)), []
    except ValidationError as exc:
        return None, schema_errors(source, model, exc.errors())


def _validate_policy(
    source: Source, path: Path
) -> tuple[Parsed[Any] | None, list[DefinitionError]]:
    kind = source.raw.get("kind")
    if not isinstance(kind, str) or kind not in _POLICY_MODELS:
        if "kind" not in source.raw:
            message = f"missing required key 'kind' in policy; one of: {', '.join(_POLICY_MODELS)}"
            return None, [DefinitionError(message, location=source.where(()))]
        message = unknown("policy kind", kind, "", _POLICY_MODELS)
        return None, [DefinitionError(message, location=source.where(("kind",)))]
    parsed, errors = _validate(source, _POLICY_MODELS[kind])
    folder = path.parent.name
    if folder in _POLICY_MODELS and folder != kind:
        # load_model looks for each kind in its own folder; a misplaced file would be ignored.
        errors.append(
            DefinitionError(
                f"a policy of kind {kind!r} in folder {folder}/; move it to {kind}/ "
                "or correct its kind",
                location=source.where(("kind",)),
            )
        )
    return parsed, errors


def _load_bpmn(path: Path) -> list[_File]:
    """A BPMN file as the files it stands for: its workflow first, then its policies. A file
    the reader has problems with is one workflow file carrying all of them."""
    from engine.definitions.bpmn.reader import read_documents
    from engine.definitions.bpmn.xml import read_bpmn

    try:
        documents = read_documents(read_bpmn(path))
    except DefinitionError as exc:
        return [_File(path, "workflow", errors=[exc])]
    if documents.problems or documents.workflow is None:
        return [_File(path, "workflow", raw=documents.workflow, errors=documents.problems)]
    file = str(path)
    workflow = _File(path, "workflow", raw=documents.workflow)
    workflow.parsed, workflow.errors = _validate(
        MarkedSource(file, documents.workflow), WorkflowFile
    )
    loaded = [workflow]
    for raw in documents.policies:
        policy = _File(path, "policy", raw=raw)
        policy.parsed, policy.errors = _validate_policy(MarkedSource(file, raw), path)
        loaded.append(policy)
    return loaded


def _load_any(path: Path) -> list[_File]:
    return _load_bpmn(path) if path.suffix == ".bpmn" else [_load(path)]


def _policy_kind(loaded: _File) -> str | None:
    return loaded.raw.get("kind") if loaded.raw is not None else None


# --- public loading -------------------------------------------------------------------------


def _raise(errors: list[DefinitionError]) -> None:
    ordered = _sorted(errors)
    if len(ordered) == 1:
        raise ordered[0]
    if ordered:
        raise DefinitionErrors(ordered)


def _sorted(errors: list[DefinitionError]) -> list[DefinitionError]:
    unique = {str(e): e for e in errors}  # one cause can surface through two paths; say it once
    return sorted(
        unique.values(),
        key=lambda e: (
            e.location.file if e.location else "",
            e.location.line if e.location else 0,
            e.location.column if e.location else 0,
            e.message,
        ),
    )


def _expect(path: Path, kind: str) -> _File:
    loaded = _load(path)
    if not loaded.errors and loaded.kind != kind and loaded.raw is not None:
        loaded.errors.append(
            DefinitionError(
                f"expected a {kind} file (top-level key {kind!r}), found a {loaded.kind} file",
                location=loaded.raw.where(),
            )
        )
    return loaded


def load_workflow_file(path: Path) -> Parsed[WorkflowFile]:
    """Read and schema-validate one workflow file (no cross-checks).

    Raises ``DefinitionError`` for one problem, ``DefinitionErrors`` for several.
    """
    loaded = _expect(Path(path), "workflow")
    _raise(loaded.errors)
    return cast(Parsed[WorkflowFile], loaded.parsed)


def load_policy_file(path: Path) -> Parsed[PolicySpec]:
    """Read and schema-validate one sla, escalation or routing policy file (no cross-checks)."""
    loaded = _expect(Path(path), "policy")
    _raise(loaded.errors)
    return cast(Parsed[PolicySpec], loaded.parsed)


def load_model(workflow_path: Path, policies_dir: Path) -> Model:
    """Load a workflow and its policies from ``policies_dir/{sla,escalation,routing}/``, check
    everything and compile it into the immutable ``Model``.

    A policy belongs to the workflow when its ``workflow:`` names it. Raises ``DefinitionError``
    or ``DefinitionErrors`` listing every problem found.
    """
    if Path(workflow_path).suffix == ".bpmn":
        files = _load_bpmn(Path(workflow_path))
        _raise([e for f in files for e in f.errors])
        return _load_model(
            cast(Parsed[WorkflowFile], files[0].parsed), Path(policies_dir), files[1:]
        )
    loaded = _expect(Path(workflow_path), "workflow")
    _raise(loaded.errors)
    return _load_model(cast(Parsed[WorkflowFile], loaded.parsed), Path(policies_dir))


def _load_model(
    workflow: Parsed[WorkflowFile],
    policies_dir: Path | None,
    own: Sequence[_File] = (),
    calendars: Path | None = None,
) -> Model:
    """``own``: the policies a BPMN file carries; the folder's fill only the kinds it lacks.
    ``calendars`` defaults to the folder's ``calendars/``."""
    errors: list[DefinitionError] = []
    policies: list[Parsed[Any]] = [f.parsed for f in own if f.parsed is not None]
    carried = {_policy_kind(f) for f in own}
    for kind in _POLICY_MODELS:
        if kind in carried or policies_dir is None:
            continue
        for path in _yaml_files(policies_dir / kind, errors, missing_ok=True):
            policy = _load(path)
            if policy.raw is not None and policy.raw.get("workflow") != workflow.spec.workflow:
                continue  # another workflow's policy, and its problems are that workflow's
            errors.extend(policy.errors)
            if policy.parsed is not None:
                policies.append(policy.parsed)
    if calendars is None:
        calendars = (
            _bpmn_calendars(Path(workflow.file))
            if policies_dir is None
            else (policies_dir / "calendars")
        )
    model, problems = _assemble(workflow, policies, calendars, complete=not errors)
    _raise(errors + problems)
    assert model is not None  # _assemble returns a model whenever it reports no problem
    return model


def load_models(workflows_dir: Path, policies_dir: Path) -> dict[str, Model]:
    """Every workflow under ``workflows_dir`` compiled with its policies, by workflow name."""
    errors: list[DefinitionError] = []
    models: dict[str, Model] = {}
    first: dict[str, Parsed[WorkflowFile]] = {}
    # YAML first: a BPMN file exported from a YAML workflow is checked against it, not doubled.
    paths = sorted(
        _yaml_files(Path(workflows_dir), errors, bpmn=True), key=lambda p: p.suffix == ".bpmn"
    )
    for path in paths:
        files = _load_any(path)
        loaded = files[0]
        if loaded.kind in ("workflow", ""):  # a file we cannot classify may be a broken workflow
            errors.extend(e for f in files for e in f.errors)
        if loaded.kind != "workflow" or loaded.parsed is None:
            continue
        workflow = cast(Parsed[WorkflowFile], loaded.parsed)
        name = workflow.spec.workflow
        try:
            model = _load_model(workflow, Path(policies_dir), files[1:])
        except DefinitionErrors as exc:
            errors.extend(exc.errors)
            continue
        except DefinitionError as exc:
            errors.append(exc)
            continue
        if name in first:
            if path.suffix == ".bpmn" and name in models:
                if models[name].hash != model.hash:
                    errors.append(_out_of_sync(workflow, first[name], models[name], model))
                continue
            errors.append(_twice(workflow, str(first[name].where(("workflow",)))))
            continue
        first[name] = workflow
        models[name] = model
    _raise(errors)
    return models


def _out_of_sync(
    bpmn: Parsed[WorkflowFile], yaml: Parsed[WorkflowFile], expected: Model, got: Model
) -> DefinitionError:
    return DefinitionError(
        f"workflow {bpmn.spec.workflow!r} differs from the one in {yaml.file} (model "
        f"{got.hash[:12]}, not {expected.hash[:12]}): export it again (lapor export {yaml.file} "
        f"-o {bpmn.file}) or remove one of the two",
        location=bpmn.where(("workflow",)),
    )


def _twice(workflow: Parsed[WorkflowFile], first: str) -> DefinitionError:
    return DefinitionError(
        f"workflow {workflow.spec.workflow!r} is defined twice (first at {first})",
        location=workflow.where(("workflow",)),
    )


def validate_paths(paths: Sequence[Path]) -> list[DefinitionError]:
    """Check every workflow, policy and calendar file in ``paths`` (files or folders).

    Returns all problems sorted by file and line; an empty list means every file is valid and
    every workflow among them compiles. Scenario files are left to the scenario runner.
    """
    errors: list[DefinitionError] = []
    walked = list(_walk(paths, errors))
    files = [_load(p) for p in walked if p.suffix != ".bpmn"]
    bpmn = [(p, _load_bpmn(p)) for p in walked if p.suffix == ".bpmn"]
    workflows: dict[str, Parsed[WorkflowFile]] = {}
    groups: dict[str, list[Parsed[Any]]] = {}
    named: set[str] = set()  # names of workflow files, loaded or not: policies may refer to them
    broken: set[str] = set()  # workflows with a file that failed: cross-file checks would mislead
    for loaded in files:
        errors.extend(loaded.errors)
        if loaded.kind == "calendar" and not loaded.errors:
            errors.extend(_calendar_file_errors(loaded.path))
        name = loaded.raw.get("workflow") if loaded.raw is not None else None
        if loaded.kind == "workflow" and isinstance(name, str):
            named.add(name)
        if loaded.kind in ("workflow", "policy") and loaded.errors and isinstance(name, str):
            broken.add(name)
        if loaded.parsed is None:
            continue
        if isinstance(loaded.parsed.spec, WorkflowFile):
            workflow = cast(Parsed[WorkflowFile], loaded.parsed)
            if workflow.spec.workflow in workflows:
                first = workflows[workflow.spec.workflow].where(("workflow",))
                errors.append(_twice(workflow, str(first)))
            workflows.setdefault(workflow.spec.workflow, workflow)
        else:
            groups.setdefault(loaded.parsed.spec.workflow, []).append(loaded.parsed)
    with_policies = any(f.kind == "policy" for f in files)
    # A file that is not even YAML could be any workflow's policy: judge no cross-references.
    unreadable = any(f.raw is None and f.errors for f in files)
    for name in sorted(set(workflows) | set(groups)):
        policies = groups.get(name, [])
        if named and name not in named:
            for policy in policies:
                message = unknown("workflow", name, f"policy {policy.spec.policy!r}", sorted(named))
                errors.append(DefinitionError(message, location=policy.where(("workflow",))))
        complete = name in workflows and with_policies and name not in broken and not unreadable
        calendars = _calendars_dir(policies[0].file) if policies else None
        errors.extend(_assemble(workflows.get(name), policies, calendars, complete)[1])
    for path, loaded_bpmn in bpmn:
        errors.extend(_bpmn_problems(path, loaded_bpmn, workflows, groups, broken))
    return _sorted(errors)


def _bpmn_problems(
    path: Path,
    files: list[_File],
    yaml_workflows: dict[str, Parsed[WorkflowFile]],
    groups: dict[str, list[Parsed[Any]]],
    broken: set[str],
) -> list[DefinitionError]:
    """A BPMN file's problems: its own, then its workflow assembled with the policies it
    carries (YAML ones fill the kinds it lacks), and, beside a YAML file of the same workflow,
    whether the two agree."""
    errors = [e for f in files for e in f.errors]
    if errors or files[0].parsed is None:
        return errors
    workflow = cast(Parsed[WorkflowFile], files[0].parsed)
    name = workflow.spec.workflow
    own = [f.parsed for f in files[1:] if f.parsed is not None]
    carried = {_policy_kind(f) for f in files[1:]}
    others = [p for p in groups.get(name, []) if p.spec.kind not in carried]
    calendars = _bpmn_calendars(path)
    model, problems = _assemble(workflow, [*own, *others], calendars, complete=True)
    if problems or model is None or name not in yaml_workflows or name in broken:
        return problems  # a YAML side with problems of its own is not compared: they say it
    yaml = yaml_workflows[name]
    expected, _ = _assemble(yaml, groups.get(name, []), calendars, complete=True)
    if expected is not None and expected.hash != model.hash:
        return [_out_of_sync(workflow, yaml, expected, model)]
    return []


def _bpmn_calendars(path: Path) -> Path:
    """The calendars a BPMN workflow counts on: its project's (``workflows/`` beside
    ``policies/``), else the ones shipped with lapor-sla."""
    beside = path.resolve().parent.parent / "policies" / "calendars"
    if path.resolve().parent.name == "workflows" and beside.is_dir():
        return beside
    from engine.definitions.project import shipped_root

    return shipped_root() / "policies" / "calendars"


def _calendar_file_errors(path: Path) -> list[DefinitionError]:
    try:
        load_calendar_year(path)
    except DefinitionErrors as exc:
        return list(exc.errors)
    except DefinitionError as exc:
        return [exc]
    except CalendarError as exc:
        return [DefinitionError(exc.message, location=Location(str(path), 1, 1))]
    return []


def _calendars_dir(policy_file: str) -> Path:
    """``policies/calendars`` for a file in ``policies/<kind>/``, else a sibling ``calendars``."""
    folder = Path(policy_file).parent
    return (folder.parent if folder.name in _POLICY_MODELS else folder) / "calendars"


def _walk(paths: Sequence[Path], errors: list[DefinitionError]) -> Iterator[Path]:
    for path in map(Path, paths):
        try:
            folder, exists = path.is_dir(), path.exists()
        except OSError as exc:  # a name too long for the file system, say
            errors.append(DefinitionError(exc.strerror or str(exc), location=Location(str(path))))
            continue
        if folder:
            yield from _yaml_files(path, errors, recursive=True, bpmn=True)
        elif exists:
            yield path
        else:
            errors.append(DefinitionError("no such file or folder", location=Location(str(path))))


def _yaml_files(
    folder: Path,
    errors: list[DefinitionError],
    *,
    recursive: bool = False,
    missing_ok: bool = False,
    bpmn: bool = False,
) -> Iterator[Path]:
    """The definition files of ``folder``: YAML, and with ``bpmn`` BPMN files too."""
    if not folder.is_dir():
        if not missing_ok:
            errors.append(DefinitionError("no such folder", location=Location(str(folder))))
        return
    suffixes = (".yaml", ".yml", ".bpmn") if bpmn else (".yaml", ".yml")
    found = folder.rglob("*") if recursive else folder.iterdir()
    yield from sorted(p for p in found if p.suffix in suffixes and p.is_file())


# --- assembling and compiling -----------------------------------------------------------------


def _assemble(
    workflow: Parsed[WorkflowFile] | None,
    policies: list[Parsed[Any]],
    calendars: Path | None,
    complete: bool,
) -> tuple[Model | None, list[DefinitionError]]:
    """Check one workflow with its policies, load its calendar and, if all is well and
    ``complete``, compile the model."""
    errors = check_definitions(workflow, policies, complete=complete)
    slas = [cast(Parsed[SlaPolicy], p) for p in policies if isinstance(p.spec, SlaPolicy)]
    calendar: WorkingCalendar | None = None
    if calendars is not None and (slas or workflow is not None):
        calendar = _calendar(slas[0] if slas else None, workflow, calendars, errors)
    if not complete or workflow is None or calendar is None or errors:
        return None, errors
    try:
        return compile_model(workflow.spec, [p.spec for p in policies], calendar), []
    except LaporError as exc:  # e.g. a calendar the model cannot serialise: still the user's input
        return None, [DefinitionError(exc.message, location=workflow.where(()))]


def _calendar(
    sla: Parsed[SlaPolicy] | None,
    workflow: Parsed[WorkflowFile] | None,
    folder: Path,
    errors: list[DefinitionError],
) -> WorkingCalendar | None:
    name = sla.spec.calendar if sla is not None else "id"
    if sla is not None:
        where = sla.where(("calendar",))
    else:
        where = workflow.where(()) if workflow is not None else Location(str(folder))
    names = sorted(
        {m.group(1) for p in _yaml_files(folder, [], missing_ok=True)
         if (m := _CALENDAR_FILE.fullmatch(p.name))}
    )  # fmt: skip
    if name not in names:
        message = f"unknown calendar {name!r}: no file {folder}/{name}-YYYY.yaml"
        message += f"; calendars are: {', '.join(names)}" if names else f"; {folder} has none"
        if sla is None:
            message += " (a workflow without an sla policy uses calendar 'id')"
        errors.append(DefinitionError(message, location=where))
        return None
    try:
        return load_calendars(folder, name)
    except DefinitionErrors as exc:
        errors.extend(exc.errors)
    except DefinitionError as exc:
        errors.append(exc if exc.location else DefinitionError(exc.message, location=where))
    except CalendarError as exc:
        errors.append(DefinitionError(exc.message, location=where))
    return None


def load_bpmn_model(path: Path, policies_dir: Path | None = None) -> Model:
    """The model of one BPMN file, with the policies it carries (and, for the kinds it lacks,
    those of ``policies_dir`` naming its workflow), on its project's calendars.

    Raises ``DefinitionError`` or ``DefinitionErrors`` listing every problem found.
    """
    files = _load_bpmn(Path(path))
    _raise([e for f in files for e in f.errors])
    workflow = cast(Parsed[WorkflowFile], files[0].parsed)
    return _load_model(workflow, policies_dir, files[1:], _bpmn_calendars(Path(path)))


def load_specs(workflow_path: Path, policies_dir: Path) -> tuple[WorkflowFile, list[PolicySpec]]:
    """A YAML workflow's spec and its policies' (those of ``policies_dir`` naming it), checked
    by compiling them first (what ``lapor export`` writes out)."""
    load_model(workflow_path, policies_dir)
    workflow = load_workflow_file(workflow_path)
    policies: list[PolicySpec] = []
    for kind in _POLICY_MODELS:
        for path in _yaml_files(Path(policies_dir) / kind, [], missing_ok=True):
            policy = _load(path)
            if policy.parsed is not None and policy.parsed.spec.workflow == workflow.spec.workflow:
                policies.append(policy.parsed.spec)
    return workflow.spec, policies
