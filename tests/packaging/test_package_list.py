"""pyproject.toml lists the wheel's packages by hand (two of them live outside engine/: the
repository's workflows/ and policies/, shipped as engine/definitions/shipped/); the list must
name every package of the code and every folder of the definitions, and nothing else."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = "engine.definitions.shipped"


def _setuptools() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]  # type: ignore[no-any-return]


def _folders(top: Path) -> set[Path]:
    return {top, *(d for d in top.rglob("*") if d.is_dir() and d.name != "__pycache__")}


def test_the_package_list_is_whole() -> None:
    code = {
        ".".join(folder.relative_to(ROOT).parts)
        for top in ("engine", "workers")
        for folder in _folders(ROOT / top)
        if any(folder.glob("*.py"))
    }
    definitions = {
        ".".join((SHIPPED, *folder.relative_to(ROOT).parts))
        for top in ("workflows", "policies")
        for folder in _folders(ROOT / top)
    }
    listed = _setuptools()["packages"]
    assert isinstance(listed, list) and len(listed) == len(set(listed))
    assert set(listed) == code | definitions


def test_the_definitions_map_to_the_repository_folders_and_ship_their_yaml() -> None:
    setuptools = _setuptools()
    assert setuptools["package-dir"] == {
        f"{SHIPPED}.{name}": name for name in ("workflows", "policies")
    }
    data = setuptools["package-data"]
    assert isinstance(data, dict)
    assert "*.yaml" in data[f"{SHIPPED}.workflows"]
    assert "**/*.yaml" in data[f"{SHIPPED}.policies"]
