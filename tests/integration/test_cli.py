"""`python -m runtime.cli` as a user runs it, against the real engine and images.

Subprocesses inherit this session's installation id (set in conftest) and use the
session's network, so everything they make is removed by the session teardown too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from runtime import labels
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager

from .conftest import INSTALLATION, NETWORK

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, tmp: Path, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update({
        "THEAPPAPP_INSTALLATION_ID": INSTALLATION,
        "THEAPPAPP_NETWORK_NAME": NETWORK,
        "THEAPPAPP_MONITOR_DB": str(tmp / "monitor.sqlite3"),
        "PYTHONPATH": str(ROOT),
    })
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args], env=env, cwd=ROOT, input=stdin,
        capture_output=True, text=True, timeout=timeout,
    )


def _volumes(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list(filters={"label": [f"{labels.INSTALLATION}={INSTALLATION}"]})}


def test_run_c_prints_the_output_and_exits_0_leaving_nothing_behind(
    docker_client: docker.DockerClient, python_image: Language, tmp_path: Path
) -> None:
    before = _volumes(docker_client)
    done = cli("run", "python", "-c", "print(1)", tmp=tmp_path)
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
    assert "starting a Python sandbox" in done.stderr and "removing the sandbox" in done.stderr  # progress
    running = docker_client.containers.list(
        all=True, filters={"label": [f"{labels.INSTALLATION}={INSTALLATION}", f"{labels.TASK}"]}
    )
    assert not [c for c in running if c.labels.get(labels.TASK, "").startswith("cli-")]
    assert _volumes(docker_client) == before  # the throwaway project's volume went too


def test_run_exits_with_the_programs_code_and_prints_its_stderr(python_image: Language, tmp_path: Path) -> None:
    done = cli("run", "python", "-q", "-c", "import sys; print('out'); sys.exit('boom')", tmp=tmp_path)
    assert done.returncode == 1 and done.stdout == "out\n" and "boom" in done.stderr
    assert "[sandbox" not in done.stderr  # --quiet
    done = cli("run", "python", "-q", "-c", "raise SystemExit(7)", tmp=tmp_path)
    assert done.returncode == 7


def test_run_file_and_stdin_with_findings_on_stderr(python_image: Language, tmp_path: Path) -> None:
    script = tmp_path / "calc.py"
    script.write_text("import os\nprint(__file__.rsplit('/', 1)[1], eval('2+2'))\n")
    done = cli("run", "python", str(script), tmp=tmp_path)
    assert done.returncode == 0 and done.stdout == "calc.py 4\n", done.stderr
    assert "calc.py:2:" in done.stderr and "pattern.python.eval-exec" in done.stderr  # warned, not blocked
    done = cli("run", "py", "-", "-q", tmp=tmp_path, stdin="print('from stdin')\n")
    assert done.returncode == 0 and done.stdout == "from stdin\n"


def test_run_timeout_exits_124(python_image: Language, tmp_path: Path) -> None:
    done = cli("run", "python", "--timeout", "1", "-c", "import time; print('start', flush=True); time.sleep(30)",
               tmp=tmp_path)
    assert done.returncode == 124 and done.stdout == "start\n" and "timed out" in done.stderr


def test_run_strict_refuses_code_with_errors(python_image: Language, tmp_path: Path) -> None:
    done = cli("run", "python", "--strict", "-c", "def f(:", tmp=tmp_path)
    assert done.returncode == 125 and "refused by --strict" in done.stderr and done.stdout == ""


def test_run_in_a_named_project_keeps_its_files(
    docker_client: docker.DockerClient, python_image: Language, tmp_path: Path, unique: str
) -> None:
    project = f"cliproj-{unique}"
    first = cli("run", "python", "-q", "--project", project, "-c", "open('state.txt','w').write('kept')", tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    second = cli("run", "python", "-q", "--project", project, "-c", "print(open('state.txt').read())", tmp=tmp_path)
    assert second.stdout == "kept\n"
    assert f"theappapp-project-{project}" in _volumes(docker_client)


async def test_ls_shows_a_live_task_with_its_project_and_the_volume(
    manager: ContainerManager, unique: str, tmp_path: Path
) -> None:
    await manager.create_container(f"task-{unique}", f"proj-{unique}", "python")
    done = cli("ls", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if f"task-{unique}" in ln)
    assert "running" in line and f"proj-{unique}" in line and "python" in line and "(gone)" not in line
    assert f"theappapp-project-proj-{unique}" in done.stdout
    assert done.stdout.startswith(f"containers (installation {INSTALLATION})")
    every = cli("ls", "--all", tmp=tmp_path)
    line = next(ln for ln in every.stdout.splitlines() if f"task-{unique}" in ln)
    assert every.stdout.startswith("containers (all installations)") and line.rstrip().endswith(INSTALLATION)


def test_cleanup_dry_run_through_the_cli(python_image: Language, tmp_path: Path) -> None:
    done = cli("cleanup", "--dry-run", tmp=tmp_path)
    assert done.returncode == 0 and f"installation {INSTALLATION}:" in done.stdout
    assert "to remove" in done.stdout


def test_doctor_reports_every_check(python_image: Language, tmp_path: Path) -> None:
    done = cli("doctor", tmp=tmp_path)
    lines = done.stdout.splitlines()
    assert any(ln.startswith(("PASS  engine: Docker", "WARN  engine: Docker")) for ln in lines)
    assert any(ln.startswith("PASS  image python: theappapp-python:latest") for ln in lines)
    for name in ("registry", "OCI runtime", "network policy", "disk"):
        assert any(ln.split(":", 1)[0].endswith(name) for ln in lines), name
    failed = [ln for ln in lines if ln.startswith("FAIL")]
    assert done.returncode == (1 if failed else 0)
    assert all("fix:" in done.stdout.split(ln, 1)[1].split("\n", 2)[1] for ln in failed)  # each FAIL has a fix


def test_stats_shows_runs_recorded_by_the_cli(python_image: Language, tmp_path: Path) -> None:
    cli("run", "python", "-q", "-c", "raise KeyError('k')", tmp=tmp_path)
    done = cli("stats", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "KeyError" in done.stdout and "python" in done.stdout


def test_ctrl_c_removes_the_sandbox_and_exits_130(
    docker_client: docker.DockerClient, python_image: Language, tmp_path: Path
) -> None:
    env = dict(os.environ, THEAPPAPP_INSTALLATION_ID=INSTALLATION, THEAPPAPP_NETWORK_NAME=NETWORK,
               THEAPPAPP_MONITOR_DB=str(tmp_path / "m.sqlite3"), PYTHONPATH=str(ROOT))
    before = _volumes(docker_client)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "run", "python", "-c", "import time; time.sleep(120)"],
        env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the program is running
        if "running the snippet" in line:
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "interrupted; the sandbox was removed" in proc.stderr.read()
    left = docker_client.containers.list(all=True, filters={"label": [f"{labels.INSTALLATION}={INSTALLATION}"]})
    assert not [c for c in left if c.name.startswith("theappapp-cli-")]
    assert _volumes(docker_client) == before
