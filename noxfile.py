"""Project tasks. `nox -l` lists them; `nox -s build -- python --force` passes arguments on."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

BUILD_DEPS = ["-e", ".[build]"]
DEV_DEPS = ["-e", ".[dev]"]
TEST_ENV = {"TESTCONTAINERS_RYUK_DISABLED": "true"}  # Ryuk's image cannot be pulled here


@nox.session
def render(session: nox.Session) -> None:
    """Render templates/ + languages.yaml into generated/."""
    session.install(*BUILD_DEPS)
    session.run("python", "-m", "builder", "render")


@nox.session
def build(session: nox.Session) -> None:
    """Render, then build and check images: `nox -s build [-- LANG ...] [--force] [--jobs N]`."""
    session.install(*BUILD_DEPS)
    session.run("python", "-m", "builder", "build", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: unit tests, then integration tests against the running engine."""
    session.install(*DEV_DEPS)
    session.run("pytest", *(session.posargs or ["tests"]), env=TEST_ENV)


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests only (no Docker needed)."""
    session.install(*DEV_DEPS)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Integration tests only (a running engine and built images)."""
    session.install(*DEV_DEPS)
    session.run("pytest", "tests/integration", *session.posargs, env=TEST_ENV)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, a render check, and hadolint on the generated Dockerfiles."""
    session.install(*DEV_DEPS)
    session.run("ruff", "check", "runtime", "builder", "tests", "benchmarks", "noxfile.py")
    session.run("mypy")
    session.run("python", "-m", "builder", "render", "--check")
    dockerfiles = sorted(
        os.path.join(root, name)
        for root, _dirs, files in os.walk("generated")
        for name in files
        if name.endswith(".Dockerfile")
    )
    session.run("hadolint", "--config", ".hadolint.yaml", *dockerfiles)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: print figures against raw docker-py measured in the same run."""
    session.install(*DEV_DEPS)
    for script in sorted(os.listdir("benchmarks")):
        if script.startswith("bench_") and script.endswith(".py"):
            session.run("python", os.path.join("benchmarks", script), *session.posargs)
