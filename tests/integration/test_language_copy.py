"""The registry's promise on a real engine: a language added by editing languages.yaml only.

A checkout gets a copy of python's entry under a new name with no aliases; `python -m builder
build` builds its image from that YAML alone, and the copy then behaves as python does in
every part: running, run_code, failure classification, the validator's patterns and syntax
check. The same checkout shows that a build that fails leaves no `<none>` image behind.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from runtime.config import RuntimeConfig
from runtime.monitoring.monitor import SandboxMonitor
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COPY = f"copy-{uuid.uuid4().hex[:6]}"
BROKEN = f"broken-{uuid.uuid4().hex[:6]}"


def _build(checkout: Path, *languages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", "build", *languages, "--no-engine-start"], cwd=checkout,
        capture_output=True, text=True, timeout=900, env={"PATH": "/usr/local/bin:/usr/bin:/bin",
                                                          "HOME": str(Path.home()), "PYTHONPATH": str(checkout)},
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Path]:
    """A copy of the project whose languages.yaml has two new entries, and nothing else changed."""
    if not docker_client.images.list(name="theappapp-python:latest"):
        pytest.skip("image theappapp-python:latest is not built (nox -s build -- python)")
    target = tmp_path_factory.mktemp("checkout") / "project"
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".git", ".nox", "logs", "__pycache__", "*.egg-info"))
    data: dict[str, Any] = yaml.safe_load((target / "languages.yaml").read_text())
    twin = copy.deepcopy(data["languages"]["python"])
    twin["aliases"] = []
    data["languages"][COPY] = twin
    broken = copy.deepcopy(twin)
    broken["env"]["THEAPPAPP_BROKEN"] = BROKEN  # a layer no build made before, committed before the failure
    broken["tools"] = [{"name": "nothing", "install": {"pip": ["theappapp-no-such-package==0.0.1"]},
                        "check": "true"}]
    data["languages"][BROKEN] = broken
    (target / "languages.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    yield target
    for name in (COPY, BROKEN):
        for image in docker_client.images.list(name=f"theappapp-{name}"):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def built(checkout: Path) -> Path:
    done = _build(checkout, COPY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"theappapp-{COPY}:3.11" in done.stdout
    return checkout


@pytest.fixture
async def manager(built: Path, runtime_config: RuntimeConfig, tmp_path: Path) -> AsyncIterator[ContainerManager]:
    config = runtime_config.replace(
        registry_path=str(built / "languages.yaml"), pool_enabled=False, network="none",
        monitor_db=str(tmp_path / "monitor.sqlite3"),
    )
    mgr = ContainerManager(config)
    await mgr.startup()
    yield mgr
    await mgr.shutdown()


PROGRAMS = {
    "hello": 'print("hello, world")\n',
    "exception": "def f(x):\n    return 1 / x\n\nf(0)\n",
    "missing": "import not_installed_anywhere\n",
    "syntax": "def f(:\n    pass\n",
    "dangerous": "import os\n# eval(x) in a comment is fine\nos.system('true')\nprint(eval('1 + 1'))\n",
}


async def test_a_copied_entry_builds_and_behaves_like_python_everywhere(
    manager: ContainerManager, unique: str
) -> None:
    assert manager.images[COPY] and manager.registry.resolve(COPY).image == f"theappapp-{COPY}"
    outcomes: dict[str, dict[str, Any]] = {}
    for language in ("python", COPY):
        task = f"{language[:4]}{unique}"
        seen: dict[str, Any] = {}
        async with manager.task(task, f"p{unique}", language) as box:
            for name, code in PROGRAMS.items():
                run = await box.run_code(code)
                # A pattern's rule id names its language (pattern.<language>.<id>): the one expected difference.
                rules = [(f.rule_id.replace(f".{language}.", ".LANG."), f.severity, f.line) for f in run.findings]
                seen[name] = (run.filename, run.command, run.exit_code, run.stdout, rules)
            seen["which"] = (await box.exec("command -v python3 pytest black && python3 -c 'import numpy'")).stdout
        outcomes[language] = seen
    assert outcomes[COPY] == outcomes["python"]
    assert outcomes[COPY]["hello"][3] == "hello, world\n"
    rules = {rule for rule, _, _ in outcomes[COPY]["dangerous"][4]}
    assert rules >= {"pattern.LANG.os-command", "pattern.LANG.eval-exec"}
    assert ("syntax.error", "error", 1) in outcomes[COPY]["syntax"][4]

    monitor = next(o for o in manager.observers.members if isinstance(o, SandboxMonitor))
    by_language: dict[str, set[tuple[str, str | None]]] = {}
    for p in monitor.error_patterns(limit=100):
        by_language.setdefault(p.language, set()).add((p.outcome, p.error_type))
    assert by_language[COPY] == by_language["python"]
    assert {("runtime_error", "ZeroDivisionError"), ("missing_module", "ModuleNotFoundError"),
            ("syntax_error", "SyntaxError")} <= by_language[COPY]


def test_a_failed_build_says_where_it_failed_and_leaves_no_untagged_image(
    checkout: Path, docker_client: docker.DockerClient, python_image: Language
) -> None:
    def dangling() -> set[str]:
        return {str(i.id) for i in docker_client.images.list(filters={"dangling": True})}

    before = dangling()
    done = _build(checkout, BROKEN)
    assert done.returncode == 1
    assert f"[{BROKEN}] failed" in done.stdout and f"logs/build/{BROKEN}.log" in done.stdout
    assert "theappapp-no-such-package" in (checkout / "logs" / "build" / f"{BROKEN}.log").read_text()
    assert not docker_client.images.list(name=f"theappapp-{BROKEN}")
    assert dangling() <= before  # the layers the failed build committed went with it
