"""The architecture's rules, checked on the source: one door to the engine, and the core never
reaching for the builder."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
DOCKER_BACKEND = RUNTIME / "backends" / "docker"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_the_docker_backend_imports_docker_py() -> None:
    offenders = {
        str(path.relative_to(RUNTIME)): sorted(m for m in _imports(path) if m == "docker" or m.startswith("docker."))
        for path in RUNTIME.rglob("*.py")
        if DOCKER_BACKEND not in path.parents
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_core_imports_no_backend_but_through_the_protocol() -> None:
    """runtime/sandbox and runtime/ops know `Backend` and `open_backend`, never a backend's module."""
    for package in ("sandbox", "ops", "monitoring", "validation"):
        for path in (RUNTIME / package).rglob("*.py"):
            reached = {m for m in _imports(path) if m.startswith("runtime.backends.docker")}
            assert not reached, f"{path.relative_to(RUNTIME)} imports {sorted(reached)}"


def test_the_runtime_never_imports_the_builder() -> None:
    for path in RUNTIME.rglob("*.py"):
        assert not {m for m in _imports(path) if m == "builder" or m.startswith("builder.")}, path
