"""Loading definitions: the shipped files compile; every check fires at the right file:line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest

from engine.definitions.checks import check_guard
from engine.definitions.loader import (
    load_model,
    load_models,
    load_policy_file,
    load_workflow_file,
    validate_paths,
)
from engine.definitions.schema import (
    EscalationPolicy,
    RoutingPolicy,
    SlaPolicy,
    WorkflowFile,
    json_schema,
)
from engine.definitions.yamlio import load_yaml_file
from engine.domain.calendar import Duration
from engine.domain.errors import DefinitionError, DefinitionErrors
from engine.domain.model import Model

ROOT = Path(__file__).resolve().parents[2]
WF = "workflows/sp4n-lapor.yaml"
SLA = "policies/sla/sp4n-lapor.yaml"
ESC = "policies/escalation/sp4n-lapor.yaml"
ROUTING = "policies/routing/sp4n-lapor.yaml"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the shipped workflows and policies, for a test to break."""
    shutil.copytree(ROOT / "workflows", tmp_path / "workflows")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    return tmp_path


def edit(tree: Path, rel: str, old: str, new: str, count: int = 1) -> None:
    path = tree / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def line_of(tree: Path, rel: str, marker: str) -> int:
    lines = (tree / rel).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if marker in line)


def problems(tree: Path) -> list[str]:
    return [str(e) for e in validate_paths([tree / "workflows", tree / "policies"])]


def load(tree: Path) -> Model:
    return load_model(tree / WF, tree / "policies")


# --- the shipped definitions ------------------------------------------------------------------


def test_shipped_definitions_load_into_a_model() -> None:
    model = load_model(ROOT / WF, ROOT / "policies")
    assert model.name == "sp4n-lapor"
    assert model.initial == "submitted"
    assert isinstance(model.states, MappingProxyType)
    assert isinstance(model.transitions, MappingProxyType)
    assert isinstance(model.ladders, MappingProxyType)
    assert {n for n, s in model.states.items() if s.final} == {
        "closed",
        "archived",
        "referred_to_ombudsman",
    }
    assert model.transitions["not_authority"].sources == ("submitted", "disposed")
    assert model.transitions["not_authority"].restart == ("first_follow_up", "completion")
    assert [c.name for c in model.clocks] == [
        "verification",
        "first_follow_up",
        "completion",
        "reporter_reply",
    ]
    verification = model.clock("verification")
    assert verification.region == "national"
    assert verification.pauses_in == ("on_hold",)
    assert verification.duration.default == Duration(3, "working_days")
    completion = model.clock("completion").duration
    assert completion.by == "tier"
    assert completion.for_data({"tier": "field_exam"}) == Duration(60, "working_days")
    assert model.clock("reporter_reply").fire == "auto_close"
    agency = model.ladders["agency"]
    assert [level.level for level in agency.levels] == [1, 2, 3, 4]
    assert agency.level(4).final and agency.level(4).fire == "refer_to_ombudsman"
    assert agency.level(1).deadline == Duration(2, "working_days")
    assert model.routing.propose("infrastruktur", "ID-BA") == "pemprov-bali"
    assert model.routing.agencies["kemenkes"].region == "ID-JK"
    assert model.national_region == "ID-JK"
    assert 2026 in model.calendar.years


def test_shipped_definitions_validate_without_problems() -> None:
    assert validate_paths([ROOT / "workflows", ROOT / "policies"]) == []


def test_load_models_compiles_every_workflow_by_name() -> None:
    models = load_models(ROOT / "workflows", ROOT / "policies")
    assert list(models) == ["sp4n-lapor"]


def test_model_hash_is_stable_across_loads() -> None:
    first = load_model(ROOT / WF, ROOT / "policies")
    second = load_model(ROOT / WF, ROOT / "policies")
    assert first.hash == second.hash
    assert re.fullmatch(r"[0-9a-f]{64}", first.hash)
    assert Model.from_data(first.to_data()).hash == first.hash


def test_model_hash_changes_when_a_deadline_changes(tree: Path) -> None:
    before = load(tree)
    edit(tree, ESC, "deadline: 2 working days    # assumption", "deadline: 4 working days")
    assert load(tree).hash != before.hash


def test_model_hash_ignores_comments_and_layout(tree: Path) -> None:
    before = load(tree)
    edit(tree, SLA, "clocks:\n", "# a new comment\n\nclocks:\n")
    assert load(tree).hash == before.hash


def test_file_loaders_return_the_typed_file() -> None:
    assert isinstance(load_workflow_file(ROOT / WF).spec, WorkflowFile)
    assert isinstance(load_policy_file(ROOT / SLA).spec, SlaPolicy)
    assert isinstance(load_policy_file(ROOT / ESC).spec, EscalationPolicy)
    assert isinstance(load_policy_file(ROOT / ROUTING).spec, RoutingPolicy)
    with pytest.raises(DefinitionError, match="expected a workflow file"):
        load_workflow_file(ROOT / SLA)


def test_json_schema_covers_workflow_and_policy_files() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"WorkflowFile", "SlaPolicy", "EscalationPolicy", "RoutingPolicy"} <= set(
        schema["$defs"]
    )
    assert schema["oneOf"][0] == {"$ref": "#/$defs/WorkflowFile"}
    assert schema["oneOf"][1]["discriminator"]["propertyName"] == "kind"
    clock = schema["$defs"]["ClockSpec"]
    assert clock["additionalProperties"] is False
    assert all("description" in p for p in clock["properties"].values())
    transition = schema["$defs"]["TransitionSpec"]["properties"]
    assert "from" in transition and "sources" not in transition
    json.dumps(schema)  # plain JSON all the way down


@pytest.mark.parametrize("rel", [WF, SLA, ESC, ROUTING])
def test_json_schema_accepts_the_shipped_files(rel: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.check_schema(json_schema())
    data = load_yaml_file(ROOT / rel)
    assert [e.message for e in validator.iter_errors(data)] == []
    data["unexpected"] = 1
    assert not validator.is_valid(data)


# --- schema errors, in the file's terms --------------------------------------------------------


def test_unknown_key_names_the_clock_and_the_allowed_keys(tree: Path) -> None:
    edit(tree, SLA, "    pauses_in: [on_hold]", "    pauses: [on_hold]")
    line = line_of(tree, SLA, "pauses: [on_hold]")
    assert problems(tree) == [
        f"{tree / SLA}:{line}:5: unknown key 'pauses' in clock 'verification'; allowed keys: "
        "duration, runs_in, pauses_in, region, on_lapse; did you mean 'pauses_in'?"
    ]


def test_wrong_type_points_at_the_value_and_says_what_was_expected(tree: Path) -> None:
    edit(tree, WF, "    from: [submitted]\n    to: disposed", "    from: 5\n    to: disposed")
    line = line_of(tree, WF, "from: 5")
    (message,) = problems(tree)
    assert message.startswith(f"{tree / WF}:{line}:11: expected a list of state names, got int")


def test_a_single_source_state_needs_no_list(tree: Path) -> None:
    edit(
        tree, WF, "    from: [submitted]\n    to: disposed", "    from: submitted\n    to: disposed"
    )
    assert problems(tree) == []
    assert load(tree).transitions["verify"].sources == ("submitted",)


def test_yes_is_not_a_boolean(tree: Path) -> None:
    edit(
        tree, WF, "    final: true\n    outcome: resolved", "    final: yes\n    outcome: resolved"
    )
    (message,) = problems(tree)
    assert f"{tree / WF}:{line_of(tree, WF, 'final: yes')}:12:" in message
    assert "expected true or false" in message and "got string 'yes'" in message


def test_misspelt_key_is_reported_once_with_a_suggestion(tree: Path) -> None:
    edit(
        tree,
        ESC,
        "    - to: ombudsman_ri            # referral",
        "    - too: ombudsman_ri  # referral",
    )
    (message,) = problems(tree)
    assert "unknown key 'too' in level 4 of ladder 'agency'" in message
    assert "did you mean 'to'?" in message


@pytest.mark.parametrize(
    ("rel", "old", "new"),
    [
        (WF, 'version: "2026.1"', "version: 2026.1"),
        (WF, "  on_hold:\n    status: Ditunda\n", "  on_hold: 5\n  x:\n    status: Ditunda\n"),
        (SLA, "duration: 3 working days", "duration: [3]"),
        (SLA, "    region: national", "    region: nation"),
        (SLA, "on_lapse: {escalate: admin}", "on_lapse: {escalate: admin, fire: auto_close}"),
        (ESC, "  admin:\n    - to: admin_supervisor", "  admin: {to: x}\n  y:\n    - to: x"),
        (ROUTING, "rules:\n", "rules: 7\nx:\n"),
    ],
    ids=["float", "int-state", "list-duration", "literal", "on-lapse", "dict-ladder", "rules"],
)
def test_schema_errors_carry_no_pydantic_noise(tree: Path, rel: str, old: str, new: str) -> None:
    edit(tree, rel, old, new)
    found = problems(tree)
    assert found
    for message in found:
        assert message.startswith(f"{tree / rel}:")
        for noise in ("input_value", "https://", "Input should be", "For further information"):
            assert noise not in message


# --- semantic checks --------------------------------------------------------------------------

# (rel, old, new[, count]) edits, then the file, a marker on the expected line, and a fragment.
SEMANTIC_CASES = {
    "unknown-initial": (
        [(WF, "initial: submitted", "initial: submited")],
        WF, "initial: submited",
        "unknown state 'submited' in initial; states are: submitted, on_hold, disposed",
    ),
    "unknown-target": (
        [(WF, "    to: disposed\n    roles: [admin]\n    accepts", "    to: disposd\n"
          "    roles: [admin]\n    accepts")],
        WF, "to: disposd",
        "unknown state 'disposd' in transition 'verify'; states are: submitted, on_hold, "
        "disposed, in_progress, awaiting_reporter, closed, archived, referred_to_ombudsman; "
        "did you mean 'disposed'?",
    ),
    "unknown-source": (
        [(WF, "from: [on_hold]", "from: [onhold]")],
        WF, "from: [onhold]",
        "unknown state 'onhold' in transition 'supply_info'",
    ),
    "unknown-role": (
        [(WF, "    roles: [admin]\n    accepts: [agency, tier", "    roles: [admn]\n"
          "    accepts: [agency, tier")],
        WF, "roles: [admn]",
        "unknown role 'admn' in transition 'verify'; roles are: reporter, admin, agency, system; "
        "did you mean 'admin'?",
    ),
    "unreachable-state": (
        [(WF, "  archived:\n", "  limbo:\n    status: Limbo\n  archived:\n")],
        WF, "  limbo:",
        "state 'limbo' is unreachable from the initial state 'submitted'",
    ),
    "dead-end": (
        [(WF, "  archived:\n", "  limbo:\n    status: Limbo\n  archived:\n"),
         (WF, "  archive:\n", "  park:\n    from: [submitted]\n    to: limbo\n"
          "    roles: [admin]\n  archive:\n")],
        WF, "  limbo:",
        "state 'limbo' is a dead end: it is not final and no transition leaves it",
    ),
    "leaves-final-state": (
        [(WF, "from: [submitted, on_hold]", "from: [submitted, closed]")],
        WF, "from: [submitted, closed]",
        "transition 'archive' leaves final state 'closed'",
    ),
    "no-final-state": (
        [(WF, "final: true", "final: false", 3)],
        WF, "states:",
        "no final state: mark at least one state `final: true`",
    ),
    "outcome-not-final": (
        [(WF, "    final: true\n    outcome: resolved", "    outcome: resolved")],
        WF, "outcome: resolved",
        "state 'closed' has an outcome but is not final",
    ),
    "guard-syntax": (
        [(WF, 'guard: "!has(data.rating)', 'guard: "!has(data.rating) &&')],
        WF, "guard: \"!has(data.rating) &&",
        "guard of transition 'confirm' is not a valid CEL expression: Syntax error",
    ),
    "guard-unknown-name": (
        [(WF, 'guard: "!has(case.agency)', 'guard: "os.getcwd() == 1 || !has(case.agency)')],
        WF, "os.getcwd()",
        "guard of transition 'not_authority' uses unknown name 'os'",
    ),
    "guard-unknown-function": (
        [(WF, 'guard: "!has(data.rating)', 'guard: "__import__(1) || !has(data.rating)')],
        WF, "__import__",
        "guard of transition 'confirm' calls unknown function '__import__'",
    ),
    "restart-unknown-clock": (
        [(WF, "restart: [completion]", "restart: [completon]")],
        WF, "restart: [completon]",
        "unknown clock 'completon' in restart of transition 'reply'; clocks are: verification, "
        "first_follow_up, completion, reporter_reply; did you mean 'completion'?",
    ),
    "clock-unknown-state": (
        [(SLA, "runs_in: [submitted]", "runs_in: [submited]")],
        SLA, "runs_in: [submited]",
        "unknown state 'submited' in runs_in of clock 'verification'",
    ),
    "clock-runs-and-pauses": (
        [(SLA, "pauses_in: [on_hold]", "pauses_in: [on_hold, submitted]")],
        SLA, "pauses_in: [on_hold, submitted]",
        "state 'submitted' is in both runs_in and pauses_in of clock 'verification'",
    ),
    "sla-without-lapse-action": (
        [(SLA, "    on_lapse: {escalate: admin}\n", "")],
        SLA, "  verification:",
        "clock 'verification' has no lapse action",
    ),
    "escalate-unknown-ladder": (
        [(SLA, "on_lapse: {escalate: admin}", "on_lapse: {escalate: admn}")],
        SLA, "escalate: admn",
        "unknown ladder 'admn' in on_lapse of clock 'verification'; ladders are: agency, admin; "
        "did you mean 'admin'?",
    ),
    "fire-unknown-transition": (
        [(SLA, "on_lapse: {fire: auto_close}", "on_lapse: {fire: auto_clos}")],
        SLA, "fire: auto_clos",
        "unknown transition 'auto_clos' in on_lapse of clock 'reporter_reply'",
    ),
    "fire-not-allowed-where-clock-runs": (
        [(WF, "    from: [awaiting_reporter]\n    to: closed\n    roles: [system]",
          "    from: [in_progress]\n    to: closed\n    roles: [system]")],
        SLA, "fire: auto_close",
        "fires transition 'auto_close', which is not allowed from 'awaiting_reporter'",
    ),
    "fire-without-system-role": (
        [(WF, "    to: closed\n    roles: [system]", "    to: closed\n    roles: [admin]")],
        SLA, "fire: auto_close",
        "fires transition 'auto_close', which the system role may not send",
    ),
    "fire-target-in-runs-in": (
        [(WF, "    from: [awaiting_reporter]\n    to: closed\n    roles: [system]",
          "    from: [awaiting_reporter]\n    to: awaiting_reporter\n    roles: [system]")],
        SLA, "fire: auto_close",
        "whose target 'awaiting_reporter' is in the clock's runs_in",
    ),
    "duration-by-unknown-field": (
        [(SLA, "by: tier", "by: tear")],
        SLA, "by: tear",
        "unknown field 'tear' in duration of clock 'completion'",
    ),
    "ladder-without-levels": (
        [(ESC, "  admin:\n    - to: admin_supervisor        # Asisten Deputi, KemenPANRB; "
          "assumption\n      deadline: 2 working days    # assumption\n    - to: ombudsman_ri\n"
          "      final: true\n      fire: refer_to_ombudsman\n", "  admin: []\n")],
        ESC, "admin: []",
        "ladder 'admin' has no levels",
    ),
    "final-level-not-last": (
        [(ESC, "      deadline: 2 working days    # assumption\n    - to: ombudsman_ri",
          "      deadline: 2 working days\n      final: true  # early\n    - to: ombudsman_ri")],
        ESC, "final: true  # early",
        "level 1 of ladder 'admin' is final but is not the last level",
    ),
    "ladder-without-final-level": (
        [(ESC, "      final: true\n      fire: refer_to_ombudsman\n  admin:", "  admin:")],
        ESC, "- to: ombudsman_ri            # referral",
        "ladder 'agency' never reaches a final level",
    ),
    "level-without-deadline": (
        [(ESC, "      deadline: 3 working days    # assumption\n", "")],
        ESC, "- to: agency_superior",
        "level 2 of ladder 'agency' has no deadline",
    ),
    "ladder-fire-not-allowed": (
        [(WF, "from: [submitted, disposed, in_progress]", "from: [submitted, disposed]")],
        ESC, "      fire: refer_to_ombudsman",
        "level 4 of ladder 'agency' fires transition 'refer_to_ombudsman', which is not allowed "
        "from 'in_progress'",
    ),
    "ladder-fire-unknown": (
        [(ESC, "      fire: refer_to_ombudsman\n  admin:", "      fire: refer\n  admin:")],
        ESC, "fire: refer",
        "unknown transition 'refer' in level 4 of ladder 'agency'",
    ),
    "ladder-unused": (
        [(ESC, "  admin:\n", "  spare:\n    - {to: someone, final: true}\n  admin:\n")],
        ESC, "  spare:",
        "ladder 'spare' is not used by any clock",
    ),
    "rule-unknown-agency": (
        [(ROUTING, "ID-JB, agency: pemprov-jabar}", "ID-JB, agency: pemprov-jabr}")],
        ROUTING, "pemprov-jabr",
        "unknown agency 'pemprov-jabr' in routing rule 9; agencies are: kemenkes",
    ),
    "rule-unknown-region": (
        [(ROUTING, "ID-JB, agency: pemprov-jabar}", "ID-XX, agency: pemprov-jabar}")],
        ROUTING, "ID-XX",
        "unknown region 'ID-XX' in routing rule 9; regions are: *, ID-AC",
    ),
    "agency-unknown-region": (
        [(ROUTING, "Kementerian Kesehatan, region: ID-JK}", "Kementerian Kesehatan, region: JK}")],
        ROUTING, "region: JK}",
        "unknown region 'JK' in agency 'kemenkes'",
    ),
    "rule-repeated": (
        [(ROUTING, "kependudukan, region: ID-MA, agency: pemprov-maluku}\n", "kependudukan, "
          "region: ID-MA, agency: pemprov-maluku}\n"
          "  - {category: keamanan, region: \"*\", agency: kemenkes}  # again\n")],
        ROUTING, "# again",
        "routing rule 24 repeats category 'keamanan' and region '*' of rule 7",
    ),
    "national-region-unknown": (
        [(SLA, "national_region: ID-JK", "national_region: ID-ZZ")],
        SLA, "national_region: ID-ZZ",
        "unknown region 'ID-ZZ' in national_region",
    ),
    "unknown-calendar": (
        [(SLA, "calendar: id ", "calendar: mars ")],
        SLA, "calendar: mars",
        "unknown calendar 'mars': no file",
    ),
    "policy-for-unknown-workflow": (
        [(ROUTING, "workflow: sp4n-lapor", "workflow: sp4n-lapr")],
        ROUTING, "workflow: sp4n-lapr",
        "unknown workflow 'sp4n-lapr' in policy 'sp4n-lapor-routing'; workflows are: "
        "sp4n-lapor; did you mean 'sp4n-lapor'?",
    ),
    "unknown-policy-kind": (
        [(ROUTING, "kind: routing", "kind: rooting")],
        ROUTING, "kind: rooting",
        "unknown policy kind 'rooting'; policy kinds are: sla, escalation, routing",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SEMANTIC_CASES), ids=list(SEMANTIC_CASES))
def test_semantic_check_fires_at_the_offending_line(tree: Path, case: str) -> None:
    edits, rel, marker, fragment = SEMANTIC_CASES[case]
    for rel_edit, old, new, *count in edits:
        edit(tree, rel_edit, old, new, *count)
    prefix = f"{tree / rel}:{line_of(tree, rel, marker)}:"
    found = problems(tree)
    assert any(m.startswith(prefix) and fragment in m for m in found), "\n".join(found)
    if case == "policy-for-unknown-workflow":
        return  # load_model only reads the policies of its own workflow
    with pytest.raises((DefinitionError, DefinitionErrors)) as raised:
        load(tree)
    assert fragment in str(raised.value)


def test_a_loop_with_no_way_out_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(
        "workflow: loop\nversion: '1'\ntitle: t\nroles: {admin: a}\ninitial: open\n"
        "states:\n  open: {status: o}\n  ping: {status: p}\n  pong: {status: q}\n"
        "  done: {status: d, final: true}\n"
        "transitions:\n"
        "  start: {from: open, to: ping, roles: [admin]}\n"
        "  finish: {from: open, to: done, roles: [admin]}\n"
        "  hit: {from: ping, to: pong, roles: [admin]}\n"
        "  back: {from: pong, to: ping, roles: [admin]}\n",
        encoding="utf-8",
    )
    found = [str(e) for e in validate_paths([path])]
    assert f"{path}:8:3: no final state can be reached from state 'ping'" in "\n".join(found)


def test_two_sla_policies_for_one_workflow_are_refused(tree: Path) -> None:
    second = tree / "policies" / "sla" / "second.yaml"
    text = (tree / SLA).read_text(encoding="utf-8")
    second.write_text(text.replace("policy: sp4n-lapor-sla", "policy: second-sla"), "utf-8")
    (message,) = problems(tree)
    # Files are read in name order, so second.yaml is the first and the shipped file the second.
    assert message.startswith(f"{tree / SLA}:2:9: a second sla policy for workflow 'sp4n-lapor'")
    assert f"the first is {second}:2:9" in message


def test_policy_in_the_wrong_folder_is_refused(tree: Path) -> None:
    (tree / SLA).rename(tree / "policies" / "escalation" / "clocks.yaml")
    found = problems(tree)
    assert any("a policy of kind 'sla' in folder escalation/" in m for m in found), found


def test_all_problems_of_all_files_are_reported_sorted(tree: Path) -> None:
    edit(tree, WF, "restart: [completion]", "restart: [completon]")
    edit(tree, SLA, "    region: national", "    region: nation")
    edit(tree, ROUTING, "region: ID-JB, agency: pemprov-jabar}", "region: ID-JB, agency: nope}")
    found = validate_paths([tree / "workflows", tree / "policies"])
    files = [e.location.file for e in found if e.location]
    assert files == sorted(files)
    assert {Path(f).name for f in files} == {"sp4n-lapor.yaml"}
    assert {Path(f).parent.name for f in files} == {"sla", "routing"}
    # The workflow's misspelt restart is not judged while the sla file that defines clocks is
    # broken; it surfaces once the sla file loads again.
    edit(tree, SLA, "    region: nation", "    region: national")
    assert any("unknown clock 'completon'" in m for m in problems(tree))


def test_load_model_raises_every_problem_at_once(tree: Path) -> None:
    edit(tree, WF, "restart: [completion]", "restart: [completon]")
    edit(tree, SLA, "by: tier", "by: tear")
    with pytest.raises(DefinitionErrors) as raised:
        load(tree)
    messages = [str(e) for e in raised.value.errors]
    assert len(messages) == 2
    assert messages[0].startswith(str(tree / SLA))
    assert messages[1].startswith(str(tree / WF))


@pytest.mark.parametrize(
    "guard",
    [
        "!has(data.rating) || (data.rating >= 1 && data.rating <= 5)",
        "data.items.all(x, x > 0) && data.tags.exists(t, t == 'a')",
        "actor.role == 'admin' && size(case.data) > 0 && int(data.n) in [1, 2]",
        "data.note.matches('^[a-z]+$') ? true : case.agency != data.agency",
    ],
)
def test_guards_over_case_data_and_actor_are_accepted(guard: str) -> None:
    assert check_guard(guard) is None


def test_a_workflow_without_sla_policy_loads_without_clocks(tree: Path) -> None:
    (tree / SLA).unlink()
    (tree / ESC).unlink()  # its ladders would be unused, with no clock to climb them
    workflow = tree / WF
    text = workflow.read_text(encoding="utf-8")
    workflow.write_text(re.sub(r"\n    restart: \[[^\]]*\]", "", text), encoding="utf-8")
    model = load(tree)
    assert model.clocks == () and dict(model.ladders) == {}
    assert 2026 in model.calendar.years  # the default calendar 'id'


def test_a_restart_without_sla_policy_is_refused(tree: Path) -> None:
    (tree / SLA).unlink()
    (tree / ESC).unlink()
    with pytest.raises(DefinitionErrors, match="workflow 'sp4n-lapor' has no sla policy"):
        load(tree)
