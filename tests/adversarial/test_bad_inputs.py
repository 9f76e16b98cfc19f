"""Hostile and broken definition files are refused with a located error, never a traceback.

Each file in ``bad_inputs/`` is one case; its first line, ``# expect: <fragment>``, names a
fragment of the message it must produce. Adding a case is adding a file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.definitions.loader import MAX_DEPTH, load_model, validate_paths
from engine.definitions.yamlio import MAX_FILE_BYTES
from engine.domain.errors import DefinitionError, DefinitionErrors

BAD_INPUTS = Path(__file__).parent / "bad_inputs"
CASES = sorted(BAD_INPUTS.glob("*.yaml"))


def expected_fragment(path: Path) -> str:
    # Bytes, not text: one case is deliberately not UTF-8 (its header line is plain ASCII).
    header = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    match = re.fullmatch(r"# expect: (.+)", header)
    assert match, f"{path.name}: first line must be '# expect: <message fragment>'"
    return match.group(1)


def located_in(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(str(path)) + r":\d+:\d+: ")


def test_there_are_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_input_is_refused_with_its_file_and_line(path: Path) -> None:
    errors = validate_paths([path])
    assert errors, f"{path.name} was accepted"
    messages = [str(e) for e in errors]
    located = located_in(path)
    assert all(located.match(m) for m in messages), messages
    fragment = expected_fragment(path)
    assert any(fragment in m for m in messages), f"{fragment!r} not in {messages}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_loading_bad_input_raises_only_definition_errors(path: Path, tmp_path: Path) -> None:
    # Anything but a DefinitionError escaping here would reach a user as a traceback.
    with pytest.raises((DefinitionError, DefinitionErrors)):
        load_model(path, tmp_path)


def test_alias_bomb_is_refused_at_the_first_anchor() -> None:
    path = BAD_INPUTS / "alias_bomb.yaml"
    (error,) = validate_paths([path])
    assert "aliases" in error.message
    # Refused at the first anchor, before any alias could be followed.
    assert error.location is not None and error.location.line == 3


def test_python_tag_builds_nothing_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "tagged.yaml"
    path.write_text(
        f'workflow: !!python/object/apply:os.system ["touch {marker}"]\n', encoding="utf-8"
    )
    (error,) = validate_paths([path])
    assert "is not allowed" in error.message
    assert not marker.exists()


def test_huge_file_is_refused_without_being_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    line = "# " + "x" * 1022 + "\n"
    path.write_text("workflow: huge\n" + line * (MAX_FILE_BYTES // len(line) + 2), "utf-8")
    assert path.stat().st_size > MAX_FILE_BYTES
    (error,) = validate_paths([path])
    assert str(error).startswith(f"{path}:1:1: file is larger than")


def test_a_folder_of_bad_inputs_reports_every_file() -> None:
    errors = validate_paths([BAD_INPUTS])
    files = {Path(e.location.file).name for e in errors if e.location is not None}
    assert files == {p.name for p in CASES}
    keys = [(e.location.file, e.location.line) for e in errors if e.location is not None]
    assert keys == sorted(keys)


def test_pathological_nesting_is_refused_before_the_parser_sees_it(tmp_path: Path) -> None:
    # PyYAML's scanner is quadratic in flow depth: a megabyte of '[' would take hours to parse.
    path = tmp_path / "brackets.yaml"
    path.write_text("workflow: " + "[" * 1_000_000, encoding="utf-8")
    (error,) = validate_paths([path])
    assert str(error).startswith(f"{path}:1:")
    assert f"deeper than {MAX_DEPTH} levels" in error.message
