"""lapor-sla as a user installs it: the wheel, built from this checkout, installed into a fresh
virtual environment, runs ``lapor validate``, ``lapor demo --complaints 200`` and ``lapor test``
from an empty directory, on the definitions it ships.

Nothing is downloaded: the wheel is built with the development environment's setuptools, and the
fresh environment borrows the development environment's installed dependencies through a
``.pth`` line (a path line only: the ``.pth`` files over there, among them the editable install
of this checkout, are not run), so ``engine`` can come from the wheel alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What building the wheel reads: pyproject.toml names README.md; the rest are the packages and
# the definitions it ships (tests/packaging/test_package_list.py keeps that list whole).
SOURCES = ["pyproject.toml", "README.md", "engine", "workers", "workflows", "policies"]
DEFINITIONS = ("workflows", "policies")


def _run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _setuptools_can_build() -> None:
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    wanted = next(r for r in required if r.startswith("setuptools"))
    minimum = tuple(int(part) for part in wanted.split(">=")[1].split("."))
    have = tuple(int(part) for part in version("setuptools").split(".")[:2] if part.isdigit())
    if have < minimum:
        pytest.fail(
            f"building the wheel offline needs {wanted} in the development environment "
            f"(it has {version('setuptools')}): pip install '{wanted}'"
        )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; its folder."""
    _setuptools_can_build()
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy: no build/ or egg-info in the checkout, whatever else goes on in it.
    source = work / "source"
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    built = _run([*pip, "wheel", str(source), *offline, "--wheel-dir", str(work / "dist")], work)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("lapor_sla-*.whl")

    env = work / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=work)
    assert made.returncode == 0, made.stderr
    python = env / "bin" / "python"
    installed = _run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        cwd=work,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site.stdout.strip()) / "lapor-dev-dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(ours))
    )
    return env


@pytest.fixture
def user_env(venv: Path) -> dict[str, str]:
    """The environment of a user of the fresh virtual environment (no checkout, no project)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LAPOR_") and key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
    env["VIRTUAL_ENV"] = str(venv)
    env["COLUMNS"] = "120"
    return env


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    assert not any(folder.iterdir()) and ROOT not in folder.parents
    return folder


def test_the_wheel_carries_every_definition_file(venv: Path, user_env: dict[str, str]) -> None:
    python = str(venv / "bin" / "python")
    probe = _run(
        [python, "-c", "import engine.definitions.project as p; print(p.shipped_root())"],
        cwd=venv,
        env=user_env,
    )
    assert probe.returncode == 0, probe.stderr
    shipped = Path(probe.stdout.strip())
    assert venv in shipped.parents and shipped.name == "shipped", shipped
    for name in DEFINITIONS:
        in_repo = {p.relative_to(ROOT / name) for p in (ROOT / name).rglob("*.y*ml")}
        in_wheel = {p.relative_to(shipped / name) for p in (shipped / name).rglob("*.y*ml")}
        assert in_wheel == in_repo and in_repo, name


def test_an_installed_wheel_runs_validate_demo_and_test_from_an_empty_directory(
    venv: Path, user_env: dict[str, str], empty: Path
) -> None:
    lapor = str(venv / "bin" / "lapor")
    # The engine imported is the installed one, not this checkout (editable install or cwd).
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import engine; print(engine.__file__)"],
        cwd=empty,
        env=user_env,
    )
    assert where.returncode == 0, where.stderr
    assert venv in Path(where.stdout.strip()).parents, where.stdout
    shipped_note = "(the definitions shipped with lapor-sla)"

    validated = _run([lapor, "validate"], cwd=empty, env=user_env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "ok: no problems found" in validated.stdout
    note = validated.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("lapor: using project "), note
    assert note[0].endswith(shipped_note) and str(venv) in note[0], note

    demo = _run([lapor, "demo", "--complaints", "200"], cwd=empty, env=user_env, timeout=180)
    assert demo.returncode == 0, demo.stdout + demo.stderr[-2000:]
    assert "200 complaints" in demo.stdout and "On time per stage" in demo.stdout, demo.stdout
    assert shipped_note in demo.stderr
    assert (empty / "lapor-demo.db").is_file()

    tested = _run([lapor, "test"], cwd=empty, env=user_env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    summary = tested.stdout.strip().splitlines()[-1]
    assert " passed, 0 failed" in summary and int(summary.split()[1]) >= 15, summary
    assert tested.stderr.count("lapor: using project") == 1 and shipped_note in tested.stderr

    assert {p.name for p in empty.iterdir()} <= {"lapor-demo.db", "lapor-demo.db-wal"}


def test_an_installed_wheel_refuses_a_project_folder_that_is_not_one(
    venv: Path, user_env: dict[str, str], empty: Path
) -> None:
    lapor = str(venv / "bin" / "lapor")
    given = _run([lapor, "validate", "--project", str(empty)], cwd=empty, env=user_env)
    from_env = _run([lapor, "test"], cwd=empty, env={**user_env, "LAPOR_PROJECT": str(empty)})
    for result, name in ((given, "--project"), (from_env, "LAPOR_PROJECT")):
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.splitlines() == [
            f"error: {name}: {empty.resolve()} is not a project folder "
            "(it needs workflows/ and policies/)"
        ]
