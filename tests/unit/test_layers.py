"""The import contracts of ``pyproject.toml`` (``make lint``) hold, and they do fail on a violation.

The violation is planted in a copy of the packages, never in the tree itself: the pure domain
importing the SDK, a face, is exactly what the layers contract exists to refuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_packages(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("engine", "workers"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_import_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_packages(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_the_domain_importing_a_face_breaks_the_layers_contract(tmp_path: Path) -> None:
    tree = copy_of_the_packages(tmp_path)
    with (tree / "engine" / "domain" / "case.py").open("a", encoding="utf-8") as module:
        module.write("\nfrom engine.faces import sdk  # planted by the test\n")

    result = lint_imports(tree)

    assert result.returncode != 0
    assert "engine.domain is not allowed to import engine.faces" in result.stdout
    assert "engine.domain.case -> engine.faces.sdk" in result.stdout


def test_an_import_cycle_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    tree = copy_of_the_packages(tmp_path)
    with (tree / "workers" / "connection.py").open("a", encoding="utf-8") as module:
        module.write("\nfrom workers import audit  # planted by the test\n")

    result = lint_imports(tree)

    assert result.returncode != 0
    assert "No cycles are allowed in workers" in result.stdout
