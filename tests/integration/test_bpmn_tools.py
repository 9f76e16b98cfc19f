"""The external BPMN checkers of ``tests/bpmn_tools.py`` themselves: each one runs on a real
diagram from the shared corpus, and each one reports the defect planted in a negative control.

The first run on a fresh machine provisions the tools (npm install, apt-get install chromium);
after that every test takes a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import bpmn_tools

CORPUS = Path("/work/shared/bpmn-corpus")
#: OMG MIWG reference A.1.0: start, three tasks, end, full BPMNDI, ISO-8859-1 declared.
A01 = CORPUS / "a01-miwg-A.1.0-reference-plain-tasks.bpmn"

NAMESPACES = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
    'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
    'xmlns:di="http://www.omg.org/spec/DD/20100524/DI"'
)


def diagram(process: str, shapes: str) -> str:
    """A BPMN document holding ``process`` (the body of process ``p``) and ``shapes`` (its DI)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NAMESPACES} id="defs" targetNamespace="urn:lapor-sla:test">
  <bpmn:process id="p" isExecutable="false">
{process}
  </bpmn:process>
  <bpmndi:BPMNDiagram id="dia">
    <bpmndi:BPMNPlane id="plane" bpmnElement="p">
{shapes}
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def shape(element: str, x: int, width: int = 36, height: int = 36) -> str:
    return (
        f'      <bpmndi:BPMNShape id="{element}_di" bpmnElement="{element}">'
        f'<dc:Bounds x="{x}" y="100" width="{width}" height="{height}" /></bpmndi:BPMNShape>'
    )


def edge(element: str, x1: int, x2: int) -> str:
    return (
        f'      <bpmndi:BPMNEdge id="{element}_di" bpmnElement="{element}">'
        f'<di:waypoint x="{x1}" y="118" /><di:waypoint x="{x2}" y="118" /></bpmndi:BPMNEdge>'
    )


#: Start -> "Check" -> end, all named and drawn: clean for every checker.
CLEAN_PROCESS = """\
    <bpmn:startEvent id="start" name="Received"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:task id="check" name="Check">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:task>
    <bpmn:endEvent id="end" name="Done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check" />
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end" />"""
CLEAN_SHAPES = "\n".join(
    [
        shape("start", 100),
        shape("check", 180, 100, 80),
        shape("end", 330),
        edge("f1", 136, 180),
        edge("f2", 280, 330),
    ]
)
CLEAN = diagram(CLEAN_PROCESS, CLEAN_SHAPES)

#: Like CLEAN, but the second flow's targetRef names no element of the document.
DANGLING_TARGET = diagram(
    CLEAN_PROCESS.replace('targetRef="end"', 'targetRef="nowhere"').replace(
        "<bpmn:incoming>f2</bpmn:incoming>", ""
    ),
    CLEAN_SHAPES,
)

#: Like CLEAN, plus a named, drawn task that no flow enters or leaves.
ISOLATED_TASK = diagram(
    CLEAN_PROCESS + '\n    <bpmn:task id="orphan" name="Forgotten" />',
    CLEAN_SHAPES + "\n" + shape("orphan", 400, 100, 80),
)


def write(tmp_path: Path, name: str, xml: str) -> Path:
    path = tmp_path / name
    path.write_text(xml, encoding="utf-8")
    return path


def test_corpus_file_through_all_three_checks(tmp_path: Path) -> None:
    assert A01.is_file(), f"shared corpus missing: {A01}"
    # The file declares ISO-8859-1, which bpmn-moddle (under all three tools) does not support:
    # each reports it, and nothing else.
    encoding = "unsupported document encoding <ISO-8859-1>, falling back to UTF-8"

    problems = bpmn_tools.bpmnlint(A01)
    assert problems == [f"error  Import warning: {encoding}"]

    assert bpmn_tools.moddle_warnings(A01) == [encoding]

    png = tmp_path / "a01.png"
    result = bpmn_tools.bpmn_js_import(A01, screenshot=png)
    assert result.warnings == [encoding]
    assert result.shapes == 5  # start, three tasks, end
    assert result.connections == 4
    assert result.svg.lstrip().startswith("<?xml") and "<svg" in result.svg
    assert "Task 1" in result.svg
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clean_diagram_is_clean_everywhere(tmp_path: Path) -> None:
    path = write(tmp_path, "clean.bpmn", CLEAN)
    assert bpmn_tools.bpmnlint(path) == []
    assert bpmn_tools.moddle_warnings(path) == []
    result = bpmn_tools.bpmn_js_import(path)
    assert result.warnings == []
    assert (result.shapes, result.connections) == (3, 2)


def test_dangling_target_ref_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "dangling.bpmn", DANGLING_TARGET)
    unresolved = "unresolved reference <nowhere>"
    assert unresolved in bpmn_tools.moddle_warnings(path)
    assert unresolved in bpmn_tools.bpmn_js_import(path).warnings
    assert any(unresolved in problem for problem in bpmn_tools.bpmnlint(path))


def test_isolated_task_is_a_bpmnlint_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "isolated.bpmn", ISOLATED_TASK)
    assert bpmn_tools.moddle_warnings(path) == []  # well-formed: only the linter objects
    problems = bpmn_tools.bpmnlint(path)
    assert problems, "bpmnlint found nothing wrong with a task no flow enters or leaves"
    assert all(problem.startswith("orphan  ") for problem in problems), problems
    assert any(problem.endswith("  no-disconnected") for problem in problems), problems
    assert bpmn_tools.bpmn_js_import(path).shapes == 4


def test_unparseable_file_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.bpmn", "<bpmn:definitions xmlns:bpmn='urn:x'><oops")
    with pytest.raises(bpmn_tools.BpmnToolError, match="bpmn-moddle cannot parse"):
        bpmn_tools.moddle_warnings(path)
    with pytest.raises(bpmn_tools.BpmnToolError, match="bpmn-js cannot import"):
        bpmn_tools.bpmn_js_import(path)
    assert any("Parse error" in problem for problem in bpmn_tools.bpmnlint(path))


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        bpmn_tools.bpmnlint(tmp_path / "absent.bpmn")


def test_bpmnlint_handles_glob_characters_in_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "odd [name] {x}.bpmn", ISOLATED_TASK)
    assert any(p.endswith("  no-disconnected") for p in bpmn_tools.bpmnlint(path))
