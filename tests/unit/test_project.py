"""Which project a command uses: --project, then $LAPOR_PROJECT, then the nearest project above,
then the shipped definitions (engine.definitions.project.locate_project)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.definitions.project import (
    PROJECT_ENV,
    find_project_root,
    locate_project,
    shipped_root,
)
from engine.domain.errors import LaporError

ROOT = Path(__file__).resolve().parents[2]


def _project(folder: Path) -> Path:
    (folder / "workflows").mkdir(parents=True)
    (folder / "policies").mkdir()
    return folder


@pytest.fixture(autouse=True)
def _no_project_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROJECT_ENV, raising=False)


def test_in_a_checkout_the_shipped_definitions_are_the_checkout() -> None:
    assert shipped_root() == ROOT


def test_the_order_is_option_then_variable_then_above_then_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given, from_env, around = (_project(tmp_path / name) for name in ("given", "env", "around"))
    inside = around / "policies" / "deep"
    inside.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(inside)
    assert locate_project() == locate_project(start=None)
    assert (locate_project().root, locate_project().how) == (
        around,
        "found above the current directory",
    )
    assert locate_project(start=elsewhere).root == ROOT  # the shipped definitions
    assert locate_project(start=elsewhere).how == "the definitions shipped with lapor-sla"
    assert locate_project(start=inside).how == f"found above {inside}"
    monkeypatch.setenv(PROJECT_ENV, str(from_env))
    assert (locate_project().root, locate_project().how) == (from_env, f"from ${PROJECT_ENV}")
    found = locate_project(given)
    assert (found.root, found.how) == (given, "given with --project")
    assert found.workflows == given / "workflows" and found.scenarios == given / "policies/tests"
    assert found.calendars == given / "policies" / "calendars"


@pytest.mark.parametrize("how", ["--project", PROJECT_ENV])
def test_a_named_folder_that_is_not_a_project_is_an_error_never_a_fallback(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    if how == PROJECT_ENV:
        monkeypatch.setenv(PROJECT_ENV, str(tmp_path))
    with pytest.raises(LaporError) as raised:
        locate_project(tmp_path if how == "--project" else None)
    assert str(raised.value) == (
        f"{how}: {tmp_path.resolve()} is not a project folder (it needs workflows/ and policies/)"
    )


def test_find_project_root_walks_up_and_fails_outside_any_project(tmp_path: Path) -> None:
    assert find_project_root(ROOT / "policies" / "tests") == ROOT
    with pytest.raises(LaporError, match="no project"):
        find_project_root(tmp_path)
