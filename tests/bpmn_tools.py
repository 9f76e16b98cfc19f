"""External checkers for BPMN files: bpmnlint, bpmn-moddle and bpmn-js in headless Chromium.

The tests of the BPMN exporter hold its output against the bpmn.io tools that real users open
such files with, instead of against our own reading of the spec:

* :func:`bpmnlint` runs the bpmnlint CLI with ``bpmnlint:recommended`` and returns its problems;
* :func:`moddle_warnings` parses the file with bpmn-moddle's ``fromXML`` (the parser of bpmn-js
  and Camunda Modeler) and returns its import warnings;
* :func:`bpmn_js_import` opens the file in the bpmn-js viewer in headless Chromium (Playwright
  for Python, the system ``/usr/bin/chromium``), returns ``importXML``'s warnings, the number of
  shapes drawn and the SVG, and can save a PNG screenshot of the fitted diagram.

Nothing is downloaded at check time. ``scripts/ensure-node-tools.sh`` installs pinned versions
from the npm registry once into ``${LAPOR_CACHE:-~/.cache/lapor-sla}/node-tools/<stamp>/`` and
``scripts/ensure-chromium.sh`` installs Debian's ``chromium``; :func:`node_tools` and
:func:`chromium` run them once per process (a no-op when already provisioned). A provisioning
failure fails the calling test with the script's output; a checker that cannot give an answer
(a crash, an unreadable file, an output it does not understand) raises :class:`BpmnToolError`.

:func:`bpmn_js_import` uses Playwright's sync API and a fresh browser per call (about a second),
so call it from plain (non-``async``) tests: the sync API refuses to run inside an event loop.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "CHROMIUM_SCRIPT",
    "NODE_TOOLS_SCRIPT",
    "BpmnJsResult",
    "BpmnToolError",
    "bpmn_js_import",
    "bpmnlint",
    "chromium",
    "moddle_warnings",
    "node_tools",
]

_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
#: Installs bpmnlint, bpmn-moddle and bpmn-js; prints the tools folder as its last stdout line.
NODE_TOOLS_SCRIPT = _SCRIPTS / "ensure-node-tools.sh"
#: Installs Debian's chromium; prints the binary path as its last stdout line.
CHROMIUM_SCRIPT = _SCRIPTS / "ensure-chromium.sh"

#: Time limits (seconds) for one run of a tool; the checks take a second or two when warm.
PROVISION_TIMEOUT = 900
CHECK_TIMEOUT = 60

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: bpmnlint's closing line, e.g. ``✖ 3 problems (2 errors, 1 warning)``.
_LINT_SUMMARY = re.compile(r"(\d+) problems? \((\d+) errors?, (\d+) warnings?\)")
#: The start of a problem row: two spaces, the element id (empty for file-level problems), the
#: category, up to the message column.
_LINT_ROW = re.compile(r"  (\S*)\s+(error|warning)\s+(?=\S)")
#: Characters that bpmnlint's file-argument globbing (tiny-glob) would interpret.
_GLOB_CHARS = re.compile(r"[*?\[\]{}()!]")


class BpmnToolError(RuntimeError):
    """A checker could not give an answer for the file (as opposed to reporting findings)."""


@dataclass(frozen=True)
class BpmnJsResult:
    """What bpmn-js made of a file.

    ``warnings``: the messages of ``importXML``'s ``warnings`` (unresolved references, unknown
    elements, ...); ``shapes``: shapes drawn on the canvas (not counting connections, labels and
    the root planes); ``svg``: the diagram as ``saveSVG`` exports it; ``connections``: sequence
    flows, message flows and associations drawn.
    """

    warnings: list[str]
    shapes: int
    svg: str
    connections: int = 0


def _provision(script: Path) -> Path:
    try:
        done = subprocess.run(
            ["sh", str(script)],
            capture_output=True,
            text=True,
            timeout=PROVISION_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script.name} did not finish within {PROVISION_TIMEOUT} s: {exc.stderr!r}")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        pytest.fail(
            f"{script.name} failed (exit {done.returncode}):\n{done.stderr}{done.stdout}",
            pytrace=False,
        )
    return Path(lines[-1])


@functools.cache
def node_tools() -> Path:
    """The provisioned bpmn.io tools folder (runs ``scripts/ensure-node-tools.sh`` once).

    Fails the calling test with the script's stderr when provisioning fails.
    """
    folder = _provision(NODE_TOOLS_SCRIPT)
    if not (folder / ".complete").is_file():
        pytest.fail(f"{NODE_TOOLS_SCRIPT.name} printed {folder}, which holds no complete install")
    return folder


@functools.cache
def chromium() -> Path:
    """The system Chromium binary (runs ``scripts/ensure-chromium.sh`` once)."""
    binary = _provision(CHROMIUM_SCRIPT)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{CHROMIUM_SCRIPT.name} printed {binary}, which is not executable")
    return binary


def _existing(path: Path) -> Path:
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", "NO_UPDATE_NOTIFIER": "1"}
    try:
        return subprocess.run(
            args,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BpmnToolError(f"{args[0]} did not finish within {CHECK_TIMEOUT} s") from exc


def _lint_rows(out: str) -> list[str]:
    """The problems in bpmnlint's report: a line naming the file, then a table (cli-table, each
    row indented by two spaces, columns padded to a common width), then the summary line.

    A cell holding a newline continues on the next table line with the cells before it blank;
    bpmnlint's only multi-line message is a parse error's, so such a line is joined to the
    message of the row above.
    """
    problems: list[str] = []
    category_column = message_column = -1
    for line in out.splitlines():
        if not line.startswith("  ") or not line.strip():
            continue
        row = _LINT_ROW.match(line)
        if row is not None and category_column in (-1, row.start(2)):
            category_column, message_column = row.start(2), row.end()
            problems.append(re.sub(r"\s{2,}", "  ", line.strip()))
        elif problems and not line[:message_column].strip():
            problems[-1] = f"{problems[-1]} {line.strip()}"
        else:
            problems.append(line.strip())  # unexpected: left for the summary check to flag
    return problems


def bpmnlint(path: Path) -> list[str]:
    """bpmnlint's problems for ``path`` under ``bpmnlint:recommended`` (empty: clean).

    Each problem is one row of bpmnlint's report with its columns separated by two spaces:
    ``"<element id>  <error|warning>  <message>  <rule>"`` (the id is missing for file-level
    problems such as import warnings, which bpmnlint reports as errors with an empty rule).
    The CLI runs with ``--config`` naming the tools folder's ``.bpmnlintrc`` and with that folder
    as its working directory, so no ``.bpmnlintrc`` or ``node_modules`` near the file or the
    caller's directory is picked up. Raises :class:`BpmnToolError` when bpmnlint exits non-zero
    without a report it can be read from, or when the report does not add up.
    """
    path = _existing(path)
    tools = node_tools()
    with tempfile.TemporaryDirectory(prefix="bpmnlint-") as scratch:
        target = path
        if _GLOB_CHARS.search(str(path)):
            # The CLI expands its file arguments as globs; lint a copy under a plain name.
            target = Path(scratch) / "diagram.bpmn"
            shutil.copyfile(path, target)
        done = _run(
            [
                str(tools / "node_modules" / ".bin" / "bpmnlint"),
                "--config",
                str(tools / ".bpmnlintrc"),
                str(target),
            ],
            cwd=tools,
        )
    out = _ANSI.sub("", done.stdout)
    problems = _lint_rows(out)
    summary = _LINT_SUMMARY.search(out)
    output = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    if done.returncode not in (0, 1) or (done.returncode == 1 and not problems):
        raise BpmnToolError(f"bpmnlint failed on {path}: {output}")
    if (summary is None) != (not problems) or (
        summary is not None and int(summary.group(1)) != len(problems)
    ):
        raise BpmnToolError(f"cannot read bpmnlint's report on {path}: {output}")
    return problems


def moddle_warnings(path: Path) -> list[str]:
    """bpmn-moddle's ``fromXML`` warnings for ``path`` (empty: it parsed cleanly).

    Raises :class:`BpmnToolError` when the file does not parse at all (the message names
    bpmn-moddle's error and any warnings it had collected) or the checker misbehaves.
    """
    path = _existing(path)
    tools = node_tools()
    done = _run(["node", str(tools / "check-moddle.mjs"), str(path)], cwd=tools)
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        raise BpmnToolError(
            f"check-moddle.mjs gave no report on {path} (exit {done.returncode}):\n"
            f"{done.stdout}{done.stderr}"
        )
    if done.returncode != 0 or "error" in report:
        raise BpmnToolError(
            f"bpmn-moddle cannot parse {path}: {report.get('error')}; "
            f"warnings: {report.get('warnings')}"
        )
    if report.get("rootElement") is None:
        raise BpmnToolError(f"bpmn-moddle found no root element in {path}")
    return [str(message) for message in report["warnings"]]


# Runs in the page: import the XML into the viewer made by viewer.html, then measure the canvas.
_IMPORT_JS = """
async (xml) => {
  const viewer = window.viewer;
  const messages = (warnings) => (warnings || []).map((w) => String((w && w.message) || w));
  try {
    const { warnings } = await viewer.importXML(xml);
    const elements = viewer.get('elementRegistry').getAll();
    const drawn = elements.filter((e) => e.parent && e.type !== 'label');
    const { svg } = await viewer.saveSVG();
    return {
      warnings: messages(warnings),
      shapes: drawn.filter((e) => !e.waypoints).length,
      connections: drawn.filter((e) => e.waypoints).length,
      svg,
    };
  } catch (err) {
    return { error: String((err && err.message) || err), warnings: messages(err && err.warnings) };
  }
}
"""


def bpmn_js_import(
    path: Path, screenshot: Path | None = None, *, require_shapes: bool = True
) -> BpmnJsResult:
    """Open ``path`` in the bpmn-js viewer in headless Chromium; see :class:`BpmnJsResult`.

    The viewer page is the tools folder's ``viewer.html``, loaded over ``file://`` (it pulls
    ``bpmn-viewer.production.min.js`` and the bpmn-js stylesheets from ``node_modules``), so no
    server or network is involved. With ``screenshot``, the diagram is fitted to a 1280x800
    viewport (``canvas.zoom('fit-viewport', 'auto')``) and saved there as a PNG.
    Raises :class:`BpmnToolError` when ``importXML`` throws (with its message and warnings), when
    the page fails, or (unless ``require_shapes`` is false) when nothing is drawn.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    path = _existing(path)
    tools = node_tools()
    binary = chromium()
    # Decoded like check-moddle.mjs reads it (UTF-8, invalid bytes replaced): bpmn-js gets a string.
    xml = path.read_bytes().decode("utf-8", errors="replace")
    args = ["--disable-gpu", "--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox on
    page_errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(binary), headless=True, args=args, timeout=CHECK_TIMEOUT * 1000
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(CHECK_TIMEOUT * 1000)
                page.on("pageerror", lambda exc: page_errors.append(str(exc)))
                page.goto((tools / "viewer.html").as_uri())
                if not page.evaluate("() => typeof window.viewer === 'object'"):
                    raise BpmnToolError(f"the bpmn-js viewer did not load: {page_errors}")
                report = page.evaluate(_IMPORT_JS, xml)
                if "error" not in report and screenshot is not None:
                    page.evaluate("() => window.viewer.get('canvas').zoom('fit-viewport', 'auto')")
                    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshot))
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise BpmnToolError(f"headless Chromium failed on {path}: {exc}") from exc
    if "error" in report:
        raise BpmnToolError(
            f"bpmn-js cannot import {path}: {report['error']}; warnings: {report['warnings']}"
        )
    result = BpmnJsResult(
        warnings=[str(message) for message in report["warnings"]],
        shapes=int(report["shapes"]),
        svg=str(report["svg"]),
        connections=int(report["connections"]),
    )
    if require_shapes and result.shapes == 0:
        raise BpmnToolError(f"bpmn-js imported {path} but drew no shape: {result.warnings}")
    return result
