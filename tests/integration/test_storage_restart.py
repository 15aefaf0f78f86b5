"""A project's quota and files survive an engine restart (the issue's "survives engine restarts").

This restarts the machine's Docker engine, so it runs only where the project's own script
started that engine (a pid file, a dockerd we may stop and start again): on these machines and
in CI. Every container is stopped by the restart; the tests before and after it make their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
import pytest

from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager

from .conftest import NETWORK, SESSION, image_or_skip
from .storage_cleanup import remove_root

pytestmark = pytest.mark.integration
ROOT = Path(f"/var/lib/theappapp-test-restart-{SESSION}")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "start-docker-engine.sh"
PIDFILE = Path("/var/run/docker.pid")


def _dockerd() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
        return pid if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd" else None
    except (OSError, ValueError):
        return None


def restart_engine(client: docker.DockerClient) -> None:
    pid = _dockerd()
    assert pid is not None
    os.kill(pid, 15)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop within 60 s"
        time.sleep(0.2)
    subprocess.run(["bash", str(SCRIPT)], check=True, capture_output=True, timeout=120)
    client.ping()


def config() -> RuntimeConfig:
    return RuntimeConfig.load(network_name=NETWORK, storage_enabled=True, storage_root=str(ROOT),
                              storage_pool_size="8g", pool_enabled=False, monitor_enabled=False)


async def test_the_quota_and_the_files_survive_an_engine_restart(docker_client: docker.DockerClient,
                                                                 unique: str) -> None:
    image_or_skip(docker_client, "python")
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("disk quotas need root and xfsprogs (mkfs.xfs) on the engine's host")
    if _dockerd() is None:
        pytest.skip("the engine was not started by scripts/start-docker-engine.sh here (no dockerd pid file): "
                    "this test restarts it, and will not restart an engine it does not own")
    if os.environ.get("THEAPPAPP_TEST_ENGINE_RESTART") == "0":
        pytest.skip("THEAPPAPP_TEST_ENGINE_RESTART=0: the engine may not be restarted in this run")
    project = f"restart{unique}"
    try:
        manager = ContainerManager(config())
        await manager.startup()
        async with manager.task(f"a{unique}", project, "python", disk_quota="320m") as box:
            assert (await box.exec("printf kept > kept.txt")).exit_code == 0
        await manager.shutdown()

        restart_engine(docker_client)

        manager = ContainerManager(config())
        await manager.startup()
        try:
            async with manager.task(f"b{unique}", project, "python") as box:
                assert (await box.exec("cat kept.txt")).stdout == "kept"
                assert "320M" in (await box.exec("df -h /workspace")).stdout
                filled = await box.exec("dd if=/dev/zero of=fill bs=1M count=2000", timeout=120)
                assert filled.exit_code != 0 and "No space left on device" in filled.stderr
            await manager.delete_project_volume(project)
        finally:
            await manager.shutdown()
    finally:
        remove_root(ROOT)
