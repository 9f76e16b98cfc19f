"""Importing BPMN files (``engine.definitions.bpmn``): real files from public projects, hostile
XML, and a canary proving nothing in a file is ever evaluated.

The corpus lives outside the repository (``../shared/bpmn-corpus/``, or ``$LAPOR_BPMN_CORPUS``)
with a ``MANIFEST.tsv`` saying what each file exercises and what a user should get. Every file
either imports into a checked model or is refused with one line per problem, naming an element
id and its line.
"""

from __future__ import annotations

import csv
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.definitions.bpmn.xml import MAX_BYTES, parse_bpmn_bytes
from engine.definitions.loader import load_bpmn_model
from engine.domain.errors import DefinitionError, DefinitionErrors, LaporError
from engine.domain.model import Model

ROOT = Path(__file__).resolve().parents[2]


def corpus_folder() -> Path:
    for candidate in (
        os.environ.get("LAPOR_BPMN_CORPUS"),
        ROOT.parent / "shared" / "bpmn-corpus",
        Path("/work/shared/bpmn-corpus"),
    ):
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            return Path(candidate)
    pytest.fail("the BPMN corpus is missing: set LAPOR_BPMN_CORPUS to ../shared/bpmn-corpus")


def manifest() -> list[dict[str, str]]:
    lines = (corpus_folder() / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line and not line.startswith("#")]
    return list(csv.DictReader(rows, delimiter="\t"))


# Where the manifest says "refuse" but the importer can express the construct, it accepts it.
EXPRESSIBLE = {
    # An event-based gateway racing two messages against a timer is a waiting state with two
    # signals and a lapse; its Python-quoted "PT1S" is read as text, quotes stripped.
    "g03-spiff-event-based-gateway.bpmn": "an event-based gateway is a waiting state",
}


def problems_of(path: Path) -> tuple[Model | None, list[str]]:
    try:
        return load_bpmn_model(path), []
    except DefinitionErrors as exc:
        return None, [str(e) for e in exc.errors]
    except DefinitionError as exc:
        return None, [str(exc)]


@pytest.mark.parametrize("row", manifest(), ids=lambda row: row["file"])
def test_every_corpus_file_imports_or_is_refused_naming_element_and_line(
    row: dict[str, str],
) -> None:
    path = corpus_folder() / row["file"]
    began = time.perf_counter()
    model, problems = problems_of(path)
    elapsed = time.perf_counter() - began

    assert elapsed < 10, f"{row['file']} took {elapsed:.1f} s"
    expected = "accept" if row["file"] in EXPRESSIBLE else row["expect"]
    if expected == "accept":
        assert model is not None, "\n".join(problems)
        assert model.states and model.transitions and model.initial in model.states
        return
    assert model is None and problems, f"{row['file']} should be refused"
    for line in problems:
        assert line.startswith(f"{path}:"), line
        assert "\n" not in line and "Traceback" not in line
    wanted = [w for w in row["must_name"].split(";") if w and w != "-"]
    if expected == "refuse-malformed":
        line_number = wanted[0].removeprefix("line ")
        assert any(f":{line_number}:" in p for p in problems), problems
        return
    named = [
        w
        for w in wanted
        if any(w.split("@L")[0] in p and f":{w.split('@L')[1]}:" in p for p in problems)
    ]
    assert named, f"none of {wanted} named with its line in:\n" + "\n".join(problems)


def test_the_plain_reference_model_becomes_three_states_in_order() -> None:
    model, problems = problems_of(corpus_folder() / "a01-miwg-A.1.0-reference-plain-tasks.bpmn")

    assert model is not None, problems
    finals = [s for s in model.states.values() if s.final]
    assert len(model.states) == 4 and len(finals) == 1
    assert set(model.roles) == {"user"}


def test_three_interrupting_timers_become_three_clocks_in_calendar_time() -> None:
    path = corpus_folder() / "a07-camunda7-three-interrupting-timers-no-di.bpmn"
    model, problems = problems_of(path)

    assert model is not None, problems
    durations = sorted(str(c.duration.default) for c in model.clocks)
    assert durations == ["10800 calendar seconds", "3600 calendar seconds", "7200 calendar seconds"]
    assert all(c.fire is not None for c in model.clocks)


def test_lanes_become_roles_and_feel_conditions_become_guards() -> None:
    path = corpus_folder() / "a06-c8-expense-reimbursement-lanes-feel.bpmn"
    model, problems = problems_of(path)

    assert model is not None, problems
    assert {"employee", "manager", "finance_processing"} <= set(model.roles)
    guards = [t.guard for t in model.transitions.values() if t.guard]
    assert any('data.managerReviewOutcome == "approved"' in g for g in guards), guards


def test_a_flow_without_an_id_is_kept() -> None:
    model, problems = problems_of(
        corpus_folder() / "a09-camunda7-escalation-intermediate-throw.bpmn"
    )

    assert model is not None, problems
    assert model.initial == "task_after_thrown_escalation"
    assert [(n.to, n.template) for n in model.intake_notify] == [("escalationCode", "escalation")]


def test_a_message_catch_is_a_signal_named_after_the_message() -> None:
    model, problems = problems_of(corpus_folder() / "a11-camunda7-message-intermediate-catch.bpmn")

    assert model is not None, problems
    assert "new_invoice_message" in model.transitions


# --- nothing is evaluated --------------------------------------------------------------------

CANARY_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" targetNamespace="x">
  <process id="canary" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <userTask id="review">
      <extensionElements>
        <spiffworkflow:preScript>__import__('os').system('touch {canary}')</spiffworkflow:preScript>
      </extensionElements>
    </userTask>
    <boundaryEvent id="late" attachedToRef="review">
      <timerEventDefinition>
        <timeDuration>__import__('os').system('touch {canary}') or "PT1H"</timeDuration>
      </timerEventDefinition>
    </boundaryEvent>
    <sequenceFlow id="f_late" sourceRef="late" targetRef="done"/>
    <sequenceFlow id="f2" sourceRef="review" targetRef="choice"/>
    <exclusiveGateway id="choice"/>
    <sequenceFlow id="yes" sourceRef="choice" targetRef="done">
      <conditionExpression xsi:type="tFormalExpression"
        >__import__('os').system('touch {canary}')</conditionExpression>
    </sequenceFlow>
    <sequenceFlow id="no" sourceRef="choice" targetRef="done">
      <conditionExpression xsi:type="tFormalExpression" language="groovy"
        >"touch {canary}".execute()</conditionExpression>
    </sequenceFlow>
    <scriptTask id="run_me" scriptFormat="python">
      <script>open('{canary}', 'w')</script>
    </scriptTask>
    <endEvent id="done">
      <extensionElements>
        <camunda:executionListener event="start">
          <camunda:script scriptFormat="groovy">new File('{canary}').text = 'ran'</camunda:script>
        </camunda:executionListener>
      </extensionElements>
    </endEvent>
  </process>
</definitions>
"""


def test_conditions_timers_and_scripts_are_refused_and_never_run(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    path = tmp_path / "canary.bpmn"
    path.write_text(CANARY_BPMN.replace("{canary}", str(canary)), encoding="utf-8")

    model, problems = problems_of(path)

    assert model is None
    assert not canary.exists(), "something in the file was evaluated"
    text = "\n".join(problems)
    for element in ("review", "late", "yes", "no", "run_me", "done"):
        assert f"'{element}'" in text, f"{element} not named in:\n{text}"


# --- hostile XML -----------------------------------------------------------------------------


def refusal(data: bytes) -> str:
    began = time.perf_counter()
    with pytest.raises(DefinitionError) as caught:
        parse_bpmn_bytes(data, "hostile.bpmn")
    assert time.perf_counter() - began < 10
    return str(caught.value)


def test_billion_laughs_is_refused_before_any_entity_expands() -> None:
    laughs = b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    laughs += b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
        for i in range(1, 10)
    )
    laughs += b']>\n<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol9;'
    laughs += b"</definitions>"

    assert "DOCTYPE" in refusal(laughs) and "hostile.bpmn:2:" in refusal(laughs)


def test_an_external_entity_reading_a_local_file_is_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</definitions>'
    )

    message = refusal(xxe)

    assert "DOCTYPE" in message and "root:" not in message


@pytest.fixture
def tripwire() -> Iterator[tuple[int, list[str]]]:
    """A listener on 127.0.0.1 that records any connection: none may ever come."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    hits: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            hits.append("connected")
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join()
    server.close()


def test_a_remote_dtd_is_refused_without_a_connection(tripwire: tuple[int, list[str]]) -> None:
    port, hits = tripwire
    remote = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE definitions SYSTEM "http://127.0.0.1:%d/evil.dtd">\n'
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>' % port
    )

    assert "DOCTYPE" in refusal(remote)
    time.sleep(0.3)
    assert hits == []


def test_a_50_mb_file_is_refused_unparsed(tmp_path: Path) -> None:
    big = tmp_path / "big.bpmn"
    with big.open("wb") as out:
        out.write(b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">')
        chunk = b"<!-- " + b"x" * (1024 * 1024) + b" -->"
        for _ in range(50):
            out.write(chunk)
        out.write(b"</definitions>")
    began = time.perf_counter()

    model, problems = problems_of(big)

    assert model is None and len(problems) == 1 and "larger than" in problems[0]
    assert time.perf_counter() - began < 10
    assert big.stat().st_size > MAX_BYTES * 9


def test_a_file_that_is_not_xml_names_line_and_column() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_bpmn_bytes(b"<definitions>\n  <process id='a'>\n</definitions>", "bad.bpmn")

    assert str(caught.value).startswith("bad.bpmn:3:")


def test_a_file_that_is_not_bpmn_says_so(tmp_path: Path) -> None:
    path = tmp_path / "other.bpmn"
    path.write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')

    model, problems = problems_of(path)

    assert model is None and "not a BPMN 2.0 file" in problems[0]
    with pytest.raises(LaporError):
        load_bpmn_model(path)


def test_a_bpmn_file_out_of_sync_with_its_yaml_is_one_clear_problem(tmp_path: Path) -> None:
    import shutil

    from engine.definitions.loader import load_models

    shutil.copytree(ROOT / "workflows", tmp_path / "workflows")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    bpmn = tmp_path / "workflows" / "sp4n-lapor.bpmn"
    text = bpmn.read_text(encoding="utf-8")
    assert 'status="Belum Terverifikasi"' in text
    bpmn.write_text(text.replace('status="Belum Terverifikasi"', 'status="Baru"', 1))

    with pytest.raises(DefinitionError, match="export it again") as caught:
        load_models(tmp_path / "workflows", tmp_path / "policies")
    assert str(caught.value).startswith(f"{bpmn}:")


def test_lapor_import_writes_a_workflow_and_policies_that_load_as_the_same_model(
    tmp_path: Path,
) -> None:
    import shutil

    from typer.testing import CliRunner

    from engine.definitions.loader import load_model
    from engine.faces.cli.main import app

    shutil.copytree(ROOT / "policies" / "calendars", tmp_path / "policies" / "calendars")
    source = corpus_folder() / "a06-c8-expense-reimbursement-lanes-feel.bpmn"
    output = tmp_path / "workflows" / "expense.yaml"

    result = CliRunner().invoke(app, ["import", str(source), "-o", str(output)])

    assert result.exit_code == 0, result.output
    imported = load_model(output, tmp_path / "policies")
    assert imported.hash == load_bpmn_model(source).hash
    again = CliRunner().invoke(app, ["import", str(source), "-o", str(output)])
    assert again.exit_code != 0 and "--force" in str(again.exception)
