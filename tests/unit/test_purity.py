"""The core (``engine/domain/``) stays pure, and no engine or worker code runs strings as code,
checked on the AST.

Pure means: decisions depend only on (model, case, event, now). So the core modules import no
I/O, clock, randomness, concurrency or logging library and never read the wall clock themselves.
The AST is inspected rather than the modules imported, so a forbidden import inside a function
body or behind ``if TYPE_CHECKING`` is caught as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The whole domain package: the layers contract (pyproject.toml) keeps it from importing the
# rest of the engine, this test from importing I/O.
PURE_MODULES = tuple(
    str(path.relative_to(ROOT)) for path in sorted((ROOT / "engine" / "domain").glob("*.py"))
)
FORBIDDEN_IMPORTS = frozenset(
    {
        "sqlalchemy",
        "temporalio",
        "asyncio",
        "time",
        "random",
        "os",
        "socket",
        "subprocess",
        "holidays",
        "zoneinfo",
        "uuid",
        "secrets",
        "threading",
        "structlog",
        "logging",
        "importlib",  # the way around every other entry of this list
    }
)
FORBIDDEN_IN_PURE = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "eval",
        "exec",
        "open",
        "print",
        "__import__",
    }
)
FORBIDDEN_EVERYWHERE = frozenset(
    {
        "eval",
        "exec",
        "yaml.load",
        "yaml.load_all",
        "yaml.unsafe_load",
        "yaml.unsafe_load_all",
        "yaml.full_load",
        "yaml.full_load_all",
    }
)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import anywhere in the module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin: ``from datetime import datetime as dt`` gives dt -> ..."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else ``None``."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def called_names(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every call, with imported aliases resolved to their origin."""
    aliases = import_aliases(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        origin = aliases.get(head, head)
        yield node.lineno, f"{origin}.{rest}" if rest else origin


def code_files() -> list[Path]:
    files = [p for folder in ("engine", "workers") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert files, "no engine code found: is ROOT right?"
    return files


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io_clock_randomness_or_logging(module: str) -> None:
    tree = parse(ROOT / module)

    bad = [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(tree)
        if name in FORBIDDEN_IMPORTS
    ]

    assert bad == []


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_never_reads_the_clock_or_runs_io(module: str) -> None:
    tree = parse(ROOT / module)

    bad = [
        f"{module}:{line} calls {name}"
        for line, name in called_names(tree)
        if name in FORBIDDEN_IN_PURE or name.removeprefix("builtins.") in FORBIDDEN_IN_PURE
    ]

    assert bad == []


def test_no_engine_or_worker_code_evaluates_strings_or_loads_yaml_unsafely() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} calls {name}"
        for path in code_files()
        for line, name in called_names(parse(path))
        if name in FORBIDDEN_EVERYWHERE or name.removeprefix("builtins.") in FORBIDDEN_EVERYWHERE
    ]

    assert bad == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from datetime import datetime\ndatetime.now()", "datetime.datetime.now"),
        ("import datetime as d\nd.date.today()", "datetime.date.today"),
        ("from datetime import datetime as dt\ndt.utcnow()", "datetime.datetime.utcnow"),
        ("import builtins\nbuiltins.eval('1')", "builtins.eval"),
        ("import yaml\nyaml.load(s, Loader=yaml.Loader)", "yaml.load"),
        ("from yaml import unsafe_load\nunsafe_load(s)", "yaml.unsafe_load"),
    ],
)
def test_the_checker_sees_through_aliases(source: str, found: str) -> None:
    assert found in [name for _, name in called_names(ast.parse(source))]


def test_the_checker_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    import time\n    from os.path import join\n")

    assert [name for _, name in imported_modules(tree)] == ["time", "os"]
